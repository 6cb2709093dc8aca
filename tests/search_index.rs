//! The in-memory search index (`search_index = "memory"`) against the database path
//! (`"database"`), on SQLite, PostgreSQL and MariaDB, through the real server and client:
//! - differential: two sources on the same table, one per path; random records (mixed case,
//!   accents, spaces, validity) and random grammar queries (AND/OR, negation, `*` anywhere,
//!   phrases, limits, `include_invalid`), on a case-insensitive and a case-sensitive table with
//!   another prefix; both paths answer the same records in the same order with the same
//!   `truncated`;
//! - freshness: this replica's creates, renames and invalidations are visible to the very next
//!   search; a row written straight into the table with SQL (as Znuny would), its invalidation
//!   and its rename by SQL are visible within `index_refresh` (polled with a bound, never a
//!   sleep-and-assert); customers likewise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::{Duration, Instant};

use clientele::proto as pb;
use common::{fresh_db, metrics, user_source, Backend, TestDb, TestServer};
use pb::search_customer_users_request::Criterion;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use sqlx::Connection;

/// How long a poll for a write by someone else may take (index_refresh is 100 ms here).
const POLL_BOUND: Duration = Duration::from_secs(20);

/// Characters of records and query terms: mixed case, accents, a space, a hyphen.
const ALPHABET: &[char] = &['a', 'A', 'b', 'B', 'ä', 'Ä', 'é', 'o', 'n', ' ', '-'];

/// Characters of logins: no non-ASCII capitals. SQLite's database path pages by its ASCII-only
/// `LOWER(login)`, so at a page boundary it can pick `Ä8` before `ä30` (a known gap of that path,
/// not of the index, which orders by the full fold as documented).
const LOGIN_ALPHABET: &[char] = &['a', 'A', 'b', 'B', 'ä', 'é', 'o', 'n', '-'];

/// The value of gauge `name` for `source` in the metrics, if present.
async fn gauge(s: &TestServer, name: &str, source: &str) -> Option<f64> {
    let body = metrics(s).await;
    let prefix = format!("{name}{{source=\"{source}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls until the index of `source` holds `records` records (the index answers from then on).
async fn wait_for_index(s: &TestServer, source: &str, records: usize) {
    let start = Instant::now();
    loop {
        if gauge(s, "clientele_search_index_records", source).await == Some(records as f64) {
            return;
        }
        assert!(
            start.elapsed() < POLL_BOUND,
            "index of {source} never reached {records} records:\n{}",
            metrics(s).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn search_in(
    s: &mut TestServer,
    source: &str,
    query: &str,
    limit: u32,
    include_invalid: bool,
) -> Result<pb::SearchCustomerUsersResponse, tonic::Status> {
    s.users
        .search_customer_users(pb::SearchCustomerUsersRequest {
            criterion: Some(Criterion::Query(query.to_owned())),
            limit,
            include_invalid,
            sources: vec![source.to_owned()],
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Every login a paged walk of `query` in `source` answers (pages of `page_size`, with
/// `filters` and `order_by`), in order, or the first error.
async fn walk_in(
    s: &mut TestServer,
    source: &str,
    query: &str,
    page_size: u32,
    filters: &[(&str, String)],
    order_by: &str,
) -> Result<Vec<String>, tonic::Status> {
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        // An empty query walks by the filters alone (every record they keep).
        let criterion = (!query.is_empty()).then(|| Criterion::Query(query.to_owned()));
        let r = s
            .users
            .search_customer_users(pb::SearchCustomerUsersRequest {
                criterion,
                sources: vec![source.to_owned()],
                page_size,
                page_token: token,
                filters: filters
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
                order_by: order_by.to_owned(),
                ..Default::default()
            })
            .await?
            .into_inner();
        all.extend(logins(&r));
        if r.next_page_token.is_empty() {
            return Ok(all);
        }
        token = r.next_page_token;
    }
}

/// What a search answered, without the name of the source: every record (as compared, with
/// its attributes) and the source's `truncated`.
fn answer(r: &pb::SearchCustomerUsersResponse) -> (Vec<pb::CustomerUser>, bool) {
    let users = r
        .customer_users
        .iter()
        .cloned()
        .map(|mut u| {
            u.source.clear();
            u
        })
        .collect();
    let truncated = r.source_status.iter().any(|s| s.truncated);
    (users, truncated)
}

fn logins(r: &pb::SearchCustomerUsersResponse) -> Vec<String> {
    r.customer_users.iter().map(|u| u.login.clone()).collect()
}

/// Unique (ASCII) email addresses for created records.
static EMAILS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Creates a customer user in `source`. A fresh database is migrated by the first call, which
/// on a loaded machine can outlast the source's `call_timeout`: an UNAVAILABLE answer is retried
/// (bounded by [`POLL_BOUND`]).
async fn create(
    s: &mut TestServer,
    source: &str,
    login: &str,
    first: &str,
    last: &str,
    valid: bool,
) {
    let start = Instant::now();
    loop {
        match try_create(s, source, login, first, last, valid).await {
            Ok(()) => return,
            Err(e) if e.code() == tonic::Code::Unavailable && start.elapsed() < POLL_BOUND => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create {login:?}: {e:?}"),
        }
    }
}

async fn try_create(
    s: &mut TestServer,
    source: &str,
    login: &str,
    first: &str,
    last: &str,
    valid: bool,
) -> Result<(), tonic::Status> {
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            source: source.to_owned(),
            customer_user: Some(pb::CustomerUser {
                login: login.to_owned(),
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                email: format!(
                    "user{}@example.com",
                    EMAILS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                ),
                customer_id: "acme".into(),
                validity: if valid {
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
        .map(|_| ())
}

fn text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> + Clone {
    text_of(ALPHABET, len)
}

fn text_of(
    alphabet: &'static [char],
    len: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = String> + Clone {
    proptest::collection::vec(proptest::sample::select(alphabet), len)
        .prop_map(|cs| cs.into_iter().collect())
}

/// A random query in the customer-user grammar: terms of the alphabet with `*` anywhere, `!`,
/// phrases, joined by `+`, `AND`, `OR` or juxtaposed.
fn query() -> impl Strategy<Value = String> {
    let term = || {
        (
            text(1..=4),
            proptest::option::of(0usize..5),
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.15),
        )
            .prop_map(|(t, star, negated, phrase)| {
                let t = t.trim().to_owned();
                let t = if t.is_empty() { "a".to_owned() } else { t };
                let mut chars: Vec<char> = t.chars().collect();
                if let Some(at) = star {
                    chars.insert(at.min(chars.len()), '*');
                }
                let body: String = chars.into_iter().collect();
                let body = if phrase { format!("\"{body}\"") } else { body };
                if negated {
                    format!("!{body}")
                } else {
                    body
                }
            })
    };
    let op = proptest::sample::select(&["+", " AND ", " OR ", " OR "][..]);
    (term(), proptest::collection::vec((op, term()), 0..3)).prop_map(|(first, rest)| {
        let mut q = first;
        for (op, t) in rest {
            q.push_str(op);
            q.push_str(&t);
        }
        q
    })
}

fn sample<S: Strategy>(runner: &mut TestRunner, s: &S) -> S::Value {
    s.new_tree(runner).unwrap().current()
}

/// Two pairs of sources: `m1`/`d1` on table `cu1` (case-insensitive, `*term*`) and `m2`/`d2`
/// on `cu2` (case-sensitive, `term*`), the `m` sources answering from memory.
fn pair_config(db: &TestDb, tag: &str) -> String {
    let common = "customer_company_support = false\nindex_refresh = \"100ms\"\n";
    format!(
        "customer_sources = []\n{}{}{}{}",
        user_source(&format!("m1{tag}"), &db.url, "cu1", common),
        user_source(
            &format!("d1{tag}"),
            &db.url,
            "cu1",
            &format!("{common}search_index = \"database\"\n")
        ),
        user_source(
            &format!("m2{tag}"),
            &db.url,
            "cu2",
            &format!("{common}case_sensitive = true\nsearch_prefix = \"\"\n")
        ),
        user_source(
            &format!("d2{tag}"),
            &db.url,
            "cu2",
            &format!("{common}case_sensitive = true\nsearch_prefix = \"\"\nsearch_index = \"database\"\n")
        ),
    )
}

async fn differential(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let tag = format!("{backend:?}").to_lowercase();
    let mut s = TestServer::start(&pair_config(&db, &tag)).await;
    let mut runner = TestRunner::default();
    let people = 45;
    for table in ["1", "2"] {
        let mut seen = std::collections::HashSet::new();
        for i in 0..people {
            // Logins differ after folding (two logins that fold alike have no database order).
            let login = loop {
                let l = format!(
                    "{}{i}t{table}",
                    sample(&mut runner, &text_of(LOGIN_ALPHABET, 0..=3))
                );
                if seen.insert(l.to_lowercase()) {
                    break l;
                }
            };
            // Names are required and stored trimmed: non-blank, no edge spaces.
            let first = format!("F{}", sample(&mut runner, &text(0..=6)).trim());
            let last = format!("{}L", sample(&mut runner, &text(1..=8)).trim());
            let valid = sample(&mut runner, &proptest::bool::weighted(0.8));
            // Written through the database-path source: the memory index learns them by
            // reading the table (its change_time refresh), as it would from another writer.
            create(
                &mut s,
                &format!("d{table}{tag}"),
                &login,
                &first,
                &last,
                valid,
            )
            .await;
        }
    }
    wait_for_index(&s, &format!("m1{tag}"), people).await;
    wait_for_index(&s, &format!("m2{tag}"), people).await;
    let queries = query();
    for round in 0..150 {
        let q = sample(&mut runner, &queries);
        let limit = sample(&mut runner, &(1u32..=30));
        let include_invalid = round % 3 == 0;
        for table in ["1", "2"] {
            let m = search_in(
                &mut s,
                &format!("m{table}{tag}"),
                &q,
                limit,
                include_invalid,
            )
            .await;
            let d = search_in(
                &mut s,
                &format!("d{table}{tag}"),
                &q,
                limit,
                include_invalid,
            )
            .await;
            match (m, d) {
                (Ok(m), Ok(d)) => {
                    let context = format!("table {table}, query {q:?}, limit {limit}, include_invalid {include_invalid}");
                    assert_eq!(logins(&m), logins(&d), "{context}: logins");
                    assert_eq!(answer(&m), answer(&d), "{context}: records");
                }
                (Err(m), Err(d)) => assert_eq!(m.code(), d.code(), "query {q:?}"),
                (m, d) => panic!("query {q:?}: memory {m:?} vs database {d:?}"),
            }
            // Paged walks with a filter and an order (issue 17): the same pages on both paths.
            if round % 10 == 0 {
                let prefix = sample(&mut runner, &text_of(ALPHABET, 1..=1));
                let filters = [("last_name", format!("{}*", prefix.trim()))];
                let filters: &[(&str, String)] = if round % 20 == 0 { &filters } else { &[] };
                let order = ["", "last_name desc", "first_name, login"][round % 3];
                let page = sample(&mut runner, &(1u32..=7));
                let m = walk_in(&mut s, &format!("m{table}{tag}"), &q, page, filters, order).await;
                let d = walk_in(&mut s, &format!("d{table}{tag}"), &q, page, filters, order).await;
                match (m, d) {
                    (Ok(m), Ok(d)) => assert_eq!(
                        m, d,
                        "walk of {q:?} by {page}, {filters:?}, order {order:?}"
                    ),
                    (Err(m), Err(d)) => assert_eq!(m.code(), d.code(), "walk of {q:?}"),
                    (m, d) => panic!("walk of {q:?}: memory {m:?} vs database {d:?}"),
                }
            }
            // A walk by filters alone (the index answers it as `login *`), later pages too.
            if round % 10 == 5 {
                let prefix = sample(&mut runner, &text_of(ALPHABET, 1..=1));
                let filters = [("first_name", format!("*{}*", prefix.trim()))];
                let page = sample(&mut runner, &(1u32..=9));
                let m = walk_in(&mut s, &format!("m{table}{tag}"), "", page, &filters, "").await;
                let d = walk_in(&mut s, &format!("d{table}{tag}"), "", page, &filters, "").await;
                match (m, d) {
                    (Ok(m), Ok(d)) => assert_eq!(m, d, "walk by {filters:?}, pages of {page}"),
                    (Err(m), Err(d)) => assert_eq!(m.code(), d.code(), "walk by {filters:?}"),
                    (m, d) => panic!("walk by {filters:?}: memory {m:?} vs database {d:?}"),
                }
            }
        }
    }
    s.stop().await;
}

/// A source answering from memory, on table `customer_user`, refreshing every 100 ms.
async fn memory_server(backend: Backend, name: &str) -> Option<(TestDb, TestServer)> {
    let db = fresh_db(backend).await?;
    let config = format!(
        "{}{}",
        user_source(
            name,
            &db.url,
            "customer_user",
            "customer_company_support = false\nindex_refresh = \"100ms\"\n"
        ),
        common::customer_source(
            &format!("{name}_c"),
            &db.url,
            "customer_company",
            "index_refresh = \"100ms\"\n"
        )
    );
    let s = TestServer::start(&config).await;
    Some((db, s))
}

async fn own_writes_are_visible_to_the_next_search(backend: Backend) {
    let name = format!("own_{backend:?}").to_lowercase();
    let Some((_db, mut s)) = memory_server(backend, &name).await else {
        return;
    };
    create(&mut s, &name, "anchor", "Anchor", "Person", true).await;
    wait_for_index(&s, &name, 1).await;
    create(&mut s, &name, "jsmith", "John", "Smithereen", true).await;
    let r = search_in(&mut s, &name, "smither", 10, false)
        .await
        .unwrap();
    assert_eq!(logins(&r), ["jsmith"], "a create is visible at once");
    // Rename: the old login is gone at once, the new one is there.
    s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "jsmith".into(),
            customer_user: Some(pb::CustomerUser {
                login: "john.smith".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["login".into()],
            }),
        })
        .await
        .unwrap();
    let r = search_in(&mut s, &name, "smither", 10, false)
        .await
        .unwrap();
    assert_eq!(logins(&r), ["john.smith"], "a rename is visible at once");
    // Invalidation: gone from valid-only searches, still found with include_invalid.
    s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "john.smith".into(),
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
    let r = search_in(&mut s, &name, "smither", 10, false)
        .await
        .unwrap();
    assert!(logins(&r).is_empty(), "{:?}", logins(&r));
    let r = search_in(&mut s, &name, "smither", 10, true).await.unwrap();
    assert_eq!(logins(&r), ["john.smith"]);
    // Customers: a created customer is found at once.
    s.customers
        .create_customer(pb::CreateCustomerRequest {
            source: format!("{name}_c"),
            customer: Some(pb::Customer {
                customer_id: "globex".into(),
                name: "Globex Corporation".into(),
                validity: pb::Validity::Valid.into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let r = s
        .customers
        .search_customers(pb::SearchCustomersRequest {
            query: "corporat".into(),
            limit: 10,
            include_invalid: false,
            sources: vec![],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = r.customers.iter().map(|c| c.customer_id.as_str()).collect();
    assert_eq!(ids, ["globex"]);
    s.stop().await;
}

/// Polls `query` on `source` until its logins are `want`.
async fn poll_until(
    s: &mut TestServer,
    source: &str,
    query: &str,
    include_invalid: bool,
    want: &[&str],
) {
    let start = Instant::now();
    loop {
        let r = search_in(s, source, query, 50, include_invalid)
            .await
            .unwrap();
        if logins(&r) == want {
            return;
        }
        assert!(
            start.elapsed() < POLL_BOUND,
            "{query:?} on {source}: still {:?}, want {want:?}",
            logins(&r)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sql(db: &TestDb, statement: &str) {
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(statement).execute(&mut conn).await.unwrap();
}

async fn foreign_writes_are_visible_within_index_refresh(backend: Backend) {
    let name = format!("foreign_{backend:?}").to_lowercase();
    let Some((db, mut s)) = memory_server(backend, &name).await else {
        return;
    };
    create(&mut s, &name, "anchor", "Anchor", "Person", true).await;
    wait_for_index(&s, &name, 1).await;
    // A row Znuny writes, straight into the table.
    sql(&db, "INSERT INTO customer_user (login, email, customer_id, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ('zed', 'zed@example.com', 'acme', 'Zed', 'Quixotic', 1, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP, 1)").await;
    poll_until(&mut s, &name, "quixot", false, &["zed"]).await;
    // Its invalidation by SQL.
    sql(&db, "UPDATE customer_user SET valid_id = 2, change_time = CURRENT_TIMESTAMP WHERE login = 'zed'").await;
    poll_until(&mut s, &name, "quixot", false, &[]).await;
    poll_until(&mut s, &name, "quixot", true, &["zed"]).await;
    // Its rename by SQL: the new login within index_refresh, the old one gone by the next
    // full reconciliation (60 × index_refresh = 6 s here).
    sql(&db, "UPDATE customer_user SET login = 'zed2', valid_id = 1, change_time = CURRENT_TIMESTAMP WHERE login = 'zed'").await;
    poll_until(&mut s, &name, "quixot", false, &["zed2"]).await;
    // A row deleted by SQL disappears too.
    sql(&db, "DELETE FROM customer_user WHERE login = 'anchor'").await;
    poll_until(&mut s, &name, "anchor", true, &[]).await;
    s.stop().await;
}

macro_rules! each_backend {
    ($($t:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::Postgres).await } )* }
        mod mariadb { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $t() { super::$t(super::Backend::MySql).await } )* }
    };
}

each_backend!(
    differential,
    own_writes_are_visible_to_the_next_search,
    foreign_writes_are_visible_within_index_refresh,
);
