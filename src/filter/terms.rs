//! The two compiled filter terms: a status match and a path glob.

use std::fmt;

use globset::{Candidate, GlobBuilder, GlobMatcher};

use super::FilterError;

/// Which response statuses a filter accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMatch {
    /// One exact code, e.g. `404`.
    Exact(u16),
    /// A class by its first digit, e.g. `4` for `4xx`.
    Class(u8),
    /// No response came back, or hooktunnel recorded an error.
    Error,
}

impl StatusMatch {
    /// Parses `404`, `4xx` (any case) or `error`.
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let t = s.trim();
        let bad = || FilterError::BadStatus(s.to_owned());
        if t.eq_ignore_ascii_case("error") || t.eq_ignore_ascii_case("err") {
            return Ok(Self::Error);
        }
        let b = t.as_bytes();
        if b.len() != 3 || !(b'1'..=b'9').contains(&b[0]) {
            return Err(bad());
        }
        // HTTP status codes run from 100 to 599 (RFC 9110 §15).
        let shaped = b[1..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.eq_ignore_ascii_case(&b'x'));
        if b[0] > b'5' && shaped {
            return Err(FilterError::StatusRange(s.to_owned()));
        }
        if b[1..].iter().all(|c| c.eq_ignore_ascii_case(&b'x')) {
            return Ok(Self::Class(b[0] - b'0'));
        }
        t.parse::<u16>().map(Self::Exact).map_err(|_| bad())
    }

    /// Whether an exchange with this status and error matches.
    pub fn matches(&self, status: Option<u16>, has_error: bool) -> bool {
        match (self, status) {
            (Self::Error, s) => s.is_none() || has_error,
            (Self::Exact(code), Some(s)) => *code == s,
            (Self::Class(class), Some(s)) => s / 100 == u16::from(*class),
            (_, None) => false,
        }
    }
}

impl fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(code) => write!(f, "{code}"),
            Self::Class(class) => write!(f, "{class}xx"),
            Self::Error => f.write_str("error"),
        }
    }
}

/// A compiled path glob that remembers how it was written.
#[derive(Clone, Debug)]
pub struct PathGlob {
    pattern: String,
    matcher: GlobMatcher,
}

impl PathGlob {
    /// Compiles `pattern` (`*` within a segment, `**` across segments).
    pub fn new(pattern: &str) -> Result<Self, FilterError> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| FilterError::BadGlob {
                input: pattern.to_owned(),
                reason: e.kind().to_string(),
            })?;
        Ok(Self {
            pattern: pattern.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `path` (its query string, if any, is ignored) matches.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        self.matcher
            .is_match_candidate(&Candidate::from_bytes(path.as_bytes()))
    }
}

impl PartialEq for PathGlob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for PathGlob {}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// Characters a tunnel name may hold (relay names are lowercase DNS labels;
/// upper case is accepted here and matched case-insensitively).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// Glob characters a `tunnel:` pattern may use besides name characters.
const TUNNEL_GLOB_CHARS: &str = "*?[]{},!";

/// One `tunnel:` term: a name, matched exactly but for ASCII case, or a
/// glob over names (`stripe-*`, `{shop,billing}`).
#[derive(Clone, Debug)]
pub struct TunnelMatch {
    pattern: String,
    /// `None` for a plain name (compared without a glob).
    matcher: Option<GlobMatcher>,
}

impl TunnelMatch {
    /// Checks and compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, FilterError> {
        let bad = |reason: String| FilterError::BadTunnel {
            input: pattern.to_owned(),
            reason,
        };
        if let Some(c) = pattern
            .chars()
            .find(|c| !is_name_char(*c) && !TUNNEL_GLOB_CHARS.contains(*c))
        {
            return Err(bad(format!(
                "{c:?} is in no tunnel name: names are letters, digits and '-' \
                 (a glob may add * ? [a-z] {{a,b}})"
            )));
        }
        let matcher = if pattern.chars().all(is_name_char) {
            None
        } else {
            let glob = GlobBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .map_err(|e| bad(e.kind().to_string()))?;
            Some(glob.compile_matcher())
        };
        Ok(Self {
            pattern: pattern.to_owned(),
            matcher,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the tunnel named `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match &self.matcher {
            None => self.pattern.eq_ignore_ascii_case(name),
            Some(m) => m.is_match(name),
        }
    }
}

impl PartialEq for TunnelMatch {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for TunnelMatch {}

impl fmt::Display for TunnelMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}
