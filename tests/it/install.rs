//! What installing hooktunnel takes besides the binary: shell completions,
//! the man page, `--version`, and the relay's systemd unit in `deploy/`.

use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

use crate::support::hooktunnel;

/// True when `program` runs on this machine.
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The completion script for `shell`, checked to name the subcommands.
fn completion(shell: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = hooktunnel(home.path())
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{shell}: {out:?}");
    let script = String::from_utf8(out.stdout).unwrap();
    for sub in ["listen", "replay", "requests", "completions"] {
        assert!(script.contains(sub), "{shell} completion lacks {sub}");
    }
    script
}

/// Runs `shell` with `args` and the script at the end; skips (with a
/// notice) when that shell is not installed.
fn parses(shell: &str, args: &[&str], script: &str) {
    if !have(shell) {
        eprintln!(
            "notice: {shell} not installed; its completion script was only checked for content"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(shell).args(args).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{shell} rejects its completion script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completion_scripts_parse_in_their_shells() {
    parses("bash", &["-n"], &completion("bash"));
    parses("zsh", &["-n"], &completion("zsh"));
    parses("fish", &["--no-execute"], &completion("fish"));
    let ps = completion("powershell");
    assert!(ps.contains("Register-ArgumentCompleter"), "{ps}");
}

#[test]
fn bash_completion_completes_subcommands() {
    if !have("bash") {
        eprintln!("notice: bash not installed; skipped");
        return;
    }
    let script = completion("bash");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hooktunnel.bash");
    std::fs::write(&file, script).unwrap();
    // What bash does on `hooktunnel rep<TAB>`.
    let probe = format!(
        "source {}; COMP_WORDS=(hooktunnel rep); COMP_CWORD=1; COMP_LINE='hooktunnel rep'; COMP_POINT=14; _hooktunnel hooktunnel rep hooktunnel; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let replies = String::from_utf8_lossy(&out.stdout);
    assert!(replies.lines().any(|l| l == "replay"), "{replies}");
}

#[test]
fn man_page_is_roff_naming_the_subcommands() {
    let home = tempfile::tempdir().unwrap();
    let out = hooktunnel(home.path()).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH hooktunnel"),
        "{page}"
    );
    for sub in ["listen", "replay", "completions", "man"] {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    if have("groff") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hooktunnel.1");
        std::fs::write(&file, &page).unwrap();
        let out = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "groff warns: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn version_names_the_protocol_and_log_flags_are_documented() {
    let home = tempfile::tempdir().unwrap();
    hooktunnel(home.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "(protocol {})",
            hooktunnel_relay::protocol::PROTOCOL_VERSION
        )));
    hooktunnel(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("HOOKTUNNEL_LOG")
                .and(predicate::str::contains("--verbose"))
                .and(predicate::str::contains("--quiet")),
        );
    // -q and -vv are accepted anywhere on the line.
    hooktunnel(home.path())
        .args(["requests", "-q"])
        .assert()
        .success();
    hooktunnel(home.path())
        .args(["-vv", "requests"])
        .assert()
        .success();
    hooktunnel(home.path())
        .args(["-v", "-q", "requests"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot be used with"));
}

/// `deploy/hooktunnel-relay.service` as `(section, key, value)` triples;
/// fails on anything that is not a comment, a section or `key=value`.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        assert!(!section.is_empty(), "line {}: outside a section", n + 1);
        entries.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    entries
}

#[test]
fn the_relay_unit_is_hardened_and_verifies() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/hooktunnel-relay.service"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let entries = unit_entries(&text);
    let get = |section: &str, key: &str| {
        entries
            .iter()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .unwrap_or_else(|| panic!("[{section}] {key} missing"))
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "hooktunnel-relay"),
    ] {
        assert_eq!(get("Service", key), value, "{key}");
    }
    let exec = get("Service", "ExecStart");
    assert!(exec.contains("hooktunnel-relay"), "{exec}");
    // Every flag in ExecStart is one the relay knows (when its binary was
    // built alongside, as `cargo test --workspace` does).
    let relay =
        std::path::Path::new(env!("CARGO_BIN_EXE_hooktunnel")).with_file_name("hooktunnel-relay");
    match Command::new(&relay).arg("--help").output() {
        Ok(out) if out.status.success() => {
            let help = String::from_utf8_lossy(&out.stdout);
            for flag in exec.split_whitespace().filter(|w| w.starts_with("--")) {
                assert!(help.contains(flag), "the relay has no {flag}");
            }
        }
        _ => eprintln!(
            "notice: {} not built; ExecStart flags not checked",
            relay.display()
        ),
    }
    assert_eq!(get("Install", "WantedBy"), "multi-user.target");

    if !have("systemd-analyze") {
        eprintln!("notice: systemd-analyze not installed; the unit was only parsed");
        return;
    }
    // verify wants ExecStart to exist: point it at a binary that does.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("hooktunnel-relay.service");
    std::fs::write(
        &unit,
        text.replace(
            "/usr/local/bin/hooktunnel-relay",
            env!("CARGO_BIN_EXE_hooktunnel"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("hooktunnel-relay.service:"),
        "warnings about the unit: {stderr}"
    );
}

#[test]
fn the_caddy_example_proxies_the_relay_and_its_subdomains() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/Caddyfile");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("*.hooks.example.com"), "wildcard subdomains");
    assert!(
        text.contains("reverse_proxy 127.0.0.1:8080"),
        "the relay upstream"
    );
    assert!(
        text.contains("/_hooktunnel/connect"),
        "the agent WebSocket is named"
    );
    let opens = text.matches('{').count();
    assert_eq!(opens, text.matches('}').count(), "balanced braces");
    if have("caddy") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, &text).unwrap();
        let out = Command::new("caddy")
            .args(["adapt", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        // A stock caddy lacks the DNS module the wildcard certificate needs.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("dns.providers.cloudflare"),
            "caddy adapt: {stderr}"
        );
    } else {
        eprintln!("notice: caddy not installed; the Caddyfile was only checked for content");
    }
}
