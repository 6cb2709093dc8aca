//! SQL sources over PostgreSQL, MySQL/MariaDB and SQLite (sqlx `Any`), on OTRS's own tables.
//!
//! Principle: SQL narrows, Rust decides. Every lookup and search is rendered as a condition that
//! matches *at least* the wanted rows on every dialect (SQLite's `LOWER()` only folds ASCII,
//! MySQL's `_ci` collations also fold accents), and each row is then checked exactly in Rust with
//! the same Unicode rules everywhere. Values are always bound; identifiers come from the
//! validated configuration only.

pub mod columns;
pub mod customer;
pub mod groups;
pub mod search_index;
pub mod side;
pub mod table;
pub mod user;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, OnceLock},
    time::Duration,
};

use sqlx::{
    any::{AnyArguments, AnyPoolOptions, AnyRow},
    query::Query,
    Any, AnyPool, Row,
};
use tokio::sync::OnceCell;

use super::SourceError;
use crate::domain::query::{Expr, Pattern, Piece};
use crate::domain::Timestamp;
use crate::error::Error;
pub use search_index::{IndexDdl, MariaDbTrigrams, SearchIndex, SqliteSearch};

/// The SQL dialect of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    /// The dialect of a connection URL.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?;
        match scheme {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    /// Whether the dialect's `LOWER()` folds non-ASCII letters.
    fn unicode_lower(self) -> bool {
        !matches!(self, Self::Sqlite)
    }

    /// `ESCAPE` clause for LIKE patterns escaped with a backslash.
    fn like_escape(self) -> &'static str {
        match self {
            Self::MySql => " ESCAPE '\\\\'",
            _ => " ESCAPE '\\'",
        }
    }

    /// A text column read as text whatever its declared type.
    fn text(self, column: &str) -> String {
        match self {
            Self::MySql => format!("CAST({column} AS CHAR)"),
            _ => format!("CAST({column} AS TEXT)"),
        }
    }

    /// An integer column read as a 64-bit integer.
    fn int(self, column: &str) -> String {
        match self {
            Self::MySql => format!("CAST({column} AS SIGNED)"),
            Self::Postgres => format!("CAST({column} AS BIGINT)"),
            Self::Sqlite => format!("CAST({column} AS INTEGER)"),
        }
    }

    /// A timestamp column read as UTC epoch seconds.
    fn epoch(self, column: &str) -> String {
        match self {
            // date_part is float arithmetic; EXTRACT computes a numeric, several times slower.
            Self::Postgres => format!("CAST(date_part('epoch', {column}) AS BIGINT)"),
            Self::MySql => format!("CAST(UNIX_TIMESTAMP({column}) AS SIGNED)"),
            Self::Sqlite => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
        }
    }

    /// `ORDER BY` expression sorting by the case-folded value in code-point order.
    fn order_folded(self, column: &str) -> String {
        match self {
            Self::Postgres => format!("LOWER({column}) COLLATE \"C\""),
            // CONVERT first: a utf8mb3 column (Znuny's `utf8`) cannot take a utf8mb4 collation.
            Self::MySql => format!("CONVERT(LOWER({column}) USING utf8mb4) COLLATE utf8mb4_bin"),
            Self::Sqlite => format!("LOWER({column})"),
        }
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone)]
enum Arg {
    Text(String),
    Int(i64),
}

/// A value of an INSERT column.
#[derive(Debug, Clone)]
pub enum Val {
    Text(String),
    Int(i64),
    /// `CURRENT_TIMESTAMP`.
    Now,
}

/// OTRS's create/change columns of a new row: now, by agent 1 (admin), as OTRS's API users do.
pub fn audit_columns() -> [(&'static str, Val); 4] {
    [
        ("create_time", Val::Now),
        ("create_by", Val::Int(1)),
        ("change_time", Val::Now),
        ("change_by", Val::Int(1)),
    ]
}

/// A statement under construction: text with dialect placeholders, and its bound values.
#[derive(Debug, Clone)]
pub struct Sql {
    dialect: Dialect,
    text: String,
    args: Vec<Arg>,
    /// Columns (lower-cased names) whose collation compares case-insensitively by itself, so
    /// conditions use the bare column and its index (MySQL/MariaDB `_ci` collations).
    case_insensitive: Option<Arc<HashSet<String>>>,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::new(),
            args: Vec::new(),
            case_insensitive: None,
        }
    }

    /// Compares `columns` (lower-cased names) bare instead of through `LOWER()`: their
    /// collation is case-insensitive already, and a bare column can use its index.
    pub fn with_case_insensitive(mut self, columns: Option<Arc<HashSet<String>>>) -> Self {
        self.case_insensitive = columns;
        self
    }

    /// `column` for a case-insensitive comparison with a folded value: bare where its
    /// collation ignores case, else `LOWER(column)`.
    pub fn folded(&self, column: &str) -> String {
        match &self.case_insensitive {
            Some(set) if set.contains(&column.to_ascii_lowercase()) => column.to_owned(),
            _ => format!("LOWER({column})"),
        }
    }

    /// Appends SQL text (never a value).
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    fn placeholder(&mut self) {
        match self.dialect {
            Dialect::Postgres => {
                let n = self.args.len();
                self.text.push_str(&format!("${n}"));
            }
            _ => self.text.push('?'),
        }
    }

    /// Appends a placeholder bound to a text value.
    pub fn text(&mut self, v: impl Into<String>) -> &mut Self {
        self.args.push(Arg::Text(v.into()));
        self.placeholder();
        self
    }

    /// Appends `source = ? AND login = ?`, the key of Clientele's per-login rows.
    pub fn push_key(&mut self, source: &str, login: &str) -> &mut Self {
        self.push("source = ")
            .text(source)
            .push(" AND login = ")
            .text(login)
    }

    /// Appends a placeholder bound to an integer.
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.args.push(Arg::Int(v));
        self.placeholder();
        self
    }

    /// `INSERT INTO table (cols…) VALUES (…)` with every value bound.
    pub fn insert<'c>(
        dialect: Dialect,
        table: &str,
        values: impl IntoIterator<Item = (&'c str, Val)>,
    ) -> Self {
        let (cols, vals): (Vec<&str>, Vec<Val>) = values.into_iter().unzip();
        let mut sql = Self::new(dialect);
        sql.push("INSERT INTO ")
            .push(table)
            .push(" (")
            .push(&cols.join(", "))
            .push(") VALUES (");
        for (i, v) in vals.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            match v {
                Val::Text(t) => sql.text(t),
                Val::Int(n) => sql.int(n),
                Val::Now => sql.push("CURRENT_TIMESTAMP"),
            };
        }
        sql.push(")");
        sql
    }

    /// `INSERT INTO table (cols…) VALUES (…), (…), …` for many rows at once.
    pub fn insert_many(dialect: Dialect, table: &str, cols: &[&str], rows: Vec<Vec<Val>>) -> Self {
        let mut sql = Self::new(dialect);
        sql.push("INSERT INTO ")
            .push(table)
            .push(" (")
            .push(&cols.join(", "))
            .push(") VALUES ");
        for (r, row) in rows.into_iter().enumerate() {
            sql.push(if r == 0 { "(" } else { ", (" });
            for (i, v) in row.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                match v {
                    Val::Text(t) => sql.text(t),
                    Val::Int(n) => sql.int(n),
                    Val::Now => sql.push("CURRENT_TIMESTAMP"),
                };
            }
            sql.push(")");
        }
        sql
    }

    /// `DELETE FROM table WHERE a = ? AND b = ? …` with every value bound.
    pub fn delete<'c>(
        dialect: Dialect,
        table: &str,
        conditions: impl IntoIterator<Item = (&'c str, Val)>,
    ) -> Self {
        let mut sql = Self::new(dialect);
        sql.push("DELETE FROM ").push(table);
        for (i, (col, v)) in conditions.into_iter().enumerate() {
            sql.push(if i == 0 { " WHERE " } else { " AND " })
                .push(col)
                .push(" = ");
            match v {
                Val::Text(t) => sql.text(t),
                Val::Int(n) => sql.int(n),
                Val::Now => sql.push("CURRENT_TIMESTAMP"),
            };
        }
        sql
    }

    /// Like [`Sql::insert`], doing nothing when the row's key exists already.
    pub fn insert_ignore<'c>(
        dialect: Dialect,
        table: &str,
        values: impl IntoIterator<Item = (&'c str, Val)>,
    ) -> Self {
        let mut sql = Self::insert(dialect, table, values);
        match dialect {
            Dialect::Postgres => {
                sql.push(" ON CONFLICT DO NOTHING");
            }
            Dialect::MySql => sql.text = sql.text.replacen("INSERT INTO", "INSERT IGNORE INTO", 1),
            Dialect::Sqlite => {
                sql.text = sql.text.replacen("INSERT INTO", "INSERT OR IGNORE INTO", 1)
            }
        }
        sql
    }

    /// The same statement with `prefix` in front (e.g. `EXPLAIN `).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.text.insert_str(0, prefix);
        self
    }

    /// Appends `a, b, c` placeholders for a list of texts.
    pub fn text_list(&mut self, values: impl IntoIterator<Item = String>) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(v);
        }
        self
    }

    /// The statement for PostgreSQL's own driver (the hot read path).
    pub fn query_pg(&self) -> Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    /// The statement ready to run.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    /// Appends a condition that holds for every row whose `column` matches `pattern` (the whole
    /// value) case-insensitively; it may hold for more rows, which the caller filters exactly.
    pub fn matches(&mut self, column: &str, pattern: &Pattern) -> &mut Self {
        if pattern.is_match_all() {
            return self.push("1=1");
        }
        let ascii_only = pattern.pieces().iter().all(|p| match p {
            Piece::Text(t) => t.is_ascii(),
            Piece::Any => true,
        });
        let lower = self.folded(column);
        let folds_literal = ascii_only || self.dialect.unicode_lower();
        // SQLite folds ASCII only: every stored spelling of a literal, folded the way SQLite
        // folds, is one of a few case variants (`Ü`/`ü`; the Kelvin sign for `k`) — an IN list
        // its index serves.
        let variants = match (self.dialect, pattern.as_literal()) {
            (Dialect::Sqlite, Some(lit)) => sqlite_case_variants(lit),
            _ => None,
        };
        match (pattern.as_literal(), variants) {
            (_, Some(mut variants)) if variants.len() == 1 => {
                self.push(&lower).push(" = ").text(variants.remove(0))
            }
            (_, Some(variants)) => self
                .push(&lower)
                .push(" IN (")
                .text_list(variants)
                .push(")"),
            (Some(lit), None) if folds_literal => {
                self.push(&lower).push(" = ").text(crate::domain::fold(lit))
            }
            _ => {
                let like = self.like_pattern(pattern);
                let escape = self.dialect.like_escape();
                self.push(&lower).push(" LIKE ").text(like).push(escape)
            }
        }
    }

    /// A LIKE pattern for `pattern`, lower-cased; where the dialect cannot fold a non-ASCII
    /// character, that character becomes `_` (any one character).
    fn like_pattern(&self, pattern: &Pattern) -> String {
        let mut out = String::new();
        for piece in pattern.pieces() {
            match piece {
                Piece::Any => out.push('%'),
                Piece::Text(t) => {
                    let mut chars = t.chars().peekable();
                    while let Some(original) = chars.next() {
                        if !self.dialect.unicode_lower() {
                            // One character SQLite cannot fold matches any one character; one
                            // that folds to several (`İ`), or `i` + U+0307 (its folded form),
                            // matches either spelling.
                            let decomposed_i = original.eq_ignore_ascii_case(&'i')
                                && chars.peek() == Some(&'\u{0307}');
                            if decomposed_i || original.to_lowercase().count() > 1 {
                                if decomposed_i {
                                    chars.next();
                                }
                                out.push('%');
                                continue;
                            }
                            if !original.is_ascii() {
                                out.push('_');
                                continue;
                            }
                        }
                        for c in original.to_lowercase() {
                            if matches!(c, '%' | '_' | '\\') {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                    }
                }
            }
        }
        out
    }

    /// Appends a condition that holds for at least every row matching `expr` over `columns`
    /// (a positive term matches when any column does; a negated one when none does).
    pub fn expr(
        &mut self,
        expr: &Expr,
        columns: &[&str],
        prefix: &Pattern,
        suffix: &Pattern,
    ) -> &mut Self {
        match expr {
            Expr::And(items) | Expr::Or(items) => {
                let op = if matches!(expr, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.push("(");
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(op);
                    }
                    self.expr(e, columns, prefix, suffix);
                }
                self.push(")")
            }
            Expr::Term { pattern, negated } => {
                let full = pattern.with_affixes(prefix, suffix);
                // A negated condition must not drop a row the exact check keeps: only where
                // the database compares exactly as the grammar does. Not on MySQL/MariaDB,
                // whose `_ci` collations are accent-blind and pad spaces (`!muller` would drop
                // "Müller"), nor on SQLite beyond ASCII.
                let exact_negation = match self.dialect {
                    Dialect::Postgres => true,
                    Dialect::MySql => false,
                    Dialect::Sqlite => full.pieces().iter().all(|p| match p {
                        Piece::Text(t) => t.is_ascii(),
                        Piece::Any => true,
                    }),
                };
                if *negated && !exact_negation {
                    // Cannot be narrowed safely in SQL; decided in Rust.
                    return self.push("1=1");
                }
                self.push(if *negated { "NOT (" } else { "(" });
                for (i, c) in columns.iter().enumerate() {
                    if i > 0 {
                        self.push(" OR ");
                    }
                    // A positive term on the bare column, so `LOWER(col)` indexes serve it; a
                    // negated one treats NULL as "" (NOT NULL would drop the row).
                    let col = if *negated {
                        format!("COALESCE({c}, '')")
                    } else {
                        (*c).to_owned()
                    };
                    self.matches(&col, &full);
                }
                self.push(")")
            }
        }
    }
}

/// The most variants [`sqlite_case_variants`] lists before a lookup falls back to `LIKE`.
const MAX_CASE_VARIANTS: usize = 32;

/// Every value SQLite's ASCII-only `LOWER()` can produce from a stored spelling that folds to
/// `literal` (Unicode lower-case, as the grammar folds): each character as itself or as any
/// non-ASCII character whose lower-case it is (`ü` or `Ü`; `k` or the Kelvin sign) — ASCII
/// capitals need no variant, SQLite folds them. `None` when there would be more than
/// [`MAX_CASE_VARIANTS`] or a character folds to several (`İ`); callers then fall back to `=`
/// on the folded literal (ASCII) or a superset `LIKE`.
fn sqlite_case_variants(literal: &str) -> Option<Vec<String>> {
    let folded = crate::domain::fold(literal);
    let mut variants = vec![String::new()];
    for c in folded.chars() {
        let mut spellings = vec![c];
        spellings.extend(upper_spellings(c)?.into_iter().filter(|u| !u.is_ascii()));
        if variants.len() * spellings.len() > MAX_CASE_VARIANTS {
            return None;
        }
        variants = variants
            .iter()
            .flat_map(|v| {
                spellings.iter().map(move |s| {
                    let mut v = v.clone();
                    v.push(*s);
                    v
                })
            })
            .collect();
    }
    Some(variants)
}

/// The characters other than `c` whose lower-case is exactly `c` (`Ü` for `ü`; `Ω` and the
/// ohm sign for `ω`); `None` when `c` is the second half of a multi-character lower-case
/// (U+0307 of `İ`), which no single stored character maps to alone.
fn upper_spellings(c: char) -> Option<Vec<char>> {
    use std::sync::LazyLock;
    static BY_LOWER: LazyLock<HashMap<char, Vec<char>>> = LazyLock::new(|| {
        let mut map: HashMap<char, Vec<char>> = HashMap::new();
        for x in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            let mut lower = x.to_lowercase();
            if let (Some(l), None) = (lower.next(), lower.next()) {
                if l != x {
                    map.entry(l).or_default().push(x);
                }
            }
        }
        map
    });
    if c == '\u{0307}' {
        return None;
    }
    Some(BY_LOWER.get(&c).cloned().unwrap_or_default())
}

/// Reads a text column that may be NULL.
pub(crate) fn text_at<R: DbRow>(row: &R, idx: usize) -> Result<String, SourceError> {
    row.text(idx)
        .map(Option::unwrap_or_default)
        .map_err(|e| SourceError::Failed(format!("column {idx}: {e}")))
}

/// Reads an integer column that may be NULL.
pub(crate) fn int_at<R: DbRow>(row: &R, idx: usize) -> Result<Option<i64>, SourceError> {
    row.int(idx)
        .map_err(|e| SourceError::Failed(format!("column {idx}: {e}")))
}

pub(crate) fn time_at<R: DbRow>(row: &R, idx: usize) -> Result<Option<Timestamp>, SourceError> {
    int_at(row, idx).map(|v| v.map(Timestamp))
}

/// A result row of either driver: the database-neutral one, or PostgreSQL's own (the hot read
/// path on PostgreSQL skips the conversion of every row into the neutral form).
pub trait DbRow {
    fn text(&self, idx: usize) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, idx: usize) -> Result<Option<i64>, sqlx::Error>;
}

impl DbRow for AnyRow {
    fn text(&self, idx: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(idx)
    }
    fn int(&self, idx: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(idx)
    }
}

impl DbRow for sqlx::postgres::PgRow {
    fn text(&self, idx: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(idx)
    }
    fn int(&self, idx: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(idx)
    }
}

/// Classifies a database error for reads.
pub(crate) fn source_error(e: sqlx::Error) -> SourceError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => SourceError::Unavailable(e.to_string()),
        other => SourceError::Failed(other.to_string()),
    }
}

/// Classifies a database error for writes: unique violations become `AlreadyExists`.
pub(crate) fn write_error(
    e: sqlx::Error,
    kind: &'static str,
    field: &'static str,
    key: &str,
    source: &str,
) -> Error {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return Error::AlreadyExists {
                kind,
                field,
                key: key.to_owned(),
                source_name: Some(source.to_owned()),
            };
        }
        // SQLite busy / MySQL deadlock / PostgreSQL serialization failure: a concurrent writer won.
        let code = db.code().map(|c| c.to_string()).unwrap_or_default();
        if matches!(code.as_str(), "5" | "517" | "1213" | "40001" | "40P01") {
            return Error::Aborted(format!("a concurrent change won, retry: {db}"));
        }
    }
    match source_error(e) {
        SourceError::Unavailable(m) => Error::Unavailable(format!("source {source:?}: {m}")),
        SourceError::Failed(m) => Error::Internal(format!("source {source:?}: {m}")),
    }
}

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
    pool: AnyPool,
    /// On PostgreSQL, a small pool of the native driver for the hot read path.
    pg: Option<sqlx::PgPool>,
    dialect: Dialect,
    migrate: bool,
    tables: Vec<SourceTable>,
    /// Write-lock rows to seed (one per written table).
    lock_names: Vec<String>,
    indexes: Vec<IndexDdl>,
    ready: OnceCell<()>,
    /// MySQL/MariaDB: per table, the columns with a case-insensitive collation (read once the
    /// database is ready).
    case_insensitive: OnceLock<HashMap<String, Arc<HashSet<String>>>>,
    label: String,
    /// The full URL, for diagnostics only; never logged (see `label`).
    url: String,
    connect_timeout: Duration,
}

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
    /// A pool for `url` that connects lazily; fails only on a malformed URL.
    pub fn open(url: &str, spec: &DbSpec) -> Result<Arc<Self>, String> {
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

    /// Connects and, the first time it succeeds, migrates. Every operation calls this first.
    pub async fn ready(&self) -> Result<(), SourceError> {
        self.ready
            .get_or_try_init(|| async { self.prepare().await })
            .await
            .map(|_| ())
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
        use sqlx::Connection;
        let attempt = sqlx::AnyConnection::connect(&self.url);
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                "the pool timed out, but a direct connection worked (pool exhausted?)".into()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.connect_timeout),
        }
    }

    /// Runs the migrations now (the `migrate` command).
    pub async fn migrate_now(&self) -> Result<(), SourceError> {
        self.ready().await
    }

    /// Begins a write transaction that first takes this database's write lock for `name` (a
    /// row lock shared by every replica), so check-then-write sequences are serialised.
    pub async fn begin_locked(
        &self,
        names: &[&str],
    ) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for name in sorted {
            let mut sql = Sql::new(self.dialect);
            sql.push("UPDATE clientele_write_lock SET counter = counter + 1 WHERE name = ")
                .text(name);
            sql.query().execute(&mut *tx).await?;
        }
        Ok(tx)
    }
}

/// `CREATE TABLE` statements for a customer-user or customer table with a non-default name,
/// with OTRS's columns and sizes (the default tables come from the migrations).
fn create_table_sql(dialect: Dialect, table: &SourceTable) -> Vec<String> {
    let template = match (dialect, table.kind) {
        (Dialect::Postgres, TableKind::CustomerUser) => {
            include_str!("../../../migrations/templates/postgres/customer_user.sql")
        }
        (Dialect::MySql, TableKind::CustomerUser) => {
            include_str!("../../../migrations/templates/mysql/customer_user.sql")
        }
        (Dialect::Sqlite, TableKind::CustomerUser) => {
            include_str!("../../../migrations/templates/sqlite/customer_user.sql")
        }
        (Dialect::Postgres, TableKind::CustomerCompany) => {
            include_str!("../../../migrations/templates/postgres/customer_company.sql")
        }
        (Dialect::MySql, TableKind::CustomerCompany) => {
            include_str!("../../../migrations/templates/mysql/customer_company.sql")
        }
        (Dialect::Sqlite, TableKind::CustomerCompany) => {
            include_str!("../../../migrations/templates/sqlite/customer_company.sql")
        }
        (Dialect::Postgres, TableKind::Groups) => {
            include_str!("../../../migrations/templates/postgres/groups.sql")
        }
        (Dialect::MySql, TableKind::Groups) => {
            include_str!("../../../migrations/templates/mysql/groups.sql")
        }
        (Dialect::Sqlite, TableKind::Groups) => {
            include_str!("../../../migrations/templates/sqlite/groups.sql")
        }
    };
    split_statements(&template.replace("{table}", &table.name))
}

/// The indexes that make lookups and the search grammar fast on `table`, by each engine's own
/// means (`eq_cols`: login, customer id and postmaster fields, compared for equality;
/// `substring_cols`: the search fields, matched with `%x%`):
///
/// - PostgreSQL: `LOWER(col)` B-trees and `pg_trgm` GIN indexes on `LOWER(col)`;
/// - SQLite: `LOWER(col)` B-trees and an FTS5 trigram index (see [`search_index`]);
/// - MySQL/MariaDB: B-trees on the bare columns, which their case-insensitive (`_ci`) collations
///   compare case-insensitively (the SQL compares bare columns where the collation is `_ci`,
///   see [`Db::case_insensitive_columns`]). MariaDB has no index that serves `%x%` (no trigram
///   or n-gram index, no expression indexes), so substring search scans there.
pub fn index_statements(
    dialect: Dialect,
    table: &str,
    eq_cols: &[&str],
    substring_cols: &[&str],
) -> Vec<IndexDdl> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in eq_cols.iter().filter(|c| seen.insert(**c)) {
        out.push(match dialect {
            Dialect::MySql => IndexDdl::MySqlIndex {
                table: table.to_owned(),
                name: format!("{table}_{c}_ci"),
                column: (*c).to_owned(),
            },
            Dialect::Postgres | Dialect::Sqlite => IndexDdl::Statement(format!(
                "CREATE INDEX IF NOT EXISTS {table}_{c}_lower ON {table} (LOWER({c}))"
            )),
        });
    }
    match dialect {
        Dialect::Postgres if !substring_cols.is_empty() => {
            out.push(IndexDdl::Statement(
                "CREATE EXTENSION IF NOT EXISTS pg_trgm".to_owned(),
            ));
            let mut seen = std::collections::BTreeSet::new();
            for c in substring_cols.iter().filter(|c| seen.insert(**c)) {
                out.push(IndexDdl::Statement(format!(
                    "CREATE INDEX IF NOT EXISTS {table}_{c}_trgm ON {table} USING gin (LOWER({c}) gin_trgm_ops)"
                )));
            }
        }
        Dialect::Sqlite => {
            out.extend(SqliteSearch::new(table, substring_cols).map(IndexDdl::SqliteSearch));
        }
        Dialect::MySql => {
            out.extend(MariaDbTrigrams::new(table, substring_cols).map(IndexDdl::MariaDbTrigrams));
        }
        Dialect::Postgres => {}
    }
    out
}

/// Clientele's own tables (`clientele_write_lock`, `clientele_login_state`).
fn own_tables_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            include_str!("../../../migrations/templates/postgres/clientele_own.sql")
        }
        Dialect::MySql => include_str!("../../../migrations/templates/mysql/clientele_own.sql"),
        Dialect::Sqlite => include_str!("../../../migrations/templates/sqlite/clientele_own.sql"),
    }
}

fn split_statements(script: &str) -> Vec<String> {
    script
        .split(';')
        .map(str::trim)
        .filter(|s| {
            s.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        })
        .map(str::to_owned)
        .collect()
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
    use crate::domain::query::{parse, Grammar};

    #[test]
    fn placeholders_follow_the_dialect() {
        let mut pg = Sql::new(Dialect::Postgres);
        pg.push("a = ").text("x").push(" AND b = ").int(1);
        assert_eq!(pg.text, "a = $1 AND b = $2");
        let mut my = Sql::new(Dialect::MySql);
        my.push("a = ").text("x").push(" AND b = ").int(1);
        assert_eq!(my.text, "a = ? AND b = ?");
    }

    #[test]
    fn like_escapes_sql_wildcards_and_lowercases() {
        let sql = Sql::new(Dialect::Postgres);
        assert_eq!(
            sql.like_pattern(&Pattern::wildcards("*50%_A\\b*")),
            "%50\\%\\_a\\\\b%"
        );
        let lite = Sql::new(Dialect::Sqlite);
        assert_eq!(lite.like_pattern(&Pattern::wildcards("Jü*")), "j_%");
        // `İ` folds to two characters; stored as `İ` or as `i` + U+0307 it is one or two.
        assert_eq!(lite.like_pattern(&Pattern::literal("İpek")), "%pek");
        assert_eq!(lite.like_pattern(&Pattern::literal("i\u{307}pek")), "%pek");
    }

    #[test]
    fn sqlite_looks_up_non_ascii_literals_by_their_case_variants() {
        let mut v = sqlite_case_variants("Jürgen.Müller5").unwrap();
        v.sort();
        assert_eq!(
            v,
            [
                "jÜrgen.mÜller5",
                "jÜrgen.müller5",
                "jürgen.mÜller5",
                "jürgen.müller5"
            ]
        );
        let omega = sqlite_case_variants("ω").unwrap();
        assert!(omega.contains(&"Ω".to_owned()) && omega.contains(&"\u{2126}".to_owned()));
        assert_eq!(
            sqlite_case_variants("İx"),
            None,
            "İ folds to two characters"
        );
        assert_eq!(
            sqlite_case_variants("äöüäöü"),
            None,
            "64 variants are too many"
        );
        let mut sql = Sql::new(Dialect::Sqlite);
        sql.matches("login", &Pattern::literal("Zoë"));
        assert_eq!(sql.text, "LOWER(login) IN (?, ?)");
        assert_eq!(
            sqlite_case_variants("Kim").unwrap(),
            ["kim", "\u{212A}im"],
            "the Kelvin sign folds to k in Rust, not in SQLite"
        );
        let mut sql = Sql::new(Dialect::Sqlite);
        sql.matches("login", &Pattern::literal("カス"));
        assert_eq!(sql.text, "LOWER(login) = ?", "no case, one spelling");
    }

    #[test]
    fn expressions_render_with_bound_values_only() {
        let expr = parse("john+!o'brien", Grammar::CustomerUser).unwrap();
        let mut sql = Sql::new(Dialect::Postgres);
        let star = Pattern::wildcards("*");
        sql.expr(&expr, &["login", "last_name"], &star, &star);
        assert!(!sql.text.contains("brien"), "{}", sql.text);
        assert_eq!(sql.args.len(), 4);
        assert!(sql.text.starts_with("(("), "{}", sql.text);
        assert!(sql.text.contains("NOT ("), "{}", sql.text);
    }

    #[test]
    fn unnarrowable_negation_is_left_to_rust_on_sqlite() {
        let expr = parse("!müller", Grammar::CustomerUser).unwrap();
        let mut sql = Sql::new(Dialect::Sqlite);
        let star = Pattern::wildcards("*");
        sql.expr(&expr, &["login"], &star, &star);
        assert_eq!(sql.text, "1=1");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
