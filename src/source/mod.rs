//! Sources: where customer users and customers live. Each kind of backend implements the small
//! traits below; the multiplexer (`directory`) only ever sees `Arc<dyn …Source>`.
//!
//! Contracts shared by every method:
//! - keys (logins, customer ids) are matched case-insensitively (Unicode), unless the source is
//!   configured `case_sensitive`;
//! - reads return `Err(SourceError)` only when the backend failed; "not found" is `Ok(None)` or an
//!   empty list;
//! - lists are sorted by key, case-insensitively.

pub mod cached;
pub mod factory;
pub mod ldap;
pub mod matching;
pub mod sql;

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::domain::{
    group::{Context, Group},
    search::{CustomerSearch, Page, UserSearch},
    Customer, CustomerPatch, CustomerSchema, CustomerUser, CustomerUserPatch, Patch, UserSchema,
};
use crate::error::Error;

/// Why a source could not answer a read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The backend cannot be reached (connection refused, pool timeout, not migrated yet).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error.
    #[error("failed: {0}")]
    Failed(String),
}

impl From<SourceError> for Error {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Unavailable(m) => Error::Unavailable(m),
            SourceError::Failed(m) => Error::Internal(m),
        }
    }
}

/// What a password is checked against.
#[derive(Debug, Clone)]
pub enum Secret {
    /// The stored hash (`None`: no password set, nothing verifies).
    Hash(Option<String>),
    /// A directory entry: the password is checked by binding as it.
    Dn(String),
}

/// A place customer users are kept (a SQL table, later an LDAP directory).
#[async_trait]
pub trait CustomerUserSource: Send + Sync {
    /// The configured, unique name.
    fn name(&self) -> &str;
    /// False when writes must be refused (FAILED_PRECONDITION naming the source).
    fn writable(&self) -> bool;
    /// The attributes this source stores, with their rules.
    fn schema(&self) -> &UserSchema;
    /// The customer of a written customer user must exist (OTRS CustomerCompanySupport).
    fn customer_company_support(&self) -> bool;
    /// The smallest unit of work that proves the backend answers.
    async fn ping(&self) -> Result<(), SourceError>;
    /// The customer user with this login, or `None`.
    async fn get(&self, login: &str) -> Result<Option<CustomerUser>, SourceError>;
    /// At most `search.limit` matches sorted by login; `truncated` when there were more.
    async fn search(&self, search: &UserSearch) -> Result<Page<CustomerUser>, SourceError>;
    /// Valid customer users whose postmaster fields equal one of `addresses` (already
    /// normalised, lower-case), in one round trip for the whole batch.
    /// Returns each match as (the address it matched, the customer user).
    async fn find_by_emails(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, CustomerUser)>, SourceError>;
    /// Stores a new customer user (already checked against the schema). Refuses a login this
    /// source already has and, when configured, an email it already has, atomically.
    async fn create(
        &self,
        user: &CustomerUser,
        password_hash: Option<&str>,
    ) -> Result<CustomerUser, Error>;
    /// Applies `patch` to the customer user `login`; a renamed login carries preferences and
    /// customer memberships along in the same transaction. `NotFound` when absent.
    async fn update(&self, login: &str, patch: &CustomerUserPatch) -> Result<CustomerUser, Error>;
    /// The additional customer ids of `login` (exact login), sorted.
    async fn memberships(&self, login: &str) -> Result<Vec<String>, SourceError>;
    /// Adds or removes one additional customer id of `login`.
    async fn set_membership(
        &self,
        login: &str,
        customer_id: &str,
        member: bool,
    ) -> Result<(), Error>;
    /// Logins with an additional membership in `customer_id`, sorted.
    async fn members_of(&self, customer_id: &str) -> Result<Vec<String>, SourceError>;
    /// The stored preferences of `login` (exact login), from the SQL tables beside the source.
    async fn preferences(&self, login: &str) -> Result<BTreeMap<String, String>, SourceError> {
        self.side().preferences(login).await
    }
    /// Replaces one preference of `login`.
    async fn set_preference(&self, login: &str, key: &str, value: &str) -> Result<(), Error> {
        self.side().set_preference(login, key, value).await
    }
    /// The customer users with these logins (any validity), one round trip per batch.
    async fn get_many(&self, logins: &[String]) -> Result<Vec<CustomerUser>, SourceError>;
    /// The customer users whose primary customer id is one of `customer_ids` (any validity).
    async fn by_customer_ids(
        &self,
        customer_ids: &[String],
    ) -> Result<Vec<CustomerUser>, SourceError>;
    /// Logins with an additional membership in any of `customer_ids`.
    async fn members_of_any(&self, customer_ids: &[String]) -> Result<Vec<String>, SourceError>;
    /// The customer user and what its password is checked against, or `None`.
    async fn credentials(&self, login: &str)
        -> Result<Option<(CustomerUser, Secret)>, SourceError>;
    /// Binds as `dn` with `password` on a connection of its own: `Ok(false)` for wrong
    /// credentials. Sources without binds answer `Ok(false)`.
    async fn bind_as(&self, dn: &str, password: &str) -> Result<bool, SourceError>;
    /// Stores a new password hash for `login` (exact login); with `expected_old`, only if the
    /// stored hash is still that one (no lost update when the password changed meanwhile).
    /// Returns whether it was stored.
    async fn store_password_hash(
        &self,
        login: &str,
        expected_old: Option<&str>,
        new: &str,
    ) -> Result<bool, Error>;
    /// The SQL tables beside the source: preferences, memberships, login state.
    fn side(&self) -> &sql::side::SideTables;
    /// Moves every customer user and membership of customer `old` to `new`; returns how many
    /// customer users changed. A read-only source changes nothing and returns 0.
    async fn rename_customer_id(&self, old: &str, new: &str) -> Result<u64, Error>;
    /// Forgets every cached answer (after a change made behind this source's back, e.g. a
    /// customer rename in a co-located table). Sources without a cache do nothing.
    fn invalidate_cache(&self) {}
}

/// A place customers (companies) are kept.
#[async_trait]
pub trait CustomerSource: Send + Sync {
    fn name(&self) -> &str;
    fn writable(&self) -> bool;
    fn schema(&self) -> &CustomerSchema;
    /// Customer-user sources whose customer users this source moves itself, in the same
    /// transaction, when a customer id is renamed (those on the same database).
    fn renames_users_of(&self) -> Vec<String>;
    async fn ping(&self) -> Result<(), SourceError>;
    /// The customer with this id, or `None`.
    async fn get(&self, customer_id: &str) -> Result<Option<Customer>, SourceError>;
    /// At most `search.limit` matches sorted by customer id; `truncated` when there were more.
    async fn search(&self, search: &CustomerSearch) -> Result<Page<Customer>, SourceError>;
    /// Stores a new customer; refuses an id or name this source already has.
    async fn create(&self, customer: &Customer) -> Result<Customer, Error>;
    /// Applies `patch`; a renamed id also moves the references kept in the same database
    /// (customer users of co-located sources, memberships) in the same transaction.
    async fn update(&self, customer_id: &str, patch: &CustomerPatch) -> Result<Customer, Error>;
}

/// A group with its storage id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub id: i64,
    pub group: Group,
}

/// Where groups and grants are kept (the OTRS groups table, `group_customer_user`,
/// `group_customer`). Logins and customer ids in grants are matched exactly (callers pass the
/// canonical ones); group names case-insensitively.
#[async_trait]
pub trait GroupStore: Send + Sync {
    async fn ping(&self) -> Result<(), SourceError>;
    /// The group with this name, or `None`.
    async fn get(&self, name: &str) -> Result<Option<StoredGroup>, SourceError>;
    /// Every group (any validity), sorted by name.
    async fn list(&self) -> Result<Vec<StoredGroup>, SourceError>;
    /// Stores a new group; refuses a name that exists (case-insensitive).
    async fn create(&self, group: &Group) -> Result<Group, Error>;
    /// Applies `patch` to the group `name`.
    async fn update(&self, name: &str, patch: &Patch<Group>) -> Result<Group, Error>;
    /// Sets each named key of `login` on the group (others untouched); returns the keys held.
    async fn set_user_permissions(
        &self,
        login: &str,
        group_id: i64,
        changes: &[(String, bool)],
    ) -> Result<Vec<String>, Error>;
    /// Replaces the keys of `customer_id` on the group in `context`; returns the keys held.
    async fn set_customer_permissions(
        &self,
        customer_id: &str,
        group_id: i64,
        context: Context,
        keys: &[String],
    ) -> Result<Vec<String>, Error>;
    /// Direct grants of `login`: (group id, key) with value 1.
    async fn user_grants(&self, login: &str) -> Result<Vec<(i64, String)>, SourceError>;
    /// Grants of these customers: (customer id, group id, key, context) with value 1.
    async fn customer_grants(
        &self,
        customer_ids: &[String],
    ) -> Result<Vec<(String, i64, String, Context)>, SourceError>;
    /// Logins granted any of `keys` directly on the group.
    async fn group_user_grants(
        &self,
        group_id: i64,
        keys: &[&str],
    ) -> Result<Vec<String>, SourceError>;
    /// Customer ids granted any of `keys` on the group in `context`.
    async fn group_customer_grants(
        &self,
        group_id: i64,
        keys: &[&str],
        context: Context,
    ) -> Result<Vec<String>, SourceError>;
    /// Grants of login `old` become grants of `new`.
    async fn rename_login(&self, old: &str, new: &str) -> Result<(), Error>;
    /// Grants of customer `old` become grants of `new`.
    async fn rename_customer(&self, old: &str, new: &str) -> Result<(), Error>;
}
