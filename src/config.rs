//! Where hooktunnel keeps things, and the settings file.
//!
//! Settings come from flags, then environment (`HOOKTUNNEL_RELAY`,
//! `HOOKTUNNEL_TOKEN`, `HOOKTUNNEL_HOME`), then `config.toml`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Config and data locations.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Directory holding `config.toml`.
    pub config_dir: PathBuf,
    /// Directory holding the history database.
    pub data_dir: PathBuf,
}

impl Paths {
    /// `$HOOKTUNNEL_HOME` for both when set, else the platform's config and data dirs.
    pub fn discover() -> anyhow::Result<Self> {
        if let Some(home) = std::env::var_os("HOOKTUNNEL_HOME").filter(|h| !h.is_empty()) {
            let home = PathBuf::from(home);
            return Ok(Self {
                config_dir: home.clone(),
                data_dir: home,
            });
        }
        let dirs = directories::ProjectDirs::from("dev", "hooktunnel", "hooktunnel").context(
            "cannot find a home directory for hooktunnel's files; set HOOKTUNNEL_HOME to a directory",
        )?;
        Ok(Self {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
        })
    }

    /// Paths rooted at one directory (tests, `HOOKTUNNEL_HOME`).
    pub fn at(home: &Path) -> Self {
        Self {
            config_dir: home.to_path_buf(),
            data_dir: home.to_path_buf(),
        }
    }

    /// The settings file.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// The history database.
    pub fn db(&self) -> PathBuf {
        self.data_dir.join("history.sqlite3")
    }

    /// Where diagnostics go while the inspector owns the terminal.
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("hooktunnel.log")
    }
}

/// Contents of `config.toml`; every field optional.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// Relay base URL, e.g. `https://hooks.example.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    /// Relay token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Tunnel name from before names were kept per relay; used only when
    /// `names` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tunnel name per relay (`relay URL = "name"`, `embedded` for the
    /// embedded relay), written whenever a relay grants one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, String>,
    /// Secret proving this agent owns its name (written on first run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_key: Option<String>,
    /// Signature secrets as `PROVIDER:SECRET`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<String>,
    /// History retention: most exchanges kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<u64>,
    /// History retention: most body bytes kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_bytes: Option<u64>,
    /// Mask secret header values in the inspector and `show` (default on;
    /// display only: storage, export and replay keep the real bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_secrets: Option<bool>,
    /// Web inspector address (`127.0.0.1:4040`, a port, or `off`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_addr: Option<String>,
    /// Body bytes kept per body in history (`"10MiB"`, `"512k"`, a number,
    /// `0` for heads only); see [`crate::capture`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_max: Option<crate::capture::CaptureMax>,
    /// Traffic rules per tunnel (`[[tunnel]]` tables, the flags' syntax).
    #[serde(default, rename = "tunnel", skip_serializing_if = "Vec::is_empty")]
    pub tunnels: Vec<crate::rules::RulesConfig>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("ConfigFile")
            .field("relay", &self.relay)
            .field("token", &redact(&self.token))
            .field("name", &self.name)
            .field("names", &self.names)
            .field("agent_key", &redact(&self.agent_key))
            .field("verify", &format_args!("[{} redacted]", self.verify.len()))
            .field("keep", &self.keep)
            .field("keep_bytes", &self.keep_bytes)
            .field("mask_secrets", &self.mask_secrets)
            .field("web_addr", &self.web_addr)
            .field("tunnels", &self.tunnels)
            .field("capture_max", &self.capture_max)
            .finish()
    }
}

/// The key of a relay in [`ConfigFile::names`].
pub fn relay_key(relay: &str, embedded: bool) -> String {
    if embedded {
        EMBEDDED_KEY.to_owned()
    } else {
        relay.trim().trim_end_matches('/').to_owned()
    }
}

/// [`ConfigFile::names`] key of the embedded relay (its port may change).
pub const EMBEDDED_KEY: &str = "embedded";

impl ConfigFile {
    /// Whether displays mask secret header values: `mask_secrets` in the
    /// config at `paths`, on when unset or when the file cannot be read.
    pub fn masks_secrets(paths: &Paths) -> bool {
        Self::load(&paths.config_file())
            .ok()
            .and_then(|c| c.mask_secrets)
            .unwrap_or(true)
    }

    /// The name remembered for a relay (see [`relay_key`]).
    pub fn name_for(&self, key: &str) -> Option<&str> {
        match self.names.get(key) {
            Some(name) => Some(name.as_str()),
            None if self.names.is_empty() => self.name.as_deref(),
            None => None,
        }
        .filter(|n| !n.is_empty())
    }

    /// Remembers `name` for a relay; true when that changed anything.
    pub fn remember_name(&mut self, key: &str, name: &str) -> bool {
        if self.names.get(key).map(String::as_str) == Some(name) {
            return false;
        }
        self.names.insert(key.to_owned(), name.to_owned());
        true
    }

    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!("{} is not a valid hooktunnel config file", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file atomically, readable by the owner only (it holds secrets).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            crate::private::ensure_dir(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = toml::to_string_pretty(self).context("cannot serialise config")?;
        let tmp = path.with_extension("toml.tmp");
        write_private(&tmp, text.as_bytes())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Writes a new file that only the owner can read from the moment it
/// exists (no window between create and chmod). A leftover file of the same
/// name (an earlier crash) is replaced, not reused with its permissions.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Where `listen` starts its embedded relay when no relay is configured; its
/// port is preferred so the URL survives restarts.
pub const EMBEDDED_RELAY_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7070);

/// The relay URL used when none is configured: the embedded relay's.
pub fn default_relay_url() -> String {
    format!("http://{EMBEDDED_RELAY_ADDR}")
}

/// Default retention: most exchanges kept.
pub const DEFAULT_KEEP: u64 = 10_000;
/// Default retention: most body bytes kept (1 GiB).
pub const DEFAULT_KEEP_BYTES: u64 = 1024 * 1024 * 1024;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_round_trips_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        assert_eq!(
            ConfigFile::load(&paths.config_file()).unwrap(),
            ConfigFile::default()
        );
        let cfg = ConfigFile {
            relay: Some("https://r.example".into()),
            token: Some("s3cret".into()),
            ..ConfigFile::default()
        };
        cfg.save(&paths.config_file()).unwrap();
        assert_eq!(ConfigFile::load(&paths.config_file()).unwrap(), cfg);
        assert!(!format!("{cfg:?}").contains("s3cret"));
        std::fs::write(paths.config_file(), "relya = 1").unwrap();
        let err = ConfigFile::load(&paths.config_file()).unwrap_err();
        assert!(format!("{err:#}").contains("not a valid hooktunnel config"));
    }

    #[cfg(unix)]
    #[test]
    fn the_config_file_is_private_from_creation() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        // A stale temp file readable by everyone must not lend its mode.
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, "old").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&tmp, b"x").unwrap();
        let mode = std::fs::metadata(&tmp).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        ConfigFile {
            token: Some("t".into()),
            ..ConfigFile::default()
        }
        .save(&path)
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn secrets_are_masked_unless_the_config_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        assert!(
            ConfigFile::masks_secrets(&paths),
            "on without a config file"
        );
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(paths.config_file(), "mask_secrets = false\n").unwrap();
        assert!(!ConfigFile::masks_secrets(&paths));
        std::fs::write(paths.config_file(), "mask_secrets = true\n").unwrap();
        assert!(ConfigFile::masks_secrets(&paths));
    }

    #[test]
    fn names_are_kept_per_relay() {
        let mut cfg = ConfigFile {
            name: Some("old".into()),
            ..ConfigFile::default()
        };
        // A file from before per-relay names still gives its name.
        assert_eq!(cfg.name_for("https://a.example"), Some("old"));
        let a = relay_key("https://a.example/", false);
        assert!(cfg.remember_name(&a, "app-a"));
        assert!(!cfg.remember_name(&a, "app-a"));
        assert!(cfg.remember_name(&relay_key("http://x:1", true), "local"));
        assert_eq!(cfg.name_for("https://a.example"), Some("app-a"));
        assert_eq!(cfg.name_for(EMBEDDED_KEY), Some("local"));
        assert_eq!(cfg.name_for("https://b.example"), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        cfg.save(&path).unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap(), cfg);
    }

    #[test]
    fn the_default_relay_is_the_embedded_one() {
        assert_eq!(default_relay_url(), "http://127.0.0.1:7070");
    }
}
