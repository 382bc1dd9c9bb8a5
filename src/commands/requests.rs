//! `hooktunnel requests`: the history, newest first.

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;

use crate::cli::RequestsArgs;
use crate::config::Paths;
use crate::output;
use crate::store::Store;

/// Runs `requests`.
pub fn run(args: &RequestsArgs, paths: &Paths) -> anyhow::Result<()> {
    let store = Store::open(&paths.db()).context("cannot open the history")?;
    let rows = store.list(args.limit, 0)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = rows.iter().map(crate::export::summary_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(
            out,
            "No requests captured yet. Run `hooktunnel listen <PORT>` and send one."
        )?;
        return Ok(());
    }
    let color = output::color_enabled(std::io::stdout().is_terminal());
    for row in &rows {
        writeln!(out, "{}", output::exchange_line(row, color))?;
    }
    Ok(())
}
