//! One module per subcommand, each with a `run`.

pub mod listen;
pub mod requests;
pub mod show;

use crate::cli::{Cli, Command};
use crate::config::Paths;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    match cli.command {
        Command::Listen(args) => listen::run(args, paths).await,
        Command::Requests(args) => requests::run(&args, &paths),
        Command::Show(args) => show::run(&args, &paths),
    }
}
