//! Customer users from an LDAP directory: reads and password checks by bind. Read-only for user
//! data (its bundle has no writer); preferences, memberships and login state live in the SQL
//! companion tables of `store_url`, as in OTRS.

use std::sync::Arc;

use async_trait::async_trait;
use ldap3::SearchEntry;

use super::{
    any_eq, detail_page, eq, expr, fetch_limit, fill, pattern, requested, values, with_filters,
    Directory, DirectorySettings, BATCH,
};
use crate::config::UserSourceSettings;
use crate::domain::{
    search::{Page, UserCriterion, UserSearch},
    CustomerUser, UserField, UserRules, UserSchema, Validity,
};
use crate::source::matching::user_rules;
use crate::source::sql::{side::SideTables, Db};
use crate::source::{Credentials, DirectoryBind, SourceError, UserReader, UserSourceBundle};

pub struct LdapUserSource {
    cfg: UserSourceSettings,
    /// What a search keeps, postmaster values, key equality, full name.
    rules: UserRules,
    dir: Directory,
    side: Arc<SideTables>,
    attrs: Vec<String>,
}

impl LdapUserSource {
    /// `store` keeps preferences and memberships of this directory's users.
    pub fn new(cfg: UserSourceSettings, store: Arc<Db>) -> Result<Self, String> {
        let dir = Directory::new(DirectorySettings::from_config(&cfg.settings, &cfg.backend)?)?;
        Ok(Self {
            attrs: requested(&cfg.map),
            rules: user_rules(&cfg),
            side: Arc::new(SideTables::new(store, &cfg.settings.name)),
            dir,
            cfg,
        })
    }

    fn attr(&self, f: UserField) -> &str {
        self.cfg.map.field_column(f).unwrap_or("uid")
    }

    /// The record of an entry (valid unless marked otherwise) and all its customer ids.
    fn to_user(&self, entry: &SearchEntry) -> (CustomerUser, Vec<String>) {
        let vals = values(entry);
        let mut u = CustomerUser::default();
        fill(&mut u, &self.cfg.map, &vals);
        u.source = self.cfg.settings.name.clone();
        u.full_name = self.rules.full_name(&u);
        let cids = self
            .cfg
            .map
            .field_column(UserField::CustomerId)
            .and_then(|a| vals.get(&a.to_ascii_lowercase()))
            .map(|v| v.to_vec())
            .unwrap_or_default();
        (u, cids)
    }

    /// Entries matching `core` (AND-ed with the always-filter, and NOT invalid when
    /// `valid_only`), at most `limit`.
    async fn users(
        &self,
        core: &str,
        valid_only: bool,
        limit: Option<usize>,
    ) -> Result<(Vec<(CustomerUser, Vec<String>)>, bool), SourceError> {
        let filter = self.dir.filter(core, valid_only);
        let (entries, cut) = self.dir.search(&filter, &self.attrs, limit).await?;
        let mut users: Vec<(CustomerUser, Vec<String>)> = entries
            .iter()
            .map(|e| self.to_user(e))
            .filter(|(u, _)| !u.login.is_empty())
            .collect();
        if !valid_only {
            self.mark_invalid(&mut users).await?;
        }
        Ok((users, cut))
    }

    /// Marks the users that match `invalid_filter`, one query per batch.
    async fn mark_invalid(
        &self,
        users: &mut [(CustomerUser, Vec<String>)],
    ) -> Result<(), SourceError> {
        let Some(invalid) = &self.dir.settings.invalid_filter else {
            return Ok(());
        };
        let login = self.attr(UserField::Login).to_owned();
        let logins: Vec<String> = users.iter().map(|(u, _)| u.login.clone()).collect();
        for chunk in logins.chunks(BATCH) {
            let core = format!("(&{invalid}{})", any_eq(&[&login], chunk));
            let (entries, _) = self
                .dir
                .search(
                    &self.dir.filter(&core, false),
                    std::slice::from_ref(&login),
                    None,
                )
                .await?;
            for e in &entries {
                let (bad, _) = self.to_user(e);
                for (u, _) in users.iter_mut() {
                    if self.rules.same_key(&u.login, &bad.login) {
                        u.validity = Validity::Invalid;
                    }
                }
            }
        }
        Ok(())
    }

    async fn by_attr_values(
        &self,
        attr: &str,
        values: &[String],
    ) -> Result<Vec<(CustomerUser, Vec<String>)>, SourceError> {
        let mut out = Vec::new();
        for chunk in values.chunks(BATCH) {
            let (users, _) = self.users(&any_eq(&[attr], chunk), false, None).await?;
            out.extend(users);
        }
        Ok(out)
    }
}

impl LdapUserSource {
    /// The capabilities the directory holds: reads, passwords checked by binding, and the SQL
    /// companion tables in `store_url`; no writer (read-only for user data).
    pub fn into_bundle(self: Arc<Self>) -> UserSourceBundle {
        UserSourceBundle::new(
            self.clone(),
            None,
            Credentials::Bind(self.clone()),
            self.side.clone(),
        )
        .with_fuse(self.dir.fuse())
    }
}

#[async_trait]
impl UserReader for LdapUserSource {
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
        self.dir.ping().await
    }

    async fn get(&self, login: &str) -> Result<Option<CustomerUser>, SourceError> {
        let (users, _) = self
            .users(&eq(self.attr(UserField::Login), login), false, None)
            .await?;
        Ok(users
            .into_iter()
            .map(|(u, _)| u)
            .find(|u| self.rules.same_key(&u.login, login)))
    }

    async fn search(&self, search: &UserSearch) -> Result<Page<CustomerUser>, SourceError> {
        let limit = search.limit.min(self.cfg.settings.list_limit as usize);
        let core = match &search.criterion {
            UserCriterion::Query(e) => {
                let attrs: Vec<&str> = self
                    .rules
                    .search_fields
                    .iter()
                    .filter_map(|a| self.cfg.map.column(a))
                    .collect();
                expr(e, &attrs, &self.rules.prefix, &self.rules.suffix)
            }
            UserCriterion::Email(address) => {
                let attrs: Vec<&str> = self
                    .cfg
                    .postmaster_fields
                    .iter()
                    .filter_map(|a| self.cfg.map.column(a))
                    .collect();
                any_eq(&attrs, std::slice::from_ref(address))
            }
            UserCriterion::CustomerId(p) => pattern(self.attr(UserField::CustomerId), p),
            UserCriterion::Login(p) => pattern(self.attr(UserField::Login), p),
        };
        let detail = &search.detail;
        let core = with_filters(core, detail, &self.cfg.map);
        let valid_only = !search.include_invalid && !detail.wants_invalid();
        let (users, cut) = self
            .users(&core, valid_only, Some(fetch_limit(detail, limit)))
            .await?;
        let kept: Vec<CustomerUser> = users
            .into_iter()
            .map(|(u, _)| u)
            .filter(|u| self.rules.user_matches(&search.criterion, u))
            .collect();
        detail_page(kept, cut, detail, self.rules.case, limit)
    }

    async fn find_by_emails(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, CustomerUser)>, SourceError> {
        let attrs: Vec<&str> = self
            .cfg
            .postmaster_fields
            .iter()
            .filter_map(|a| self.cfg.map.column(a))
            .collect();
        let mut out = Vec::new();
        for chunk in addresses.chunks(BATCH) {
            let (users, _) = self.users(&any_eq(&attrs, chunk), true, None).await?;
            for (u, _) in users {
                let mut matched: Vec<String> = self
                    .rules
                    .postmaster_values(&u)
                    .filter(|v| chunk.contains(v))
                    .collect();
                matched.dedup();
                for a in matched {
                    out.push((a, u.clone()));
                }
            }
        }
        Ok(out)
    }

    async fn get_many(&self, logins: &[String]) -> Result<Vec<CustomerUser>, SourceError> {
        let login = self.attr(UserField::Login).to_owned();
        Ok(self
            .by_attr_values(&login, logins)
            .await?
            .into_iter()
            .map(|(u, _)| u)
            .filter(|u| logins.iter().any(|l| self.rules.same_key(l, &u.login)))
            .collect())
    }

    async fn by_customer_ids(
        &self,
        customer_ids: &[String],
    ) -> Result<Vec<CustomerUser>, SourceError> {
        let attr = self.attr(UserField::CustomerId).to_owned();
        Ok(self
            .by_attr_values(&attr, customer_ids)
            .await?
            .into_iter()
            .map(|(u, _)| u)
            .collect())
    }

    async fn record_memberships(&self, login: &str) -> Result<Vec<String>, SourceError> {
        // Further values of a multi-valued customer-id attribute count as memberships.
        let (users, _) = self
            .users(&eq(self.attr(UserField::Login), login), false, None)
            .await?;
        Ok(users
            .into_iter()
            .filter(|(u, _)| self.rules.same_key(&u.login, login))
            .flat_map(|(_, cids)| cids.into_iter().skip(1))
            .collect())
    }

    async fn record_members_of(&self, customer_id: &str) -> Result<Vec<String>, SourceError> {
        let mut logins = Vec::new();
        let cid_attr = self.attr(UserField::CustomerId).to_owned();
        for (u, cids) in self
            .by_attr_values(&cid_attr, &[customer_id.to_owned()])
            .await?
        {
            if cids
                .iter()
                .skip(1)
                .any(|c| self.rules.same_key(c, customer_id))
            {
                logins.push(u.login);
            }
        }
        Ok(logins)
    }
}

#[async_trait]
impl DirectoryBind for LdapUserSource {
    async fn with_dn(&self, login: &str) -> Result<Option<(CustomerUser, String)>, SourceError> {
        let filter = self
            .dir
            .filter(&eq(self.attr(UserField::Login), login), false);
        let (entries, _) = self.dir.search(&filter, &self.attrs, None).await?;
        for e in &entries {
            let mut found = vec![self.to_user(e)];
            if self.rules.same_key(&found[0].0.login, login) {
                self.mark_invalid(&mut found).await?;
                let (user, _) = found.remove(0);
                return Ok(Some((user, e.dn.clone())));
            }
        }
        Ok(None)
    }

    async fn bind_as(&self, dn: &str, password: &str) -> Result<bool, SourceError> {
        self.dir.bind_as(dn, password).await
    }
}
