//! The `clientele` binary: parses the command line and hands it to [`clientele::cli::run`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: a search turns hundreds of rows into records and
/// messages, and glibc's malloc/free were a quarter of the server's CPU time under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    clientele::cli::run(clientele::cli::Cli::parse()).await
}
