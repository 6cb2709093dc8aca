//! The in-memory search index of a SQL customer-user or customer source (`search_index =
//! "memory"`, the default; `"database"` leaves the source as it is). A decorator in front of
//! the SQL source, as `cached` is in front of a reader: every read but the grammar search goes
//! to the source; writes go to the source and then into the index.
//!
//! What it keeps ([`core`]): each record once, in one allocation (its search values under the
//! source's case rule, everything else packed), in merge-key order (folded key, then key:
//! the database path's order), with the positions of the records holding each bigram and
//! trigram of their folded search values. A search takes its candidates from the postings of
//! the grams every match must contain ([`core::need`]: the folded texts of the terms, as the
//! SQLite and MariaDB indexes narrow with their runs; none for one-character terms or
//! negations: then every record is a candidate, in key order), decides each with the one matcher ([`Expr::matches_prepared`] of
//! `MatchingRules::prepared_query`, the rule the database path re-checks with), and stops at
//! the first `limit + 1` matches: no sort. Login patterns (a walk of everything is `login *`)
//! are answered here too; email and customer-id criteria go to the database (their own
//! indexes answer them). Filters, page positions and other orders are decided by the
//! domain's functions (`Detail`), as the database path decides what its statement cannot
//! ([`MemoryIndex::search_detail`]).
//!
//! Freshness (decided here; DESIGN §9 names only the keys):
//! - Until the first build finished, and while the last refresh failed, searches go to the
//!   database (so a source that is down answers its status as before).
//! - This replica's writes: a create or update is put into the index from the record the write
//!   returned, before the write returns; a password change re-reads its record; a customer-id
//!   rename (and any change behind the source's back that the directory announces with
//!   `forget_all`) marks the index stale, and the next search refreshes before it answers.
//! - Everyone else's writes: every `index_refresh` the rows changed since the previous read
//!   began, less [`CHANGE_OVERLAP`] (which covers writers whose clocks lag and rows committed
//!   late), are read. The table's clock is not ours (Znuny stores local time without a zone):
//!   "since the previous read began" is our clock at that read plus the largest lead of the
//!   table's clock over ours seen so far (`change_time` minus our clock at the read that saw
//!   it; a row is never stamped later than its writer's now, so this never overshoots). A bulk
//!   write is thus read again for [`CHANGE_OVERLAP`] seconds, not at every refresh for as long
//!   as it is the newest change. A table without change columns (`foreign_db`) is read whole
//!   every `index_refresh`.
//! - Removed and renamed rows: the table's keys are read every [`RECONCILE_EVERY`] refreshes
//!   (60 × `index_refresh`: a minute at the default; a rename by this replica removes the old
//!   key at once), and the rows held from before that read whose keys it did not see are
//!   removed. Every [`FULL_EVERY`]th time (ten minutes at the default) whole rows are read and
//!   compared instead, which also finds a change whose `change_time` did not move past the
//!   previous read. A full read after the first builds nothing: each row read is compared
//!   with the one held (the same: dropped at once), the changed ones join the delta, and the
//!   unseen ones are removed ([`State::apply_full_read`]); so the table is never held twice,
//!   and a table without change columns costs a read and a comparison a period, not a
//!   rebuild.
//! - The delta is folded into a new base (in memory, sharing the rows) once it holds more
//!   than [`COMPACT_AT`] changes.
//! - Rows read by a refresh never overwrite a change this replica made after that read began
//!   (sequence numbers).
//!
//! Metrics: `clientele_search_index_records`, `clientele_search_index_bytes` (approximate heap
//! bytes), `clientele_search_index_lag_seconds` (age of the newest successful refresh's read),
//! `clientele_search_index_build_seconds`, each by `source`. The first build is logged.

pub mod core;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, RwLock, Weak,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;

use self::core::{need, After, Base, MergeKey, Query, Row, State};
use crate::config::SearchIndexMode;
use crate::domain::{
    query::{Expr, Pattern},
    search::{CustomerSearch, Detail, Page, UserCriterion, UserSearch, ORDER_SCAN_MAX},
    Customer, CustomerPatch, CustomerSchema, CustomerUser, CustomerUserPatch, MatchingRules,
    Record, UserSchema,
};
use crate::error::Error;
use crate::source::sql::{customer::SqlCustomerSource, user::SqlUserSource};
use crate::source::{
    CustomerReader, CustomerSourceBundle, CustomerWriter, SourceError, UserReader,
    UserSourceBundle, UserWriter,
};

/// How many seconds before the previous read began (on the table's clock) a refresh reads
/// changed rows again.
pub const CHANGE_OVERLAP: i64 = 10;

/// The table's keys are read once in this many `index_refresh` periods (removed rows and
/// others' renames disappear).
pub const RECONCILE_EVERY: u32 = 60;

/// Every this many reconciliations the whole rows are read and compared instead of the keys
/// (a change whose `change_time` did not move past the previous read is found then).
pub const FULL_EVERY: u32 = 10;

/// A full read of the table may take this many `call_timeout`s (at least a minute).
pub const FULL_READ_CALLS: u32 = 12;

/// Changes kept beside the base before it is rebuilt from memory.
pub const COMPACT_AT: usize = 4_096;

/// A source's search index as its bundle sees it.
pub trait Freshness: Send + Sync {
    /// The next search refreshes the index before it answers (a change behind the source's
    /// back: the directory's `forget_all`).
    fn mark_stale(&self);
    /// Starts building and refreshing (the server does at start-up; a search would too). Not
    /// before: a command that only checks the configuration builds sources and reads nothing.
    fn start(&self);
}

/// What the index needs of a SQL source.
#[async_trait]
pub trait Table: Send + Sync + 'static {
    type Record: Record;
    fn source_name(&self) -> &str;
    fn matching(&self) -> &MatchingRules<<Self::Record as Record>::Field>;
    fn limit_cap(&self) -> usize;
    /// `index_refresh`.
    fn refresh_every(&self) -> Duration;
    /// The table has `change_time` (not `foreign_db`).
    fn has_change_time(&self) -> bool;
    /// `call_timeout`: bounds a refresh that reads changed rows (a full read gets
    /// [`FULL_READ_CALLS`] times as long).
    fn call_timeout(&self) -> Duration;
    /// Every record, or those changed at or after `since` (epoch seconds), each handed to
    /// `each` as it is read.
    async fn read(
        &self,
        since: Option<i64>,
        each: &mut (dyn FnMut(Self::Record) + Send),
    ) -> Result<(), SourceError>;
    /// Every key of the table, each handed to `each` as it is read.
    async fn read_keys(&self, each: &mut (dyn FnMut(String) + Send)) -> Result<(), SourceError>;
    /// Completes a record unpacked from the index as the source completes what it reads.
    fn complete(&self, record: Self::Record) -> Self::Record {
        record
    }
}

/// The [`Table`] methods both SQL sources answer alike, from their accessors (`read` is
/// written out in each impl: `async_trait` does not look into macros).
macro_rules! sql_table {
    ($source:ident, $record:ty, $reader:ident) => {
        type Record = $record;
        fn source_name(&self) -> &str {
            $reader::name(self)
        }
        fn matching(&self) -> &MatchingRules<<$record as Record>::Field> {
            self.rules()
        }
        fn limit_cap(&self) -> usize {
            self.list_limit()
        }
        fn refresh_every(&self) -> Duration {
            self.table_settings().index_refresh
        }
        fn call_timeout(&self) -> Duration {
            $source::call_timeout(self)
        }
        fn has_change_time(&self) -> bool {
            !self.table_settings().foreign_db
        }
    };
}

#[async_trait]
impl Table for SqlUserSource {
    sql_table!(SqlUserSource, CustomerUser, UserReader);
    async fn read(
        &self,
        since: Option<i64>,
        each: &mut (dyn FnMut(CustomerUser) + Send),
    ) -> Result<(), SourceError> {
        self.scan(since, each).await
    }
    async fn read_keys(&self, each: &mut (dyn FnMut(String) + Send)) -> Result<(), SourceError> {
        self.scan_keys(each).await
    }
    fn complete(&self, mut record: CustomerUser) -> CustomerUser {
        record.full_name = self.rules().full_name(&record);
        record
    }
}

#[async_trait]
impl Table for SqlCustomerSource {
    sql_table!(SqlCustomerSource, Customer, CustomerReader);
    async fn read(
        &self,
        since: Option<i64>,
        each: &mut (dyn FnMut(Customer) + Send),
    ) -> Result<(), SourceError> {
        self.scan(since, each).await
    }
    async fn read_keys(&self, each: &mut (dyn FnMut(String) + Send)) -> Result<(), SourceError> {
        self.scan_keys(each).await
    }
}

/// Where refreshes stand (held while one runs, so refreshes never overlap).
#[derive(Default)]
struct Progress {
    /// The largest lead of the table's clock over ours seen: `change_time` minus our clock
    /// (epoch seconds) at the start of the read that returned it; `None` until a read saw a
    /// `change_time` (then every refresh reads the whole table).
    lead: Option<i64>,
    /// Our clock (epoch seconds) when the newest successful read began.
    read_at: Option<i64>,
    /// When the newest reconciliation (a full read, or a read of the keys) began, and how many
    /// there were.
    last_reconcile: Option<Instant>,
    reconciles: u32,
    /// The start of the newest successful refresh's read.
    last_ok: Option<Instant>,
    built_once: bool,
}

/// The index of one SQL source.
pub struct MemoryIndex<T: Table> {
    table: Arc<T>,
    state: RwLock<State>,
    /// Whether `state` holds a built base (before: searches go to the database).
    built: AtomicBool,
    /// Whether the last refresh succeeded.
    healthy: AtomicBool,
    /// Sequence numbers of changes and reads.
    seq: AtomicU64,
    /// Bumped by [`Freshness::mark_stale`]; `fresh` is the mark the last refresh covered.
    stale: AtomicU64,
    fresh: AtomicU64,
    progress: tokio::sync::Mutex<Progress>,
    started: AtomicBool,
}

impl<T: Table> MemoryIndex<T> {
    pub fn new(table: Arc<T>) -> Arc<Self> {
        Arc::new(Self {
            table,
            state: RwLock::new(State::default()),
            built: AtomicBool::new(false),
            healthy: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            fresh: AtomicU64::new(0),
            progress: tokio::sync::Mutex::new(Progress::default()),
            started: AtomicBool::new(false),
        })
    }

    /// Starts the refresh loop (once, when a Tokio runtime is at hand; otherwise the next
    /// call from inside one starts it).
    pub fn start(self: &Arc<Self>) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        handle.spawn(refresh_loop(weak));
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Whether searches are answered here (built, and the last refresh succeeded).
    pub fn ready(&self) -> bool {
        self.built.load(Ordering::SeqCst) && self.healthy.load(Ordering::SeqCst)
    }

    /// Puts a record this replica wrote into the index.
    pub fn upsert(&self, record: &T::Record) {
        let row = Row::new(record, self.table.matching());
        let seq = self.next_seq();
        self.write_state()
            .put(MergeKey::of(record.key()), Some(row), seq);
    }

    /// Removes every record whose key is `key` under the source's case rule.
    pub fn remove(&self, key: &str) {
        let seq = self.next_seq();
        let mut state = self.write_state();
        for k in state.keys_like(key, self.table.matching().case) {
            state.put(k, None, seq);
        }
    }

    /// Refreshes now: a full read when none was made yet, the table has no change columns or
    /// [`RECONCILE_EVERY`] periods passed; otherwise the rows changed since the previous read
    /// began, on the table's clock, less [`CHANGE_OVERLAP`].
    pub async fn refresh(&self) -> Result<(), SourceError> {
        let mut p = self.progress.lock().await;
        let stale_mark = self.stale.load(Ordering::SeqCst);
        let reconcile = p.last_reconcile.is_none_or(|t| {
            t.elapsed() >= self.table.refresh_every().saturating_mul(RECONCILE_EVERY)
        });
        let first = !self.built.load(Ordering::SeqCst);
        let full = first
            || !self.table.has_change_time()
            || p.lead.is_none()
            || (reconcile && p.reconciles % FULL_EVERY == 0);
        // The other reconciliations read the keys only, after the changed rows.
        let keys = reconcile && !full;
        let read_seq = self.seq.load(Ordering::SeqCst);
        let began = Instant::now();
        let began_epoch = epoch_now();
        let since = if full {
            None
        } else {
            p.read_at
                .zip(p.lead)
                .map(|(at, lead)| at.saturating_add(lead) - CHANGE_OVERLAP)
        };
        let bound = if full {
            bound_full(self.table.as_ref())
        } else {
            self.table.call_timeout()
        };
        // Records become rows as they are read (the table is never held as records); a row
        // read again as the index holds it (the refresh overlap, or a full read of rows that
        // did not change) is dropped at once. A full read after the first marks what it sees:
        // what it does not see is gone.
        let mut seen = (full && !first).then(|| self.read_state().seen());
        let rules = self.table.matching().clone();
        let mut rows: Vec<Row> = Vec::new();
        let mut newest: Option<i64> = None;
        let mut each = |record: T::Record| {
            newest = newest.max(record.times().1.map(|t| t.0));
            let row = Row::new(&record, &rules);
            let held = match seen.as_mut() {
                Some(seen) => self.read_state().mark_seen(&row, seen),
                None => !first && self.read_state().holds(&row),
            };
            if !held {
                rows.push(row);
            }
        };
        self.bounded(bound, "the table", self.table.read(since, &mut each))
            .await?;
        p.lead = p.lead.max(newest.map(|n| n - began_epoch));
        p.read_at = Some(began_epoch);
        if first {
            let count = rows.len();
            let base = build(rows).await;
            self.write_state().rebase(base, read_seq);
            let took = began.elapsed();
            metrics::gauge!("clientele_search_index_build_seconds", "source" => self.table.source_name().to_owned())
                .set(took.as_secs_f64());
            if !p.built_once {
                p.built_once = true;
                tracing::info!(source = %self.table.source_name(), records = count, seconds = took.as_secs_f64(), "search index built");
            }
        } else {
            let compact = {
                let mut state = self.write_state();
                match &seen {
                    Some(seen) => state.apply_full_read(rows, seen, read_seq),
                    None => state.apply_read(rows, read_seq),
                }
                state.delta_len() > COMPACT_AT
            };
            drop(seen);
            if compact {
                let at = self.seq.load(Ordering::SeqCst);
                let rows = self.read_state().rows();
                let base = build(rows).await;
                self.write_state().rebase(base, at);
            }
        }
        if keys {
            self.reconcile_keys(bound_full(self.table.as_ref())).await?;
        }
        if full || keys {
            p.last_reconcile = Some(began);
            p.reconciles = p.reconciles.wrapping_add(1);
        }
        self.built.store(true, Ordering::SeqCst);
        self.healthy.store(true, Ordering::SeqCst);
        self.fresh.fetch_max(stale_mark, Ordering::SeqCst);
        p.last_ok = Some(began);
        self.report(&p);
        Ok(())
    }

    /// Reads the table's keys and removes the rows held from before the read that it did not
    /// see (gone, or renamed by others), as a full read would; rows are not compared.
    async fn reconcile_keys(&self, bound: Duration) -> Result<(), SourceError> {
        let read_seq = self.seq.load(Ordering::SeqCst);
        let mut seen = self.read_state().seen();
        let mut each = |key: String| self.read_state().mark_key_seen(&key, &mut seen);
        self.bounded(bound, "the table's keys", self.table.read_keys(&mut each))
            .await?;
        self.write_state()
            .apply_full_read(Vec::new(), &seen, read_seq);
        Ok(())
    }

    /// `read` (of `what`), given at most `bound`; a failure or timeout marks the index
    /// unhealthy (searches go to the database), logged once until a refresh succeeds.
    async fn bounded(
        &self,
        bound: Duration,
        what: &str,
        read: impl std::future::Future<Output = Result<(), SourceError>>,
    ) -> Result<(), SourceError> {
        let read = tokio::time::timeout(bound, read).await.unwrap_or_else(|_| {
            Err(SourceError::Unavailable(format!(
                "reading {what} for the search index took over {bound:?}"
            )))
        });
        if let Err(e) = &read {
            if self.healthy.swap(false, Ordering::SeqCst) {
                tracing::warn!(source = %self.table.source_name(), error = %e, "search index refresh failed: searches go to the database until one succeeds");
            }
        }
        read
    }

    fn report(&self, p: &Progress) {
        let name = self.table.source_name().to_owned();
        let (records, bytes) = {
            let s = self.read_state();
            (s.len(), s.bytes())
        };
        metrics::gauge!("clientele_search_index_records", "source" => name.clone())
            .set(records as f64);
        metrics::gauge!("clientele_search_index_bytes", "source" => name.clone()).set(bytes as f64);
        if let Some(t) = p.last_ok {
            metrics::gauge!("clientele_search_index_lag_seconds", "source" => name)
                .set(t.elapsed().as_secs_f64());
        }
    }

    /// Refreshes first when a change behind the source's back was announced since the last
    /// refresh. `false`: the index cannot answer (not built, or the refresh failed).
    async fn ensure_fresh(self: &Arc<Self>) -> bool {
        self.start();
        if self.stale.load(Ordering::SeqCst) > self.fresh.load(Ordering::SeqCst)
            && self.refresh().await.is_err()
        {
            return false;
        }
        self.ready()
    }

    /// At most `limit` (capped by `list_limit`, as the database path caps) records that
    /// `wanted` selects, `detail`'s filters keep and that lie past its position, in its order;
    /// `truncated` when there were more. The rules are the database path's, from the domain:
    /// in key order the first matches come out of the index in order (the position compared
    /// by the folded key, as `Detail::is_after` does); in another order every match past the
    /// position is read, at most `ORDER_SCAN_MAX` (more: the database path's error), and
    /// sorted by `Detail::page_of`.
    pub fn search_detail(
        &self,
        wanted: Wanted<'_>,
        include_invalid: bool,
        limit: usize,
        detail: &Detail<<T::Record as Record>::Field>,
    ) -> Result<Page<T::Record>, SourceError> {
        let rules = self.table.matching();
        let everything = Expr::Term {
            pattern: Pattern::wildcards("*"),
            negated: false,
        };
        let (prepared, need) = match wanted {
            Wanted::Query(query) => (
                rules.prepared_query(query),
                need(query, &rules.prefix, &rules.suffix),
            ),
            Wanted::Key(_) => (everything, None),
        };
        let q = Query::new(
            &prepared,
            need.as_ref(),
            rules.case,
            include_invalid || detail.wants_invalid(),
        );
        let name = self.table.source_name();
        let case = rules.case;
        let by_key = detail.order.is_by_key();
        let limit = limit.min(self.table.limit_cap());
        // The login pattern, the filters and (out of key order) the position are the domain's
        // own rules: the key against the pattern, the record (unpacked only when needed)
        // against the rest.
        let extra = |row: &Row| {
            let key_ok = match wanted {
                Wanted::Key(p) => case.matches(p, row.key()),
                Wanted::Query(_) => true,
            };
            key_ok
                && if by_key {
                    detail.filters.is_empty()
                        || detail.filters_match(&self.table.complete(row.record(name)), case)
                } else {
                    detail.keeps(&self.table.complete(row.record(name)), case)
                }
        };
        let after = match &detail.after {
            Some(pos) if by_key => Some(After::Folded(pos.key.clone())),
            _ => None,
        };
        let cap = if by_key { limit } else { ORDER_SCAN_MAX };
        let (rows, truncated) = self.read_state().search(&q, after.as_ref(), cap, &extra);
        let items: Vec<T::Record> = rows
            .iter()
            .map(|r| self.table.complete(r.record(name)))
            .collect();
        if by_key {
            return Ok(Page { items, truncated });
        }
        if truncated {
            return Err(SourceError::order_scan_exceeded());
        }
        Ok(detail.page_of(items, limit))
    }
}

/// What a search selects, besides its detail.
#[derive(Clone, Copy)]
pub enum Wanted<'a> {
    /// The grammar over the search fields.
    Query(&'a Expr),
    /// Keys matching a `*` pattern under the source's case rule (`UserCriterion::Login`).
    Key(&'a Pattern),
}

impl<T: Table> MemoryIndex<T> {
    /// The next search refreshes before it answers.
    pub fn mark_stale(&self) {
        self.stale.fetch_add(1, Ordering::SeqCst);
    }
}

/// How long a read of the whole table may take: [`FULL_READ_CALLS`] `call_timeout`s, at
/// least a minute.
fn bound_full<T: Table>(table: &T) -> Duration {
    table
        .call_timeout()
        .saturating_mul(FULL_READ_CALLS)
        .max(Duration::from_secs(60))
}

/// Our clock in epoch seconds.
fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Builds a base off the async threads (sorting and postings of a large table take a while).
async fn build(rows: Vec<Row>) -> Arc<Base> {
    match tokio::task::spawn_blocking(move || Base::build(rows)).await {
        Ok(base) => Arc::new(base),
        Err(e) => {
            tracing::error!(error = %e, "building a search index failed");
            Arc::new(Base::default())
        }
    }
}

/// Refreshes every `index_refresh` while the index is alive.
async fn refresh_loop<T: Table>(index: Weak<MemoryIndex<T>>) {
    loop {
        let Some(me) = index.upgrade() else {
            return;
        };
        // A failure is logged once and leaves searches to the database; the next round retries.
        let _ = me.refresh().await;
        let every = me.table.refresh_every();
        if !me.healthy.load(Ordering::SeqCst) {
            let p = me.progress.lock().await;
            me.report(&p);
        }
        drop(me);
        tokio::time::sleep(every).await;
    }
}

/// A SQL customer-user source with its index.
pub struct IndexedUsers {
    inner: Arc<SqlUserSource>,
    index: Arc<MemoryIndex<SqlUserSource>>,
}

impl IndexedUsers {
    pub fn new(inner: Arc<SqlUserSource>) -> Arc<Self> {
        let index = MemoryIndex::new(inner.clone());
        Arc::new(Self { inner, index })
    }

    /// The index (for tests and benchmarks: `refresh`, `search_detail`, `ready`).
    pub fn index(&self) -> &Arc<MemoryIndex<SqlUserSource>> {
        &self.index
    }
}

impl Freshness for IndexedUsers {
    fn mark_stale(&self) {
        self.index.mark_stale();
    }
    fn start(&self) {
        self.index.start();
    }
}

impl Freshness for IndexedCustomers {
    fn mark_stale(&self) {
        self.index.mark_stale();
    }
    fn start(&self) {
        self.index.start();
    }
}

#[async_trait]
impl UserReader for IndexedUsers {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn schema(&self) -> &UserSchema {
        self.inner.schema()
    }
    fn customer_company_support(&self) -> bool {
        self.inner.customer_company_support()
    }
    async fn ping(&self) -> Result<(), SourceError> {
        self.inner.ping().await
    }
    async fn get(&self, login: &str) -> Result<Option<CustomerUser>, SourceError> {
        self.inner.get(login).await
    }
    async fn search(&self, search: &UserSearch) -> Result<Page<CustomerUser>, SourceError> {
        let wanted = match &search.criterion {
            UserCriterion::Query(expr) => Some(Wanted::Query(expr)),
            UserCriterion::Login(pattern) => Some(Wanted::Key(pattern)),
            UserCriterion::Email(_) | UserCriterion::CustomerId(_) => None,
        };
        if let Some(wanted) = wanted {
            if self.index.ensure_fresh().await {
                return self.index.search_detail(
                    wanted,
                    search.include_invalid,
                    search.limit,
                    &search.detail,
                );
            }
        }
        self.inner.search(search).await
    }
    async fn find_by_emails(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, CustomerUser)>, SourceError> {
        self.inner.find_by_emails(addresses).await
    }
    async fn get_many(&self, logins: &[String]) -> Result<Vec<CustomerUser>, SourceError> {
        self.inner.get_many(logins).await
    }
    async fn by_customer_ids(
        &self,
        customer_ids: &[String],
    ) -> Result<Vec<CustomerUser>, SourceError> {
        self.inner.by_customer_ids(customer_ids).await
    }
    async fn record_memberships(&self, login: &str) -> Result<Vec<String>, SourceError> {
        self.inner.record_memberships(login).await
    }
    async fn record_members_of(&self, customer_id: &str) -> Result<Vec<String>, SourceError> {
        self.inner.record_members_of(customer_id).await
    }
}

#[async_trait]
impl UserWriter for IndexedUsers {
    async fn create(
        &self,
        user: &CustomerUser,
        password_hash: Option<&str>,
    ) -> Result<CustomerUser, Error> {
        let stored = self.inner.create(user, password_hash).await?;
        self.index.upsert(&stored);
        Ok(stored)
    }

    async fn update(&self, login: &str, patch: &CustomerUserPatch) -> Result<CustomerUser, Error> {
        let result = self.inner.update(login, patch).await;
        match &result {
            Ok(stored) => {
                if stored.login != login {
                    self.index.remove(login);
                }
                self.index.upsert(stored);
            }
            // The outcome is unknown (e.g. the commit's answer was lost): read again.
            Err(_) => self.index.mark_stale(),
        }
        result
    }

    async fn store_password_hash(
        &self,
        login: &str,
        expected_old: Option<&str>,
        new: &str,
    ) -> Result<bool, Error> {
        let stored = self
            .inner
            .store_password_hash(login, expected_old, new)
            .await?;
        if stored {
            // Only `change_time` of the record changed; read it again.
            match self.inner.get(login).await {
                Ok(Some(u)) => self.index.upsert(&u),
                _ => self.index.mark_stale(),
            }
        }
        Ok(stored)
    }

    async fn rename_customer_id(&self, old: &str, new: &str) -> Result<u64, Error> {
        let result = self.inner.rename_customer_id(old, new).await;
        self.index.mark_stale();
        result
    }
}

/// A SQL customer source with its index.
pub struct IndexedCustomers {
    inner: Arc<SqlCustomerSource>,
    index: Arc<MemoryIndex<SqlCustomerSource>>,
}

impl IndexedCustomers {
    pub fn new(inner: Arc<SqlCustomerSource>) -> Arc<Self> {
        let index = MemoryIndex::new(inner.clone());
        Arc::new(Self { inner, index })
    }

    /// The index (for tests and benchmarks).
    pub fn index(&self) -> &Arc<MemoryIndex<SqlCustomerSource>> {
        &self.index
    }
}

#[async_trait]
impl CustomerReader for IndexedCustomers {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn schema(&self) -> &CustomerSchema {
        self.inner.schema()
    }
    async fn ping(&self) -> Result<(), SourceError> {
        self.inner.ping().await
    }
    async fn get(&self, customer_id: &str) -> Result<Option<Customer>, SourceError> {
        self.inner.get(customer_id).await
    }
    async fn search(&self, search: &CustomerSearch) -> Result<Page<Customer>, SourceError> {
        if self.index.ensure_fresh().await {
            return self.index.search_detail(
                Wanted::Query(&search.query),
                search.include_invalid,
                search.limit,
                &search.detail,
            );
        }
        self.inner.search(search).await
    }
}

#[async_trait]
impl CustomerWriter for IndexedCustomers {
    fn renames_users_of(&self) -> Vec<String> {
        self.inner.renames_users_of()
    }
    async fn create(&self, customer: &Customer) -> Result<Customer, Error> {
        let stored = self.inner.create(customer).await?;
        self.index.upsert(&stored);
        Ok(stored)
    }
    async fn update(&self, customer_id: &str, patch: &CustomerPatch) -> Result<Customer, Error> {
        let result = self.inner.update(customer_id, patch).await;
        match &result {
            Ok(stored) => {
                if stored.customer_id != customer_id {
                    self.index.remove(customer_id);
                }
                self.index.upsert(stored);
            }
            Err(_) => self.index.mark_stale(),
        }
        result
    }
}

/// The bundle of a SQL customer-user source, its searches answered by an index unless
/// `search_index = "database"`.
pub fn user_bundle(source: Arc<SqlUserSource>) -> UserSourceBundle {
    let mode = source.table_settings().search_index;
    let bundle = source.clone().into_bundle();
    if mode == SearchIndexMode::Database {
        return bundle;
    }
    let indexed = IndexedUsers::new(source);
    let mut bundle = bundle.with_freshness(indexed.clone());
    bundle.reader = indexed.clone();
    if bundle.writer.is_some() {
        bundle.writer = Some(indexed);
    }
    bundle
}

/// The bundle of a SQL customer source, its searches answered by an index unless
/// `search_index = "database"`.
pub fn customer_bundle(source: Arc<SqlCustomerSource>) -> CustomerSourceBundle {
    let mode = source.table_settings().search_index;
    let bundle = source.clone().into_bundle();
    if mode == SearchIndexMode::Database {
        return bundle;
    }
    let indexed = IndexedCustomers::new(source);
    let mut bundle = bundle.with_freshness(indexed.clone());
    bundle.reader = indexed.clone();
    if bundle.writer.is_some() {
        bundle.writer = Some(indexed);
    }
    bundle
}
