//! `hooktunnel show`: one exchange in full.

use std::io::Write as _;

use anyhow::Context as _;

use crate::capture::Truncation;
use crate::cli::ShowArgs;
use crate::config::Paths;
use crate::exchange::{Exchange, Header, SignatureVerdict};
use crate::output;
use crate::sanitize;
use crate::store::Store;

/// Bodies longer than this are cut in the human view.
const SHOWN_BODY_BYTES: usize = 64 * 1024;

/// Runs `show`.
pub fn run(args: &ShowArgs, paths: &Paths) -> anyhow::Result<()> {
    let store = Store::open(&paths.db()).context("cannot open the history")?;
    let exchange = store.resolve(&args.id)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            crate::json::to_string_pretty(&crate::export::json(&exchange))?
        )?;
    } else {
        let mask = !args.reveal && crate::config::ConfigFile::masks_secrets(paths);
        out.write_all(render(&exchange, mask).as_bytes())?;
    }
    Ok(())
}

/// The section title and lines of `headers`; secret values masked when
/// `mask` (display only, see [`crate::mask`]).
fn push_headers(text: &mut String, title: &str, headers: &[Header], mask: bool) {
    let masked = if mask {
        headers
            .iter()
            .filter(|h| crate::mask::is_secret(&h.name))
            .count()
    } else {
        0
    };
    text.push_str(&format!("{title} headers ({})", headers.len()));
    if masked > 0 {
        text.push_str(&format!(" · {masked} masked, --reveal shows them"));
    }
    text.push('\n');
    for h in headers {
        let value = if mask {
            crate::mask::header_value(&h.name, &h.value)
        } else {
            std::borrow::Cow::Borrowed(h.value.as_slice())
        };
        text.push_str(&format!(
            "  {}: {}\n",
            sanitize::escape(&h.name),
            sanitize::escape_bytes(&value)
        ));
    }
}

fn push_body(text: &mut String, body: &[u8], truncated: Option<&Truncation>, degraded: bool) {
    if let Some(t) = truncated {
        text.push_str(&format!("  {}\n", crate::capture::note(t, degraded)));
        text.push_str(&format!("  sha256 {}\n", t.sha256));
    }
    if body.is_empty() {
        text.push_str(if truncated.is_some() {
            "  (no bytes kept)\n"
        } else {
            "  (empty body)\n"
        });
        return;
    }
    let shown = &body[..body.len().min(SHOWN_BODY_BYTES)];
    match std::str::from_utf8(shown) {
        Ok(s) if !s.contains('\0') => {
            for line in sanitize::escape_multiline(s).lines() {
                text.push_str(&format!("  {line}\n"));
            }
        }
        _ => text.push_str(&format!(
            "  (binary, {}; see `hooktunnel export <id> --format json` or `show --json`)\n",
            output::size(body.len() as u64)
        )),
    }
    if body.len() > shown.len() {
        text.push_str(&format!(
            "  … {} more not shown\n",
            output::size((body.len() - shown.len()) as u64)
        ));
    }
}

/// `signature: ✓ stripe (valid)` or `signature: ✗ stripe: <reason>`; `None`
/// when the exchange was not checked (`listen` without `--verify`).
pub fn signature_line(sig: Option<&SignatureVerdict>) -> Option<String> {
    let sig = sig?;
    Some(if sig.valid {
        format!("signature: ✓ {} (valid)", sanitize::escape(&sig.provider))
    } else {
        format!(
            "signature: ✗ {}: {}",
            sanitize::escape(&sig.provider),
            sanitize::escape(sig.reason.as_deref().unwrap_or("invalid"))
        )
    })
}

/// The human view of an exchange.
pub fn render(e: &Exchange, mask: bool) -> String {
    let mut text = format!(
        "{} {}  →  {}  in {:.1} ms\nid {}  received {}  from {}  via tunnel '{}'  to {}\n",
        sanitize::escape(&e.method),
        sanitize::escape(&e.path),
        e.status()
            .map_or_else(|| "no response".to_owned(), |s| s.to_string()),
        e.duration_ms(),
        e.id,
        output::timestamp(e.received_at_ms),
        e.peer.as_deref().unwrap_or(if e.replay_of.is_some() {
            "this machine (replay)"
        } else {
            "unknown"
        }),
        sanitize::escape(&e.tunnel),
        sanitize::escape(&e.target),
    );
    if let Some(of) = e.replay_of {
        text.push_str(&format!("replay of {of}\n"));
    }
    if let Some(err) = &e.error {
        text.push_str(&format!("error: {}\n", sanitize::escape(err)));
    }
    if let Some(why) = e.replay_refusal() {
        text.push_str(&format!("replay: refused ({why})\n"));
    }
    if let Some(line) = signature_line(e.signature.as_ref()) {
        text.push_str(&line);
        text.push('\n');
    }
    text.push('\n');
    push_headers(&mut text, "Request", &e.request_headers, mask);
    let websocket = crate::websocket::is_websocket(e);
    if websocket {
        // The bodies are the two directions' frames: shown as messages.
        for line in crate::websocket::describe(e) {
            text.push_str(&sanitize::escape(&line));
            text.push('\n');
        }
    } else {
        text.push_str(&format!(
            "Request body ({})\n",
            output::size(e.request_body.len() as u64)
        ));
        push_body(
            &mut text,
            &e.request_body,
            e.request_truncated.as_ref(),
            e.capture_degraded,
        );
    }
    if let Some(r) = &e.response {
        text.push('\n');
        push_headers(
            &mut text,
            &format!("Response {}", r.status),
            &r.headers,
            mask,
        );
        if websocket {
            return text;
        }
        text.push_str(&format!(
            "Response body ({})\n",
            output::size(r.body.len() as u64)
        ));
        push_body(&mut text, &r.body, r.truncated.as_ref(), e.capture_degraded);
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_truncated_body_says_how_much_was_kept_and_why_replay_is_refused() {
        let mut e = crate::store::tests::sample(1);
        e.request_body = bytes::Bytes::from_static(b"{\"head\":");
        e.request_truncated = Some(Truncation {
            total_bytes: 52 * 1024 * 1024,
            sha256: "ab".repeat(32),
            limit: 8,
        });
        let shown = render(&e, true);
        assert!(
            shown.contains("  truncated: 8 B of 52.0 MiB kept · sha256 abababababab…"),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("  sha256 {}", "ab".repeat(32))),
            "{shown}"
        );
        assert!(shown.contains("replay: refused (cannot replay"), "{shown}");
        assert!(shown.contains("--capture-max"), "{shown}");
        e.capture_degraded = true;
        let shown = render(&e, true);
        assert!(
            shown.contains("not kept: the history store fell behind"),
            "{shown}"
        );
    }

    #[test]
    fn secrets_are_masked_unless_revealed_and_the_record_keeps_them() {
        let mut e = crate::store::tests::sample(1);
        let token = "Bearer sk_live_0123456789abcdef3f9a";
        e.request_headers = vec![
            Header::new("authorization", token),
            Header::new("x-request-id", "abc"),
        ];
        let shown = render(&e, true);
        assert!(
            shown.contains("authorization: Bearer ••••••••3f9a"),
            "{shown}"
        );
        assert!(!shown.contains("sk_live"), "{shown}");
        assert!(shown.contains("x-request-id: abc"), "{shown}");
        assert!(
            shown.contains("Request headers (2) · 1 masked, --reveal shows them"),
            "{shown}"
        );
        let revealed = render(&e, false);
        assert!(revealed.contains(token), "{revealed}");
        assert_eq!(e.request_headers[0].value, token.as_bytes(), "display only");
    }
}
