//! Walks (AIP-158 pages), counts and batch gets over every source, for customer users and
//! customers alike: each step asks every selected source for the page after the position
//! ([`Detail::after`]) in the walk's order and merges with [`merge_walk`]; counts walk the
//! whole answer by key; batch gets ask every source once (customer users) or per id
//! (customers) and answer in request order.
//!
//! **Duplicates in an order other than by key.** In the default order a login held by several
//! sources sorts to one position in every source, so the page sees all its copies and keeps the
//! first source's. In another order the copies sort apart; so that a walk answers each login
//! exactly once, a record of a later source is answered only when no earlier source holds its
//! key at all (asked per page). A login whose first source's record does not match the search
//! is then left out, even when a later source's record would match.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use futures::future::join_all;
use tokio::time::Instant;

use super::fanin::{fan_out, merge_walk, Bounded, Held, SourceStatus};
use super::Directory;
use crate::domain::{
    fold,
    search::{CustomerSearch, Detail, Order, Page, SortKey, UserSearch},
    Customer, CustomerField, CustomerUser, Record, UserField,
};
use crate::error::{Error, Result};
use crate::source::{CustomerSourceBundle, SourceError, UserSourceBundle};

/// The most matches a count reads; past it the count is not given (every source is named
/// uncounted) rather than guessed.
pub const COUNT_MAX: usize = 100_000;

/// The most keys one batch get takes.
pub const MAX_BATCH: usize = 1000;

/// How many single-record reads of one customer source a batch get runs at once.
const GET_CONCURRENCY: usize = 16;

/// One page of a walk.
#[derive(Debug, Clone)]
pub struct Walk<T> {
    pub items: Vec<T>,
    /// The position to continue after; `None` on the last page.
    pub next: Option<SortKey>,
    pub status: Vec<SourceStatus>,
    /// With `include_total`.
    pub total: Option<Total>,
}

/// A count of every match, deduplicated across sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Total {
    /// `None` when more than [`COUNT_MAX`] matches were found.
    pub count: Option<u64>,
    /// Sources whose matches the count leaves out (failed during the count, or every source
    /// when the count stopped at [`COUNT_MAX`]).
    pub uncounted: Vec<String>,
}

/// One step of a walk over `sources` (precedence order): the page after `detail.after`, at
/// most `limit`, with the later-source rule of the module documentation in orders other
/// than by key (`holds` answers which of the keys a source holds).
async fn step<'a, S, R, F, Fut, H, HFut>(
    sources: &'a [&'a Bounded<S>],
    order: &Order<R::Field>,
    limit: usize,
    deadline: Instant,
    search: F,
    holds: H,
) -> Result<(Vec<R>, Option<SortKey>, Vec<SourceStatus>)>
where
    S: Held + 'a,
    R: Record,
    F: Fn(&'a S) -> Fut,
    Fut: Future<Output = std::result::Result<Page<R>, SourceError>>,
    H: Fn(&'a S, Vec<String>) -> HFut,
    HFut: Future<Output = std::result::Result<Vec<String>, SourceError>>,
{
    let names: Vec<&str> = sources.iter().map(|b| b.source.name()).collect();
    let results = fan_out(sources.iter().copied(), deadline, search).await;
    let walked = merge_walk(results, &names, order, limit)?;
    let mut items = walked.items;
    if !order.is_by_key() && items.iter().any(|(i, _)| *i > 0) {
        // Keys of later sources' records, asked of every earlier source.
        let mut held: HashSet<(usize, String)> = HashSet::new();
        for (j, b) in sources.iter().enumerate() {
            let keys: Vec<String> = items
                .iter()
                .filter(|(i, _)| *i > j)
                .map(|(_, r)| r.key().to_owned())
                .collect();
            if keys.is_empty() {
                continue;
            }
            match holds(&b.source, keys).await {
                Ok(found) => held.extend(found.into_iter().map(|k| (j, fold(&k)))),
                // An earlier source that cannot say is treated as holding nothing (its status
                // says it failed already, or the page has a partial answer).
                Err(e) => {
                    tracing::debug!(source = b.source.name(), error = %e, "holds check failed")
                }
            }
        }
        items.retain(|(i, r)| {
            let k = fold(r.key());
            (0..*i).all(|j| !held.contains(&(j, k.clone())))
        });
    }
    Ok((
        items.into_iter().map(|(_, r)| r).collect(),
        walked.next,
        walked.status,
    ))
}

/// Counts a walk by key from the start: steps of `MAX_LIMIT` until the last page or
/// [`COUNT_MAX`]; a source with an error in any step is uncounted.
async fn count<'a, S, R, F, Fut>(
    sources: &'a [&'a Bounded<S>],
    deadline: Instant,
    search: F,
) -> Total
where
    S: Held + 'a,
    R: Record,
    F: Fn(&'a S, Option<SortKey>) -> Fut,
    Fut: Future<Output = std::result::Result<Page<R>, SourceError>>,
{
    let by_key = Order { keys: Vec::new() };
    let mut after: Option<SortKey> = None;
    let mut counted: u64 = 0;
    let mut uncounted: Vec<String> = Vec::new();
    let all = || sources.iter().map(|b| b.source.name().to_owned()).collect();
    loop {
        let position = after.clone();
        let search = &search;
        let step = step(
            sources,
            &by_key,
            super::MAX_LIMIT,
            deadline,
            move |s| search(s, position.clone()),
            |_, _| async { Ok(Vec::new()) },
        )
        .await;
        let Ok((items, next, status)) = step else {
            return Total {
                count: None,
                uncounted: all(),
            };
        };
        for s in status.into_iter().filter(|s| s.error.is_some()) {
            if !uncounted.contains(&s.source) {
                uncounted.push(s.source);
            }
        }
        counted += items.len() as u64;
        if counted > COUNT_MAX as u64 {
            return Total {
                count: None,
                uncounted: all(),
            };
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Total {
        count: Some(counted),
        uncounted,
    }
}

/// What a walk needs of a search and of the sources it runs on, for customer users and
/// customers alike.
trait Walkable: Clone + Send + Sync {
    type Record: Record;
    type Source: Held + Sync;
    fn detail(&mut self) -> &mut Detail<<Self::Record as Record>::Field>;
    fn limit(&mut self) -> &mut usize;
    /// The search on one source.
    fn run<'a>(&'a self, source: &'a Self::Source) -> BoxFuture<'a, Page<Self::Record>>;
    /// Which of `keys` the source holds (any validity).
    fn holds(source: &Self::Source, keys: Vec<String>) -> BoxFuture<'_, Vec<String>>;
}

type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn Future<Output = std::result::Result<T, SourceError>> + Send + 'a>>;

impl Walkable for UserSearch {
    type Record = CustomerUser;
    type Source = UserSourceBundle;
    fn detail(&mut self) -> &mut Detail<UserField> {
        &mut self.detail
    }
    fn limit(&mut self) -> &mut usize {
        &mut self.limit
    }
    fn run<'a>(&'a self, source: &'a UserSourceBundle) -> BoxFuture<'a, Page<CustomerUser>> {
        source.reader.search(self)
    }
    fn holds(source: &UserSourceBundle, keys: Vec<String>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let found = source.reader.get_many(&keys).await?;
            Ok(found.into_iter().map(|u| u.login).collect())
        })
    }
}

impl Walkable for CustomerSearch {
    type Record = Customer;
    type Source = CustomerSourceBundle;
    fn detail(&mut self) -> &mut Detail<CustomerField> {
        &mut self.detail
    }
    fn limit(&mut self) -> &mut usize {
        &mut self.limit
    }
    fn run<'a>(&'a self, source: &'a CustomerSourceBundle) -> BoxFuture<'a, Page<Customer>> {
        source.reader.search(self)
    }
    fn holds(source: &CustomerSourceBundle, keys: Vec<String>) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let found = get_each(&keys, |k| source.reader.get(k)).await?;
            Ok(found.into_iter().map(|c| c.customer_id).collect())
        })
    }
}

/// One page of a walk over the selected sources, and the count when asked for.
async fn walk<Q: Walkable>(
    all: &[Bounded<Q::Source>],
    mut search: Q,
    only: &[String],
    include_total: bool,
    deadline: Instant,
) -> Result<Walk<Q::Record>> {
    let sources = selected(all, only)?;
    search.detail().paged = true;
    let limit = *search.limit();
    let order = search.detail().order.clone();
    let query = &search;
    let (items, next, status) = step(
        &sources,
        &order,
        limit,
        deadline,
        |s| query.run(s),
        |s, keys| Q::holds(s, keys),
    )
    .await?;
    let total = if include_total {
        // The same search by key from the start, in the largest steps.
        let mut by_key = search.clone();
        *by_key.limit() = super::MAX_LIMIT;
        by_key.detail().order = Order { keys: Vec::new() };
        let by_key = &by_key;
        Some(
            count(&sources, deadline, |s, after| {
                let mut q = by_key.clone();
                q.detail().after = after;
                async move { q.run(s).await }
            })
            .await,
        )
    } else {
        None
    };
    Ok(Walk {
        items,
        next,
        status,
        total,
    })
}

/// The selected sources (`only` empty: all), or `InvalidArgument` naming `sources[i]`.
fn selected<'a, S: Held>(all: &'a [Bounded<S>], only: &[String]) -> Result<Vec<&'a Bounded<S>>> {
    for (i, name) in only.iter().enumerate() {
        if !all.iter().any(|b| b.source.name() == name) {
            return Err(Error::invalid(
                format!("sources[{i}]"),
                format!("no {} source is named {name:?}", S::KIND),
            ));
        }
    }
    Ok(all
        .iter()
        .filter(|b| only.is_empty() || only.iter().any(|n| n == b.source.name()))
        .collect())
}

/// Answers `keys` in request order from what the sources found (first source first), and the
/// keys no source has.
fn in_request_order<R: Record>(keys: &[String], found: Vec<Vec<R>>) -> (Vec<R>, Vec<String>) {
    let mut by_key: HashMap<String, R> = HashMap::new();
    for records in found {
        for r in records {
            by_key.entry(fold(r.key())).or_insert(r);
        }
    }
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for k in keys {
        match by_key.get(&fold(k)) {
            Some(r) => out.push(r.clone()),
            None => missing.push(k.clone()),
        }
    }
    (out, missing)
}

/// Refuses more than [`MAX_BATCH`] keys (`field` names them).
fn check_batch(field: &str, keys: &[String]) -> Result<()> {
    if keys.len() > MAX_BATCH {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_BATCH} per call; split the batch"),
        ));
    }
    Ok(())
}

impl Directory {
    /// Whether some customer-user source maps the extra attribute `name`.
    pub fn user_extra_known(&self, name: &str) -> bool {
        self.user_sources().any(|s| {
            s.reader
                .schema()
                .rule(&crate::domain::Attr::Extra(name.to_owned()))
                .is_some()
        })
    }

    /// Whether some customer source maps the extra attribute `name`.
    pub fn customer_extra_known(&self, name: &str) -> bool {
        self.customer_sources().any(|s| {
            s.reader
                .schema()
                .rule(&crate::domain::Attr::Extra(name.to_owned()))
                .is_some()
        })
    }

    /// One page of a customer-user walk: `search.limit` is the page size (each source cuts it
    /// further to its `list_limit`, which makes pages smaller, never wrong), `search.detail`
    /// the filters, order and position. With `include_total` the answer carries the count.
    pub async fn walk_users(
        &self,
        search: UserSearch,
        only: &[String],
        include_total: bool,
        deadline: Instant,
    ) -> Result<Walk<CustomerUser>> {
        walk(&self.users, search, only, include_total, deadline).await
    }

    /// One page of a customer walk (see [`Directory::walk_users`]).
    pub async fn walk_customers(
        &self,
        search: CustomerSearch,
        only: &[String],
        include_total: bool,
        deadline: Instant,
    ) -> Result<Walk<Customer>> {
        walk(&self.customers, search, only, include_total, deadline).await
    }

    /// The customer users with these logins, in request order (first source wins), and the
    /// logins no source has; one `get_many` per source. A source that fails leaves its
    /// records out (its logins then count as not found unless another source has them);
    /// every source failing is `Unavailable`.
    pub async fn batch_get_users(
        &self,
        logins: &[String],
        deadline: Instant,
    ) -> Result<(Vec<CustomerUser>, Vec<String>)> {
        check_batch("logins", logins)?;
        let results = fan_out(&self.users, deadline, |s| s.reader.get_many(logins)).await;
        let collected = super::collect(results, |v| (v.len(), false))?;
        Ok(in_request_order(
            logins,
            collected.answers.into_iter().map(|(_, v)| v).collect(),
        ))
    }

    /// The customers with these ids, in request order (first source wins), and the ids no
    /// source has (see [`Directory::batch_get_users`]); customer sources are read per id, at
    /// most 16 at once per source.
    pub async fn batch_get_customers(
        &self,
        customer_ids: &[String],
        deadline: Instant,
    ) -> Result<(Vec<Customer>, Vec<String>)> {
        check_batch("customer_ids", customer_ids)?;
        let results = fan_out(&self.customers, deadline, |s| {
            get_each(customer_ids, move |k| s.reader.get(k))
        })
        .await;
        let collected = super::collect(results, |v| (v.len(), false))?;
        Ok(in_request_order(
            customer_ids,
            collected.answers.into_iter().map(|(_, v)| v).collect(),
        ))
    }
}

/// Reads each key with `get`, [`GET_CONCURRENCY`] at once; the records found.
async fn get_each<'k, R, G, Fut>(
    keys: &'k [String],
    get: G,
) -> std::result::Result<Vec<R>, SourceError>
where
    G: Fn(&'k str) -> Fut,
    Fut: Future<Output = std::result::Result<Option<R>, SourceError>>,
{
    let mut out = Vec::new();
    for chunk in keys.chunks(GET_CONCURRENCY) {
        for r in join_all(chunk.iter().map(|k| get(k.as_str()))).await {
            if let Some(v) = r? {
                out.push(v);
            }
        }
    }
    Ok(out)
}
