//! Two-factor logins (issue 16) through the real server on SQLite, PostgreSQL and MariaDB, and
//! an LDAP user whose secret is in its source's `store_url`, on a manual clock (no sleeping):
//! a Znuny-style secret written with SQL into `customer_preferences` of a `migrate = false`
//! database logs in with tokens computed here, independently (a small HMAC-SHA1 TOTP on the
//! `sha1` digest, not the service's code); the previous window is accepted or refused per
//! `allow_previous_token`; a token is used once, also across two servers on one database and
//! under concurrency; wrong tokens lock like wrong passwords; SECOND_FACTOR_REQUIRED counts
//! nothing; unknown login, wrong password and wrong password with two-factor answer byte for
//! byte the same; enrol → confirm → login with a token → remove; `allow_empty_secret = false`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use clientele::clock::ManualClock;
use clientele::proto::{
    self as pb, auth_service_client::AuthServiceClient,
    customer_user_service_client::CustomerUserServiceClient, Outcome,
};
use common::totp::token;
use common::{fresh_db, user_source, violations, Backend, TestServer};
use prost::Message;
use sqlx::Connection;
use tonic::{transport::Channel, Code};

/// Where the manual clock starts: a step boundary (66,666,667 × 30 s), in 2033.
const START: u64 = 2_000_000_010;

/// A secret as Znuny's preferences screen stores it (`^[A-Z2-7]{16}$`).
const ZNUNY_SECRET: &str = "JBSWY3DPEHPK3PXP";

const PASSWORD: &str = "Correct-Horse-1";

#[test]
fn the_independent_totp_meets_rfc_6238() {
    // Appendix B, SHA1, T = 59 and 1111111109: 94287082 and 07081804 (last six digits).
    let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
    assert_eq!(token(seed, 59), "287082");
    assert_eq!(token(seed, 1_111_111_109), "081804");
    assert_eq!(token(seed, 2_000_000_000), "279037");
}

// ----- a server on a manual clock -----

/// The real server on a manual clock, with an auth client.
struct Server {
    s: TestServer,
    clock: Arc<ManualClock>,
    users: CustomerUserServiceClient<Channel>,
    auth: AuthServiceClient<Channel>,
}

impl Server {
    async fn start(config: &str, clock: Arc<ManualClock>) -> Self {
        let s = TestServer::start_with_clock(config, clock.clone()).await;
        let channel = Channel::from_shared(format!("http://{}", s.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to test server");
        Self {
            users: s.users.clone(),
            s,
            clock,
            auth: AuthServiceClient::new(channel),
        }
    }

    async fn stop(self) {
        self.s.stop().await;
    }

    fn now(&self) -> u64 {
        u64::try_from(clientele::clock::Clock::epoch_seconds(&*self.clock)).unwrap()
    }

    fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    async fn create(&mut self, login: &str) {
        self.users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(pb::CustomerUser {
                    login: login.into(),
                    first_name: "Two".into(),
                    last_name: "Factor".into(),
                    email: format!("{login}@example.com"),
                    customer_id: "acme".into(),
                    ..Default::default()
                }),
                password: Some(PASSWORD.into()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("create {login}: {e:?}"));
    }

    async fn login(&mut self, login: &str, password: &str, otp: &str) -> pb::AuthenticateResponse {
        self.auth
            .authenticate(pb::AuthenticateRequest {
                login: login.into(),
                password: password.into(),
                otp: otp.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("authenticate {login}: {e:?}"))
            .into_inner()
    }

    async fn outcome(&mut self, login: &str, password: &str, otp: &str) -> Outcome {
        let r = self.login(login, password, otp).await;
        Outcome::try_from(r.outcome).unwrap()
    }

    async fn enroll(&mut self, login: &str) -> pb::EnrollTotpResponse {
        self.auth
            .enroll_totp(pb::EnrollTotpRequest {
                login: login.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("enroll {login}: {e:?}"))
            .into_inner()
    }

    async fn confirm(&mut self, login: &str, otp: &str) -> Result<(), tonic::Status> {
        self.auth
            .confirm_totp(pb::ConfirmTotpRequest {
                login: login.into(),
                otp: otp.into(),
            })
            .await
            .map(|_| ())
    }
}

fn clock() -> Arc<ManualClock> {
    ManualClock::at(UNIX_EPOCH + Duration::from_secs(START))
}

/// One SQL source `main` on `url` (`source_extra` inside it), lockout after 3 failures, rate
/// limits off, two-factor on with `two_factor` added to its section.
fn config(url: &str, source_extra: &str, two_factor: &str) -> String {
    "customer_sources = []\n".to_owned()
        + &user_source(
            "main",
            url,
            "customer_user",
            &format!("customer_company_support = false\n{source_extra}"),
        )
        + "[auth]\nmax_failed_logins = 3\nlockout_duration = \"15m\"\n"
        + "[auth.rate_limit]\nper_login_per_minute = 0\nper_client_per_minute = 0\n"
        + "[auth.two_factor]\nenabled = true\n"
        + two_factor
}

/// Writes a secret straight into `customer_preferences`, as Znuny does.
async fn store_secret(url: &str, login: &str, secret: &str) {
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO customer_preferences (user_id, preferences_key, preferences_value) VALUES ('{login}', 'UserGoogleAuthenticatorSecretKey', '{secret}')"
    ))
    .execute(&mut c)
    .await
    .unwrap();
}

/// The stored value of the secret preference of `login` (`None`: no row).
async fn stored_secret(url: &str, login: &str) -> Option<String> {
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query_scalar(&format!(
        "SELECT preferences_value FROM customer_preferences WHERE user_id = '{login}' AND preferences_key = 'UserGoogleAuthenticatorSecretKey'"
    ))
    .fetch_optional(&mut c)
    .await
    .unwrap()
}

/// The failed-login count of `login`.
async fn failed(url: &str, backend: Backend, login: &str) -> i64 {
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    let int = if backend == Backend::MySql {
        "SIGNED"
    } else {
        "BIGINT"
    };
    sqlx::query_scalar(&format!(
        "SELECT CAST(failed AS {int}) FROM clientele_login_state WHERE login = '{login}'"
    ))
    .fetch_optional(&mut c)
    .await
    .unwrap()
    .unwrap_or(0)
}

// ----- behaviours -----

/// A Znuny database served with `migrate = false`: the secret Znuny stored logs in with the
/// current token, once; the next window's token again; the previous window's token while
/// unused (allow_previous_token is on by default); no token is SECOND_FACTOR_REQUIRED with
/// nothing named and nothing counted.
async fn a_znuny_secret_logs_in_on_a_migrate_false_database(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    // The OTRS tables and a user exist (created once by a migrating server), then Znuny's
    // secret is written with SQL and the database is served as a foreign one.
    let mut setup = Server::start(&config(&db.url, "", ""), clock()).await;
    setup.create("alice").await;
    setup.stop().await;
    store_secret(&db.url, "alice", ZNUNY_SECRET).await;
    let mut s = Server::start(&config(&db.url, "migrate = false", ""), clock()).await;

    let r = s.login("alice", PASSWORD, "").await;
    assert_eq!(
        Outcome::try_from(r.outcome).unwrap(),
        Outcome::SecondFactorRequired
    );
    assert!(r.source.is_empty() && r.customer_user.is_none() && r.customer_ids.is_empty());
    assert_eq!(
        failed(&db.url, backend, "alice").await,
        0,
        "nothing counted"
    );

    let now = token(ZNUNY_SECRET, s.now());
    let ok = s.login("alice", PASSWORD, &now).await;
    assert_eq!(Outcome::try_from(ok.outcome).unwrap(), Outcome::Success);
    assert_eq!(ok.customer_user.unwrap().login, "alice");
    assert_eq!(ok.source, "main");
    // Replayed inside its window: refused (and counted).
    assert_eq!(
        s.outcome("alice", PASSWORD, &now).await,
        Outcome::InvalidCredentials
    );
    s.advance(30);
    let next = token(ZNUNY_SECRET, s.now());
    assert_eq!(s.outcome("alice", PASSWORD, &next).await, Outcome::Success);
    // Two windows on, the token of the window before is still unused: accepted.
    s.advance(60);
    let previous = token(ZNUNY_SECRET, s.now() - 30);
    assert_eq!(
        s.outcome("alice", PASSWORD, &previous).await,
        Outcome::Success
    );
    // Not one older than the previous window; the current one, newer than any used, once.
    assert_eq!(
        s.outcome("alice", PASSWORD, &token(ZNUNY_SECRET, s.now() - 60))
            .await,
        Outcome::InvalidCredentials
    );
    assert_eq!(
        s.outcome("alice", PASSWORD, &token(ZNUNY_SECRET, s.now()))
            .await,
        Outcome::Success
    );
    // The secret is untouched, as Znuny wrote it.
    assert_eq!(
        stored_secret(&db.url, "alice").await.as_deref(),
        Some(ZNUNY_SECRET)
    );
    s.stop().await;
}

/// With `allow_previous_token = false` only the current window's token is accepted.
async fn the_previous_window_is_refused_when_the_option_is_off(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut s = Server::start(
        &config(&db.url, "", "allow_previous_token = false\n"),
        clock(),
    )
    .await;
    s.create("alice").await;
    store_secret(&db.url, "alice", ZNUNY_SECRET).await;
    s.advance(30);
    let previous = token(ZNUNY_SECRET, s.now() - 30);
    assert_eq!(
        s.outcome("alice", PASSWORD, &previous).await,
        Outcome::InvalidCredentials
    );
    assert_eq!(
        s.outcome("alice", PASSWORD, &token(ZNUNY_SECRET, s.now()))
            .await,
        Outcome::Success
    );
    s.stop().await;
}

/// Wrong tokens after the right password are failed attempts: the third locks the login, and
/// then even the right password with the right token is LOCKED. Missing tokens count nothing.
async fn wrong_tokens_lock_the_login(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut s = Server::start(&config(&db.url, "", ""), clock()).await;
    s.create("alice").await;
    store_secret(&db.url, "alice", ZNUNY_SECRET).await;
    let right = token(ZNUNY_SECRET, s.now());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for n in 1..=2 {
        assert_eq!(
            s.outcome("alice", PASSWORD, wrong).await,
            Outcome::InvalidCredentials
        );
        assert_eq!(failed(&db.url, backend, "alice").await, n);
    }
    for _ in 0..5 {
        assert_eq!(
            s.outcome("alice", PASSWORD, "").await,
            Outcome::SecondFactorRequired
        );
    }
    assert_eq!(
        failed(&db.url, backend, "alice").await,
        2,
        "nothing counted"
    );
    assert_eq!(
        s.outcome("alice", PASSWORD, "not-a-token").await,
        Outcome::InvalidCredentials
    );
    assert_eq!(failed(&db.url, backend, "alice").await, 3);
    let locked = s.login("alice", PASSWORD, &right).await;
    assert_eq!(Outcome::try_from(locked.outcome).unwrap(), Outcome::Locked);
    assert!(locked.customer_user.is_none());
    s.stop().await;
}

/// An unknown login, a wrong password, and a wrong password of a user with a secret (with no
/// token, a wrong one or even the right one) answer byte for byte the same; so does a wrong
/// password of a user without a secret.
async fn wrong_passwords_read_like_unknown_logins_whatever_the_token(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    // No lockout: a locked login answers LOCKED, which these wrong passwords would reach.
    let cfg = config(&db.url, "", "").replace("max_failed_logins = 3", "max_failed_logins = 0");
    let mut s = Server::start(&cfg, clock()).await;
    s.create("alice").await;
    s.create("bob").await;
    store_secret(&db.url, "alice", ZNUNY_SECRET).await;
    let right = token(ZNUNY_SECRET, s.now());
    let unknown = s.login("nobody", PASSWORD, "").await;
    assert_eq!(
        Outcome::try_from(unknown.outcome).unwrap(),
        Outcome::InvalidCredentials
    );
    let unknown = unknown.encode_to_vec();
    for (login, password, otp) in [
        ("nobody", PASSWORD, right.as_str()),
        ("alice", "wrong", ""),
        ("alice", "wrong", "000000"),
        ("alice", "wrong", right.as_str()),
        ("ALICE", "wrong", right.as_str()),
        ("bob", "wrong", ""),
        ("bob", "wrong", "123456"),
    ] {
        let r = s.login(login, password, otp).await;
        assert_eq!(
            r.encode_to_vec(),
            unknown,
            "{login} / {password} / {otp:?}: {r:?} differs from an unknown login"
        );
    }
    // The token sent with a wrong password was not used up.
    assert_eq!(s.outcome("alice", PASSWORD, &right).await, Outcome::Success);
    s.stop().await;
}

/// Enrolment: a pending secret changes no login; a wrong token does not confirm it
/// (INVALID_ARGUMENT naming `otp`); a right one does, and the secret stored is one Znuny
/// reads; from then on the login needs a token (not the one that confirmed); removing it
/// brings back the password alone. Secrets never show in GetPreferences, and SetPreference
/// cannot write them.
async fn enrol_confirm_login_and_remove(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut s = Server::start(&config(&db.url, "", "issuer = \"Acme Desk\"\n"), clock()).await;
    s.create("alice").await;
    assert_eq!(s.outcome("alice", PASSWORD, "").await, Outcome::Success);
    let err = s.confirm("alice", "123456").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let e = s.enroll("ALICE").await;
    assert_eq!(e.secret.len(), 16);
    assert!(e
        .secret
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    assert_eq!(
        e.otpauth_uri,
        format!(
            "otpauth://totp/Acme%20Desk:alice?secret={}&issuer=Acme%20Desk&algorithm=SHA1&digits=6&period=30",
            e.secret
        )
    );
    // Pending: logins go on with the password alone, nothing active is stored.
    assert_eq!(s.outcome("alice", PASSWORD, "").await, Outcome::Success);
    assert_eq!(stored_secret(&db.url, "alice").await, None);
    let prefs = s
        .users
        .get_preferences(pb::GetPreferencesRequest {
            login: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .preferences;
    assert!(prefs.values().all(|v| !v.contains(&e.secret)), "{prefs:?}");
    let err = s
        .users
        .set_preference(pb::SetPreferenceRequest {
            login: "alice".into(),
            key: "UserGoogleAuthenticatorSecretKey".into(),
            value: ZNUNY_SECRET.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), ["key"]);

    let right = token(&e.secret, s.now());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for bad in [wrong, "", "1234567"] {
        let err = s.confirm("alice", bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
        assert_eq!(violations(&err), ["otp"], "{bad:?}");
    }
    s.confirm("alice", &right).await.unwrap();
    assert_eq!(
        stored_secret(&db.url, "alice").await.as_deref(),
        Some(e.secret.as_str()),
        "stored where Znuny reads it"
    );
    assert_eq!(
        s.outcome("alice", PASSWORD, "").await,
        Outcome::SecondFactorRequired
    );
    // The confirming token is used.
    assert_eq!(
        s.outcome("alice", PASSWORD, &right).await,
        Outcome::InvalidCredentials
    );
    s.advance(30);
    assert_eq!(
        s.outcome("alice", PASSWORD, &token(&e.secret, s.now()))
            .await,
        Outcome::Success
    );
    // Nothing pending any more.
    let err = s.confirm("alice", &right).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    s.auth
        .remove_totp(pb::RemoveTotpRequest {
            login: "alice".into(),
        })
        .await
        .unwrap();
    assert_eq!(s.outcome("alice", PASSWORD, "").await, Outcome::Success);
    assert_eq!(stored_secret(&db.url, "alice").await.as_deref(), Some(""));
    let err = s
        .auth
        .enroll_totp(pb::EnrollTotpRequest {
            login: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.stop().await;
}

/// `allow_empty_secret = false`: a user without a secret answers SECOND_FACTOR_REQUIRED to the
/// right password, whatever token it sends, until enrolled; a wrong password is still
/// INVALID_CREDENTIALS.
async fn without_empty_secrets_a_user_must_enrol(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut s = Server::start(
        &config(&db.url, "", "allow_empty_secret = false\n"),
        clock(),
    )
    .await;
    s.create("bob").await;
    for otp in ["", "123456"] {
        assert_eq!(
            s.outcome("bob", PASSWORD, otp).await,
            Outcome::SecondFactorRequired,
            "{otp:?}"
        );
    }
    assert_eq!(
        s.outcome("bob", "wrong", "").await,
        Outcome::InvalidCredentials
    );
    let e = s.enroll("bob").await;
    assert_eq!(
        s.outcome("bob", PASSWORD, &token(&e.secret, s.now())).await,
        Outcome::SecondFactorRequired,
        "a pending enrolment is no secret yet"
    );
    s.confirm("bob", &token(&e.secret, s.now())).await.unwrap();
    s.advance(30);
    assert_eq!(
        s.outcome("bob", PASSWORD, &token(&e.secret, s.now())).await,
        Outcome::Success
    );
    s.stop().await;
}

/// Two servers on one database: a token used on one is refused on the other, and of the same
/// token sent to both at once exactly one attempt succeeds.
async fn a_token_is_used_once_across_replicas(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let shared = clock();
    // No lockout here: the losing attempts of the race are counted, and a lock committed
    // before the winner's success would turn that success into LOCKED.
    let cfg = config(&db.url, "", "").replace("max_failed_logins = 3", "max_failed_logins = 0");
    let mut a = Server::start(&cfg, shared.clone()).await;
    // The first server has migrated the database before the second one starts.
    a.create("alice").await;
    let mut b = Server::start(&cfg, shared.clone()).await;
    store_secret(&db.url, "alice", ZNUNY_SECRET).await;
    let t = token(ZNUNY_SECRET, a.now());
    assert_eq!(a.outcome("alice", PASSWORD, &t).await, Outcome::Success);
    assert_eq!(
        b.outcome("alice", PASSWORD, &t).await,
        Outcome::InvalidCredentials
    );
    // Then a fresh token raced on both.
    shared.advance(Duration::from_secs(30));
    let t = token(ZNUNY_SECRET, a.now());
    let mut attempts = Vec::new();
    for i in 0..6 {
        let mut client = if i % 2 == 0 {
            a.auth.clone()
        } else {
            b.auth.clone()
        };
        let otp = t.clone();
        attempts.push(tokio::spawn(async move {
            client
                .authenticate(pb::AuthenticateRequest {
                    login: "alice".into(),
                    password: PASSWORD.into(),
                    otp,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .outcome
        }));
    }
    let mut outcomes = Vec::new();
    for h in attempts {
        outcomes.push(Outcome::try_from(h.await.unwrap()).unwrap());
    }
    let successes = outcomes.iter().filter(|o| **o == Outcome::Success).count();
    assert_eq!(successes, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Success | Outcome::InvalidCredentials)),
        "{outcomes:?}"
    );
    a.stop().await;
    b.stop().await;
}

/// A renamed login keeps its secret (a preference, moved with the record) and its used
/// steps: the token used under the old login is refused under the new one.
async fn a_renamed_login_keeps_its_secret_and_used_tokens(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let mut s = Server::start(&config(&db.url, "", ""), clock()).await;
    s.create("alice").await;
    store_secret(&db.url, "alice", ZNUNY_SECRET).await;
    let t = token(ZNUNY_SECRET, s.now());
    assert_eq!(s.outcome("alice", PASSWORD, &t).await, Outcome::Success);
    s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "alice".into(),
            customer_user: Some(pb::CustomerUser {
                login: "alice2".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["login".into()],
            }),
        })
        .await
        .unwrap();
    assert_eq!(
        s.outcome("alice2", PASSWORD, "").await,
        Outcome::SecondFactorRequired
    );
    assert_eq!(
        s.outcome("alice2", PASSWORD, &t).await,
        Outcome::InvalidCredentials
    );
    s.advance(30);
    assert_eq!(
        s.outcome("alice2", PASSWORD, &token(ZNUNY_SECRET, s.now()))
            .await,
        Outcome::Success
    );
    s.stop().await;
}

common::fixture::per_backend! {
    common::fixture::sql_backend: writes [
        a_znuny_secret_logs_in_on_a_migrate_false_database,
        the_previous_window_is_refused_when_the_option_is_off,
        wrong_tokens_lock_the_login,
        wrong_passwords_read_like_unknown_logins_whatever_the_token,
        enrol_confirm_login_and_remove,
        without_empty_secrets_a_user_must_enrol,
        a_token_is_used_once_across_replicas,
        a_renamed_login_keeps_its_secret_and_used_tokens,
    ];
}

/// An LDAP user (bind-checked password) enrols, and its secret and used steps live in the
/// source's `store_url` database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldap_user_keeps_its_secret_in_the_store() {
    use common::slapd::{attr, person, Slapd, ADMIN_DN, ADMIN_PW};
    let ldif = person(
        "lena",
        "Lena",
        "Ldap",
        "lena@example.com",
        &["acme"],
        &attr("userPassword", PASSWORD),
    );
    let Some(slapd) = Slapd::start(&ldif) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("bind.pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    let config = format!(
        "customer_sources = []\n[[customer_user_sources]]\nname = \"dir\"\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\nscope = \"one\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=inetOrgPerson)\"\ncustomer_company_support = false\nstore_url = \"{store}\"\n[auth]\n[auth.rate_limit]\nper_login_per_minute = 0\nper_client_per_minute = 0\n[auth.two_factor]\nenabled = true\n",
        slapd.url(),
        pw.display()
    );
    let mut s = Server::start(&config, clock()).await;
    assert_eq!(s.outcome("lena", PASSWORD, "").await, Outcome::Success);
    let e = s.enroll("lena").await;
    s.confirm("lena", &token(&e.secret, s.now())).await.unwrap();
    assert_eq!(
        stored_secret(&store, "lena").await.as_deref(),
        Some(e.secret.as_str())
    );
    assert_eq!(
        s.outcome("lena", PASSWORD, "").await,
        Outcome::SecondFactorRequired
    );
    assert_eq!(
        s.outcome("lena", "wrong", &token(&e.secret, s.now())).await,
        Outcome::InvalidCredentials
    );
    s.advance(30);
    let t = token(&e.secret, s.now());
    assert_eq!(s.outcome("lena", PASSWORD, &t).await, Outcome::Success);
    assert_eq!(
        s.outcome("lena", PASSWORD, &t).await,
        Outcome::InvalidCredentials,
        "replayed"
    );
    s.stop().await;
}
