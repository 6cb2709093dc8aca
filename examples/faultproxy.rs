//! A TCP fault proxy for benchmarks (the idea of `tests/common/faultproxy.rs`, sharing no
//! code): listens on `--listen`, forwards to `--target`, and misbehaves as the mode file says,
//! re-read every 100 ms, so a shell script switches modes at run time:
//!
//! ```sh
//! echo pass > /tmp/mode
//! target/release/examples/faultproxy --listen 127.0.0.1:15432 --target 127.0.0.1:5432 --mode-file /tmp/mode &
//! echo refuse > /tmp/mode      # or: blackhole | slow 50ms | reset | pass (heal)
//! ```
//!
//! - `pass`: forwards both ways;
//! - `refuse`: new connections are reset at once, open ones are cut at their next byte;
//! - `blackhole`: new connections are accepted and never answered, open ones stall;
//! - `slow <duration>`: every chunk is delayed;
//! - `reset`: requests reach the backend, every answer is cut mid-way.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark tool: a failed step ends the run

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long)]
    target: SocketAddr,
    /// A file holding the mode (absent or unreadable: `pass`).
    #[arg(long)]
    mode_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Refuse,
    Blackhole,
    Slow(Duration),
    Reset,
}

fn parse(text: &str) -> Mode {
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some("refuse"), _) => Mode::Refuse,
        (Some("blackhole"), _) => Mode::Blackhole,
        (Some("reset"), _) => Mode::Reset,
        (Some("slow"), Some(d)) => {
            Mode::Slow(humantime::parse_duration(d).unwrap_or(Duration::from_millis(50)))
        }
        _ => Mode::Pass,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await.expect("bind");
    let (tx, rx) = watch::channel(Mode::Pass);
    let file = args.mode_file.clone();
    tokio::spawn(async move {
        loop {
            let mode = parse(&std::fs::read_to_string(&file).unwrap_or_default());
            if *tx.borrow() != mode {
                eprintln!("faultproxy: {mode:?}");
                tx.send_replace(mode);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(serve(client, args.target, rx.clone()));
    }
}

#[allow(deprecated)] // SO_LINGER 0 resets at once: the drop never blocks
fn cut(s: TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

async fn past_blackhole(rx: &mut watch::Receiver<Mode>) -> Mode {
    loop {
        let m = *rx.borrow_and_update();
        if m != Mode::Blackhole {
            return m;
        }
        if rx.changed().await.is_err() {
            return Mode::Refuse;
        }
    }
}

async fn serve(mut client: TcpStream, target: SocketAddr, mut rx: watch::Receiver<Mode>) {
    let first = *rx.borrow_and_update();
    match first {
        Mode::Refuse => return cut(client),
        Mode::Blackhole => {
            let _ = past_blackhole(&mut rx).await;
            return cut(client);
        }
        _ => {}
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return cut(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    let cut_both = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        loop {
            let (n, to_client) = tokio::select! {
                r = cr.read(&mut up) => (r.unwrap_or(0), false),
                r = sr.read(&mut down) => (r.unwrap_or(0), true),
            };
            if n == 0 {
                break false;
            }
            let mode = past_blackhole(&mut rx).await;
            let chunk = if to_client { &down[..n] } else { &up[..n] };
            let out = if to_client { &mut cw } else { &mut sw };
            match mode {
                Mode::Refuse => break true,
                Mode::Reset if to_client => {
                    let _ = out.write_all(&chunk[..n / 2]).await;
                    break true;
                }
                Mode::Slow(d) => tokio::time::sleep(d).await,
                _ => {}
            }
            if out.write_all(chunk).await.is_err() {
                break true;
            }
        }
    };
    if cut_both {
        cut(client);
        cut(server);
    }
}
