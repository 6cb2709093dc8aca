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

use sqlx::{AnyPool, Row};

use super::{source_error, Db, Dialect};
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
                IndexDdl::SqliteSearch(_) => {}
            }
        }
        Ok(())
    }
}

/// The shortest text FTS5's trigram tokenizer can find: three characters.
const TRIGRAM: usize = 3;

/// An FTS5 `MATCH` expression that holds for every row matching `expr` (terms wrapped in
/// `prefix`/`suffix`) on any of the indexed columns, or `None` when no such narrowing exists
/// (a negated term, or a term without three consecutive ASCII characters, matches too much).
///
/// A positive term becomes the AND of its phrases: each maximal run of at least three ASCII
/// characters of its literal text, quoted. A run is necessary for a match — whatever the
/// grammar matches contains it, case-folded — and FTS5's trigram tokenizer, case-insensitive,
/// finds exactly the rows that contain it. Non-ASCII characters split runs rather than being
/// trusted to fold alike in Rust and in SQLite.
pub fn fts_match(expr: &Expr, prefix: &Pattern, suffix: &Pattern) -> Option<String> {
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
                .flat_map(|t| ascii_runs(t))
                .filter(|run| run.chars().count() >= TRIGRAM)
                .map(|run| format!("\"{}\"", run.replace('"', "\"\"")))
                .collect();
            (!phrases.is_empty()).then(|| group(phrases, " AND "))
        }
        Expr::And(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|e| fts_match(e, prefix, suffix))
                .collect();
            (!parts.is_empty()).then(|| group(parts, " AND "))
        }
        Expr::Or(items) => {
            let parts: Option<Vec<String>> =
                items.iter().map(|e| fts_match(e, prefix, suffix)).collect();
            parts.map(|p| group(p, " OR "))
        }
    }
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
