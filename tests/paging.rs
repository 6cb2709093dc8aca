//! Walks (AIP-158 pages), detail filters, `order_by`, totals and batch gets, on every backend
//! (`paging::sqlite::full_walks_equal_the_data_set`, ...) through the real server: one data set
//! with an extra attribute (`room`: an added SQL column, LDAP `roomNumber`), invalid users and
//! a `list_limit` (7) below the page sizes, so source pages are cut and merged at a horizon.
//! Expected answers are computed from the data set itself, in the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::{HashMap, HashSet};

use clientele::proto::{self as pb, search_customer_users_request::Criterion};
use common::fixture::{per_backend, Target};
use common::slapd::{attr, person, Slapd, ADMIN_DN, ADMIN_PW};
use common::{fresh_db, user_source, violations, TestDb, TestServer};
use sqlx::Connection;
use tonic::Code;

const LAST: [&str; 5] = ["Smith", "smith", "Müller", "Zed", "Able"];
const FIRST: [&str; 3] = ["Ann", "Bob", "Cleo"];

/// One person of the data set.
#[derive(Debug, Clone)]
struct P {
    login: String,
    first: String,
    last: String,
    room: String,
    customer_id: String,
    valid: bool,
}

/// Logins past the ASCII ones, one with an upper-case non-ASCII first letter (SQLite folds
/// ASCII only, so its order differs from the walk's).
const UNICODE_LOGINS: [&str; 4] = ["łukasz", "Ölaf", "élodie", "jürgen"];

fn people() -> Vec<P> {
    (0..35)
        .map(|i| P {
            login: match i {
                31..=34 => UNICODE_LOGINS[i - 31].to_owned(),
                _ => format!("p{i:02}"),
            },
            first: FIRST[i % 3].into(),
            last: LAST[i % 5].into(),
            room: format!("{}{i}", if i % 2 == 0 { "A" } else { "B" }),
            customer_id: if i % 3 == 0 { "acme" } else { "globex" }.into(),
            valid: i % 7 != 3,
        })
        .collect()
}

struct Px {
    s: TestServer,
    target: Target,
    people: Vec<P>,
    _db: Option<TestDb>,
    _slapd: Option<Slapd>,
    _dir: tempfile::TempDir,
}

const LIST_LIMIT: &str = "list_limit = 7\ncustomer_company_support = false\nemail_unique = false";

/// The SQL source with the `room` column added to the migrated table.
async fn sql_server(db: &TestDb) -> TestServer {
    let plain = "customer_sources = []\n".to_owned()
        + &user_source("main", &db.url, "customer_user", LIST_LIMIT);
    // The first search waits for the migration.
    let mut first = TestServer::start(&plain).await;
    first.users.search_customer_users(req()).await.unwrap();
    first.stop().await;
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE customer_user ADD COLUMN room VARCHAR(20) NULL")
        .execute(&mut conn)
        .await
        .unwrap();
    let config = "customer_sources = []\n".to_owned()
        + &user_source(
            "main",
            &db.url,
            "customer_user",
            &format!("{LIST_LIMIT}\n[customer_user_sources.map]\nroom = \"room\""),
        );
    TestServer::start(&config).await
}

fn pb_user(p: &P) -> pb::CustomerUser {
    pb::CustomerUser {
        login: p.login.clone(),
        first_name: p.first.clone(),
        last_name: p.last.clone(),
        email: format!("{}@example.com", p.login),
        customer_id: p.customer_id.clone(),
        validity: if p.valid {
            pb::Validity::Valid
        } else {
            pb::Validity::Invalid
        }
        .into(),
        extra: [("room".to_owned(), p.room.clone())].into(),
        ..Default::default()
    }
}

async fn create(s: &mut TestServer, p: &P) {
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(pb_user(p)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("seed {}: {e:?}", p.login));
}

fn ldap_config(slapd: &Slapd, dir: &std::path::Path, name: &str) -> String {
    let pw = dir.join("bind.pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    format!(
        "[[customer_user_sources]]\nname = \"{name}\"\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\nscope = \"one\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=inetOrgPerson)\"\ninvalid_filter = \"(employeeType=inactive)\"\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\n{LIST_LIMIT}\nstore_url = \"sqlite://{}\"\n[customer_user_sources.map]\nroom = \"roomNumber\"\n",
        slapd.url(),
        pw.display(),
        dir.join("store.db").display()
    )
}

fn ldif(people: &[P]) -> String {
    people
        .iter()
        .map(|p| {
            let mut extra = attr("roomNumber", &p.room);
            if !p.valid {
                extra += "employeeType: inactive\n";
            }
            person(
                &p.login,
                &p.first,
                &p.last,
                &format!("{}@example.com", p.login),
                &[&p.customer_id],
                &extra,
            )
        })
        .collect()
}

async fn fixture(target: Target) -> Option<Px> {
    let dir = tempfile::tempdir().unwrap();
    let people = people();
    match target.sql() {
        Some(backend) => {
            let db = fresh_db(backend).await?;
            let mut s = sql_server(&db).await;
            for p in &people {
                create(&mut s, p).await;
            }
            Some(Px {
                s,
                target,
                people,
                _db: Some(db),
                _slapd: None,
                _dir: dir,
            })
        }
        None => {
            let slapd = Slapd::start(&ldif(&people))?;
            let config =
                "customer_sources = []\n".to_owned() + &ldap_config(&slapd, dir.path(), "main");
            let s = TestServer::start(&config).await;
            Some(Px {
                s,
                target,
                people,
                _db: None,
                _slapd: Some(slapd),
                _dir: dir,
            })
        }
    }
}

fn req() -> pb::SearchCustomerUsersRequest {
    pb::SearchCustomerUsersRequest {
        criterion: Some(Criterion::Login("*".into())),
        ..Default::default()
    }
}

/// Walks `r` page by page; every page is at most `page_size`, the last has no token.
async fn walk(s: &mut TestServer, mut r: pb::SearchCustomerUsersRequest) -> Vec<pb::CustomerUser> {
    let mut out = Vec::new();
    for _ in 0..200 {
        let page = s
            .users
            .search_customer_users(r.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(page.customer_users.len() <= r.page_size.max(1) as usize);
        for st in &page.source_status {
            assert_eq!(st.error, "", "{st:?}");
        }
        out.extend(page.customer_users);
        if page.next_page_token.is_empty() {
            return out;
        }
        r.page_token = page.next_page_token;
    }
    panic!("the walk did not end");
}

fn logins(users: &[pb::CustomerUser]) -> Vec<String> {
    users.iter().map(|u| u.login.clone()).collect()
}

fn expected(people: &[P], keep: impl Fn(&P) -> bool) -> Vec<String> {
    let mut v: Vec<String> = people
        .iter()
        .filter(|p| keep(p))
        .map(|p| p.login.clone())
        .collect();
    v.sort_by_key(|l| l.to_lowercase());
    v
}

async fn full_walks_equal_the_data_set(mut fx: Px) {
    for size in [1, 3, 7, 10, 1000] {
        let got = walk(
            &mut fx.s,
            pb::SearchCustomerUsersRequest {
                page_size: size,
                ..req()
            },
        )
        .await;
        assert_eq!(
            logins(&got),
            expected(&fx.people, |p| p.valid),
            "page size {size}"
        );
    }
    let all = walk(
        &mut fx.s,
        pb::SearchCustomerUsersRequest {
            page_size: 4,
            include_invalid: true,
            ..req()
        },
    )
    .await;
    assert_eq!(logins(&all), expected(&fx.people, |_| true));
}

async fn filters_per_attribute(mut fx: Px) {
    let by = |filters: &[(&str, &str)]| pb::SearchCustomerUsersRequest {
        criterion: None,
        page_size: 3,
        include_invalid: true,
        filters: filters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    };
    let got = walk(&mut fx.s, by(&[("last_name", "SMI*")])).await;
    assert_eq!(
        logins(&got),
        expected(&fx.people, |p| p.last.eq_ignore_ascii_case("smith")),
        "the case rule: insensitive"
    );
    let got = walk(&mut fx.s, by(&[("last_name", "mü*"), ("room", "B*")])).await;
    assert_eq!(
        logins(&got),
        expected(&fx.people, |p| p.last == "Müller"
            && p.room.starts_with('B')),
        "AND across attributes, an extra attribute, non-ASCII"
    );
    let got = walk(&mut fx.s, by(&[("extra.room", "A1*")])).await;
    assert_eq!(
        logins(&got),
        expected(&fx.people, |p| p.room.starts_with("A1"))
    );
    let got = walk(&mut fx.s, by(&[("validity", "INVALID")])).await;
    assert_eq!(logins(&got), expected(&fx.people, |p| !p.valid));
    // Combined with a criterion.
    let got = walk(
        &mut fx.s,
        pb::SearchCustomerUsersRequest {
            criterion: Some(Criterion::CustomerId("acme".into())),
            ..by(&[("first_name", "ann")])
        },
    )
    .await;
    assert_eq!(
        logins(&got),
        expected(&fx.people, |p| p.customer_id == "acme" && p.first == "Ann")
    );
    // Time ranges: SQL keeps create times, the directory none (nothing matches).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let since = (now - 3600).to_string();
    let got = walk(&mut fx.s, by(&[("create_time>=", since.as_str())])).await;
    let want = if fx.target == Target::Ldap {
        Vec::new()
    } else {
        expected(&fx.people, |_| true)
    };
    assert_eq!(logins(&got), want);
    let got = walk(
        &mut fx.s,
        by(&[("create_time<", "2000-01-01T00:00:00Z"), ("login", "*")]),
    )
    .await;
    assert!(got.is_empty());
}

async fn order_by_several_keys_descending(mut fx: Px) {
    for size in [2, 5, 1000] {
        let got = walk(
            &mut fx.s,
            pb::SearchCustomerUsersRequest {
                page_size: size,
                order_by: "last_name, first_name desc".into(),
                ..req()
            },
        )
        .await;
        let mut want: Vec<&P> = fx.people.iter().filter(|p| p.valid).collect();
        want.sort_by(|a, b| {
            a.last
                .to_lowercase()
                .cmp(&b.last.to_lowercase())
                .then(b.first.to_lowercase().cmp(&a.first.to_lowercase()))
                .then(a.login.to_lowercase().cmp(&b.login.to_lowercase()))
        });
        let want: Vec<String> = want.iter().map(|p| p.login.clone()).collect();
        assert_eq!(logins(&got), want, "page size {size}");
    }
    let got = walk(
        &mut fx.s,
        pb::SearchCustomerUsersRequest {
            page_size: 4,
            order_by: "extra.room desc".into(),
            ..req()
        },
    )
    .await;
    let mut want: Vec<&P> = fx.people.iter().filter(|p| p.valid).collect();
    want.sort_by_key(|p| std::cmp::Reverse(p.room.to_lowercase()));
    assert_eq!(
        logins(&got),
        want.iter().map(|p| p.login.clone()).collect::<Vec<_>>()
    );
}

async fn totals_are_exact(mut fx: Px) {
    let r =
        fx.s.users
            .search_customer_users(pb::SearchCustomerUsersRequest {
                page_size: 2,
                include_total: true,
                ..req()
            })
            .await
            .unwrap()
            .into_inner();
    let valid = fx.people.iter().filter(|p| p.valid).count() as i64;
    assert_eq!(r.total_size, Some(valid));
    assert!(r.uncounted_sources.is_empty());
    assert_eq!(r.customer_users.len(), 2);
    let r =
        fx.s.users
            .search_customer_users(pb::SearchCustomerUsersRequest {
                criterion: None,
                include_total: true,
                filters: [("last_name".to_owned(), "smith".to_owned())].into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
    let want = fx
        .people
        .iter()
        .filter(|p| p.valid && p.last.eq_ignore_ascii_case("smith"))
        .count() as i64;
    assert_eq!(r.total_size, Some(want));
}

async fn tokens_are_bound_to_their_query(mut fx: Px) {
    let first =
        fx.s.users
            .search_customer_users(pb::SearchCustomerUsersRequest {
                page_size: 2,
                ..req()
            })
            .await
            .unwrap()
            .into_inner();
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    let other = [
        pb::SearchCustomerUsersRequest {
            criterion: Some(Criterion::Login("p*".into())),
            ..req()
        },
        pb::SearchCustomerUsersRequest {
            include_invalid: true,
            ..req()
        },
        pb::SearchCustomerUsersRequest {
            order_by: "last_name".into(),
            ..req()
        },
        pb::SearchCustomerUsersRequest {
            filters: [("room".to_owned(), "*".to_owned())].into(),
            ..req()
        },
    ];
    for r in other {
        let e =
            fx.s.users
                .search_customer_users(pb::SearchCustomerUsersRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..r
                })
                .await
                .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(violations(&e), ["page_token"]);
    }
    let mut altered = token.clone().into_bytes();
    altered[3] = if altered[3] == b'x' { b'y' } else { b'x' };
    for bad in [String::from_utf8(altered).unwrap(), "garbage".into()] {
        let e =
            fx.s.users
                .search_customer_users(pb::SearchCustomerUsersRequest {
                    page_size: 2,
                    page_token: bad,
                    ..req()
                })
                .await
                .unwrap_err();
        assert_eq!(violations(&e), ["page_token"]);
    }
    // The same query with another page size continues.
    let next =
        fx.s.users
            .search_customer_users(pb::SearchCustomerUsersRequest {
                page_size: 3,
                page_token: token,
                ..req()
            })
            .await
            .unwrap()
            .into_inner();
    let valid = expected(&fx.people, |p| p.valid);
    assert_eq!(logins(&next.customer_users), valid[2..5]);
}

async fn bounds_and_unknown_attributes(mut fx: Px) {
    let bad = [
        (
            pb::SearchCustomerUsersRequest {
                filters: [("shoe_size".to_owned(), "4".to_owned())].into(),
                ..req()
            },
            "filters[shoe_size]",
        ),
        (
            pb::SearchCustomerUsersRequest {
                order_by: "last_name, shoe_size desc".into(),
                ..req()
            },
            "order_by",
        ),
        (
            pb::SearchCustomerUsersRequest {
                filters: (0..17).map(|i| (format!("k{i}"), "x".to_owned())).collect(),
                ..req()
            },
            "filters",
        ),
        (
            pb::SearchCustomerUsersRequest {
                filters: [("last_name".to_owned(), "x".repeat(1001))].into(),
                ..req()
            },
            "filters[last_name]",
        ),
        (
            pb::SearchCustomerUsersRequest {
                filters: [("validity".to_owned(), "MAYBE".to_owned())].into(),
                ..req()
            },
            "filters[validity]",
        ),
        (
            pb::SearchCustomerUsersRequest {
                criterion: None,
                page_size: 5,
                ..Default::default()
            },
            "criterion",
        ),
    ];
    for (r, field) in bad {
        let e = fx.s.users.search_customer_users(r).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violations(&e), [field]);
    }
    // A page size over the maximum is cut to it, not refused.
    let r =
        fx.s.users
            .search_customer_users(pb::SearchCustomerUsersRequest {
                page_size: 1_000_000,
                ..req()
            })
            .await
            .unwrap()
            .into_inner();
    assert!(r.customer_users.len() <= 1000);
    let e =
        fx.s.users
            .batch_get_customer_users(pb::BatchGetCustomerUsersRequest {
                logins: (0..1001).map(|i| format!("x{i}")).collect(),
            })
            .await
            .unwrap_err();
    assert_eq!(violations(&e), ["logins"]);
}

async fn batch_get_in_request_order(mut fx: Px) {
    let r =
        fx.s.users
            .batch_get_customer_users(pb::BatchGetCustomerUsersRequest {
                logins: vec!["p05".into(), "nobody".into(), "P01".into(), "p03".into()],
            })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(logins(&r.customer_users), ["p05", "p01", "p03"]);
    assert_eq!(r.not_found, ["nobody"]);
    assert_eq!(r.customer_users[0].extra.get("room").unwrap(), "B5");
}

async fn customer_lists_page(mut fx: Px) {
    let mut token = String::new();
    let mut got = Vec::new();
    loop {
        let r =
            fx.s.customers
                .list_customer_users_of_customer(pb::ListCustomerUsersOfCustomerRequest {
                    customer_id: "globex".into(),
                    page_size: 3,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
        assert!(r.customer_users.len() <= 3);
        got.extend(logins(&r.customer_users));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(
        got,
        expected(&fx.people, |p| p.valid && p.customer_id == "globex")
    );
}

/// Records that exist throughout a walk appear exactly once, whatever is created or
/// invalidated meanwhile (nothing is deleted: invalid records leave a valid-only walk).
async fn concurrent_writes_during_a_walk(mut fx: Px) {
    let mut r = pb::SearchCustomerUsersRequest {
        page_size: 4,
        ..req()
    };
    let mut seen: Vec<String> = Vec::new();
    let mut round = 0;
    loop {
        let page =
            fx.s.users
                .search_customer_users(r.clone())
                .await
                .unwrap()
                .into_inner();
        seen.extend(logins(&page.customer_users));
        if page.next_page_token.is_empty() {
            break;
        }
        r.page_token = page.next_page_token;
        // Between pages: new users before and after the position, and one invalidated.
        round += 1;
        for login in [format!("a{round:02}"), format!("z{round:02}")] {
            let p = P {
                login,
                first: "New".into(),
                last: "Comer".into(),
                room: "C1".into(),
                customer_id: "acme".into(),
                valid: true,
            };
            create(&mut fx.s, &p).await;
        }
        let victim = format!("p{:02}", 30 - round);
        fx.s.users
            .update_customer_user(pb::UpdateCustomerUserRequest {
                login: victim,
                customer_user: Some(pb::CustomerUser {
                    validity: pb::Validity::Invalid.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["validity".into()],
                }),
            })
            .await
            .unwrap();
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no record twice: {seen:?}");
    let touched: HashSet<String> = (1..=round).map(|i| format!("p{:02}", 30 - i)).collect();
    for p in fx
        .people
        .iter()
        .filter(|p| p.valid && !touched.contains(&p.login))
    {
        assert!(seen.contains(&p.login), "{} existed throughout", p.login);
    }
}

per_backend! {
    fixture: reads [
        full_walks_equal_the_data_set,
        filters_per_attribute,
        order_by_several_keys_descending,
        totals_are_exact,
        tokens_are_bound_to_their_query,
        bounds_and_unknown_attributes,
        batch_get_in_request_order,
        customer_lists_page,
    ] writes [concurrent_writes_during_a_walk];
}

/// SQLite first, the directory second, sharing some logins (in other case too): a walk in
/// any order answers each login once, from the first source; totals count it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_across_sql_and_ldap_keep_the_first_source() {
    let dir = tempfile::tempdir().unwrap();
    let all = people();
    // SQL holds p00..p19, the directory p10..p30 (p10..p19 twice; the directory's copies of
    // them have another last name, so they would sort elsewhere).
    let sql_people: Vec<P> = all[..20].to_vec();
    let ldap_people: Vec<P> = all[10..]
        .iter()
        .map(|p| P {
            last: "Directory".into(),
            login: if p.login == "p12" {
                "P12".into()
            } else {
                p.login.clone()
            },
            ..p.clone()
        })
        .collect();
    let Some(slapd) = Slapd::start(&ldif(&ldap_people)) else {
        return;
    };
    let db = fresh_db(common::Backend::Sqlite).await.unwrap();
    let mut s = sql_server(&db).await;
    for p in &sql_people {
        create(&mut s, p).await;
    }
    s.stop().await;
    let config = "customer_sources = []\n".to_owned()
        + &user_source(
            "main",
            &db.url,
            "customer_user",
            &format!("{LIST_LIMIT}\n[customer_user_sources.map]\nroom = \"room\""),
        )
        + &ldap_config(&slapd, dir.path(), "directory");
    let mut s = TestServer::start(&config).await;
    for order_by in ["", "last_name desc, first_name", "extra.room"] {
        let got = walk(
            &mut s,
            pb::SearchCustomerUsersRequest {
                page_size: 3,
                include_invalid: true,
                order_by: order_by.into(),
                ..req()
            },
        )
        .await;
        let mut by_login: HashMap<String, String> = HashMap::new();
        for u in &got {
            assert!(
                by_login
                    .insert(u.login.to_lowercase(), u.source.clone())
                    .is_none(),
                "{} twice ({order_by:?})",
                u.login
            );
        }
        assert_eq!(by_login.len(), all.len(), "{order_by:?}");
        for p in &all[..20] {
            assert_eq!(
                by_login[&p.login], "main",
                "{} from the first source",
                p.login
            );
        }
        for p in &all[20..] {
            assert_eq!(by_login[&p.login.to_lowercase()], "directory");
        }
    }
    let r = s
        .users
        .search_customer_users(pb::SearchCustomerUsersRequest {
            page_size: 1,
            include_invalid: true,
            include_total: true,
            ..req()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.total_size, Some(all.len() as i64), "deduplicated");
    s.stop().await;
}

/// Customers walk, filter, order and batch-get like customer users (SQL backends).
async fn customers_walk_filter_and_batch_get(backend: common::Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let config =
        user_source(
            "main",
            &db.url,
            "customer_user",
            "customer_company_support = false",
        ) + &common::customer_source("companies", &db.url, "customer_company", "list_limit = 5");
    let mut s = TestServer::start(&config).await;
    let cities = ["Berlin", "bonn", "Köln", "Aachen"];
    for i in 0..23 {
        s.customers
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    customer_id: format!("c{i:02}"),
                    name: format!("Company {i:02}"),
                    city: cities[i % 4].into(),
                    validity: pb::Validity::Valid.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut r = pb::SearchCustomersRequest {
        page_size: 4,
        order_by: "city desc".into(),
        filters: [("city".to_owned(), "b*".to_owned())].into(),
        include_total: true,
        ..Default::default()
    };
    let mut got = Vec::new();
    let mut total = None;
    loop {
        let page = s
            .customers
            .search_customers(r.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(page.customers.len() <= 4);
        total = total.or(page.total_size);
        got.extend(page.customers.into_iter().map(|c| (c.city, c.customer_id)));
        if page.next_page_token.is_empty() {
            break;
        }
        r.page_token = page.next_page_token;
    }
    let mut want: Vec<(String, String)> = (0..23)
        .filter(|i| i % 4 < 2)
        .map(|i| (cities[i % 4].to_owned(), format!("c{i:02}")))
        .collect();
    want.sort_by(|a, b| {
        b.0.to_lowercase()
            .cmp(&a.0.to_lowercase())
            .then(a.1.cmp(&b.1))
    });
    assert_eq!(got, want);
    assert_eq!(total, Some(want.len() as i64));
    let e = s
        .customers
        .search_customers(pb::SearchCustomersRequest {
            filters: [("colour".to_owned(), "x".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e), ["filters[colour]"]);
    let b = s
        .customers
        .batch_get_customers(pb::BatchGetCustomersRequest {
            customer_ids: vec!["C07".into(), "none".into(), "c01".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = b.customers.iter().map(|c| c.customer_id.as_str()).collect();
    assert_eq!(ids, ["c07", "c01"]);
    assert_eq!(b.not_found, ["none"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_on_sqlite() {
    customers_walk_filter_and_batch_get(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_on_postgres() {
    customers_walk_filter_and_batch_get(common::Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_on_mariadb() {
    customers_walk_filter_and_batch_get(common::Backend::MySql).await;
}
