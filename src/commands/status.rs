//! `hooktunnel status`: this machine's tunnels, remembered names, history
//! size and file locations. Reads only; never creates the history.

use std::io::Write as _;

use anyhow::Context as _;
use serde_json::json;

use crate::cli::StatusArgs;
use crate::config::{ConfigFile, Paths};
use crate::running::{self, Found};
use crate::sanitize;
use crate::store::Store;

/// What `status` reports, gathered before rendering.
struct Report {
    tunnels: Vec<Found>,
    names: Vec<(String, String)>,
    exchanges: Option<u64>,
    disk_bytes: u64,
}

/// Runs `status`.
pub fn run(args: &StatusArgs, paths: &Paths) -> anyhow::Result<()> {
    let config = ConfigFile::load(&paths.config_file())?;
    let tunnels = running::list(paths);
    for stale in tunnels.iter().filter(|f| !f.online) {
        // Left by a `listen` that was killed: reported once, then removed.
        running::forget(stale);
    }
    let db = paths.db();
    let exchanges = if db.exists() {
        Some(
            Store::open(&db)
                .and_then(|s| s.count())
                .context("cannot read the history")?,
        )
    } else {
        None
    };
    let disk_bytes = crate::private::sqlite_files(&db)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut names: Vec<(String, String)> = config.names.clone().into_iter().collect();
    if names.is_empty()
        && let Some(name) = &config.name
    {
        names.push(("(any relay)".into(), name.clone()));
    }
    let report = Report {
        tunnels,
        names,
        exchanges,
        disk_bytes,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", crate::json::to_string(&to_json(&report, paths))?)?;
    } else {
        out.write_all(render(&report, paths).as_bytes())?;
    }
    Ok(())
}

fn to_json(report: &Report, paths: &Paths) -> serde_json::Value {
    let tunnels: Vec<serde_json::Value> = report
        .tunnels
        .iter()
        .map(|f| {
            json!({
                "name": f.state.name,
                "public_url": f.state.public_url,
                "relay": f.state.relay,
                "embedded": f.state.embedded,
                "target": f.state.target,
                "online": f.online,
                "pid": f.state.pid,
                "since": crate::clock::rfc3339_ms(f.state.since_ms),
                "web_url": f.state.web_url,
            })
        })
        .collect();
    let names: serde_json::Map<String, serde_json::Value> = report
        .names
        .iter()
        .map(|(relay, name)| (relay.clone(), json!(name)))
        .collect();
    json!({
        "tunnels": tunnels,
        "names": names,
        "history": {
            "exchanges": report.exchanges.unwrap_or(0),
            "disk_bytes": report.disk_bytes,
        },
        "paths": {
            "config": paths.config_file(),
            "data": paths.data_dir,
            "history": paths.db(),
        },
    })
}

fn render(report: &Report, paths: &Paths) -> String {
    let mut text = String::new();
    if report.tunnels.is_empty() {
        text.push_str("No tunnel running: start one with `hooktunnel listen <PORT>`.\n");
    }
    for f in &report.tunnels {
        let s = &f.state;
        text.push_str(&format!(
            "Tunnel {}  {}\n  public URL  {}\n  relay       {}{}\n  local app   {}\n  since       {}  (pid {})\n",
            sanitize::escape(&s.name),
            if f.online {
                "online"
            } else {
                "offline (its listen was stopped without cleaning up)"
            },
            sanitize::escape(&s.public_url),
            sanitize::escape(&s.relay),
            if s.embedded { " (embedded)" } else { "" },
            sanitize::escape(&s.target),
            crate::output::timestamp(s.since_ms),
            s.pid,
        ));
        if let Some(web) = &s.web_url {
            text.push_str(&format!("  web         {}\n", sanitize::escape(web)));
        }
    }
    if !report.names.is_empty() {
        text.push_str("Remembered names\n");
        for (relay, name) in &report.names {
            text.push_str(&format!(
                "  {}  {}\n",
                sanitize::escape(name),
                sanitize::escape(relay)
            ));
        }
    }
    text.push_str(&match report.exchanges {
        Some(n) => format!(
            "History  {}, {} on disk\n",
            crate::output::plural(n, "exchange", "exchanges"),
            crate::output::size(report.disk_bytes)
        ),
        None => "History  empty (nothing captured yet)\n".to_owned(),
    });
    text.push_str(&format!(
        "Files\n  config   {}\n  data     {}\n  history  {}\n",
        paths.config_file().display(),
        paths.data_dir.display(),
        paths.db().display()
    ));
    text
}
