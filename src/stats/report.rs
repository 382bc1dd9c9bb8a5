//! Aggregating samples (one narrow row per exchange) into a [`Report`]:
//! per group counts, status classes, causes, latency percentiles and a
//! sparkline. Pure: the store feeds samples, the CLI and (later) the
//! inspector render the report.

use std::collections::HashMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::derive::Cause;

/// Significant digits the latency histograms keep: values are exact to
/// within 1% (HDR histogram, 2 significant decimal digits).
pub const LATENCY_PRECISION_DIGITS: u8 = 2;

/// Key shown for rows without a provider or event type.
pub const NONE_KEY: &str = "(none)";

/// One exchange as stats see it (no headers, no bodies).
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// Receive time, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// HTTP method.
    pub method: &'a str,
    /// Folded path.
    pub path_pattern: &'a str,
    /// Webhook sender, if known.
    pub provider: Option<&'a str>,
    /// Event type, if named.
    pub event_type: Option<&'a str>,
    /// Response status, if any.
    pub status: Option<u16>,
    /// Time to the last response byte, µs.
    pub duration_us: u64,
    /// Failure cause, if any.
    pub cause: Option<Cause>,
    /// Signature verdict, if one was made.
    pub sig_valid: Option<bool>,
    /// Delivered from the relay's queue.
    pub queued: bool,
    /// A replay of an earlier exchange.
    pub replay: bool,
    /// The app was sent it more than once (a retried durable delivery).
    pub retried: bool,
}

/// Requests the relay refused (see [`super::refusal`]), as stats see them.
#[derive(Clone, Copy, Debug)]
pub struct RefusedSample<'a> {
    /// When the agent heard of them, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// HTTP method, when the relay named it.
    pub method: Option<&'a str>,
    /// Folded path, when the relay named it.
    pub path_pattern: Option<&'a str>,
    /// How many.
    pub count: u64,
}

/// Which sections a report has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// `METHOD /folded/path`.
    Path,
    /// Webhook sender.
    Provider,
    /// Event type.
    Event,
}

impl Dimension {
    /// All dimensions, in display order.
    pub const ALL: [Dimension; 3] = [Dimension::Path, Dimension::Provider, Dimension::Event];

    /// Section heading.
    pub fn title(self) -> &'static str {
        match self {
            Dimension::Path => "PATH",
            Dimension::Provider => "PROVIDER",
            Dimension::Event => "EVENT",
        }
    }
}

/// The time span a report covers, cut into equal sparkline buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Start, ms since the Unix epoch (inclusive).
    pub since_ms: u64,
    /// End, ms since the Unix epoch (exclusive).
    pub until_ms: u64,
    /// Width of one sparkline bucket, ms.
    pub bucket_ms: u64,
    /// Number of sparkline buckets.
    pub buckets: usize,
}

impl Window {
    /// `[since_ms, until_ms)` in `buckets` buckets (at least one, at least 1 ms each).
    pub fn new(since_ms: u64, until_ms: u64, buckets: usize) -> Self {
        let buckets = buckets.max(1);
        let span = until_ms.saturating_sub(since_ms).max(1);
        Self {
            since_ms,
            until_ms: since_ms + span,
            bucket_ms: span.div_ceil(buckets as u64).max(1),
            buckets,
        }
    }

    /// The bucket `t` falls in, if inside the window.
    pub fn bucket(&self, t: u64) -> Option<usize> {
        if t < self.since_ms || t >= self.until_ms {
            return None;
        }
        let i = ((t - self.since_ms) / self.bucket_ms) as usize;
        Some(i.min(self.buckets - 1))
    }
}

/// Counts by status class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusClasses {
    /// 1xx and 2xx.
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    /// 3xx.
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    /// 4xx.
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    /// 5xx (the app's and hooktunnel's own 502/504).
    #[serde(rename = "5xx")]
    pub s5xx: u64,
    /// No response recorded.
    pub none: u64,
}

/// Failures and delivery notes by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Causes {
    /// The app could not be reached (hooktunnel answered 502).
    pub unreachable: u64,
    /// The app did not answer in time (hooktunnel answered 504).
    pub timeout: u64,
    /// The app answered 5xx.
    pub app_5xx: u64,
    /// The signature did not verify.
    pub signature_invalid: u64,
    /// Requests the relay answered itself (413, 429, …), so they never
    /// reached the agent. Not part of a row's `count`, which counts
    /// exchanges; the total also holds refusals the relay did not name.
    pub relay_refused: u64,
}

impl Causes {
    /// Non-zero causes as `(name, count)`, in display order.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        [
            ("unreachable", self.unreachable),
            ("timeout", self.timeout),
            ("5xx", self.app_5xx),
            ("sig invalid", self.signature_invalid),
            ("relay refused", self.relay_refused),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// Latency percentiles, ms.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// One row of a section (or the total).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Group key (`POST /orders/:n`, `stripe`, `invoice.paid`, or `(none)`).
    pub key: String,
    /// Exchanges.
    pub count: u64,
    /// Exchanges answered below 500 without a hooktunnel error.
    pub ok: u64,
    /// `ok / count`, 0..=1.
    pub success_rate: f64,
    /// Counts by status class.
    pub status: StatusClasses,
    /// Latency of exchanges that reached the app (timeouts included, unreachable not).
    pub latency_ms: Option<Latency>,
    /// Failures by cause.
    pub errors: Causes,
    /// Delivered from the relay's offline queue.
    pub queued: u64,
    /// Replays.
    pub replays: u64,
    /// Delivered after more than one attempt (durable deliveries retry a
    /// failing app), whatever the last attempt's outcome.
    pub retried: u64,
    /// Exchanges per sparkline bucket, oldest first.
    pub spark: Vec<u64>,
}

/// Everything `stats` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The span covered.
    pub window: Window,
    /// All exchanges in the window.
    pub total: Row,
    /// Sections, each sorted by count (descending), then key.
    pub sections: Vec<Section>,
}

impl Report {
    /// Nothing in the window: no exchange and no relay refusal.
    pub fn is_empty(&self) -> bool {
        self.total.count == 0 && self.total.errors.relay_refused == 0
    }
}

/// Rows grouped by one dimension.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    /// What the rows are grouped by.
    pub by: Dimension,
    /// Rows shown (the busiest `top`).
    pub rows: Vec<Row>,
    /// Groups left out beyond `top`.
    pub omitted: usize,
}

/// An auto-resizing histogram, so memory follows the largest value seen
/// (`None` only if the precision constant were invalid).
fn new_histogram() -> Option<Histogram<u64>> {
    let mut h = Histogram::new(LATENCY_PRECISION_DIGITS).ok()?;
    h.auto(true);
    Some(h)
}

/// A row while it is being filled.
struct Acc {
    count: u64,
    ok: u64,
    status: StatusClasses,
    errors: Causes,
    queued: u64,
    replays: u64,
    retried: u64,
    latency: Option<Histogram<u64>>,
    spark: Vec<u64>,
}

impl Acc {
    fn new(buckets: usize) -> Self {
        Self {
            count: 0,
            ok: 0,
            status: StatusClasses::default(),
            errors: Causes::default(),
            queued: 0,
            replays: 0,
            retried: 0,
            latency: None,
            spark: vec![0; buckets],
        }
    }

    fn add(&mut self, s: &Sample<'_>, bucket: usize) {
        self.count += 1;
        match s.status {
            Some(0..=299) => self.status.s2xx += 1,
            Some(300..=399) => self.status.s3xx += 1,
            Some(400..=499) => self.status.s4xx += 1,
            Some(_) => self.status.s5xx += 1,
            None => self.status.none += 1,
        }
        match s.cause {
            None => self.ok += 1,
            Some(Cause::Unreachable) => self.errors.unreachable += 1,
            Some(Cause::Timeout) => self.errors.timeout += 1,
            Some(Cause::App5xx) => self.errors.app_5xx += 1,
        }
        if s.sig_valid == Some(false) {
            self.errors.signature_invalid += 1;
        }
        self.queued += u64::from(s.queued);
        self.replays += u64::from(s.replay);
        self.retried += u64::from(s.retried);
        if s.cause != Some(Cause::Unreachable) {
            if self.latency.is_none() {
                self.latency = new_histogram();
            }
            if let Some(hist) = &mut self.latency {
                // `record` grows the histogram; saturating would clamp at its current top.
                let v = s.duration_us.max(1);
                if hist.record(v).is_err() {
                    hist.saturating_record(v);
                }
            }
        }
        if let Some(slot) = self.spark.get_mut(bucket) {
            *slot += 1;
        }
    }

    fn finish(self, key: String) -> Row {
        let ms =
            |h: &Histogram<u64>, q: f64| (h.value_at_quantile(q) as f64 / 100.0).round() / 10.0;
        Row {
            key,
            count: self.count,
            ok: self.ok,
            success_rate: if self.count == 0 {
                0.0
            } else {
                self.ok as f64 / self.count as f64
            },
            status: self.status,
            latency_ms: self
                .latency
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| Latency {
                    p50: ms(h, 0.50),
                    p95: ms(h, 0.95),
                    p99: ms(h, 0.99),
                    max: ms(h, 1.0),
                }),
            errors: self.errors,
            queued: self.queued,
            replays: self.replays,
            retried: self.retried,
            spark: self.spark,
        }
    }
}

/// Builds a [`Report`] from samples, one pass, memory bounded by the number
/// of groups (not of samples).
pub struct Aggregator {
    window: Window,
    by: Vec<Dimension>,
    top: usize,
    total: Acc,
    groups: Vec<HashMap<String, Acc>>,
    key: String,
}

impl Aggregator {
    /// An empty aggregation over `window`, with sections `by` showing at most `top` rows each.
    pub fn new(window: Window, by: &[Dimension], top: usize) -> Self {
        Self {
            window,
            by: by.to_vec(),
            top: top.max(1),
            total: Acc::new(window.buckets),
            groups: by.iter().map(|_| HashMap::new()).collect(),
            key: String::new(),
        }
    }

    /// Adds one sample; samples outside the window are ignored.
    pub fn add(&mut self, s: &Sample<'_>) {
        let Some(bucket) = self.window.bucket(s.received_at_ms) else {
            return;
        };
        self.total.add(s, bucket);
        for (dim, groups) in self.by.iter().zip(&mut self.groups) {
            let key: &str = match dim {
                Dimension::Path => {
                    self.key.clear();
                    self.key.push_str(s.method);
                    self.key.push(' ');
                    self.key.push_str(s.path_pattern);
                    &self.key
                }
                Dimension::Provider => s.provider.unwrap_or(NONE_KEY),
                Dimension::Event => s.event_type.unwrap_or(NONE_KEY),
            };
            // Look up by &str first: allocate a key only for a new group.
            match groups.get_mut(key) {
                Some(acc) => acc.add(s, bucket),
                None => {
                    let mut acc = Acc::new(self.window.buckets);
                    acc.add(s, bucket);
                    groups.insert(key.to_owned(), acc);
                }
            }
        }
    }

    /// Adds refusals to the total and, when the relay named method and
    /// path, to that path's row (created with a zero count if the path has
    /// no exchanges); refusals outside the window are ignored. Provider and
    /// event rows get none: a refused request's headers and body are unknown.
    pub fn add_refused(&mut self, r: &RefusedSample<'_>) {
        if self.window.bucket(r.received_at_ms).is_none() {
            return;
        }
        self.total.errors.relay_refused += r.count;
        let (Some(method), Some(pattern)) = (r.method, r.path_pattern) else {
            return;
        };
        let Some(groups) = self
            .by
            .iter()
            .position(|d| *d == Dimension::Path)
            .and_then(|i| self.groups.get_mut(i))
        else {
            return;
        };
        self.key.clear();
        self.key.push_str(method);
        self.key.push(' ');
        self.key.push_str(pattern);
        match groups.get_mut(self.key.as_str()) {
            Some(acc) => acc.errors.relay_refused += r.count,
            None => {
                let mut acc = Acc::new(self.window.buckets);
                acc.errors.relay_refused = r.count;
                groups.insert(self.key.clone(), acc);
            }
        }
    }

    /// The finished report.
    pub fn finish(self) -> Report {
        let top = self.top;
        let sections = self
            .by
            .iter()
            .zip(self.groups)
            .map(|(by, groups)| {
                let mut rows: Vec<Row> = groups.into_iter().map(|(k, acc)| acc.finish(k)).collect();
                rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
                let omitted = rows.len().saturating_sub(top);
                rows.truncate(top);
                Section {
                    by: *by,
                    rows,
                    omitted,
                }
            })
            .collect();
        Report {
            window: self.window,
            total: self.total.finish("total".into()),
            sections,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(t: u64, path: &str, status: u16, ms: u64) -> Sample<'static> {
        let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
        Sample {
            received_at_ms: t,
            method: "POST",
            path_pattern: path,
            provider: Some("stripe"),
            event_type: None,
            status: Some(status),
            duration_us: ms * 1000,
            cause: Cause::classify(Some(status), false, None),
            sig_valid: None,
            queued: false,
            replay: false,
            retried: false,
        }
    }

    #[test]
    fn window_buckets_cover_the_span() {
        let w = Window::new(1000, 2000, 10);
        assert_eq!(w.bucket_ms, 100);
        assert_eq!(w.bucket(999), None);
        assert_eq!(w.bucket(1000), Some(0));
        assert_eq!(w.bucket(1999), Some(9));
        assert_eq!(w.bucket(2000), None);
        // An uneven span still puts the last instant in the last bucket.
        let w = Window::new(0, 7, 3);
        assert_eq!(w.bucket(6), Some(2));
        assert_eq!(Window::new(5, 5, 0).buckets, 1);
    }

    #[test]
    fn counts_classes_percentiles_and_sparkline() {
        let w = Window::new(0, 100, 4);
        let mut agg = Aggregator::new(w, &Dimension::ALL, 10);
        // 100 samples on /a: latencies 1..=100 ms, the last 10 answered 500.
        for i in 1..=100u64 {
            let status = if i > 90 { 500 } else { 200 };
            agg.add(&sample(i - 1, "/a", status, i));
        }
        agg.add(&sample(10, "/b", 404, 5));
        agg.add(&sample(500, "/late", 200, 5));
        let r = agg.finish();
        assert_eq!(r.total.count, 101);
        assert_eq!(r.total.ok, 91);
        assert_eq!(r.total.status.s4xx, 1);
        assert_eq!(r.total.errors.app_5xx, 10);
        let paths = &r.sections[0];
        assert_eq!(paths.rows[0].key, "POST /a");
        assert_eq!(paths.rows[1].key, "POST /b");
        let a = &paths.rows[0];
        assert_eq!(a.spark, vec![25, 25, 25, 25]);
        let lat = a.latency_ms.unwrap();
        for (got, want) in [
            (lat.p50, 50.0),
            (lat.p95, 95.0),
            (lat.p99, 99.0),
            (lat.max, 100.0),
        ] {
            assert!((got - want).abs() <= want * 0.01, "{got} vs {want}");
        }
        assert!((a.success_rate - 0.9).abs() < 1e-9);
        assert_eq!(r.sections[1].rows[0].key, "stripe");
        assert_eq!(r.sections[2].rows[0].key, NONE_KEY);
    }

    #[test]
    fn unreachable_has_no_latency_and_top_limits_rows() {
        let w = Window::new(0, 10, 1);
        let mut agg = Aggregator::new(w, &[Dimension::Path], 1);
        let mut s = sample(1, "/x", 502, 3);
        s.cause = Some(Cause::Unreachable);
        agg.add(&s);
        agg.add(&sample(2, "/y", 200, 3));
        agg.add(&sample(3, "/y", 200, 3));
        let r = agg.finish();
        assert_eq!(r.sections[0].rows.len(), 1);
        assert_eq!(r.sections[0].omitted, 1);
        assert_eq!(r.total.errors.unreachable, 1);
        let mut only = Aggregator::new(w, &[Dimension::Path], 5);
        only.add(&s);
        assert_eq!(only.finish().total.latency_ms, None);
    }

    #[test]
    fn retried_deliveries_and_relay_refusals_are_counted_where_they_belong() {
        let w = Window::new(0, 100, 2);
        let mut agg = Aggregator::new(w, &Dimension::ALL, 10);
        let mut retried = sample(1, "/a", 200, 3);
        retried.retried = true;
        agg.add(&retried);
        agg.add(&sample(2, "/a", 200, 3));
        let refused = |t, method, path, count| RefusedSample {
            received_at_ms: t,
            method,
            path_pattern: path,
            count,
        };
        // Named: on the path's row; unnamed: only in the total; late: nowhere.
        agg.add_refused(&refused(3, Some("POST"), Some("/a"), 2));
        agg.add_refused(&refused(4, Some("GET"), Some("/big"), 3));
        agg.add_refused(&refused(5, None, None, 4));
        agg.add_refused(&refused(500, Some("POST"), Some("/a"), 9));
        let r = agg.finish();
        assert_eq!(r.total.retried, 1);
        assert_eq!(r.total.errors.relay_refused, 9);
        assert_eq!(r.total.count, 2, "refusals are not exchanges");
        assert_eq!(r.total.spark, vec![2, 0]);
        let paths = &r.sections[0].rows;
        assert_eq!(paths[0].key, "POST /a");
        assert_eq!(paths[0].retried, 1);
        assert_eq!(paths[0].errors.relay_refused, 2);
        assert_eq!(paths[1].key, "GET /big");
        assert_eq!((paths[1].count, paths[1].errors.relay_refused), (0, 3));
        assert_eq!(paths[1].latency_ms, None);
        // Providers and events know nothing of refused requests.
        assert_eq!(r.sections[1].rows[0].errors.relay_refused, 0);
        assert_eq!(r.sections[1].rows.len(), 1);
        let mut no_paths = Aggregator::new(w, &[Dimension::Event], 10);
        no_paths.add_refused(&refused(3, Some("POST"), Some("/a"), 2));
        let r = no_paths.finish();
        assert_eq!(r.total.errors.relay_refused, 2);
        assert!(r.sections[0].rows.is_empty());
    }
}
