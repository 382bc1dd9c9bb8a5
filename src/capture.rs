//! The capture limit: how much of a body the history keeps.
//!
//! A body flows to its destination whole; the history keeps its first
//! `limit` bytes. Beyond that it records a [`Truncation`]: the whole body's
//! size and SHA-256, so a truncated capture still says what was sent and can
//! be matched against the sender's copy. Pure: no I/O, no clock.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Bytes kept per body unless `--capture-max` / `capture_max` say otherwise.
pub const DEFAULT_CAPTURE_MAX: usize = 10 * 1024 * 1024;

/// Tees a body that arrives in chunks: keeps up to the limit and, once a
/// body passes it, hashes the whole body (bodies within the limit, the
/// usual webhook, are never hashed: their bytes are kept instead).
pub struct Capture {
    limit: usize,
    kept: BytesMut,
    total: u64,
    /// Started when the body first passes the limit (over what was kept).
    hasher: Option<Sha256>,
}

/// A body the history holds only the head of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// Size of the whole body as it was sent.
    pub total_bytes: u64,
    /// SHA-256 of the whole body, lowercase hex.
    pub sha256: String,
    /// The capture limit in force; the history kept `min(limit, total_bytes)` bytes.
    pub limit: u64,
}

impl Truncation {
    /// Bytes of the body the history holds.
    pub fn kept_bytes(&self) -> u64 {
        self.limit.min(self.total_bytes)
    }

    /// A short prefix of the hash, for one-line displays.
    pub fn short_sha(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }

    /// `10.0 MiB of 1.2 GiB kept · sha256 ab12cd34ef56…` (sizes as [`crate::output::size`]).
    pub fn describe(&self) -> String {
        format!(
            "{} of {} kept · sha256 {}…",
            crate::output::size(self.kept_bytes()),
            crate::output::size(self.total_bytes),
            self.short_sha()
        )
    }
}

/// The one line every display uses for a body held in part:
/// `truncated: 10.0 MiB of 1.2 GiB kept · sha256 ab12…`, or, for an exchange
/// recorded while the store was behind (`degraded`), why nothing was kept.
pub fn note(t: &Truncation, degraded: bool) -> String {
    if degraded {
        format!(
            "not kept: the history store fell behind · {} · sha256 {}…",
            crate::output::size(t.total_bytes),
            t.short_sha()
        )
    } else {
        format!("truncated: {}", t.describe())
    }
}

impl Capture {
    /// A capture keeping at most `limit` bytes (0: heads only).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            // Grows as bytes come: most bodies are small, many empty.
            kept: BytesMut::new(),
            total: 0,
            hasher: None,
        }
    }

    /// Feeds the next chunk: kept while under the limit, hashed from the
    /// moment the body passes it.
    pub fn push(&mut self, chunk: &[u8]) {
        self.total = self.total.saturating_add(chunk.len() as u64);
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(chunk);
            return;
        }
        let room = self.limit.saturating_sub(self.kept.len());
        let take = chunk.len().min(room);
        self.kept.extend_from_slice(&chunk[..take]);
        if take < chunk.len() {
            // The first byte past the limit: the hash covers what was kept too.
            let mut hasher = Sha256::new();
            hasher.update(&self.kept);
            hasher.update(&chunk[take..]);
            self.hasher = Some(hasher);
        }
    }

    /// The kept bytes, and a [`Truncation`] only when bytes were dropped.
    pub fn finish(self) -> (Bytes, Option<Truncation>) {
        let dropped = self.total > self.kept.len() as u64;
        let truncation = dropped.then(|| Truncation {
            total_bytes: self.total,
            sha256: hex::encode(self.hasher.unwrap_or_default().finalize()),
            limit: self.limit as u64,
        });
        (self.kept.freeze(), truncation)
    }

    /// [`Capture`] for a body already held whole: no copy, and hashed only
    /// when it is over the limit.
    pub fn whole(body: &Bytes, limit: usize) -> (Bytes, Option<Truncation>) {
        if body.len() <= limit {
            return (body.clone(), None);
        }
        let truncation = Truncation {
            total_bytes: body.len() as u64,
            sha256: hex::encode(Sha256::digest(body)),
            limit: limit as u64,
        };
        (body.slice(..limit), Some(truncation))
    }
}

/// A capture limit as given on the command line (`--capture-max 512k`) or in
/// `config.toml` (`capture_max = "10MiB"` or a number of bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureMax(pub usize);

impl std::str::FromStr for CaptureMax {
    type Err = BadSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_size(s).map(Self)
    }
}

impl Serialize for CaptureMax {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0 as u64)
    }
}

impl<'de> Deserialize<'de> for CaptureMax {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CaptureMax;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size in bytes or a string such as \"10MiB\"")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<CaptureMax, E> {
                usize::try_from(v)
                    .map(CaptureMax)
                    .map_err(|_| E::custom(BadSize(v.to_string())))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<CaptureMax, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(BadSize(v.to_string())))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CaptureMax, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A capture limit that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid capture limit '{0}': give a size such as 10MiB, 512k, 1048576 or 0 (heads only)")]
pub struct BadSize(pub String);

/// Reads a human size: `0`, `1048576`, `512k`, `512KiB`, `10M`, `10MiB`,
/// `1G`, `1.5MiB` (units are powers of 1024; `B` optional, case ignored).
pub fn parse_size(text: &str) -> Result<usize, BadSize> {
    let bad = || BadSize(text.to_owned());
    let t = text.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    if number.is_empty() {
        return Err(bad());
    }
    let bytes = match number.split_once('.') {
        None => number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale)),
        Some(_) => {
            let n: f64 = number.parse().map_err(|_| bad())?;
            let b = (n * scale as f64).round();
            (b.is_finite() && b >= 0.0 && b < u64::MAX as f64).then_some(b as u64)
        }
    }
    .ok_or_else(bad)?;
    usize::try_from(bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn under_or_at_the_limit_keeps_everything_and_reports_nothing() {
        let mut c = Capture::new(5);
        c.push(b"ab");
        c.push(b"cde");
        assert_eq!(c.finish(), (Bytes::from_static(b"abcde"), None));
        let body = Bytes::from_static(b"abcde");
        assert_eq!(Capture::whole(&body, 5), (body.clone(), None));
        assert_eq!(Capture::new(0).finish(), (Bytes::new(), None));
    }

    #[test]
    fn one_byte_over_the_limit_is_a_truncation_of_the_whole_body() {
        let body = b"abcdef";
        let mut c = Capture::new(5);
        c.push(body);
        let (kept, t) = c.finish();
        assert_eq!(kept, Bytes::from_static(b"abcde"));
        let t = t.unwrap();
        assert_eq!(
            t,
            Truncation {
                total_bytes: 6,
                sha256: sha(body),
                limit: 5
            }
        );
        assert_eq!(t.kept_bytes(), 5);
        assert_eq!(
            Capture::whole(&Bytes::from_static(body), 5),
            (kept, Some(t))
        );
    }

    #[test]
    fn limit_zero_keeps_heads_only() {
        let mut c = Capture::new(0);
        c.push(b"hello");
        let (kept, t) = c.finish();
        assert!(kept.is_empty());
        let t = t.unwrap();
        assert_eq!((t.total_bytes, t.limit, t.kept_bytes()), (5, 0, 0));
        assert_eq!(t.sha256, sha(b"hello"));
        assert_eq!(
            t.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn chunk_boundaries_do_not_change_what_is_kept_or_hashed() {
        let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let whole = Capture::whole(&Bytes::from(body.clone()), 333);
        for size in [1, 2, 7, 332, 333, 334, 999, 1000] {
            let mut c = Capture::new(333);
            for chunk in body.chunks(size) {
                c.push(chunk);
            }
            c.push(&[]);
            assert_eq!(c.finish(), whole, "chunks of {size}");
        }
        let (kept, t) = whole;
        assert_eq!(kept[..], body[..333]);
        assert_eq!(t.unwrap().sha256, sha(&body));
    }

    #[test]
    fn describe_names_both_sizes_and_a_hash_prefix() {
        let t = Truncation {
            total_bytes: 1288490189,
            sha256: "ab12cd34ef5678".into(),
            limit: 10 * 1024 * 1024,
        };
        assert_eq!(
            t.describe(),
            "10.0 MiB of 1.2 GiB kept · sha256 ab12cd34ef56…"
        );
    }

    #[test]
    fn config_values_are_numbers_or_human_sizes() {
        #[derive(Deserialize)]
        struct C {
            capture_max: CaptureMax,
        }
        let read = |t: &str| toml::from_str::<C>(t).map(|c| c.capture_max.0);
        assert_eq!(read("capture_max = 1024").unwrap(), 1024);
        assert_eq!(read("capture_max = \"512k\"").unwrap(), 512 << 10);
        for bad in [
            "capture_max = -1",
            "capture_max = \"lots\"",
            "capture_max = true",
        ] {
            let err = read(bad).unwrap_err().to_string();
            assert!(
                err.contains("capture limit") || err.contains("10MiB"),
                "{bad}: {err}"
            );
        }
        assert_eq!("0".parse::<CaptureMax>(), Ok(CaptureMax(0)));
    }

    #[test]
    fn sizes_parse_in_human_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size(" 10 mb "), Ok(10 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("7B"), Ok(7));
        for bad in [
            "",
            "MiB",
            "-1",
            "10 parsecs",
            "1.2.3k",
            "99999999999999999999G",
        ] {
            assert_eq!(parse_size(bad), Err(BadSize(bad.into())), "{bad}");
        }
        let msg = parse_size("x").unwrap_err().to_string();
        assert!(msg.contains("10MiB") && msg.contains("'x'"), "{msg}");
    }
}
