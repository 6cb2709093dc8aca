//! The request side of walks, shared by the gRPC API and the console: which requests walk, the
//! page size, and the checked [`Detail`] (filters, order, position from the token) with the
//! digest that binds tokens to their query. The rules themselves are the domain's
//! ([`crate::domain::search`], [`crate::domain::paging`]).

use std::collections::HashMap;

use crate::domain::{
    paging,
    query::QueryLimits,
    search::{parse_filters, parse_order, Detail, SortKey},
    Field,
};
use crate::error::{Error, FieldViolation};

/// The paging part of a search request.
pub struct PageRequest<'a> {
    pub page_size: u32,
    pub page_token: &'a str,
    pub filters: &'a HashMap<String, String>,
    pub order_by: &'a str,
    pub include_total: bool,
    /// The legacy `limit`.
    pub limit: u32,
}

/// No filters (for lists, which page by key alone).
static NO_FILTERS: std::sync::LazyLock<HashMap<String, String>> =
    std::sync::LazyLock::new(HashMap::new);

impl<'a> PageRequest<'a> {
    /// The paging part of a list request (by key; no filters, order or totals).
    pub fn list(page_size: u32, page_token: &'a str, limit: u32) -> Self {
        Self {
            page_size,
            page_token,
            filters: &NO_FILTERS,
            order_by: "",
            include_total: false,
            limit,
        }
    }

    /// The most records to answer: the page size when walking, else the legacy `limit`.
    pub fn page_limit(&self) -> usize {
        if self.walks() {
            self.size()
        } else {
            self.limit as usize
        }
    }

    /// The `next_page_token` of the answer: empty unless walking.
    pub fn token(&self, digest: &[u8; 16], next: Option<&SortKey>) -> String {
        if self.walks() {
            next_token(digest, next)
        } else {
            String::new()
        }
    }

    /// Whether the request walks (anything of paging, filters, order or totals is set); other
    /// requests keep the one-list answer cut at `limit`.
    pub fn walks(&self) -> bool {
        self.page_size > 0
            || !self.page_token.is_empty()
            || !self.filters.is_empty()
            || !self.order_by.is_empty()
            || self.include_total
    }

    /// The page size: `page_size` (0 = 100, at most 1000) when set, else the `limit` (at most
    /// 10,000) when set, else 100.
    pub fn size(&self) -> usize {
        if self.page_size > 0 || self.limit == 0 {
            paging::page_size(self.page_size)
        } else {
            (self.limit as usize).min(crate::directory::MAX_LIMIT)
        }
    }

    /// The checked detail and the token digest for the query rendered as `query` (criterion,
    /// include_invalid, sources: everything besides filters and order that selects records).
    /// Unknown attributes and bad values are violations naming `filters[KEY]` / `order_by`;
    /// a token of another query, or altered, is `InvalidArgument` naming `page_token`.
    pub fn detail<F: Field>(
        &self,
        query: &str,
        known_extra: &dyn Fn(&str) -> bool,
        limits: QueryLimits,
    ) -> Result<(Detail<F>, [u8; 16]), Error> {
        let mut v: Vec<FieldViolation> = Vec::new();
        let mut pairs: Vec<(String, String)> = self
            .filters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        let filters = parse_filters::<F>(&pairs, known_extra, limits, &mut v);
        let order = parse_order::<F>(self.order_by, known_extra, &mut v);
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        let digest = paging::query_digest(&format!("{query}|{filters:?}|{order:?}"));
        let after: Option<SortKey> = if self.page_token.is_empty() {
            None
        } else {
            Some(paging::decode(self.page_token, &digest)?)
        };
        if after
            .as_ref()
            .is_some_and(|a| a.values.len() != order.keys.len())
        {
            return Err(Error::invalid("page_token", "belongs to another query"));
        }
        Ok((
            Detail {
                filters,
                order,
                after,
                paged: true,
            },
            digest,
        ))
    }
}

/// The token of the page after `next` (empty on the last page).
pub fn next_token(digest: &[u8; 16], next: Option<&SortKey>) -> String {
    next.map(|n| paging::encode(digest, n)).unwrap_or_default()
}
