//! The request as an editable HTTP/1.1 message, for edit-and-replay in `$EDITOR`.
//!
//! ```text
//! POST /hooks/github HTTP/1.1
//! content-type: application/json
//! content-length: 17
//!
//! {"action":"push"}
//! ```
//!
//! A body that is not UTF-8 text cannot be edited in place: [`render`] then
//! writes an `X-Hooktunnel-Body-File: <path>` line (plus a `#` comment saying
//! so) and hands the bytes back for the caller to write to that path;
//! [`parse`] removes that line and reports the path in
//! [`EditedRequest::body_file`], so the caller reads the body from the file
//! (possibly edited with a hex editor) and calls [`EditedRequest::set_body`].
//!
//! Rules for the edited text: lines end in `\n` or `\r\n`; lines starting with
//! `#` before the body are comments; the head ends at the first empty line and
//! everything after it is the body, minus the one line ending [`render`] adds
//! after it (editors add a final newline on save, so this keeps the body
//! byte-exact when it is not touched). Content-Length, when present, is
//! recomputed; when absent, the sender adds it.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::exchange::{Exchange, Header};
use crate::sanitize;

/// The pseudo-header that points at the file holding a binary body.
pub const BODY_FILE_HEADER: &str = "X-Hooktunnel-Body-File";

/// A request as edited by the user, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditedRequest {
    /// HTTP method as written.
    pub method: String,
    /// Path and query as written.
    pub path: String,
    /// Headers in order, without the body-file pseudo-header.
    pub headers: Vec<Header>,
    /// Body bytes (empty when `body_file` is set).
    pub body: Bytes,
    /// Where to read the body from, when the message named a body file.
    pub body_file: Option<PathBuf>,
}

impl EditedRequest {
    /// Replaces the body (e.g. with the body file's contents) and updates
    /// any Content-Length header to match.
    pub fn set_body(&mut self, body: Bytes) {
        self.body = body;
        self.fix_content_length();
    }

    /// Sets every Content-Length header to the body's length.
    fn fix_content_length(&mut self) {
        let len = self.body.len().to_string().into_bytes();
        for h in &mut self.headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                h.value.clone_from(&len);
            }
        }
    }
}

/// Why an edited message could not be read; messages name the line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Nothing but blank and comment lines: treat as "cancelled".
    #[error("the message is empty")]
    Empty,
    /// The first line is not `METHOD /path [HTTP/1.1]`.
    #[error(
        "line {line_no}: bad request line \"{line}\": {reason} (expected `METHOD /path HTTP/1.1`)"
    )]
    BadRequestLine {
        /// 1-based line number.
        line_no: usize,
        /// The line, escaped for display.
        line: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header line that is not `name: value`.
    #[error("line {line_no}: bad header \"{line}\": {reason}")]
    BadHeader {
        /// 1-based line number.
        line_no: usize,
        /// The line, escaped for display.
        line: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Both a body file and an inline body.
    #[error(
        "the message has both an {BODY_FILE_HEADER} line and a body after the blank line; keep one"
    )]
    BodyConflict,
    /// More than one body file.
    #[error("{BODY_FILE_HEADER} given more than once")]
    DuplicateBodyFile,
}

/// Whether a body can be edited as text: UTF-8 without control characters
/// other than tab, line feed and carriage return.
pub fn is_text_body(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|s| {
        !s.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    })
}

/// Renders the exchange's request as an editable message.
///
/// Returns the text and, when the body is not text ([`is_text_body`]), the
/// body bytes for the caller to write to `binary_body_path` (the message then
/// names that path). Without a path, a binary body is left out and a comment
/// says so; the parsed message then has an empty body. Header values that are
/// not UTF-8 are converted lossily. A captured header named
/// [`BODY_FILE_HEADER`] is turned into a comment, so a sender cannot make the
/// replay read a local file.
pub fn render(ex: &Exchange, binary_body_path: Option<&Path>) -> (String, Option<Vec<u8>>) {
    let mut out = format!("{} {} HTTP/1.1\n", ex.method, ex.path);
    for h in &ex.request_headers {
        let value = String::from_utf8_lossy(&h.value).replace(['\r', '\n'], " ");
        let sep = if value.is_empty() { ":" } else { ": " };
        if h.name.eq_ignore_ascii_case(BODY_FILE_HEADER) {
            out.push_str("# captured header ignored: ");
        }
        out.push_str(&format!("{}{sep}{value}\n", h.name));
    }
    let body = &ex.request_body[..];
    if is_text_body(body) {
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(body));
        out.push('\n');
        return (out, None);
    }
    match binary_body_path {
        Some(path) => {
            let path = path.display();
            out.push_str(&format!("{BODY_FILE_HEADER}: {path}\n"));
            out.push_str(&format!(
                "# body: binary, {} bytes, kept in file {path} (edit that file to change it)\n",
                body.len()
            ));
        }
        None => out.push_str(&format!(
            "# body: binary, {} bytes, not included (it will be sent empty)\n",
            body.len()
        )),
    }
    out.push('\n');
    (out, Some(body.to_vec()))
}

/// Splits into lines, each without its `\n` or `\r\n`, with the byte offset
/// just past its line ending.
fn lines(input: &[u8]) -> impl Iterator<Item = (&[u8], usize, bool)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= input.len() {
            return None;
        }
        let rest = &input[pos..];
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], pos + i + 1),
            None => (rest, input.len()),
        };
        pos = next;
        let crlf = line.last() == Some(&b'\r');
        let line = if crlf { &line[..line.len() - 1] } else { line };
        Some((line, next, crlf))
    })
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads an edited message back. See the module docs for the rules.
pub fn parse(input: &[u8]) -> Result<EditedRequest, MessageError> {
    let mut it = lines(input)
        .enumerate()
        .map(|(i, (l, end, crlf))| (i + 1, l, end, crlf));

    // The request line: first line that is neither blank nor a comment.
    let (line_no, line, mut body_start, crlf) = loop {
        match it.next() {
            None => return Err(MessageError::Empty),
            Some((_, l, _, _)) if l.trim_ascii().is_empty() || l.starts_with(b"#") => {}
            Some(found) => break found,
        }
    };
    let bad_line = |reason| MessageError::BadRequestLine {
        line_no,
        line: sanitize::escape_bytes(line),
        reason,
    };
    let text = std::str::from_utf8(line).map_err(|_| bad_line("not UTF-8"))?;
    let mut parts = text.split_ascii_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(bad_line("missing method or path"));
    };
    if let Some(version) = parts.next()
        && !version.starts_with("HTTP/")
    {
        return Err(bad_line("the third word must be an HTTP version"));
    }
    if parts.next().is_some() {
        return Err(bad_line(
            "too many words (spaces in the path must be written %20)",
        ));
    }
    if !method.bytes().all(is_tchar) {
        return Err(bad_line("the method has characters a method cannot have"));
    }
    if !path.starts_with('/') && path != "*" {
        return Err(bad_line("the path must start with /"));
    }

    // Headers up to the first empty line.
    let mut headers = Vec::new();
    let mut body_file = None;
    let mut saw_blank = false;
    for (line_no, l, end, _) in it.by_ref() {
        body_start = end;
        if l.trim_ascii().is_empty() {
            saw_blank = true;
            break;
        }
        if l.starts_with(b"#") {
            continue;
        }
        let bad = |reason| MessageError::BadHeader {
            line_no,
            line: sanitize::escape_bytes(l),
            reason,
        };
        if l[0] == b' ' || l[0] == b'\t' {
            return Err(bad(
                "continuation lines are not supported; join it to the line above",
            ));
        }
        let colon = l
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("missing ':'"))?;
        let name = &l[..colon];
        if name.is_empty() || !name.iter().copied().all(is_tchar) {
            return Err(bad("the name has characters a header name cannot have"));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let value = l[colon + 1..].trim_ascii().to_vec();
        if name.eq_ignore_ascii_case(BODY_FILE_HEADER) {
            if body_file.is_some() {
                return Err(MessageError::DuplicateBodyFile);
            }
            body_file = Some(PathBuf::from(String::from_utf8_lossy(&value).into_owned()));
        } else {
            headers.push(Header { name, value });
        }
    }

    let mut body: &[u8] = if saw_blank { &input[body_start..] } else { &[] };
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    body = body.strip_suffix(eol).unwrap_or(body);
    if body_file.is_some() && !body.is_empty() {
        return Err(MessageError::BodyConflict);
    }
    let mut req = EditedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: Bytes::copy_from_slice(body),
        body_file,
    };
    if req.body_file.is_none() {
        req.fix_content_length();
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::super::fixtures::{binary_exchange, text_exchange};
    use super::*;

    fn expected_headers(ex: &Exchange, body_len: usize) -> Vec<Header> {
        ex.request_headers
            .iter()
            .map(|h| {
                if h.name == "content-length" {
                    Header::new(h.name.clone(), body_len.to_string())
                } else {
                    h.clone()
                }
            })
            .collect()
    }

    #[test]
    fn text_round_trip() {
        let ex = text_exchange();
        let (text, bin) = render(&ex, None);
        assert!(bin.is_none());
        assert!(
            text.starts_with("POST /hooks/github?x=1&y=[a] HTTP/1.1\nhost: demo.example.com\n")
        );
        let req = parse(text.as_bytes()).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, ex.path);
        assert_eq!(req.body, ex.request_body);
        assert_eq!(req.body_file, None);
        // content-length was "42" in the capture; it now matches the body.
        assert_eq!(req.headers, expected_headers(&ex, ex.request_body.len()));
    }

    #[test]
    fn body_without_final_newline_survives_editor_newline() {
        let mut ex = text_exchange();
        ex.request_body = Bytes::from_static(b"{\"a\":1}");
        let (text, _) = render(&ex, None);
        assert!(text.ends_with("\n\n{\"a\":1}\n"));
        assert_eq!(parse(text.as_bytes()).unwrap().body, ex.request_body);
        // An editor that does not add a newline: the body is still whole.
        let trimmed = text.trim_end_matches('\n');
        assert_eq!(parse(trimmed.as_bytes()).unwrap().body, ex.request_body);
    }

    #[test]
    fn empty_body_round_trip() {
        let mut ex = text_exchange();
        ex.method = "GET".into();
        ex.request_body = Bytes::new();
        let (text, bin) = render(&ex, None);
        assert!(bin.is_none());
        let req = parse(text.as_bytes()).unwrap();
        assert!(req.body.is_empty());
        assert_eq!(req.headers, expected_headers(&ex, 0));
    }

    #[test]
    fn crlf_lines_and_comments() {
        let msg = b"# edit and save\r\n\r\nPUT /x HTTP/1.1\r\nA: 1\r\n# note\r\nContent-Length: 99\r\n\r\nline1\r\nline2\r\n";
        let req = parse(msg).unwrap();
        assert_eq!(req.method, "PUT");
        assert_eq!(req.path, "/x");
        assert_eq!(
            req.headers,
            vec![Header::new("A", "1"), Header::new("Content-Length", "12")]
        );
        assert_eq!(&req.body[..], b"line1\r\nline2");
        // No version, no blank line, no body.
        let req = parse(b"DELETE /y\nX-A:  v  ").unwrap();
        assert_eq!(req.headers, vec![Header::new("X-A", "v")]);
        assert!(req.body.is_empty());
    }

    #[test]
    fn binary_body_goes_through_a_file() {
        let ex = binary_exchange();
        let path = Path::new("/tmp/ht body.bin");
        let (text, bin) = render(&ex, Some(path));
        assert_eq!(bin.as_deref(), Some(&ex.request_body[..]));
        assert!(text.contains("X-Hooktunnel-Body-File: /tmp/ht body.bin\n"));
        assert!(text.contains("# body: binary, 512 bytes, kept in file /tmp/ht body.bin"));
        let mut req = parse(text.as_bytes()).unwrap();
        assert_eq!(req.body_file.as_deref(), Some(path));
        assert!(req.body.is_empty());
        assert_eq!(req.headers, ex.request_headers);
        req.headers.push(Header::new("content-length", "0"));
        req.set_body(ex.request_body.clone());
        assert_eq!(req.body, ex.request_body);
        assert_eq!(req.headers.last().unwrap().value, b"512");

        let (text, bin) = render(&ex, None);
        assert!(bin.is_some());
        assert!(text.contains("not included"));
        assert!(parse(text.as_bytes()).unwrap().body.is_empty());
    }

    #[test]
    fn captured_body_file_header_is_neutralised() {
        let mut ex = text_exchange();
        ex.request_headers
            .push(Header::new("x-hooktunnel-body-file", "/etc/passwd"));
        let (text, _) = render(&ex, None);
        let req = parse(text.as_bytes()).unwrap();
        assert_eq!(req.body_file, None);
        assert!(
            !req.headers
                .iter()
                .any(|h| h.name == "x-hooktunnel-body-file")
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap_err(), MessageError::Empty);
        assert_eq!(
            parse(b"\n# only comments\n\n").unwrap_err(),
            MessageError::Empty
        );
        let e = parse(b"POST\n").unwrap_err();
        assert!(
            matches!(e, MessageError::BadRequestLine { line_no: 1, .. }),
            "{e}"
        );
        let e = parse(b"\nPOST /a b HTTP/1.1\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: bad request line"), "{e}");
        assert!(matches!(
            parse(b"POST hooks\n"),
            Err(MessageError::BadRequestLine { .. })
        ));
        assert!(matches!(
            parse(b"P(ST /\n"),
            Err(MessageError::BadRequestLine { .. })
        ));
        let e = parse(b"POST /\nno colon here\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: bad header \"no colon here\": missing ':'"
        );
        assert!(matches!(
            parse(b"POST /\nA: 1\n folded\n"),
            Err(MessageError::BadHeader { line_no: 3, .. })
        ));
        assert!(matches!(
            parse(b"POST /\nbad name: 1\n"),
            Err(MessageError::BadHeader { .. })
        ));
        let e = parse(b"POST /\nX-Hooktunnel-Body-File: /tmp/b\n\ninline\n").unwrap_err();
        assert_eq!(e, MessageError::BodyConflict);
        let e =
            parse(b"POST /\nX-Hooktunnel-Body-File: /a\nx-hooktunnel-body-file: /b\n").unwrap_err();
        assert_eq!(e, MessageError::DuplicateBodyFile);
        // Control characters in the offending line are escaped in the message.
        let e = parse(b"POST /\n\x1b[2J\n").unwrap_err();
        assert!(e.to_string().contains("\\e[2J"), "{e}");
    }

    proptest! {
        #[test]
        fn text_bodies_round_trip(body in "[\\PC\\t\\n\\r]{0,64}", crlf in any::<bool>()) {
            let mut ex = text_exchange();
            ex.request_body = Bytes::from(body.clone());
            let (text, bin) = render(&ex, None);
            prop_assert!(bin.is_none());
            let text = if crlf {
                // Convert only the head to CRLF, as an editor might for the whole
                // file; the body stays as captured.
                let (head, rest) = text.split_once("\n\n").unwrap();
                format!("{}\r\n\r\n{}\r\n", head.replace('\n', "\r\n"), &rest[..rest.len() - 1])
            } else {
                text
            };
            let req = parse(text.as_bytes()).unwrap();
            prop_assert_eq!(&req.body[..], body.as_bytes());
        }
    }
}
