//! Sources: where customer users and customers live, as capability traits. Every customer-user
//! source reads ([`UserReader`]) and checks passwords ([`Credentials`]: stored hashes or a
//! directory bind); writable ones also write ([`UserWriter`]); the tables OTRS keeps beside any
//! backend (memberships, preferences, login state, used TOTP steps) are a [`Companion`]. Customer sources read
//! ([`CustomerReader`]) and, when writable, write ([`CustomerWriter`]). The multiplexer
//! (`directory`) holds one [`UserSourceBundle`] / [`CustomerSourceBundle`] per configured source,
//! in which a read-only source simply has no writer. Also here: the group store trait and the
//! plain types the traits speak ([`SourceError`], [`LoginState`], [`Failure`]). Circuit
//! breakers of SQL databases and LDAP hosts are in [`breaker`]; a bundle carries its
//! source's [`breaker::Fuse`].
//!
//! Contracts shared by every method:
//! - keys (logins, customer ids) are matched case-insensitively (Unicode), unless the source is
//!   configured `case_sensitive`;
//! - reads return `Err(SourceError)` only when the backend failed; "not found" is `Ok(None)` or an
//!   empty list;
//! - lists are sorted by key, case-insensitively.

pub mod breaker;
pub mod cached;
pub mod factory;
pub mod index;
pub mod ldap;
pub mod matching;
pub mod sql;

use std::{collections::BTreeMap, sync::Arc};

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

impl SourceError {
    /// A search in an order other than by key found more than
    /// [`ORDER_SCAN_MAX`](crate::domain::search::ORDER_SCAN_MAX) matches past its position
    /// (a SQL source and its in-memory index answer this alike).
    pub fn order_scan_exceeded() -> Self {
        Self::Failed(format!(
            "order_by other than the key reads at most {} matches per source; narrow the search with filters",
            crate::domain::search::ORDER_SCAN_MAX
        ))
    }
}

impl From<SourceError> for Error {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Unavailable(m) => Error::Unavailable(m),
            SourceError::Failed(m) => Error::Internal(m),
        }
    }
}

/// Failed-login state of one login.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginState {
    /// Failed attempts counted since the last success, unlock or expired lock.
    pub failed: u32,
    /// Epoch seconds; `i64::MAX` = until unlocked.
    pub locked_until: Option<i64>,
}

impl LoginState {
    /// Whether the login is locked at `now` (epoch seconds): a lock ends at its second.
    pub fn locked_at(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|u| u > now)
    }
}

/// What counting a failed attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the login may now be locked.
    Counted(LoginState),
    /// The login was locked already: nothing counted.
    Locked { until: i64 },
}

/// Reading customer users: what every customer-user source can do.
#[async_trait]
pub trait UserReader: Send + Sync {
    /// The configured, unique name.
    fn name(&self) -> &str;
    /// The attributes this source stores, with their rules.
    fn schema(&self) -> &UserSchema;
    /// The customer of a written customer user must exist (OTRS CustomerCompanySupport).
    fn customer_company_support(&self) -> bool;
    /// The smallest unit of work that proves the backend answers.
    async fn ping(&self) -> Result<(), SourceError>;
    /// The customer user with this login (any validity), or `None`.
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
    /// The customer users with these logins (any validity), one round trip per batch; logins
    /// not found are left out, in no particular order.
    async fn get_many(&self, logins: &[String]) -> Result<Vec<CustomerUser>, SourceError>;
    /// The customer users whose primary customer id is one of `customer_ids` (any validity).
    async fn by_customer_ids(
        &self,
        customer_ids: &[String],
    ) -> Result<Vec<CustomerUser>, SourceError>;
    /// Customer ids the record of `login` carries itself beyond its primary one (LDAP: the
    /// further values of a multi-valued customer-id attribute), in stored order; empty for
    /// sources whose records hold one customer id (SQL) and for an unknown login. The
    /// memberships of the companion tables come on top ([`Companion::memberships`]).
    async fn record_memberships(&self, login: &str) -> Result<Vec<String>, SourceError>;
    /// Logins whose record carries `customer_id` beyond its primary one (see
    /// [`UserReader::record_memberships`]), in no particular order; empty for SQL sources.
    async fn record_members_of(&self, customer_id: &str) -> Result<Vec<String>, SourceError>;
}

/// Writing customer users: only writable sources have it (a read-only source has no writer,
/// so the directory refuses writes to it in one place).
#[async_trait]
pub trait UserWriter: Send + Sync {
    /// Stores a new customer user (already checked against the schema). Refuses a login this
    /// source already has and, when configured, an email it already has, atomically.
    async fn create(
        &self,
        user: &CustomerUser,
        password_hash: Option<&str>,
    ) -> Result<CustomerUser, Error>;
    /// Applies `patch` to the customer user `login`; a renamed login carries preferences,
    /// customer memberships and its failed-login state along in the same transaction (group
    /// grants, in the group store, are the directory's to move). `NotFound` when absent.
    async fn update(&self, login: &str, patch: &CustomerUserPatch) -> Result<CustomerUser, Error>;
    /// Stores a new password hash for `login` (exact login); with `expected_old`, only if the
    /// stored hash is still that one (no lost update when the password changed meanwhile).
    /// Returns whether it was stored. `FailedPrecondition` when no password is stored here.
    async fn store_password_hash(
        &self,
        login: &str,
        expected_old: Option<&str>,
        new: &str,
    ) -> Result<bool, Error>;
    /// Moves every customer user of customer `old` to `new` (exact ids); returns how many
    /// customer users changed (0 when the source maps no customer id).
    async fn rename_customer_id(&self, old: &str, new: &str) -> Result<u64, Error>;
}

/// Password hashes kept with the records (SQL): the caller verifies them.
#[async_trait]
pub trait PasswordHashes: Send + Sync {
    /// The customer user with this login and its stored hash (`None`: no password set, or no
    /// password column; nothing verifies), or `None` for an unknown login.
    async fn with_hash(
        &self,
        login: &str,
    ) -> Result<Option<(CustomerUser, Option<String>)>, SourceError>;
}

/// Passwords checked by the directory itself (LDAP): by binding as the user's entry.
#[async_trait]
pub trait DirectoryBind: Send + Sync {
    /// The customer user with this login and the DN of its entry, or `None`.
    async fn with_dn(&self, login: &str) -> Result<Option<(CustomerUser, String)>, SourceError>;
    /// Binds as `dn` with `password` on a connection of its own: `Ok(false)` for wrong
    /// credentials (an empty password never binds), `Err` when the directory cannot be asked.
    async fn bind_as(&self, dn: &str, password: &str) -> Result<bool, SourceError>;
}

/// How a source checks a customer's password.
#[derive(Clone)]
pub enum Credentials {
    /// Against hashes stored with the records.
    Hashes(Arc<dyn PasswordHashes>),
    /// By binding to the directory.
    Bind(Arc<dyn DirectoryBind>),
}

/// The tables OTRS keeps beside any customer-user backend: additional customer memberships
/// (`customer_user_customer`), preferences (`customer_preferences`) and Clientele's failed-login
/// state. Logins and customer ids are matched exactly: callers pass the canonical ones.
#[async_trait]
pub trait Companion: Send + Sync {
    /// The additional customer ids of `login`, sorted.
    async fn memberships(&self, login: &str) -> Result<Vec<String>, SourceError>;
    /// Adds (`member`) or removes one additional customer id of `login`; idempotent.
    /// `InvalidArgument` for a login longer than memberships can store.
    async fn set_membership(
        &self,
        login: &str,
        customer_id: &str,
        member: bool,
    ) -> Result<(), Error>;
    /// Logins with an additional membership in `customer_id`, sorted.
    async fn members_of(&self, customer_id: &str) -> Result<Vec<String>, SourceError>;
    /// Logins with an additional membership in any of `customer_ids`, unsorted, possibly
    /// repeated.
    async fn members_of_any(&self, customer_ids: &[String]) -> Result<Vec<String>, SourceError>;
    /// The stored preferences of `login`; empty when it has none.
    async fn preferences(&self, login: &str) -> Result<BTreeMap<String, String>, SourceError>;
    /// Replaces one preference of `login`.
    async fn set_preference(&self, login: &str, key: &str, value: &str) -> Result<(), Error>;
    /// The failed-login state of `login` (the default state when nothing is recorded).
    async fn login_state(&self, login: &str) -> Result<LoginState, SourceError>;
    /// Counts one failed attempt at `now` (epoch seconds), exactly, under any concurrency and
    /// on any number of replicas; only while the login is not locked. At `max` (> 0) failures
    /// the login is locked until `now + lock_for` seconds (`None`: until unlocked). An expired
    /// lock starts a new count.
    async fn record_failure(
        &self,
        login: &str,
        max: u32,
        lock_for: Option<i64>,
        now: i64,
    ) -> Result<Failure, SourceError>;
    /// A successful login at `now`: the count is reset, the lock cleared, the time recorded,
    /// only if the login is not locked at `now` (decided in the same atomic step as the write,
    /// so a concurrent lock wins): `Some(until)` when it is locked and nothing was written.
    /// With `was_clean` (no failures, no lock before) the failure count's preference is left.
    async fn record_success(
        &self,
        login: &str,
        now: i64,
        was_clean: bool,
    ) -> Result<Option<i64>, SourceError>;
    /// Clears the lock and the count of `login`.
    async fn unlock(&self, login: &str) -> Result<(), SourceError>;
    /// Uses TOTP time step `step` of `login` (the second factor's replay protection): records
    /// it as the login's last used step only if no step at or after it was used, decided in
    /// one atomic statement in the shared database, so on any number of replicas a step is
    /// used once. Whether it was used now (`false`: a replay, or an older step).
    async fn use_totp_step(&self, login: &str, step: i64) -> Result<bool, SourceError>;
}

/// One customer-user source as the directory holds it: its capabilities, each present only
/// when the source has it, and the per-replica cache in front of its reads, if any.
#[derive(Clone)]
pub struct UserSourceBundle {
    /// Reads (through the cache when one is configured).
    pub reader: Arc<dyn UserReader>,
    /// `None`: the source is read-only.
    pub writer: Option<Arc<dyn UserWriter>>,
    pub credentials: Credentials,
    pub companion: Arc<dyn Companion>,
    /// The breakers of the backend its reads go to (`None`: nothing to break).
    pub fuse: Option<Arc<dyn breaker::Fuse>>,
    cache: Option<Arc<cached::CachedUserReader>>,
    /// The in-memory search index behind the reader, if any (told about changes behind the
    /// source's back).
    freshness: Option<Arc<dyn index::Freshness>>,
}

impl UserSourceBundle {
    /// A source without a cache.
    pub fn new(
        reader: Arc<dyn UserReader>,
        writer: Option<Arc<dyn UserWriter>>,
        credentials: Credentials,
        companion: Arc<dyn Companion>,
    ) -> Self {
        Self {
            reader,
            writer,
            credentials,
            companion,
            fuse: None,
            cache: None,
            freshness: None,
        }
    }

    /// The same source whose search index `freshness` hears of [`Self::forget_all`].
    pub fn with_freshness(mut self, freshness: Arc<dyn index::Freshness>) -> Self {
        self.freshness = Some(freshness);
        self
    }

    /// The same source guarded by `fuse` (see `source::breaker`).
    pub fn with_fuse(mut self, fuse: Arc<dyn breaker::Fuse>) -> Self {
        self.fuse = Some(fuse);
        self
    }

    /// Puts a per-replica cache of `size` entries, each valid for `ttl` on `clock`, in front
    /// of the reads (a zero `ttl` caches nothing and leaves the source as it is).
    /// Logins are cache keys under the source's `case` rule.
    pub fn with_cache(
        mut self,
        case: crate::domain::CaseRule,
        ttl: std::time::Duration,
        size: u64,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        if ttl.is_zero() {
            return self;
        }
        let cache = Arc::new(cached::CachedUserReader::new(
            self.reader.clone(),
            case,
            ttl,
            size,
            clock,
        ));
        self.reader = cache.clone();
        self.cache = Some(cache);
        self
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        self.reader.name()
    }

    /// Starts its search index, if it has one (see [`index::Freshness::start`]).
    pub fn start_index(&self) {
        if let Some(f) = &self.freshness {
            f.start();
        }
    }

    /// Forgets what the cache knows about these logins (after this replica wrote them).
    pub async fn forget(&self, logins: &[&str]) {
        if let Some(c) = &self.cache {
            c.forget(logins).await;
        }
    }

    /// Forgets every cached answer (after a change that may touch any record, e.g. a
    /// customer-id rename).
    pub fn forget_all(&self) {
        if let Some(c) = &self.cache {
            c.forget_all();
        }
        if let Some(f) = &self.freshness {
            f.mark_stale();
        }
    }
}

/// Reading customers (companies): what every customer source can do.
#[async_trait]
pub trait CustomerReader: Send + Sync {
    /// The configured, unique name.
    fn name(&self) -> &str;
    /// The attributes this source stores, with their rules.
    fn schema(&self) -> &CustomerSchema;
    /// The smallest unit of work that proves the backend answers.
    async fn ping(&self) -> Result<(), SourceError>;
    /// The customer with this id (any validity), or `None`.
    async fn get(&self, customer_id: &str) -> Result<Option<Customer>, SourceError>;
    /// At most `search.limit` matches sorted by customer id; `truncated` when there were more.
    async fn search(&self, search: &CustomerSearch) -> Result<Page<Customer>, SourceError>;
}

/// Writing customers: only writable sources have it.
#[async_trait]
pub trait CustomerWriter: Send + Sync {
    /// Customer-user sources whose customer users this source moves itself, in the same
    /// transaction, when a customer id is renamed (those on the same database).
    fn renames_users_of(&self) -> Vec<String>;
    /// Stores a new customer; refuses an id or name this source already has.
    async fn create(&self, customer: &Customer) -> Result<Customer, Error>;
    /// Applies `patch` to the customer `customer_id`; a renamed id also moves the references
    /// kept in the same database (customer users of co-located sources, memberships) in the
    /// same transaction. `NotFound` when absent.
    async fn update(&self, customer_id: &str, patch: &CustomerPatch) -> Result<Customer, Error>;
}

/// One customer source as the directory holds it.
#[derive(Clone)]
pub struct CustomerSourceBundle {
    pub reader: Arc<dyn CustomerReader>,
    /// `None`: the source is read-only.
    pub writer: Option<Arc<dyn CustomerWriter>>,
    /// The breakers of its backend (`None`: nothing to break).
    pub fuse: Option<Arc<dyn breaker::Fuse>>,
    /// The in-memory search index behind the reader, if any.
    freshness: Option<Arc<dyn index::Freshness>>,
}

impl CustomerSourceBundle {
    pub fn new(reader: Arc<dyn CustomerReader>, writer: Option<Arc<dyn CustomerWriter>>) -> Self {
        Self {
            reader,
            writer,
            fuse: None,
            freshness: None,
        }
    }

    /// The same source with the search index `freshness` behind its reader.
    pub fn with_freshness(mut self, freshness: Arc<dyn index::Freshness>) -> Self {
        self.freshness = Some(freshness);
        self
    }

    /// Starts its search index, if it has one (see [`index::Freshness::start`]).
    pub fn start_index(&self) {
        if let Some(f) = &self.freshness {
            f.start();
        }
    }

    /// The same source guarded by `fuse` (see `source::breaker`).
    pub fn with_fuse(mut self, fuse: Arc<dyn breaker::Fuse>) -> Self {
        self.fuse = Some(fuse);
        self
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        self.reader.name()
    }
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
    /// The smallest unit of work that proves the group tables answer.
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
