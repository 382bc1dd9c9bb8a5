//! The one place signature secrets are looked up: command-line flags, then
//! `HOOKTUNNEL_VERIFY`, then `verify = [...]` in the config file.
//!
//! `listen` (verdicts), `replay --resign`, `trigger --sign` and the inspector
//! all resolve secrets here, so a secret set once works everywhere.

use std::fmt;

use anyhow::Context as _;

use crate::config::{ConfigFile, Paths};
use crate::verify::{Provider, SecretSpec};

/// The environment variable holding comma-separated `PROVIDER:SECRET` entries.
pub const ENV: &str = "HOOKTUNNEL_VERIFY";

/// Where a signing secret came from; shown to the user instead of the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// The command line (`--verify`, `--sign`, `--resign`).
    Flag(&'static str),
    /// `HOOKTUNNEL_VERIFY`.
    Env,
    /// `verify = [...]` in the config file at this path.
    Config(String),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "{flag}"),
            Self::Env => f.write_str(ENV),
            Self::Config(path) => write!(f, "`verify` in {path}"),
        }
    }
}

/// Parses `HOOKTUNNEL_VERIFY`'s value (comma-separated `PROVIDER:SECRET`).
pub fn parse_env(value: &str) -> anyhow::Result<Vec<SecretSpec>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            part.parse().with_context(|| {
                format!("bad entry in {ENV} (expected PROVIDER:SECRET, comma-separated)")
            })
        })
        .collect()
}

/// Parses the config file's `verify` entries; errors name the file.
pub fn parse_config(
    config: &ConfigFile,
    path: &std::path::Path,
) -> anyhow::Result<Vec<SecretSpec>> {
    config
        .verify
        .iter()
        .map(|entry| {
            entry
                .parse()
                .with_context(|| format!("bad `verify` entry in {}", path.display()))
        })
        .collect()
}

/// Every secret, each with where it came from: `flags` (labelled `flag`),
/// then `HOOKTUNNEL_VERIFY`, then the config file. A secret given twice (a
/// flag clap already filled from the environment) is listed once, first
/// source wins.
pub fn resolve(
    flags: &[SecretSpec],
    flag: &'static str,
    paths: &Paths,
) -> anyhow::Result<Vec<(SecretSpec, SecretSource)>> {
    let mut out: Vec<(SecretSpec, SecretSource)> = flags
        .iter()
        .map(|s| (s.clone(), SecretSource::Flag(flag)))
        .collect();
    if let Ok(env) = std::env::var(ENV) {
        out.extend(parse_env(&env)?.into_iter().map(|s| (s, SecretSource::Env)));
    }
    let path = paths.config_file();
    let config = ConfigFile::load(&path)?;
    let source = SecretSource::Config(path.display().to_string());
    out.extend(
        parse_config(&config, &path)?
            .into_iter()
            .map(|s| (s, source.clone())),
    );
    let mut unique: Vec<(SecretSpec, SecretSource)> = Vec::with_capacity(out.len());
    for entry in out {
        if !unique.iter().any(|(s, _)| *s == entry.0) {
            unique.push(entry);
        }
    }
    Ok(unique)
}

/// The configured secrets (environment and config file, no flags).
pub fn configured(paths: &Paths) -> anyhow::Result<Vec<(SecretSpec, SecretSource)>> {
    resolve(&[], "", paths)
}

/// The first configured secret for `provider`.
pub fn configured_for(
    paths: &Paths,
    provider: Provider,
) -> anyhow::Result<Option<(SecretSpec, SecretSource)>> {
    Ok(configured(paths)?
        .into_iter()
        .find(|(s, _)| s.provider == provider))
}

/// [`resolve`] for display (the inspector): sources as text, and an
/// unreadable environment or config file adds nothing instead of failing.
pub fn with_sources(
    flags: &[SecretSpec],
    flag: &'static str,
    paths: &Paths,
) -> Vec<(SecretSpec, String)> {
    let resolved = resolve(flags, flag, paths).unwrap_or_else(|_| {
        flags
            .iter()
            .map(|s| (s.clone(), SecretSource::Flag(flag)))
            .collect()
    });
    resolved
        .into_iter()
        .map(|(s, src)| (s, src.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_then_config_each_secret_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        ConfigFile {
            verify: vec!["stripe:whsec_a".into(), "github:gh".into()],
            ..ConfigFile::default()
        }
        .save(&paths.config_file())
        .unwrap();
        let flag = SecretSpec::new(Provider::Stripe, "whsec_a");
        let got = resolve(std::slice::from_ref(&flag), "--verify", &paths).unwrap();
        // The process environment is not touched by tests; skip its entries.
        let got: Vec<_> = got
            .into_iter()
            .filter(|(_, s)| *s != SecretSource::Env)
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], (flag, SecretSource::Flag("--verify")));
        assert_eq!(got[1].0, SecretSpec::new(Provider::GitHub, "gh"));
        assert!(matches!(got[1].1, SecretSource::Config(_)));
        assert!(
            configured_for(&paths, Provider::GitHub)
                .unwrap()
                .is_some_and(|(s, _)| s.secret == "gh")
        );
    }

    #[test]
    fn bad_entries_say_where_they_are() {
        let err = parse_env("stripe:x, nonsense").unwrap_err();
        assert!(format!("{err:#}").contains(ENV), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        std::fs::write(paths.config_file(), "verify = [\"gitlab:x\"]\n").unwrap();
        let err = resolve(&[], "", &paths).unwrap_err();
        assert!(format!("{err:#}").contains("config.toml"), "{err:#}");
        // The display form never fails.
        assert!(with_sources(&[], "", &paths).is_empty());
    }
}
