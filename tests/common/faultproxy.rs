//! A TCP fault proxy for the fault-injection tests: listens on 127.0.0.1:0, forwards to a real
//! backend (PostgreSQL, MariaDB, OpenLDAP), and misbehaves on command, switchable at run time:
//!
//! - [`Mode::Pass`] (*heal*): forwards both ways;
//! - [`Mode::Refuse`]: new connections are reset at once, open ones are cut at their next
//!   byte (a server that went down);
//! - [`Mode::Blackhole`]: new connections are accepted and never answered, open ones stall
//!   (nothing is forwarded until the mode changes);
//! - [`Mode::Slow`]: every chunk is delayed by the given latency;
//! - [`Mode::Reset`]: requests reach the backend, every answer is cut mid-way (half of its first
//!   chunk, then a reset).
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// How the proxy treats traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Refuse,
    Blackhole,
    Slow(Duration),
    Reset,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy in front of `target` (host:port), passing traffic.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (mode, rx) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let rx = rx.clone();
                tokio::spawn(serve(client, target, rx));
            }
        });
        Self {
            addr,
            mode,
            accepted,
            task,
        }
    }

    /// Switches the mode for new and open connections.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Back to [`Mode::Pass`].
    pub fn heal(&self) {
        self.set(Mode::Pass);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Closes with a reset rather than a FIN.
#[allow(deprecated)] // SO_LINGER 0 resets at once: the drop never blocks
fn cut(s: TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Waits while the mode is [`Mode::Blackhole`]; the mode after it.
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

async fn serve(client: TcpStream, target: SocketAddr, mut rx: watch::Receiver<Mode>) {
    let first = *rx.borrow_and_update();
    match first {
        Mode::Refuse => return cut(client),
        Mode::Blackhole => {
            // Accepted, never answered: held until the mode changes, then closed.
            let _ = past_blackhole(&mut rx).await;
            return cut(client);
        }
        _ => {}
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return cut(client);
    };
    let mut client = client;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    let cut_both = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        loop {
            // (chunk length, towards the client?)
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
                    let _ = out.flush().await;
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
