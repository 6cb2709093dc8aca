//! A per-replica cache in front of a customer-user source's reads (moka): Get and ResolveSenders
//! answers, negative ones included, for `cache_ttl` measured on the app's [`Clock`]. The cache
//! wraps only the reader; the directory tells it about every write this replica makes
//! ([`CachedUserReader::forget`], through the source's bundle), so answers cached by other
//! replicas stay at most `cache_ttl` old. A call with `cache-control: no-cache` reads through
//! ([`bypass`]). Every other read goes straight to the source. Logins are cache keys under the
//! source's case rule ([`CaseRule::key`]), so a case-sensitive source never answers `Alice` from
//! what it found for `alice`.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use moka::future::Cache;

use super::{SourceError, UserReader};
use crate::clock::Clock;
use crate::domain::{
    search::{Page, UserSearch},
    CaseRule, CustomerUser, UserSchema,
};

tokio::task_local! {
    static BYPASS: bool;
}

/// Runs `f` with caches bypassed (reads go to the sources, answers refresh the caches).
pub async fn bypass<F: std::future::Future>(on: bool, f: F) -> F::Output {
    BYPASS.scope(on, f).await
}

fn bypassed() -> bool {
    BYPASS.try_with(|b| *b).unwrap_or(false)
}

/// A cached answer and when it was stored ([`Clock::monotonic`]).
#[derive(Clone)]
struct Stamped<T> {
    at: Duration,
    value: T,
}

/// The cached reads of one source. Entries expire `ttl` after they were stored, by the clock
/// the cache was given (moka only bounds the number of entries).
pub struct CachedUserReader {
    inner: Arc<dyn UserReader>,
    /// The inner source's case rule: logins are cached under `case.key(login)`.
    case: CaseRule,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    users: Cache<String, Stamped<Option<CustomerUser>>>,
    senders: Cache<String, Stamped<Vec<CustomerUser>>>,
}

impl CachedUserReader {
    /// At most `size` entries per kind of answer, each valid for `ttl` on `clock`; `case` is the
    /// case rule of `inner` (two logins share a cache entry exactly when it calls them the same).
    pub fn new(
        inner: Arc<dyn UserReader>,
        case: CaseRule,
        ttl: Duration,
        size: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner,
            case,
            ttl,
            clock,
            users: Cache::builder().max_capacity(size).build(),
            senders: Cache::builder().max_capacity(size).build(),
        }
    }

    fn count(&self, kind: &'static str, hit: bool) {
        let name = if hit {
            "clientele_cache_hits_total"
        } else {
            "clientele_cache_misses_total"
        };
        metrics::counter!(name, "source" => self.inner.name().to_owned(), "kind" => kind)
            .increment(1);
    }

    fn stamp<T>(&self, value: T) -> Stamped<T> {
        Stamped {
            at: self.clock.monotonic(),
            value,
        }
    }

    /// The value of an entry that is still fresh; an expired one is dropped.
    async fn fresh<T: Clone + Send + Sync + 'static>(
        &self,
        cache: &Cache<String, Stamped<T>>,
        key: &String,
    ) -> Option<T> {
        if bypassed() {
            return None;
        }
        let entry = cache.get(key).await?;
        if self.clock.monotonic().saturating_sub(entry.at) < self.ttl {
            Some(entry.value)
        } else {
            cache.invalidate(key).await;
            None
        }
    }

    /// Forgets the answers that a write of these logins may have changed: their records, and
    /// every sender resolution.
    pub async fn forget(&self, logins: &[&str]) {
        for l in logins {
            self.users.invalidate(&self.case.key(l)).await;
        }
        self.senders.invalidate_all();
    }

    /// Forgets every cached answer (after a change made behind this source's back, e.g. a
    /// customer rename in a co-located table).
    pub fn forget_all(&self) {
        self.users.invalidate_all();
        self.senders.invalidate_all();
    }
}

#[async_trait]
impl UserReader for CachedUserReader {
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
        let key = self.case.key(login);
        if let Some(hit) = self.fresh(&self.users, &key).await {
            self.count("get", true);
            return Ok(hit);
        }
        self.count("get", false);
        let answer = self.inner.get(login).await?;
        self.users.insert(key, self.stamp(answer.clone())).await;
        Ok(answer)
    }

    async fn search(&self, search: &UserSearch) -> Result<Page<CustomerUser>, SourceError> {
        self.inner.search(search).await
    }

    async fn find_by_emails(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, CustomerUser)>, SourceError> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for a in addresses {
            match self.fresh(&self.senders, a).await {
                Some(users) => {
                    self.count("sender", true);
                    out.extend(users.into_iter().map(|u| (a.clone(), u)));
                }
                None => missing.push(a.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        for _ in &missing {
            self.count("sender", false);
        }
        let found = self.inner.find_by_emails(&missing).await?;
        let mut by_address: BTreeMap<&String, Vec<CustomerUser>> =
            missing.iter().map(|a| (a, Vec::new())).collect();
        for (a, u) in &found {
            if let Some(list) = by_address.get_mut(a) {
                list.push(u.clone());
            }
        }
        for (a, users) in by_address {
            self.senders.insert(a.clone(), self.stamp(users)).await;
        }
        out.extend(found);
        Ok(out)
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
