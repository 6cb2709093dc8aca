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

/// 40 concurrent attempts, 39 wrong and the right one last, with `max_failed_logins = 5`:
/// every attempt read a clean state before any verification finished, so before the fix all
/// were verified and the right one answered SUCCESS after the lock (and reset it).
async fn a_burst_never_lets_the_right_password_in_once_locked(backend: Backend) {
    let Some(mut e) = env(backend, "max_failed_logins = 5\nlockout_duration = \"15m\"").await
    else {
        return;
    };
    e.create("target", pb::Validity::Valid, Some("Right-Password-9"))
        .await;
    let attempts: Vec<_> = (0..40)
        .map(|i| {
            let mut c = e.auth.clone();
            let password = if i == 39 { "Right-Password-9" } else { "wrong" };
            tokio::spawn(async move {
                let r = c.authenticate(request("target", password)).await;
                (i == 39, r.map(|r| r.into_inner()))
            })
        })
        .collect();
    let (mut invalid, mut locked, mut right) = (0, 0, None);
    for a in attempts {
        let (is_right, r) = a.await.unwrap();
        let r = r.expect("no errors under concurrency");
        if is_right {
            right = Some(outcome(&r));
        }
        match outcome(&r) {
            Outcome::InvalidCredentials => invalid += 1,
            Outcome::Locked => {
                assert!(r.customer_user.is_none() && r.customer_ids.is_empty());
                locked += 1;
            }
            Outcome::Success if is_right => {}
            other => panic!("{other:?} for a wrong password"),
        }
    }
    let right = right.unwrap();
    // The right password either succeeded before the fifth failure (which resets the count:
    // at most four failures were counted before it) or answers LOCKED.
    let most = if right == Outcome::Success { 5 + 4 } else { 5 };
    assert!(
        invalid <= most,
        "{invalid} INVALID_CREDENTIALS (right password: {right:?})"
    );
    assert!(
        matches!(right, Outcome::Success | Outcome::Locked),
        "{right:?}"
    );
    assert_eq!(
        invalid + locked + usize::from(right == Outcome::Success),
        40
    );
    // Whatever the order, the burst ends locked with exactly five counted: a success after the
    // lock would have cleared it.
    let (failed, until) = e.state("target").await;
    assert_eq!(
        failed, 5,
        "exactly max_failed_logins counted since the last reset"
    );
    assert!(until.is_some(), "locked");
    assert_eq!(
        e.preference("target", "UserLoginFailed").await.as_deref(),
        Some("5")
    );
    let r = e.login("target", "Right-Password-9").await;
    assert_eq!(outcome(&r), Outcome::Locked);
    assert!(r.customer_user.is_none());
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
        assert!(
            elapsed < Duration::from_millis(50),
            "{what} took {elapsed:?}"
        );
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
