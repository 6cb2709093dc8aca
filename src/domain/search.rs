//! Checked search requests, as the sources receive them.

use super::query::{Expr, Pattern};

/// What a customer-user search looks for: exactly one criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCriterion {
    /// The OTRS grammar over the source's search fields, with its prefix/suffix.
    Query(Expr),
    /// Exact, case-insensitive equality on the postmaster fields; the address is normalised.
    Email(String),
    /// The primary customer id; `*` wildcards only, no implicit prefix/suffix.
    CustomerId(Pattern),
    /// The login; `*` wildcards only, exact otherwise.
    Login(Pattern),
}

/// A customer-user search as one source runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearch {
    pub criterion: UserCriterion,
    /// Include invalid and invalid-temporarily records.
    pub include_invalid: bool,
    /// Return at most this many; a source that has more sets `truncated`.
    pub limit: usize,
}

/// A customer (company) search as one source runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSearch {
    /// The full OTRS grammar over the source's search fields.
    pub query: Expr,
    pub include_invalid: bool,
    pub limit: usize,
}

/// One source's answer to a search: sorted by key (case-insensitive), at most the limit.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The source had more matches than it returned.
    pub truncated: bool,
}
