//! Logins against hostile callers (issue 13), over the real server on SQLite, PostgreSQL and
//! MariaDB: a burst of wrong passwords never lets the right one in once the login locked; an
//! unknown login and a wrong password answer byte for byte the same; invalid users are counted
//! like any other and answer DISABLED only for the right password; a 1 MB password (and an
//! over-long login) is INVALID_ARGUMENT naming the field at once, on every RPC that takes one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::{Duration, Instant};

use clientele::proto::{self as pb, auth_service_client::AuthServiceClient, Outcome};
use common::{fresh_db, user_source, violations, Backend, TestServer};
use prost::Message;
use sqlx::Connection;
use tonic::{transport::Channel, Code};

const NO_RATE_LIMIT: &str =
    "[auth.rate_limit]\nper_login_per_minute = 0\nper_client_per_minute = 0\n";

struct Env {
    s: TestServer,
    auth: AuthServiceClient<Channel>,
    db: common::TestDb,
}

/// A server over one SQL source on `backend` with `[auth]` settings `auth` (rate limits off).
async fn env(backend: Backend, auth: &str) -> Option<Env> {
    let db = fresh_db(backend).await?;
    let config = "customer_sources = []\n".to_owned()
        + &user_source(
            "main",
            &db.url,
            "customer_user",
            "customer_company_support = false",
        )
        + "[auth]\n"
        + auth
        + "\n"
        + NO_RATE_LIMIT;
    let s = TestServer::start(&config).await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Some(Env {
        s,
        auth: AuthServiceClient::new(channel),
        db,
    })
}

fn user(login: &str, validity: pb::Validity) -> pb::CustomerUser {
    pb::CustomerUser {
        login: login.into(),
        first_name: "Login".into(),
        last_name: "User".into(),
        email: format!("{login}@example.com"),
        customer_id: "acme".into(),
        validity: validity as i32,
        ..Default::default()
    }
}

fn request(login: &str, password: &str) -> pb::AuthenticateRequest {
    pb::AuthenticateRequest {
        login: login.into(),
        password: password.into(),
        client_ip: String::new(),
        otp: String::new(),
    }
}

fn outcome(r: &pb::AuthenticateResponse) -> Outcome {
    Outcome::try_from(r.outcome).unwrap()
}

impl Env {
    async fn create(&mut self, login: &str, validity: pb::Validity, password: Option<&str>) {
        self.s
            .users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(user(login, validity)),
                password: password.map(str::to_owned),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("create {login}: {e:?}"));
    }

    async fn login(&mut self, login: &str, password: &str) -> pb::AuthenticateResponse {
        self.auth
            .authenticate(request(login, password))
            .await
            .unwrap_or_else(|e| panic!("authenticate {login}: {e:?}"))
            .into_inner()
    }

    /// The stored count and lock of `login`.
    async fn state(&self, login: &str) -> (i64, Option<i64>) {
        let mut c = sqlx::AnyConnection::connect(&self.db.url).await.unwrap();
        let int = if self.db.backend == Backend::MySql {
            "SIGNED"
        } else {
            "BIGINT"
        };
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(&format!(
            "SELECT CAST(failed AS {int}), CAST(locked_until AS {int}) FROM clientele_login_state WHERE login = '{login}'"
        ))
        .fetch_optional(&mut c)
        .await
        .unwrap();
        row.unwrap_or((0, None))
    }

    async fn preference(&mut self, login: &str, key: &str) -> Option<String> {
        self.s
            .users
            .get_preferences(pb::GetPreferencesRequest {
                login: login.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .preferences
            .get(key)
            .cloned()
    }
}

/// One burst at a time across the backends' tests (they share the machine's cores).
static BURST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 40 concurrent attempts, 39 wrong and then the right one, with `max_failed_logins = 5`.
/// Verifications are made slow (argon2id with 15 passes, a few hundred ms each on the FIFO
/// hashing threads) and the right attempt is sent 50 ms after the wrong ones: it reads a clean
/// state (no verification has finished yet) and is verified behind them, long after the fifth
/// failure locked the login. Before the fix it answered SUCCESS there; now it is LOCKED, and
/// so is every wrong attempt after the fifth. The bursts of the three backends take turns
/// ([`BURST`]): 120 slow verifications at once on two cores would outlast the 30 s deadline.
async fn a_burst_never_lets_the_right_password_in_once_locked(backend: Backend) {
    let _turn = BURST.lock().await;
    let Some(mut e) = env(
        backend,
        "max_failed_logins = 5\nlockout_duration = \"15m\"\n[auth.argon2]\niterations = 15",
    )
    .await
    else {
        return;
    };
    e.create("target", pb::Validity::Valid, Some("Right-Password-9"))
        .await;
    let attempt = |password: &'static str| {
        let mut c = e.auth.clone();
        tokio::spawn(async move {
            c.authenticate(request("target", password))
                .await
                .map(|r| r.into_inner())
        })
    };
    let wrong: Vec<_> = (0..39).map(|_| attempt("wrong")).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let right = attempt("Right-Password-9");
    let (mut invalid, mut locked) = (0, 0);
    for a in wrong {
        let r = a.await.unwrap().expect("no errors under concurrency");
        match outcome(&r) {
            Outcome::InvalidCredentials => invalid += 1,
            Outcome::Locked => {
                assert!(r.customer_user.is_none() && r.customer_ids.is_empty());
                locked += 1;
            }
            other => panic!("{other:?} for a wrong password"),
        }
    }
    assert_eq!(
        (invalid, locked),
        (5, 34),
        "at most max_failed_logins INVALID_CREDENTIALS, LOCKED after"
    );
    let right = right.await.unwrap().expect("no error");
    assert_eq!(
        (outcome(&right), right.customer_user.is_none()),
        (Outcome::Locked, true),
        "no SUCCESS once locked: {right:?}"
    );
    assert!(right.locked_until.is_some());
    // The lock stands: the right password reset nothing.
    let (failed, until) = e.state("target").await;
    assert_eq!(failed, 5);
    assert!(until.is_some(), "locked");
    assert_eq!(
        e.preference("target", "UserLoginFailed").await.as_deref(),
        Some("5")
    );
    assert_eq!(
        outcome(&e.login("target", "Right-Password-9").await),
        Outcome::Locked
    );
    e.s.stop().await;
}

/// The encoded answers for an unknown login, a wrong password, a user without a password and
/// an invalid user's wrong password are the same bytes (before the fix `source` named the
/// source for all but the unknown login).
async fn an_unknown_login_and_a_wrong_password_are_byte_identical(backend: Backend) {
    let Some(mut e) = env(backend, "max_failed_logins = 0").await else {
        return;
    };
    e.create("alice", pb::Validity::Valid, Some("Correct-Horse-1"))
        .await;
    e.create("nopw", pb::Validity::Valid, None).await;
    e.create("off", pb::Validity::Invalid, Some("Correct-Horse-1"))
        .await;
    let unknown = e.login("nobody", "Correct-Horse-1").await;
    assert_eq!(outcome(&unknown), Outcome::InvalidCredentials);
    let unknown = unknown.encode_to_vec();
    for (login, password) in [
        ("alice", "wrong"),
        ("ALICE", "wrong"),
        ("nopw", "Correct-Horse-1"),
        ("off", "wrong"),
    ] {
        let r = e.login(login, password).await;
        assert_eq!(
            r.encode_to_vec(),
            unknown,
            "{login} / {password}: {r:?} differs from an unknown login"
        );
    }
    // The right password still names its source.
    let ok = e.login("alice", "Correct-Horse-1").await;
    assert_eq!(
        (outcome(&ok), ok.source.as_str()),
        (Outcome::Success, "main")
    );
    e.s.stop().await;
}

/// Invalid users: wrong passwords are counted and lock like any other; only the right password
/// answers DISABLED, and not once the login is locked (before the fix nothing was counted, an
/// unlimited password oracle).
async fn invalid_users_are_counted_until_the_right_password(backend: Backend) {
    let Some(mut e) = env(backend, "max_failed_logins = 3\nlockout_duration = \"15m\"").await
    else {
        return;
    };
    e.create(
        "off",
        pb::Validity::InvalidTemporarily,
        Some("Correct-Horse-1"),
    )
    .await;
    assert_eq!(
        outcome(&e.login("off", "Correct-Horse-1").await),
        Outcome::Disabled
    );
    for n in 1..=3 {
        let r = e.login("off", "wrong").await;
        assert_eq!(outcome(&r), Outcome::InvalidCredentials, "attempt {n}");
        assert_eq!(e.state("off").await.0, n, "counted");
    }
    assert_eq!(
        e.preference("off", "UserLoginFailed").await.as_deref(),
        Some("3")
    );
    let r = e.login("off", "Correct-Horse-1").await;
    assert_eq!(
        outcome(&r),
        Outcome::Locked,
        "the right password tells nothing"
    );
    assert!(r.locked_until.is_some());
    assert_eq!(outcome(&e.login("off", "wrong").await), Outcome::Locked);
    e.auth
        .unlock_login(pb::UnlockLoginRequest {
            login: "off".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome(&e.login("off", "Correct-Horse-1").await),
        Outcome::Disabled
    );
    e.s.stop().await;
}

/// A 1 MB password is INVALID_ARGUMENT naming `password` on Authenticate, SetPassword and
/// CreateCustomerUser, decided before any hashing (well under 50 ms; MD5-crypt of it took
/// seconds); a login longer than its column is INVALID_ARGUMENT naming `login`.
async fn a_megabyte_password_is_refused_at_once(backend: Backend) {
    let Some(mut e) = env(backend, "max_failed_logins = 5").await else {
        return;
    };
    e.create("alice", pb::Validity::Valid, Some("Correct-Horse-1"))
        .await;
    let huge = "x".repeat(1 << 20);
    let refused = |what: &str, started: Instant, r: Result<(), tonic::Status>| {
        let elapsed = started.elapsed();
        let err = r.expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert_eq!(violations(&err), ["password"], "{what}");
        // A loose guard against hashing a megabyte (MD5-crypt of it costs seconds), not a
        // benchmark: the refusal itself is measured in release builds (BENCHMARKS.md), and this
        // machine's debug build under a parallel suite spends most of the time moving 1 MiB.
        assert!(elapsed < Duration::from_secs(2), "{what} took {elapsed:?}");
    };
    for login in ["alice", "nobody"] {
        let t = Instant::now();
        let r = e.auth.authenticate(request(login, &huge)).await;
        refused("Authenticate", t, r.map(|_| ()));
    }
    let t = Instant::now();
    let r = e
        .auth
        .set_password(pb::SetPasswordRequest {
            login: "alice".into(),
            password: huge.clone(),
        })
        .await;
    refused("SetPassword", t, r.map(|_| ()));
    let t = Instant::now();
    let r =
        e.s.users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(user("bob", pb::Validity::Valid)),
                password: Some(huge.clone()),
                ..Default::default()
            })
            .await;
    refused("CreateCustomerUser", t, r.map(|_| ()));
    // Nothing was counted or created; 1,024 bytes is still a password (a wrong one).
    assert_eq!(e.state("alice").await.0, 0);
    let at_limit = "x".repeat(1024);
    assert_eq!(
        outcome(&e.login("alice", &at_limit).await),
        Outcome::InvalidCredentials
    );
    let err =
        e.s.users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: "bob".into(),
            })
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // A login longer than its column (200 characters).
    let err = e
        .auth
        .authenticate(request(&"l".repeat(201), "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), ["login"]);
    e.s.stop().await;
}

common::fixture::per_backend! {
    common::fixture::sql_backend: writes [
        a_burst_never_lets_the_right_password_in_once_locked,
        an_unknown_login_and_a_wrong_password_are_byte_identical,
        invalid_users_are_counted_until_the_right_password,
        a_megabyte_password_is_refused_at_once,
    ];
}
