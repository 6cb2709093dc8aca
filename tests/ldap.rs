//! LDAP sources against a real OpenLDAP `slapd` started per test, in what is particular to a
//! directory: binary attributes, LDAP customer sources and groups for directory users, mixing
//! with SQL sources, an outage and its recovery, `check-config` causes, StartTLS and `ldaps://`.
//! The reads every source kind shares run on LDAP in tests/reads.rs and tests/conformance.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use clientele::proto::{self as pb, search_customer_users_request::Criterion};
use common::slapd::{person, Slapd, ADMIN_DN, ADMIN_PW};
use common::{fresh_db, search, user_source, Backend, TestServer};
use tonic::Code;

fn fixtures() -> String {
    let mut l = String::new();
    l += &person(
        "jdoe",
        "John",
        "Doe",
        "john.doe@example.com",
        &["acme", "globex"],
        "jpegPhoto:: /9j/4AAQSkZJRgABAQ==\n",
    );
    l += &person(
        "jürgen",
        "Jürgen",
        "Groß",
        "Juergen@Example.com",
        &["acme"],
        "",
    );
    l += &person("カス", "顧客", "テスト", "kasu@example.jp", &["acme"], "");
    l += &person(
        "gone",
        "Gone",
        "Away",
        "gone@example.com",
        &["acme"],
        "employeeType: inactive\n",
    );
    l += &person("ambig1", "Team", "One", "team@example.com", &["acme"], "");
    l += &person("ambig2", "Team", "Two", "TEAM@example.com", &["acme"], "");
    l += &person(
        "shared",
        "Shared",
        "Directory",
        "shared-ldap@example.com",
        &["acme"],
        "",
    );
    l += &person(
        "star*paren(",
        "Odd",
        "Chars",
        "odd@example.com",
        &["acme"],
        "",
    );
    for i in 0..300 {
        l += &person(
            &format!("bulk{i:03}"),
            "Bulk",
            &format!("Person{i:03}"),
            &format!("bulk{i:03}@example.com"),
            &["bulkco"],
            "",
        );
    }
    for (o, d) in [("acme", "ACME Corp"), ("globex", "Globex Corporation")] {
        l += &format!("dn: o={o},ou=companies,dc=example,dc=com\nobjectClass: organization\no: {o}\ndescription: {d}\n\n");
    }
    l
}

/// The LDAP customer-user source (TOML); `extra` inside it.
fn ldap_source(name: &str, url: &str, pw_file: &std::path::Path, extra: &str) -> String {
    format!(
        "[[customer_user_sources]]\nname = \"{name}\"\nkind = \"ldap\"\nurl = \"{url}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\nscope = \"one\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=inetOrgPerson)\"\ninvalid_filter = \"(employeeType=inactive)\"\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\ncustomer_company_support = false\n{extra}\n[customer_user_sources.map]\nphoto = \"jpegPhoto\"\n",
        pw_file.display()
    )
}

struct Fixture {
    slapd: Slapd,
    dir: tempfile::TempDir,
    pw: std::path::PathBuf,
}

fn fixture() -> Option<Fixture> {
    let slapd = Slapd::start(&fixtures())?;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("bind.pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    Some(Fixture { slapd, dir, pw })
}

impl Fixture {
    fn sqlite(&self, name: &str) -> String {
        format!("sqlite://{}", self.dir.path().join(name).display())
    }
}

fn logins(r: &pb::SearchCustomerUsersResponse) -> Vec<String> {
    r.customer_users.iter().map(|u| u.login.clone()).collect()
}

/// Binary attribute values (here `jpegPhoto`, mapped to the extra field `photo`) are not text and
/// never show up; the text attributes of the same entry do. The shared read behaviours of a
/// directory source are in tests/reads.rs and tests/conformance.rs (`ldap::*`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_attributes_are_not_text() {
    let Some(f) = fixture() else { return };
    let config = "customer_sources = []\n".to_owned()
        + &ldap_source(
            "dir",
            &f.slapd.url(),
            &f.pw,
            &format!("store_url = \"{}\"", f.sqlite("store.db")),
        );
    let mut s = TestServer::start(&config).await;
    let jdoe = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "jdoe".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            jdoe.login.as_str(),
            jdoe.source.as_str(),
            jdoe.full_name.as_str()
        ),
        ("jdoe", "dir", "John Doe")
    );
    assert!(
        !jdoe.extra.contains_key("photo"),
        "binary values are not text"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_customers_and_groups_for_ldap_users() {
    let Some(f) = fixture() else { return };
    let store = f.sqlite("store.db");
    let config = user_source("local", &store, "customer_user", "customer_company_support = false")
        + &ldap_source("dir", &f.slapd.url(), &f.pw, "")
        + &format!(
            "[[customer_sources]]\nname = \"companies\"\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"ou=companies,dc=example,dc=com\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=organization)\"\n",
            f.slapd.url(),
            f.pw.display()
        )
        + "[groups]\ncustomer_group_support = true\nalways_groups = []\ncustomer_always_groups = []\n";
    let mut s = TestServer::start(&config).await;
    let c = s
        .customers
        .get_customer(pb::GetCustomerRequest {
            customer_id: "ACME".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (c.customer_id.as_str(), c.name.as_str(), c.source.as_str()),
        ("acme", "ACME Corp", "companies")
    );
    let r = s
        .customers
        .search_customers(pb::SearchCustomersRequest {
            query: "(acme || globex)".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.customers
            .iter()
            .map(|c| c.customer_id.as_str())
            .collect::<Vec<_>>(),
        ["acme", "globex"]
    );
    let err = s
        .customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "x".into(),
                name: "X".into(),
                ..Default::default()
            }),
            source: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // LDAP users get grants too (stored in SQL), directly and through their customers.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut groups = pb::group_service_client::GroupServiceClient::new(channel);
    groups
        .set_customer_user_permissions(pb::SetCustomerUserPermissionsRequest {
            login: "JDOE".into(),
            group: "admin".into(),
            permissions: [("ro".to_owned(), true)].into(),
        })
        .await
        .unwrap();
    groups
        .set_customer_permissions(pb::SetCustomerPermissionsRequest {
            customer_id: "globex".into(),
            group: "stats".into(),
            context: pb::PermissionContext::SameCustomer.into(),
            permissions: [("rw".to_owned(), true)].into(),
        })
        .await
        .unwrap();
    let names: Vec<String> = groups
        .list_customer_user_groups(pb::ListCustomerUserGroupsRequest {
            login: "jdoe".into(),
            permission: "ro".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(
        names,
        ["admin", "stats"],
        "globex is jdoe's second customer id (multi-valued o)"
    );
    let members = groups
        .list_group_customer_users(pb::ListGroupCustomerUsersRequest {
            group: "admin".into(),
            permission: "ro".into(),
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .logins;
    assert_eq!(members, ["jdoe"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_sqlite_postgres_ldap_precedence_dedupe_limit() {
    let Some(f) = fixture() else { return };
    let Some(pg) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let lite = f.sqlite("first.db");
    // Rows are also written behind the service's back below and searched at once: the SQL
    // sources answer from the database (an in-memory index sees them within index_refresh).
    let config = user_source(
        "lite",
        &lite,
        "customer_user",
        "customer_company_support = false\nsearch_index = \"database\"",
    ) + &user_source(
        "pg",
        &pg.url,
        "customer_user",
        "customer_company_support = false\nsearch_index = \"database\"",
    ) + &ldap_source("dir", &f.slapd.url(), &f.pw, "");
    let mut s = TestServer::start(&config).await;
    let create = |source: &str, login: &str| pb::CreateCustomerUserRequest {
        source: source.into(),
        customer_user: Some(pb::CustomerUser {
            login: login.into(),
            first_name: "Mixed".into(),
            last_name: "Team".into(),
            email: format!("{login}-{source}@example.com"),
            customer_id: "acme".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    s.users
        .create_customer_user(create("lite", "ambig1"))
        .await
        .expect_err("the login exists in the directory");
    s.users
        .create_customer_user(create("lite", "aaron"))
        .await
        .unwrap();
    s.users
        .create_customer_user(create("pg", "abe"))
        .await
        .unwrap();
    // "shared" in all three: written into SQL behind the service's back.
    for url in [&lite, &pg.url] {
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
        sqlx::query("INSERT INTO customer_user (login, email, customer_id, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ('Shared', 'shared-sql@example.com', 'acme', 'Shared', 'Team', 1, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP, 1)")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let r = search(&mut s, Criterion::Query("team".into()), 100, false).await;
    let got: Vec<(String, String)> = r
        .customer_users
        .iter()
        .map(|u| (u.login.clone(), u.source.clone()))
        .collect();
    let want = [
        ("aaron", "lite"),
        ("abe", "pg"),
        ("ambig1", "dir"),
        ("ambig2", "dir"),
        ("Shared", "lite"),
    ];
    assert_eq!(got, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert!(!r.truncated);
    assert_eq!(r.source_status.len(), 3);
    let r = search(&mut s, Criterion::Query("team".into()), 3, false).await;
    assert_eq!(logins(&r), ["aaron", "abe", "ambig1"]);
    assert!(r.truncated);
    let g = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "SHARED".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.source, "lite");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_down_then_back_without_restarting_clientele() {
    let Some(mut f) = fixture() else { return };
    let lite = f.sqlite("first.db");
    let config = user_source(
        "lite",
        &lite,
        "customer_user",
        "customer_company_support = false",
    ) + &ldap_source("dir", &f.slapd.url(), &f.pw, "");
    let mut s = TestServer::start(&config).await;
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            source: "lite".into(),
            customer_user: Some(pb::CustomerUser {
                login: "local1".into(),
                first_name: "Local".into(),
                last_name: "Doe".into(),
                email: "l@example.com".into(),
                customer_id: "c".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = search(&mut s, Criterion::Query("doe".into()), 10, false).await;
    assert_eq!(logins(&r), ["jdoe", "local1"]);

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = |want: i32| {
        let channel = channel.clone();
        async move {
            let mut h = tonic_health::pb::health_client::HealthClient::new(channel);
            for _ in 0..100 {
                let got = h
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: "source/dir".into(),
                    })
                    .await
                    .map(|r| r.into_inner().status)
                    .unwrap_or(-1);
                if got == want {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(health(1).await, "source/dir SERVING");

    f.slapd.stop();
    assert!(
        health(2).await,
        "source/dir NOT_SERVING while the directory is down"
    );
    let r = search(&mut s, Criterion::Query("doe".into()), 10, false).await;
    assert_eq!(logins(&r), ["local1"], "partial answer from SQLite");
    let dir = r.source_status.iter().find(|x| x.source == "dir").unwrap();
    assert!(!dir.ok && !dir.error.is_empty(), "{dir:?}");
    let g = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "local1".into(),
        })
        .await
        .expect("get falls through");
    assert_eq!(g.into_inner().source, "lite");

    f.slapd.restart();
    assert!(health(1).await, "source/dir SERVING again");
    let r = search(&mut s, Criterion::Query("doe".into()), 10, false).await;
    assert_eq!(logins(&r), ["jdoe", "local1"], "the directory serves again");
    assert!(r.source_status.iter().all(|x| x.ok));
    s.stop().await;
}

#[test]
fn check_config_names_the_exact_ldap_cause() {
    let Some(f) = fixture() else { return };
    let wrong_pw = f.dir.path().join("wrong.pw");
    std::fs::write(&wrong_pw, "nope").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            ldap_source("dir", &format!("ldap://127.0.0.1:{closed}"), &f.pw, ""),
            "cannot connect",
        ),
        (
            ldap_source("dir", &f.slapd.url(), &wrong_pw, ""),
            "bind refused",
        ),
        (
            ldap_source("dir", &f.slapd.url(), &f.pw, "")
                .replace("ou=people,dc=example", "ou=nowhere,dc=example"),
            "bad base DN",
        ),
        (
            ldap_source("dir", &f.slapd.url(), &f.pw, "").replace(
                "(objectClass=inetOrgPerson)",
                "(&(objectClass=inetOrgPerson)",
            ),
            "bad filter",
        ),
    ];
    for (source, cause) in cases {
        let config = f.dir.path().join("c.toml");
        std::fs::write(
            &config,
            format!(
                "customer_sources = []\n[groups]\nurl = \"{}\"\n{source}",
                f.sqlite("g.db")
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clientele"))
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{cause}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(cause), "{cause} missing: {stdout}");
        assert!(!stdout.contains(ADMIN_PW));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_ldaps_verify_the_server_certificate() {
    let Some(slapd) = Slapd::start_tls(&fixtures()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    let store = format!(
        "store_url = \"sqlite://{}\"",
        dir.path().join("s.db").display()
    );
    let ca = format!("ca_file = \"{}\"\n{store}", slapd.ca_file().display());
    let ldaps = slapd.ldaps_url().unwrap();
    for (url, extra) in [
        (slapd.url(), format!("starttls = true\n{ca}")),
        (ldaps.clone(), ca.clone()),
    ] {
        let config = "customer_sources = []\n".to_owned() + &ldap_source("dir", &url, &pw, &extra);
        let mut s = TestServer::start(&config).await;
        let u = s
            .users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: "jdoe".into(),
            })
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:?}"));
        assert_eq!(u.into_inner().login, "jdoe");
        s.stop().await;
    }
    // Without the CA the certificate does not verify: the source is unavailable, with the cause.
    let config = "customer_sources = []\n".to_owned() + &ldap_source("dir", &ldaps, &pw, &store);
    let mut s = TestServer::start(&config).await;
    let err = s
        .users
        .search_customer_users(pb::SearchCustomerUsersRequest {
            criterion: Some(Criterion::Query("doe".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().to_lowercase().contains("cert"),
        "{}",
        err.message()
    );
    s.stop().await;
}
