//! The read behaviours every source kind shares, one test per behaviour and backend: the same
//! data set ([`people`]) on SQLite, PostgreSQL, MariaDB and OpenLDAP, the same reads, the same
//! answers (`reads::ldap::search_grammar`, `reads::postgres::search_grammar`, ...). Writes the
//! directory refuses have their own LDAP test here (`reads::ldap::writes_are_refused`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use clientele::proto::{self as pb, search_customer_users_request::Criterion, Outcome};
use common::fixture::{Fixture, Person, Target, SOURCE};
use common::search;
use tonic::Code;

/// The shared data set: Unicode names, two users sharing an address in two cases, an invalid
/// user, SQL and LDAP filter metacharacters in names and logins, 60 users of `bulkco`.
fn people() -> Vec<Person> {
    let mut v = vec![
        Person::new(
            "jdoe",
            "John",
            "Doe",
            "john.doe@example.com",
            &["acme", "globex"],
        )
        .password("dir-Secret-1"),
        Person::new("jürgen", "Jürgen", "Groß", "Juergen@Example.com", &["acme"]),
        Person::new("カス", "顧客", "テスト", "kasu@example.jp", &["acme"]),
        Person::new("gone", "Gone", "Away", "gone@example.com", &["acme"])
            .invalid()
            .password("old-Secret-1"),
        Person::new("ambig1", "Team", "One", "team@example.com", &["acme"]),
        Person::new("ambig2", "Team", "Two", "TEAM@example.com", &["acme"]),
        Person::new(
            "o'brien",
            "Pat",
            "O'Brien 100%",
            "pat@example.ie",
            &["acme"],
        ),
        Person::new("star*paren(", "Odd", "Chars", "odd@example.com", &["acme"]),
    ];
    for i in 0..60 {
        v.push(Person::new(
            &format!("bulk{i:03}"),
            "Bulk",
            &format!("Person{i:03}"),
            &format!("bulk{i:03}@example.com"),
            &["bulkco"],
        ));
    }
    v
}

async fn standard(target: Target) -> Option<Fixture> {
    Fixture::start(target, &people()).await
}

/// 300 users of one customer: more than the default `list_limit` (250).
async fn many(target: Target) -> Option<Fixture> {
    let v: Vec<Person> = (0..300)
        .map(|i| {
            Person::new(
                &format!("bulk{i:03}"),
                "Bulk",
                &format!("Person{i:03}"),
                &format!("bulk{i:03}@example.com"),
                &["bulkco"],
            )
        })
        .collect();
    Fixture::start(target, &v).await
}

async fn found(s: &mut common::TestServer, c: Criterion) -> Vec<String> {
    logins(&search(s, c, 100, false).await)
}

fn logins(r: &pb::SearchCustomerUsersResponse) -> Vec<String> {
    r.customer_users.iter().map(|u| u.login.clone()).collect()
}

async fn get_user(
    s: &mut common::TestServer,
    login: &str,
) -> Result<pb::CustomerUser, tonic::Status> {
    s.users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: login.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

// ------------------------------------------------------------------------------------------------

/// Get: the record's fields and source; the login exact (no prefix, no wildcard).
async fn get(mut fx: Fixture) {
    let s = &mut fx.s;
    let jdoe = get_user(s, "jdoe").await.unwrap();
    assert_eq!(
        (
            jdoe.login.as_str(),
            jdoe.first_name.as_str(),
            jdoe.last_name.as_str(),
            jdoe.email.as_str(),
            jdoe.customer_id.as_str()
        ),
        ("jdoe", "John", "Doe", "john.doe@example.com", "acme")
    );
    assert_eq!(jdoe.full_name, "John Doe");
    assert_eq!(jdoe.source, SOURCE);
    assert_eq!(jdoe.validity, pb::Validity::Valid as i32);
    let odd = get_user(s, "star*paren(").await.unwrap();
    assert_eq!(
        (odd.login.as_str(), odd.source.as_str()),
        ("star*paren(", SOURCE)
    );
    for missing in ["jdo", "jdoe*", "j*", "star*", "nobody"] {
        let err = get_user(s, missing).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{missing}");
    }
    fx.stop().await;
}

/// Logins match case-insensitively (Unicode case folding), and the answer carries the stored
/// spelling.
async fn login_case_insensitive(mut fx: Fixture) {
    let s = &mut fx.s;
    for (ask, want) in [
        ("JDOE", "jdoe"),
        ("JÜRGEN", "jürgen"),
        ("カス", "カス"),
        ("O'BRIEN", "o'brien"),
        ("STAR*PAREN(", "star*paren("),
    ] {
        let u = get_user(s, ask)
            .await
            .unwrap_or_else(|e| panic!("{ask}: {e:?}"));
        assert_eq!(u.login, want);
        assert_eq!(u.source, SOURCE);
    }
    fx.stop().await;
}

/// The search grammar, with every metacharacter of SQL (`% _ '`) and of LDAP filters
/// (`* ( ) \`, RFC 4515) literal in the input.
async fn search_grammar(mut fx: Fixture) {
    let s = &mut fx.s;
    let q = |x: &str| Criterion::Query(x.into());
    let none = Vec::<String>::new();
    assert_eq!(found(s, q("doe")).await, ["jdoe"]);
    assert_eq!(found(s, q("GROß")).await, ["jürgen"]);
    assert_eq!(found(s, q("groß")).await, ["jürgen"]);
    assert_eq!(found(s, q("テスト")).await, ["カス"]);
    assert_eq!(found(s, q("team+!two")).await, ["ambig1"]);
    assert_eq!(found(s, q("john OR jürgen")).await, ["jdoe", "jürgen"]);
    assert_eq!(found(s, q("\"team one\"")).await, none);
    assert_eq!(found(s, q("o'brien")).await, ["o'brien"]);
    assert_eq!(found(s, q("100%")).await, ["o'brien"]);
    assert_eq!(found(s, q("_")).await, none);
    assert_eq!(found(s, q("t*m+one")).await, ["ambig1"]);
    assert_eq!(found(s, q("paren(")).await, ["star*paren("]);
    assert_eq!(found(s, q("*)(uid=*")).await, none, "no filter injection");
    assert_eq!(found(s, q("x\\")).await, none);
    fx.stop().await;
}

/// Invalid users are hidden unless `include_invalid`, and then say so.
async fn validity_and_include_invalid(mut fx: Fixture) {
    let s = &mut fx.s;
    assert_eq!(
        found(s, Criterion::Query("away".into())).await,
        Vec::<String>::new()
    );
    let r = search(s, Criterion::Query("away".into()), 10, true).await;
    assert_eq!(logins(&r), ["gone"]);
    assert_eq!(r.customer_users[0].validity, pb::Validity::Invalid as i32);
    // A get finds an invalid user, marked invalid.
    let gone = get_user(s, "GONE").await.unwrap();
    assert_eq!(gone.validity, pb::Validity::Invalid as i32);
    fx.stop().await;
}

/// The search modes: email exact (case-insensitive), login exact unless wildcard, customer id.
async fn search_modes(mut fx: Fixture) {
    let s = &mut fx.s;
    assert_eq!(
        found(s, Criterion::Email("JOHN.DOE@example.COM".into())).await,
        ["jdoe"]
    );
    assert_eq!(
        found(s, Criterion::Email("JOHN.DOE@EXAMPLE.COM".into())).await,
        ["jdoe"]
    );
    assert_eq!(
        found(s, Criterion::Email("doe@example.com".into())).await,
        Vec::<String>::new()
    );
    assert_eq!(
        found(s, Criterion::Login("AMBIG*".into())).await,
        ["ambig1", "ambig2"]
    );
    assert_eq!(
        found(s, Criterion::Login("ambig*".into())).await,
        ["ambig1", "ambig2"]
    );
    assert_eq!(
        found(s, Criterion::CustomerId("ACME".into())).await,
        [
            "ambig1",
            "ambig2",
            "jdoe",
            "jürgen",
            "o'brien",
            "star*paren(",
            "カス"
        ]
    );
    fx.stop().await;
}

/// Limits: sorted by login, cut, flagged; a result exactly at the limit is not truncated.
async fn limits_and_truncation(mut fx: Fixture) {
    let s = &mut fx.s;
    let r = search(s, Criterion::CustomerId("bulkco".into()), 10, false).await;
    assert_eq!(r.customer_users.len(), 10);
    assert_eq!(r.customer_users[0].login, "bulk000");
    assert!(r.truncated && r.source_status[0].truncated && r.source_status[0].ok);
    let r = search(s, Criterion::CustomerId("bulkco".into()), 60, false).await;
    assert_eq!(r.customer_users.len(), 60);
    assert!(!r.truncated);
    // Size limits are truncation, not errors.
    let r = search(s, Criterion::Query("bulk".into()), 10, false).await;
    assert_eq!(r.customer_users.len(), 10);
    assert!(r.truncated && r.source_status[0].ok && r.source_status[0].truncated);
    assert_eq!(logins(&r)[0], "bulk000");
    fx.stop().await;
}

/// A source's `list_limit` (default 250) caps a larger requested limit, flagged as truncation.
async fn list_limit_caps_a_source(mut fx: Fixture) {
    let r = search(
        &mut fx.s,
        Criterion::CustomerId("bulkco".into()),
        1000,
        false,
    )
    .await;
    assert_eq!(r.customer_users.len(), 250, "list_limit");
    assert!(r.truncated && r.source_status[0].ok && r.source_status[0].truncated);
    assert_eq!(logins(&r)[0], "bulk000");
    fx.stop().await;
}

/// ResolveSenders in one batch: display names and case ignored, invalid users and substrings
/// never resolved, bad addresses an error of their own.
async fn resolve_senders(mut fx: Fixture) {
    let s = &mut fx.s;
    let resolve = |addresses: &[&str]| pb::ResolveSendersRequest {
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
    };
    let got = |r: &pb::ResolveSendersResponse| -> Vec<Vec<String>> {
        r.results
            .iter()
            .map(|x| x.customer_users.iter().map(|u| u.login.clone()).collect())
            .collect()
    };
    let r = s
        .users
        .resolve_senders(resolve(&[
            "\"Team\" <Team@Example.com>",
            "gone@example.com",
            "Jürgen <juergen@example.com>",
            "x",
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got(&r),
        vec![
            vec!["ambig1".to_owned(), "ambig2".to_owned()],
            vec![],
            vec!["jürgen".to_owned()],
            vec![]
        ]
    );
    assert!(r.results[0].ambiguous && !r.results[2].ambiguous && !r.results[3].error.is_empty());
    let r = s
        .users
        .resolve_senders(resolve(&[
            "Team <team@EXAMPLE.com>",
            "gone@example.com",
            "juergen@example.com",
            "nobody@example.com",
            "doe@example.com",
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got(&r),
        vec![
            vec!["ambig1".to_owned(), "ambig2".to_owned()],
            vec![],
            vec!["jürgen".to_owned()],
            vec![],
            vec![]
        ]
    );
    assert!(r.results[0].ambiguous);
    assert!(r.source_status.iter().all(|st| st.ok));
    fx.stop().await;
}

/// Customer ids: primary first, then further ids (LDAP: multi-valued `o`); memberships added
/// through the API (kept in SQL beside a directory) follow them.
async fn customer_ids_and_memberships(mut fx: Fixture) {
    let s = &mut fx.s;
    let list = |login: &str| pb::ListCustomerIdsRequest {
        login: login.into(),
    };
    let ids = s
        .users
        .list_customer_ids(list("JDOE"))
        .await
        .unwrap()
        .into_inner()
        .customer_ids;
    assert_eq!(ids, ["acme", "globex"]);
    let ids = s
        .users
        .set_customer_membership(pb::SetCustomerMembershipRequest {
            login: "JDOE".into(),
            customer_id: "initech".into(),
            member: true,
        })
        .await
        .unwrap()
        .into_inner()
        .customer_ids;
    assert_eq!(ids, ["acme", "globex", "initech"]);
    let ids = s
        .users
        .list_customer_ids(list("jdoe"))
        .await
        .unwrap()
        .into_inner()
        .customer_ids;
    assert_eq!(ids, ["acme", "globex", "initech"]);
    let err = s.users.list_customer_ids(list("nobody")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    fx.stop().await;
}

/// Preferences are stored (in SQL, beside a directory) and read back under any login case.
async fn preferences(mut fx: Fixture) {
    let s = &mut fx.s;
    s.users
        .set_preference(pb::SetPreferenceRequest {
            login: "jdoe".into(),
            key: "UserLanguage".into(),
            value: "de".into(),
        })
        .await
        .unwrap();
    for login in ["jdoe", "JDOE"] {
        let prefs = s
            .users
            .get_preferences(pb::GetPreferencesRequest {
                login: login.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .preferences;
        assert_eq!(
            prefs.get("UserLanguage").map(String::as_str),
            Some("de"),
            "{login}"
        );
    }
    fx.stop().await;
}

/// The customer users of a customer: primary and further customer ids, valid ones unless
/// `include_invalid`.
async fn customer_users_of_customer(mut fx: Fixture) {
    let s = &mut fx.s;
    let of = |customer_id: &str, include_invalid: bool| pb::ListCustomerUsersOfCustomerRequest {
        customer_id: customer_id.into(),
        include_invalid,
        limit: 0,
        ..Default::default()
    };
    let names = |r: pb::ListCustomerUsersOfCustomerResponse| {
        r.customer_users
            .into_iter()
            .map(|u| u.login)
            .collect::<Vec<_>>()
    };
    let r = s
        .customers
        .list_customer_users_of_customer(of("globex", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(r), ["jdoe"], "globex is jdoe's second customer id");
    let r = s
        .customers
        .list_customer_users_of_customer(of("ACME", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        names(r),
        [
            "ambig1",
            "ambig2",
            "jdoe",
            "jürgen",
            "o'brien",
            "star*paren(",
            "カス"
        ]
    );
    let r = s
        .customers
        .list_customer_users_of_customer(of("acme", true))
        .await
        .unwrap()
        .into_inner();
    assert!(names(r).contains(&"gone".to_owned()));
    fx.stop().await;
}

/// Authenticate: the stored password (SQL) or a bind (LDAP), the login in any case; wrong,
/// empty and unknown give the same outcome; an invalid user is disabled.
async fn authenticate(fx: Fixture) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", fx.s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let auth = pb::auth_service_client::AuthServiceClient::new(channel);
    let login = |l: &str, p: &str| {
        let req = pb::AuthenticateRequest {
            login: l.into(),
            password: p.into(),
            client_ip: String::new(),
            otp: String::new(),
        };
        let mut a = auth.clone();
        async move { a.authenticate(req).await.unwrap().into_inner() }
    };
    let outcome = |r: &pb::AuthenticateResponse| Outcome::try_from(r.outcome).unwrap();
    let ok = login("JDOE", "dir-Secret-1").await;
    assert_eq!(outcome(&ok), Outcome::Success);
    assert_eq!(ok.source, SOURCE);
    assert_eq!(ok.customer_ids, ["acme", "globex"]);
    assert_eq!(ok.customer_user.map(|u| u.login).as_deref(), Some("jdoe"));
    for (l, p) in [("jdoe", "wrong"), ("jdoe", ""), ("nobody", "dir-Secret-1")] {
        let r = login(l, p).await;
        assert_eq!(outcome(&r), Outcome::InvalidCredentials, "{l} {p:?}");
        assert!(r.customer_user.is_none() && r.customer_ids.is_empty());
    }
    assert_eq!(
        outcome(&login("gone", "old-Secret-1").await),
        Outcome::Disabled
    );
    assert_eq!(
        outcome(&login("jdoe", "dir-Secret-1").await),
        Outcome::Success
    );
    fx.stop().await;
}

/// The directory refuses writes with FAILED_PRECONDITION naming the source; preferences and
/// memberships (SQL side tables) stay writable.
async fn writes_are_refused(mut fx: Fixture) {
    let s = &mut fx.s;
    let err = s
        .users
        .create_customer_user(pb::CreateCustomerUserRequest {
            source: SOURCE.into(),
            customer_user: Some(pb::CustomerUser {
                login: "new".into(),
                first_name: "N".into(),
                last_name: "N".into(),
                email: "n@example.com".into(),
                customer_id: "acme".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains(&format!("\"{SOURCE}\"")),
        "{}",
        err.message()
    );
    let err = s
        .users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "jdoe".into(),
            customer_user: Some(pb::CustomerUser {
                city: "X".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["city".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains(&format!("\"{SOURCE}\"")),
        "{}",
        err.message()
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", fx.s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = pb::auth_service_client::AuthServiceClient::new(channel)
        .set_password(pb::SetPasswordRequest {
            login: "jdoe".into(),
            password: "New-Secret-22".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    fx.stop().await;
}

common::fixture::per_backend! {
    standard: reads [
        get,
        login_case_insensitive,
        search_grammar,
        validity_and_include_invalid,
        search_modes,
        limits_and_truncation,
        resolve_senders,
        customer_ids_and_memberships,
        preferences,
        customer_users_of_customer,
        authenticate,
    ] ldap [writes_are_refused];
    many: reads [list_limit_caps_a_source];
}
