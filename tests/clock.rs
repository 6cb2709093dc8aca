//! Time-dependent rules on a manual clock, through the real server and without sleeping: lock
//! expiry after `lockout_duration`, `until-unlocked` locks that only UnlockLogin ends, and the
//! TTL of the per-replica cache.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod common;

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use clientele::clock::ManualClock;
use clientele::config::Config;
use clientele::proto::{
    self as pb, auth_service_client::AuthServiceClient,
    customer_user_service_client::CustomerUserServiceClient, Outcome,
};
use common::{fresh_db, user_source, Backend};
use tonic::transport::Channel;

/// Where every manual clock of this file starts: 2033-05-18, far from the real time, so a
/// stray read of the system clock would show.
const START: u64 = 2_000_000_000;

/// A server built on a manual clock.
struct ClockServer {
    clock: Arc<ManualClock>,
    users: CustomerUserServiceClient<Channel>,
    auth: AuthServiceClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl ClockServer {
    async fn start(config: &str) -> Self {
        let settings = Config::from_toml(config, Vec::new())
            .and_then(Config::validate)
            .unwrap_or_else(|e| panic!("test config: {e}\n{config}"));
        let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(START));
        let app = clientele::app::build_with_clock(settings, clock.clone()).expect("build app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.serve_with(listener, None, async move {
            let _ = rx.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to test server");
        Self {
            clock,
            users: CustomerUserServiceClient::new(channel.clone()),
            auth: AuthServiceClient::new(channel),
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }

    async fn create(&mut self, login: &str, password: &str) {
        self.users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(pb::CustomerUser {
                    login: login.into(),
                    first_name: "Old".into(),
                    last_name: "Name".into(),
                    email: format!("{login}@example.com"),
                    customer_id: "acme".into(),
                    ..Default::default()
                }),
                password: Some(password.into()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("create {login}: {e:?}"));
    }

    async fn login(&mut self, login: &str, password: &str) -> pb::AuthenticateResponse {
        self.auth
            .authenticate(pb::AuthenticateRequest {
                login: login.into(),
                password: password.into(),
                client_ip: "192.0.2.7".into(),
                otp: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("authenticate {login}: {e:?}"))
            .into_inner()
    }

    async fn first_name(&mut self, login: &str, no_cache: bool) -> String {
        let mut req = tonic::Request::new(pb::GetCustomerUserRequest {
            login: login.into(),
        });
        if no_cache {
            req.metadata_mut()
                .insert("cache-control", "no-cache".parse().unwrap());
        }
        self.users
            .get_customer_user(req)
            .await
            .unwrap()
            .into_inner()
            .first_name
    }

    async fn senders(&mut self, address: &str) -> Vec<String> {
        self.users
            .resolve_senders(pb::ResolveSendersRequest {
                addresses: vec![address.into()],
            })
            .await
            .unwrap()
            .into_inner()
            .results
            .into_iter()
            .flat_map(|r| r.customer_users)
            .map(|u| u.login)
            .collect()
    }
}

fn outcome(r: &pb::AuthenticateResponse) -> Outcome {
    Outcome::try_from(r.outcome).unwrap()
}

fn config(url: &str, source_extra: &str, auth: &str) -> String {
    "customer_sources = []\n".to_owned()
        + &user_source(
            "main",
            url,
            "customer_user",
            &format!("customer_company_support = false\n{source_extra}"),
        )
        + "[auth]\n"
        + auth
        + "[auth.rate_limit]\nper_login_per_minute = 0\nper_client_per_minute = 0\n"
}

const RIGHT: &str = "Right-Password-1";

/// A lock ends `lockout_duration` after it was set, to the second, and an expired lock starts a
/// new count.
async fn lock_expires_after_lockout_duration(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut s = ClockServer::start(&config(
        &db.url,
        "",
        "max_failed_logins = 2\nlockout_duration = \"15m\"\n",
    ))
    .await;
    s.create("lena", RIGHT).await;
    assert_eq!(
        outcome(&s.login("lena", "wrong").await),
        Outcome::InvalidCredentials
    );
    assert_eq!(
        outcome(&s.login("lena", "wrong").await),
        Outcome::InvalidCredentials,
        "the attempt that locks still answers invalid credentials"
    );
    let locked = s.login("lena", RIGHT).await;
    assert_eq!(outcome(&locked), Outcome::Locked);
    let until = i64::try_from(START + 15 * 60).unwrap();
    assert_eq!(locked.locked_until.map(|t| t.seconds), Some(until));
    s.clock.advance(Duration::from_secs(15 * 60 - 1));
    assert_eq!(
        outcome(&s.login("lena", RIGHT).await),
        Outcome::Locked,
        "one second before the end"
    );
    assert_eq!(
        outcome(&s.login("lena", "wrong").await),
        Outcome::Locked,
        "a wrong password while locked counts nothing"
    );
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(
        outcome(&s.login("lena", "wrong").await),
        Outcome::InvalidCredentials,
        "the lock expired: a new count starts at one"
    );
    assert_eq!(
        outcome(&s.login("lena", RIGHT).await),
        Outcome::Success,
        "one failure of a new count does not lock"
    );
    // Locked again, then expired, then the right password.
    for _ in 0..2 {
        s.login("lena", "wrong").await;
    }
    assert_eq!(outcome(&s.login("lena", RIGHT).await), Outcome::Locked);
    s.clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(outcome(&s.login("lena", RIGHT).await), Outcome::Success);
    s.stop().await;
}

/// `until-unlocked` holds however far the clock moves, until UnlockLogin.
async fn until_unlocked_stays_locked(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut s = ClockServer::start(&config(
        &db.url,
        "",
        "max_failed_logins = 1\nlockout_duration = \"until-unlocked\"\n",
    ))
    .await;
    s.create("otto", RIGHT).await;
    assert_eq!(
        outcome(&s.login("otto", "wrong").await),
        Outcome::InvalidCredentials
    );
    let locked = s.login("otto", RIGHT).await;
    assert_eq!(outcome(&locked), Outcome::Locked);
    assert_eq!(locked.locked_until, None, "no end to report");
    for years in [1u64, 100, 400] {
        s.clock
            .advance(Duration::from_secs(years * 365 * 24 * 3600));
        assert_eq!(
            outcome(&s.login("otto", RIGHT).await),
            Outcome::Locked,
            "still locked after {years} more years"
        );
    }
    s.auth
        .unlock_login(pb::UnlockLoginRequest {
            login: "otto".into(),
        })
        .await
        .unwrap();
    assert_eq!(outcome(&s.login("otto", RIGHT).await), Outcome::Success);
    s.stop().await;
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lock_expires_after_lockout_duration() {
        super::lock_expires_after_lockout_duration(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn until_unlocked_stays_locked() {
        super::until_unlocked_stays_locked(Backend::Sqlite).await
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lock_expires_after_lockout_duration() {
        super::lock_expires_after_lockout_duration(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn until_unlocked_stays_locked() {
        super::until_unlocked_stays_locked(Backend::Postgres).await
    }
}

mod mariadb {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lock_expires_after_lockout_duration() {
        super::lock_expires_after_lockout_duration(Backend::MySql).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn until_unlocked_stays_locked() {
        super::until_unlocked_stays_locked(Backend::MySql).await
    }
}

/// The cache answers Get and ResolveSenders until `cache_ttl` has passed on the clock; a bypass
/// reads through and a write through this replica invalidates at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ttl_bounds_staleness() {
    let db = fresh_db(Backend::Sqlite).await.unwrap();
    let mut s = ClockServer::start(&config(
        &db.url,
        "cache_ttl = \"60s\"",
        "max_failed_logins = 0\n",
    ))
    .await;
    s.create("cached", RIGHT).await;
    let behind = |sql: &'static str| {
        let url = db.url.clone();
        async move {
            use sqlx::Connection;
            let mut raw = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&mut raw).await.unwrap();
        }
    };
    assert_eq!(s.first_name("cached", false).await, "Old");
    assert_eq!(s.senders("cached@example.com").await, ["cached"]);
    // Changed behind the service's back: the cache answers until its TTL or a bypass.
    behind("UPDATE customer_user SET first_name = 'Behind' WHERE login = 'cached'").await;
    assert_eq!(s.first_name("cached", false).await, "Old", "cached");
    assert_eq!(
        s.first_name("cached", true).await,
        "Behind",
        "cache-control: no-cache reads through"
    );
    assert_eq!(
        s.first_name("cached", false).await,
        "Behind",
        "and refreshes the cache"
    );
    // A write through this replica invalidates at once.
    s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "cached".into(),
            customer_user: Some(pb::CustomerUser {
                first_name: "New".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["first_name".into()],
            }),
        })
        .await
        .unwrap();
    assert_eq!(s.first_name("cached", false).await, "New");
    assert_eq!(s.senders("cached@example.com").await, ["cached"]);
    assert!(s.senders("moved@example.com").await.is_empty());
    behind("UPDATE customer_user SET first_name = 'Expired', email = 'moved@example.com' WHERE login = 'cached'").await;
    s.clock.advance(Duration::from_secs(59));
    assert_eq!(
        s.first_name("cached", false).await,
        "New",
        "59 s: still fresh"
    );
    assert_eq!(
        s.senders("cached@example.com").await,
        ["cached"],
        "the sender answer is cached too"
    );
    assert!(
        s.senders("moved@example.com").await.is_empty(),
        "and so is a negative one"
    );
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(
        s.first_name("cached", false).await,
        "Expired",
        "the TTL bounds staleness"
    );
    assert!(s.senders("cached@example.com").await.is_empty());
    assert_eq!(s.senders("moved@example.com").await, ["cached"]);
    s.stop().await;
}
