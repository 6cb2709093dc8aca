//! Admin commands that talk to a running server over gRPC (`clientele user …`, `resolve`,
//! `auth check`). The server address comes from `--server` / `CLIENTELE_SERVER`, the bearer
//! token from `CLIENTELE_TOKEN`, passwords from `CLIENTELE_PASSWORD` or the first line of stdin
//! (never from the command line, where other users could read them).

use std::process::ExitCode;

use clap::Subcommand;

/// `println!` that ignores a closed stdout (`clientele … | head -1` must not panic).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use tonic::{metadata::MetadataValue, transport::Channel, Request};

use crate::proto::{
    self as pb, auth_service_client::AuthServiceClient,
    customer_user_service_client::CustomerUserServiceClient,
    search_customer_users_request::Criterion,
};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Print one customer user.
    Get { login: String },
    /// Search with the OTRS grammar.
    Search {
        query: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Create a customer user.
    Create {
        #[arg(long)]
        login: String,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        customer_id: String,
        #[arg(long, default_value = "")]
        source: String,
        /// Generate a password (printed once).
        #[arg(long)]
        generate_password: bool,
    },
    /// Set a password (from CLIENTELE_PASSWORD or stdin).
    SetPassword { login: String },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Check a login's password (from CLIENTELE_PASSWORD or stdin).
    Check { login: String },
}

/// A client command.
#[derive(Debug)]
pub enum ClientCommand {
    User(UserCommand),
    Resolve(Vec<String>),
    Auth(AuthCommand),
}

fn authed<T>(message: T) -> Result<Request<T>, String> {
    let mut req = Request::new(message);
    if let Ok(token) = std::env::var("CLIENTELE_TOKEN") {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| "CLIENTELE_TOKEN is not a valid header value".to_owned())?;
        req.metadata_mut().insert("authorization", value);
    }
    Ok(req)
}

fn password() -> Result<String, String> {
    if let Ok(p) = std::env::var("CLIENTELE_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn show(u: &pb::CustomerUser) -> String {
    let validity = pb::Validity::try_from(u.validity).map_or("?", |v| v.as_str_name());
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        u.login, u.full_name, u.email, u.customer_id, validity, u.source
    )
}

/// Runs a client command against `server`; exit code 1 on any error.
pub async fn run(server: &str, command: ClientCommand) -> ExitCode {
    match run_inner(server, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner(server: &str, command: ClientCommand) -> Result<(), String> {
    let channel = Channel::from_shared(server.to_owned())
        .map_err(|e| format!("--server {server}: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    let mut users = CustomerUserServiceClient::new(channel.clone());
    let status = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
    match command {
        ClientCommand::User(UserCommand::Get { login }) => {
            let u = users
                .get_customer_user(authed(pb::GetCustomerUserRequest { login })?)
                .await
                .map_err(status)?;
            say!("{}", show(&u.into_inner()));
        }
        ClientCommand::User(UserCommand::Search { query, limit }) => {
            let r = users
                .search_customer_users(authed(pb::SearchCustomerUsersRequest {
                    criterion: Some(Criterion::Query(query)),
                    limit,
                    ..Default::default()
                })?)
                .await
                .map_err(status)?
                .into_inner();
            for u in &r.customer_users {
                say!("{}", show(u));
            }
            for s in r.source_status.iter().filter(|s| !s.ok) {
                eprintln!("source {}: {}", s.source, s.error);
            }
            if r.truncated {
                eprintln!("(more results: raise --limit or narrow the query)");
            }
        }
        ClientCommand::User(UserCommand::Create {
            login,
            first_name,
            last_name,
            email,
            customer_id,
            source,
            generate_password,
        }) => {
            let r = users
                .create_customer_user(authed(pb::CreateCustomerUserRequest {
                    source,
                    customer_user: Some(pb::CustomerUser {
                        login,
                        first_name,
                        last_name,
                        email,
                        customer_id,
                        ..Default::default()
                    }),
                    password: None,
                    generate_password,
                })?)
                .await
                .map_err(status)?
                .into_inner();
            if let Some(u) = &r.customer_user {
                say!("{}", show(u));
            }
            if !r.generated_password.is_empty() {
                say!("generated password: {}", r.generated_password);
            }
        }
        ClientCommand::User(UserCommand::SetPassword { login }) => {
            let password = password()?;
            AuthServiceClient::new(channel)
                .set_password(authed(pb::SetPasswordRequest { login, password })?)
                .await
                .map_err(status)?;
            say!("password set");
        }
        ClientCommand::Resolve(addresses) => {
            let r = users
                .resolve_senders(authed(pb::ResolveSendersRequest { addresses })?)
                .await
                .map_err(status)?
                .into_inner();
            for res in &r.results {
                let logins: Vec<&str> = res
                    .customer_users
                    .iter()
                    .map(|u| u.login.as_str())
                    .collect();
                let note = if !res.error.is_empty() {
                    res.error.clone()
                } else if res.ambiguous {
                    "ambiguous".to_owned()
                } else {
                    String::new()
                };
                say!(
                    "{}\t{}\t{}\t{}",
                    res.address,
                    res.normalized,
                    logins.join(","),
                    note
                );
            }
        }
        ClientCommand::Auth(AuthCommand::Check { login }) => {
            let password = password()?;
            let r = AuthServiceClient::new(channel)
                .authenticate(authed(pb::AuthenticateRequest {
                    login,
                    password,
                    client_ip: String::new(),
                    otp: String::new(),
                })?)
                .await
                .map_err(status)?
                .into_inner();
            let outcome = pb::Outcome::try_from(r.outcome).map_or("?", |o| o.as_str_name());
            say!("{outcome}\t{}\t{}", r.source, r.customer_ids.join(","));
            if r.outcome != pb::Outcome::Success as i32 {
                return Err(format!("authentication: {outcome}"));
            }
        }
    }
    Ok(())
}
