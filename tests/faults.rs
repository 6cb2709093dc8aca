//! Sources under fault (issue 12): a healthy SQLite source plus a second source behind a TCP
//! fault proxy (`common/faultproxy.rs`) in front of PostgreSQL, MariaDB and OpenLDAP in turn.
//! Each mode — refuse, blackhole, slow, reset — is injected at run time; the tests assert the
//! answers (partial, with the source's status), loose latency bounds once the source is open,
//! and recovery without restart after healing (awaiting the `source/<name>` health change with
//! a bounded poll, never a fixed sleep). Timeouts are short (`connect_timeout` 300 ms,
//! `call_timeout` 1 s, health probes every 200 ms) so the file stays fast.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;
#[path = "common/faultproxy.rs"]
mod faultproxy;

use std::time::{Duration, Instant};

use clientele::proto::{self as pb, search_customer_users_request::Criterion};
use common::slapd::{person, Slapd, ADMIN_DN, ADMIN_PW};
use common::{fresh_db, metrics, Backend, TestServer};
use faultproxy::{FaultProxy, Mode};
use tonic::Code;

/// What an open source may add to a call: generous, these are not benchmarks.
const OPEN_BOUND: Duration = Duration::from_millis(200);
const TIMEOUTS: &str = "connect_timeout = \"300ms\"\ncall_timeout = \"1s\"\n";

/// A SQL source whose searches reach the database (`search_index = "database"`): these tests
/// time searches against a backend under fault; an in-memory index would answer them without
/// it (`tests/search_index.rs` covers that path).
fn sql_source(name: &str, url: &str) -> String {
    format!(
        "[[customer_user_sources]]\nname = \"{name}\"\nkind = \"sql\"\nurl = \"{url}\"\ntable = \"customer_user\"\n{TIMEOUTS}customer_company_support = false\nsearch_index = \"database\"\n"
    )
}

fn ldap_source(name: &str, urls: &[String], pw: &std::path::Path, store: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[[customer_user_sources]]\nname = \"{name}\"\nkind = \"ldap\"\nurls = [{}]\nbase_dn = \"ou=people,dc=example,dc=com\"\nscope = \"one\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=inetOrgPerson)\"\n{TIMEOUTS}customer_company_support = false\nstore_url = \"{store}\"\n",
        urls.join(", "),
        pw.display()
    )
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_host(Some(&addr.ip().to_string())).unwrap();
    u.set_port(Some(addr.port())).unwrap();
    u.to_string()
}

/// The backend address of `url`.
fn target(url: &str) -> std::net::SocketAddr {
    let u = url::Url::parse(url).unwrap();
    let host = match u.host_str().unwrap() {
        "localhost" => "127.0.0.1",
        h => h,
    };
    format!("{host}:{}", u.port_or_known_default().unwrap())
        .parse()
        .unwrap()
}

struct World {
    server: TestServer,
    proxy: FaultProxy,
    health: tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>,
    /// The login of the user kept behind the proxy.
    far_login: &'static str,
    /// Whether far takes writes (SQL; LDAP is read-only).
    far_writable: bool,
    _dir: tempfile::TempDir,
}

impl World {
    async fn create(&mut self, source: &str, login: &str) -> Result<(), tonic::Status> {
        self.server
            .users
            .create_customer_user(pb::CreateCustomerUserRequest {
                source: source.into(),
                customer_user: Some(pb::CustomerUser {
                    login: login.into(),
                    first_name: "Fault".into(),
                    last_name: "Tester".into(),
                    email: format!("{login}@example.com"),
                    customer_id: "acme".into(),
                    ..Default::default()
                }),
                password: Some("S3cret-enough".into()),
                ..Default::default()
            })
            .await
            .map(|_| ())
    }

    /// Waits (bounded) until `source/far` reports `want` (1 serving, 2 not serving).
    async fn await_health(&mut self, want: i32, what: &str) -> Duration {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            let got = self
                .health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "source/far".into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .unwrap_or(-1);
            if got == want {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("source/far never reached health {want} ({what})");
    }

    async fn search(&mut self) -> (Duration, pb::SearchCustomerUsersResponse) {
        let t = Instant::now();
        let r = self
            .server
            .users
            .search_customer_users(pb::SearchCustomerUsersRequest {
                criterion: Some(Criterion::Query("*".into())),
                ..Default::default()
            })
            .await
            .expect("a partial answer, not an error")
            .into_inner();
        (t.elapsed(), r)
    }

    async fn resolve(&mut self) -> (Duration, pb::ResolveSendersResponse) {
        let t = Instant::now();
        let r = self
            .server
            .users
            .resolve_senders(pb::ResolveSendersRequest {
                addresses: vec![
                    "near@example.com".into(),
                    format!("{}@example.com", self.far_login),
                ],
            })
            .await
            .expect("resolve answers")
            .into_inner();
        (t.elapsed(), r)
    }

    async fn authenticate(&mut self, login: &str) -> (Duration, Result<i32, Code>) {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", self.server.addr))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let mut auth = pb::auth_service_client::AuthServiceClient::new(channel);
        let t = Instant::now();
        let r = auth
            .authenticate(pb::AuthenticateRequest {
                login: login.into(),
                password: "S3cret-enough".into(),
                ..Default::default()
            })
            .await;
        (
            t.elapsed(),
            r.map(|r| r.into_inner().outcome).map_err(|s| s.code()),
        )
    }

    fn assert_healthy(r: &pb::SearchCustomerUsersResponse, far: &str) {
        let logins: Vec<&str> = r.customer_users.iter().map(|u| u.login.as_str()).collect();
        assert!(
            logins.contains(&"near") && logins.contains(&far),
            "{logins:?}"
        );
        assert!(
            r.source_status.iter().all(|s| s.ok),
            "{:?}",
            r.source_status
        );
    }

    /// With `far` open: reads answer at once with the near half and far's status saying since
    /// when; writes needing far are UNAVAILABLE at once naming it.
    async fn assert_open_answers(&mut self, mode: &str) {
        for _ in 0..5 {
            let (took, r) = self.search().await;
            assert!(took < OPEN_BOUND, "{mode}: search took {took:?}");
            let logins: Vec<&str> = r.customer_users.iter().map(|u| u.login.as_str()).collect();
            assert_eq!(logins, ["near"], "{mode}: partial answer");
            let far = r.source_status.iter().find(|s| s.source == "far").unwrap();
            assert!(!far.ok, "{mode}: {far:?}");
            assert!(far.error.contains("open since"), "{mode}: {far:?}");
        }
        let (took, r) = self.resolve().await;
        assert!(took < OPEN_BOUND, "{mode}: resolve took {took:?}");
        assert_eq!(
            r.results[0].customer_users.len(),
            1,
            "{mode}: near resolves"
        );
        assert!(r.results[1].customer_users.is_empty(), "{mode}");
        let t = Instant::now();
        let got = self
            .server
            .users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: "near".into(),
            })
            .await
            .expect("get from the healthy source");
        assert_eq!(got.into_inner().source, "near-db");
        assert!(
            t.elapsed() < OPEN_BOUND,
            "{mode}: get took {:?}",
            t.elapsed()
        );
        // Authenticate of a login only the open source could hold: UNAVAILABLE, at once.
        let (took, r) = self.authenticate("nobody-here").await;
        assert!(took < OPEN_BOUND, "{mode}: authenticate took {took:?}");
        assert!(
            matches!(r, Err(Code::Unavailable)) || r.is_ok(),
            "{mode}: {r:?}"
        );
        // A create must prove its login unused in far: refused at once, naming far.
        let t = Instant::now();
        let e = self.create("near-db", "newcomer").await.unwrap_err();
        assert!(
            t.elapsed() < OPEN_BOUND,
            "{mode}: create took {:?}",
            t.elapsed()
        );
        assert_eq!(e.code(), Code::Unavailable, "{mode}: {e:?}");
        assert!(e.message().contains("\"far\""), "{mode}: {e:?}");
    }

    /// Heals and waits for recovery: far serves again without a restart.
    async fn heal(&mut self, mode: &str) {
        self.proxy.heal();
        let took = self.await_health(1, mode).await;
        // 2 × health_probe_interval (200 ms) plus slack for a slow CI machine.
        assert!(
            took < Duration::from_secs(3),
            "{mode}: healed after {took:?}"
        );
        let (_, r) = self.search().await;
        Self::assert_healthy(&r, self.far_login);
    }
}

/// Runs every fault mode against `far` (already seeded with `far_login`).
async fn exercise(mut w: World) {
    let (_, r) = w.search().await;
    World::assert_healthy(&r, w.far_login);

    // refuse: the first failed connection opens far.
    w.proxy.set(Mode::Refuse);
    let _ = w.search().await;
    w.await_health(2, "refuse").await;
    w.assert_open_answers("refuse").await;
    w.heal("refuse").await;

    // blackhole: open within connect_timeout / call_timeout (a probe or a call notices).
    w.proxy.set(Mode::Blackhole);
    let t = Instant::now();
    let (took, r) = w.search().await;
    assert!(
        took < Duration::from_millis(1500),
        "bounded by call_timeout: {took:?}"
    );
    assert!(r.customer_users.iter().any(|u| u.login == "near"));
    w.await_health(2, "blackhole").await;
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    w.assert_open_answers("blackhole").await;
    w.heal("blackhole").await;

    // slow (below call_timeout): complete answers, later; the source stays closed.
    w.proxy.set(Mode::Slow(Duration::from_millis(30)));
    let (took, r) = w.search().await;
    World::assert_healthy(&r, w.far_login);
    assert!(took >= Duration::from_millis(30), "{took:?}");
    assert!(took < Duration::from_millis(1000), "{took:?}");
    w.heal("slow").await;

    // slow beyond call_timeout: the call ends at call_timeout and far opens.
    w.proxy.set(Mode::Slow(Duration::from_millis(1500)));
    let (took, r) = w.search().await;
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(r.source_status.iter().any(|s| !s.ok));
    w.await_health(2, "too slow").await;
    w.assert_open_answers("too slow").await;
    w.heal("too slow").await;

    // reset: answers cut mid-way fail the call, far opens. A write to far meanwhile either
    // happens whole or not at all, and its answer says which.
    w.proxy.set(Mode::Reset);
    let write = w.create("far", "cutoff").await;
    let (_, r) = w.search().await;
    assert!(r.customer_users.iter().any(|u| u.login == "near"));
    w.await_health(2, "reset").await;
    w.assert_open_answers("reset").await;
    w.heal("reset").await;
    if w.far_writable {
        let stored = w
            .server
            .users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: "cutoff".into(),
            })
            .await;
        match (&write, &stored) {
            (Ok(()), Ok(u)) => {
                let u = u.get_ref();
                assert_eq!(
                    (u.source.as_str(), u.email.as_str()),
                    ("far", "cutoff@example.com")
                );
            }
            (Err(e), Err(not_found)) => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                assert_eq!(
                    not_found.code(),
                    Code::NotFound,
                    "not at all: {not_found:?}"
                );
            }
            (Err(e), Ok(u)) => {
                // Stored, but the answer was cut: the caller was told it may not have happened.
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                assert_eq!(u.get_ref().email, "cutoff@example.com", "whole");
            }
            (Ok(()), Err(e)) => panic!("a write answered OK is lost: {e:?}"),
        }
    }

    // Breaker metrics are exported per source.
    let body = metrics(&w.server).await;
    assert!(body.contains("clientele_source_state"), "{body}");
    assert!(
        body.contains("clientele_source_short_circuited_total"),
        "{body}"
    );
    w.server.stop().await;
}

async fn health_client(
    s: &TestServer,
) -> tonic_health::pb::health_client::HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(channel)
}

async fn sql_world(backend: Backend) -> Option<World> {
    let db = fresh_db(backend).await?;
    let proxy = FaultProxy::start(target(&db.url)).await;
    let dir = tempfile::tempdir().unwrap();
    let near = format!("sqlite://{}", dir.path().join("near.db").display());
    let config = "customer_sources = []\n".to_owned()
        + &sql_source("near-db", &near)
        + &sql_source("far", &via(&db.url, proxy.addr));
    let server = TestServer::start(&config).await;
    let health = health_client(&server).await;
    let mut w = World {
        server,
        proxy,
        health,
        far_login: "faraway",
        far_writable: true,
        _dir: dir,
    };
    w.create("near-db", "near").await.unwrap();
    w.create("far", "faraway").await.unwrap();
    Some(w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_behind_a_faulty_network() {
    if let Some(w) = sql_world(Backend::Postgres).await {
        exercise(w).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_behind_a_faulty_network() {
    if let Some(w) = sql_world(Backend::MySql).await {
        exercise(w).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openldap_behind_a_faulty_network_with_failover() {
    let ldif = person(
        "faraway",
        "Far",
        "Away",
        "faraway@example.com",
        &["acme"],
        "",
    );
    let Some(slapd) = Slapd::start(&ldif) else {
        return;
    };
    let pw_dir = tempfile::tempdir().unwrap();
    let pw = pw_dir.path().join("pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    let proxy = FaultProxy::start(target(&slapd.url())).await;
    // A second url that is always down: failover skips it once it is open, and the source is
    // open only when both are.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("ldap://{}", dead.local_addr().unwrap());
    drop(dead);
    let near = format!("sqlite://{}", pw_dir.path().join("near.db").display());
    let store = format!("sqlite://{}", pw_dir.path().join("store.db").display());
    let config = "customer_sources = []\n".to_owned()
        + &sql_source("near-db", &near)
        + &ldap_source(
            "far",
            &[dead_url, format!("ldap://{}", proxy.addr)],
            &pw,
            &store,
        );
    let server = TestServer::start(&config).await;
    let health = health_client(&server).await;
    let mut w = World {
        server,
        proxy,
        health,
        far_login: "faraway",
        far_writable: false,
        _dir: pw_dir,
    };
    w.create("near-db", "near").await.unwrap();
    w.await_health(1, "start").await;
    exercise(w).await;
    drop(slapd);
}

/// A login whose source goes silent mid-way ends at the source's `call_timeout`, not at the
/// caller's (long) deadline: UNAVAILABLE, nothing counted.
async fn login_against_a_silent_source(mut w: World) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", w.server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut auth = clientele::proto::auth_service_client::AuthServiceClient::new(channel);
    let request = |password: &str| {
        let mut r = tonic::Request::new(pb::AuthenticateRequest {
            login: "faraway".into(),
            password: password.into(),
            client_ip: String::new(),
            otp: String::new(),
        });
        r.set_timeout(Duration::from_secs(30));
        r
    };
    // Healthy first: the pool holds open connections, which the blackhole then stalls.
    let ok = auth.authenticate(request("S3cret-enough")).await.unwrap();
    assert_eq!(ok.into_inner().outcome, pb::Outcome::Success as i32);
    w.proxy.set(Mode::Blackhole);
    let t = Instant::now();
    let err = auth.authenticate(request("wrong")).await.unwrap_err();
    let took = t.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        took < Duration::from_secs(3),
        "bounded by call_timeout (1 s), not the 30 s deadline: {took:?}"
    );
    w.heal("silent login").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_login_ends_at_call_timeout() {
    if let Some(w) = sql_world(Backend::Postgres).await {
        login_against_a_silent_source(w).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_login_ends_at_call_timeout() {
    if let Some(w) = sql_world(Backend::MySql).await {
        login_against_a_silent_source(w).await;
    }
}
