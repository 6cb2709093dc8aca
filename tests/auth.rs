//! AuthService over the real server: every outcome, every legacy OTRS hash (then re-hashed),
//! exact lockout under concurrency, unlock, policy, generated passwords, rate limits, LDAP binds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use clientele::proto::{self as pb, auth_service_client::AuthServiceClient, Outcome};
use common::slapd::{person, Slapd, ADMIN_DN, ADMIN_PW};
use common::{fresh_db, user_source, violations, Backend, TestServer};
use sqlx::Connection;
use tonic::{transport::Channel, Code};

struct Env {
    s: TestServer,
    auth: AuthServiceClient<Channel>,
    db: common::TestDb,
}

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
        + auth;
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

const NO_RATE_LIMIT: &str =
    "[auth.rate_limit]\nper_login_per_minute = 0\nper_client_per_minute = 0\n";

fn new_user(login: &str) -> pb::CustomerUser {
    pb::CustomerUser {
        login: login.into(),
        first_name: "Auth".into(),
        last_name: "User".into(),
        email: format!("{login}@example.com"),
        customer_id: "acme".into(),
        ..Default::default()
    }
}

impl Env {
    async fn create(&mut self, login: &str, password: Option<&str>) {
        self.s
            .users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(new_user(login)),
                password: password.map(str::to_owned),
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

    async fn raw(&self) -> sqlx::AnyConnection {
        sqlx::AnyConnection::connect(&self.db.url).await.unwrap()
    }

    async fn stored_hash(&self, login: &str) -> String {
        let mut c = self.raw().await;
        sqlx::query_scalar::<_, String>(&format!(
            "SELECT pw FROM customer_user WHERE login = '{login}'"
        ))
        .fetch_one(&mut c)
        .await
        .unwrap()
    }

    async fn set_raw_hash(&self, login: &str, hash: &str) {
        let mut c = self.raw().await;
        let sql = match self.db.backend {
            Backend::Postgres => "UPDATE customer_user SET pw = $1 WHERE login = $2",
            _ => "UPDATE customer_user SET pw = ? WHERE login = ?",
        };
        sqlx::query(sql)
            .bind(hash)
            .bind(login)
            .execute(&mut c)
            .await
            .unwrap();
    }

    async fn failed_count(&self, login: &str) -> i64 {
        let mut c = self.raw().await;
        sqlx::query_scalar::<_, i64>(
            &format!(
                "SELECT CAST(failed AS BIGINT) FROM clientele_login_state WHERE login = '{login}'"
            )
            .replace(
                "AS BIGINT",
                if self.db.backend == Backend::MySql {
                    "AS SIGNED"
                } else {
                    "AS BIGINT"
                },
            ),
        )
        .fetch_optional(&mut c)
        .await
        .unwrap()
        .unwrap_or(0)
    }
}

fn outcome(r: &pb::AuthenticateResponse) -> Outcome {
    Outcome::try_from(r.outcome).unwrap()
}

async fn every_outcome(backend: Backend) {
    let Some(mut e) = env(backend, NO_RATE_LIMIT).await else {
        return;
    };
    e.create("alice", Some("Correct-Horse-1")).await;
    assert!(e.stored_hash("alice").await.starts_with("$argon2id$"));
    let ok = e.login("ALICE", "Correct-Horse-1").await;
    assert_eq!(outcome(&ok), Outcome::Success);
    assert_eq!(ok.customer_user.as_ref().unwrap().login, "alice");
    assert_eq!(ok.customer_ids, ["acme"]);
    assert_eq!(ok.source, "main");
    let wrong = e.login("alice", "wrong").await;
    assert_eq!(outcome(&wrong), Outcome::InvalidCredentials);
    assert!(wrong.customer_user.is_none() && wrong.customer_ids.is_empty());
    assert_eq!(
        outcome(&e.login("nobody", "Correct-Horse-1").await),
        Outcome::InvalidCredentials
    );
    assert_eq!(
        outcome(&e.login("alice", "").await),
        Outcome::InvalidCredentials
    );
    // A user without a password never authenticates.
    e.create("nopw", None).await;
    assert_eq!(
        outcome(&e.login("nopw", "").await),
        Outcome::InvalidCredentials
    );
    // Success resets the count and keeps OTRS's preferences in step.
    assert_eq!(e.failed_count("alice").await, 2);
    assert_eq!(
        outcome(&e.login("alice", "Correct-Horse-1").await),
        Outcome::Success
    );
    assert_eq!(e.failed_count("alice").await, 0);
    let prefs =
        e.s.users
            .get_preferences(pb::GetPreferencesRequest {
                login: "alice".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .preferences;
    assert_eq!(prefs.get("UserLoginFailed").map(String::as_str), Some("0"));
    assert!(prefs
        .get("UserLastLogin")
        .is_some_and(|t| t.parse::<i64>().is_ok_and(|t| t > 1_700_000_000)));
    // Invalid users: DISABLED with the right password; a wrong one is counted like any other.
    e.s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "alice".into(),
            customer_user: Some(pb::CustomerUser {
                validity: pb::Validity::InvalidTemporarily as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["validity".into()],
            }),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome(&e.login("alice", "Correct-Horse-1").await),
        Outcome::Disabled
    );
    assert_eq!(
        outcome(&e.login("alice", "wrong").await),
        Outcome::InvalidCredentials
    );
    assert_eq!(e.failed_count("alice").await, 1);
    e.s.stop().await;
}

/// Spec 4.6: (password, stored value) for every format.
const VECTORS: &[(&str, &str)] = &[
    ("Secret123!", "af6daf5f1a60c91f73361dd476c97e496beda065"),
    ("Secret123!", "94e0f9bc7f5a5225bd141bad5adf9befcc112aef09b88f47a14e20b75a7bbec2"),
    ("Secret123!", "e7c4f7a6da2f1c5c67dbc6fe9f229ebbfd9a6199aa65319d20e43df9b871fce2294436f157f244dc74b7e250c6c0e5f6ecab5d53c67fbcc60d02dfd78f072047"),
    ("Secret123!", "$1$jdoe$pNtqiK13gpNlIqgSpbjl61"),
    ("Secret123!", "$apr1$jdoe$8xJ7kaojHzNELT7khMcKO0"),
    ("Secret123!", "jdl1FMVQukacA"),
    ("Secret123!", "BCRYPT:9:abcdefghijklmnop:0etANxignnaMplvhtx8W5Zl07vTX4YK"),
    ("Secret123!", "$2b$09$WUHhXETkX0fnYkrqZU3ta.0etANxignnaMplvhtx8W5Zl07vTX4YK"),
    ("someäöü", "99b527f1c6746a4996d7f2e992f1ff444ebb61e4"),
    ("someäöü", "3573cec29cba4a6a15d6c7f1d80f855f2e16bcc34f74bafa30d6ddd323563f57"),
    ("someäöü", "$1$unittest$j2YfqH/bDcXxNIAOTsgLh."),
    ("someäöü", "$apr1$unittest$vymXj9ISZUyZNGBSV1CxV."),
    ("someäöü", "unHtfgOrUchqM"),
    ("カス", "bce03240724788e2c7d1a8fdc9a9b6c05823040e23f86b6e94a3395705eed329"),
    ("カス", "$1$mhuber$29nqcMlTsbHEVixJSYD1.."),
    ("カス", "mhgJ6YCCOKr5Y"),
];

async fn legacy_hashes_verify_then_rehash(backend: Backend) {
    let Some(mut e) = env(backend, NO_RATE_LIMIT).await else {
        return;
    };
    e.create("legacy", None).await;
    for (password, stored) in VECTORS {
        e.set_raw_hash("legacy", stored).await;
        assert_eq!(
            outcome(&e.login("legacy", "not the password").await),
            Outcome::InvalidCredentials,
            "{stored}"
        );
        assert_eq!(
            e.stored_hash("legacy").await,
            *stored,
            "a failed login changes nothing"
        );
        assert_eq!(
            outcome(&e.login("legacy", password).await),
            Outcome::Success,
            "{stored}"
        );
        let now = e.stored_hash("legacy").await;
        assert!(
            now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored} re-hashed: {now}"
        );
        assert_eq!(
            outcome(&e.login("legacy", password).await),
            Outcome::Success,
            "{stored} after re-hash"
        );
    }
    // A stored upper-case SHA-256 never verifies (spec 8.2 item 42).
    e.set_raw_hash("legacy", &VECTORS[1].1.to_uppercase()).await;
    assert_eq!(
        outcome(&e.login("legacy", "Secret123!").await),
        Outcome::InvalidCredentials
    );
    e.s.stop().await;
}

async fn lockout_is_exact_under_concurrency(backend: Backend) {
    let Some(mut e) = env(
        backend,
        &format!("max_failed_logins = 5\nlockout_duration = \"15m\"\n{NO_RATE_LIMIT}"),
    )
    .await
    else {
        return;
    };
    e.create("target", Some("Right-Password-9")).await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let mut c = e.auth.clone();
            tokio::spawn(async move {
                c.authenticate(pb::AuthenticateRequest {
                    login: "target".into(),
                    password: "wrong".into(),
                    client_ip: String::new(),
                    otp: String::new(),
                })
                .await
                .map(|r| r.into_inner().outcome)
            })
        })
        .collect();
    let mut invalid = 0;
    let mut locked = 0;
    for a in attempts {
        match Outcome::try_from(a.await.unwrap().expect("no errors under concurrency")).unwrap() {
            Outcome::InvalidCredentials => invalid += 1,
            Outcome::Locked => locked += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        (invalid, locked),
        (5, 15),
        "exactly max_failed_logins failures are counted"
    );
    assert_eq!(e.failed_count("target").await, 5);
    let r = e.login("target", "Right-Password-9").await;
    assert_eq!(
        outcome(&r),
        Outcome::Locked,
        "locked even with the right password"
    );
    assert!(r.locked_until.is_some());
    let prefs =
        e.s.users
            .get_preferences(pb::GetPreferencesRequest {
                login: "target".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .preferences;
    assert_eq!(prefs.get("UserLoginFailed").map(String::as_str), Some("5"));
    e.auth
        .unlock_login(pb::UnlockLoginRequest {
            login: "TARGET".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome(&e.login("target", "Right-Password-9").await),
        Outcome::Success
    );
    assert_eq!(
        e.auth
            .unlock_login(pb::UnlockLoginRequest {
                login: "ghost".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    e.s.stop().await;
}

async fn policy_and_generated_passwords(backend: Backend) {
    let policy = "[auth.password_policy]\nmin_length = 10\nrequire_mixed_case = true\nrequire_digit = true\npattern = \"^[^ ]+$\"\n";
    let Some(mut e) = env(backend, &format!("{NO_RATE_LIMIT}{policy}")).await else {
        return;
    };
    e.create("pol", None).await;
    let err = e
        .auth
        .set_password(pb::SetPasswordRequest {
            login: "pol".into(),
            password: "ab cd".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), ["password"; 4]);
    e.auth
        .set_password(pb::SetPasswordRequest {
            login: "pol".into(),
            password: "GoodPass42x".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome(&e.login("pol", "GoodPass42x").await),
        Outcome::Success
    );
    assert_eq!(
        e.auth
            .set_password(pb::SetPasswordRequest {
                login: "ghost".into(),
                password: "GoodPass42x".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    // Create refuses a password against the policy, and generates one that passes it.
    let err =
        e.s.users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(new_user("weak")),
                password: Some("short".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let created =
        e.s.users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(new_user("gen")),
                generate_password: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
    let generated = created.generated_password;
    assert!(generated.len() >= 16);
    assert!(
        generated.chars().filter(char::is_ascii_uppercase).count() >= 2
            && generated.chars().any(|c| c.is_ascii_digit())
    );
    assert_eq!(outcome(&e.login("gen", &generated).await), Outcome::Success);
    e.s.stop().await;
}

async fn rate_limited(backend: Backend) {
    let Some(mut e) = env(
        backend,
        "[auth.rate_limit]\nper_login_per_minute = 3\nper_client_per_minute = 100\n",
    )
    .await
    else {
        return;
    };
    e.create("busy", Some("Busy-Password-1")).await;
    for _ in 0..3 {
        e.login("busy", "wrong").await;
    }
    let err = e
        .auth
        .authenticate(pb::AuthenticateRequest {
            login: "BUSY".into(),
            password: "Busy-Password-1".into(),
            client_ip: String::new(),
            otp: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Another login is not affected.
    e.create("calm", Some("Calm-Password-1")).await;
    assert_eq!(
        outcome(&e.login("calm", "Calm-Password-1").await),
        Outcome::Success
    );
    e.s.stop().await;
}

common::fixture::per_backend! {
    common::fixture::sql_backend: writes [
        every_outcome,
        legacy_hashes_verify_then_rehash,
        lockout_is_exact_under_concurrency,
        policy_and_generated_passwords,
        rate_limited,
    ];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_users_bind_lock_and_an_unreachable_directory_counts_nothing() {
    let ldif = person(
        "lena",
        "Lena",
        "Dir",
        "lena@example.com",
        &["acme"],
        "userPassword: dir-Secret-1\n",
    ) + &person(
        "old",
        "Old",
        "Dir",
        "old@example.com",
        &["acme"],
        "userPassword: old-Secret-1\nemployeeType: inactive\n",
    );
    let Some(mut slapd) = Slapd::start(&ldif) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    let config = format!(
        "customer_sources = []\n[[customer_user_sources]]\nname = \"dir\"\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\ninvalid_filter = \"(employeeType=inactive)\"\ntimeout = \"2s\"\nconnect_timeout = \"1s\"\nstore_url = \"sqlite://{}\"\n[auth]\nmax_failed_logins = 3\n{NO_RATE_LIMIT}",
        slapd.url(),
        pw.display(),
        dir.path().join("store.db").display()
    );
    let s = TestServer::start(&config).await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut auth = AuthServiceClient::new(channel);
    let client = auth.clone();
    let login = |l: &str, p: &str| {
        let mut a = client.clone();
        let (l, p) = (l.to_owned(), p.to_owned());
        async move {
            a.authenticate(pb::AuthenticateRequest {
                login: l,
                password: p,
                client_ip: String::new(),
                otp: String::new(),
            })
            .await
        }
    };
    let ok = login("LENA", "dir-Secret-1").await.unwrap().into_inner();
    assert_eq!(outcome(&ok), Outcome::Success);
    assert_eq!(
        (ok.source.as_str(), ok.customer_ids.as_slice()),
        ("dir", ["acme".to_owned()].as_slice())
    );
    assert_eq!(
        outcome(&login("lena", "").await.unwrap().into_inner()),
        Outcome::InvalidCredentials,
        "no anonymous bind"
    );
    assert_eq!(
        outcome(&login("old", "old-Secret-1").await.unwrap().into_inner()),
        Outcome::Disabled
    );
    assert_eq!(
        outcome(&login("lena", "wrong").await.unwrap().into_inner()),
        Outcome::InvalidCredentials
    );
    // The directory goes away: UNAVAILABLE, and nothing is counted.
    slapd.stop();
    for _ in 0..5 {
        let err = login("lena", "wrong").await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
    }
    slapd.restart();
    // Counted so far: the empty and the wrong password; this third failure locks.
    assert_eq!(
        outcome(&login("lena", "wrong").await.unwrap().into_inner()),
        Outcome::InvalidCredentials
    );
    assert_eq!(
        outcome(&login("lena", "dir-Secret-1").await.unwrap().into_inner()),
        Outcome::Locked
    );
    auth.unlock_login(pb::UnlockLoginRequest {
        login: "lena".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        outcome(&login("lena", "dir-Secret-1").await.unwrap().into_inner()),
        Outcome::Success
    );
    let err = auth
        .set_password(pb::SetPasswordRequest {
            login: "lena".into(),
            password: "New-Secret-22".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    s.stop().await;
}
