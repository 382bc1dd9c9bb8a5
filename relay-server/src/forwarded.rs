//! The headers a request carries to the agent: hop-by-hop fields removed and
//! the forwarding fields (`X-Forwarded-*`, `Forwarded`) set from what the
//! relay itself saw. Client-supplied forwarding fields are dropped unless the
//! relay runs behind a trusted proxy (`--trust-proxy`), which then appends.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::protocol::{self, Header};

/// Fields a client could use to lie about where a request came from.
const FORWARDING: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
];

/// What the relay saw of one request.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// The address of the TCP peer.
    pub peer: IpAddr,
    /// `http` or `https`, as the relay received it.
    pub scheme: &'static str,
    /// The request's host (absolute-form authority or `Host`).
    pub host: Option<&'a str>,
}

fn is_forwarding(name: &str) -> bool {
    FORWARDING.iter().any(|f| name.eq_ignore_ascii_case(f))
}

/// The headers to send to the agent, in arrival order, with the forwarding
/// fields appended at the end.
pub fn request_headers(headers: &HeaderMap, seen: Seen<'_>, trust_proxy: bool) -> Vec<Header> {
    let all: Vec<Header> = headers
        .iter()
        .map(|(name, value)| Header::new(name.as_str(), value.as_bytes()))
        .collect();
    let mut out = protocol::strip_hop_by_hop(&all);
    let joined = |name: &str| -> Option<String> {
        let values: Vec<String> = out
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value_lossy().into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let prior_for = trust_proxy.then(|| joined("x-forwarded-for")).flatten();
    let prior_forwarded = trust_proxy.then(|| joined("forwarded")).flatten();
    let has = |out: &[Header], name: &str| out.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    if trust_proxy {
        out.retain(|h| {
            !h.name.eq_ignore_ascii_case("x-forwarded-for")
                && !h.name.eq_ignore_ascii_case("forwarded")
        });
    } else {
        out.retain(|h| !is_forwarding(&h.name));
    }
    let ip = seen.peer.to_string();
    out.push(Header::new(
        "x-forwarded-for",
        match prior_for {
            Some(prior) => format!("{prior}, {ip}"),
            None => ip,
        },
    ));
    if !has(&out, "x-forwarded-proto") {
        out.push(Header::new("x-forwarded-proto", seen.scheme));
    }
    if let Some(host) = seen.host
        && !has(&out, "x-forwarded-host")
    {
        out.push(Header::new("x-forwarded-host", host));
    }
    let element = forwarded_element(seen);
    out.push(Header::new(
        "forwarded",
        match prior_forwarded {
            Some(prior) => format!("{prior}, {element}"),
            None => element,
        },
    ));
    out
}

/// One RFC 7239 `Forwarded` element for what the relay saw.
fn forwarded_element(seen: Seen<'_>) -> String {
    let node = match seen.peer {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut element = format!("for={node}");
    if let Some(host) = seen.host {
        let quoted = host.replace('\\', "\\\\").replace('"', "\\\"");
        element.push_str(&format!(";host=\"{quoted}\""));
    }
    element.push_str(";proto=");
    element.push_str(seen.scheme);
    element
}

/// The client's address: the TCP peer, or behind a trusted proxy the last
/// address that proxy recorded in `X-Forwarded-For`.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trust_proxy: bool) -> IpAddr {
    if !trust_proxy {
        return peer;
    }
    last_forwarded_for(
        headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes()),
    )
    .unwrap_or(peer)
}

/// The right-most valid address in a list of `X-Forwarded-For` values.
pub fn last_forwarded_for<'a>(values: impl DoubleEndedIterator<Item = &'a [u8]>) -> Option<IpAddr> {
    values.rev().find_map(|value| {
        std::str::from_utf8(value)
            .ok()?
            .rsplit(',')
            .map(str::trim)
            .find(|part| !part.is_empty())
            .and_then(|part| part.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (n, v) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        headers
    }

    fn values(headers: &[Header], name: &str) -> Vec<String> {
        headers
            .iter()
            .filter(|h| h.name == name)
            .map(|h| h.value_lossy().into_owned())
            .collect()
    }

    const SEEN: Seen<'static> = Seen {
        peer: IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7)),
        scheme: "https",
        host: Some("hooks.example.com"),
    };

    #[test]
    fn client_supplied_forwarding_is_replaced() {
        let h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "gopher"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-keep", "yes"),
            ("connection", "x-hop"),
            ("x-hop", "dropped"),
            ("te", "trailers"),
        ]);
        let out = request_headers(&h, SEEN, false);
        assert_eq!(values(&out, "x-forwarded-for"), ["203.0.113.7"]);
        assert_eq!(values(&out, "x-forwarded-host"), ["hooks.example.com"]);
        assert_eq!(values(&out, "x-forwarded-proto"), ["https"]);
        assert_eq!(
            values(&out, "forwarded"),
            ["for=203.0.113.7;host=\"hooks.example.com\";proto=https"]
        );
        assert!(values(&out, "x-real-ip").is_empty());
        assert_eq!(values(&out, "x-keep"), ["yes"]);
        for hop in ["connection", "x-hop", "te"] {
            assert!(values(&out, hop).is_empty(), "{hop}");
        }
    }

    #[test]
    fn a_trusted_proxy_is_appended_to() {
        let h = map(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "public.example"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        let seen = Seen {
            scheme: "http",
            ..SEEN
        };
        let out = request_headers(&h, seen, true);
        assert_eq!(
            values(&out, "x-forwarded-for"),
            ["198.51.100.1, 203.0.113.7"]
        );
        assert_eq!(values(&out, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&out, "x-forwarded-host"), ["public.example"]);
        assert_eq!(
            values(&out, "forwarded"),
            ["for=198.51.100.1, for=203.0.113.7;host=\"hooks.example.com\";proto=http"]
        );
        assert_eq!(
            client_ip(&h, SEEN.peer, true),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(&h, SEEN.peer, false), SEEN.peer);
    }

    #[test]
    fn ipv6_and_odd_hosts_are_quoted() {
        let seen = Seen {
            peer: "::1".parse().unwrap(),
            scheme: "http",
            host: Some("a\"b"),
        };
        assert_eq!(
            forwarded_element(seen),
            "for=\"[::1]\";host=\"a\\\"b\";proto=http"
        );
    }

    proptest! {
        #[test]
        fn forwarded_for_parsing_never_panics(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4)) {
            let _ = last_forwarded_for(values.iter().map(Vec::as_slice));
        }
    }
}
