//! One module per subcommand, each with a `run`.

pub mod clear;
pub mod completions;
pub mod export;
pub mod listen;
pub mod release;
pub mod replay;
pub mod requests;
pub mod show;
pub mod stats;
pub mod status;
pub mod trigger;

use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::config::Paths;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // These print facts about the binary: no home directory needed.
    match &cli.command {
        Command::Completions(args) => return completions::completions(args.shell),
        Command::Man => return completions::man(),
        _ => {}
    }
    let paths = Paths::discover()?;
    match cli.command {
        Command::Listen(args) => listen::run(*args, paths).await,
        Command::Requests(args) => requests::run(&args, &paths),
        Command::Show(args) => show::run(&args, &paths),
        Command::Stats(args) => stats::run(&args, &paths),
        Command::Inspect(args) if args.web => crate::web::inspect(&args.web_args, &paths).await,
        Command::Inspect(_) => {
            let options = crate::tui::Options {
                secrets: crate::secrets::with_sources(&[], "", &paths),
                mask_secrets: crate::config::ConfigFile::masks_secrets(&paths),
            };
            crate::tui::run_inspect(paths, options).await
        }
        Command::Replay(args) => replay::run(&args, &paths).await,
        Command::Export(args) => export::run(&args, &paths),
        Command::Clear(args) => clear::run(&args, &paths),
        Command::Trigger(args) => trigger::run(&args, &paths).await,
        Command::Status(args) => status::run(&args, &paths),
        Command::Release(args) => release::run(&args, &paths).await,
        Command::Completions(_) | Command::Man => Ok(()),
    }
}

/// `--timeout SECS` as a duration; zero, negative and non-finite values are refused.
pub fn timeout(secs: f64) -> anyhow::Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timeouts_must_be_positive_and_finite() {
        assert_eq!(timeout(1.5).unwrap(), Duration::from_millis(1500));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = timeout(bad).unwrap_err();
            assert!(err.to_string().contains("--timeout"), "{bad}: {err}");
        }
    }
}
