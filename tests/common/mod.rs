//! Test harness: real backends, the real server on a loopback port, the generated clients.
//!
//! SQLite always runs. PostgreSQL and MariaDB run when `CLIENTELE_TEST_POSTGRES_URL` /
//! `CLIENTELE_TEST_MYSQL_URL` are set (each test gets a database of its own); otherwise they are
//! skipped with a message, unless `CLIENTELE_TEST_REQUIRE_ALL=1`, which makes a missing backend
//! a failure. [`fixture`] holds one data set on all four backends and `per_backend!`, which
//! expands one test per behaviour and backend.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

pub mod certs;
pub mod fixture;
pub mod slapd;
pub mod totp;

use std::sync::atomic::{AtomicU32, Ordering};

use clientele::config::Config;
use clientele::proto::{
    customer_service_client::CustomerServiceClient,
    customer_user_service_client::CustomerUserServiceClient,
};
use sqlx::Connection;
use tonic::transport::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    fn env(self) -> Option<&'static str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some("CLIENTELE_TEST_POSTGRES_URL"),
            Self::MySql => Some("CLIENTELE_TEST_MYSQL_URL"),
        }
    }
}

/// A database of its own for one test, dropped with the test's scratch directory.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh database on `backend`, or `None` (with a message) when the backend is not configured
/// and not required.
pub async fn fresh_db(backend: Backend) -> Option<TestDb> {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(var) = backend.env() else {
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        return Some(TestDb {
            url,
            backend,
            _dir: dir,
        });
    };
    let Ok(base) = std::env::var(var) else {
        if std::env::var("CLIENTELE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("{var} is not set but CLIENTELE_TEST_REQUIRE_ALL=1: {backend:?} is required");
        }
        eprintln!("skipping {backend:?}: {var} is not set");
        return None;
    };
    let name = format!(
        "clientele_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        rand_suffix()
    );
    let mut conn = sqlx::AnyConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{var}={base}: cannot connect: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let url = replace_database(&base, &name);
    Some(TestDb {
        url,
        backend,
        _dir: dir,
    })
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0)
}

fn replace_database(base: &str, db: &str) -> String {
    let mut u = url::Url::parse(base).expect("test URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// A running server and clients connected to it.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// The Prometheus endpoint (`GET /metrics`).
    pub metrics_addr: std::net::SocketAddr,
    pub users: CustomerUserServiceClient<Channel>,
    pub customers: CustomerServiceClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// Starts the server in-process on 127.0.0.1:0 with `config` (TOML) and connects the
    /// clients over plain HTTP/2.
    pub async fn start(config: &str) -> Self {
        Self::launch(config, true, None).await
    }

    /// Like [`TestServer::start`], every time-dependent rule on `clock` (e.g. a
    /// `clientele::clock::ManualClock`, so tests move time instead of sleeping).
    pub async fn start_with_clock(
        config: &str,
        clock: std::sync::Arc<dyn clientele::clock::Clock>,
    ) -> Self {
        Self::launch(config, true, Some(clock)).await
    }

    /// Starts the server without connecting clients (for TLS tests that connect themselves).
    pub async fn start_plain(config: &str) -> Self {
        Self::launch(config, false, None).await
    }

    async fn launch(
        config: &str,
        connect: bool,
        clock: Option<std::sync::Arc<dyn clientele::clock::Clock>>,
    ) -> Self {
        let mut settings = Config::from_toml(config, Vec::new())
            .and_then(Config::validate)
            .unwrap_or_else(|e| panic!("test config: {e}\n{config}"));
        settings.server.health_probe_interval = std::time::Duration::from_millis(200);
        let app = match clock {
            Some(clock) => clientele::app::build_with_clock(settings, clock),
            None => clientele::app::build(settings),
        }
        .expect("build app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind metrics");
        let metrics_addr = metrics.local_addr().expect("metrics addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.serve_with(listener, Some(metrics), async move {
            let _ = rx.await;
        }));
        let endpoint = Channel::from_shared(format!("http://{addr}")).expect("uri");
        let channel = if connect {
            endpoint.connect().await.expect("connect to test server")
        } else {
            endpoint.connect_lazy()
        };
        Self {
            addr,
            metrics_addr,
            users: CustomerUserServiceClient::new(channel.clone()),
            customers: CustomerServiceClient::new(channel),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// One SQL customer-user source (TOML) on `url` with `table`; `extra` is appended inside it.
pub fn user_source(name: &str, url: &str, table: &str, extra: &str) -> String {
    format!(
        "[[customer_user_sources]]\nname = \"{name}\"\nkind = \"sql\"\nurl = \"{url}\"\ntable = \"{table}\"\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\n{extra}\n"
    )
}

/// One SQL customer source (TOML).
pub fn customer_source(name: &str, url: &str, table: &str, extra: &str) -> String {
    format!(
        "[[customer_sources]]\nname = \"{name}\"\nkind = \"sql\"\nurl = \"{url}\"\ntable = \"{table}\"\ntimeout = \"3s\"\n{extra}\n"
    )
}

/// The field paths of the `BadRequest` violations in a status.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// A search through the API with one criterion.
pub async fn search(
    s: &mut TestServer,
    criterion: clientele::proto::search_customer_users_request::Criterion,
    limit: u32,
    include_invalid: bool,
) -> clientele::proto::SearchCustomerUsersResponse {
    s.users
        .search_customer_users(clientele::proto::SearchCustomerUsersRequest {
            criterion: Some(criterion),
            limit,
            include_invalid,
            sources: vec![],
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
}

/// The body of `GET /metrics` of a server (over a raw TCP connection).
pub async fn metrics(s: &TestServer) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(s.metrics_addr)
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}
