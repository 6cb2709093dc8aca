//! Data integrity of writes (issue 12, "found in review"): renames that are safe to repeat and
//! move every place that names the old key (the failed-login state included; nothing of a
//! read-only source left behind), the write lock on tables Clientele does not own, uniqueness
//! checks that never trust the per-replica cache, and searches thinned by the exact re-check
//! that page onward instead of loading the whole table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod common;

use clientele::proto::{
    self as pb, auth_service_client::AuthServiceClient, group_service_client::GroupServiceClient,
    search_customer_users_request::Criterion, Outcome,
};
use common::fixture::{per_backend, Fixture, Person, Target};
use common::{customer_source, fresh_db, user_source, Backend, TestServer};
use sqlx::Connection;
use tonic::{transport::Channel, Code};

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn rename_user(from: &str, to: &str) -> pb::UpdateCustomerUserRequest {
    pb::UpdateCustomerUserRequest {
        login: from.into(),
        customer_user: Some(pb::CustomerUser {
            login: to.into(),
            ..Default::default()
        }),
        update_mask: mask(&["login"]),
    }
}

fn rename_customer(from: &str, to: &str) -> pb::UpdateCustomerRequest {
    pb::UpdateCustomerRequest {
        customer_id: from.into(),
        customer: Some(pb::Customer {
            customer_id: to.into(),
            ..Default::default()
        }),
        update_mask: mask(&["customer_id"]),
    }
}

fn new_user(login: &str, email: &str) -> pb::CustomerUser {
    pb::CustomerUser {
        login: login.into(),
        first_name: "Integrity".into(),
        last_name: "Test".into(),
        email: email.into(),
        customer_id: "acme".into(),
        ..Default::default()
    }
}

async fn create(s: &mut TestServer, user: pb::CustomerUser, source: &str) -> Result<(), Code> {
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(user),
            source: source.into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| e.code())
}

async fn channel(s: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

// ----- the failed-login state moves with the login -----

async fn locked_people(target: Target) -> Option<Fixture> {
    Fixture::start(
        target,
        &[
            Person::new("locky", "Lo", "Cky", "locky@example.com", &["acme"])
                .password("Right-Pass-1"),
        ],
    )
    .await
}

/// A locked customer user stays locked under its new login (before, a rename dropped the
/// lock state, so the new login was unlocked).
async fn a_locked_user_stays_locked_under_its_new_login(mut fx: Fixture) {
    let mut auth = AuthServiceClient::new(channel(&fx.s).await);
    let attempt = |login: &str, password: &str| pb::AuthenticateRequest {
        login: login.into(),
        password: password.into(),
        client_ip: String::new(),
        otp: String::new(),
    };
    for _ in 0..5 {
        let out = auth
            .authenticate(attempt("locky", "wrong"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(out.outcome(), Outcome::InvalidCredentials);
    }
    let out = auth
        .authenticate(attempt("locky", "Right-Pass-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.outcome(), Outcome::Locked, "locked after five failures");
    let renamed =
        fx.s.users
            .update_customer_user(rename_user("locky", "unlocky"))
            .await
            .expect("rename")
            .into_inner();
    assert_eq!(renamed.login, "unlocky");
    let out = auth
        .authenticate(attempt("unlocky", "Right-Pass-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        out.outcome(),
        Outcome::Locked,
        "the lock moved with the login"
    );
    fx.stop().await;
}

per_backend! {
    locked_people: writes [a_locked_user_stays_locked_under_its_new_login];
}

// ----- renames across databases are safe to repeat -----

/// Makes a PostgreSQL database refuse connections and ends the sessions it has (`allow`
/// false), or accept them again.
async fn allow_connections(db: &common::TestDb, allow: bool) {
    let base = std::env::var("CLIENTELE_TEST_POSTGRES_URL").unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut c = sqlx::AnyConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
        .execute(&mut c)
        .await
        .unwrap();
    if !allow {
        sqlx::query(&format!(
            "SELECT CAST(pg_terminate_backend(pid) AS TEXT) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .fetch_all(&mut c)
        .await
        .unwrap();
    }
}

async fn grants(groups_db: &common::TestDb) -> (Vec<String>, Vec<String>) {
    let mut c = sqlx::AnyConnection::connect(&groups_db.url).await.unwrap();
    let users: Vec<String> =
        sqlx::query_scalar("SELECT CAST(user_id AS TEXT) FROM group_customer_user ORDER BY 1")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let customers: Vec<String> =
        sqlx::query_scalar("SELECT CAST(customer_id AS TEXT) FROM group_customer ORDER BY 1")
            .fetch_all(&mut c)
            .await
            .unwrap();
    (users, customers)
}

/// The groups store lives on a PostgreSQL database of its own, which refuses connections for
/// the first attempt: the login rename and the customer-id rename answer UNAVAILABLE naming
/// the group grants that still hold the old key; repeating the same call once the database is
/// back completes them (instead of NOT_FOUND), and repeating it again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_answer_what_is_left_and_complete_when_repeated() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let groups_db = fresh_db(Backend::Postgres).await.unwrap();
    let config = user_source(
        "main",
        &db.url,
        "customer_user",
        "customer_company_support = false",
    ) + &customer_source("main", &db.url, "customer_company", "")
        + &format!(
            "[groups]\nurl = \"{}\"\ncustomer_group_support = true\nalways_groups = []\ncustomer_always_groups = []\n",
            groups_db.url
        );
    let mut s = TestServer::start(&config).await;
    let mut groups = GroupServiceClient::new(channel(&s).await);
    s.customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "acme".into(),
                name: "Acme".into(),
                ..Default::default()
            }),
            source: String::new(),
        })
        .await
        .unwrap();
    create(&mut s, new_user("alice", "alice@example.com"), "")
        .await
        .unwrap();
    s.users
        .set_preference(pb::SetPreferenceRequest {
            login: "alice".into(),
            key: "UserLanguage".into(),
            value: "de".into(),
        })
        .await
        .unwrap();
    groups
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "support".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    groups
        .set_customer_user_permissions(pb::SetCustomerUserPermissionsRequest {
            login: "alice".into(),
            group: "support".into(),
            permissions: [("rw".to_owned(), true)].into(),
        })
        .await
        .unwrap();
    groups
        .set_customer_permissions(pb::SetCustomerPermissionsRequest {
            customer_id: "acme".into(),
            group: "support".into(),
            context: pb::PermissionContext::SameCustomer.into(),
            permissions: [("ro".to_owned(), true)].into(),
        })
        .await
        .unwrap();
    assert_eq!(
        grants(&groups_db).await,
        (vec!["alice".into()], vec!["acme".into()])
    );

    // Login rename with the group database gone.
    allow_connections(&groups_db, false).await;
    let err = s
        .users
        .update_customer_user(rename_user("alice", "alicia"))
        .await
        .expect_err("grants cannot move");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("group grants") && err.message().contains("\"alice\""),
        "names the place that still holds the old login: {}",
        err.message()
    );
    // The record and its companion rows moved whole.
    let prefs = s
        .users
        .get_preferences(pb::GetPreferencesRequest {
            login: "alicia".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .preferences;
    assert_eq!(prefs.get("UserLanguage").map(String::as_str), Some("de"));
    // Customer-id rename with the group database gone.
    let err = s
        .customers
        .update_customer(rename_customer("acme", "acme-intl"))
        .await
        .expect_err("customer grants cannot move");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("group grants") && err.message().contains("\"acme\""),
        "{}",
        err.message()
    );

    // Back: the same calls complete what was left. Pooled connections the database ended
    // each fail once more before fresh ones are opened, so the first repetitions may still
    // answer UNAVAILABLE (the same answer, again safe to repeat).
    allow_connections(&groups_db, true).await;
    let mut attempts = 0;
    let user = loop {
        attempts += 1;
        match s
            .users
            .update_customer_user(rename_user("alice", "alicia"))
            .await
        {
            Ok(u) => break u.into_inner(),
            Err(e) if e.code() == Code::Unavailable && attempts < 10 => {
                assert!(e.message().contains("group grants"), "{}", e.message());
            }
            Err(e) => panic!("repeated login rename, attempt {attempts}: {e:?}"),
        }
    };
    assert_eq!(user.login, "alicia");
    let mut attempts = 0;
    let customer = loop {
        attempts += 1;
        match s
            .customers
            .update_customer(rename_customer("acme", "acme-intl"))
            .await
        {
            Ok(c) => break c.into_inner(),
            Err(e) if e.code() == Code::Unavailable && attempts < 10 => {
                assert!(e.message().contains("group grants"), "{}", e.message());
            }
            Err(e) => panic!("repeated customer rename, attempt {attempts}: {e:?}"),
        }
    };
    assert_eq!(customer.customer_id, "acme-intl");
    assert_eq!(
        grants(&groups_db).await,
        (vec!["alicia".into()], vec!["acme-intl".into()])
    );
    // Repeating a completed rename changes nothing and answers the record.
    let user = s
        .users
        .update_customer_user(rename_user("alice", "alicia"))
        .await
        .expect("a completed login rename repeated")
        .into_inner();
    assert_eq!(user.login, "alicia");
    assert_eq!(
        user.customer_id, "acme-intl",
        "moved by the customer rename"
    );
    let customer = s
        .customers
        .update_customer(rename_customer("acme", "acme-intl"))
        .await
        .expect("a completed customer rename repeated")
        .into_inner();
    assert_eq!(customer.customer_id, "acme-intl");
    assert_eq!(
        grants(&groups_db).await,
        (vec!["alicia".into()], vec!["acme-intl".into()])
    );
    // A rename of a login nobody had onto one nobody has is still NOT_FOUND.
    let err = s
        .users
        .update_customer_user(rename_user("nobody", "nobody-else"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.stop().await;
}

/// A customer user of a read-only source cannot be renamed (FAILED_PRECONDITION, nothing
/// changes); when its customer is renamed, the memberships kept in its companion tables move
/// along (before, they were left naming the old id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_sources_keep_nothing_behind() {
    let customers_db = fresh_db(Backend::Sqlite).await.unwrap();
    let ro_db = fresh_db(Backend::Sqlite).await.unwrap();
    let customers = customer_source("main", &customers_db.url, "customer_company", "");
    let users = |extra: &str| {
        user_source(
            "ro",
            &ro_db.url,
            "customer_user",
            &format!("customer_company_support = false\n{extra}"),
        )
    };
    // Seeded while writable.
    let mut s = TestServer::start(&(users("") + &customers)).await;
    for id in ["acme", "globex"] {
        s.customers
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    customer_id: id.into(),
                    name: id.into(),
                    ..Default::default()
                }),
                source: String::new(),
            })
            .await
            .unwrap();
    }
    create(&mut s, new_user("rob", "rob@example.com"), "")
        .await
        .unwrap();
    s.users
        .set_customer_membership(pb::SetCustomerMembershipRequest {
            login: "rob".into(),
            customer_id: "globex".into(),
            member: true,
        })
        .await
        .unwrap();
    s.stop().await;

    let mut s = TestServer::start(&(users("read_only = true") + &customers)).await;
    let err = s
        .users
        .update_customer_user(rename_user("rob", "robert"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let still = s
        .users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "rob".into(),
        })
        .await
        .expect("rob keeps his login")
        .into_inner();
    assert_eq!(still.login, "rob");
    s.customers
        .update_customer(rename_customer("globex", "globex-intl"))
        .await
        .expect("rename the customer");
    let ids = s
        .users
        .list_customer_ids(pb::ListCustomerIdsRequest {
            login: "rob".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer_ids;
    assert_eq!(ids, ["acme", "globex-intl"], "the membership moved along");
    s.stop().await;
}

/// A rename repeated on another replica, which still caches the old record, completes (it
/// reads past its cache) instead of answering NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_repeated_on_another_replica_reads_past_its_cache() {
    let db = fresh_db(Backend::Sqlite).await.unwrap();
    let config = "customer_sources = []\n".to_owned()
        + &user_source(
            "main",
            &db.url,
            "customer_user",
            "customer_company_support = false\ncache_ttl = \"10m\"",
        );
    let mut a = TestServer::start(&config).await;
    create(&mut a, new_user("carol", "carol@example.com"), "")
        .await
        .unwrap();
    let mut b = TestServer::start(&config).await;
    b.users
        .get_customer_user(pb::GetCustomerUserRequest {
            login: "carol".into(),
        })
        .await
        .expect("carol, now cached on replica b");
    a.users
        .update_customer_user(rename_user("carol", "caroline"))
        .await
        .expect("rename on replica a");
    let user = b
        .users
        .update_customer_user(rename_user("carol", "caroline"))
        .await
        .expect("the same rename repeated on replica b")
        .into_inner();
    assert_eq!(user.login, "caroline");
    a.stop().await;
    b.stop().await;
}

/// The same on a directory: an LDAP customer user cannot be renamed, and the memberships its
/// SQL store keeps follow a renamed customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_memberships_follow_a_renamed_customer() {
    use common::slapd::{person, Slapd, ADMIN_DN, ADMIN_PW};
    let Some(slapd) = Slapd::start(&person(
        "lana",
        "Lana",
        "Lang",
        "lana@example.com",
        &["acme"],
        "",
    )) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("bind.pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    let customers_db = fresh_db(Backend::Sqlite).await.unwrap();
    let config = format!(
        "[[customer_user_sources]]\nname = \"dir\"\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\nscope = \"one\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=inetOrgPerson)\"\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\ncustomer_company_support = false\nstore_url = \"sqlite://{}\"\n",
        slapd.url(),
        pw.display(),
        dir.path().join("store.db").display()
    ) + &customer_source("main", &customers_db.url, "customer_company", "");
    let mut s = TestServer::start(&config).await;
    s.customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "globex".into(),
                name: "Globex".into(),
                ..Default::default()
            }),
            source: String::new(),
        })
        .await
        .unwrap();
    s.users
        .set_customer_membership(pb::SetCustomerMembershipRequest {
            login: "lana".into(),
            customer_id: "globex".into(),
            member: true,
        })
        .await
        .unwrap();
    let err = s
        .users
        .update_customer_user(rename_user("lana", "lena"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    s.customers
        .update_customer(rename_customer("globex", "globex-intl"))
        .await
        .expect("rename the customer");
    let ids = s
        .users
        .list_customer_ids(pb::ListCustomerIdsRequest {
            login: "lana".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .customer_ids;
    assert_eq!(ids, ["acme", "globex-intl"], "the membership moved along");
    s.stop().await;
}

// ----- the write lock holds on tables Clientele does not own -----

const ZNUNY_PG: &str = "CREATE TABLE customer_user (id serial, login VARCHAR(200) NOT NULL, email VARCHAR(150) NOT NULL, customer_id VARCHAR(150) NOT NULL, pw VARCHAR(128), title VARCHAR(50), first_name VARCHAR(100) NOT NULL, last_name VARCHAR(100) NOT NULL, phone VARCHAR(150), fax VARCHAR(150), mobile VARCHAR(150), street VARCHAR(150), zip VARCHAR(200), city VARCHAR(200), country VARCHAR(200), comments VARCHAR(250), valid_id SMALLINT NOT NULL, create_time timestamp(0) NOT NULL, create_by INTEGER NOT NULL, change_time timestamp(0) NOT NULL, change_by INTEGER NOT NULL, PRIMARY KEY(id), CONSTRAINT customer_user_login UNIQUE (login))";
const ZNUNY_MYSQL: &str = "CREATE TABLE customer_user (id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, login VARCHAR(200) NOT NULL, email VARCHAR(150) NOT NULL, customer_id VARCHAR(150) NOT NULL, pw VARCHAR(128), title VARCHAR(50), first_name VARCHAR(100) NOT NULL, last_name VARCHAR(100) NOT NULL, phone VARCHAR(150), fax VARCHAR(150), mobile VARCHAR(150), street VARCHAR(150), zip VARCHAR(200), city VARCHAR(200), country VARCHAR(200), comments VARCHAR(250), valid_id SMALLINT NOT NULL, create_time DATETIME NOT NULL, create_by INTEGER NOT NULL, change_time DATETIME NOT NULL, change_by INTEGER NOT NULL, UNIQUE INDEX customer_user_login (login)) DEFAULT CHARSET=utf8";

/// Two replicas on one Znuny-shaped `customer_user` table (`migrate = false`, no lock row
/// seeded) create `BobN` / `bobN` (and `BobN` / `RobertN`) with one email at the same time:
/// exactly one of each pair succeeds, the other is ALREADY_EXISTS.
async fn replicas_on_a_foreign_table_serialise_creates(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let ddl = match backend {
        Backend::Postgres => ZNUNY_PG,
        _ => ZNUNY_MYSQL,
    };
    let mut c = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(ddl).execute(&mut c).await.unwrap();
    let config = "customer_sources = []\n[groups]\nmigrate = false\n".to_owned()
        + &user_source(
            "znuny",
            &db.url,
            "customer_user",
            "migrate = false\ncustomer_company_support = false",
        );
    // Each replica prepares the database (Clientele's own tables) before the race, one after
    // the other (two replicas preparing one fresh database at once is not what this test is
    // about).
    let warm_up = |mut s: TestServer| async move {
        let err = s
            .users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: "warm-up".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        s
    };
    let a = warm_up(TestServer::start(&config).await).await;
    let b = warm_up(TestServer::start(&config).await).await;
    for round in 0..12 {
        let other = if round % 2 == 0 {
            format!("bob{round}")
        } else {
            format!("Robert{round}")
        };
        let email = format!("bob{round}@example.com");
        let mut ua = a.users.clone();
        let mut ub = b.users.clone();
        let (ra, rb) = tokio::join!(
            ua.create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(new_user(&format!("Bob{round}"), &email)),
                ..Default::default()
            }),
            ub.create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(new_user(&other, &email)),
                ..Default::default()
            }),
        );
        let codes = [
            ra.as_ref().map(|_| Code::Ok).unwrap_or_else(|e| e.code()),
            rb.as_ref().map(|_| Code::Ok).unwrap_or_else(|e| e.code()),
        ];
        assert!(
            codes == [Code::Ok, Code::AlreadyExists] || codes == [Code::AlreadyExists, Code::Ok],
            "round {round}: exactly one create succeeds: {ra:?} {rb:?}"
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customer_user")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(stored, 12);
    let locks: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM clientele_write_lock WHERE name = 'customer_user'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(locks, 1, "the lock row was inserted once");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replicas_on_a_foreign_table_serialise_creates() {
    replicas_on_a_foreign_table_serialise_creates(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_replicas_on_a_foreign_table_serialise_creates() {
    replicas_on_a_foreign_table_serialise_creates(Backend::MySql).await
}

// ----- uniqueness checks read through the cache -----

/// Replica A caches "x not found" in source `first`; replica B creates `x` there; A's create of
/// `x` in source `second` answers ALREADY_EXISTS naming `first` (before, the cached answer let
/// the same login into two sources).
async fn the_existence_check_reads_through_the_cache(backend: Backend) {
    let Some(first) = fresh_db(backend).await else {
        return;
    };
    let second = fresh_db(backend).await.unwrap();
    let config = "customer_sources = []\n".to_owned()
        + &user_source(
            "first",
            &first.url,
            "customer_user",
            "customer_company_support = false\ncache_ttl = \"10m\"",
        )
        + &user_source(
            "second",
            &second.url,
            "customer_user",
            "customer_company_support = false\ncache_ttl = \"10m\"",
        );
    let mut a = TestServer::start(&config).await;
    let err = a
        .users
        .get_customer_user(pb::GetCustomerUserRequest { login: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "now cached on replica a: {err:?}"
    );
    // Started once a migrated the databases (two replicas migrating one fresh database at
    // once is not what this test is about).
    let mut b = TestServer::start(&config).await;
    create(&mut b, new_user("x", "x@example.com"), "first")
        .await
        .unwrap();
    let code = create(&mut a, new_user("x", "x2@example.com"), "second").await;
    assert_eq!(code, Err(Code::AlreadyExists));
    a.stop().await;
    b.stop().await;
}

mod cache {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        the_existence_check_reads_through_the_cache(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        the_existence_check_reads_through_the_cache(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mariadb() {
        the_existence_check_reads_through_the_cache(Backend::MySql).await
    }
}

// ----- a search thinned by the exact re-check pages onward -----

/// On MariaDB a negated term is decided in Rust (its collations are accent-blind), so the
/// database returns every row and the re-check drops most of them: the page is filled by
/// paging onward, and equals the unlimited answer (statement LIMITs: the unit test
/// `source::sql::table::tests`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_negated_search_pages_onward() {
    let Some(mut fx) = Fixture::start(Target::MariaDb, &[]).await else {
        return;
    };
    let s = &mut fx.s;
    let mut kept = Vec::new();
    for i in 0..60 {
        let login = format!("m{i:03}");
        let last = if i % 9 == 4 { "Keller" } else { "Müller" };
        let mut u = new_user(&login, &format!("{login}@example.com"));
        u.last_name = last.into();
        create(s, u, "").await.unwrap();
        if last == "Keller" {
            kept.push(login);
        }
    }
    let search = |limit| pb::SearchCustomerUsersRequest {
        criterion: Some(Criterion::Query("!müller".into())),
        limit,
        include_invalid: false,
        sources: vec![],
        ..Default::default()
    };
    let page = s
        .users
        .search_customer_users(search(3))
        .await
        .unwrap()
        .into_inner();
    let logins: Vec<String> = page
        .customer_users
        .iter()
        .map(|u| u.login.clone())
        .collect();
    assert_eq!(logins, kept[..3]);
    let all = s
        .users
        .search_customer_users(search(1000))
        .await
        .unwrap()
        .into_inner();
    let logins: Vec<String> = all.customer_users.iter().map(|u| u.login.clone()).collect();
    assert_eq!(logins, kept, "the paged answer is the unlimited one");
    fx.stop().await;
}
