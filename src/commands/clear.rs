//! `hooktunnel clear`: delete the stored history.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::Context as _;

use crate::cli::ClearArgs;
use crate::config::Paths;
use crate::output;
use crate::store::Store;

/// Runs `clear`.
pub fn run(args: &ClearArgs, paths: &Paths) -> anyhow::Result<()> {
    let db = paths.db();
    let mut store = Store::open(&db).context("cannot open the history")?;
    let count = store.count()?;
    if count == 0 {
        writeln!(
            std::io::stdout(),
            "History is already empty ({}).",
            db.display()
        )?;
        return Ok(());
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "refusing to delete {} without confirmation; pass --yes to clear from a script",
                output::plural(count, "stored exchange", "stored exchanges")
            );
        }
        let mut err = std::io::stderr().lock();
        write!(
            err,
            "Delete {} from {}? This cannot be undone. [y/N] ",
            if count == 1 {
                "the 1 stored exchange".to_owned()
            } else {
                format!("all {count} stored exchanges")
            },
            db.display()
        )?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            writeln!(err, "Nothing deleted.")?;
            return Ok(());
        }
    }
    let removed = store.clear()?;
    writeln!(
        std::io::stdout(),
        "Deleted {removed} exchange{}.",
        if removed == 1 { "" } else { "s" }
    )?;
    Ok(())
}
