//! The indexes that make search and the postmaster lookup fast, checked with the planner, and
//! the seed command that fills a source.

mod common;

use clientele::config::Config;
use clientele::domain::{
    query::{parse, Grammar, Pattern},
    search::{UserCriterion, UserSearch},
};
use clientele::source::sql::user::SqlUserSource;
use common::{fresh_db, user_source, Backend};

async fn seeded(
    backend: Backend,
) -> Option<(clientele::app::App, common::TestDb, tempfile::TempDir)> {
    let db = fresh_db(backend).await?;
    // One connection to the source's database, so a session setting applies to the EXPLAIN.
    let groups = tempfile::tempdir().unwrap();
    let config = format!(
        "[groups]\nurl = \"sqlite://{}\"\n",
        groups.path().join("g.db").display()
    ) + &user_source(
        "main",
        &db.url,
        "customer_user",
        "customer_company_support = false\npool_size = 1",
    );
    let settings = Config::from_toml(&config, Vec::new())
        .unwrap()
        .validate()
        .unwrap();
    let app = clientele::app::build(settings).unwrap();
    let msg = app.seed("main", 3000, 30, "Load-Test-1", 7).await.unwrap();
    assert!(
        msg.starts_with("seeded 3000 customer users and 30 customers"),
        "{msg}"
    );
    Some((app, db, groups))
}

fn source(app: &clientele::app::App) -> SqlUserSource {
    let cfg = app.settings.user_sources[0].clone();
    let db = app
        .databases
        .iter()
        .find(|(url, _)| *url == cfg.url)
        .unwrap()
        .1
        .clone();
    SqlUserSource::new(cfg, db)
}

fn search(criterion: UserCriterion) -> UserSearch {
    UserSearch {
        criterion,
        include_invalid: false,
        limit: 250,
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
        .execute(app.databases[0].1.pool())
        .await
        .unwrap();
    let plan = src
        .explain_search(&search(UserCriterion::Query(
            parse("müller+an", Grammar::CustomerUser).unwrap(),
        )))
        .await
        .unwrap();
    assert!(
        plan.contains("customer_user_last_name_trgm") && plan.contains("customer_user_login_trgm"),
        "{plan}"
    );
    let plan = src
        .explain_search(&search(UserCriterion::Email(
            "jürgen.müller1@cust1.example.com".into(),
        )))
        .await
        .unwrap();
    assert!(plan.contains("customer_user_email_lower"), "{plan}");
    let plan = src
        .explain_search(&search(UserCriterion::Login(Pattern::literal(
            "anna.smith12",
        ))))
        .await
        .unwrap();
    assert!(plan.contains("customer_user_login_lower"), "{plan}");
    let plan = src
        .explain_search(&search(UserCriterion::CustomerId(Pattern::literal(
            "cust0001",
        ))))
        .await
        .unwrap();
    assert!(plan.contains("customer_user_customer_id_lower"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_plans_use_lower_indexes() {
    let Some((app, _db, _g)) = seeded(Backend::Sqlite).await else {
        return;
    };
    let src = source(&app);
    let plan = src
        .explain_search(&search(UserCriterion::Email(
            "anna.smith1@cust1.example.com".into(),
        )))
        .await
        .unwrap();
    assert!(plan.contains("customer_user_email_lower"), "{plan}");
    let plan = src
        .explain_search(&search(UserCriterion::Login(Pattern::literal(
            "anna.smith12",
        ))))
        .await
        .unwrap();
    assert!(plan.contains("customer_user_login_lower"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_indexes_touches_nothing_else_on_a_foreign_database() {
    use sqlx::Connection;
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let mut c = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE customer_user (id serial, login VARCHAR(200) NOT NULL, email VARCHAR(150) NOT NULL, customer_id VARCHAR(150) NOT NULL, pw VARCHAR(128), title VARCHAR(50), first_name VARCHAR(100) NOT NULL, last_name VARCHAR(100) NOT NULL, phone VARCHAR(150), fax VARCHAR(150), mobile VARCHAR(150), street VARCHAR(150), zip VARCHAR(200), city VARCHAR(200), country VARCHAR(200), comments VARCHAR(250), valid_id SMALLINT NOT NULL, create_time timestamp(0) NOT NULL, create_by INTEGER NOT NULL, change_time timestamp(0) NOT NULL, change_by INTEGER NOT NULL)")
        .execute(&mut c)
        .await
        .unwrap();
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clientele"))
        .arg("--config")
        .arg(&config)
        .arg("add-indexes")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
