//! One module per subcommand, each with a `run`.

pub mod clear;
pub mod export;
pub mod listen;
pub mod replay;
pub mod requests;
pub mod show;
pub mod trigger;

use crate::cli::{Cli, Command};
use crate::config::Paths;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    match cli.command {
        Command::Listen(args) => listen::run(args, paths).await,
        Command::Requests(args) => requests::run(&args, &paths),
        Command::Show(args) => show::run(&args, &paths),
        Command::Inspect(args) if args.web => crate::web::inspect(&args.web_args, &paths).await,
        Command::Inspect(_) => {
            let secrets = trigger::secrets_with_sources(&[], "", &paths);
            crate::tui::run_inspect(paths, secrets).await
        }
        Command::Replay(args) => replay::run(&args, &paths).await,
        Command::Export(args) => export::run(&args, &paths),
        Command::Clear(args) => clear::run(&args, &paths),
        Command::Trigger(args) => trigger::run(&args, &paths).await,
    }
}
