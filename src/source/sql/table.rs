//! What SQL customer-user and customer sources share: the mapped table, reading rows into
//! records, exact filtering of superset queries (paging onward after the last key, every
//! statement with a LIMIT, when the filter thins a page), and partial updates.

use sqlx::AnyConnection;

use super::{int_at, source_error, text_at, time_at, Db, DbRow, Dialect, Sql};
use crate::config::ResolvedMap;
use crate::domain::{
    fold,
    query::Pattern,
    search::{Detail, Filter, Page, TimeField, ORDER_SCAN_MAX},
    Attr, CaseRule, Field, Patch, Record, Validity,
};
use crate::source::SourceError;

/// The most rows one statement of a paged search asks for.
pub const PAGE_CHUNK_MAX: usize = 5_000;

/// The most statements one paged search runs before it answers what it kept, `truncated`.
pub const PAGE_STATEMENTS_MAX: usize = 16;

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

/// Runs `sql`, handing each row to `on_row` as it arrives (PostgreSQL through its native
/// driver, the others through `Any`): nothing is collected.
async fn stream_rows(
    db: &Db,
    sql: &Sql,
    on_row: &mut (dyn FnMut(&dyn DbRow) -> Result<(), SourceError> + Send),
) -> Result<(), SourceError> {
    use futures::TryStreamExt;
    match db.pg_pool() {
        Some(pg) => {
            let mut rows = sql.query_pg().fetch(pg);
            while let Some(row) = rows.try_next().await.map_err(source_error)? {
                on_row(&row)?;
            }
        }
        None => {
            let mut rows = sql.query().fetch(db.pool());
            while let Some(row) = rows.try_next().await.map_err(source_error)? {
                on_row(&row)?;
            }
        }
    }
    Ok(())
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
        let mut sql = Sql::new(self.dialect).with_case_sensitive(self.case.is_case_sensitive());
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

    pub fn row_to_record<R: DbRow + ?Sized>(&self, row: &R) -> Result<F::Record, SourceError> {
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

    /// ` AND <keyset condition>`: rows whose key comes after `after` (a folded key, the
    /// position of a page token) in the walk's order by key — a *necessary* condition, the
    /// exact test is [`Detail::is_after`](crate::domain::search::Detail::is_after) in Rust.
    /// PostgreSQL folds like Rust: `LOWER(key) > after`. Elsewhere (SQLite folds ASCII only;
    /// MariaDB folds its own way; case-sensitive sources) the condition is
    /// `LOWER(key) >= <the ASCII prefix of after>[U+0080]`: a non-ASCII character sorts after
    /// every ASCII one under any folding, so every row after the position satisfies it.
    pub fn push_after(&self, sql: &mut Sql, after: &str) {
        const MARK: &str = "\u{1}";
        let folded_key = self.dialect.order_folded(&self.key_col);
        let folded_param = self.dialect.order_folded(MARK);
        let Some((before, behind)) = folded_param.split_once(MARK) else {
            return;
        };
        let (op, bound) = if self.sql_is_exact() {
            (" > ", after.to_owned())
        } else {
            // The ASCII prefix, then (when a non-ASCII character follows) U+0080: a row
            // after the position either differs from it within the prefix (then it sorts
            // after the prefix under either folding) or continues the prefix with a
            // non-ASCII character, which no folding makes ASCII.
            match after.find(|c: char| !c.is_ascii()) {
                Some(end) => (" >= ", format!("{}\u{80}", &after[..end])),
                None => (" >= ", after.to_owned()),
            }
        };
        sql.push(" AND ")
            .push(&folded_key)
            .push(op)
            .push(before)
            .text(bound)
            .push(behind);
    }

    /// Runs `sql` (a condition without ORDER BY / LIMIT), keeps the records `keep` accepts,
    /// sorted by key case-insensitively, at most `limit`, with a truncation flag. The database
    /// is asked for one page more than `limit`; when the exact check dropped rows from a full
    /// page, the next rows are fetched after the last key seen (keyset paging in the page
    /// statement's order, each chunk twice the last, at most [`PAGE_CHUNK_MAX`] rows), until
    /// the page is full or the rows end. Every statement has a LIMIT; after
    /// [`PAGE_STATEMENTS_MAX`] statements the page answers what it kept, `truncated`.
    pub async fn fetch_filtered(
        &self,
        db: &Db,
        sql: Sql,
        limit: usize,
        keep: impl Fn(&F::Record) -> bool,
    ) -> Result<Page<F::Record>, SourceError> {
        self.fetch_checked(db, sql, limit, keep, |_| true).await
    }

    /// A detail search (`sql` from [`Table::select`] with the criterion, and the filters from
    /// [`Table::push_filters`]): the records `keep` (the criterion's exact check) and the
    /// detail's filters and page position accept, in the detail's order, at most `limit`.
    /// In the default order by key the database pages ([`Table::push_after`] narrows to the
    /// position); in any other order the source reads every match, at most
    /// [`ORDER_SCAN_MAX`](crate::domain::search::ORDER_SCAN_MAX), and sorts them itself — a
    /// source with more matches answers an error saying so (narrow the search with filters).
    pub async fn fetch_detail(
        &self,
        db: &Db,
        mut sql: Sql,
        limit: usize,
        keep: impl Fn(&F::Record) -> bool,
        detail: &Detail<F>,
    ) -> Result<Page<F::Record>, SourceError> {
        let checked = |r: &F::Record| detail.keeps(r, self.case);
        if detail.order.is_by_key() {
            if let Some(pos) = &detail.after {
                self.push_after(&mut sql, &pos.key);
            }
            let page = self.fetch_checked(db, sql, limit, keep, checked).await?;
            if detail.paged && page.truncated && page.items.is_empty() {
                // No position to continue from: a walk cannot go on past this source.
                return Err(SourceError::Failed(format!(
                    "no match among the rows of {PAGE_STATEMENTS_MAX} statements; narrow the search"
                )));
            }
            return Ok(page);
        }
        let all = self
            .fetch_checked(db, sql, ORDER_SCAN_MAX, keep, checked)
            .await?;
        if all.truncated {
            return Err(SourceError::order_scan_exceeded());
        }
        Ok(detail.page_of(all.items, limit))
    }

    /// ` AND <condition>` for each filter the table can narrow with: a pattern on a mapped
    /// column ([`Sql::matches`], a necessary condition), a validity, a time range (on the
    /// epoch seconds the record is read with). Unmapped attributes are decided in Rust only.
    pub fn push_filters(&self, sql: &mut Sql, detail: &Detail<F>) {
        for f in &detail.filters {
            match f {
                Filter::Matches(attr, p) => {
                    if let Some((_, col)) = self.text_attrs.iter().find(|(a, _)| a == attr) {
                        sql.push(" AND ");
                        sql.matches(col, p);
                    }
                }
                Filter::Validity(v) => {
                    if let Some(c) = &self.validity_col {
                        sql.push(" AND ").push(c).push(" = ").int(i64::from(v.id()));
                    }
                }
                Filter::Time {
                    field,
                    at_least,
                    at,
                } if !self.foreign_db => {
                    let col = match field {
                        TimeField::Create => "create_time",
                        TimeField::Change => "change_time",
                    };
                    sql.push(" AND ")
                        .push(&self.dialect.epoch(col))
                        .push(if *at_least { " >= " } else { " < " })
                        .int(*at);
                }
                Filter::Time { .. } => {}
            }
        }
    }

    /// [`Table::fetch_filtered`] with a second check, `always`, that even an exact database
    /// answer must pass.
    async fn fetch_checked(
        &self,
        db: &Db,
        sql: Sql,
        limit: usize,
        keep: impl Fn(&F::Record) -> bool,
        always: impl Fn(&F::Record) -> bool,
    ) -> Result<Page<F::Record>, SourceError> {
        let keep = |r: &F::Record| keep(r) && always(r);
        let always = &always;
        let mut chunk = limit.saturating_add(1);
        let mut after: Option<String> = None;
        let mut items = Vec::new();
        let mut statements = 0;
        let mut exhausted = false;
        while items.len() <= limit {
            if statements == PAGE_STATEMENTS_MAX {
                break;
            }
            let page = self.page_after(&sql, after.as_deref(), chunk)?;
            let (fetched, kept, last) = self.run(db, &page, &keep, always).await?;
            statements += 1;
            items.extend(kept);
            if fetched < chunk || last.is_none() {
                exhausted = true;
                break;
            }
            after = last;
            chunk = chunk.saturating_mul(2).min(PAGE_CHUNK_MAX.max(limit + 1));
        }
        if statements > 1 && !self.sql_is_exact() {
            items.sort_by_cached_key(|r| fold(r.key()));
        }
        let truncated = items.len() > limit || !exhausted;
        items.truncate(limit);
        Ok(Page { items, truncated })
    }

    /// Every row of the table, or with `since` (epoch seconds) those whose `change_time` is at
    /// or after it (a table without change columns is read whole), in no particular order:
    /// one statement without ORDER BY (the database sorts nothing), its rows streamed and
    /// converted one at a time. For the in-memory search index (`source::index`), which
    /// orders them itself. Each record goes to `each` as it is converted, so a reader that
    /// keeps something smaller never holds the whole table as records.
    pub async fn scan(
        &self,
        db: &Db,
        since: Option<i64>,
        each: &mut (dyn FnMut(F::Record) + Send),
    ) -> Result<(), SourceError> {
        let sql = self.scan_statement(since);
        stream_rows(db, &sql, &mut |row| {
            each(self.row_to_record(row)?);
            Ok(())
        })
        .await
    }

    /// Every key of the table (the key column, read as records read it), each handed to
    /// `each` as it arrives: the search index's reconciliation, which only asks which keys are
    /// gone.
    pub async fn scan_keys(
        &self,
        db: &Db,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), SourceError> {
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ")
            .push(&self.dialect.text(&self.key_col))
            .push(" FROM ")
            .push(&self.name);
        stream_rows(db, &sql, &mut |row| {
            each(text_at(row, 0)?);
            Ok(())
        })
        .await
    }

    /// The statement [`Table::scan`] runs. `change_time` is compared bare (with the time
    /// `since` is on the table's clock), so that an index on it serves the refresh.
    pub fn scan_statement(&self, since: Option<i64>) -> Sql {
        let mut sql = self.select();
        match since {
            Some(t) if !self.foreign_db => {
                let (open, close) = self.dialect.epoch_param();
                sql.push("change_time >= ").push(open).int(t).push(close);
            }
            _ => {
                sql.push("1=1");
            }
        }
        sql
    }

    /// The statement [`Table::fetch_filtered`] runs for `sql` (built by [`Table::select`]): the
    /// page is chosen in a subquery over the raw rows, ordered by the folded key, and only its
    /// rows are converted (text casts, epoch seconds) — converting every matching row before the
    /// sort cost PostgreSQL ~10% on a broad search.
    pub fn page_statement(&self, sql: &Sql, limit: Option<usize>) -> Result<Sql, SourceError> {
        self.page_statement_after(sql, None, limit)
    }

    /// [`Table::page_statement`] with a LIMIT, starting after the row whose key is `after`.
    fn page_after(&self, sql: &Sql, after: Option<&str>, limit: usize) -> Result<Sql, SourceError> {
        self.page_statement_after(sql, after, Some(limit))
    }

    /// The page statement; with `after`, only rows past the row whose key is `after` in the
    /// statement's own order (folded key, then key): `(f(key) > f(after) OR (f(key) = f(after)
    /// AND key > after))`, the folding done by the database on both sides, so the order and
    /// the condition agree on every dialect. (Two keys that fold alike and are equal under the
    /// key column's collation — a MySQL `_ci` column without a unique key holding `Bob` and
    /// `bob` — have no order between them, so one of them may be skipped at a chunk boundary.)
    fn page_statement_after(
        &self,
        sql: &Sql,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Sql, SourceError> {
        let prefix = format!("SELECT {} FROM {} WHERE ", self.select_list, self.name);
        let condition = sql.text.strip_prefix(&prefix).ok_or_else(|| {
            SourceError::Failed("internal: a page statement not built by Table::select".into())
        })?;
        let key = &self.key_col;
        let folded_key = self.dialect.order_folded(key);
        let mut page = sql.clone();
        page.text = format!(
            "SELECT {} FROM (SELECT *, {folded_key} AS page_key FROM {} WHERE ",
            self.select_list, self.name
        );
        match after {
            None => {
                page.push(condition);
            }
            Some(last) => {
                // The folding expression with the bound value in place of the column.
                const MARK: &str = "\u{1}";
                let folded_param = self.dialect.order_folded(MARK);
                let (before, behind) = folded_param.split_once(MARK).ok_or_else(|| {
                    SourceError::Failed("internal: a folding expression without its column".into())
                })?;
                page.push("(").push(condition).push(") AND (");
                page.push(&folded_key)
                    .push(" > ")
                    .push(before)
                    .text(last)
                    .push(behind);
                page.push(" OR (")
                    .push(&folded_key)
                    .push(" = ")
                    .push(before)
                    .text(last)
                    .push(behind);
                page.push(" AND ")
                    .push(key)
                    .push(" > ")
                    .text(last)
                    .push("))");
            }
        }
        page.push(&format!(" ORDER BY page_key, {key}"));
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
    /// also returns how many rows came back and the key of the last one (in the statement's
    /// order, kept or not).
    async fn run(
        &self,
        db: &Db,
        sql: &Sql,
        keep: &impl Fn(&F::Record) -> bool,
        always: &impl Fn(&F::Record) -> bool,
    ) -> Result<(usize, Vec<F::Record>, Option<String>), SourceError> {
        #[cfg(test)]
        tests::record_statement(&sql.text);
        match db.pg_pool() {
            Some(pg) => {
                let rows = sql.query_pg().fetch_all(pg).await.map_err(source_error)?;
                let last = self.last_key(&rows)?;
                Ok((rows.len(), self.keep_rows(&rows, keep, always)?, last))
            }
            None => {
                let rows = sql
                    .query()
                    .fetch_all(db.pool())
                    .await
                    .map_err(source_error)?;
                let last = self.last_key(&rows)?;
                Ok((rows.len(), self.keep_rows(&rows, keep, always)?, last))
            }
        }
    }

    /// The key of the last of `rows`, as stored.
    fn last_key<R: DbRow>(&self, rows: &[R]) -> Result<Option<String>, SourceError> {
        rows.last()
            .map(|r| Ok(self.row_to_record(r)?.key().to_owned()))
            .transpose()
    }

    fn keep_rows<R: DbRow>(
        &self,
        rows: &[R],
        keep: &impl Fn(&F::Record) -> bool,
        always: &impl Fn(&F::Record) -> bool,
    ) -> Result<Vec<F::Record>, SourceError> {
        let exact = self.sql_is_exact();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let r = self.row_to_record(row)?;
            if if exact { always(&r) } else { keep(&r) } {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::{cell::RefCell, sync::Arc, time::Duration};

    use crate::config::Config;
    use crate::domain::{
        query::{parse, Grammar},
        search::{UserCriterion, UserSearch},
        CustomerUser,
    };
    use crate::source::sql::{user::SqlUserSource, Db};
    use crate::source::sql::{DbSpec, SourceTable, TableKind};
    use crate::source::{UserReader, UserWriter};

    thread_local! {
        static STATEMENTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    /// Every page statement [`super::Table::fetch_filtered`] runs on this thread.
    pub(super) fn record_statement(text: &str) {
        STATEMENTS.with(|s| s.borrow_mut().push(text.to_owned()));
    }

    fn take_statements() -> Vec<String> {
        STATEMENTS.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    fn user(login: &str, last: &str) -> CustomerUser {
        CustomerUser {
            login: login.into(),
            first_name: "F".into(),
            last_name: last.into(),
            email: format!("{login}@example.com"),
            customer_id: "acme".into(),
            ..Default::default()
        }
    }

    /// A negated non-ASCII term is decided in Rust on SQLite (the SQL keeps every row), so the
    /// exact check drops most of each page: the search pages onward after the last key, every
    /// statement with a LIMIT, and answers exactly what an unlimited search would.
    #[tokio::test(flavor = "current_thread")]
    async fn a_page_thinned_by_the_exact_check_pages_on_with_limits() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let toml = format!(
            "customer_sources = []\n[[customer_user_sources]]\nname = \"main\"\nkind = \"sql\"\nurl = \"{url}\"\ntable = \"customer_user\"\ncustomer_company_support = false\nemail_unique = false\n"
        );
        let settings = Config::from_toml(&toml, Vec::new())
            .unwrap()
            .validate()
            .unwrap();
        let spec = DbSpec {
            migrate: true,
            pool_size: 2,
            connect_timeout: Duration::from_secs(5),
            tables: vec![SourceTable {
                kind: TableKind::CustomerUser,
                name: "customer_user".into(),
            }],
            lock_names: vec!["customer_user".into()],
            indexes: Vec::new(),
        };
        let db = Db::open(&url, &spec).unwrap();
        let source = Arc::new(SqlUserSource::new(settings.user_sources[0].clone(), db).unwrap());
        // 40 logins whose last name starts with Ä (dropped by `!ä*`), interleaved in login
        // order with 6 that are kept.
        let mut kept = Vec::new();
        for i in 0..40 {
            source
                .create(&user(&format!("u{i:03}"), "Ärger"), None)
                .await
                .unwrap();
            if i % 7 == 6 {
                let login = format!("u{i:03}k");
                source.create(&user(&login, "Berger"), None).await.unwrap();
                kept.push(login);
            }
        }
        let search = |limit| UserSearch {
            criterion: UserCriterion::Query(parse("!ä*", Grammar::CustomerUser).unwrap()),
            include_invalid: false,
            limit,
            detail: crate::domain::search::Detail::default(),
        };
        take_statements();
        let page = source.search(&search(3)).await.unwrap();
        let logins: Vec<&str> = page.items.iter().map(|u| u.login.as_str()).collect();
        assert_eq!(logins, kept[..3]);
        assert!(page.truncated);
        let ran = take_statements();
        assert!(ran.len() > 1, "paged on: {ran:?}");
        assert!(
            ran.iter().all(|s| s.contains(" LIMIT ")),
            "every statement has a LIMIT: {ran:?}"
        );
        // The whole answer, in pages of growing size, equals the unlimited one.
        let all = source.search(&search(100)).await.unwrap();
        let logins: Vec<&str> = all.items.iter().map(|u| u.login.as_str()).collect();
        assert_eq!(logins, kept);
        assert!(!all.truncated);
        assert!(take_statements().iter().all(|s| s.contains(" LIMIT ")));
    }
}
