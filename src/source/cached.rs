//! A per-replica cache in front of a customer-user source (moka): Get and ResolveSenders
//! answers, negative ones included, for `cache_ttl`. Every write this replica makes through the
//! source invalidates what it may have changed; answers cached by other replicas stay at most
//! `cache_ttl` old. A call with `cache-control: no-cache` reads through ([`bypass`]). Logins
//! are cache keys under the source's case rule ([`CaseRule::key`]), so a case-sensitive source
//! never answers `Alice` from what it found for `alice`.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use moka::future::Cache;

use super::{sql::side::SideTables, CustomerUserSource, Secret, SourceError};
use crate::domain::{
    search::{Page, UserSearch},
    CaseRule, CustomerUser, CustomerUserPatch, UserSchema,
};
use crate::error::Error;

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

pub struct CachedUserSource {
    inner: Arc<dyn CustomerUserSource>,
    /// The inner source's case rule: logins are cached under `case.key(login)`.
    case: CaseRule,
    users: Cache<String, Option<CustomerUser>>,
    senders: Cache<String, Vec<CustomerUser>>,
}

impl CachedUserSource {
    /// `case` is the case rule of `inner` (two logins share a cache entry exactly when it calls
    /// them the same).
    pub fn new(
        inner: Arc<dyn CustomerUserSource>,
        case: CaseRule,
        ttl: Duration,
        size: u64,
    ) -> Self {
        Self {
            inner,
            case,
            users: Cache::builder()
                .max_capacity(size)
                .time_to_live(ttl)
                .build(),
            senders: Cache::builder()
                .max_capacity(size)
                .time_to_live(ttl)
                .build(),
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

    async fn forget(&self, logins: &[&str]) {
        for l in logins {
            self.users.invalidate(&self.case.key(l)).await;
        }
        self.senders.invalidate_all();
    }
}

#[async_trait]
impl CustomerUserSource for CachedUserSource {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn writable(&self) -> bool {
        self.inner.writable()
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
        if !bypassed() {
            if let Some(hit) = self.users.get(&key).await {
                self.count("get", true);
                return Ok(hit);
            }
        }
        self.count("get", false);
        let answer = self.inner.get(login).await?;
        self.users.insert(key, answer.clone()).await;
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
            match (!bypassed()).then(|| self.senders.get(a)) {
                Some(lookup) => match lookup.await {
                    Some(users) => {
                        self.count("sender", true);
                        out.extend(users.into_iter().map(|u| (a.clone(), u)));
                    }
                    None => missing.push(a.clone()),
                },
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
            self.senders.insert(a.clone(), users).await;
        }
        out.extend(found);
        Ok(out)
    }

    async fn create(
        &self,
        user: &CustomerUser,
        password_hash: Option<&str>,
    ) -> Result<CustomerUser, Error> {
        let r = self.inner.create(user, password_hash).await;
        self.forget(&[&user.login]).await;
        r
    }

    async fn update(&self, login: &str, patch: &CustomerUserPatch) -> Result<CustomerUser, Error> {
        let r = self.inner.update(login, patch).await;
        let new = patch.new_key().unwrap_or(login).to_owned();
        self.forget(&[login, &new]).await;
        r
    }

    async fn memberships(&self, login: &str) -> Result<Vec<String>, SourceError> {
        self.inner.memberships(login).await
    }
    async fn set_membership(
        &self,
        login: &str,
        customer_id: &str,
        member: bool,
    ) -> Result<(), Error> {
        self.inner.set_membership(login, customer_id, member).await
    }
    async fn members_of(&self, customer_id: &str) -> Result<Vec<String>, SourceError> {
        self.inner.members_of(customer_id).await
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
    async fn members_of_any(&self, customer_ids: &[String]) -> Result<Vec<String>, SourceError> {
        self.inner.members_of_any(customer_ids).await
    }
    async fn credentials(
        &self,
        login: &str,
    ) -> Result<Option<(CustomerUser, Secret)>, SourceError> {
        // Never cached: a login decision always sees the stored state.
        self.inner.credentials(login).await
    }
    async fn bind_as(&self, dn: &str, password: &str) -> Result<bool, SourceError> {
        self.inner.bind_as(dn, password).await
    }
    async fn store_password_hash(
        &self,
        login: &str,
        expected_old: Option<&str>,
        new: &str,
    ) -> Result<bool, Error> {
        self.inner
            .store_password_hash(login, expected_old, new)
            .await
    }
    fn side(&self) -> &SideTables {
        self.inner.side()
    }
    async fn rename_customer_id(&self, old: &str, new: &str) -> Result<u64, Error> {
        let r = self.inner.rename_customer_id(old, new).await;
        self.invalidate_cache();
        r
    }
    fn invalidate_cache(&self) {
        self.users.invalidate_all();
        self.senders.invalidate_all();
    }
}
