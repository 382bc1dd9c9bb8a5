//! `hooktunnel`: thin entry point; everything lives in the library.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = hooktunnel::cli::Cli::parse();
    hooktunnel::logging::init(cli.log_level());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hooktunnel: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hooktunnel::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`hooktunnel requests | head`) is not a failure.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "hooktunnel: error: {}",
                hooktunnel::error_chain::one_line(&err)
            );
            ExitCode::FAILURE
        }
    }
}
