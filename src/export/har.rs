//! HAR 1.2 (HTTP Archive) export, for browser dev tools, Postman, Insomnia
//! and HAR viewers.

use base64::prelude::*;
use serde_json::{Map, Value, json};

use crate::capture::Truncation;
use crate::exchange::{Exchange, Header};

use super::{join_url, rfc3339_ms};

/// Renders exchanges as a HAR 1.2 document, one entry per exchange in the
/// given order (HAR tools expect chronological order: oldest first).
///
/// The request URL is the local target plus the path (where it was
/// forwarded). Bodies that are UTF-8 go in `text`; others are base64 with
/// `encoding: "base64"` (also on `postData`, a common extension). An
/// exchange without a response gets status 0 and an empty content, as
/// browsers record failed requests. hooktunnel's own fields ride along as
/// `_id`, `_tunnel`, `_error`, `_replayOf`, `_queued`, `_peer`, `_publicUrl`
/// and `_signature`. Header values that are not UTF-8 are converted lossily.
/// A body the history holds only in part keeps its whole size in `size` /
/// `bodySize`, its head in `text`, and says so in `comment` and `_truncated`.
pub fn har(exchanges: &[Exchange]) -> Value {
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "hooktunnel", "version": env!("CARGO_PKG_VERSION") },
            "entries": exchanges.iter().map(entry).collect::<Vec<_>>(),
        }
    })
}

fn entry(ex: &Exchange) -> Value {
    let time = ex.duration_ms();
    let mut e = json!({
        "startedDateTime": rfc3339_ms(ex.received_at_ms),
        "time": time,
        "request": request(ex),
        "response": response(ex),
        "cache": {},
        "timings": { "send": 0, "wait": time, "receive": 0 },
        "_id": ex.id.to_string(),
        "_tunnel": ex.tunnel,
        "_queued": ex.queued,
    });
    let mut extra = Map::new();
    if let Some(err) = &ex.error {
        extra.insert("_error".into(), json!(err));
    }
    if let Some(r) = ex.replay_of {
        extra.insert("_replayOf".into(), json!(r.to_string()));
    }
    if let Some(p) = &ex.peer {
        extra.insert("_peer".into(), json!(p));
    }
    if let Some(u) = &ex.public_url {
        extra.insert("_publicUrl".into(), json!(u));
    }
    if let Some(s) = &ex.signature {
        extra.insert(
            "_signature".into(),
            json!({ "provider": s.provider, "valid": s.valid, "reason": s.reason }),
        );
    }
    if let Value::Object(map) = &mut e {
        map.extend(extra);
    }
    e
}

fn request(ex: &Exchange) -> Value {
    let mut req = json!({
        "method": ex.method,
        "url": join_url(&ex.target, &ex.path),
        "httpVersion": "HTTP/1.1",
        "cookies": request_cookies(&ex.request_headers),
        "headers": headers(&ex.request_headers),
        "queryString": query_string(&ex.path),
        "headersSize": -1,
        "bodySize": ex.request_truncated.as_ref().map_or(ex.request_body.len() as u64, |t| t.total_bytes),
    });
    if (!ex.request_body.is_empty() || ex.request_truncated.is_some())
        && let Value::Object(map) = &mut req
    {
        let mut post = json!({ "mimeType": mime_type(&ex.request_headers) });
        put_body(&mut post, &ex.request_body);
        mark_truncated(
            &mut post,
            ex.request_truncated.as_ref(),
            ex.capture_degraded,
        );
        map.insert("postData".into(), post);
    }
    req
}

fn response(ex: &Exchange) -> Value {
    let Some(r) = &ex.response else {
        return json!({
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": { "size": 0, "mimeType": "x-unknown" },
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": ex.error,
        });
    };
    let size = r
        .truncated
        .as_ref()
        .map_or(r.body.len() as u64, |t| t.total_bytes);
    let mut content = json!({ "size": size, "mimeType": mime_type(&r.headers) });
    put_body(&mut content, &r.body);
    mark_truncated(&mut content, r.truncated.as_ref(), ex.capture_degraded);
    json!({
        "status": r.status,
        "statusText": http::StatusCode::from_u16(r.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or(""),
        "httpVersion": "HTTP/1.1",
        "cookies": response_cookies(&r.headers),
        "headers": headers(&r.headers),
        "content": content,
        "redirectURL": header(&r.headers, "location").unwrap_or_default(),
        "headersSize": -1,
        "bodySize": size,
    })
}

/// On a body held in part: a `comment` saying so (HAR viewers show it) and
/// `_truncated {totalBytes, sha256, limit}`; sizes elsewhere are the whole body's.
fn mark_truncated(obj: &mut Value, t: Option<&Truncation>, degraded: bool) {
    let (Value::Object(map), Some(t)) = (obj, t) else {
        return;
    };
    map.insert("comment".into(), json!(crate::capture::note(t, degraded)));
    map.insert(
        "_truncated".into(),
        json!({ "totalBytes": t.total_bytes, "sha256": t.sha256, "limit": t.limit }),
    );
}

/// Sets `text` (and `encoding: "base64"` when the bytes are not UTF-8).
fn put_body(obj: &mut Value, body: &[u8]) {
    let Value::Object(map) = obj else { return };
    match std::str::from_utf8(body) {
        Ok(text) => {
            map.insert("text".into(), json!(text));
        }
        Err(_) => {
            map.insert("text".into(), json!(BASE64_STANDARD.encode(body)));
            map.insert("encoding".into(), json!("base64"));
        }
    }
}

fn headers(hs: &[Header]) -> Value {
    Value::Array(
        hs.iter()
            .map(|h| json!({ "name": h.name, "value": String::from_utf8_lossy(&h.value) }))
            .collect(),
    )
}

/// First value of a header, lossily decoded.
fn header(hs: &[Header], name: &str) -> Option<String> {
    hs.iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
}

fn mime_type(hs: &[Header]) -> String {
    header(hs, "content-type").unwrap_or_else(|| "application/octet-stream".into())
}

fn request_cookies(hs: &[Header]) -> Value {
    let cookies = hs
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .flat_map(|h| {
            String::from_utf8_lossy(&h.value)
                .split(';')
                .filter_map(|pair| {
                    let (n, v) = pair.split_once('=')?;
                    Some(json!({ "name": n.trim(), "value": v.trim() }))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Value::Array(cookies)
}

fn response_cookies(hs: &[Header]) -> Value {
    let cookies = hs
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|h| {
            let text = String::from_utf8_lossy(&h.value).into_owned();
            let mut parts = text.split(';');
            let (name, value) = parts.next()?.split_once('=')?;
            let mut c = Map::new();
            c.insert("name".into(), json!(name.trim()));
            c.insert("value".into(), json!(value.trim()));
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "path" => c.insert("path".into(), json!(v.trim())),
                    "domain" => c.insert("domain".into(), json!(v.trim())),
                    "httponly" => c.insert("httpOnly".into(), json!(true)),
                    "secure" => c.insert("secure".into(), json!(true)),
                    _ => None,
                };
            }
            Some(Value::Object(c))
        })
        .collect();
    Value::Array(cookies)
}

/// `?a=1&b=x%20y` as HAR `queryString` (percent-decoded, `+` as space).
fn query_string(path: &str) -> Value {
    let Some((_, query)) = path.split_once('?') else {
        return json!([]);
    };
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Value::Array(
        crate::form::pairs(query.as_bytes())
            .into_iter()
            .map(|(n, v)| json!({ "name": text(n), "value": text(v) }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::fixtures::{binary_exchange, text_exchange};
    use super::*;

    #[test]
    fn har_document() {
        let a = text_exchange();
        let b = binary_exchange();
        let v = har(&[a.clone(), b.clone()]);
        let log = &v["log"];
        assert_eq!(log["version"], "1.2");
        assert_eq!(log["creator"]["name"], "hooktunnel");
        let entries = log["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);

        let e = &entries[0];
        assert_eq!(e["startedDateTime"], "2023-11-14T22:13:20.123Z");
        assert_eq!(e["time"], 12.3);
        assert_eq!(e["_id"], a.id.to_string());
        assert_eq!(e["cache"], json!({}));
        assert_eq!(e["timings"], json!({"send": 0, "wait": 12.3, "receive": 0}));
        let req = &e["request"];
        assert_eq!(req["method"], "POST");
        assert_eq!(req["url"], "http://127.0.0.1:3000/hooks/github?x=1&y=[a]");
        assert_eq!(req["httpVersion"], "HTTP/1.1");
        assert_eq!(req["headersSize"], -1);
        assert_eq!(req["bodySize"], a.request_body.len());
        assert_eq!(
            req["headers"].as_array().unwrap().len(),
            a.request_headers.len()
        );
        assert_eq!(
            req["headers"][4],
            json!({"name": "x-github-event", "value": "push"})
        );
        assert_eq!(
            req["queryString"],
            json!([{"name": "x", "value": "1"}, {"name": "y", "value": "[a]"}])
        );
        assert_eq!(
            req["cookies"],
            json!([{"name": "a", "value": "1"}, {"name": "b", "value": "two"}])
        );
        assert_eq!(req["postData"]["mimeType"], "application/json");
        assert_eq!(
            req["postData"]["text"].as_str().unwrap().as_bytes(),
            &a.request_body[..]
        );
        assert!(req["postData"].get("encoding").is_none());
        let resp = &e["response"];
        assert_eq!(resp["status"], 201);
        assert_eq!(resp["statusText"], "Created");
        assert_eq!(resp["content"]["size"], 7);
        assert_eq!(resp["content"]["text"], "created");
        assert_eq!(resp["content"]["mimeType"], "text/plain; charset=utf-8");
        assert_eq!(resp["redirectURL"], "");
        assert_eq!(resp["headersSize"], -1);
        assert_eq!(resp["bodySize"], 7);
        assert_eq!(
            resp["cookies"],
            json!([{"name": "sid", "value": "xyz", "path": "/", "httpOnly": true}])
        );

        let e = &entries[1];
        assert_eq!(
            e["request"]["url"],
            "http://127.0.0.1:3000/upload/a/../b%20c"
        );
        assert_eq!(e["request"]["queryString"], json!([]));
        assert_eq!(e["request"]["postData"]["encoding"], "base64");
        let body = BASE64_STANDARD
            .decode(e["request"]["postData"]["text"].as_str().unwrap())
            .unwrap();
        assert_eq!(body, b.request_body);
        assert_eq!(e["response"]["status"], 0);
        assert_eq!(e["_error"], "connection refused");
        assert_eq!(e["_replayOf"], b.replay_of.unwrap().to_string());
    }

    #[test]
    fn binary_response_and_redirects() {
        let mut a = text_exchange();
        let r = a.response.as_mut().unwrap();
        r.status = 302;
        r.headers.push(Header::new("Location", "/next"));
        r.body = bytes::Bytes::from_static(b"\xff\x00");
        let v = har(&[a]);
        let resp = &v["log"]["entries"][0]["response"];
        assert_eq!(resp["statusText"], "Found");
        assert_eq!(resp["redirectURL"], "/next");
        assert_eq!(resp["content"]["encoding"], "base64");
        assert_eq!(resp["content"]["text"], "/wA=");
    }

    #[test]
    fn query_string_is_decoded_and_empty_har_has_no_entries() {
        assert_eq!(
            query_string("/p?a=x%20y+z&&b&c=%C3%A9%zz"),
            json!([
                {"name": "a", "value": "x y z"},
                {"name": "b", "value": ""},
                {"name": "c", "value": "é%zz"},
            ])
        );
        assert_eq!(query_string("/p"), json!([]));
        assert!(
            har(&[])
                .pointer("/log/entries")
                .unwrap()
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}
