//! Index DDL beyond one plain statement, applied idempotently by [`Db::apply_indexes`]: MySQL
//! B-tree indexes (MySQL, unlike MariaDB, has no `CREATE INDEX IF NOT EXISTS`) and the SQLite
//! substring-search index, an FTS5 table with the trigram tokenizer kept in step by triggers.
//!
//! # The SQLite search index
//!
//! `{table}_search` is an *external-content* FTS5 table over the source's search columns
//! (`content='{table}'`, so it stores the trigram index only, keyed by the table's rowid).
//! Triggers on `{table}` keep it current for every writer, Clientele or not. A search adds one
//! condition, `{table}.rowid IN (SELECT rowid FROM {table}_search WHERE {table}_search MATCH ?)`,
//! built by [`fts_match`]: a *necessary* condition (every row the grammar matches satisfies it;
//! some rows that satisfy it may not match), so the exact condition and the re-check in Rust
//! stay as they are and results do not change — only the rows SQLite has to look at do.
//!
//! The index is recreated (and rebuilt from the table) when its definition differs from what
//! the configuration asks for, e.g. after the search fields changed; a source only uses an
//! index whose definition is current ([`SqliteSearch::is_current`]).
//!
//! # The MariaDB trigram table
//!
//! MariaDB has no trigram index: a customer-user table gets a `{table}_trgm` table of its
//! own, filled here, and a search narrows its rows to those holding every distinct trigram of
//! the query's phrases. Those trigrams are collected in time linear in the query's length.

use sqlx::{AnyPool, Row};

use super::{source_error, Db, Dialect, Sql};
use crate::domain::query::{Expr, Pattern, Piece};
use crate::source::SourceError;

/// One piece of index DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexDdl {
    /// A statement that is idempotent by itself (`CREATE INDEX IF NOT EXISTS …`).
    Statement(String),
    /// A MySQL/MariaDB B-tree index `name` on `column`, created unless an index of `table`
    /// already starts with that column (OTRS's own schema has them for login, email and
    /// customer id).
    MySqlIndex {
        table: String,
        name: String,
        column: String,
    },
    /// The SQLite FTS5 trigram index of a customer-user table.
    SqliteSearch(SqliteSearch),
    /// The MariaDB trigram table of a customer-user table.
    MariaDbTrigrams(MariaDbTrigrams),
}

/// The substring-search index a source narrows its searches with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchIndex {
    Sqlite(SqliteSearch),
    MariaDb(MariaDbTrigrams),
}

impl SearchIndex {
    /// The index's table, for messages.
    pub fn name(&self) -> String {
        match self {
            Self::Sqlite(s) => s.fts_table(),
            Self::MariaDb(m) => m.trgm_table(),
        }
    }

    /// Whether the index exists exactly as this definition wants it.
    pub async fn is_current(&self, pool: &AnyPool) -> Result<bool, SourceError> {
        match self {
            Self::Sqlite(s) => s.is_current(pool).await,
            Self::MariaDb(m) => m.is_current(pool).await,
        }
    }

    /// Appends ` AND <condition>` holding for every row `expr` matches (see [`need`]); nothing
    /// when no narrowing exists.
    pub fn push_condition(&self, sql: &mut Sql, expr: &Expr, prefix: &Pattern, suffix: &Pattern) {
        match self {
            Self::Sqlite(index) => {
                if let Some(m) = fts_match(expr, prefix, suffix) {
                    let (t, fts) = (&index.table, index.fts_table());
                    sql.push(&format!(
                        " AND {t}.rowid IN (SELECT rowid FROM {fts} WHERE {fts} MATCH "
                    ))
                    .text(m)
                    .push(")");
                }
            }
            Self::MariaDb(index) => {
                if let Some(n) = need(expr, prefix, suffix) {
                    sql.push(" AND ");
                    index.push_need(sql, &n);
                }
            }
        }
    }
}

/// The SQLite FTS5 trigram index over `columns` of `table` (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSearch {
    pub table: String,
    pub columns: Vec<String>,
}

impl SqliteSearch {
    /// A search index over the distinct `columns` of `table`; `None` without columns.
    pub fn new(table: &str, columns: &[&str]) -> Option<Self> {
        let mut cols: Vec<String> = Vec::new();
        for c in columns {
            if !cols.iter().any(|k| k == c) {
                cols.push((*c).to_owned());
            }
        }
        (!cols.is_empty()).then(|| Self {
            table: table.to_owned(),
            columns: cols,
        })
    }

    /// The FTS5 table's name.
    pub fn fts_table(&self) -> String {
        format!("{}_search", self.table)
    }

    /// The `CREATE VIRTUAL TABLE` statement, exactly as SQLite keeps it in `sqlite_master`.
    fn create_sql(&self) -> String {
        format!(
            "CREATE VIRTUAL TABLE {} USING fts5({}, content='{}', tokenize='trigram')",
            self.fts_table(),
            self.columns.join(", "),
            self.table
        )
    }

    /// The three triggers that keep the index in step with the table, by name.
    fn triggers(&self) -> Vec<(String, String)> {
        let (t, fts) = (&self.table, self.fts_table());
        let cols = self.columns.join(", ");
        let values = |row: &str| {
            self.columns
                .iter()
                .map(|c| format!("{row}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let insert = format!(
            "INSERT INTO {fts}(rowid, {cols}) VALUES (new.rowid, {});",
            values("new")
        );
        let delete = format!(
            "INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.rowid, {});",
            values("old")
        );
        vec![
            (
                format!("{fts}_ai"),
                format!("CREATE TRIGGER {fts}_ai AFTER INSERT ON {t} BEGIN {insert} END"),
            ),
            (
                format!("{fts}_ad"),
                format!("CREATE TRIGGER {fts}_ad AFTER DELETE ON {t} BEGIN {delete} END"),
            ),
            (
                format!("{fts}_au"),
                format!("CREATE TRIGGER {fts}_au AFTER UPDATE ON {t} BEGIN {delete} {insert} END"),
            ),
        ]
    }

    /// Whether the index and its triggers exist exactly as this definition wants them.
    pub async fn is_current(&self, pool: &AnyPool) -> Result<bool, SourceError> {
        let mut wanted = vec![(self.fts_table(), self.create_sql())];
        wanted.extend(self.triggers());
        for (name, sql) in wanted {
            let stored: Option<String> =
                sqlx::query("SELECT sql FROM sqlite_master WHERE name = ?")
                    .bind(&name)
                    .fetch_optional(pool)
                    .await
                    .map_err(source_error)?
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(source_error)?;
            if stored.as_deref() != Some(sql.as_str()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the table's rowid is an `INTEGER PRIMARY KEY` (stable: the index is keyed by it).
    async fn has_integer_key(&self, pool: &AnyPool) -> Result<bool, SourceError> {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT UPPER(CAST(type AS TEXT)) FROM pragma_table_info(?) WHERE pk > 0",
        )
        .bind(&self.table)
        .fetch_all(pool)
        .await
        .map_err(source_error)?;
        Ok(keys == ["INTEGER"])
    }

    /// Creates the index, or recreates and rebuilds it when its definition changed, in one
    /// transaction; an index that is current is left alone.
    async fn ensure(&self, pool: &AnyPool) -> Result<(), SourceError> {
        if self.is_current(pool).await? {
            return Ok(());
        }
        if !self.has_integer_key(pool).await? {
            tracing::warn!(
                table = %self.table,
                "no INTEGER PRIMARY KEY: rowids may change (VACUUM), so no trigram search index \
                 is built and substring searches scan the table"
            );
            return Ok(());
        }
        let fts = self.fts_table();
        let mut tx = pool.begin().await.map_err(source_error)?;
        let mut statements: Vec<String> = self
            .triggers()
            .iter()
            .map(|(name, _)| format!("DROP TRIGGER IF EXISTS {name}"))
            .collect();
        statements.push(format!("DROP TABLE IF EXISTS {fts}"));
        statements.push(self.create_sql());
        statements.extend(self.triggers().into_iter().map(|(_, sql)| sql));
        statements.push(format!("INSERT INTO {fts}({fts}) VALUES ('rebuild')"));
        for stmt in &statements {
            sqlx::query(stmt)
                .execute(&mut *tx)
                .await
                .map_err(|e| SourceError::Failed(format!("{stmt}: {e}")))?;
        }
        tx.commit().await.map_err(source_error)
    }
}

/// The MariaDB substring-search index of a customer-user table: `{table}_trgm` holds every
/// distinct three-character window of the row's lower-cased search columns (joined with U+001F)
/// with the row's `id`, kept current by triggers for every writer, filled with MariaDB's
/// `seq_1_to_N` sequence tables (a row `('', 0)` marks a completed fill). A search term needs every trigram of its [`need`] phrases:
/// `id IN (SELECT row_id … WHERE trigram IN (…) GROUP BY row_id HAVING COUNT(*) = n)` — a
/// necessary condition, so answers do not change. MySQL (no sequence engine) and tables without
/// an integer `id` key get none and scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaDbTrigrams {
    pub table: String,
    pub columns: Vec<String>,
}

impl MariaDbTrigrams {
    /// The index over the distinct `columns` of `table`; `None` without columns.
    pub fn new(table: &str, columns: &[&str]) -> Option<Self> {
        SqliteSearch::new(table, columns).map(|s| Self {
            table: s.table,
            columns: s.columns,
        })
    }

    pub fn trgm_table(&self) -> String {
        format!("{}_trgm", self.table)
    }

    /// `INSERT IGNORE` of the trigrams of the rows `SELECT {id}, {doc}{from}` yields.
    /// The lower-cased search columns of `prefix` (`NEW.` or ``), joined with U+001F.
    fn doc(&self, prefix: &str) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{prefix}{c}"))
            .collect();
        format!(
            "LOWER(CONVERT(CONCAT_WS(CHAR(31), {}) USING utf8mb4))",
            cols.join(", ")
        )
    }

    /// `INSERT IGNORE` of the trigrams of one row (`row`: `NEW` in a trigger) or of the whole
    /// table, whose longest document has `longest` characters: a constant bound on the
    /// sequence lets MariaDB generate only the positions needed.
    fn fill(&self, row: Option<&str>, longest: i64) -> String {
        let source = match row {
            Some(r) => format!("SELECT {r}.id AS id, {} AS doc", self.doc(&format!("{r}."))),
            None => format!("SELECT id, {} AS doc FROM {}", self.doc(""), self.table),
        };
        format!(
            "INSERT IGNORE INTO {} (trigram, row_id) SELECT DISTINCT SUBSTRING(d.doc, s.seq, 3), d.id \
             FROM ({source}) d JOIN seq_1_to_{} s ON s.seq <= CHAR_LENGTH(d.doc) - 2",
            self.trgm_table(),
            longest.max(3)
        )
    }

    /// The triggers by name, with their bodies as MariaDB keeps them.
    fn triggers(&self) -> Vec<(String, String, String)> {
        let (t, trgm) = (&self.table, self.trgm_table());
        let delete = format!("DELETE FROM {trgm} WHERE row_id = OLD.id");
        // One row's document is at most this long (the longest VARCHAR sum, generously).
        let insert = self.fill(Some("NEW"), 65535);
        [
            ("ai", "AFTER INSERT", insert.clone()),
            ("ad", "AFTER DELETE", delete.clone()),
            (
                "au",
                "AFTER UPDATE",
                format!("BEGIN {delete}; {insert}; END"),
            ),
        ]
        .into_iter()
        .map(|(suffix, when, body)| {
            let name = format!("{trgm}_{suffix}");
            let create = format!("CREATE TRIGGER {name} {when} ON {t} FOR EACH ROW {body}");
            (name, create, body)
        })
        .collect()
    }

    /// Whether the trigram table and its triggers exist exactly as this definition wants them.
    pub async fn is_current(&self, pool: &AnyPool) -> Result<bool, SourceError> {
        let table: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
        )
        .bind(self.trgm_table())
        .fetch_optional(pool)
        .await
        .map_err(source_error)?;
        if table.is_none() {
            return Ok(false);
        }
        // Written last by `ensure`: an interrupted fill leaves the index not current.
        let complete: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM {} WHERE trigram = '' AND row_id = 0",
            self.trgm_table()
        ))
        .fetch_optional(pool)
        .await
        .map_err(source_error)?;
        if complete.is_none() {
            return Ok(false);
        }
        for (name, _, body) in self.triggers() {
            let stored: Option<String> = sqlx::query_scalar(
                // A bounded CHAR: information_schema's LONGTEXT arrives as a BLOB.
                "SELECT CAST(action_statement AS CHAR(8000)) FROM information_schema.triggers \
                 WHERE trigger_schema = DATABASE() AND trigger_name = ?",
            )
            .bind(&name)
            .fetch_optional(pool)
            .await
            .map_err(source_error)?;
            if stored.as_deref().map(str::trim) != Some(body.as_str()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether this server can keep the index: MariaDB's sequence tables, an integer `id` key.
    async fn supported(&self, pool: &AnyPool) -> Result<bool, SourceError> {
        if sqlx::query("SELECT seq FROM seq_1_to_1")
            .fetch_all(pool)
            .await
            .is_err()
        {
            tracing::warn!(table = %self.table, "no sequence engine (MySQL): no trigram search index, substring searches scan");
            return Ok(false);
        }
        let key: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? \
             AND column_name = 'id' AND column_key = 'PRI' AND data_type IN ('int', 'bigint', 'mediumint', 'smallint')",
        )
        .bind(&self.table)
        .fetch_optional(pool)
        .await
        .map_err(source_error)?;
        if key.is_none() {
            tracing::warn!(table = %self.table, "no integer `id` primary key: no trigram search index, substring searches scan");
        }
        Ok(key.is_some())
    }

    /// Creates the table and triggers, or recreates the triggers and refills the table when the
    /// definition changed; a current index is left alone.
    async fn ensure(&self, pool: &AnyPool) -> Result<(), SourceError> {
        if self.is_current(pool).await? || !self.supported(pool).await? {
            return Ok(());
        }
        let trgm = self.trgm_table();
        let mut statements: Vec<String> = self
            .triggers()
            .iter()
            .map(|(name, _, _)| format!("DROP TRIGGER IF EXISTS {name}"))
            .collect();
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {trgm} (trigram CHAR(3) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             row_id BIGINT NOT NULL, PRIMARY KEY (trigram, row_id), KEY {trgm}_row (row_id)) ENGINE=InnoDB"
        ));
        statements.push(format!("DELETE FROM {trgm}"));
        statements.extend(self.triggers().into_iter().map(|(_, create, _)| create));
        for stmt in &statements {
            sqlx::query(stmt)
                .execute(pool)
                .await
                .map_err(|e| SourceError::Failed(format!("{stmt}: {e}")))?;
        }
        let longest: i64 = sqlx::query_scalar(&format!(
            "SELECT CAST(COALESCE(MAX(CHAR_LENGTH({})), 0) AS SIGNED) FROM {}",
            self.doc(""),
            self.table
        ))
        .fetch_one(pool)
        .await
        .map_err(source_error)?;
        let fill = self.fill(None, longest);
        let complete = format!("INSERT INTO {trgm} (trigram, row_id) VALUES ('', 0)");
        for stmt in [fill, complete] {
            sqlx::query(&stmt)
                .execute(pool)
                .await
                .map_err(|e| SourceError::Failed(format!("{stmt}: {e}")))?;
        }
        Ok(())
    }

    /// Appends the condition of `need`.
    fn push_need(&self, sql: &mut Sql, need: &Need) {
        match need {
            Need::Phrases(phrases) => {
                let trigrams = distinct_trigrams(phrases);
                let n = trigrams.len();
                sql.push(&format!(
                    "{}.id IN (SELECT row_id FROM {} WHERE trigram IN (",
                    self.table,
                    self.trgm_table()
                ))
                .text_list(trigrams)
                .push(&format!(") GROUP BY row_id HAVING COUNT(*) = {n})"));
            }
            Need::And(items) | Need::Or(items) => {
                let op = if matches!(need, Need::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push("(");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        sql.push(op);
                    }
                    self.push_need(sql, item);
                }
                sql.push(")");
            }
        }
    }
}

impl Db {
    /// Applies index DDL in order; every step is idempotent, so this is repeatable.
    pub async fn apply_indexes(&self, steps: &[IndexDdl]) -> Result<(), SourceError> {
        let pool = self.pool();
        for step in steps {
            match step {
                IndexDdl::Statement(stmt) => {
                    sqlx::query(stmt)
                        .execute(pool)
                        .await
                        .map_err(|e| SourceError::Failed(format!("{stmt}: {e}")))?;
                }
                IndexDdl::MySqlIndex {
                    table,
                    name,
                    column,
                } => {
                    let exists = sqlx::query(
                        "SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() \
                         AND table_name = ? AND column_name = ? AND seq_in_index = 1",
                    )
                    .bind(table)
                    .bind(column)
                    .fetch_optional(pool)
                    .await
                    .map_err(source_error)?
                    .is_some();
                    if !exists {
                        let stmt = format!("CREATE INDEX {name} ON {table} ({column})");
                        sqlx::query(&stmt)
                            .execute(pool)
                            .await
                            .map_err(|e| SourceError::Failed(format!("{stmt}: {e}")))?;
                    }
                }
                IndexDdl::SqliteSearch(s) if self.dialect() == Dialect::Sqlite => {
                    s.ensure(pool).await?;
                }
                IndexDdl::MariaDbTrigrams(m) if self.dialect() == Dialect::MySql => {
                    m.ensure(pool).await?;
                }
                IndexDdl::SqliteSearch(_) | IndexDdl::MariaDbTrigrams(_) => {}
            }
        }
        Ok(())
    }
}

/// The shortest text FTS5's trigram tokenizer can find: three characters.
pub const TRIGRAM: usize = 3;

/// The distinct lower-cased trigrams (windows of [`TRIGRAM`] characters) of `phrases`, in the
/// order of their first occurrence. Linear in the phrases' total length (a set remembers the
/// trigrams seen), so a long query costs time in proportion to its length only.
pub fn distinct_trigrams(phrases: &[String]) -> Vec<String> {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut trigrams: Vec<String> = Vec::new();
    for p in phrases {
        let chars: Vec<char> = p.to_ascii_lowercase().chars().collect();
        for w in chars.windows(TRIGRAM) {
            let t: String = w.iter().collect();
            if seen.insert(t.clone()) {
                trigrams.push(t);
            }
        }
    }
    trigrams
}

/// What every row matching a search expression must contain: phrases (runs of at least three
/// ASCII characters, as typed), combined as the expression combines its terms. A negated term,
/// or one without such a run, needs nothing and drops out (an OR with such a branch needs
/// nothing as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Every one of these phrases (one term's runs).
    Phrases(Vec<String>),
    And(Vec<Need>),
    Or(Vec<Need>),
}

/// The [`Need`] of `expr` with every term wrapped in `prefix`/`suffix`; `None`: no narrowing.
///
/// A run is necessary for a match — whatever the grammar matches contains it, case-folded.
/// Non-ASCII characters split runs rather than being trusted to fold alike in Rust and in the
/// database.
pub fn need(expr: &Expr, prefix: &Pattern, suffix: &Pattern) -> Option<Need> {
    need_with(expr, prefix, suffix, &|text| {
        ascii_runs(text)
            .into_iter()
            .filter(|run| run.chars().count() >= TRIGRAM)
            .map(str::to_owned)
            .collect()
    })
}

/// [`need`] with the phrases `runs` takes from each literal text of a term (a text every match
/// contains, between wildcards): the in-memory index, whose postings are made by Rust's own
/// folding, takes whole folded texts of two characters or more.
pub fn need_with(
    expr: &Expr,
    prefix: &Pattern,
    suffix: &Pattern,
    runs: &dyn Fn(&str) -> Vec<String>,
) -> Option<Need> {
    let need = |e: &Expr, prefix: &Pattern, suffix: &Pattern| need_with(e, prefix, suffix, runs);
    match expr {
        Expr::Term {
            negated: true,
            pattern: _,
        } => None,
        Expr::Term {
            pattern,
            negated: false,
        } => {
            let full = pattern.with_affixes(prefix, suffix);
            let phrases: Vec<String> = full
                .pieces()
                .iter()
                .filter_map(|p| match p {
                    Piece::Text(t) => Some(t),
                    Piece::Any => None,
                })
                .flat_map(|t| runs(t))
                .collect();
            (!phrases.is_empty()).then_some(Need::Phrases(phrases))
        }
        Expr::And(items) => {
            let parts: Vec<Need> = items
                .iter()
                .filter_map(|e| need(e, prefix, suffix))
                .collect();
            match parts.len() {
                0 => None,
                1 => parts.into_iter().next(),
                _ => Some(Need::And(parts)),
            }
        }
        Expr::Or(items) => {
            let parts: Option<Vec<Need>> = items.iter().map(|e| need(e, prefix, suffix)).collect();
            parts.map(|p| {
                if p.len() == 1 {
                    p.into_iter().next().unwrap_or(Need::Or(Vec::new()))
                } else {
                    Need::Or(p)
                }
            })
        }
    }
}

/// An FTS5 `MATCH` expression that holds for every row matching `expr` (terms wrapped in
/// `prefix`/`suffix`) on any of the indexed columns, or `None` when no such narrowing exists:
/// the [`Need`] with every phrase quoted. FTS5's trigram tokenizer, case-insensitive, finds
/// exactly the rows that contain a phrase.
pub fn fts_match(expr: &Expr, prefix: &Pattern, suffix: &Pattern) -> Option<String> {
    fn render(need: &Need) -> String {
        match need {
            Need::Phrases(p) => group(
                p.iter()
                    .map(|run| format!("\"{}\"", run.replace('"', "\"\"")))
                    .collect(),
                " AND ",
            ),
            Need::And(items) => group(items.iter().map(render).collect(), " AND "),
            Need::Or(items) => group(items.iter().map(render).collect(), " OR "),
        }
    }
    need(expr, prefix, suffix).map(|n| render(&n))
}

/// The maximal runs of ASCII characters of `text`, each of which every matching value
/// contains. One exception is trimmed: `İ` folds to `i` + U+0307 in Rust but stays `İ` in
/// FTS5, so a stored `KADİR` matches `kadi*` while not containing `kadi` for FTS5 — a run's
/// last `i` is dropped where a value's `İ` could supply it (before the end of the text, i.e. a
/// wildcard or the pattern's end, or before a U+0307).
fn ascii_runs(text: &str) -> Vec<&str> {
    let mut runs = Vec::new();
    let mut start = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        if c.is_ascii() {
            start.get_or_insert(i);
        }
        let next = chars.get(k + 1).map(|&(_, n)| n);
        let run_ends = c.is_ascii() && next.is_none_or(|n| !n.is_ascii());
        if let (true, Some(s)) = (run_ends, start) {
            let mut run = &text[s..i + c.len_utf8()];
            if matches!(next, None | Some('\u{0307}')) {
                run = run.strip_suffix(['i', 'I']).unwrap_or(run);
            }
            runs.push(run);
            start = None;
        }
    }
    runs
}

fn group(parts: Vec<String>, op: &str) -> String {
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::query::{parse, Grammar};

    #[test]
    fn trigrams_are_distinct_in_first_occurrence_order() {
        let phrases = vec!["Abcab".to_owned(), "xbca".to_owned(), "ab".to_owned()];
        assert_eq!(
            distinct_trigrams(&phrases),
            ["abc", "bca", "cab", "xbc"].map(str::to_owned)
        );
        assert!(distinct_trigrams(&["ab".to_owned()]).is_empty());
    }

    #[test]
    fn trigrams_of_a_long_input_take_linear_time() {
        // 300,000 characters with ~250,000 distinct trigrams: quadratic de-duplication took
        // minutes here; linear takes well under a second even unoptimised.
        let alphabet: Vec<char> = ('a'..='z')
            .chain('0'..='9')
            .chain("!#%&()+,-./:;<=>?@".chars())
            .collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let long: String = (0..300_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[usize::try_from(state % alphabet.len() as u64).unwrap()]
            })
            .collect();
        let started = std::time::Instant::now();
        let trigrams = distinct_trigrams(&[long.clone(), long]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let unique: std::collections::HashSet<&String> = trigrams.iter().collect();
        assert_eq!(unique.len(), trigrams.len());
        assert!(trigrams.len() > 100_000, "{}", trigrams.len());
    }

    fn m(query: &str) -> Option<String> {
        let expr = parse(query, Grammar::CustomerUser).unwrap();
        fts_match(&expr, &Pattern::wildcards("*"), &Pattern::wildcards("*"))
    }

    #[test]
    fn terms_become_quoted_phrases_of_their_ascii_runs() {
        assert_eq!(m("smith").as_deref(), Some("\"smith\""));
        assert_eq!(m("müller").as_deref(), Some("\"ller\""));
        assert_eq!(m("jo*smith").as_deref(), Some("\"smith\""));
        assert_eq!(m("say \"hi\"").as_deref(), Some("\"say h\""));
        assert_eq!(m("a\"b\"c").as_deref(), Some("\"abc\""));
        assert_eq!(m("o'neil").as_deref(), Some("\"o'neil\""));
    }

    #[test]
    fn a_final_i_is_not_required_where_a_stored_dotted_capital_i_could_supply_it() {
        // `KADİR` folds to `kadi\u{307}r`: it matches `kadi*` and `*adi\u{307}r`.
        assert_eq!(m("kadi").as_deref(), Some("\"kad\""));
        assert_eq!(m("kadi\u{307}r").as_deref(), Some("\"kad\""));
        assert_eq!(m("kadir").as_deref(), Some("\"kadir\""));
        assert_eq!(m("smith").as_deref(), Some("\"smith\""));
    }

    #[test]
    fn short_or_negated_terms_do_not_narrow() {
        assert_eq!(m("an"), None);
        assert_eq!(m("!smith"), None);
        assert_eq!(m("müll"), None);
        assert_eq!(m("smith+an").as_deref(), Some("\"smith\""));
        assert_eq!(m("smith OR an"), None);
        assert_eq!(
            m("smith OR anna").as_deref(),
            Some("(\"smith\" OR \"anna\")")
        );
        assert_eq!(m("smith+anna").as_deref(), Some("(\"smith\" AND \"anna\")"));
    }

    #[test]
    fn quotes_in_phrases_are_doubled() {
        let expr = Expr::Term {
            pattern: Pattern::literal("a\"bc"),
            negated: false,
        };
        let none = Pattern::default();
        assert_eq!(
            fts_match(&expr, &none, &none).as_deref(),
            Some("\"a\"\"bc\"")
        );
    }
}
