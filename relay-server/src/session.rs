//! One agent per tunnel: when a second session of the same key asks for a
//! live tunnel, who wins. Pure rules; [`crate::state`] applies them.
//!
//! - the same agent run reconnecting (same `instance`) replaces its own
//!   session: the old link is half-open or about to be noticed dead;
//! - `--takeover` replaces the live session, which is told why and stops;
//! - a session silent for longer than [`STALE_AFTER`] is replaced (its agent
//!   died without closing, and must not block a restart until the relay's
//!   watchdog notices);
//! - otherwise the newcomer is refused with who holds the tunnel and since when.

use std::time::Duration;

use crate::protocol::{Mode, PING_INTERVAL};

/// Silence after which a live session no longer blocks a new one.
pub const STALE_AFTER: Duration = Duration::from_secs(PING_INTERVAL.as_secs() * 2);

/// Longest host name kept from a `hello` (agent-controlled text).
const MAX_HOST_CHARS: usize = 64;

/// Who asks for a tunnel.
#[derive(Clone, Debug, Default)]
pub struct Claimant {
    /// How senders are answered.
    pub mode: Mode,
    /// Fingerprint of the agent key (`None` for keyless, ephemeral tunnels).
    pub key_hash: Option<String>,
    /// The agent's host name, cleaned by [`clean_host`].
    pub host: Option<String>,
    /// The agent run's id, the same on each of its reconnects.
    pub instance: Option<String>,
    /// Replace a live session of the same key.
    pub takeover: bool,
}

/// Why a live session of the same key gives way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// The same run reconnected (or an agent that sends no run id).
    Own,
    /// The live session has been silent too long.
    Stale,
    /// `--takeover`: the live agent is told and stops.
    TakeOver,
}

/// Whether `claimant` may replace a live session of the same key that runs
/// as `held_instance` and was last heard from `silent_for` ago.
pub fn may_replace(
    held_instance: Option<&str>,
    silent_for: Duration,
    claimant: &Claimant,
) -> Option<Replace> {
    match (held_instance, claimant.instance.as_deref()) {
        // Agents from before run ids: the old rule, newest wins.
        (None, _) | (_, None) => return Some(Replace::Own),
        (Some(held), Some(new)) if held == new => return Some(Replace::Own),
        _ => {}
    }
    if claimant.takeover {
        Some(Replace::TakeOver)
    } else if silent_for > STALE_AFTER {
        Some(Replace::Stale)
    } else {
        None
    }
}

/// A host name fit for messages and logs: printable DNS-ish characters only,
/// at most 64 of them; `None` when nothing is left.
pub fn clean_host(host: Option<&str>) -> Option<String> {
    let cleaned: String = host?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(MAX_HOST_CHARS)
        .collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// `HH:MM UTC` of a Unix time in milliseconds (the relay's clock zone is
/// meaningless to the agent's user, so say which one it is).
pub fn utc_hh_mm(ms: u64) -> String {
    let minutes_of_day = (ms / 60_000) % (24 * 60);
    format!("{:02}:{:02} UTC", minutes_of_day / 60, minutes_of_day % 60)
}

/// The refusal a second run of the same agent gets.
pub fn already_online(name: &str, host: Option<&str>, since_ms: u64) -> String {
    format!(
        "{name} is already online from host {} since {}; stop it, or pass --takeover to replace it",
        host.unwrap_or("(unknown)"),
        utc_hh_mm(since_ms)
    )
}

/// What a replaced agent is told.
pub fn taken_over(host: Option<&str>) -> String {
    format!(
        "taken over by another hooktunnel listen from host {}",
        host.unwrap_or("(unknown)")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimant(instance: Option<&str>, takeover: bool) -> Claimant {
        Claimant {
            instance: instance.map(str::to_owned),
            takeover,
            ..Claimant::default()
        }
    }

    #[test]
    fn who_may_replace_a_live_session() {
        let fresh = Duration::from_secs(1);
        let stale = STALE_AFTER + Duration::from_secs(1);
        let own = claimant(Some("a"), false);
        let other = claimant(Some("b"), false);
        let taking = claimant(Some("b"), true);
        assert_eq!(may_replace(Some("a"), fresh, &own), Some(Replace::Own));
        assert_eq!(may_replace(Some("a"), fresh, &other), None);
        assert_eq!(
            may_replace(Some("a"), fresh, &taking),
            Some(Replace::TakeOver)
        );
        assert_eq!(may_replace(Some("a"), stale, &other), Some(Replace::Stale));
        // Agents that send no run id keep the old newest-wins rule.
        assert_eq!(may_replace(None, fresh, &other), Some(Replace::Own));
        assert_eq!(
            may_replace(Some("a"), fresh, &claimant(None, false)),
            Some(Replace::Own)
        );
    }

    #[test]
    fn messages_name_the_host_and_the_time() {
        // 2024-11-28 10:42:30 UTC
        let ms = 1_732_790_550_000;
        assert_eq!(utc_hh_mm(ms), "10:42 UTC");
        let text = already_online("my-app", Some("laptop"), ms);
        assert!(
            text.starts_with("my-app is already online from host laptop since 10:42 UTC;"),
            "{text}"
        );
        assert!(text.contains("--takeover"));
        assert_eq!(
            taken_over(Some("ci-box")),
            "taken over by another hooktunnel listen from host ci-box"
        );
    }

    #[test]
    fn host_names_are_cleaned() {
        assert_eq!(
            clean_host(Some("dev-box.local")).as_deref(),
            Some("dev-box.local")
        );
        assert_eq!(
            clean_host(Some("\u{1b}[31mevil\n")).as_deref(),
            Some("31mevil")
        );
        assert_eq!(clean_host(Some(" ")), None);
        assert_eq!(clean_host(None), None);
        assert_eq!(
            clean_host(Some(&"x".repeat(500))).map(|h| h.len()),
            Some(64)
        );
    }
}
