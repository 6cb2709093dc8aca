//! Customers (companies) from an LDAP directory: read-only, so its bundle has no writer.

use async_trait::async_trait;

use super::{
    detail_page, eq, expr, fetch_limit, fill, requested, values, with_filters, Directory,
    DirectorySettings,
};
use crate::config::CustomerSourceSettings;
use crate::domain::{
    search::{CustomerSearch, Page},
    Customer, CustomerField, CustomerRules, CustomerSchema,
};
use crate::source::matching::customer_rules;
use crate::source::{CustomerReader, CustomerSourceBundle, SourceError};

pub struct LdapCustomerSource {
    cfg: CustomerSourceSettings,
    /// What a search keeps and key equality.
    rules: CustomerRules,
    dir: Directory,
    attrs: Vec<String>,
}

impl LdapCustomerSource {
    pub fn new(cfg: CustomerSourceSettings) -> Result<Self, String> {
        let dir = Directory::new(DirectorySettings::from_config(&cfg.settings, &cfg.backend)?)?;
        Ok(Self {
            attrs: requested(&cfg.map),
            rules: customer_rules(&cfg),
            dir,
            cfg,
        })
    }

    async fn customers(
        &self,
        core: &str,
        valid_only: bool,
        limit: Option<usize>,
    ) -> Result<(Vec<Customer>, bool), SourceError> {
        let (entries, cut) = self
            .dir
            .search(&self.dir.filter(core, valid_only), &self.attrs, limit)
            .await?;
        let mut out: Vec<Customer> = entries
            .iter()
            .map(|e| {
                let mut c = Customer::default();
                fill(&mut c, &self.cfg.map, &values(e));
                c.source = self.cfg.settings.name.clone();
                c
            })
            .filter(|c| !c.customer_id.is_empty())
            .collect();
        if !valid_only {
            if let Some(invalid) = &self.dir.settings.invalid_filter {
                let key = self
                    .cfg
                    .map
                    .field_column(CustomerField::CustomerId)
                    .unwrap_or("o");
                let (bad, _) = self
                    .dir
                    .search(
                        &self.dir.filter(&format!("(&{invalid}{core})"), false),
                        &[key.to_owned()],
                        None,
                    )
                    .await?;
                let bad: Vec<String> = bad
                    .iter()
                    .filter_map(|e| {
                        values(e)
                            .get(&key.to_ascii_lowercase())
                            .and_then(|v| v.first())
                            .map(|s| self.rules.case.key(s))
                    })
                    .collect();
                for c in &mut out {
                    if bad.contains(&self.rules.case.key(&c.customer_id)) {
                        c.validity = crate::domain::Validity::Invalid;
                    }
                }
            }
        }
        Ok((out, cut))
    }
}

impl LdapCustomerSource {
    /// The capabilities the directory holds: reads only (an LDAP customer source is read-only).
    pub fn into_bundle(self: std::sync::Arc<Self>) -> CustomerSourceBundle {
        let fuse = self.dir.fuse();
        CustomerSourceBundle::new(self, None).with_fuse(fuse)
    }
}

#[async_trait]
impl CustomerReader for LdapCustomerSource {
    fn name(&self) -> &str {
        &self.cfg.settings.name
    }

    fn schema(&self) -> &CustomerSchema {
        &self.cfg.map.schema
    }

    async fn ping(&self) -> Result<(), SourceError> {
        self.dir.ping().await
    }

    async fn get(&self, customer_id: &str) -> Result<Option<Customer>, SourceError> {
        let key = self
            .cfg
            .map
            .field_column(CustomerField::CustomerId)
            .unwrap_or("o");
        let (found, _) = self.customers(&eq(key, customer_id), false, None).await?;
        Ok(found
            .into_iter()
            .find(|c| self.rules.same_key(&c.customer_id, customer_id)))
    }

    async fn search(&self, search: &CustomerSearch) -> Result<Page<Customer>, SourceError> {
        let limit = search.limit.min(self.cfg.settings.list_limit as usize);
        let attrs: Vec<&str> = self
            .rules
            .search_fields
            .iter()
            .filter_map(|a| self.cfg.map.column(a))
            .collect();
        let core = expr(
            &search.query,
            &attrs,
            &self.rules.prefix,
            &self.rules.suffix,
        );
        let detail = &search.detail;
        let core = with_filters(core, detail, &self.cfg.map);
        let valid_only = !search.include_invalid && !detail.wants_invalid();
        let (found, cut) = self
            .customers(&core, valid_only, Some(fetch_limit(detail, limit)))
            .await?;
        let items: Vec<Customer> = found
            .into_iter()
            .filter(|c| self.rules.query_matches(&search.query, c))
            .collect();
        detail_page(items, cut, detail, self.rules.case, limit)
    }
}
