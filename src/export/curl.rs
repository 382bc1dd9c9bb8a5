//! A bash command that re-sends an exchange's request with curl, byte for byte.

use std::path::Path;

use hooktunnel_protocol as protocol;

use crate::exchange::Exchange;
use crate::sanitize;

use super::join_url;

/// A generated curl command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurlExport {
    /// The bash command (may span lines with `\` continuations), ending in a
    /// newline. It contains no raw control characters other than line feeds
    /// and tabs inside a quoted body, so it is safe to print.
    pub script: String,
    /// True when the command reads the body from the `body_file` given to
    /// [`curl`]; the caller must write the exact request body there.
    pub needs_body_file: bool,
}

/// Builds a bash command that sends the exchange's request to `base_url`
/// (the exchange's path is appended verbatim, see [`join_url`]).
///
/// - `--globoff --path-as-is` keep `[]{}` and `..` in the path as captured;
/// - `-X METHOD` (`--head` for a body-less HEAD);
/// - one `-H` per header, in order, duplicates kept; hop-by-hop headers
///   (and any named in `Connection`), `host` and `content-length` are left
///   to curl; headers curl would add on its own (`Accept`, `User-Agent`,
///   `Content-Type`, `Expect`) are suppressed when the original lacked them;
/// - the body: a single-quoted literal when it is UTF-8 text with no control
///   characters other than newline and tab; `$'…'` ANSI-C quoting when it is
///   UTF-8 with other controls but no NUL; otherwise `--data-binary @FILE`
///   when `body_file` is given (`needs_body_file`), or else a `printf` of the
///   bytes piped into `--data-binary @-`.
///
/// Header values that contain a NUL byte cannot be passed on a command line
/// and are truncated there by bash.
pub fn curl(ex: &Exchange, base_url: &str, body_file: Option<&Path>) -> CurlExport {
    let body = &ex.request_body[..];
    let has = |name: &str| {
        ex.request_headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    let tokens = protocol::connection_tokens(&ex.request_headers);

    let mut args: Vec<String> = vec!["curl".into(), "--globoff".into(), "--path-as-is".into()];
    if ex.method.eq_ignore_ascii_case("HEAD") && body.is_empty() {
        args.push("--head".into());
    } else {
        args.push("-X".into());
        args.push(quote(ex.method.as_bytes()));
    }

    // Without a body curl adds no Content-Type or Expect, so only these two.
    let mut suppress = vec!["Accept", "User-Agent"];
    let sends_body = !body.is_empty() || has("content-length");
    if sends_body {
        suppress.extend(["Content-Type", "Expect"]);
    }
    for name in suppress {
        if !has(name) {
            args.push("-H".into());
            args.push(quote_always(format!("{name}:").as_bytes()));
        }
    }
    for h in &ex.request_headers {
        if is_dropped(&h.name, &tokens) {
            continue;
        }
        let mut line = h.name.clone().into_bytes();
        if h.value.iter().all(u8::is_ascii_whitespace) {
            // `name:` alone would remove the header; `name;` sends it empty.
            line.push(b';');
        } else {
            line.extend_from_slice(b": ");
            line.extend_from_slice(&h.value);
        }
        args.push("-H".into());
        args.push(quote_always(&line));
    }

    let mut prefix = String::new();
    let mut needs_body_file = false;
    if sends_body {
        args.push("--data-binary".into());
        match std::str::from_utf8(body) {
            Ok(text) if !text.contains('\0') => args.push(quote_multiline(text)),
            _ => match body_file {
                Some(path) => {
                    let mut arg = b"@".to_vec();
                    arg.extend_from_slice(path.as_os_str().as_encoded_bytes());
                    args.push(quote_always(&arg));
                    needs_body_file = true;
                }
                None => {
                    prefix = format!("printf -- {} |\n  ", printf_format(body));
                    args.push("@-".into());
                }
            },
        }
    }
    args.push(quote_always(join_url(base_url, &ex.path).as_bytes()));

    let mut script = String::new();
    if let Some(t) = &ex.request_truncated {
        // Comments, so the script still runs; the CLI refuses outright.
        script.push_str(&format!(
            "# hooktunnel: WARNING: the request body was captured only in part ({}).\n# This command sends only the kept head, not the original request.\n",
            crate::sanitize::escape(&crate::capture::note(t, ex.capture_degraded))
        ));
    }
    script.push_str(&prefix);
    script.push_str(&args_to_lines(&args));
    script.push('\n');
    CurlExport {
        script,
        needs_body_file,
    }
}

/// Whether curl must not be given header `name`: hop-by-hop headers (the
/// protocol's one list, plus those named in `Connection`), and the ones curl
/// writes itself.
fn is_dropped(name: &str, connection_tokens: &[String]) -> bool {
    protocol::is_hop_by_hop(name, connection_tokens)
        || name.eq_ignore_ascii_case("host")
        || name.eq_ignore_ascii_case("content-length")
}

/// `curl -X POST \` + newline + indented option/value pairs.
fn args_to_lines(args: &[String]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < args.len() {
        if i > 0 {
            out.push_str(" \\\n  ");
        }
        out.push_str(&args[i]);
        let takes_value = matches!(args[i].as_str(), "-X" | "-H" | "--data-binary");
        if takes_value && i + 1 < args.len() {
            out.push(' ');
            out.push_str(&args[i + 1]);
            i += 1;
        } else if i == 0 {
            // Keep the fixed flags on the first line with `curl`.
            while i + 1 < args.len() && matches!(args[i + 1].as_str(), "--globoff" | "--path-as-is")
            {
                out.push(' ');
                out.push_str(&args[i + 1]);
                i += 1;
            }
        }
        i += 1;
    }
    out
}

/// Characters that need no quoting in a bash word.
fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_./:@%+=,-".contains(&b)
}

/// Quotes bytes as one bash word: bare when safe, single quotes for plain
/// text, `$'…'` when there are control characters or invalid UTF-8.
fn quote(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().copied().all(is_bare) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    quote_always(bytes)
}

/// Like [`quote`] but never bare, so header arguments read uniformly.
fn quote_always(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(sanitize::needs_escape) => single_quote(s),
        _ => ansi_c_quote(bytes),
    }
}

/// Quotes a body: single quotes keep newlines and tabs literal for
/// readability; anything else unusual goes through `$'…'`.
fn quote_multiline(text: &str) -> String {
    let plain = !text
        .chars()
        .any(|c| c != '\n' && c != '\t' && sanitize::needs_escape(c));
    if plain {
        single_quote(text)
    } else {
        ansi_c_quote(text.as_bytes())
    }
}

fn single_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `$'…'` with printable text literal and every other byte as `\xHH`.
fn ansi_c_quote(bytes: &[u8]) -> String {
    let mut out = String::from("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str(r"\\"),
                '\'' => out.push_str(r"\'"),
                '\n' => out.push_str(r"\n"),
                '\t' => out.push_str(r"\t"),
                '\r' => out.push_str(r"\r"),
                c if sanitize::needs_escape(c) => push_hex(&mut out, c.to_string().as_bytes()),
                c => out.push(c),
            }
        }
        push_hex(&mut out, chunk.invalid());
    }
    out.push('\'');
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push_str(&format!("\\x{b:02x}"));
    }
}

/// A single-quoted `printf` format that prints exactly `bytes` (NULs included).
fn printf_format(bytes: &[u8]) -> String {
    let mut out = String::from("'");
    for &b in bytes {
        match b {
            b'%' => out.push_str("%%"),
            b'\\' => out.push_str(r"\\"),
            b'\'' => out.push_str(r"'\''"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => push_hex(&mut out, &[b]),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::exchange::Header;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::process::Command;
    use std::time::Duration;

    use bytes::Bytes;

    use super::super::fixtures::{binary_exchange, text_exchange};
    use super::*;

    /// What the test server saw.
    struct Received {
        request_line: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    }

    /// Serves one request on loopback, runs `script` (with `URL` replaced by
    /// the server's base URL) in bash and returns what arrived.
    fn run_against_server(ex: &Exchange, body_file: Option<&Path>) -> (CurlExport, Received) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed before end of head");
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let request_line = lines.next().unwrap().to_owned();
            let headers: Vec<(String, Vec<u8>)> = buf[..head_end]
                .split(|&b| b == b'\n')
                .skip(1)
                .map(|l| {
                    let l = l.strip_suffix(b"\r").unwrap_or(l);
                    let colon = l.iter().position(|&b| b == b':').unwrap();
                    let value = &l[colon + 1..];
                    let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
                    (
                        String::from_utf8(l[..colon].to_vec())
                            .unwrap()
                            .to_ascii_lowercase(),
                        value[start..].to_vec(),
                    )
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap());
            let mut body = buf[head_end + 4..].to_vec();
            while body.len() < len {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed before end of body");
                body.extend_from_slice(&chunk[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .unwrap();
            Received {
                request_line,
                headers,
                body,
            }
        });
        let export = curl(ex, &base, body_file);
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail\n{}", export.script))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "script failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            export.script
        );
        assert_eq!(out.stdout, b"ok");
        (export, server.join().unwrap())
    }

    /// The headers curl should have sent, excluding `host`/`content-length`.
    fn expected_headers(ex: &Exchange) -> Vec<(String, Vec<u8>)> {
        ex.request_headers
            .iter()
            .filter(|h| !["host", "content-length", "connection"].contains(&h.name.as_str()))
            .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
            .collect()
    }

    fn assert_same_request(ex: &Exchange, got: &Received) {
        assert_eq!(
            got.request_line,
            format!("{} {} HTTP/1.1", ex.method, ex.path)
        );
        let sent: Vec<_> = got
            .headers
            .iter()
            .filter(|(n, _)| n != "host" && n != "content-length")
            .cloned()
            .collect();
        assert_eq!(sent, expected_headers(ex));
        assert_eq!(got.body, ex.request_body);
        let cl = got.headers.iter().find(|(n, _)| n == "content-length");
        assert_eq!(
            cl.map(|(_, v)| v.clone()),
            Some(ex.request_body.len().to_string().into_bytes())
        );
    }

    /// Runs the export against a server: the script is printable and
    /// reproduces `ex` byte for byte.
    fn reproduces(ex: &Exchange, body_file: Option<&Path>) -> CurlExport {
        let (export, got) = run_against_server(ex, body_file);
        assert_printable(&export.script);
        assert_same_request(ex, &got);
        export
    }

    fn assert_printable(script: &str) {
        assert!(
            !script
                .chars()
                .any(|c| c != '\n' && c != '\t' && sanitize::needs_escape(c)),
            "{script:?}"
        );
    }

    #[test]
    fn text_body_round_trips() {
        let ex = text_exchange();
        let export = reproduces(&ex, None);
        assert!(!export.needs_body_file);
        assert!(
            export
                .script
                .starts_with("curl --globoff --path-as-is \\\n  -X POST \\\n")
        );
        assert!(export.script.contains("-H 'x-empty;'"));
        assert!(export.script.contains("-H 'Accept:'"));
        assert!(!export.script.contains("-H 'User-Agent:'"));
        assert!(!export.script.contains("connection"));
        assert!(export.script.contains("--data-binary '{\"ref\""));
    }

    #[test]
    fn text_body_with_controls_uses_ansi_c_quoting() {
        let mut ex = text_exchange();
        ex.request_body =
            Bytes::from_static(b"a=1\r\nb='2' \\x41 \x1b[31m\x7f\xc2\x85 \xe2\x80\xae end");
        ex.request_headers
            .push(Header::new("x-raw", b"caf\xe9\tx".to_vec()));
        let export = reproduces(&ex, None);
        assert!(export.script.contains("--data-binary $'a=1\\r\\nb=\\'2\\'"));
    }

    #[test]
    fn binary_body_with_file() {
        let ex = binary_exchange();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body 'one'.bin");
        std::fs::write(&path, &ex.request_body).unwrap();
        let export = reproduces(&ex, Some(&path));
        assert!(export.needs_body_file);
        assert!(export.script.contains("--data-binary '@"));
        assert!(export.script.contains("-H 'Expect:'"));
        assert!(!export.script.contains("-H 'Accept:'"));
    }

    #[test]
    fn binary_body_without_file_uses_printf() {
        let ex = binary_exchange();
        let export = reproduces(&ex, None);
        assert!(!export.needs_body_file);
        assert!(export.script.starts_with("printf -- '\\x00"));
    }

    #[test]
    fn get_without_body() {
        let mut ex = text_exchange();
        ex.method = "GET".into();
        ex.path = "/status".into();
        ex.request_body = Bytes::new();
        ex.request_headers
            .retain(|h| h.name != "content-type" && h.name != "content-length");
        let (export, got) = run_against_server(&ex, None);
        assert!(!export.script.contains("--data-binary"));
        assert!(!export.script.contains("Content-Type:"));
        assert_eq!(got.request_line, "GET /status HTTP/1.1");
        let sent: Vec<_> = got
            .headers
            .into_iter()
            .filter(|(n, _)| n != "host")
            .collect();
        assert_eq!(sent, expected_headers(&ex));
        assert!(got.body.is_empty());
    }

    #[test]
    fn connection_named_headers_are_dropped() {
        let mut ex = text_exchange();
        ex.request_headers = vec![
            Header::new("Connection", "close, X-Hop"),
            Header::new("x-hop", "secret"),
            Header::new("transfer-encoding", "chunked"),
            Header::new("x-keep", "1"),
        ];
        let script = curl(&ex, "http://h", None).script;
        assert!(!script.to_ascii_lowercase().contains("x-hop"));
        assert!(!script.contains("chunked"));
        assert!(script.contains("-H 'x-keep: 1'"));
        assert!(script.ends_with("'http://h/hooks/github?x=1&y=[a]'\n"));
    }

    #[test]
    fn head_uses_head_flag() {
        let mut ex = text_exchange();
        ex.method = "HEAD".into();
        ex.request_body = Bytes::new();
        ex.request_headers.clear();
        let script = curl(&ex, "http://h", None).script;
        assert!(script.contains("--head"));
        assert!(!script.contains("-X"));
    }
}
