//! Plain output for non-terminal use: one aligned log line or one JSON
//! object per event. Captured text is escaped before printing.

use std::io::Write;

use crate::event::{AgentEvent, ConnectionState, Ready};
use crate::exchange::ExchangeSummary;
use crate::sanitize;

/// How events are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned human-readable lines.
    Lines {
        /// Use ANSI colour.
        color: bool,
    },
    /// NDJSON on stdout.
    Json,
}

/// True when colour should be used on stdout (a terminal, and `NO_COLOR` unset).
pub fn color_enabled(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `1 header`, `2 headers`: a count with the right form of its noun.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Human-readable byte size.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b if b < 1024 * 1024 * 1024 => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        b => format!("{:.1} GiB", b as f64 / (1024.0 * 1024.0 * 1024.0)),
    }
}

/// The time zone times are shown in: the system's (`TZ`, else
/// `/etc/localtime`; UTC when neither can be read). Unit tests always use
/// UTC so their output does not depend on the machine.
pub fn local_zone() -> jiff::tz::TimeZone {
    if cfg!(test) {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    }
}

fn zoned(ms: u64, tz: &jiff::tz::TimeZone) -> jiff::ZonedDateTime {
    let ts = i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned_datetime(tz.clone())
}

/// Local wall-clock `HH:MM:SS` for a Unix-ms time, as in list lines and the
/// inspector (see [`local_zone`]).
pub fn clock(ms: u64) -> String {
    clock_in(ms, &local_zone())
}

/// `HH:MM:SS` for a Unix-ms time in `tz`.
pub fn clock_in(ms: u64, tz: &jiff::tz::TimeZone) -> String {
    zoned(ms, tz).strftime("%H:%M:%S").to_string()
}

/// Local date, time and zone for a Unix-ms time, e.g. `2023-11-14 22:13:20 UTC`
/// (`show`: the zone is named so a copied line is unambiguous).
pub fn timestamp(ms: u64) -> String {
    timestamp_in(ms, &local_zone())
}

/// [`timestamp`] in `tz`.
pub fn timestamp_in(ms: u64, tz: &jiff::tz::TimeZone) -> String {
    zoned(ms, tz).strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// ANSI colour for a status class.
pub fn status_color(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "32",
        Some(300..=399) => "36",
        Some(400..=499) => "33",
        Some(_) => "31",
        None => "31",
    }
}

/// The widest a tunnel name is shown in a list; longer ones are cut with `…`.
pub const TUNNEL_WIDTH: usize = 16;

/// The width of a tunnel column for `rows`: `None` when they all came
/// through one tunnel (the column would say nothing), else the widest name
/// up to [`TUNNEL_WIDTH`].
pub fn tunnel_column(rows: &[ExchangeSummary]) -> Option<usize> {
    let first = &rows.first()?.tunnel;
    if rows.iter().all(|r| &r.tunnel == first) {
        return None;
    }
    rows.iter()
        .map(|r| sanitize::escape(&r.tunnel).chars().count())
        .max()
        .map(|w| w.min(TUNNEL_WIDTH))
}

/// `name` escaped, cut to `width` characters (the last one `…`) and padded.
fn tunnel_cell(name: &str, width: usize) -> String {
    let name = sanitize::escape(name);
    let cut: String = if name.chars().count() > width {
        let mut c: String = name.chars().take(width.saturating_sub(1)).collect();
        c.push('…');
        c
    } else {
        name.into_owned()
    };
    format!("{cut:<width$}")
}

/// One log line for an exchange.
pub fn exchange_line(s: &ExchangeSummary, color: bool) -> String {
    exchange_line_in(s, color, None)
}

/// One log line for an exchange, with its tunnel after the time when
/// `tunnel_width` is given (see [`tunnel_column`]).
pub fn exchange_line_in(s: &ExchangeSummary, color: bool, tunnel_width: Option<usize>) -> String {
    let status = s.status.map_or_else(|| "---".to_owned(), |c| c.to_string());
    let tunnel = tunnel_width.map_or_else(String::new, |w| {
        format!("{}  ", paint(color, "36", &tunnel_cell(&s.tunnel, w)))
    });
    let mut line = format!(
        "{}  {tunnel}{:<7} {:<40} {} {:>8.1}ms  {:>9} → {:<9}  {}",
        clock(s.received_at_ms),
        sanitize::escape(&s.method),
        sanitize::escape(&s.path),
        paint(color, status_color(s.status), &status),
        s.duration_ms,
        size(s.request_bytes),
        size(s.response_bytes),
        paint(color, "2", &s.id.to_string()),
    );
    if s.queued {
        line.push_str(&paint(color, "35", "  [queued while offline]"));
    }
    if let Some(sig) = &s.signature {
        let verdict = if sig.valid {
            paint(color, "32", &format!("  ✓ {}", sig.provider))
        } else {
            let reason = sig.reason.as_deref().unwrap_or("invalid");
            paint(
                color,
                "31",
                &format!("  ✗ {}: {}", sig.provider, sanitize::escape(reason)),
            )
        };
        line.push_str(&verdict);
    }
    if let Some(err) = &s.error {
        line.push_str(&paint(color, "31", &format!("  {}", sanitize::escape(err))));
    }
    line
}

/// The JSON object for an exchange event: the `requests --json` row
/// ([`crate::export::summary_json`]) with `"event": "exchange"`.
pub fn exchange_json(s: &ExchangeSummary) -> serde_json::Value {
    let mut row = crate::export::summary_json(s);
    if let serde_json::Value::Object(fields) = &mut row {
        fields.insert("event".into(), "exchange".into());
    }
    row
}

fn ready_json(r: &Ready) -> serde_json::Value {
    serde_json::json!({
        "event": "ready",
        "public_url": r.public_url,
        "target": r.target,
        "relay": r.relay,
        "embedded": r.embedded,
        "web_url": r.web_url,
        "more": r.more.iter().map(|t| serde_json::json!({
            "name": t.name,
            "public_url": t.public_url,
            "target": t.target,
        })).collect::<Vec<_>>(),
    })
}

/// One NDJSON line, with terminal-safe strings (C1 controls escaped; see
/// [`crate::json`]), since `jq` prints decoded strings to a terminal.
fn json_line(out: &mut impl Write, value: &serde_json::Value) -> std::io::Result<()> {
    crate::json::to_writer(&mut *out, value)?;
    writeln!(out)
}

/// Prints one event to `out` (and connection news to `err`).
pub fn print_event(
    format: Format,
    event: &AgentEvent,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<()> {
    match (format, event) {
        (Format::Json, AgentEvent::Ready(r)) => json_line(out, &ready_json(r))?,
        (Format::Json, AgentEvent::Exchange(s)) => json_line(out, &exchange_json(s))?,
        (Format::Json, AgentEvent::Connection(state)) => json_line(out, &connection_json(state))?,
        (Format::Lines { color }, AgentEvent::Ready(r)) => {
            let more = r.more.iter().map(|t| (&t.public_url, &t.target));
            for (public_url, target) in std::iter::once((&r.public_url, &r.target)).chain(more) {
                writeln!(
                    out,
                    "{} {}  →  {}",
                    paint(color, "1;32", "Forwarding"),
                    paint(color, "1", public_url),
                    target
                )?;
            }
            writeln!(
                out,
                "Requests appear below; replay any with `hooktunnel replay <id>`. Ctrl-C stops."
            )?;
        }
        (Format::Lines { color }, AgentEvent::Exchange(s)) => {
            writeln!(out, "{}", exchange_line(s, color))?;
        }
        (Format::Lines { color }, AgentEvent::Connection(state)) => {
            writeln!(err, "{}", connection_line(state, color))?;
        }
        (Format::Lines { color }, AgentEvent::Notice(text)) => {
            writeln!(err, "{}", paint(color, "33", &sanitize::escape(text)))?;
        }
        (Format::Json, AgentEvent::Notice(text)) => {
            json_line(
                out,
                &serde_json::json!({"event": "notice", "message": text}),
            )?;
        }
    }
    out.flush()
}

fn connection_json(state: &ConnectionState) -> serde_json::Value {
    match state {
        ConnectionState::Online => serde_json::json!({"event": "connection", "state": "online"}),
        ConnectionState::Reconnecting {
            attempt,
            retry_at,
            reason,
        } => {
            let in_ms = retry_at
                .duration_since(std::time::SystemTime::now())
                .map_or(0, |d| d.as_millis() as u64);
            serde_json::json!({"event": "connection", "state": "reconnecting", "attempt": attempt, "retry_in_ms": in_ms, "reason": reason})
        }
        ConnectionState::Offline(reason) => {
            serde_json::json!({"event": "connection", "state": "offline", "reason": reason})
        }
    }
}

/// One line describing a connection change.
pub fn connection_line(state: &ConnectionState, color: bool) -> String {
    match state {
        ConnectionState::Online => paint(color, "32", "● online: connected to the relay"),
        ConnectionState::Reconnecting {
            attempt,
            retry_at,
            reason,
        } => {
            let secs = retry_at
                .duration_since(std::time::SystemTime::now())
                .map_or(0.0, |d| d.as_secs_f64());
            paint(
                color,
                "33",
                &format!("◌ reconnecting: {reason}; attempt {attempt} in {secs:.1}s"),
            )
        }
        ConnectionState::Offline(reason) => paint(color, "31", &format!("○ offline: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MS: u64 = 1_700_000_000_123; // 2023-11-14 22:13:20.123 UTC

    #[test]
    fn json_lines_escape_c1_controls() {
        // U+009B is CSI for a terminal that honours C1: `jq -r` would print it raw.
        let event = AgentEvent::Notice("evil \u{9b}31m red \u{1b}[0m".into());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print_event(Format::Json, &event, &mut out, &mut err).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.contains("\\u009b31m") && line.contains("\\u001b[0m"),
            "{line}"
        );
        assert!(!line.trim_end().chars().any(char::is_control), "{line:?}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["message"], "evil \u{9b}31m red \u{1b}[0m");
    }

    #[test]
    fn times_are_shown_in_the_given_zone() {
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(clock_in(MS, &utc), "22:13:20");
        assert_eq!(timestamp_in(MS, &utc), "2023-11-14 22:13:20 UTC");
        let plus2 = jiff::tz::TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(clock_in(MS, &plus2), "00:13:20");
        assert!(timestamp_in(MS, &plus2).starts_with("2023-11-15 00:13:20 "));
        let paris = jiff::tz::TimeZone::get("Europe/Paris");
        if let Ok(paris) = paris {
            // Winter: one hour ahead; the zone's own name is shown.
            assert_eq!(timestamp_in(MS, &paris), "2023-11-14 23:13:20 CET");
        }
    }

    #[test]
    fn list_lines_use_the_same_clock() {
        let mut s = crate::export::fixtures::text_exchange().summary();
        s.received_at_ms = MS;
        assert!(exchange_line(&s, false).starts_with("22:13:20  POST"));
        assert_eq!(clock(MS), "22:13:20", "unit tests show UTC");
    }

    #[test]
    fn list_lines_name_the_tunnel_only_among_several() {
        let mut a = crate::export::fixtures::text_exchange().summary();
        a.received_at_ms = MS;
        let mut b = a.clone();
        assert_eq!(tunnel_column(&[]), None);
        assert_eq!(tunnel_column(&[a.clone(), b.clone()]), None);
        b.tunnel = "payments-sandbox-eu".into();
        assert_eq!(tunnel_column(&[a.clone(), b.clone()]), Some(TUNNEL_WIDTH));
        b.tunnel = "shop".into();
        let w = tunnel_column(&[a.clone(), b.clone()]);
        assert_eq!(w, Some(4), "demo and shop");
        assert!(exchange_line_in(&a, false, w).starts_with("22:13:20  demo  POST"));
        assert!(exchange_line_in(&b, false, w).starts_with("22:13:20  shop  POST"));
        b.tunnel = "payments-sandbox-eu".into();
        assert!(
            exchange_line_in(&b, false, Some(8)).starts_with("22:13:20  payment…  POST"),
            "{}",
            exchange_line_in(&b, false, Some(8))
        );
    }
}
