//! The command line: the server commands (`serve`, `migrate`, `check-config`, `add-indexes`,
//! `seed`) run here on the configuration; the admin client commands (`customer …`, `user …`,
//! `group …`, `auth …`, `resolve`) are parsed here and run by [`crate::client`] against a
//! running server.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::client::{
    AuthCommand, ClientCommand, CustomerCommand, GroupCommand, Output, UserCommand,
};
use crate::say;
use crate::{app, config::Config, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "clientele",
    version,
    about = "Customer users, customers and their logins over gRPC"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./clientele.toml if it exists, else the embedded
    /// default (SQLite in ./clientele.db on 127.0.0.1:50051).
    #[arg(long, short, env = "CLIENTELE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The server of the client commands.
    #[arg(
        long,
        env = "CLIENTELE_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,
    /// How the client commands print answers: tab-separated rows, or the whole answer as JSON.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API.
    Serve {
        /// Overrides server.listen.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Create or upgrade the tables of every source that Clientele owns (`migrate = true`).
    Migrate,
    /// Validate the configuration, connect to every source and report each one's state.
    CheckConfig,
    /// Fill a SQL source with a deterministic data set (load tests, trials).
    Seed {
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        #[arg(long, default_value_t = 1_000)]
        customers: usize,
        /// The customer-user source to fill.
        #[arg(long, default_value = "local")]
        source: String,
        /// Every seeded user's password.
        #[arg(long, env = "CLIENTELE_SEED_PASSWORD", default_value = "Load-Test-1")]
        password: String,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Add the search and lookup indexes to every SQL customer-user table — also to tables
    /// Clientele does not own (a Znuny database) — and change nothing else.
    AddIndexes,
    /// Customers (companies) on a running server.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Customer users on a running server.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups and permissions on a running server.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Resolve mail sender addresses on a running server.
    Resolve {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Logins on a running server: check, unlock, set a password.
    #[command(subcommand)]
    Auth(AuthCommand),
}

/// Runs the command line; the exit code is non-zero on any failure.
pub async fn run(cli: Cli) -> ExitCode {
    let client = match cli.command {
        Command::User(c) => ClientCommand::User(c),
        Command::Customer(c) => ClientCommand::Customer(c),
        Command::Group(c) => ClientCommand::Group(c),
        Command::Resolve { addresses } => ClientCommand::Resolve(addresses),
        Command::Auth(c) => ClientCommand::Auth(c),
        server_side => return run_server_command(cli.config, server_side).await,
    };
    crate::client::run(&cli.server, cli.output, client).await
}

async fn run_server_command(config: Option<PathBuf>, command: Command) -> ExitCode {
    let path = config.or_else(|| {
        let default = PathBuf::from("clientele.toml");
        default.exists().then_some(default)
    });
    let settings = match Config::load(path.as_deref(), std::env::vars()) {
        Ok(mut s) => {
            if let Command::Serve { listen: Some(l) } = &command {
                s.server.listen.clone_from(l);
            }
            s
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let telemetry = telemetry::init(settings.server.log_format == "json");
    let code = run_command(command, settings).await;
    telemetry.shutdown();
    code
}

async fn run_command(command: Command, settings: crate::config::Settings) -> ExitCode {
    let built = match app::build(settings) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Serve { .. } => {
            let listener = match app::bind(&built.settings).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "clientele serving");
            }
            for (label, r) in built.migrate().await {
                if let Err(e) = r {
                    tracing::warn!(database = %label, error = %e, "database not ready; its sources answer with their error until it is");
                }
            }
            match built.serve(listener, shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate => report(built.migrate().await, "migrated"),
        Command::AddIndexes => report(built.add_indexes().await, "indexed"),
        Command::Seed {
            users,
            customers,
            source,
            password,
            seed,
        } => match built.seed(&source, users, customers, &password, seed).await {
            Ok(msg) => {
                say!("{msg}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig => {
            say!("configuration: ok");
            report(built.check_sources().await, "ok")
        }
        // Dispatched to the client by `run` before any configuration is read.
        Command::User(_)
        | Command::Customer(_)
        | Command::Group(_)
        | Command::Resolve { .. }
        | Command::Auth(_) => ExitCode::FAILURE,
    }
}

fn report(results: Vec<(String, Result<(), String>)>, ok_word: &str) -> ExitCode {
    let mut failed = false;
    for (what, r) in results {
        match r {
            Ok(()) => say!("{what}: {ok_word}"),
            Err(e) => {
                failed = true;
                say!("{what}: FAILED: {e}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
