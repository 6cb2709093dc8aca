//! What SQL customer-user and customer sources share: the mapped table, reading rows into
//! records, exact filtering of superset queries, and partial updates.

use sqlx::AnyConnection;

use super::{int_at, source_error, text_at, time_at, Db, DbRow, Dialect, Sql};
use crate::config::ResolvedMap;
use crate::domain::{
    fold, query::Pattern, search::Page, Attr, CaseRule, Field, Patch, Record, Validity,
};
use crate::source::SourceError;

/// One mapped table of a source.
#[derive(Debug, Clone)]
pub struct Table<F> {
    pub dialect: Dialect,
    pub name: String,
    pub source: String,
    pub key_col: String,
    pub validity_col: Option<String>,
    pub foreign_db: bool,
    /// The source's case rule, for the key lookups the table does itself ([`Table::current`]).
    pub case: CaseRule,
    /// Text attributes read into a record, in SELECT order.
    text_attrs: Vec<(Attr<F>, String)>,
    select_list: String,
}

impl<F: Field> Table<F> {
    /// `skip` are mapped fields never read into a record (the password).
    pub fn new(
        dialect: Dialect,
        name: &str,
        source: &str,
        map: &ResolvedMap<F>,
        foreign_db: bool,
        case_sensitive: bool,
        skip: &[F],
    ) -> Self {
        let text_attrs: Vec<(Attr<F>, String)> = map
            .columns
            .iter()
            .filter(|(a, _)| !matches!(a, Attr::Field(f) if *f == F::VALIDITY || skip.contains(f)))
            .cloned()
            .collect();
        let validity_col = map.field_column(F::VALIDITY).map(str::to_owned);
        let mut cols: Vec<String> = text_attrs.iter().map(|(_, c)| dialect.text(c)).collect();
        cols.push(
            validity_col
                .as_deref()
                // Typed like a mapped column (PostgreSQL's native driver decodes BIGINT only).
                .map_or_else(|| dialect.int("1"), |c| dialect.int(c)),
        );
        if !foreign_db {
            cols.push(dialect.epoch("create_time"));
            cols.push(dialect.epoch("change_time"));
        }
        Self {
            dialect,
            name: name.to_owned(),
            source: source.to_owned(),
            key_col: map.field_column(F::KEY).unwrap_or("id").to_owned(),
            validity_col,
            foreign_db,
            case: CaseRule::new(case_sensitive),
            text_attrs,
            select_list: cols.join(", "),
        }
    }

    /// `SELECT <mapped columns> FROM <table> WHERE ` — the caller appends the condition.
    pub fn select(&self) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ")
            .push(&self.select_list)
            .push(" FROM ")
            .push(&self.name)
            .push(" WHERE ");
        sql
    }

    /// Like [`Table::select`] with one more column (read at [`Table::extra_index`]).
    pub fn select_with(&self, extra: &str) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ")
            .push(&self.select_list)
            .push(", ")
            .push(extra)
            .push(" FROM ")
            .push(&self.name)
            .push(" WHERE ");
        sql
    }

    /// The position of the column added by [`Table::select_with`].
    pub fn extra_index(&self) -> usize {
        self.text_attrs.len() + if self.foreign_db { 1 } else { 3 }
    }

    pub fn row_to_record<R: DbRow>(&self, row: &R) -> Result<F::Record, SourceError> {
        let mut record = F::Record::default();
        for (i, (attr, _)) in self.text_attrs.iter().enumerate() {
            let value = text_at(row, i)?;
            match attr {
                Attr::Field(f) => f.set(&mut record, value),
                Attr::Extra(name) if !value.is_empty() => {
                    record.extra_mut().insert(name.clone(), value);
                }
                Attr::Extra(_) => {}
            }
        }
        let n = self.text_attrs.len();
        let valid_id = int_at(row, n)?.unwrap_or(1);
        // Ids outside OTRS's three (a foreign table's own additions) count as not valid.
        record.set_validity(Validity::from_id(valid_id).unwrap_or(Validity::Invalid));
        let (create, change) = if self.foreign_db {
            (None, None)
        } else {
            (time_at(row, n + 1)?, time_at(row, n + 2)?)
        };
        record.set_origin(&self.source, create, change);
        Ok(record)
    }

    /// ` AND <validity> = 1` when the table has a validity column.
    pub fn push_valid_only(&self, sql: &mut Sql) {
        if let Some(c) = &self.validity_col {
            sql.push(" AND ")
                .push(c)
                .push(" = ")
                .int(i64::from(Validity::Valid.id()));
        }
    }

    /// Runs `sql` (a condition without ORDER BY / LIMIT), keeps the records `keep` accepts,
    /// sorted by key case-insensitively, at most `limit`, with a truncation flag. The database
    /// is asked for one page more than `limit`; only when the exact check dropped rows from a
    /// full page is the query repeated without a limit.
    pub async fn fetch_filtered(
        &self,
        db: &Db,
        sql: Sql,
        limit: usize,
        keep: impl Fn(&F::Record) -> bool,
    ) -> Result<Page<F::Record>, SourceError> {
        let limited = self.page_statement(&sql, Some(limit.saturating_add(1)))?;
        let (fetched, mut items) = self.run(db, &limited, &keep).await?;
        if fetched > limit && items.len() <= limit {
            let all = self.page_statement(&sql, None)?;
            items = self.run(db, &all, &keep).await?.1;
        }
        let truncated = items.len() > limit;
        items.truncate(limit);
        Ok(Page { items, truncated })
    }

    /// The statement [`Table::fetch_filtered`] runs for `sql` (built by [`Table::select`]): the
    /// page is chosen in a subquery over the raw rows, ordered by the folded key, and only its
    /// rows are converted (text casts, epoch seconds) — converting every matching row before the
    /// sort cost PostgreSQL ~10% on a broad search.
    pub fn page_statement(&self, sql: &Sql, limit: Option<usize>) -> Result<Sql, SourceError> {
        let prefix = format!("SELECT {} FROM {} WHERE ", self.select_list, self.name);
        let condition = sql.text.strip_prefix(&prefix).ok_or_else(|| {
            SourceError::Failed("internal: a page statement not built by Table::select".into())
        })?;
        let key = &self.key_col;
        let mut page = sql.clone();
        page.text = format!(
            "SELECT {} FROM (SELECT *, {} AS page_key FROM {} WHERE {condition} ORDER BY page_key, {key}",
            self.select_list,
            self.dialect.order_folded(key),
            self.name
        );
        if let Some(n) = limit {
            page.push(" LIMIT ")
                .int(i64::try_from(n).unwrap_or(i64::MAX));
        }
        // The outer ORDER BY keeps the subquery's order (SQL does not promise it otherwise);
        // on the subquery's own sort key the database sees the rows are sorted already.
        page.push(&format!(") page ORDER BY page.page_key, page.{key}"));
        Ok(page)
    }

    /// Whether the database's answer is already exact: PostgreSQL's `LOWER()` folds Unicode
    /// like the grammar does, so for a case-insensitive source the re-check in Rust (needed
    /// for SQLite's ASCII-only folding, MySQL's accent-blind collations and case-sensitive
    /// sources) would only spend time.
    fn sql_is_exact(&self) -> bool {
        self.dialect == Dialect::Postgres && !self.case.is_case_sensitive()
    }

    /// Runs `sql` (PostgreSQL's native driver where there is one) and keeps what `keep` accepts;
    /// also returns how many rows came back.
    async fn run(
        &self,
        db: &Db,
        sql: &Sql,
        keep: &impl Fn(&F::Record) -> bool,
    ) -> Result<(usize, Vec<F::Record>), SourceError> {
        match db.pg_pool() {
            Some(pg) => {
                let rows = sql.query_pg().fetch_all(pg).await.map_err(source_error)?;
                Ok((rows.len(), self.keep_rows(&rows, keep)?))
            }
            None => {
                let rows = sql
                    .query()
                    .fetch_all(db.pool())
                    .await
                    .map_err(source_error)?;
                Ok((rows.len(), self.keep_rows(&rows, keep)?))
            }
        }
    }

    fn keep_rows<R: DbRow>(
        &self,
        rows: &[R],
        keep: &impl Fn(&F::Record) -> bool,
    ) -> Result<Vec<F::Record>, SourceError> {
        let exact = self.sql_is_exact();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let r = self.row_to_record(row)?;
            if exact || keep(&r) {
                out.push(r);
            }
        }
        // PostgreSQL's exact answer arrives in this order already (ORDER BY LOWER(key)
        // COLLATE "C"); elsewhere the database's order can differ from the grammar's folding.
        if !exact {
            out.sort_by_cached_key(|r| fold(r.key()));
        }
        Ok(out)
    }

    /// The stored record with this key, read on `conn` (inside a transaction).
    pub async fn current(
        &self,
        conn: &mut AnyConnection,
        key: &str,
    ) -> Result<Option<F::Record>, sqlx::Error> {
        let mut sql = self.select();
        sql.matches(&self.key_col, &Pattern::literal(key));
        let rows = sql.query().fetch_all(&mut *conn).await?;
        for row in &rows {
            let r = self
                .row_to_record(row)
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            if self.case.same(r.key(), key) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// `UPDATE <table> SET <audit>, <masked columns> WHERE <key> = <stored key>`.
    pub fn update_sql(
        &self,
        map: &ResolvedMap<F>,
        patch: &Patch<F::Record>,
        stored_key: &str,
    ) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("UPDATE ").push(&self.name).push(" SET ");
        if self.foreign_db {
            sql.push(&self.key_col).push(" = ").push(&self.key_col);
        } else {
            sql.push("change_time = CURRENT_TIMESTAMP, change_by = 1");
        }
        for attr in &patch.fields {
            let Some(col) = map.column(attr) else {
                continue;
            };
            sql.push(", ").push(col).push(" = ");
            match attr {
                Attr::Field(f) if *f == F::VALIDITY => {
                    sql.int(i64::from(patch.values.validity().id()));
                }
                _ => {
                    sql.text(attr.get(&patch.values).unwrap_or("").to_owned());
                }
            }
        }
        sql.push(" WHERE ")
            .push(&self.key_col)
            .push(" = ")
            .text(stored_key.to_owned());
        sql
    }
}
