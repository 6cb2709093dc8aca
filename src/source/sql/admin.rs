//! SQL administration: the `seed` command (fills a source with the data set of [`super::seed`])
//! and the `add-indexes` command (adds the lookup and search indexes to every SQL customer-user
//! table, also to tables Clientele does not own). `App::seed` and `App::add_indexes` call these.

use std::sync::Arc;

use super::{
    customer::SqlCustomerSource,
    user::{index_statements_for, SqlUserSource},
    Db,
};
use crate::config::{Settings, SourceKind};

/// Fills the SQL customer-user source `source` (and the first SQL customer source on the same
/// database, if any) with the deterministic data set of [`super::seed`]; every user gets
/// `password` (hashed once, with the configured argon2id parameters). Returns the summary line.
pub async fn seed(
    settings: &Settings,
    databases: &[(String, Arc<Db>)],
    source: &str,
    users: usize,
    customers: usize,
    password: &str,
    seed: u64,
) -> Result<String, String> {
    let cfg = settings
        .user_sources
        .iter()
        .find(|s| s.settings.name == source && s.kind() == SourceKind::Sql)
        .ok_or_else(|| format!("no SQL customer-user source is named {source:?}"))?;
    let db = databases
        .iter()
        .find(|(url, _)| url == &cfg.url)
        .map(|(_, db)| db.clone())
        .ok_or("source database not open")?;
    let started = std::time::Instant::now();
    let target = SqlUserSource::new(cfg.clone(), db.clone())?;
    let hash = crate::auth::hash_password(password.to_owned(), settings.auth.argon2)
        .await
        .map_err(|e| e.to_string())?;
    let mut made_customers = 0;
    if let Some(c) = settings
        .customer_sources
        .iter()
        .find(|c| c.kind() == SourceKind::Sql && c.url == cfg.url)
    {
        made_customers = SqlCustomerSource::new(c.clone(), db.clone(), Vec::new())?
            .bulk_insert(&super::seed::customers(customers, seed))
            .await
            .map_err(|e| e.to_string())?;
    }
    let made = target
        .bulk_insert(
            &super::seed::customer_users(users, customers, seed),
            Some(&hash),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "seeded {made} customer users and {made_customers} customers into {source:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    ))
}

/// Adds the search and lookup indexes to every SQL customer-user table, also to tables
/// Clientele does not own (`migrate = false`), and nothing else; one line per source.
pub async fn add_indexes(
    settings: &Settings,
    databases: &[(String, Arc<Db>)],
) -> Vec<(String, Result<(), String>)> {
    let mut out = Vec::new();
    for s in settings
        .user_sources
        .iter()
        .filter(|s| s.kind() == SourceKind::Sql)
    {
        let Some((_, db)) = databases.iter().find(|(url, _)| url == &s.url) else {
            continue;
        };
        let statements = index_statements_for(s, db.dialect());
        let r = db
            .apply_indexes(&statements)
            .await
            .map_err(|e| e.to_string());
        out.push((
            format!(
                "customer_user_sources {:?} ({} indexes)",
                s.settings.name,
                statements.len()
            ),
            r,
        ));
    }
    out
}
