//! Alert rules over a sliding window: `error-rate>5%/5m`, `p95>2s/5m`.
//!
//! [`Alert`] is a pure state machine over `(time, sample)`: the caller
//! passes the time (so tests drive a clock by hand), and gets a
//! [`Transition`] exactly once when the window crosses the threshold and
//! once when it recovers.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::exchange::ExchangeSummary;

/// Why a rule did not parse; messages are meant for the user as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Not `METRIC OP THRESHOLD/WINDOW`.
    #[error(
        "bad alert rule {0:?}: expected METRIC>THRESHOLD/WINDOW, e.g. 'error-rate>5%/5m' or 'p95>2s/5m'"
    )]
    Shape(String),
    /// An unknown metric.
    #[error("bad alert rule {rule:?}: unknown metric {metric:?} (use error-rate, p50, p95 or p99)")]
    Metric {
        /// The rule.
        rule: String,
        /// The metric given.
        metric: String,
    },
    /// A threshold that is not a percentage (error-rate) or a duration (pNN).
    #[error("bad alert rule {rule:?}: {why}")]
    Threshold {
        /// The rule.
        rule: String,
        /// What is wrong.
        why: String,
    },
    /// A window that is not a positive duration.
    #[error("bad alert rule {rule:?}: window {window:?} is not a duration like 30s or 5m")]
    Window {
        /// The rule.
        rule: String,
        /// The window given.
        window: String,
    },
}

/// What a rule measures over its window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// Share of exchanges that failed (no answer, hooktunnel's 502/504, or a 5xx), 0..=1.
    ErrorRate,
    /// A latency percentile (50, 95 or 99), µs.
    Percentile(u8),
}

/// Comparison between the measured value and the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Above,
    /// `<`
    Below,
}

/// A parsed `--alert` rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// As written, for messages.
    pub text: String,
    /// What is measured.
    pub metric: Metric,
    /// Direction.
    pub op: Op,
    /// Threshold: a fraction for error-rate, µs for percentiles.
    pub threshold: f64,
    /// Sliding window length, ms.
    pub window_ms: u64,
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let shape = || RuleError::Shape(s.to_owned());
        let (at, op) = text
            .char_indices()
            .find_map(|(i, c)| match c {
                '>' => Some((i, Op::Above)),
                '<' => Some((i, Op::Below)),
                _ => None,
            })
            .ok_or_else(shape)?;
        let (metric, rest) = (&text[..at], &text[at + 1..]);
        let (threshold, window) = rest.split_once('/').ok_or_else(shape)?;
        if metric.is_empty() || threshold.is_empty() || window.is_empty() {
            return Err(shape());
        }
        let metric = match metric.to_ascii_lowercase().as_str() {
            "error-rate" | "error_rate" | "errors" => Metric::ErrorRate,
            "p50" => Metric::Percentile(50),
            "p95" => Metric::Percentile(95),
            "p99" => Metric::Percentile(99),
            _ => {
                return Err(RuleError::Metric {
                    rule: s.to_owned(),
                    metric: metric.to_owned(),
                });
            }
        };
        let bad = |why: &str| RuleError::Threshold {
            rule: s.to_owned(),
            why: why.to_owned(),
        };
        let threshold = match metric {
            Metric::ErrorRate => {
                let pct = threshold
                    .strip_suffix('%')
                    .ok_or_else(|| bad("an error rate is a percentage, like 5%"))?;
                let pct: f64 = pct
                    .parse()
                    .map_err(|_| bad("an error rate is a percentage, like 5%"))?;
                if !(0.0..=100.0).contains(&pct) {
                    return Err(bad("a percentage is between 0% and 100%"));
                }
                pct / 100.0
            }
            Metric::Percentile(_) => humantime::parse_duration(threshold)
                .map_err(|_| bad("a latency is a duration, like 250ms or 2s"))?
                .as_micros() as f64,
        };
        let window_ms = humantime::parse_duration(window)
            .ok()
            .filter(|d| !d.is_zero())
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .ok_or_else(|| RuleError::Window {
                rule: s.to_owned(),
                window: window.to_owned(),
            })?;
        Ok(Self {
            text,
            metric,
            op,
            threshold,
            window_ms,
        })
    }
}

/// What a rule needs to know about one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertSample {
    /// Failed: no answer, hooktunnel's own 502/504, or a 5xx.
    pub error: bool,
    /// Latency, µs, when the app was reached (`None` when unreachable).
    pub latency_us: Option<u64>,
}

impl AlertSample {
    /// From a live exchange event.
    pub fn from_summary(s: &ExchangeSummary) -> Self {
        let unreachable = s.status.is_none() || (s.error.is_some() && s.status == Some(502));
        Self {
            error: s.error.is_some() || s.status.is_none_or(|c| c >= 500),
            latency_us: (!unreachable).then(|| (s.duration_ms * 1000.0).round() as u64),
        }
    }
}

/// A rule changing state.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The rule, as written.
    pub rule: String,
    /// True when it started firing, false when it recovered.
    pub firing: bool,
    /// The measured value, already formatted (`12.5%`, `2.31s`).
    pub value: String,
    /// Exchanges in the window.
    pub samples: usize,
    /// The window, for messages.
    pub window: Duration,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// How a firing transition's line starts.
const FIRING: &str = "ALERT ";

/// True for the line of a rule that started firing (not of a recovery):
/// the inspector rings the bell for it.
pub fn is_firing_notice(text: &str) -> bool {
    text.starts_with(FIRING)
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let window = humantime::format_duration(self.window);
        if self.firing {
            write!(
                f,
                "{FIRING}{}: now {} over the last {window} ({} requests)",
                self.rule, self.value, self.samples
            )
        } else {
            write!(
                f,
                "RECOVERED {}: now {} over the last {window} ({} requests)",
                self.rule, self.value, self.samples
            )
        }
    }
}

/// One rule's sliding window and whether it is firing.
#[derive(Clone, Debug)]
pub struct Alert {
    rule: Rule,
    window: VecDeque<(u64, AlertSample)>,
    firing: bool,
    scratch: Vec<u64>,
}

impl Alert {
    /// A quiet alert for `rule`.
    pub fn new(rule: Rule) -> Self {
        Self {
            rule,
            window: VecDeque::new(),
            firing: false,
            scratch: Vec::new(),
        }
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Whether the rule is currently firing.
    pub fn is_firing(&self) -> bool {
        self.firing
    }

    /// Records an exchange seen at `now_ms` and evaluates.
    pub fn observe(&mut self, now_ms: u64, sample: AlertSample) -> Option<Transition> {
        self.push(now_ms, sample);
        self.evaluate(now_ms)
    }

    /// Records an exchange without evaluating: under heavy traffic the
    /// caller evaluates on a timer instead, since a percentile costs one
    /// pass over the window.
    pub fn push(&mut self, now_ms: u64, sample: AlertSample) {
        self.window.push_back((now_ms, sample));
    }

    /// Slides the window to `now_ms` and reports a change of state, if any.
    /// Call it on a timer too: a window recovers as old failures age out.
    pub fn evaluate(&mut self, now_ms: u64) -> Option<Transition> {
        let start = now_ms.saturating_sub(self.rule.window_ms);
        while self.window.front().is_some_and(|(t, _)| *t <= start) {
            self.window.pop_front();
        }
        let value = self.measure();
        let crossed = value.is_some_and(|v| match self.rule.op {
            Op::Above => v > self.rule.threshold,
            Op::Below => v < self.rule.threshold,
        });
        if crossed == self.firing {
            return None;
        }
        self.firing = crossed;
        Some(Transition {
            rule: self.rule.text.clone(),
            firing: crossed,
            value: self.format(value),
            samples: self.window.len(),
            window: Duration::from_millis(self.rule.window_ms),
            at_ms: now_ms,
        })
    }

    /// The metric over the window; `None` when there is nothing to measure.
    fn measure(&mut self) -> Option<f64> {
        match self.rule.metric {
            Metric::ErrorRate => {
                let n = self.window.len();
                let errors = self.window.iter().filter(|(_, s)| s.error).count();
                (n > 0).then(|| errors as f64 / n as f64)
            }
            Metric::Percentile(p) => {
                self.scratch.clear();
                self.scratch
                    .extend(self.window.iter().filter_map(|(_, s)| s.latency_us));
                if self.scratch.is_empty() {
                    return None;
                }
                // Nearest rank, exact: the window is bounded by traffic in it.
                let rank = (f64::from(p) / 100.0 * self.scratch.len() as f64).ceil() as usize;
                let index = rank.clamp(1, self.scratch.len()) - 1;
                let (_, v, _) = self.scratch.select_nth_unstable(index);
                Some(*v as f64)
            }
        }
    }

    fn format(&self, value: Option<f64>) -> String {
        match (self.rule.metric, value) {
            (_, None) => "no data".into(),
            (Metric::ErrorRate, Some(v)) => format!("{:.1}% errors", v * 100.0),
            (Metric::Percentile(p), Some(us)) => format!("p{p} {}", format_us(us)),
        }
    }
}

/// `850ms`, `2.31s`, `740µs`.
pub fn format_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.0}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OK: AlertSample = AlertSample {
        error: false,
        latency_us: Some(10_000),
    };
    const FAIL: AlertSample = AlertSample {
        error: true,
        latency_us: Some(10_000),
    };

    fn slow(ms: u64) -> AlertSample {
        AlertSample {
            error: false,
            latency_us: Some(ms * 1000),
        }
    }

    #[test]
    fn rules_parse() {
        let r: Rule = "error-rate>5%/5m".parse().unwrap();
        assert_eq!(r.metric, Metric::ErrorRate);
        assert_eq!(r.op, Op::Above);
        assert!((r.threshold - 0.05).abs() < 1e-12);
        assert_eq!(r.window_ms, 300_000);
        let r: Rule = " p95 > 2s / 30s ".parse().unwrap();
        assert_eq!(r.text, "p95>2s/30s");
        assert_eq!(r.metric, Metric::Percentile(95));
        assert_eq!(r.threshold, 2_000_000.0);
        assert_eq!(r.window_ms, 30_000);
        let r: Rule = "p99<250ms/1m".parse().unwrap();
        assert_eq!(r.op, Op::Below);
        for bad in [
            "",
            "p95",
            "p95>2s",
            "p95>/5m",
            "p42>2s/5m",
            "error-rate>5/5m",
            "error-rate>500%/5m",
            "p95>fast/5m",
            "p95>2s/0s",
            "p95>2s/soon",
        ] {
            let e = bad.parse::<Rule>().unwrap_err();
            assert!(e.to_string().starts_with("bad alert rule"), "{bad}: {e}");
        }
    }

    #[test]
    fn error_rate_fires_once_and_recovers_once_with_a_driven_clock() {
        let mut a = Alert::new("error-rate>20%/60s".parse().unwrap());
        let mut clock = 1_000_000u64;
        let mut fired = Vec::new();
        // Ten healthy requests, one per second.
        for _ in 0..10 {
            clock += 1000;
            fired.extend(a.observe(clock, OK));
        }
        assert!(fired.is_empty());
        // Three failures: 3/13 = 23% > 20%: fires on the third, only once.
        for _ in 0..3 {
            clock += 1000;
            fired.extend(a.observe(clock, FAIL));
        }
        assert_eq!(fired.len(), 1);
        assert!(fired[0].firing);
        assert_eq!(fired[0].value, "23.1% errors");
        assert_eq!(fired[0].samples, 13);
        assert!(a.is_firing());
        // More failures keep it firing without a new line.
        clock += 1000;
        assert_eq!(a.observe(clock, FAIL), None);
        // Time passes with no traffic: the window empties, it recovers once.
        clock += 30_000;
        assert_eq!(a.evaluate(clock), None, "failures still in the window");
        clock += 31_000;
        let t = a.evaluate(clock).unwrap();
        assert!(!t.firing);
        assert_eq!(t.value, "no data");
        assert!(
            t.to_string().starts_with("RECOVERED error-rate>20%/60s"),
            "{t}"
        );
        assert_eq!(a.evaluate(clock + 1000), None);
    }

    #[test]
    fn p95_fires_when_the_tail_slows_and_recovers_as_it_ages_out() {
        let mut a = Alert::new("p95>2s/10s".parse().unwrap());
        let mut now = 0u64;
        for _ in 0..19 {
            now += 100;
            assert_eq!(a.observe(now, slow(100)), None);
        }
        // 1 slow of 20: the nearest-rank p95 is the 19th value, still fast.
        now += 100;
        assert_eq!(a.observe(now, slow(3000)), None);
        now += 100;
        let t = a.observe(now, slow(2500)).unwrap();
        assert!(t.firing);
        assert_eq!(t.value, "p95 2.50s");
        assert!(
            t.to_string()
                .starts_with("ALERT p95>2s/10s: now p95 2.50s over the last 10s (21 requests)"),
            "{t}"
        );
        // Fast traffic for 10 s pushes the slow ones out.
        let mut recovered = Vec::new();
        for _ in 0..100 {
            now += 100;
            recovered.extend(a.observe(now, slow(50)));
        }
        assert_eq!(recovered.len(), 1);
        assert!(!recovered[0].firing);
    }

    #[test]
    fn samples_from_summaries() {
        let mut s = crate::store::tests::sample(1).summary();
        assert_eq!(
            AlertSample::from_summary(&s),
            AlertSample {
                error: false,
                latency_us: Some(1200)
            }
        );
        s.status = Some(502);
        s.error = Some("refused".into());
        assert_eq!(
            AlertSample::from_summary(&s),
            AlertSample {
                error: true,
                latency_us: None
            }
        );
        s.status = Some(503);
        s.error = None;
        assert!(AlertSample::from_summary(&s).error);
        assert_eq!(format_us(740.0), "740µs");
    }
}
