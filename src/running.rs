//! The state file of a running `listen` (`<data>/running/<pid>-<name>.json`):
//! what `status` and `trigger --tunnel` read to find the live tunnel. It is
//! removed when `listen` stops; one left by a killed process is recognised
//! by its pid no longer running.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::Paths;

/// What a running `listen` publishes about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelState {
    /// Process id of the `listen`.
    pub pid: u32,
    /// Tunnel name granted by the relay.
    pub name: String,
    /// The URL senders use.
    pub public_url: String,
    /// The relay's base URL.
    pub relay: String,
    /// True for the relay `listen` started itself.
    pub embedded: bool,
    /// The local app.
    pub target: String,
    /// When the tunnel came up (ms since the epoch).
    pub since_ms: u64,
    /// The local web inspector's address, when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
}

/// A state file found on disk.
#[derive(Clone, Debug)]
pub struct Found {
    /// Its contents.
    pub state: TunnelState,
    /// False when its process is gone (killed without cleaning up).
    pub online: bool,
    /// Where it is.
    pub path: PathBuf,
}

/// Removes the state file when dropped (the tunnel stopped).
#[derive(Debug)]
pub struct Published {
    path: PathBuf,
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn dir(paths: &Paths) -> PathBuf {
    paths.data_dir.join("running")
}

/// Writes the state file (owner-only); it lives as long as the guard.
pub fn publish(paths: &Paths, state: &TunnelState) -> anyhow::Result<Published> {
    let dir = dir(paths);
    crate::private::ensure_dir(&paths.data_dir)
        .and_then(|()| crate::private::ensure_dir(&dir))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{}-{}.json", state.pid, state.name));
    let json = serde_json::to_vec_pretty(state).context("cannot serialise the tunnel state")?;
    crate::config::write_private(&path, &json)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Published { path })
}

/// Adds the web inspector's address to this process's state file(s).
pub fn note_web_url(paths: &Paths, url: &str) -> anyhow::Result<()> {
    let pid = std::process::id();
    for found in list(paths).into_iter().filter(|f| f.state.pid == pid) {
        let state = TunnelState {
            web_url: Some(url.to_owned()),
            ..found.state
        };
        let json =
            serde_json::to_vec_pretty(&state).context("cannot serialise the tunnel state")?;
        crate::config::write_private(&found.path, &json)
            .with_context(|| format!("cannot write {}", found.path.display()))?;
    }
    Ok(())
}

/// Every state file, newest first; unreadable ones are skipped.
pub fn list(paths: &Paths) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(dir(paths)) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|path| {
            let state: TunnelState = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            Some(Found {
                online: pid_alive(state.pid),
                state,
                path,
            })
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.state.since_ms));
    found
}

/// The newest tunnel whose process still runs.
pub fn live(paths: &Paths) -> Option<TunnelState> {
    list(paths).into_iter().find(|f| f.online).map(|f| f.state)
}

/// Removes a state file whose process is gone.
pub fn forget(found: &Found) {
    if !found.online {
        let _ = std::fs::remove_file(&found.path);
    }
}

/// True when a process with this id exists (signal 0 probes without
/// sending anything; "not permitted" means it exists under another user).
#[cfg(unix)]
pub fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Without a cheap probe, a state file is taken at its word.
#[cfg(not(unix))]
pub fn pid_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state(pid: u32, name: &str, since_ms: u64) -> TunnelState {
        TunnelState {
            pid,
            name: name.into(),
            public_url: format!("http://127.0.0.1:7070/t/{name}"),
            relay: "http://127.0.0.1:7070".into(),
            embedded: true,
            target: "http://localhost:3000".into(),
            since_ms,
            web_url: None,
        }
    }

    #[test]
    fn the_web_inspector_is_noted_in_this_process_state_only() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::at(home.path());
        let _mine = publish(&paths, &state(std::process::id(), "mine", 2)).unwrap();
        let _other = publish(&paths, &state(i32::MAX as u32 - 1, "other", 3)).unwrap();
        note_web_url(&paths, "http://127.0.0.1:4041").unwrap();
        let found = list(&paths);
        let web = |name: &str| {
            found
                .iter()
                .find(|f| f.state.name == name)
                .and_then(|f| f.state.web_url.clone())
        };
        assert_eq!(web("mine").as_deref(), Some("http://127.0.0.1:4041"));
        assert_eq!(web("other"), None);
    }

    #[test]
    fn published_state_is_listed_until_dropped_and_dead_pids_are_offline() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::at(home.path());
        assert!(list(&paths).is_empty());
        let mine = publish(&paths, &state(std::process::id(), "mine", 2)).unwrap();
        // A pid far above any pid_max stands for a process that is gone.
        let dead = publish(&paths, &state(i32::MAX as u32 - 1, "gone", 3)).unwrap();
        let found = list(&paths);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].state.name.as_str(), found[0].online),
            ("gone", false)
        );
        assert_eq!(
            (found[1].state.name.as_str(), found[1].online),
            ("mine", true)
        );
        assert_eq!(live(&paths).unwrap().name, "mine");
        forget(&found[0]);
        std::mem::forget(dead);
        assert_eq!(list(&paths).len(), 1);
        drop(mine);
        assert!(list(&paths).is_empty());
        assert!(live(&paths).is_none());
    }
}
