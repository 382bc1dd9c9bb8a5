//! Per-tunnel metrics on `/_hooktunnel/metrics`: requests by status class,
//! refusals, queued requests and a latency histogram, labelled by tunnel
//! name only (never a path), for at most [`MAX_TUNNEL_LABELS`] names; later
//! names share the [`OTHER`] label, so a relay with many tunnels cannot
//! blow up a Prometheus server.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Distinct tunnel names that get their own label set.
pub const MAX_TUNNEL_LABELS: usize = 1000;
/// The label of every tunnel past the first [`MAX_TUNNEL_LABELS`] (not a
/// valid tunnel name, so it never collides with one).
pub const OTHER: &str = "_other";
/// Latency buckets, seconds: Prometheus' defaults plus 30 s (the default
/// response timeout).
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The metric names, as scraped (counters end in `_total`).
pub const REQUESTS: &str = "hooktunnel_tunnel_requests_total";
/// Requests the relay answered with an error of its own.
pub const REFUSED: &str = "hooktunnel_tunnel_refused_total";
/// Requests stored in the durable queue.
pub const QUEUED: &str = "hooktunnel_tunnel_queued_total";
/// The latency histogram's base name (`_bucket`, `_sum`, `_count`).
pub const DURATION: &str = "hooktunnel_tunnel_request_duration_seconds";

/// An HTTP status class.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Class(u16);

impl EncodeLabelValue for Class {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        write!(encoder, "{}xx", self.0)
    }
}

impl Class {
    /// `1xx` to `5xx`; anything outside 100–599 counts as `5xx`.
    fn of(status: u16) -> Self {
        match status / 100 {
            c @ 1..=5 => Class(c),
            _ => Class(5),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TunnelLabels {
    tunnel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    tunnel: String,
    class: Class,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// What one ingress request did, as the metrics see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The status the sender got.
    pub status: u16,
    /// The relay answered with an error of its own (rate limit, busy,
    /// queue full, body too large, agent gone or too slow).
    pub refused: bool,
    /// The request went to the durable queue (offline or ack mode).
    pub queued: bool,
    /// From the request's arrival to the answer.
    pub elapsed: Duration,
}

/// The per-tunnel registry.
pub struct TunnelMetrics {
    registry: Registry,
    requests: Family<ClassLabels, Counter>,
    refused: Family<TunnelLabels, Counter>,
    queued: Family<TunnelLabels, Counter>,
    duration: Family<TunnelLabels, Histogram, fn() -> Histogram>,
    labelled: Mutex<HashSet<String>>,
}

impl Default for TunnelMetrics {
    fn default() -> Self {
        let requests = Family::<ClassLabels, Counter>::default();
        let refused = Family::<TunnelLabels, Counter>::default();
        let queued = Family::<TunnelLabels, Counter>::default();
        let duration: Family<TunnelLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(histogram);
        let mut registry = Registry::default();
        // Names without `_total`: the encoder adds it to counters.
        registry.register(
            "hooktunnel_tunnel_requests",
            "Requests that reached a tunnel, by the status class the sender got",
            requests.clone(),
        );
        registry.register(
            "hooktunnel_tunnel_refused",
            "Requests the relay answered with an error of its own",
            refused.clone(),
        );
        registry.register(
            "hooktunnel_tunnel_queued",
            "Requests stored in the durable queue",
            queued.clone(),
        );
        registry.register(
            DURATION,
            "Time from a request's arrival to its answer, seconds",
            duration.clone(),
        );
        Self {
            registry,
            requests,
            refused,
            queued,
            duration,
            labelled: Mutex::new(HashSet::new()),
        }
    }
}

impl TunnelMetrics {
    /// The label for `tunnel`: its name while fewer than
    /// [`MAX_TUNNEL_LABELS`] names have one, else [`OTHER`].
    fn label(&self, tunnel: &str) -> String {
        let mut labelled = self
            .labelled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if labelled.contains(tunnel) {
            return tunnel.to_owned();
        }
        if labelled.len() < MAX_TUNNEL_LABELS {
            labelled.insert(tunnel.to_owned());
            return tunnel.to_owned();
        }
        OTHER.to_owned()
    }

    /// Counts one request to `tunnel`.
    pub fn observe(&self, tunnel: &str, outcome: Outcome) {
        let tunnel = self.label(tunnel);
        let labels = TunnelLabels { tunnel };
        self.requests
            .get_or_create(&ClassLabels {
                tunnel: labels.tunnel.clone(),
                class: Class::of(outcome.status),
            })
            .inc();
        if outcome.refused {
            self.refused.get_or_create(&labels).inc();
        } else if outcome.queued {
            self.queued.get_or_create(&labels).inc();
        }
        self.duration
            .get_or_create(&labels)
            .observe(outcome.elapsed.as_secs_f64());
    }

    /// The metrics in the Prometheus text format (without OpenMetrics'
    /// `# EOF`, so the endpoint's other lines can follow or precede them).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return String::new();
        }
        match text.strip_suffix("# EOF\n") {
            Some(body) => body.to_owned(),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ok(ms: u64) -> Outcome {
        Outcome {
            status: 200,
            refused: false,
            queued: false,
            elapsed: Duration::from_millis(ms),
        }
    }

    #[test]
    fn renders_per_tunnel_series_without_eof() {
        let m = TunnelMetrics::default();
        m.observe("demo", ok(3));
        m.observe(
            "demo",
            Outcome {
                status: 429,
                refused: true,
                ..ok(0)
            },
        );
        m.observe(
            "shop",
            Outcome {
                status: 202,
                queued: true,
                ..ok(1)
            },
        );
        let text = m.render();
        assert!(!text.contains("# EOF"), "{text}");
        for line in [
            r#"hooktunnel_tunnel_requests_total{tunnel="demo",class="2xx"} 1"#,
            r#"hooktunnel_tunnel_requests_total{tunnel="demo",class="4xx"} 1"#,
            r#"hooktunnel_tunnel_refused_total{tunnel="demo"} 1"#,
            r#"hooktunnel_tunnel_queued_total{tunnel="shop"} 1"#,
            r#"hooktunnel_tunnel_request_duration_seconds_count{tunnel="demo"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        let fastest = text
            .lines()
            .find(|l| {
                l.starts_with("hooktunnel_tunnel_request_duration_seconds_bucket{")
                    && l.contains(r#"tunnel="demo""#)
                    && l.contains(r#"le="0.005""#)
            })
            .unwrap();
        assert!(fastest.ends_with(" 2"), "{fastest}");
    }

    #[test]
    fn tunnel_labels_are_capped_with_an_other_bucket() {
        let m = TunnelMetrics::default();
        for i in 0..MAX_TUNNEL_LABELS + 5 {
            m.observe(&format!("t{i}"), ok(1));
        }
        m.observe("t0", ok(1));
        let text = m.render();
        assert!(
            text.contains(r#"hooktunnel_tunnel_requests_total{tunnel="_other",class="2xx"} 5"#),
            "no other bucket"
        );
        assert!(text.contains(r#"hooktunnel_tunnel_requests_total{tunnel="t0",class="2xx"} 2"#));
        let series = text
            .lines()
            .filter(|l| l.starts_with("hooktunnel_tunnel_requests_total{"))
            .count();
        assert_eq!(series, MAX_TUNNEL_LABELS + 1);
    }
}
