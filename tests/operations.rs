//! Operations: sources that come back, `check-config`, `migrate` and the embedded default.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use clientele::proto::{self as pb, search_customer_users_request::Criterion};
use common::{user_source, TestServer};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clientele"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_unreachable_at_start_up_serves_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite cannot open a file in a directory that does not exist yet.
    let later = dir.path().join("later");
    let url = format!("sqlite://{}", later.join("users.db").display());
    let config = user_source(
        "late",
        &url,
        "customer_user",
        "customer_company_support = false",
    );
    let mut s = TestServer::start(&config).await;
    let search =
        |c: &mut clientele::proto::customer_user_service_client::CustomerUserServiceClient<
            tonic::transport::Channel,
        >| {
            let mut c = c.clone();
            async move {
                c.search_customer_users(pb::SearchCustomerUsersRequest {
                    criterion: Some(Criterion::Query("*".into())),
                    ..Default::default()
                })
                .await
            }
        };
    let err = search(&mut s.users).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    std::fs::create_dir_all(&later).unwrap();
    // The source's circuit is open now; it closes on the first successful trial (the call's own,
    // or the health probe's within its interval), so the search succeeds within a few seconds.
    let started = std::time::Instant::now();
    let ok = loop {
        match search(&mut s.users).await {
            Ok(ok) => break ok,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(15) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("serves once the database is reachable: {e:?}"),
        }
    };
    assert!(ok.into_inner().source_status[0].ok);
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(pb::CustomerUser {
                login: "late".into(),
                first_name: "L".into(),
                last_name: "Ate".into(),
                email: "late@example.com".into(),
                customer_id: "c".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("migrated on first contact, writable");
    s.stop().await;
}

#[test]
fn check_config_names_each_source_and_fails_on_any_failure() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!("sqlite://{}", dir.path().join("ok.db").display());
    let config = dir.path().join("clientele.toml");
    std::fs::write(
        &config,
        user_source("good", &good, "customer_user", "")
            + &user_source(
                "down",
                "postgres://probe:hunter2@127.0.0.1:1/none",
                "customer_user",
                "",
            ),
    )
    .unwrap();
    let out = bin()
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("customer_user_sources \"good\": ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("customer_user_sources \"down\": FAILED"),
        "{stdout}"
    );
    assert!(stdout.contains("cannot connect"), "{stdout}");
    assert!(
        !stdout.contains("hunter2"),
        "passwords never printed: {stdout}"
    );

    std::fs::write(&config, user_source("good", &good, "customer_user", "")).unwrap();
    let out = bin()
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn invalid_configuration_lists_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clientele.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"nowhere\"\nlisten_typo = 1\n[[customer_user_sources]]\nname = \"a\"\nkind = \"sql\"\n",
    )
    .unwrap();
    let out = bin()
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "server.listen:",
        "server.listen_typo",
        "customer_user_sources[0].url",
    ] {
        assert!(stderr.contains(key), "{key} missing: {stderr}");
    }
}

#[test]
fn migrate_with_the_embedded_default_creates_the_otrs_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let db = dir.path().join("clientele.db");
    assert!(db.exists());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        for table in [
            "valid",
            "customer_user",
            "customer_company",
            "customer_preferences",
            "customer_user_customer",
        ] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{table}: {e}"));
            if table == "valid" {
                assert_eq!(n, 3);
            }
        }
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM valid ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(names, ["valid", "invalid", "invalid-temporarily"]);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_table_is_served_and_never_migrated() {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("znuny.db").display()
    );
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    // A table shaped like another system's: its own names, an extra column, no create/change columns.
    for stmt in [
        "CREATE TABLE people (uid VARCHAR(200) NOT NULL, mail VARCHAR(150) NOT NULL, org VARCHAR(150) NOT NULL, given VARCHAR(100) NOT NULL, surname VARCHAR(100) NOT NULL, room VARCHAR(20) NULL, valid_id SMALLINT NOT NULL)",
        "INSERT INTO people VALUES ('jürgen', 'Juergen@Example.com', 'acme', 'Jürgen', 'Groß', '4.11', 1)",
        "CREATE TABLE customer_preferences (user_id VARCHAR(250) NOT NULL, preferences_key VARCHAR(150) NOT NULL, preferences_value VARCHAR(250) NULL)",
    ] {
        sqlx::query(stmt).execute(&mut conn).await.unwrap();
    }
    // No customer sources: this database has no company table.
    let config = "customer_sources = []\n".to_owned()
        + &user_source(
        "znuny",
        &url,
        "people",
        "migrate = false\nforeign_db = true\ncustomer_company_support = false\n[customer_user_sources.map]\nlogin = \"uid\"\nemail = \"mail\"\ncustomer_id = \"org\"\nfirst_name = \"given\"\nlast_name = \"surname\"\ntitle = \"\"\nphone = \"\"\nfax = \"\"\nmobile = \"\"\nstreet = \"\"\nzip = \"\"\ncity = \"\"\ncountry = \"\"\ncomment = \"\"\npassword = \"\"\nroom = \"room\"\n",
    );
    let mut s = TestServer::start(&config).await;
    let u = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "JÜRGEN".into(),
        })
        .await
        .expect("get from the foreign table")
        .into_inner();
    assert_eq!(u.login, "jürgen");
    assert_eq!(u.extra.get("room").map(String::as_str), Some("4.11"));
    assert_eq!(u.full_name, "Jürgen Groß");
    assert!(u.create_time.is_none());
    let r = s
        .users
        .search_customer_users(pb::SearchCustomerUsersRequest {
            criterion: Some(Criterion::Query("GROSS OR groß".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.customer_users.len(), 1);
    let updated = s
        .users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "jürgen".into(),
            customer_user: Some(pb::CustomerUser {
                extra: [("room".to_owned(), "5.01".to_owned())].into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["extra.room".into()],
            }),
        })
        .await
        .expect("update a foreign row")
        .into_inner();
    assert_eq!(updated.extra.get("room").map(String::as_str), Some("5.01"));
    s.stop().await;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        tables,
        [
            "clientele_login_state",
            "clientele_totp_step",
            "clientele_write_lock",
            "customer_preferences",
            "people"
        ],
        "only Clientele's own tables were created; no OTRS table, no migration history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_slower_than_the_callers_deadline_gives_a_partial_answer() {
    // A "database" that accepts connections and never answers.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = blackhole.accept().await {
            open.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let live = format!("sqlite://{}", dir.path().join("live.db").display());
    let config = user_source(
        "slow",
        &format!("postgres://nobody@127.0.0.1:{port}/none"),
        "customer_user",
        "customer_company_support = false",
    )
    .replace("timeout = \"3s\"", "timeout = \"60s\"")
    .replace("connect_timeout = \"2s\"", "connect_timeout = \"60s\"")
        + &user_source(
            "live",
            &live,
            "customer_user",
            "customer_company_support = false",
        );
    let mut s = TestServer::start(&config).await;
    let mut request = tonic::Request::new(pb::SearchCustomerUsersRequest {
        criterion: Some(Criterion::Query("*".into())),
        ..Default::default()
    });
    request.set_timeout(std::time::Duration::from_millis(1500));
    let r = s
        .users
        .search_customer_users(request)
        .await
        .expect("the live source answers within the deadline")
        .into_inner();
    let slow = r
        .source_status
        .iter()
        .find(|st| st.source == "slow")
        .unwrap();
    assert!(!slow.ok, "{slow:?}");
    assert!(slow.error.contains("no answer within"), "{slow:?}");
    assert!(
        r.source_status
            .iter()
            .find(|st| st.source == "live")
            .unwrap()
            .ok
    );

    // Health: the server serves, the slow source does not.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let overall = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        overall.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    s.stop().await;
    held.abort();
}

#[test]
fn admin_client_commands_talk_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("c.toml");
    let token = "admin-token-for-tests";
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    std::fs::write(
        &config,
        format!(
            "customer_sources = []\n[server]\nmetrics_listen = \"\"\n[[callers]]\nname = \"ops\"\ntoken_sha256 = \"{digest}\"\nscopes = [\"admin\"]\n{}",
            user_source("main", &format!("sqlite://{}", dir.path().join("a.db").display()), "customer_user", "customer_company_support = false")
        ),
    )
    .unwrap();
    let mut server = bin()
        .arg("--config")
        .arg(&config)
        .env("CLIENTELE_SERVER__CONSOLE_LISTEN", "")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let run = |args: &[&str], password: Option<&str>| {
        let mut c = bin();
        c.args(["--server", &url])
            .args(args)
            .env("CLIENTELE_TOKEN", token);
        if let Some(p) = password {
            c.env("CLIENTELE_PASSWORD", p);
        }
        c.output().unwrap()
    };
    let mut ready = false;
    for _ in 0..100 {
        if run(&["resolve", "x@example.com"], None).status.success() {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready, "server did not come up");
    let out = run(
        &[
            "user",
            "create",
            "--login",
            "cli",
            "--first-name",
            "Cli",
            "--last-name",
            "User",
            "--email",
            "cli@example.com",
            "--customer-id",
            "acme",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["user", "get", "CLI"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("cli\tCli User\tcli@example.com\tacme"),
        "{out:?}"
    );
    let out = run(&["user", "search", "cli+user"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli@example.com"));
    let out = run(&["user", "set-password", "cli"], Some("Cli-Password-1"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["auth", "check", "cli"], Some("Cli-Password-1"));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("SUCCESS"),
        "{out:?}"
    );
    let out = run(&["auth", "check", "cli"], Some("wrong"));
    assert!(!out.status.success());
    let out = run(&["resolve", "Cli <CLI@example.com>"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\tcli@example.com\tcli\t"),
        "{out:?}"
    );
    // Without the token: refused.
    let out = bin()
        .args(["--server", &url, "user", "get", "cli"])
        .env_remove("CLIENTELE_TOKEN")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"),
        "{out:?}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert_eq!(server.wait().unwrap().code(), Some(0));
}
