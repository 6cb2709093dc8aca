//! The conformance suite of the sources through the real gRPC server: the search grammar of
//! the reference rows and sender resolution on SQLite, PostgreSQL, MariaDB and OpenLDAP; the
//! writes (create, update, rename, uniqueness, validation, customers, several sources, a source
//! down, a read-only source) on the three SQL backends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use clientele::proto::{self as pb, search_customer_users_request::Criterion};
use common::fixture::{Fixture, Person, Target};
use common::{customer_source, fresh_db, search, user_source, violations, Backend, TestServer};
use tonic::Code;

/// One source for users and one for customers on a fresh database (company checks off unless
/// `companies`).
async fn single(
    backend: Backend,
    companies: bool,
    extra: &str,
) -> Option<(TestServer, common::TestDb)> {
    let db = fresh_db(backend).await?;
    let support = format!("customer_company_support = {companies}\n{extra}");
    let config = user_source("main", &db.url, "customer_user", &support)
        + &customer_source("main", &db.url, "customer_company", "");
    Some((TestServer::start(&config).await, db))
}

fn user(login: &str, first: &str, last: &str, email: &str, customer: &str) -> pb::CustomerUser {
    pb::CustomerUser {
        login: login.into(),
        first_name: first.into(),
        last_name: last.into(),
        email: email.into(),
        customer_id: customer.into(),
        ..Default::default()
    }
}

async fn create(s: &mut TestServer, u: pb::CustomerUser) -> pb::CustomerUser {
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(u.clone()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create {}: {e:?}", u.login))
        .into_inner()
        .customer_user
        .expect("created user")
}

async fn query_logins(s: &mut TestServer, q: &str) -> Vec<String> {
    let mut v: Vec<String> = search(s, Criterion::Query(q.into()), 1000, false)
        .await
        .customer_users
        .into_iter()
        .map(|u| u.login)
        .collect();
    v.sort();
    v
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

// ------------------------------------------------------------------------------------------------

async fn create_get_update_rename(backend: Backend) {
    let Some((mut s, _db)) = single(backend, false, "").await else {
        return;
    };
    for key in ["1", "ä", "カス", "_", "&"] {
        let login = format!("unittest-{key}-x");
        let created = create(
            &mut s,
            user(
                &login,
                &format!("Firstname Test{key}"),
                &format!("Lastname Test{key}"),
                &format!("{login}-Email@example.com"),
                &format!("{login}-Customer-Id"),
            ),
        )
        .await;
        assert_eq!(created.login, login);
        assert_eq!(created.validity, pb::Validity::Valid as i32);
        assert_eq!(created.source, "main");
        assert_eq!(
            created.full_name,
            format!("Firstname Test{key} Lastname Test{key}")
        );
        assert!(created.create_time.is_some());
        // Case-insensitive get, Unicode-aware (ä / Ä).
        for variant in [login.clone(), login.to_uppercase(), login.to_lowercase()] {
            let got = s
                .users
                .get_customer_user(pb::GetCustomerUserRequest {
                    login: variant.clone(),
                })
                .await
                .unwrap_or_else(|e| panic!("get {variant}: {e:?}"))
                .into_inner();
            assert_eq!(got.login, login);
        }
        // Update with a mask: only the masked fields change.
        let updated = s
            .users
            .update_customer_user(pb::UpdateCustomerUserRequest {
                login: login.clone(),
                customer_user: Some(pb::CustomerUser {
                    first_name: format!("Firstname Test Update{key}"),
                    city: "ignored, not in mask".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["first_name"]),
            })
            .await
            .expect("update")
            .into_inner();
        assert_eq!(updated.first_name, format!("Firstname Test Update{key}"));
        assert_eq!(updated.last_name, format!("Lastname Test{key}"));
        assert_eq!(updated.city, "");
    }
    // Rename carries preferences and memberships along.
    let login = "unittest-&-x";
    s.users
        .set_preference(pb::SetPreferenceRequest {
            login: login.into(),
            key: "UserLanguage".into(),
            value: "da".into(),
        })
        .await
        .expect("set preference");
    let ids = s
        .users
        .set_customer_membership(pb::SetCustomerMembershipRequest {
            login: login.into(),
            customer_id: "extra-co".into(),
            member: true,
        })
        .await
        .expect("membership")
        .into_inner()
        .customer_ids;
    assert_eq!(
        ids,
        vec!["unittest-&-x-Customer-Id".to_owned(), "extra-co".to_owned()]
    );
    let renamed = s
        .users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: login.into(),
            customer_user: Some(pb::CustomerUser {
                login: "NewLogin-x".into(),
                ..Default::default()
            }),
            update_mask: mask(&["login"]),
        })
        .await
        .expect("rename")
        .into_inner();
    assert_eq!(renamed.login, "NewLogin-x");
    let prefs = s
        .users
        .get_preferences(pb::GetPreferencesRequest {
            login: "newlogin-X".into(),
        })
        .await
        .expect("prefs")
        .into_inner()
        .preferences;
    assert_eq!(prefs.get("UserLanguage").map(String::as_str), Some("da"));
    let ids = s
        .users
        .list_customer_ids(pb::ListCustomerIdsRequest {
            login: "NewLogin-x".into(),
        })
        .await
        .expect("ids")
        .into_inner()
        .customer_ids;
    assert_eq!(
        ids,
        vec!["unittest-&-x-Customer-Id".to_owned(), "extra-co".to_owned()]
    );
    let old = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: login.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::NotFound);
    // Native field names are not preferences.
    let err = s
        .users
        .set_preference(pb::SetPreferenceRequest {
            login: "NewLogin-x".into(),
            key: "UserEmail".into(),
            value: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), vec!["key"]);
    s.stop().await;
}

async fn invalid_requests_list_every_field(backend: Backend) {
    let Some((mut s, _db)) = single(backend, true, "").await else {
        return;
    };
    let err = s
        .users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(pb::CustomerUser {
                login: "x".into(),
                email: "a..b@example.com".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let v = violations(&err);
    for field in [
        "customer_user.first_name",
        "customer_user.last_name",
        "customer_user.customer_id",
        "customer_user.email",
    ] {
        assert!(v.contains(&field.to_owned()), "{field} missing in {v:?}");
    }
    // The customer must exist (customer_company_support = true).
    let err = s
        .users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(user("nocompany", "A", "B", "nc@example.com", "ghost")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), vec!["customer_user.customer_id"]);
    s.customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "ghost".into(),
                name: "Ghost Inc.".into(),
                ..Default::default()
            }),
            source: String::new(),
        })
        .await
        .expect("create customer");
    create(
        &mut s,
        user("nocompany", "A", "B", "nc@example.com", "GHOST"),
    )
    .await;
    // Unknown mask path, missing criterion, blank query, unknown login.
    let err = s
        .users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "nocompany".into(),
            customer_user: Some(pb::CustomerUser::default()),
            update_mask: mask(&["nickname"]),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), vec!["update_mask.paths[0]"]);
    let err = s
        .users
        .search_customer_users(pb::SearchCustomerUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violations(&err), vec!["criterion"]);
    for blank in ["", "   "] {
        let err = s
            .users
            .search_customer_users(pb::SearchCustomerUsersRequest {
                criterion: Some(Criterion::Query(blank.into())),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violations(&err), vec!["query"]);
    }
    let err = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Emptying a required field is refused, nothing changes.
    let err = s
        .users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "nocompany".into(),
            customer_user: Some(pb::CustomerUser::default()),
            update_mask: mask(&["last_name"]),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), vec!["customer_user.last_name"]);
    let still = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "nocompany".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.last_name, "B");
    s.stop().await;
}

async fn uniqueness(backend: Backend) {
    let Some((mut s, _db)) = single(backend, false, "").await else {
        return;
    };
    create(&mut s, user("Dup1", "A", "B", "dup1@example.com", "c")).await;
    create(&mut s, user("Dup2", "A", "B", "dup2@example.com", "c")).await;
    for (login, email, field) in [
        ("dup1", "other@example.com", "login"),
        ("Dup3", "DUP1@example.com", "email"),
    ] {
        let err = s
            .users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(user(login, "A", "B", email, "c")),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{login} {email}: {err:?}");
        assert!(err.message().contains(field), "{}", err.message());
    }
    // Updating to another user's email (other case) is refused; keeping or re-casing one's own is fine.
    let err = s
        .users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "Dup2".into(),
            customer_user: Some(pb::CustomerUser {
                email: "Dup1@Example.com".into(),
                ..Default::default()
            }),
            update_mask: mask(&["email"]),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "Dup2".into(),
            customer_user: Some(pb::CustomerUser {
                email: "DUP2@example.com".into(),
                ..Default::default()
            }),
            update_mask: mask(&["email"]),
        })
        .await
        .expect("re-casing one's own email");
    // An invalid user's email still counts.
    s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "Dup1".into(),
            customer_user: Some(pb::CustomerUser {
                validity: pb::Validity::Invalid as i32,
                ..Default::default()
            }),
            update_mask: mask(&["validity"]),
        })
        .await
        .expect("invalidate");
    let err = s
        .users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(user("Dup4", "A", "B", "dup1@example.com", "c")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // Rename onto an existing login is refused.
    let err = s
        .users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "Dup2".into(),
            customer_user: Some(pb::CustomerUser {
                login: "DUP1".into(),
                ..Default::default()
            }),
            update_mask: mask(&["login"]),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    s.stop().await;
}

async fn concurrent_creates(backend: Backend) {
    let Some((s, _db)) = single(backend, false, "").await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut c = s.users.clone();
        // Half race for one login (in two letter cases), half for one email address.
        let (login, email) = match i % 4 {
            0 => ("race".to_owned(), format!("race{i}@example.com")),
            2 => ("RACE".to_owned(), format!("race{i}@example.com")),
            _ => (format!("race-mail-{i}"), "same@example.com".to_owned()),
        };
        tasks.push(tokio::spawn(async move {
            c.create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(user(&login, "A", "B", &email, "c")),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| e.code())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(code) => assert!(
                matches!(code, Code::AlreadyExists | Code::Aborted),
                "{code:?}"
            ),
        }
    }
    assert_eq!(ok, 2, "exactly one login and one email winner");
    let mut s = s;
    let r = search(&mut s, Criterion::Login("race".into()), 10, true).await;
    assert_eq!(r.customer_users.len(), 1);
    let r = search(
        &mut s,
        Criterion::Email("same@example.com".into()),
        10,
        true,
    )
    .await;
    assert_eq!(r.customer_users.len(), 1);
    s.stop().await;
}

/// The §3.8 reference rows, as last names (search fields: login, first, last, customer id).
const ROWS: &[(&str, &str)] = &[
    ("s01", "John Smith"),
    ("s02", "John Meier"),
    ("s03", "Franz Smith"),
    ("s04", "Franz Ferdinand Smith"),
    ("s05", "customer_id_with_underscores"),
    ("s06", "customer&id&with&ampersands"),
    ("s07", "Test (with) (brackets)"),
    ("s08", "Test (with) (brackets) and & and |"),
    ("s09", "Test for franz!gans merged with exclamation mark"),
    ("s10", "100% o'brien back\\slash"),
    ("s11", "Müller Ærøskøbing 顧客"),
];

/// The reference rows as a data set (first name "Person", customer id "cid"), plus `zero0`.
async fn grammar_rows(target: Target) -> Option<Fixture> {
    let mut people: Vec<Person> = ROWS
        .iter()
        .map(|(login, last)| {
            Person::new(
                login,
                "Person",
                last,
                &format!("{login}@example.com"),
                &["cid"],
            )
        })
        .collect();
    people.push(Person::new(
        "zero0",
        "Null",
        "Zero",
        "zero@example.com",
        &["c0"],
    ));
    Fixture::start(target, &people).await
}

async fn search_grammar(mut fx: Fixture) {
    let target = fx.target;
    let s = &mut fx.s;
    let all: Vec<String> = ROWS
        .iter()
        .map(|(l, _)| (*l).to_owned())
        .chain(["zero0".to_owned()])
        .collect();
    let l = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let cases: &[(&str, Vec<String>)] = &[
        ("franz ferdinand", l(&["s04"])),
        ("john+smith", l(&["s01"])),
        ("john+smith+", l(&["s01"])),
        ("+john+smith", l(&["s01"])),
        ("john AND smith", l(&["s01"])),
        ("john OR franz", l(&["s01", "s02", "s03", "s04", "s09"])),
        ("fritz", l(&[])),
        ("!fritz", all.clone()),
        ("smith+!franz", l(&["s01"])),
        ("*!franz*+smith", l(&["s01"])),
        ("franz!gans", l(&["s09"])),
        ("\"john smith\"", l(&["s01"])),
        ("\"smith john\"", l(&[])),
        ("*", all.clone()),
        ("smi*h", l(&["s01", "s03", "s04"])),
        ("customer&id", l(&["s06"])),
        ("(with)", l(&["s07", "s08"])),
        ("&", l(&["s06", "s08"])),
        // Fixed quirks: % _ ' \ are literal.
        ("_", l(&["s05"])),
        ("%", l(&["s10"])),
        ("o'brien", l(&["s10"])),
        ("back\\slash", l(&["s10"])),
        ("100%", l(&["s10"])),
        // UTF-8, case-insensitive.
        ("MÜLLER", l(&["s11"])),
        ("ærø", l(&["s11"])),
        ("顧客", l(&["s11"])),
        (
            "!müller+person",
            all.iter()
                .filter(|x| *x != "s11" && *x != "zero0")
                .cloned()
                .collect(),
        ),
        // Login and customer id are search fields too.
        (
            "S0",
            l(&[
                "s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08", "s09",
            ]),
        ),
        // "0" is a query like any other.
        (
            "0",
            l(&[
                "s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08", "s09", "s10", "zero0",
            ]),
        ),
    ];
    for (q, want) in cases {
        assert_eq!(&query_logins(s, q).await, want, "query {q:?} on {target:?}");
    }
    // Modes: customer id with wildcards only (no implicit ones), login exact unless wildcard.
    let r = search(s, Criterion::CustomerId("CID".into()), 100, false).await;
    assert_eq!(r.customer_users.len(), ROWS.len());
    assert!(search(s, Criterion::CustomerId("ci".into()), 100, false)
        .await
        .customer_users
        .is_empty());
    assert_eq!(
        search(s, Criterion::CustomerId("c*".into()), 100, false)
            .await
            .customer_users
            .len(),
        ROWS.len() + 1
    );
    assert_eq!(
        search(s, Criterion::Login("S01".into()), 100, false)
            .await
            .customer_users
            .len(),
        1
    );
    assert!(search(s, Criterion::Login("s0".into()), 100, false)
        .await
        .customer_users
        .is_empty());
    assert_eq!(
        search(s, Criterion::Login("s0*".into()), 100, false)
            .await
            .customer_users
            .len(),
        9
    );
    let r = search(s, Criterion::Email("S01@EXAMPLE.com".into()), 100, false).await;
    assert_eq!(r.customer_users.len(), 1);
    assert!(
        search(s, Criterion::Email("01@example.com".into()), 100, false)
            .await
            .customer_users
            .is_empty()
    );
    // Limits: sorted by login, cut, flagged.
    let r = search(s, Criterion::Query("person".into()), 3, false).await;
    assert_eq!(
        r.customer_users
            .iter()
            .map(|u| u.login.as_str())
            .collect::<Vec<_>>(),
        ["s01", "s02", "s03"]
    );
    assert!(r.truncated);
    assert!(r.source_status[0].ok && r.source_status[0].truncated);
    let r = search(s, Criterion::Query("person".into()), 11, false).await;
    assert!(!r.truncated);
    fx.stop().await;
}

/// A user made temporarily invalid through the API leaves search, and `include_invalid` shows
/// it with that validity.
async fn invalidated_user_leaves_search(mut fx: Fixture) {
    let s = &mut fx.s;
    assert_eq!(query_logins(s, "john+smith").await, ["s01"]);
    s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "s01".into(),
            customer_user: Some(pb::CustomerUser {
                validity: pb::Validity::InvalidTemporarily as i32,
                ..Default::default()
            }),
            update_mask: mask(&["validity"]),
        })
        .await
        .expect("invalidate");
    assert_eq!(query_logins(s, "john+smith").await, Vec::<String>::new());
    let r = search(s, Criterion::Query("john+smith".into()), 10, true).await;
    assert_eq!(r.customer_users.len(), 1);
    assert_eq!(
        r.customer_users[0].validity,
        pb::Validity::InvalidTemporarily as i32
    );
    fx.stop().await;
}

/// Two users sharing an address in two letter cases, a Unicode address, an invalid user.
async fn senders(target: Target) -> Option<Fixture> {
    let people = [
        Person::new("jdoe", "John", "Doe", "john.doe@example.com", &["c"]),
        Person::new("jdoe2", "John", "Doe", "John.Doe@Example.com", &["c"]),
        Person::new("anna", "Anna", "Ä", "änna@exämple.de", &["c"]),
        Person::new("gone", "G", "G", "gone@example.com", &["c"]).invalid(),
    ];
    Fixture::start(target, &people).await
}

async fn resolve_senders(mut fx: Fixture) {
    let target = fx.target;
    let s = &mut fx.s;
    let addresses = vec![
        "\"Doe, John\" <JOHN.DOE@example.com>".to_owned(),
        "Änna <ÄNNA@EXÄMPLE.DE>".to_owned(),
        "gone@example.com".to_owned(),
        "doe@example.com".to_owned(),
        "not an address".to_owned(),
        "john.doe@example.com".to_owned(),
    ];
    let r = s
        .users
        .resolve_senders(pb::ResolveSendersRequest {
            addresses: addresses.clone(),
        })
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(r.results.len(), addresses.len());
    let logins = |i: usize| {
        r.results[i]
            .customer_users
            .iter()
            .map(|u| u.login.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(r.results[0].normalized, "john.doe@example.com");
    assert_eq!(logins(0), ["jdoe", "jdoe2"]);
    assert!(r.results[0].ambiguous);
    assert_eq!(r.results[1].normalized, "änna@exämple.de");
    if target == Target::Ldap {
        // OpenLDAP's `mail` is an IA5String (ASCII): `caseIgnoreIA5Match` matches no value
        // outside ASCII, not even by `ldapsearch` (and `ldapadd` would refuse such a value;
        // `slapadd` does not check). An internationalised address cannot be found in `mail`.
        assert!(logins(1).is_empty());
    } else {
        assert_eq!(logins(1), ["anna"]);
    }
    assert!(!r.results[1].ambiguous);
    assert!(logins(2).is_empty(), "invalid users are not resolved");
    assert!(logins(3).is_empty(), "no substring matches");
    assert!(!r.results[4].error.is_empty());
    assert_eq!(logins(5), ["jdoe", "jdoe2"]);
    assert!(r.source_status.iter().all(|st| st.ok));
    // A batch of 500 addresses in one call.
    let many: Vec<String> = (0..500)
        .map(|i| format!("nobody{i}@example.com"))
        .chain(["john.doe@example.com".to_owned()])
        .collect();
    let r = s
        .users
        .resolve_senders(pb::ResolveSendersRequest { addresses: many })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(r.results.len(), 501);
    assert_eq!(r.results[500].customer_users.len(), 2);
    fx.stop().await;
}

async fn multiple_sources(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    // Rows are written behind the service's back and searched at once: the database path.
    let config = user_source(
        "first",
        &db.url,
        "customer_user",
        "customer_company_support = false\nsearch_index = \"database\"",
    ) + &user_source(
        "second",
        &db.url,
        "customer_user_b",
        "customer_company_support = false\nsearch_index = \"database\"",
    ) + &user_source(
        "third",
        &db.url,
        "customer_user_c",
        "customer_company_support = false\nlist_limit = 2\nsearch_index = \"database\"",
    );
    let mut s = TestServer::start(&config).await;
    let create_in = |source: &str, login: &str, last: &str| {
        let mut c = s.users.clone();
        let (source, login, last) = (source.to_owned(), login.to_owned(), last.to_owned());
        async move {
            c.create_customer_user(pb::CreateCustomerUserRequest {
                source,
                customer_user: Some(user(
                    &login,
                    "Multi",
                    &last,
                    &format!("{login}@{last}.example.com"),
                    "c",
                )),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
        }
    };
    create_in("first", "alpha", "one").await.expect("alpha");
    create_in("second", "bravo", "two").await.expect("bravo");
    create_in("third", "charlie", "three")
        .await
        .expect("charlie");
    create_in("third", "delta", "three").await.expect("delta");
    create_in("third", "echo", "three").await.expect("echo");
    // Login unique across sources, case-insensitively.
    let err = create_in("second", "ALPHA", "two").await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // Overlapping logins written behind the service's back (e.g. two directories that both know a person).
    let raw = |table: &str| {
        format!("INSERT INTO {table} (login, email, customer_id, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ('Alpha', 'x@dup.example.com', 'c', 'Multi', 'dup', 1, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP, 1)")
    };
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("raw connect");
    sqlx::query(&raw("customer_user_b"))
        .execute(&mut conn)
        .await
        .expect("dup in second");
    sqlx::query(&raw("customer_user_c"))
        .execute(&mut conn)
        .await
        .expect("dup in third");
    let r = search(&mut s, Criterion::Query("multi".into()), 100, false).await;
    let got: Vec<(String, String)> = r
        .customer_users
        .iter()
        .map(|u| (u.login.clone(), u.source.clone()))
        .collect();
    // "Alpha" in the second and third sources is shadowed by the first source's "alpha"; the
    // third source's own list_limit of 2 (Alpha, charlie) cut delta and echo, and says so.
    assert_eq!(
        got,
        [
            ("alpha", "first"),
            ("bravo", "second"),
            ("charlie", "third")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert!(r.truncated);
    let third = r
        .source_status
        .iter()
        .find(|st| st.source == "third")
        .unwrap();
    assert!(third.truncated && third.returned == 2);
    assert_eq!(r.source_status.len(), 3);
    // Get: first source wins.
    let g = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "ALPHA".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.source, "first");
    // Global limit across sources.
    let r = search(&mut s, Criterion::Query("multi".into()), 2, false).await;
    assert_eq!(
        r.customer_users
            .iter()
            .map(|u| u.login.as_str())
            .collect::<Vec<_>>(),
        ["alpha", "bravo"]
    );
    assert!(r.truncated);
    // Restricting to named sources.
    let r = s
        .users
        .search_customer_users(pb::SearchCustomerUsersRequest {
            criterion: Some(Criterion::Query("multi".into())),
            sources: vec!["second".into()],
            limit: 10,
            include_invalid: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.customer_users
            .iter()
            .map(|u| u.login.as_str())
            .collect::<Vec<_>>(),
        ["Alpha", "bravo"]
    );
    assert_eq!(r.source_status.len(), 1);
    s.stop().await;
}

async fn source_down(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let config = user_source(
        "dead",
        "postgres://nobody@127.0.0.1:1/none",
        "customer_user",
        "customer_company_support = false",
    ) + &user_source(
        "live",
        &db.url,
        "customer_user",
        // A row is written behind the service's back and searched at once.
        "customer_company_support = false\nsearch_index = \"database\"",
    );
    let mut s = TestServer::start(&config).await;
    // Create goes to the first writable source; name the live one.
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            source: "live".into(),
            customer_user: Some(user("solo", "S", "O", "solo@example.com", "c")),
            ..Default::default()
        })
        .await
        .expect_err("login uniqueness cannot be verified while a source is down");
    let r = search(&mut s, Criterion::Query("*".into()), 10, false).await;
    assert!(r.customer_users.is_empty());
    let dead = r
        .source_status
        .iter()
        .find(|st| st.source == "dead")
        .unwrap();
    assert!(!dead.ok && !dead.error.is_empty(), "{dead:?}");
    assert!(
        r.source_status
            .iter()
            .find(|st| st.source == "live")
            .unwrap()
            .ok
    );
    let mut raw = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("raw connect");
    sqlx::query("INSERT INTO customer_user (login, email, customer_id, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ('solo', 'solo@example.com', 'c', 'S', 'O', 1, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP, 1)")
        .execute(&mut raw)
        .await
        .expect("insert");
    let r = search(&mut s, Criterion::Query("solo".into()), 10, false).await;
    assert_eq!(
        r.customer_users.len(),
        1,
        "partial result from the live source"
    );
    // Get falls through to the next source.
    let g = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "solo".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(g.source, "live");
    let r = s
        .users
        .resolve_senders(pb::ResolveSendersRequest {
            addresses: vec!["solo@example.com".into()],
        })
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(r.results[0].customer_users.len(), 1);
    assert!(r.source_status.iter().any(|st| !st.ok));
    s.stop().await;
    // Every source down: UNAVAILABLE.
    let config = user_source(
        "dead",
        "postgres://nobody@127.0.0.1:1/none",
        "customer_user",
        "",
    );
    let mut s = TestServer::start(&config).await;
    let err = s
        .users
        .search_customer_users(pb::SearchCustomerUsersRequest {
            criterion: Some(Criterion::Query("x".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    s.stop().await;
}

async fn customers(backend: Backend) {
    let Some((mut s, _db)) = single(backend, true, "").await else {
        return;
    };
    for (id, name) in [
        ("acme", "ACME Corp"),
        ("globex", "Globex"),
        ("initech", "Initech (Software)"),
    ] {
        s.customers
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    customer_id: id.into(),
                    name: name.into(),
                    city: "Springfield".into(),
                    ..Default::default()
                }),
                source: String::new(),
            })
            .await
            .expect("create customer");
    }
    let err = s
        .customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "ACME".into(),
                name: "Other".into(),
                ..Default::default()
            }),
            source: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = s
        .customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "acme2".into(),
                name: "acme corp".into(),
                ..Default::default()
            }),
            source: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "names are unique too");
    let got = s
        .customers
        .get_customer(pb::GetCustomerRequest {
            customer_id: "Acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, "ACME Corp");
    let found = |r: pb::SearchCustomersResponse| {
        r.customers
            .into_iter()
            .map(|c| c.customer_id)
            .collect::<Vec<_>>()
    };
    let r = s
        .customers
        .search_customers(pb::SearchCustomersRequest {
            query: "(acme || globex)".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found(r), ["acme", "globex"]);
    let r = s
        .customers
        .search_customers(pb::SearchCustomersRequest {
            query: "\\(software\\)".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found(r), ["initech"]);
    let err = s
        .customers
        .search_customers(pb::SearchCustomersRequest {
            query: "(acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), vec!["query"]);
    // Users of a customer: primary and members.
    create(
        &mut s,
        user("wile", "Wile", "Coyote", "wile@example.com", "acme"),
    )
    .await;
    create(
        &mut s,
        user("road", "Road", "Runner", "road@example.com", "globex"),
    )
    .await;
    s.users
        .set_customer_membership(pb::SetCustomerMembershipRequest {
            login: "road".into(),
            customer_id: "acme".into(),
            member: true,
        })
        .await
        .expect("member");
    let err = s
        .users
        .set_customer_membership(pb::SetCustomerMembershipRequest {
            login: "road".into(),
            customer_id: "nowhere".into(),
            member: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let of = s
        .customers
        .list_customer_users_of_customer(pb::ListCustomerUsersOfCustomerRequest {
            customer_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        of.customer_users
            .iter()
            .map(|u| u.login.as_str())
            .collect::<Vec<_>>(),
        ["road", "wile"]
    );
    // Rename: users and memberships follow, in one transaction on the same database.
    let renamed = s
        .customers
        .update_customer(pb::UpdateCustomerRequest {
            customer_id: "acme".into(),
            customer: Some(pb::Customer {
                customer_id: "acme-intl".into(),
                city: "Phoenix".into(),
                ..Default::default()
            }),
            update_mask: mask(&["customer_id", "city"]),
        })
        .await
        .expect("rename customer")
        .into_inner();
    assert_eq!(
        (
            renamed.customer_id.as_str(),
            renamed.city.as_str(),
            renamed.name.as_str()
        ),
        ("acme-intl", "Phoenix", "ACME Corp")
    );
    let wile = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "wile".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wile.customer_id, "acme-intl");
    let ids = s
        .users
        .list_customer_ids(pb::ListCustomerIdsRequest {
            login: "road".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer_ids;
    assert_eq!(ids, ["globex", "acme-intl"]);
    assert_eq!(
        s.customers
            .get_customer(pb::GetCustomerRequest {
                customer_id: "acme".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    s.stop().await;
}

async fn read_only_source(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let config = user_source(
        "ro",
        &db.url,
        "customer_user_ro",
        "read_only = true\ncustomer_company_support = false",
    ) + &user_source(
        "rw",
        &db.url,
        "customer_user",
        "customer_company_support = false",
    );
    let mut s = TestServer::start(&config).await;
    // Creates skip the read-only source by default and are refused when it is named.
    create(&mut s, user("writer", "W", "R", "w@example.com", "c")).await;
    let err = s
        .users
        .create_customer_user(pb::CreateCustomerUserRequest {
            source: "ro".into(),
            customer_user: Some(user("nope", "N", "O", "n@example.com", "c")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("\"ro\""), "{}", err.message());
    let mut raw = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("raw connect");
    sqlx::query("INSERT INTO customer_user_ro (login, email, customer_id, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ('reader', 'r@example.com', 'c', 'R', 'O', 1, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP, 1)")
        .execute(&mut raw)
        .await
        .expect("insert");
    let err = s
        .users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "reader".into(),
            customer_user: Some(pb::CustomerUser {
                city: "X".into(),
                ..Default::default()
            }),
            update_mask: mask(&["city"]),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // Preferences of a read-only source's users still work.
    s.users
        .set_preference(pb::SetPreferenceRequest {
            login: "reader".into(),
            key: "UserLanguage".into(),
            value: "de".into(),
        })
        .await
        .expect("preferences are writable");
    s.stop().await;
}

common::fixture::per_backend! {
    grammar_rows: reads [search_grammar] writes [invalidated_user_leaves_search];
    senders: reads [resolve_senders];
    common::fixture::sql_backend: writes [
        create_get_update_rename,
        invalid_requests_list_every_field,
        uniqueness,
        concurrent_creates,
        multiple_sources,
        source_down,
        customers,
        read_only_source,
    ];
}
