//! Customer users in an OTRS `customer_user`-shaped table.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::AnyConnection;
use tokio::sync::Mutex;

use super::side::SideTables;
use super::{
    audit_columns, source_error, table::Table, text_at, write_error, Db, Dialect, IndexDdl,
    MariaDbTrigrams, SearchIndex, Sql, SqliteSearch, Val,
};
use crate::config::{SearchIndexMode, SqlBackend, UserSourceSettings};
use crate::domain::{
    customer_user::UserAttr,
    email::normalize_address,
    fold,
    query::Pattern,
    search::{Page, UserCriterion, UserSearch},
    Attr, CaseRule, CustomerUser, CustomerUserPatch, UserField, UserRules, UserSchema, Validity,
};
use crate::error::Error;
use crate::source::matching::user_rules;
use crate::source::{
    Credentials, PasswordHashes, SourceError, UserReader, UserSourceBundle, UserWriter,
};

/// How long a source trusts its last look at its SQLite search index.
const SEARCH_INDEX_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Addresses per lookup statement (well below every dialect's bound-parameter limit).
const EMAIL_BATCH: usize = 500;

/// A customer-user source on one SQL table.
pub struct SqlUserSource {
    cfg: UserSourceSettings,
    /// The table settings of `cfg`, which is a SQL source.
    sql: SqlBackend,
    db: Arc<Db>,
    table: Table<UserField>,
    /// What a search keeps, postmaster values, key equality, full name.
    rules: UserRules,
    side: Arc<SideTables>,
    /// Serialises this replica's writes to the table (the database lock covers other replicas).
    write: Mutex<()>,
    /// SQLite / MariaDB: the trigram index searches narrow with, and when it was last seen to exist
    /// exactly as configured (re-checked every [`SEARCH_INDEX_RECHECK`]).
    search_index: Option<SearchIndex>,
    search_index_checked: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl SqlUserSource {
    /// The source on `db`; fails when `cfg` is not a SQL source.
    pub fn new(cfg: UserSourceSettings, db: Arc<Db>) -> Result<Self, String> {
        let sql = cfg.sql().cloned().ok_or_else(|| {
            format!(
                "customer-user source {:?} is not a SQL source",
                cfg.settings.name
            )
        })?;
        let table = Table::new(
            db.dialect(),
            &sql.table,
            &cfg.settings.name,
            &cfg.map,
            sql.foreign_db,
            cfg.settings.case_sensitive,
            &[UserField::Password],
        );
        let cols = search_columns(&cfg);
        let search_index = match db.dialect() {
            Dialect::Sqlite => SqliteSearch::new(&sql.table, &cols).map(SearchIndex::Sqlite),
            Dialect::MySql => MariaDbTrigrams::new(&sql.table, &cols).map(SearchIndex::MariaDb),
            Dialect::Postgres => None,
        };
        Ok(Self {
            table,
            rules: user_rules(&cfg),
            side: Arc::new(SideTables::new(db.clone(), &cfg.settings.name)),
            db,
            cfg,
            sql,
            write: Mutex::new(()),
            search_index,
            search_index_checked: std::sync::Mutex::new(None),
        })
    }

    fn column(&self, field: UserField) -> Option<&str> {
        self.cfg.map.field_column(field)
    }

    /// `SELECT … WHERE ` of the table, comparing case-insensitive columns bare.
    fn select(&self) -> Sql {
        self.table
            .select()
            .with_case_insensitive(self.db.case_insensitive_columns(&self.table.name))
    }

    /// The trigram index, if it exists as configured. Checked again every
    /// [`SEARCH_INDEX_RECHECK`], so an index rebuilt for other search fields (another
    /// configuration's `add-indexes`) or dropped is noticed without a restart.
    async fn usable_search_index(&self) -> Result<Option<&SearchIndex>, SourceError> {
        let Some(index) = &self.search_index else {
            return Ok(None);
        };
        let cached = *self
            .search_index_checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = match cached {
            Some((at, current)) if at.elapsed() < SEARCH_INDEX_RECHECK => current,
            _ => {
                let current = index.is_current(self.db.pool()).await?;
                if !current && cached.is_none_or(|(_, was)| was) {
                    tracing::warn!(
                        source = %self.name(),
                        index = %index.name(),
                        "no current trigram search index: substring searches scan the table; \
                         run `clientele add-indexes`"
                    );
                }
                *self
                    .search_index_checked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((std::time::Instant::now(), current));
                current
            }
        };
        Ok(current.then_some(index))
    }

    fn search_columns(&self) -> Vec<(UserAttr, &str)> {
        self.cfg
            .search_fields
            .iter()
            .filter_map(|a| Some((a.clone(), self.cfg.map.column(a)?)))
            .collect()
    }

    /// The condition a search narrows with (before ORDER BY / LIMIT), and the limit it uses.
    async fn search_sql(&self, search: &UserSearch) -> Result<(Sql, usize), SourceError> {
        let limit = search.limit.min(self.cfg.settings.list_limit as usize);
        let mut sql = self.select();
        let (prefix, suffix) = self.cfg.settings.affixes();
        let customer_id_col = self.column(UserField::CustomerId).unwrap_or("customer_id");
        match &search.criterion {
            UserCriterion::Query(expr) => {
                let cols: Vec<&str> = self.search_columns().iter().map(|(_, c)| *c).collect();
                sql.expr(expr, &cols, &prefix, &suffix);
                if let Some(index) = self.usable_search_index().await? {
                    index.push_condition(&mut sql, expr, &prefix, &suffix);
                }
            }
            UserCriterion::Email(address) => {
                self.push_postmaster_condition(&mut sql, std::slice::from_ref(address));
            }
            UserCriterion::CustomerId(p) => {
                sql.matches(customer_id_col, p);
            }
            UserCriterion::Login(p) => {
                sql.matches(&self.table.key_col, p);
            }
        }
        if !search.include_invalid && !search.detail.wants_invalid() {
            self.table.push_valid_only(&mut sql);
        }
        self.table.push_filters(&mut sql, &search.detail);
        Ok((sql, limit))
    }

    /// Completes a record read from the table with what the source computes.
    fn finish(&self, mut user: CustomerUser) -> CustomerUser {
        user.full_name = self.rules.full_name(&user);
        user
    }

    async fn fetch(
        &self,
        sql: Sql,
        limit: usize,
        keep: impl Fn(&CustomerUser) -> bool,
    ) -> Result<Page<CustomerUser>, SourceError> {
        let mut page = self
            .table
            .fetch_filtered(&self.db, sql, limit, keep)
            .await?;
        page.items = page.items.into_iter().map(|u| self.finish(u)).collect();
        Ok(page)
    }

    /// The exact stored row of `login` inside a transaction.
    async fn current(
        &self,
        conn: &mut AnyConnection,
        login: &str,
    ) -> Result<Option<CustomerUser>, Error> {
        self.table
            .current(conn, login)
            .await
            .map(|u| u.map(|u| self.finish(u)))
            .map_err(|e| self.write_err(e, login))
    }

    /// Another customer user of this source with `address` on a postmaster field (any validity).
    async fn email_taken(
        &self,
        conn: &mut AnyConnection,
        address: &str,
        except_login: Option<&str>,
    ) -> Result<bool, Error> {
        let wanted = normalize_address(address);
        let mut sql = self.select();
        self.push_postmaster_condition(&mut sql, std::slice::from_ref(&wanted));
        let rows = sql
            .query()
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| write_error(e, "customer user", "email", address, self.name()))?;
        for row in &rows {
            let u = self.table.row_to_record(row)?;
            if except_login.is_some_and(|l| self.rules.same_key(&u.login, l)) {
                continue;
            }
            if self.rules.has_address(&u, &wanted) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `(f1 matches any address OR f2 …)` over the postmaster fields.
    fn push_postmaster_condition(&self, sql: &mut Sql, addresses: &[String]) {
        let cols: Vec<&str> = self
            .cfg
            .postmaster_fields
            .iter()
            .filter_map(|a| self.cfg.map.column(a))
            .collect();
        self.push_equals_any(sql, &cols, addresses);
    }

    /// `(any of cols equals any of values, case-insensitively)`: an IN list of folded values
    /// where the dialect folds them, one superset LIKE per value where it cannot.
    fn push_equals_any(&self, sql: &mut Sql, cols: &[&str], values: &[String]) {
        let d = self.db.dialect();
        let (plain, special): (Vec<&String>, Vec<&String>) = values
            .iter()
            .partition(|a| a.is_ascii() || d != Dialect::Sqlite);
        sql.push("(");
        let mut first = true;
        for col in cols {
            if !plain.is_empty() {
                if !first {
                    sql.push(" OR ");
                }
                first = false;
                let folded = sql.folded(col);
                sql.push(&folded).push(" IN (");
                sql.text_list(plain.iter().map(|a| fold(a)));
                sql.push(")");
            }
            for a in &special {
                if !first {
                    sql.push(" OR ");
                }
                first = false;
                sql.matches(col, &Pattern::literal(a));
            }
        }
        if first {
            sql.push("1=0");
        }
        sql.push(")");
    }

    /// Records whose `col` equals one of `values` under the source's case rules, in batches.
    async fn fetch_equal_any(
        &self,
        col: &str,
        values: &[String],
        value_of: impl Fn(&CustomerUser) -> &str,
    ) -> Result<Vec<CustomerUser>, SourceError> {
        self.db.ready().await?;
        let mut out = Vec::new();
        for chunk in values.chunks(EMAIL_BATCH) {
            let mut sql = self.select();
            self.push_equals_any(&mut sql, &[col], chunk);
            let rows = sql
                .query()
                .fetch_all(self.db.pool())
                .await
                .map_err(source_error)?;
            for row in &rows {
                let u = self.finish(self.table.row_to_record(row)?);
                if chunk.iter().any(|v| self.rules.same_key(value_of(&u), v)) {
                    out.push(u);
                }
            }
        }
        Ok(out)
    }

    fn write_err(&self, e: sqlx::Error, key: &str) -> Error {
        write_error(e, "customer user", "login", key, self.name())
    }
}

/// The index DDL a customer-user source configured as `cfg` wants on `dialect`: `LOWER()`
/// indexes on login, customer id and postmaster fields, trigram indexes on the search fields,
/// and on PostgreSQL the walk index `(LOWER(login) COLLATE "C", login)`, the order of keyset
/// pages (SQLite's `LOWER(login)` index serves that order already; MariaDB has no expression
/// indexes). None for a source that is not SQL.
pub fn index_statements_for(cfg: &UserSourceSettings, dialect: Dialect) -> Vec<IndexDdl> {
    let Some(sql) = cfg.sql() else {
        return Vec::new();
    };
    let col = |f: UserField| cfg.map.field_column(f);
    let mut eq: Vec<&str> = col(UserField::Login).into_iter().collect();
    eq.extend(col(UserField::CustomerId));
    eq.extend(
        cfg.postmaster_fields
            .iter()
            .filter_map(|a| cfg.map.column(a)),
    );
    let mut out = super::index_statements(dialect, &sql.table, &eq, &search_columns(cfg));
    if let (Dialect::Postgres, Some(login)) = (dialect, col(UserField::Login)) {
        out.push(IndexDdl::Statement(format!(
            "CREATE INDEX IF NOT EXISTS {table}_{login}_walk ON {table} ((LOWER({login}) COLLATE \"C\"), {login})",
            table = sql.table
        )));
    }
    if sql.search_index == SearchIndexMode::Memory && !sql.foreign_db {
        out.push(super::ddl::change_time_index(dialect, &sql.table));
    }
    out
}

/// The columns of the configured search fields.
fn search_columns(cfg: &UserSourceSettings) -> Vec<&str> {
    cfg.search_fields
        .iter()
        .filter_map(|a| cfg.map.column(a))
        .collect()
}

/// Moves the customer users of `table` whose `cid_col` equals `old` (case rules as configured)
/// to `new`, plus the memberships in `customer_user_customer`; used by the customer-user source
/// itself and by a customer source on the same database (inside its transaction).
pub(crate) async fn reassign_customer_id(
    conn: &mut AnyConnection,
    dialect: Dialect,
    target: &CustomerIdRef,
    old: &str,
    new: &str,
) -> Result<u64, sqlx::Error> {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT ")
        .push(&dialect.text(&target.login_col))
        .push(", ")
        .push(&dialect.text(&target.cid_col))
        .push(" FROM ")
        .push(&target.table)
        .push(" WHERE ");
    sql.matches(&target.cid_col, &Pattern::literal(old));
    let rows = sql.query().fetch_all(&mut *conn).await?;
    let logins: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let login = text_at(r, 0).ok()?;
            let cid = text_at(r, 1).ok()?;
            target.case.same(&cid, old).then_some(login)
        })
        .collect();
    let mut changed = 0;
    for chunk in logins.chunks(EMAIL_BATCH) {
        let mut up = Sql::new(dialect);
        up.push("UPDATE ")
            .push(&target.table)
            .push(" SET ")
            .push(&target.cid_col)
            .push(" = ")
            .text(new);
        if target.timestamps {
            up.push(", change_time = CURRENT_TIMESTAMP, change_by = 1");
        }
        up.push(" WHERE ").push(&target.login_col).push(" IN (");
        up.text_list(chunk.iter().cloned());
        up.push(")");
        changed += up.query().execute(&mut *conn).await?.rows_affected();
    }
    let mut m = Sql::new(dialect);
    m.push("UPDATE customer_user_customer SET customer_id = ")
        .text(new)
        .push(", change_time = CURRENT_TIMESTAMP WHERE customer_id = ")
        .text(old);
    m.query().execute(&mut *conn).await?;
    Ok(changed)
}

/// Where a customer-user table names customer ids (for renames).
#[derive(Debug, Clone)]
pub struct CustomerIdRef {
    pub source: String,
    pub table: String,
    pub login_col: String,
    pub cid_col: String,
    /// The customer-user source's case rule for customer ids.
    pub case: CaseRule,
    pub timestamps: bool,
}

impl SqlUserSource {
    /// Where this source's table names customer ids.
    pub fn customer_id_ref(&self) -> Option<CustomerIdRef> {
        Some(CustomerIdRef {
            source: self.name().to_owned(),
            table: self.table.name.clone(),
            login_col: self.table.key_col.clone(),
            cid_col: self.column(UserField::CustomerId)?.to_owned(),
            case: self.rules.case,
            timestamps: !self.sql.foreign_db,
        })
    }

    /// The index DDL this source's lookups and searches want (see `sql::index_statements`).
    pub fn index_statements(&self) -> Vec<IndexDdl> {
        index_statements_for(&self.cfg, self.db.dialect())
    }

    /// Inserts many customer users at once (the `seed` command): no checks beyond the
    /// database's own, 500 rows per statement, one transaction per statement.
    pub async fn bulk_insert(
        &self,
        users: &[CustomerUser],
        password_hash: Option<&str>,
    ) -> Result<u64, Error> {
        self.db.ready().await?;
        let mut cols: Vec<&str> = Vec::new();
        for (attr, col) in &self.cfg.map.columns {
            if *attr != Attr::Field(UserField::Password) || password_hash.is_some() {
                cols.push(col);
            }
        }
        let audit = !self.sql.foreign_db;
        if audit {
            cols.extend(["create_time", "create_by", "change_time", "change_by"]);
        }
        let mut done = 0;
        for chunk in users.chunks(500) {
            let rows = chunk
                .iter()
                .map(|u| {
                    let mut row: Vec<Val> = Vec::new();
                    for (attr, _) in &self.cfg.map.columns {
                        match attr {
                            Attr::Field(UserField::Password) => {
                                if let Some(h) = password_hash {
                                    row.push(Val::Text(h.to_owned()));
                                }
                            }
                            Attr::Field(UserField::Validity) => {
                                row.push(Val::Int(i64::from(u.validity.id())))
                            }
                            other => row.push(Val::Text(other.get(u).unwrap_or("").to_owned())),
                        }
                    }
                    if audit {
                        row.extend(audit_columns().into_iter().map(|(_, v)| v));
                    }
                    row
                })
                .collect();
            let r = Sql::insert_many(self.db.dialect(), &self.table.name, &cols, rows)
                .query()
                .execute(self.db.pool())
                .await
                .map_err(|e| self.write_err(e, &chunk[0].login))?;
            done += r.rows_affected();
        }
        // Fresh statistics, and (PostgreSQL) the trigram indexes' pending lists merged, so the
        // planner and the indexes serve the new rows at full speed at once.
        let maintenance = match self.db.dialect() {
            Dialect::Postgres => format!("VACUUM ANALYZE {}", self.table.name),
            Dialect::MySql => format!("ANALYZE TABLE {}", self.table.name),
            Dialect::Sqlite => "ANALYZE".to_owned(),
        };
        if let Err(e) = sqlx::query(&maintenance).execute(self.db.pool()).await {
            tracing::warn!(error = %e, "{maintenance} failed");
        }
        Ok(done)
    }

    /// `EXPLAIN` of the statement `search` runs, page subquery and limit included (for tests
    /// and operators checking index use).
    pub async fn explain_search(&self, search: &UserSearch) -> Result<String, SourceError> {
        self.db.ready().await?;
        let (sql, limit) = self.search_sql(search).await?;
        let sql = self.table.page_statement(&sql, Some(limit + 1))?;
        self.explain(sql).await
    }

    /// `EXPLAIN` of the statement [`Self::scan`] runs with `since` (the search index's
    /// refresh of changed rows).
    pub async fn explain_scan(&self, since: Option<i64>) -> Result<String, SourceError> {
        self.db.ready().await?;
        self.explain(self.table.scan_statement(since)).await
    }

    async fn explain(&self, sql: Sql) -> Result<String, SourceError> {
        let (prefix, column) = match self.db.dialect() {
            Dialect::Sqlite => ("EXPLAIN QUERY PLAN ", 3),
            Dialect::Postgres => ("EXPLAIN ", 0),
            Dialect::MySql => ("EXPLAIN FORMAT=JSON ", 0),
        };
        let rows = sql
            .prefixed(prefix)
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(source_error)?;
        Ok(rows
            .iter()
            .filter_map(|r| text_at(r, column).ok())
            .collect::<Vec<_>>()
            .join("\n"))
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Every record (with `since`, epoch seconds: those changed at or after it; see
    /// [`Table::scan`]), completed as reads complete them, each handed to `each`. For the
    /// in-memory search index.
    pub async fn scan(
        &self,
        since: Option<i64>,
        each: &mut (dyn FnMut(CustomerUser) + Send),
    ) -> Result<(), SourceError> {
        self.db.ready().await?;
        self.table
            .scan(&self.db, since, &mut |u| each(self.finish(u)))
            .await
    }

    /// Every key of the table, each handed to `each` (see [`Table::scan_keys`]).
    pub async fn scan_keys(
        &self,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), SourceError> {
        self.db.ready().await?;
        self.table.scan_keys(&self.db, each).await
    }

    /// The source's matching rules.
    pub fn rules(&self) -> &UserRules {
        &self.rules
    }

    /// The table settings (`search_index`, `index_refresh`, `foreign_db`, …).
    pub fn table_settings(&self) -> &SqlBackend {
        &self.sql
    }

    /// The most records one search answers (`list_limit`).
    pub fn list_limit(&self) -> usize {
        self.cfg.settings.list_limit as usize
    }

    /// `call_timeout`: the bound of one call to the source.
    pub fn call_timeout(&self) -> std::time::Duration {
        self.cfg.settings.call_timeout
    }
}

impl SqlUserSource {
    /// False when the source is configured `read_only` (its bundle then has no writer).
    pub fn writable(&self) -> bool {
        !self.cfg.settings.read_only
    }

    /// The capabilities the directory holds: reads, stored password hashes, the companion
    /// tables in the same database, and writes unless the source is `read_only`.
    pub fn into_bundle(self: Arc<Self>) -> UserSourceBundle {
        let writer: Option<Arc<dyn UserWriter>> = if self.writable() {
            Some(self.clone())
        } else {
            None
        };
        UserSourceBundle::new(
            self.clone(),
            writer,
            Credentials::Hashes(self.clone()),
            self.side.clone(),
        )
        .with_fuse(self.db.clone())
    }
}

#[async_trait]
impl UserReader for SqlUserSource {
    fn name(&self) -> &str {
        &self.cfg.settings.name
    }

    fn schema(&self) -> &UserSchema {
        &self.cfg.map.schema
    }

    fn customer_company_support(&self) -> bool {
        self.cfg.customer_company_support
    }

    async fn ping(&self) -> Result<(), SourceError> {
        self.db.ready().await?;
        let mut sql = self.select();
        sql.push("1=0");
        sql.query()
            .fetch_all(self.db.pool())
            .await
            .map(|_| ())
            .map_err(source_error)
    }

    async fn get(&self, login: &str) -> Result<Option<CustomerUser>, SourceError> {
        self.db.ready().await?;
        let mut sql = self.select();
        sql.matches(&self.table.key_col, &Pattern::literal(login));
        let page = self
            .fetch(sql, 1, |u| self.rules.same_key(&u.login, login))
            .await?;
        Ok(page.items.into_iter().next())
    }

    async fn search(&self, search: &UserSearch) -> Result<Page<CustomerUser>, SourceError> {
        self.db.ready().await?;
        let (sql, limit) = self.search_sql(search).await?;
        let keep = |u: &CustomerUser| self.rules.user_matches(&search.criterion, u);
        // A caller limit above this source's list_limit is cut to it; `truncated` then says
        // whether the source had more.
        let mut page = self
            .table
            .fetch_detail(&self.db, sql, limit, keep, &search.detail)
            .await?;
        page.items = page.items.into_iter().map(|u| self.finish(u)).collect();
        Ok(page)
    }

    async fn find_by_emails(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, CustomerUser)>, SourceError> {
        self.db.ready().await?;
        let mut out = Vec::new();
        for chunk in addresses.chunks(EMAIL_BATCH) {
            let mut sql = self.select();
            self.push_postmaster_condition(&mut sql, chunk);
            self.table.push_valid_only(&mut sql);
            let rows = sql
                .query()
                .fetch_all(self.db.pool())
                .await
                .map_err(source_error)?;
            for row in &rows {
                let u = self.finish(self.table.row_to_record(row)?);
                if u.validity != Validity::Valid {
                    continue;
                }
                let mut matched: Vec<String> = self
                    .rules
                    .postmaster_values(&u)
                    .filter(|v| chunk.contains(v))
                    .collect();
                matched.dedup();
                for address in matched {
                    out.push((address, u.clone()));
                }
            }
        }
        Ok(out)
    }

    async fn get_many(&self, logins: &[String]) -> Result<Vec<CustomerUser>, SourceError> {
        let col = self.table.key_col.clone();
        self.fetch_equal_any(&col, logins, |u| &u.login).await
    }

    async fn by_customer_ids(
        &self,
        customer_ids: &[String],
    ) -> Result<Vec<CustomerUser>, SourceError> {
        let Some(col) = self.column(UserField::CustomerId).map(str::to_owned) else {
            return Ok(Vec::new());
        };
        self.fetch_equal_any(&col, customer_ids, |u| &u.customer_id)
            .await
    }

    async fn record_memberships(&self, _: &str) -> Result<Vec<String>, SourceError> {
        // A row holds one customer id; further ones are companion-table memberships.
        Ok(Vec::new())
    }

    async fn record_members_of(&self, _: &str) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl UserWriter for SqlUserSource {
    async fn create(
        &self,
        user: &CustomerUser,
        password_hash: Option<&str>,
    ) -> Result<CustomerUser, Error> {
        self.db.ready().await?;
        let _guard = self.write.lock().await;
        let mut tx = self
            .db
            .begin_locked(&[&self.table.name])
            .await
            .map_err(|e| self.write_err(e, &user.login))?;
        // One round trip for both uniqueness checks: the login, and the email when it must be
        // unique; the rows that come back are classified exactly in Rust.
        let check_email = self.cfg.email_unique && !user.email.is_empty();
        let wanted_email = normalize_address(&user.email);
        let mut sql = self.select();
        sql.push("(");
        sql.matches(&self.table.key_col, &Pattern::literal(&user.login));
        if check_email {
            sql.push(" OR ");
            self.push_postmaster_condition(&mut sql, std::slice::from_ref(&wanted_email));
        }
        sql.push(")");
        let rows = sql
            .query()
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.write_err(e, &user.login))?;
        for row in &rows {
            let other = self.table.row_to_record(row)?;
            let field = if self.rules.same_key(&other.login, &user.login) {
                "login"
            } else if check_email && self.rules.has_address(&other, &wanted_email) {
                "email"
            } else {
                continue;
            };
            return Err(Error::AlreadyExists {
                kind: "customer user",
                field,
                key: if field == "login" {
                    user.login.clone()
                } else {
                    user.email.clone()
                },
                source_name: Some(self.name().to_owned()),
            });
        }
        let mut values = Vec::new();
        for (attr, col) in &self.cfg.map.columns {
            let value = match attr {
                Attr::Field(UserField::Password) => match password_hash {
                    Some(h) => Val::Text(h.to_owned()),
                    None => continue,
                },
                Attr::Field(UserField::Validity) => Val::Int(i64::from(user.validity.id())),
                other => Val::Text(other.get(user).unwrap_or("").to_owned()),
            };
            values.push((col.as_str(), value));
        }
        if !self.sql.foreign_db {
            values.extend(audit_columns());
        }
        let sql = Sql::insert(self.db.dialect(), &self.table.name, values);
        sql.query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_err(e, &user.login))?;
        let stored = self
            .current(&mut tx, &user.login)
            .await?
            .ok_or_else(|| Error::Internal("inserted customer user not readable".into()))?;
        tx.commit()
            .await
            .map_err(|e| self.write_err(e, &user.login))?;
        Ok(stored)
    }

    /// A renamed login carries its preferences, customer memberships and failed-login state
    /// (`clientele_login_state`) along, in the record's transaction.
    async fn update(&self, login: &str, patch: &CustomerUserPatch) -> Result<CustomerUser, Error> {
        self.db.ready().await?;
        let _guard = self.write.lock().await;
        let mut tx = self
            .db
            .begin_locked(&[&self.table.name])
            .await
            .map_err(|e| self.write_err(e, login))?;
        let current = self
            .current(&mut tx, login)
            .await?
            .ok_or_else(|| Error::not_found("customer user", login))?;
        let new_login = patch.new_key().filter(|n| *n != current.login);
        if let Some(n) = new_login {
            if !self.rules.same_key(n, &current.login) && self.current(&mut tx, n).await?.is_some()
            {
                return Err(Error::AlreadyExists {
                    kind: "customer user",
                    field: "login",
                    key: n.to_owned(),
                    source_name: Some(self.name().to_owned()),
                });
            }
        }
        let email_changed = patch.touches(&Attr::Field(UserField::Email))
            && normalize_address(&patch.values.email) != normalize_address(&current.email);
        if self.cfg.email_unique
            && email_changed
            && !patch.values.email.is_empty()
            && self
                .email_taken(&mut tx, &patch.values.email, Some(&current.login))
                .await?
        {
            return Err(Error::AlreadyExists {
                kind: "customer user",
                field: "email",
                key: patch.values.email.clone(),
                source_name: Some(self.name().to_owned()),
            });
        }
        let d = self.db.dialect();
        let sql = self.table.update_sql(&self.cfg.map, patch, &current.login);
        sql.query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_err(e, new_login.unwrap_or(login)))?;
        let final_login = new_login.unwrap_or(&current.login).to_owned();
        if new_login.is_some() {
            for (table, col) in [
                ("customer_preferences", "user_id"),
                ("customer_user_customer", "user_id"),
            ] {
                let mut r = Sql::new(d);
                r.push("UPDATE ")
                    .push(table)
                    .push(" SET ")
                    .push(col)
                    .push(" = ")
                    .text(final_login.clone())
                    .push(" WHERE ")
                    .push(col)
                    .push(" = ")
                    .text(current.login.clone());
                r.query()
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.write_err(e, &final_login))?;
            }
            super::side::move_login_state(&mut tx, d, self.name(), &current.login, &final_login)
                .await
                .map_err(|e| self.write_err(e, &final_login))?;
        }
        let stored = self
            .current(&mut tx, &final_login)
            .await?
            .ok_or_else(|| Error::Internal("updated customer user not readable".into()))?;
        tx.commit().await.map_err(|e| self.write_err(e, login))?;
        Ok(stored)
    }

    async fn store_password_hash(
        &self,
        login: &str,
        expected_old: Option<&str>,
        new: &str,
    ) -> Result<bool, Error> {
        let Some(pw_col) = self.column(UserField::Password) else {
            return Err(Error::FailedPrecondition {
                reason: "NO_PASSWORD_COLUMN",
                message: format!(
                    "customer-user source {:?} maps no password column",
                    self.name()
                ),
            });
        };
        self.db.ready().await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("UPDATE ")
            .push(&self.table.name)
            .push(" SET ")
            .push(pw_col)
            .push(" = ")
            .text(new);
        if !self.sql.foreign_db {
            sql.push(", change_time = CURRENT_TIMESTAMP, change_by = 1");
        }
        sql.push(" WHERE ")
            .push(&self.table.key_col)
            .push(" = ")
            .text(login);
        if let Some(old) = expected_old {
            sql.push(" AND ").push(pw_col).push(" = ").text(old);
        }
        let done = sql
            .query()
            .execute(self.db.pool())
            .await
            .map_err(|e| self.write_err(e, login))?;
        Ok(done.rows_affected() == 1)
    }

    async fn rename_customer_id(&self, old: &str, new: &str) -> Result<u64, Error> {
        let Some(target) = self.customer_id_ref() else {
            return Ok(0);
        };
        self.db.ready().await?;
        let _guard = self.write.lock().await;
        let mut tx = self
            .db
            .begin_locked(&[&self.table.name])
            .await
            .map_err(|e| self.write_err(e, old))?;
        let n = reassign_customer_id(&mut tx, self.db.dialect(), &target, old, new)
            .await
            .map_err(|e| self.write_err(e, old))?;
        tx.commit().await.map_err(|e| self.write_err(e, old))?;
        Ok(n)
    }
}

#[async_trait]
impl PasswordHashes for SqlUserSource {
    async fn with_hash(
        &self,
        login: &str,
    ) -> Result<Option<(CustomerUser, Option<String>)>, SourceError> {
        self.db.ready().await?;
        let Some(pw_col) = self.column(UserField::Password) else {
            return Ok(self.get(login).await?.map(|u| (u, None)));
        };
        // The record and its hash in one round trip.
        let mut sql = self.table.select_with(&self.db.dialect().text(pw_col));
        sql.matches(&self.table.key_col, &Pattern::literal(login));
        let rows = sql
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(source_error)?;
        for row in &rows {
            let user = self.finish(self.table.row_to_record(row)?);
            if self.rules.same_key(&user.login, login) {
                let hash = Some(text_at(row, self.table.extra_index())?).filter(|h| !h.is_empty());
                return Ok(Some((user, hash)));
            }
        }
        Ok(None)
    }
}
