//! Databases: one lazily connecting pool per URL ([`Db`], [`DbRegistry`]), migrated on first
//! use, guarded by the circuit breaker of that database (`source::breaker`; every operation
//! passes [`Db::ready`], which refuses at once while it is open), the write locks that serialise
//! check-then-write sequences across replicas, and the redaction of URLs for messages.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use async_trait::async_trait;

use sqlx::{any::AnyPoolOptions, Any, AnyPool};
use tokio::sync::OnceCell;

use super::ddl::{create_table_sql, own_tables_sql, split_statements};
use super::{source_error, text_at, Dialect, IndexDdl, Sql, Val};
use crate::source::breaker::{Breaker, Fuse, Snapshot, TRIAL_WAIT};
use crate::source::SourceError;

/// A customer-user or customer table of a source that Clientele owns (`migrate = true`), created
/// from `migrations/templates/` under the configured name after the migrations ran.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub kind: TableKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    CustomerUser,
    CustomerCompany,
    /// The groups table (configurable name) with `group_customer_user` and `group_customer`.
    Groups,
}

/// One database: a lazily connecting pool shared by every source configured on the same URL,
/// migrated once, on first use (so an unreachable database at start-up only delays readiness).
pub struct Db {
    pub(super) pool: AnyPool,
    /// On PostgreSQL, a small pool of the native driver for the hot read path.
    pub(super) pg: Option<sqlx::PgPool>,
    pub(super) dialect: Dialect,
    pub(super) migrate: bool,
    pub(super) tables: Vec<SourceTable>,
    /// Write-lock rows to seed (one per written table).
    pub(super) lock_names: Vec<String>,
    pub(super) indexes: Vec<IndexDdl>,
    pub(super) ready: OnceCell<()>,
    /// MySQL/MariaDB: per table, the columns with a case-insensitive collation (read once the
    /// database is ready).
    pub(super) case_insensitive: OnceLock<HashMap<String, Arc<HashSet<String>>>>,
    pub(super) label: String,
    /// The full URL, for diagnostics only; never logged (see `label`).
    pub(super) url: String,
    pub(super) connect_timeout: Duration,
    /// Open while the database cannot be reached (shared by every source on this URL).
    breaker: Arc<Breaker>,
    /// `clock.monotonic()` in ms + 1 of the last direct connection that worked (0: never).
    verified_at: AtomicU64,
    clock: Arc<dyn crate::clock::Clock>,
}

/// How long a direct connection that worked spares an empty pool another one (the pool
/// connects meanwhile).
const VERIFIED_FOR: Duration = Duration::from_secs(1);

static MIGRATOR_PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static MIGRATOR_MYSQL: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");
static MIGRATOR_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// What one database must provide, gathered from every source configured on it.
#[derive(Debug, Default, Clone)]
pub struct DbSpec {
    pub migrate: bool,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    pub tables: Vec<SourceTable>,
    pub lock_names: Vec<String>,
    /// Index DDL of owned tables, run after the tables exist.
    pub indexes: Vec<IndexDdl>,
}

impl Db {
    /// A pool for `url` that connects lazily; fails only on a malformed URL. Its breaker
    /// reads the system clock.
    pub fn open(url: &str, spec: &DbSpec) -> Result<Arc<Self>, String> {
        let clock = crate::clock::system();
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of_url(url)
            .ok_or_else(|| format!("unsupported URL scheme in {}", redact(url)))?;
        let url = match dialect {
            Dialect::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(spec.pool_size.max(1))
            .min_connections(0)
            .acquire_timeout(spec.connect_timeout)
            // No ping before each use (a round trip per query): a broken connection fails its
            // query, is dropped, and the next acquire opens a fresh one.
            .test_before_acquire(false)
            .idle_timeout(Some(Duration::from_secs(300)));
        if dialect == Dialect::Postgres {
            // Planner costs for SSD storage, so the trigram and expression indexes are chosen
            // over (parallel) sequential scans; session-scoped, the server's defaults stay.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("SET random_page_cost = 1.1")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        if dialect == Dialect::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect_lazy(&url)
            .map_err(|e| format!("{}: {e}", redact(&url)))?;
        let pg = match dialect {
            Dialect::Postgres => {
                let opts: sqlx::postgres::PgConnectOptions =
                    url.parse().map_err(|e| format!("{}: {e}", redact(&url)))?;
                Some(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(spec.pool_size.max(1))
                        .min_connections(0)
                        .acquire_timeout(spec.connect_timeout)
                        .idle_timeout(Some(Duration::from_secs(300)))
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                sqlx::query("SET random_page_cost = 1.1")
                                    .execute(&mut *conn)
                                    .await?;
                                Ok(())
                            })
                        })
                        .connect_lazy_with(opts),
                )
            }
            _ => None,
        };
        Ok(Arc::new(Self {
            pool,
            pg,
            dialect,
            migrate: spec.migrate,
            tables: spec.tables.clone(),
            lock_names: spec.lock_names.clone(),
            indexes: spec.indexes.clone(),
            ready: OnceCell::new(),
            case_insensitive: OnceLock::new(),
            label: redact(&url),
            url: url.clone(),
            connect_timeout: spec.connect_timeout,
            breaker: Breaker::new(format!("database {}", redact(&url)), clock.clone()),
            verified_at: AtomicU64::new(0),
            clock,
        }))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// PostgreSQL's native pool, on PostgreSQL.
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        self.pg.as_ref()
    }

    /// The URL without its password, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The breaker of this database.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// Every operation calls this first. While the breaker is open: a trial is started (at
    /// most one at a time, spaced by `breaker::TRIAL_GAP`) and awaited up to
    /// `breaker::TRIAL_WAIT`; unless it reached the database, `Unavailable` (saying since when
    /// and why). While no connection is open, one direct connection within
    /// `connect_timeout` proves the server answers (a refused connection opens the breaker at
    /// once instead of the pool retrying until its acquire timeout). Then connects and, the
    /// first time it succeeds, migrates.
    pub async fn ready(&self) -> Result<(), SourceError> {
        Fuse::admit(self).await?;
        let open_connections = self.pool.size() + self.pg.as_ref().map_or(0, |p| p.size());
        if open_connections == 0 && !self.recently_verified() {
            if let Err(cause) = connect_once(&self.url, self.connect_timeout).await {
                self.breaker.record_failure(&cause);
                return Err(SourceError::Unavailable(format!(
                    "cannot connect to {}: {cause}",
                    self.label
                )));
            }
            self.verified_at.store(
                u64::try_from(self.clock.monotonic().as_millis())
                    .unwrap_or(u64::MAX - 1)
                    .saturating_add(1),
                Ordering::Relaxed,
            );
        }
        let r = self
            .ready
            .get_or_try_init(|| async { self.prepare().await })
            .await
            .map(|_| ());
        if let Err(SourceError::Unavailable(cause)) = &r {
            self.breaker.record_failure(cause);
        }
        r
    }

    fn recently_verified(&self) -> bool {
        match self.verified_at.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let now = u64::try_from(self.clock.monotonic().as_millis()).unwrap_or(u64::MAX);
                now.saturating_sub(at - 1) < VERIFIED_FOR.as_millis() as u64
            }
        }
    }

    /// Starts the background trial of an open breaker, when one may start now; its handle
    /// says whether it closed the breaker.
    fn start_trial(&self) -> Option<tokio::task::JoinHandle<bool>> {
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let trial = self.breaker.try_trial(false)?;
        let url = self.url.clone();
        let bound = self.connect_timeout;
        Some(rt.spawn(async move {
            match connect_once(&url, bound).await {
                Ok(()) => {
                    trial.succeeded();
                    true
                }
                Err(cause) => {
                    trial.failed(&cause);
                    false
                }
            }
        }))
    }

    async fn prepare(&self) -> Result<(), SourceError> {
        let pool = &self.pool;
        // Connect first, so an unreachable database reads as unavailable (with the real cause),
        // not as a failed migration.
        if let Err(e) = pool.acquire().await {
            return Err(match e {
                sqlx::Error::PoolTimedOut => SourceError::Unavailable(format!(
                    "cannot connect to {}: {}",
                    self.label,
                    self.connect_error().await
                )),
                other => source_error(other),
            });
        }
        // Clientele's own tables, in every database it uses (never an OTRS table).
        for stmt in split_statements(own_tables_sql(self.dialect)) {
            sqlx::query(&stmt).execute(pool).await.map_err(|e| {
                SourceError::Failed(format!(
                    "creating Clientele's tables in {}: {e}",
                    self.label
                ))
            })?;
        }
        if self.migrate {
            let migrator = match self.dialect {
                Dialect::Postgres => &MIGRATOR_PG,
                Dialect::MySql => &MIGRATOR_MYSQL,
                Dialect::Sqlite => &MIGRATOR_SQLITE,
            };
            migrator
                .run(pool)
                .await
                .map_err(|e| SourceError::Failed(format!("migrating {}: {e}", self.label)))?;
            for t in &self.tables {
                for stmt in create_table_sql(self.dialect, t) {
                    sqlx::query(&stmt).execute(pool).await.map_err(|e| {
                        SourceError::Failed(format!("creating table {}: {e}", t.name))
                    })?;
                }
            }
            self.apply_indexes(&self.indexes).await?;
        }
        if self.dialect == Dialect::MySql {
            self.read_collations().await?;
        }
        for name in &self.lock_names {
            Sql::insert_ignore(
                self.dialect,
                "clientele_write_lock",
                vec![("name", Val::Text(name.clone())), ("counter", Val::Int(0))],
            )
            .query()
            .execute(pool)
            .await
            .map_err(source_error)?;
        }
        Ok(())
    }

    /// Reads which columns compare case-insensitively by their collation (MySQL/MariaDB).
    async fn read_collations(&self) -> Result<(), SourceError> {
        let rows = sqlx::query(
            "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND RIGHT(collation_name, 3) = '_ci'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(source_error)?;
        let mut by_table: HashMap<String, HashSet<String>> = HashMap::new();
        for row in &rows {
            by_table
                .entry(text_at(row, 0)?)
                .or_default()
                .insert(text_at(row, 1)?.to_ascii_lowercase());
        }
        let _ = self.case_insensitive.set(
            by_table
                .into_iter()
                .map(|(t, cols)| (t, Arc::new(cols)))
                .collect(),
        );
        Ok(())
    }

    /// The columns of `table` whose collation is case-insensitive (MySQL/MariaDB; `None`
    /// elsewhere or before the database is ready), for [`Sql::with_case_insensitive`].
    pub fn case_insensitive_columns(&self, table: &str) -> Option<Arc<HashSet<String>>> {
        self.case_insensitive.get()?.get(table).cloned()
    }

    /// Why a direct connection fails (the pool only reports that it timed out).
    async fn connect_error(&self) -> String {
        match connect_once(&self.url, self.connect_timeout).await {
            Ok(()) => "the pool timed out, but a direct connection worked (pool exhausted?)".into(),
            Err(e) => e,
        }
    }

    /// Runs the migrations now (the `migrate` command).
    pub async fn migrate_now(&self) -> Result<(), SourceError> {
        self.ready().await
    }

    /// Begins a write transaction that first takes this database's write lock for each of
    /// `names` (a row of `clientele_write_lock` shared by every replica, locked by an UPDATE),
    /// so check-then-write sequences are serialised across replicas. A missing lock row (a
    /// table Clientele does not own, `migrate = false`, where none was seeded) is inserted on
    /// its own, outside any transaction, idempotently and race-free (`INSERT … ON CONFLICT DO
    /// NOTHING` / `INSERT IGNORE` / `INSERT OR IGNORE`), and the transaction begins again; a
    /// lock that still touches no row is an error, never an unserialised write.
    pub async fn begin_locked(
        &self,
        names: &[&str],
    ) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut inserted = false;
        loop {
            let mut tx = self.pool.begin().await?;
            let mut missing = None;
            for name in &sorted {
                if !self.take_lock(&mut tx, name).await? {
                    missing = Some(*name);
                    break;
                }
            }
            let Some(name) = missing else {
                return Ok(tx);
            };
            // Released before the insert: on MySQL/MariaDB the empty UPDATE holds a gap lock
            // that would deadlock concurrent inserts of the same row.
            tx.rollback().await?;
            if inserted {
                return Err(sqlx::Error::Protocol(format!(
                    "write lock {name:?} in {}: no row in clientele_write_lock after inserting \
                     it; refusing to write unserialised",
                    self.label
                )));
            }
            for name in &sorted {
                Sql::insert_ignore(
                    self.dialect,
                    "clientele_write_lock",
                    vec![
                        ("name", Val::Text((*name).to_owned())),
                        ("counter", Val::Int(0)),
                    ],
                )
                .query()
                .execute(&self.pool)
                .await?;
            }
            inserted = true;
        }
    }

    /// Locks the write-lock row `name` on `tx`; false when there is no such row.
    async fn take_lock(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        name: &str,
    ) -> Result<bool, sqlx::Error> {
        let mut sql = Sql::new(self.dialect);
        sql.push("UPDATE clientele_write_lock SET counter = counter + 1 WHERE name = ")
            .text(name);
        Ok(sql.query().execute(&mut **tx).await?.rows_affected() > 0)
    }
}

/// One direct connection to `url` (closed again) within `bound`: `Err` with the cause.
async fn connect_once(url: &str, bound: Duration) -> Result<(), String> {
    use sqlx::Connection;
    match tokio::time::timeout(bound, sqlx::AnyConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within connect_timeout ({} ms)",
            bound.as_millis()
        )),
    }
}

#[async_trait]
impl Fuse for Db {
    fn check(&self) -> Result<(), SourceError> {
        let r = self.breaker.check();
        if r.is_err() {
            self.start_trial();
        }
        r
    }

    async fn admit(&self) -> Result<(), SourceError> {
        if self.breaker.state().is_ok() {
            return Ok(());
        }
        if let Some(trial) = self.start_trial() {
            if let Ok(Ok(true)) = tokio::time::timeout(TRIAL_WAIT, trial).await {
                return Ok(());
            }
        }
        self.breaker.check()
    }

    fn record_failure(&self, cause: &str) {
        self.breaker.record_failure(cause);
    }

    async fn trial(&self) -> Result<(), SourceError> {
        match connect_once(&self.url, self.connect_timeout).await {
            Ok(()) => self.breaker.record_success(),
            Err(cause) => self.breaker.note_cause(&cause),
        }
        self.breaker.state()
    }

    fn snapshot(&self) -> Snapshot {
        self.breaker.snapshot()
    }

    fn ping_bound(&self) -> Option<Duration> {
        self.ready.get().map(|()| self.connect_timeout)
    }
}

/// Removes the password from a URL for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Opens one [`Db`] per distinct URL.
#[derive(Default)]
pub struct DbRegistry {
    specs: HashMap<String, DbSpec>,
    order: Vec<String>,
}

impl DbRegistry {
    /// Records what a source needs from the database at `url`.
    pub fn want(&mut self, url: &str, f: impl FnOnce(&mut DbSpec)) {
        if !self.specs.contains_key(url) {
            self.order.push(url.to_owned());
        }
        let spec = self.specs.entry(url.to_owned()).or_default();
        f(spec);
    }

    /// Opens every database.
    pub fn open(self) -> Result<HashMap<String, Arc<Db>>, String> {
        let mut out = HashMap::new();
        for url in self.order {
            let spec = &self.specs[&url];
            out.insert(url.clone(), Db::open(&url, spec)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
