//! The indexes that make search and the postmaster lookup fast, checked with the planner, and
//! the seed command that fills a source.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use clientele::config::Config;
use clientele::domain::{
    query::{parse, Grammar, Pattern},
    search::{UserCriterion, UserSearch},
};
use clientele::source::sql::user::SqlUserSource;
use clientele::source::UserReader;
use common::{fresh_db, user_source, Backend};

async fn seeded(
    backend: Backend,
) -> Option<(clientele::app::App, common::TestDb, tempfile::TempDir)> {
    let db = fresh_db(backend).await?;
    let groups = tempfile::tempdir().unwrap();
    // One connection to the source's database, so a session setting applies to the EXPLAIN.
    let app = app_on(&db, &groups, "pool_size = 1");
    let msg = app.seed("main", 3000, 30, "Load-Test-1", 7).await.unwrap();
    assert!(
        msg.starts_with("seeded 3000 customer users and 30 customers"),
        "{msg}"
    );
    Some((app, db, groups))
}

/// An app with one customer-user source `main` on `db` (`extra`: more of its settings) and
/// its groups in a SQLite file in `groups`.
fn app_on(db: &common::TestDb, groups: &tempfile::TempDir, extra: &str) -> clientele::app::App {
    let config = format!(
        "[groups]\nurl = \"sqlite://{}\"\n",
        groups.path().join("g.db").display()
    ) + &user_source(
        "main",
        &db.url,
        "customer_user",
        &format!("customer_company_support = false\n{extra}"),
    );
    let settings = Config::from_toml(&config, Vec::new())
        .unwrap()
        .validate()
        .unwrap();
    clientele::app::build(settings).unwrap()
}

fn source(app: &clientele::app::App) -> SqlUserSource {
    SqlUserSource::new(app.settings.user_sources[0].clone(), user_db(app)).unwrap()
}

/// The database of the (only) customer-user source.
fn user_db(app: &clientele::app::App) -> std::sync::Arc<clientele::source::sql::Db> {
    let url = &app.settings.user_sources[0].url;
    app.databases
        .iter()
        .find(|(u, _)| u == url)
        .unwrap()
        .1
        .clone()
}

/// The plan of the statement a search runs.
async fn plan_of(src: &SqlUserSource, criterion: UserCriterion) -> String {
    src.explain_search(&search(criterion)).await.unwrap()
}

/// Asserts that the plan of each search names the index that should serve it.
async fn expect_plans(src: &SqlUserSource, cases: Vec<(UserCriterion, &str)>) {
    for (criterion, index) in cases {
        let plan = plan_of(src, criterion).await;
        assert!(plan.contains(index), "{index} not in the plan:\n{plan}");
    }
}

/// Asserts that the search index's refresh of the rows changed since a moment (a day ahead:
/// none are, so the planner prefers the index on any engine) reads them through `index`.
async fn expect_refresh_plan(src: &SqlUserSource, index: &str) {
    let tomorrow = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 86_400;
    let plan = src.explain_scan(Some(tomorrow)).await.unwrap();
    assert!(
        plan.contains(index),
        "{index} not in the refresh's plan:\n{plan}"
    );
}

fn search(criterion: UserCriterion) -> UserSearch {
    UserSearch {
        criterion,
        include_invalid: false,
        limit: 250,
        detail: clientele::domain::search::Detail::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_plans_use_trigram_and_lower_indexes() {
    let Some((app, _db, _g)) = seeded(Backend::Postgres).await else {
        return;
    };
    let src = source(&app);
    // Small tables are cheaper to scan; ask the planner whether the indexes *can* serve.
    sqlx::query("SET enable_seqscan = off")
        .execute(user_db(&app).pool())
        .await
        .unwrap();
    expect_plans(
        &src,
        vec![
            (
                UserCriterion::Query(parse("müller+an", Grammar::CustomerUser).unwrap()),
                "customer_user_last_name_trgm",
            ),
            (
                UserCriterion::Query(parse("müller+an", Grammar::CustomerUser).unwrap()),
                "customer_user_login_trgm",
            ),
            (
                UserCriterion::Email("jürgen.müller1@cust1.example.com".into()),
                "customer_user_email_lower",
            ),
            (
                UserCriterion::Login(Pattern::literal("anna.smith12")),
                "customer_user_login_lower",
            ),
            (
                UserCriterion::CustomerId(Pattern::literal("cust0001")),
                "customer_user_customer_id_lower",
            ),
        ],
    )
    .await;
    expect_refresh_plan(&src, "customer_user_change_time").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_plans_use_lower_indexes() {
    let Some((app, _db, _g)) = seeded(Backend::Sqlite).await else {
        return;
    };
    let src = source(&app);
    expect_plans(
        &src,
        vec![
            (
                UserCriterion::Email("anna.smith1@cust1.example.com".into()),
                "customer_user_email_lower",
            ),
            (
                UserCriterion::Login(Pattern::literal("anna.smith12")),
                "customer_user_login_lower",
            ),
            // Non-ASCII: SQLite's LOWER() keeps `Ü`, so the lookup lists the case variants.
            (
                UserCriterion::Login(Pattern::literal("JÜRGEN.MÜLLER5")),
                "customer_user_login_lower (<expr>=?)",
            ),
        ],
    )
    .await;
    expect_refresh_plan(
        &src,
        "USING INDEX customer_user_change_time (change_time>?)",
    )
    .await;
}

/// MySQL/MariaDB compare the `_ci` columns bare, so their B-tree indexes serve the lookups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_plans_use_column_indexes() {
    let Some((app, _db, _g)) = seeded(Backend::MySql).await else {
        return;
    };
    let src = source(&app);
    // A stored user (the seed is deterministic), looked up with other letter cases.
    let user = clientele::seed::customer_users(3000, 30, 7).swap_remove(12);
    expect_plans(
        &src,
        vec![
            (
                UserCriterion::Email(user.email.clone()),
                "\"key\": \"customer_user_email\"",
            ),
            (
                UserCriterion::Login(Pattern::literal(&user.login.to_uppercase())),
                "\"key\": \"customer_user_login\"",
            ),
            (
                UserCriterion::CustomerId(Pattern::literal(&user.customer_id.to_uppercase())),
                "\"key\": \"customer_user_customer_id\"",
            ),
        ],
    )
    .await;
    expect_refresh_plan(&src, "\"key\": \"customer_user_change_time\"").await;
    // Case-insensitive through the collation, exact through the re-check.
    let found = src.get(&user.login.to_uppercase()).await.unwrap().unwrap();
    assert_eq!(found.login, user.login);
    let page = src
        .search(&search(UserCriterion::CustomerId(Pattern::literal(
            &user.customer_id.to_uppercase(),
        ))))
        .await
        .unwrap();
    assert!(page.items.iter().any(|u| u.login == user.login));
    assert!(page.items.iter().all(|u| u.customer_id == user.customer_id));
}

/// Queries of every shape: ASCII and non-ASCII, short, negated, OR, `+`, wildcards, case.
const QUERIES: &[&str] = &[
    "müller",
    "MÜLLER+anna",
    "smith OR jens",
    "o'brien",
    "!smith+anna",
    "an",
    "cust0001",
    "*ller",
    "jürgen",
    "zoë+gro",
    "schä*er",
    "ivan*12",
    "nobody-at-all",
];

async fn answers(src: &SqlUserSource) -> Vec<(Vec<String>, bool)> {
    let mut out = Vec::new();
    for q in QUERIES {
        let page = src
            .search(&search(UserCriterion::Query(
                parse(q, Grammar::CustomerUser).unwrap(),
            )))
            .await
            .unwrap();
        out.push((
            page.items.into_iter().map(|u| u.login).collect(),
            page.truncated,
        ));
    }
    out
}

/// The index in a plan, and the statements that remove the index.
fn trigram_index(backend: Backend) -> (&'static str, &'static [&'static str]) {
    match backend {
        Backend::Sqlite => (
            "customer_user_search VIRTUAL TABLE",
            &[
                "DROP TRIGGER customer_user_search_ai",
                "DROP TABLE customer_user_search",
            ],
        ),
        _ => (
            "customer_user_trgm",
            &[
                "DROP TRIGGER customer_user_trgm_ai",
                "DROP TABLE customer_user_trgm",
            ],
        ),
    }
}

async fn trigram_index_narrows_searches_without_changing_answers(backend: Backend) {
    let Some((app, _db, _g)) = seeded(backend).await else {
        return;
    };
    let (in_plan, drop) = trigram_index(backend);
    let src = source(&app);
    let plan = plan_of(
        &src,
        UserCriterion::Query(parse("müller+anna", Grammar::CustomerUser).unwrap()),
    )
    .await;
    assert!(plan.contains(in_plan), "{plan}");
    let indexed = answers(&src).await;
    let found: Vec<usize> = indexed.iter().map(|(logins, _)| logins.len()).collect();
    assert!(found.iter().filter(|n| **n > 0).count() >= 10, "{found:?}");
    assert!(
        indexed.iter().any(|(_, truncated)| *truncated),
        "a broad term fills the page: {found:?}"
    );
    // Without the index (a source that finds none), the same statements scan the table.
    let db = user_db(&app);
    for stmt in drop {
        sqlx::query(stmt).execute(db.pool()).await.unwrap();
    }
    let scanning = source(&app);
    let plan = plan_of(
        &scanning,
        UserCriterion::Query(parse("müller+anna", Grammar::CustomerUser).unwrap()),
    )
    .await;
    assert!(!plan.contains(in_plan), "{plan}");
    assert_eq!(answers(&scanning).await, indexed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_trigram_index_narrows_searches_without_changing_answers() {
    trigram_index_narrows_searches_without_changing_answers(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_trigram_index_narrows_searches_without_changing_answers() {
    trigram_index_narrows_searches_without_changing_answers(Backend::MySql).await;
}

/// Rows written by anyone (here: plain SQL, as a co-located Znuny would) are found at once.
async fn trigram_index_follows_every_writer(backend: Backend) {
    let Some((app, _db, _g)) = seeded(backend).await else {
        return;
    };
    let src = source(&app);
    let db = user_db(&app);
    let pool = db.pool();
    let find = |q: &'static str| {
        let src = &src;
        async move {
            src.search(&search(UserCriterion::Query(
                parse(q, Grammar::CustomerUser).unwrap(),
            )))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|u| u.login)
            .collect::<Vec<_>>()
        }
    };
    sqlx::query("INSERT INTO customer_user (login, email, customer_id, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ('xav', 'x@example.com', 'c1', 'Xaverius', 'Quast', 1, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP, 1)")
        .execute(pool)
        .await
        .unwrap();
    let plan = plan_of(
        &src,
        UserCriterion::Query(parse("xaveri", Grammar::CustomerUser).unwrap()),
    )
    .await;
    assert!(plan.contains(trigram_index(backend).0), "{plan}");
    assert_eq!(find("xaveri").await, ["xav"]);
    sqlx::query("UPDATE customer_user SET first_name = 'Quirinus' WHERE login = 'xav'")
        .execute(pool)
        .await
        .unwrap();
    assert!(find("xaveri").await.is_empty());
    assert_eq!(find("quirinus+quast").await, ["xav"]);
    sqlx::query("DELETE FROM customer_user WHERE login = 'xav'")
        .execute(pool)
        .await
        .unwrap();
    assert!(find("quirinus").await.is_empty());
    if backend == Backend::Sqlite {
        // rank = 1: compare the index with the table's content, not only with itself.
        sqlx::query(
            "INSERT INTO customer_user_search(customer_user_search, rank) VALUES ('integrity-check', 1)",
        )
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("FTS5 integrity check: {e}"));
    } else {
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM customer_user_trgm WHERE row_id <> 0 AND row_id NOT IN (SELECT id FROM customer_user)",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(left, 0, "trigrams of deleted rows are removed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_trigram_index_follows_every_writer() {
    trigram_index_follows_every_writer(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_trigram_index_follows_every_writer() {
    trigram_index_follows_every_writer(Backend::MySql).await;
}

fn run_clientele(config: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clientele"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The definition SQLite keeps of the trigram index ("" without one).
async fn search_sql(c: &mut sqlx::AnyConnection) -> String {
    let sql: Option<String> =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'customer_user_search'")
            .fetch_optional(c)
            .await
            .unwrap();
    sql.unwrap_or_default()
}

/// Rows of the trigram index matching an FTS5 query.
async fn matches(c: &mut sqlx::AnyConnection, q: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM customer_user_search WHERE customer_user_search MATCH ?",
    )
    .bind(q)
    .fetch_one(c)
    .await
    .unwrap()
}

/// On a SQLite database Clientele does not own, `add-indexes` builds the trigram index from
/// the rows already there, is a no-op when repeated, and rebuilds after the search fields change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_add_indexes_builds_and_rebuilds_the_trigram_index() {
    use sqlx::Connection;
    let db = fresh_db(Backend::Sqlite).await.unwrap();
    let mut c = sqlx::AnyConnection::connect(&format!("{}?mode=rwc", db.url))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE customer_user (id INTEGER PRIMARY KEY, login VARCHAR(200) NOT NULL, email VARCHAR(150) NOT NULL, customer_id VARCHAR(150) NOT NULL, pw VARCHAR(128), title VARCHAR(50), first_name VARCHAR(100) NOT NULL, last_name VARCHAR(100) NOT NULL, phone VARCHAR(150), fax VARCHAR(150), mobile VARCHAR(150), street VARCHAR(150), zip VARCHAR(200), city VARCHAR(200), country VARCHAR(200), comments VARCHAR(250), valid_id SMALLINT NOT NULL, create_time DATETIME NOT NULL, create_by INTEGER NOT NULL, change_time DATETIME NOT NULL, change_by INTEGER NOT NULL)")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO customer_user (login, email, customer_id, first_name, last_name, city, valid_id, create_time, create_by, change_time, change_by) VALUES ('mm', 'mm@example.com', 'c1', 'Mareike', 'Maurer', 'Zwickau', 1, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP, 1)")
        .execute(&mut c)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let write_config = |fields: &str| {
        std::fs::write(
            &config,
            format!(
                "customer_sources = []\n[groups]\nmigrate = false\nurl = \"sqlite://{}\"\n{}",
                dir.path().join("g.db").display(),
                user_source(
                    "znuny",
                    &db.url,
                    "customer_user",
                    &format!("migrate = false\nsearch_fields = {fields}")
                )
            ),
        )
        .unwrap();
    };
    write_config("[\"login\", \"first_name\", \"last_name\"]");
    run_clientele(&config, &["add-indexes"]);
    assert!(search_sql(&mut c)
        .await
        .contains("fts5(login, first_name, last_name,"));
    assert_eq!(
        matches(&mut c, "\"mareik\"").await,
        1,
        "built from existing rows"
    );
    assert_eq!(matches(&mut c, "\"zwick\"").await, 0);
    run_clientele(&config, &["add-indexes"]);
    assert_eq!(
        matches(&mut c, "\"mareik\"").await,
        1,
        "repeating is harmless"
    );
    write_config("[\"login\", \"city\"]");
    run_clientele(&config, &["add-indexes"]);
    assert!(search_sql(&mut c).await.contains("fts5(login, city,"));
    assert_eq!(
        matches(&mut c, "\"zwick\"").await,
        1,
        "rebuilt for the new fields"
    );
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'customer_user_search%' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(tables, ["customer_user"], "add-indexes adds the index only");
}

/// Creates a Znuny-like `customer_user` table with `ddl` in `db`, runs `clientele add-indexes`
/// twice (it must be repeatable) on a configuration that does not own it, and returns a
/// connection for checking what changed.
async fn znuny_table_with_indexes_added(db: &common::TestDb, ddl: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    let mut c = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(ddl).execute(&mut c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "customer_sources = []\n[groups]\nmigrate = false\n{}",
            user_source("znuny", &db.url, "customer_user", "migrate = false")
        ),
    )
    .unwrap();
    run_clientele(&config, &["add-indexes"]);
    run_clientele(&config, &["add-indexes"]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_indexes_touches_nothing_else_on_a_foreign_database() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let mut c = znuny_table_with_indexes_added(&db, "CREATE TABLE customer_user (id serial, login VARCHAR(200) NOT NULL, email VARCHAR(150) NOT NULL, customer_id VARCHAR(150) NOT NULL, pw VARCHAR(128), title VARCHAR(50), first_name VARCHAR(100) NOT NULL, last_name VARCHAR(100) NOT NULL, phone VARCHAR(150), fax VARCHAR(150), mobile VARCHAR(150), street VARCHAR(150), zip VARCHAR(200), city VARCHAR(200), country VARCHAR(200), comments VARCHAR(250), valid_id SMALLINT NOT NULL, create_time timestamp(0) NOT NULL, create_by INTEGER NOT NULL, change_time timestamp(0) NOT NULL, change_by INTEGER NOT NULL)").await;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'customer_user' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for want in [
        "customer_user_login_lower",
        "customer_user_email_lower",
        "customer_user_first_name_trgm",
    ] {
        assert!(
            indexes.contains(&want.to_owned()),
            "{want} missing in {indexes:?}"
        );
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(tables, ["customer_user"], "add-indexes adds indexes only");
}

/// On a MariaDB database Clientele does not own (a Znuny table in Znuny's `utf8` = utf8mb3,
/// without OTRS's indexes), `add-indexes` creates the missing column indexes, skips columns
/// that have one, and is repeatable; the table then serves lookups and searches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_add_indexes_creates_missing_column_indexes_only() {
    let Some(db) = fresh_db(Backend::MySql).await else {
        return;
    };
    let mut c = znuny_table_with_indexes_added(&db, "CREATE TABLE customer_user (id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, login VARCHAR(200) NOT NULL, email VARCHAR(150) NOT NULL, customer_id VARCHAR(150) NOT NULL, pw VARCHAR(128), title VARCHAR(50), first_name VARCHAR(100) NOT NULL, last_name VARCHAR(100) NOT NULL, phone VARCHAR(150), fax VARCHAR(150), mobile VARCHAR(150), street VARCHAR(150), zip VARCHAR(200), city VARCHAR(200), country VARCHAR(200), comments VARCHAR(250), valid_id SMALLINT NOT NULL, create_time DATETIME NOT NULL, create_by INTEGER NOT NULL, change_time DATETIME NOT NULL, change_by INTEGER NOT NULL, UNIQUE INDEX customer_user_login (login)) DEFAULT CHARSET=utf8").await;
    let mut indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(index_name AS CHAR), CAST(column_name AS CHAR) FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = 'customer_user'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            ("PRIMARY".to_owned(), "id".to_owned()),
            (
                "customer_user_change_time".to_owned(),
                "change_time".to_owned()
            ),
            (
                "customer_user_customer_id_ci".to_owned(),
                "customer_id".to_owned()
            ),
            ("customer_user_email_ci".to_owned(), "email".to_owned()),
            ("customer_user_login".to_owned(), "login".to_owned()),
        ]
    );
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    tables.sort();
    assert_eq!(
        tables,
        ["customer_user", "customer_user_trgm"],
        "add-indexes adds indexes (and the trigram index's table) only"
    );
    sqlx::query("INSERT INTO customer_user (login, email, customer_id, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ('jürgen', 'j@example.com', 'c1', 'Jürgen', 'Groß', 1, NOW(), 1, NOW(), 1), ('anna', 'a@example.com', 'c1', 'Anna', 'Groß', 1, NOW(), 1, NOW(), 1)")
        .execute(&mut c)
        .await
        .unwrap();
    let groups = tempfile::tempdir().unwrap();
    let app = app_on(&db, &groups, "migrate = false");
    let src = source(&app);
    assert_eq!(src.get("JÜRGEN").await.unwrap().unwrap().login, "jürgen");
    let page = src
        .search(&search(UserCriterion::Query(
            parse("groß", Grammar::CustomerUser).unwrap(),
        )))
        .await
        .unwrap();
    let logins: Vec<&str> = page.items.iter().map(|u| u.login.as_str()).collect();
    assert_eq!(logins, ["anna", "jürgen"]);
}

/// A table without a validity column (unmapped) reads as all valid — also through
/// PostgreSQL's native driver, which decodes only BIGINT as a 64-bit integer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_a_table_whose_validity_is_unmapped() {
    let Some((_app, db, groups)) = seeded(Backend::Postgres).await else {
        return;
    };
    let app = app_on(
        &db,
        &groups,
        "migrate = false\nread_only = true\n[customer_user_sources.map]\nvalidity = \"\"",
    );
    let src = source(&app);
    let user = clientele::seed::customer_users(3000, 30, 7).swap_remove(7);
    assert_eq!(user.validity, clientele::domain::Validity::Invalid);
    let got = src.get(&user.login).await.unwrap().unwrap();
    assert_eq!(got.login, user.login);
    assert_eq!(
        got.validity,
        clientele::domain::Validity::Valid,
        "no column: valid"
    );
    let page = src
        .search(&search(UserCriterion::Query(
            parse(&user.login, Grammar::CustomerUser).unwrap(),
        )))
        .await
        .unwrap();
    assert_eq!(
        page.items.len(),
        1,
        "invalid in the table, but nobody reads that"
    );
}

/// The trigram condition only narrows: over values and patterns with the characters whose
/// case folding differs between Rust and SQLite (`İ`, `K`, `ß`/`ẞ`, `ς`/`Σ`, combining
/// marks), every row the grammar matches is among the rows the MATCH finds.
async fn trigram_condition_never_drops_a_match(backend: Backend) {
    use clientele::source::sql::{
        Db, DbSpec, Dialect, IndexDdl, MariaDbTrigrams, SearchIndex, Sql, SqliteSearch,
    };
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let spec = DbSpec {
        pool_size: 1,
        connect_timeout: std::time::Duration::from_secs(5),
        ..DbSpec::default()
    };
    let sqlite = Db::open(&db.url, &spec).unwrap();
    let pool = sqlite.pool();
    let (index, ddl, dialect) = match backend {
        Backend::Sqlite => {
            let s = SqliteSearch::new("t", &["a", "b"]).unwrap();
            (
                SearchIndex::Sqlite(s.clone()),
                IndexDdl::SqliteSearch(s),
                Dialect::Sqlite,
            )
        }
        _ => {
            let m = MariaDbTrigrams::new("t", &["a", "b"]).unwrap();
            (
                SearchIndex::MariaDb(m.clone()),
                IndexDdl::MariaDbTrigrams(m),
                Dialect::MySql,
            )
        }
    };
    let create = match backend {
        Backend::Sqlite => "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT)",
        _ => "CREATE TABLE t (id INTEGER PRIMARY KEY, a VARCHAR(200), b VARCHAR(200)) DEFAULT CHARSET=utf8mb4",
    };
    sqlx::query(create).execute(pool).await.unwrap();
    sqlite.apply_indexes(&[ddl]).await.unwrap();
    assert!(index.is_current(pool).await.unwrap(), "index built");
    const PARTS: &[&str] = &[
        "a", "b", "k", "i", "İ", "i\u{307}", "\u{212A}", "K", "ß", "ẞ", "ss", "ü", "Ü", "ς", "Σ",
        "σ", "kad", "ir", "mül", "LER", "x y", "o'n", "-",
    ];
    let mut rng = StdRng::seed_from_u64(11);
    let word = |rng: &mut StdRng| -> String {
        (0..rng.gen_range(1..7))
            .map(|_| PARTS[rng.gen_range(0..PARTS.len())])
            .collect()
    };
    let mut rows = Vec::new();
    for id in 1..=400_i64 {
        let (a, b) = (word(&mut rng), word(&mut rng));
        sqlx::query("INSERT INTO t (id, a, b) VALUES (?, ?, ?)")
            .bind(id)
            .bind(&a)
            .bind(&b)
            .execute(pool)
            .await
            .unwrap();
        rows.push((id, a, b));
    }
    let (star, none) = (Pattern::wildcards("*"), Pattern::default());
    let mut checked = 0;
    for round in 0..600 {
        // A pattern cut from a stored value, re-cased, sometimes with a wildcard inside.
        let (_, a, b) = &rows[rng.gen_range(0..rows.len())];
        let source: Vec<char> = if round % 2 == 0 { a } else { b }.chars().collect();
        let from = rng.gen_range(0..source.len());
        let to = rng.gen_range(from + 1..=source.len());
        let mut term: String = source[from..to]
            .iter()
            .map(|c| match rng.gen_range(0..3) {
                0 => c.to_uppercase().collect::<String>(),
                1 => c.to_lowercase().collect(),
                _ => c.to_string(),
            })
            .collect();
        if rng.gen_bool(0.2) {
            let at = term
                .char_indices()
                .map(|(i, _)| i)
                .nth(term.chars().count() / 2);
            term.insert(at.unwrap_or(0), '*');
        }
        let Ok(expr) = parse(&term, Grammar::CustomerUser) else {
            continue;
        };
        for affix in [&star, &none] {
            let mut sql = Sql::new(dialect);
            sql.push("SELECT CAST(id AS SIGNED) FROM t WHERE 1=1");
            index.push_condition(&mut sql, &expr, affix, affix);
            let found: Vec<i64> = sql
                .query()
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{term:?}: {e}"))
                .iter()
                .map(|r| sqlx::Row::get::<i64, _>(r, 0))
                .collect();
            let m = term.clone();
            for (id, a, b) in &rows {
                if expr.matches(&[a, b], affix, affix, false) {
                    assert!(
                        found.contains(id),
                        "{term:?} (MATCH {m}) matches row {id} ({a:?}, {b:?}) but the index drops it"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 500, "too few matches checked: {checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_trigram_condition_never_drops_a_match() {
    trigram_condition_never_drops_a_match(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_trigram_condition_never_drops_a_match() {
    trigram_condition_never_drops_a_match(Backend::MySql).await;
}
