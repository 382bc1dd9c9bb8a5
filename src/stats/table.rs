//! The text rendering of a [`Report`]: a summary line, then one table per
//! section with a sparkline per row. Pure: returns lines.

use super::report::{Latency, Report, Row, Section};
use crate::sanitize;

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One sparkline character per bucket, scaled to the largest; empty buckets are spaces.
pub fn sparkline(counts: &[u64]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&n| match n {
            0 => ' ',
            n => {
                let level = ((n as f64 / max as f64) * (SPARKS.len() - 1) as f64).round() as usize;
                SPARKS[level.min(SPARKS.len() - 1)]
            }
        })
        .collect()
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.1}ms")
    }
}

fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p >= 99.95 || p == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn latency_cells(l: Option<Latency>) -> [String; 3] {
    match l {
        Some(l) => [ms(l.p50), ms(l.p95), ms(l.p99)],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

fn notes(row: &Row) -> String {
    let mut parts: Vec<String> = row
        .errors
        .nonzero()
        .into_iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if row.queued > 0 {
        parts.push(format!("queued {}", row.queued));
    }
    if row.retried > 0 {
        parts.push(format!("retried {}", row.retried));
    }
    if row.replays > 0 {
        parts.push(format!("replays {}", row.replays));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// The one-line summary of the whole window.
pub fn summary_line(report: &Report, label: &str) -> String {
    let t = &report.total;
    if t.count == 0 {
        // Only refusals: no exchange to rate or time.
        return format!("0 requests {label} · {}", notes(t));
    }
    let [p50, p95, p99] = latency_cells(t.latency_ms);
    format!(
        "{} requests {label} · {} ok · p50 {p50} · p95 {p95} · p99 {p99} · {}",
        t.count,
        percent(t.success_rate),
        notes(t)
    )
}

/// Cells of one row; the key is escaped (it comes from captured traffic).
fn cells(row: &Row) -> Vec<String> {
    let [p50, p95, p99] = latency_cells(row.latency_ms);
    vec![
        sanitize::escape(&row.key).into_owned(),
        row.count.to_string(),
        // A path seen only in the relay's refusals has no exchanges to rate.
        if row.count == 0 {
            "-".into()
        } else {
            percent(row.success_rate)
        },
        row.status.s2xx.to_string(),
        row.status.s3xx.to_string(),
        row.status.s4xx.to_string(),
        (row.status.s5xx + row.status.none).to_string(),
        p50,
        p95,
        p99,
        sparkline(&row.spark),
        notes(row),
    ]
}

/// One section as aligned lines (heading first).
pub fn section_lines(section: &Section, color: bool) -> Vec<String> {
    let head: Vec<String> = [
        section.by.title(),
        "COUNT",
        "OK",
        "2XX",
        "3XX",
        "4XX",
        "5XX",
        "P50",
        "P95",
        "P99",
        "ACTIVITY",
        "ERRORS",
    ]
    .map(str::to_owned)
    .to_vec();
    let body: Vec<Vec<String>> = section.rows.iter().map(cells).collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            std::iter::once(&head)
                .chain(&body)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let last = head.len() - 1;
    let line = |cells: &[String], row: Option<&Row>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let text = match (i, row) {
                (2, Some(r)) if r.count == 0 => cell.clone(),
                (2, Some(r)) if r.success_rate < 0.95 => paint(color, "31", cell),
                (2, Some(_)) => paint(color, "32", cell),
                (11, Some(r)) if cell != "-" && (r.ok < r.count || r.errors.relay_refused > 0) => {
                    paint(color, "31", cell)
                }
                _ => cell.clone(),
            };
            if i == 0 || i == 10 || i == last {
                out.push_str(&text);
                if i != last {
                    out.push_str(&" ".repeat(pad));
                }
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&text);
            }
            if i != last {
                out.push_str("  ");
            }
        }
        out.trim_end().to_owned()
    };
    let mut lines = vec![paint(color, "1", &line(&head, None))];
    for (cells, row) in body.iter().zip(&section.rows) {
        lines.push(line(cells, Some(row)));
    }
    if section.omitted > 0 {
        lines.push(format!("… and {} more (use --top)", section.omitted));
    }
    lines
}

/// The whole report as lines.
pub fn render(report: &Report, label: &str, color: bool) -> Vec<String> {
    let mut lines = vec![summary_line(report, label)];
    for section in &report.sections {
        lines.push(String::new());
        lines.extend(section_lines(section, color));
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::stats::derive::Cause;
    use crate::stats::report::{Aggregator, Dimension, RefusedSample, Sample, Window};

    #[test]
    fn sparkline_scales_to_the_largest() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8]), " ▂▃▅█");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[0, 0]), "  ");
    }

    #[test]
    fn table_is_aligned_and_plain_without_color() {
        let mut agg = Aggregator::new(Window::new(0, 40, 4), &[Dimension::Path], 10);
        for (t, path, status, cause) in [
            (1, "/orders/:n", 200, None),
            (11, "/orders/:n", 200, None),
            (21, "/orders/:n", 502, Some(Cause::Unreachable)),
            (31, "/a\x1b[31m", 404, None),
        ] {
            agg.add(&Sample {
                received_at_ms: t,
                method: "POST",
                path_pattern: path,
                provider: None,
                event_type: None,
                status: Some(status),
                duration_us: 12_000,
                cause,
                sig_valid: None,
                queued: false,
                replay: t == 31,
                retried: t == 11,
            });
        }
        agg.add_refused(&RefusedSample {
            received_at_ms: 5,
            method: Some("PUT"),
            path_pattern: Some("/big"),
            count: 2,
        });
        let lines = render(&agg.finish(), "in the last 1h", false);
        insta::assert_snapshot!(lines.join("\n"), @r"
        4 requests in the last 1h · 75.0% ok · p50 12ms · p95 12ms · p99 12ms · unreachable 1, relay refused 2, retried 1, replays 1

        PATH             COUNT     OK  2XX  3XX  4XX  5XX   P50   P95   P99  ACTIVITY  ERRORS
        POST /orders/:n      3  66.7%    2    0    0    1  12ms  12ms  12ms  ███       unreachable 1, retried 1
        POST /a\e[31m        1   100%    0    0    1    0  12ms  12ms  12ms     █      replays 1
        PUT /big             0      -    0    0    0    0     -     -     -            relay refused 2
        ");
        assert!(!lines.concat().contains('\x1b'));
    }
}
