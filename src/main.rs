use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    clientele::cli::run(clientele::cli::Cli::parse()).await
}
