//! One read conformance suite for every source kind: the same data, the same reads, the same
//! answers from SQLite, PostgreSQL, MariaDB and OpenLDAP.

mod common;

use clientele::proto::{self as pb, search_customer_users_request::Criterion};
use common::slapd::{person, Slapd, ADMIN_DN, ADMIN_PW};
use common::{fresh_db, search, user_source, Backend, TestServer};
use tonic::Code;

/// (login, first name, last name, email, customer ids, valid)
type Person = (
    &'static str,
    &'static str,
    String,
    String,
    Vec<&'static str>,
    bool,
);

fn people() -> Vec<Person> {
    let mut v: Vec<Person> = vec![
        (
            "jdoe",
            "John",
            "Doe".into(),
            "john.doe@example.com".into(),
            vec!["acme", "globex"],
            true,
        ),
        (
            "jürgen",
            "Jürgen",
            "Groß".into(),
            "Juergen@Example.com".into(),
            vec!["acme"],
            true,
        ),
        (
            "カス",
            "顧客",
            "テスト".into(),
            "kasu@example.jp".into(),
            vec!["acme"],
            true,
        ),
        (
            "gone",
            "Gone",
            "Away".into(),
            "gone@example.com".into(),
            vec!["acme"],
            false,
        ),
        (
            "ambig1",
            "Team",
            "One".into(),
            "team@example.com".into(),
            vec!["acme"],
            true,
        ),
        (
            "ambig2",
            "Team",
            "Two".into(),
            "TEAM@example.com".into(),
            vec!["acme"],
            true,
        ),
        (
            "o'brien",
            "Pat",
            "O'Brien 100%".into(),
            "pat@example.ie".into(),
            vec!["acme"],
            true,
        ),
    ];
    for i in 0..60 {
        v.push((
            "bulk",
            "Bulk",
            format!("Person{i:03}"),
            format!("bulk{i:03}@example.com"),
            vec!["bulkco"],
            true,
        ));
    }
    v
}

fn login_of(p: &Person, i: usize) -> String {
    if p.0 == "bulk" {
        format!("bulk{:03}", i - 7)
    } else {
        p.0.to_owned()
    }
}

async fn sql_server(backend: Backend) -> Option<(TestServer, common::TestDb)> {
    let db = fresh_db(backend).await?;
    let config = "customer_sources = []\n".to_owned()
        + &user_source(
            "main",
            &db.url,
            "customer_user",
            "customer_company_support = false\nemail_unique = false",
        );
    let mut s = TestServer::start(&config).await;
    for (i, p) in people().iter().enumerate() {
        let login = login_of(p, i);
        s.users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(pb::CustomerUser {
                    login: login.clone(),
                    first_name: p.1.into(),
                    last_name: p.2.clone(),
                    email: p.3.clone(),
                    customer_id: p.4[0].into(),
                    validity: if p.5 {
                        pb::Validity::Valid
                    } else {
                        pb::Validity::Invalid
                    }
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{login}: {e:?}"));
        for extra in &p.4[1..] {
            s.users
                .set_customer_membership(pb::SetCustomerMembershipRequest {
                    login: login.clone(),
                    customer_id: (*extra).into(),
                    member: true,
                })
                .await
                .unwrap();
        }
    }
    Some((s, db))
}

async fn ldap_server() -> Option<(TestServer, Slapd, tempfile::TempDir)> {
    let ldif: String = people()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let extra = if p.5 { "" } else { "employeeType: inactive\n" };
            person(&login_of(p, i), p.1, &p.2, &p.3, &p.4, extra)
        })
        .collect();
    let slapd = Slapd::start(&ldif)?;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    let config = format!(
        "customer_sources = []\n[[customer_user_sources]]\nname = \"main\"\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=inetOrgPerson)\"\ninvalid_filter = \"(employeeType=inactive)\"\ncustomer_company_support = false\nstore_url = \"sqlite://{}\"\n",
        slapd.url(),
        pw.display(),
        dir.path().join("store.db").display()
    );
    Some((TestServer::start(&config).await, slapd, dir))
}

async fn found(s: &mut TestServer, c: Criterion) -> Vec<String> {
    search(s, c, 100, false)
        .await
        .customer_users
        .into_iter()
        .map(|u| u.login)
        .collect()
}

/// Every read, with the answers every source kind must give.
async fn reads(mut s: TestServer) {
    // Get: case-insensitive (Unicode), exact.
    for (ask, want) in [
        ("JDOE", "jdoe"),
        ("JÜRGEN", "jürgen"),
        ("カス", "カス"),
        ("O'BRIEN", "o'brien"),
    ] {
        let u = s
            .users
            .get_customer_user(pb::GetCustomerUserRequest { login: ask.into() })
            .await
            .unwrap_or_else(|e| panic!("{ask}: {e:?}"))
            .into_inner();
        assert_eq!(u.login, want);
    }
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
            jdoe.first_name.as_str(),
            jdoe.last_name.as_str(),
            jdoe.email.as_str(),
            jdoe.customer_id.as_str()
        ),
        ("John", "Doe", "john.doe@example.com", "acme")
    );
    assert_eq!(jdoe.full_name, "John Doe");
    for missing in ["jdo", "jdoe*", "nobody"] {
        let err = s
            .users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: missing.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{missing}");
    }
    // The grammar.
    let q = |x: &str| Criterion::Query(x.into());
    assert_eq!(found(&mut s, q("doe")).await, ["jdoe"]);
    assert_eq!(found(&mut s, q("GROß")).await, ["jürgen"]);
    assert_eq!(found(&mut s, q("テスト")).await, ["カス"]);
    assert_eq!(found(&mut s, q("team+!two")).await, ["ambig1"]);
    assert_eq!(found(&mut s, q("john OR jürgen")).await, ["jdoe", "jürgen"]);
    assert_eq!(found(&mut s, q("\"team one\"")).await, Vec::<String>::new());
    assert_eq!(found(&mut s, q("o'brien")).await, ["o'brien"]);
    assert_eq!(found(&mut s, q("100%")).await, ["o'brien"]);
    assert_eq!(found(&mut s, q("_")).await, Vec::<String>::new());
    assert_eq!(found(&mut s, q("t*m+one")).await, ["ambig1"]);
    // Validity.
    assert_eq!(found(&mut s, q("away")).await, Vec::<String>::new());
    let r = search(&mut s, q("away"), 10, true).await;
    assert_eq!(r.customer_users.len(), 1);
    assert_ne!(r.customer_users[0].validity, pb::Validity::Valid as i32);
    // Modes.
    assert_eq!(
        found(&mut s, Criterion::Email("JOHN.DOE@example.COM".into())).await,
        ["jdoe"]
    );
    assert_eq!(
        found(&mut s, Criterion::Email("doe@example.com".into())).await,
        Vec::<String>::new()
    );
    assert_eq!(
        found(&mut s, Criterion::Login("AMBIG*".into())).await,
        ["ambig1", "ambig2"]
    );
    assert_eq!(
        found(&mut s, Criterion::CustomerId("ACME".into())).await,
        ["ambig1", "ambig2", "jdoe", "jürgen", "o'brien", "カス"]
    );
    // Limits: sorted by login, cut, flagged.
    let r = search(&mut s, Criterion::CustomerId("bulkco".into()), 10, false).await;
    assert_eq!(r.customer_users.len(), 10);
    assert_eq!(r.customer_users[0].login, "bulk000");
    assert!(r.truncated && r.source_status[0].truncated && r.source_status[0].ok);
    let r = search(&mut s, Criterion::CustomerId("bulkco".into()), 60, false).await;
    assert_eq!(r.customer_users.len(), 60);
    assert!(!r.truncated);
    // Senders.
    let r = s
        .users
        .resolve_senders(pb::ResolveSendersRequest {
            addresses: vec![
                "\"Team\" <Team@Example.com>".into(),
                "gone@example.com".into(),
                "Jürgen <juergen@example.com>".into(),
                "x".into(),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<Vec<String>> = r
        .results
        .iter()
        .map(|x| x.customer_users.iter().map(|u| u.login.clone()).collect())
        .collect();
    assert_eq!(
        got,
        vec![
            vec!["ambig1".to_owned(), "ambig2".to_owned()],
            vec![],
            vec!["jürgen".to_owned()],
            vec![]
        ]
    );
    assert!(r.results[0].ambiguous && !r.results[2].ambiguous && !r.results[3].error.is_empty());
    // Customer ids: primary first.
    let ids = s
        .users
        .list_customer_ids(pb::ListCustomerIdsRequest {
            login: "JDOE".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer_ids;
    assert_eq!(ids, ["acme", "globex"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    if let Some((s, _db)) = sql_server(Backend::Sqlite).await {
        reads(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    if let Some((s, _db)) = sql_server(Backend::Postgres).await {
        reads(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb() {
    if let Some((s, _db)) = sql_server(Backend::MySql).await {
        reads(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap() {
    if let Some((s, _slapd, _dir)) = ldap_server().await {
        reads(s).await;
    }
}
