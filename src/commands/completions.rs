//! `hooktunnel completions SHELL` and `hooktunnel man`: generated from the
//! clap definition, so they never drift from `--help`.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::Cli;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "hooktunnel", &mut out);
    out.flush()?;
    Ok(())
}

/// Writes the manual page (roff) to stdout.
pub fn man() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(())
}
