//! Hostile-caller soak: a bounded number of calls that a careless or hostile client sends —
//! unknown methods on random paths, logins that do not exist, and a new `client_ip` for every
//! login attempt — against a running server on this machine, reporting the server's resident
//! memory and the size of its `/metrics` before and after. Memory that grows with the number of
//! distinct paths, logins or client addresses is a leak an attacker can drive.
//!
//! ```sh
//! cargo build --release --bin clientele --example hostile
//! dir=$(mktemp -d)   # a fresh ./clientele.db; cheap hashes: the soak measures state, not argon2
//! (cd "$dir" && CLIENTELE_AUTH__ARGON2__MEMORY_KIB=64 CLIENTELE_AUTH__ARGON2__ITERATIONS=1 \
//!   exec "$OLDPWD"/target/release/clientele serve) &
//! target/release/examples/hostile --calls 100000 --server-pid $!
//! ```
//!
//! Only loopback targets are accepted; the run stops after `--calls` calls.
#![allow(clippy::unwrap_used, clippy::expect_used)] // soak tool: a failed step ends the run

use std::{net::IpAddr, sync::Arc, time::Instant};

use clap::Parser;
use clientele::proto::{self as pb, auth_service_client::AuthServiceClient};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Prometheus endpoint of the server (`server.metrics_listen`).
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: String,
    /// Calls in all, a third of each kind.
    #[arg(long, default_value_t = 100_000)]
    calls: usize,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Bearer token, if the server has callers.
    #[arg(long, env = "CLIENTELE_TOKEN")]
    token: Option<String>,
    /// The server's process id, to report its resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory(pid: Option<u32>) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Lines and bytes of `/metrics`, read over a plain HTTP/1.1 request.
async fn metrics_size(addr: &str) -> Option<(usize, usize)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    let body = body.split_once("\r\n\r\n")?.1;
    Some((body.lines().count(), body.len()))
}

fn authed<T>(m: T, token: &Option<String>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

/// One call of kind `i % 3`: a random path, a random login, or a random client address.
async fn one(channel: Channel, token: &Option<String>, rng: &mut StdRng, i: usize) {
    match i % 3 {
        0 => {
            let mut grpc = tonic::client::Grpc::new(channel);
            if grpc.ready().await.is_err() {
                return;
            }
            let path = format!(
                "/clientele.v1.{:08x}/{:08x}",
                rng.gen::<u32>(),
                rng.gen::<u32>()
            );
            let codec =
                tonic_prost::ProstCodec::<pb::GetCustomerUserRequest, pb::CustomerUser>::default();
            let _ = grpc
                .unary(
                    authed(pb::GetCustomerUserRequest::default(), token),
                    path.parse().unwrap(),
                    codec,
                )
                .await;
        }
        kind => {
            let login = format!("nobody-{:016x}", rng.gen::<u64>());
            let client_ip = if kind == 2 {
                IpAddr::from(rng.gen::<[u8; 16]>()).to_string()
            } else {
                String::new()
            };
            let _ = AuthServiceClient::new(channel)
                .authenticate(authed(
                    pb::AuthenticateRequest {
                        login,
                        password: "wrong-password".into(),
                        client_ip,
                        otp: String::new(),
                    },
                    token,
                ))
                .await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let uri: http::Uri = args.server.parse()?;
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback());
    if !loopback {
        return Err(format!("refusing {host}: the soak only targets loopback servers").into());
    }
    let channel = Channel::from_shared(args.server.clone())?.connect().await?;
    let before = (memory(args.server_pid), metrics_size(&args.metrics).await);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (channel, token, next, calls) = (
                channel.clone(),
                args.token.clone(),
                next.clone(),
                args.calls,
            );
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w as u64);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= calls {
                        break;
                    }
                    one(channel.clone(), &token, &mut rng, i).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let took = started.elapsed();
    let after = (memory(args.server_pid), metrics_size(&args.metrics).await);
    println!(
        "{} calls in {:.1} s ({:.0}/s): a third each to random paths, random logins, random client_ip",
        args.calls,
        took.as_secs_f64(),
        args.calls as f64 / took.as_secs_f64()
    );
    for (name, (mem, met)) in [("before", before), ("after", after)] {
        let mem = mem.map_or("n/a (no --server-pid)".into(), |(rss, hwm)| {
            format!(
                "RSS {:.1} MiB (peak {:.1} MiB)",
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0
            )
        });
        let met = met.map_or("n/a".into(), |(lines, bytes)| {
            format!("{lines} lines, {:.1} KiB", bytes as f64 / 1024.0)
        });
        println!("{name:>6}: {mem}; /metrics {met}");
    }
    Ok(())
}
