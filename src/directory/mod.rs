//! The source multiplexer: every read fans out to all sources concurrently (each bounded by the
//! caller's deadline and its own timeout), answers are merged exactly once per key with the
//! first configured source winning, sorted by key case-insensitively and cut at the limit. A
//! failing source yields a partial answer with its status; only when every source failed does a
//! read fail (`Unavailable`).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    sync::Arc,
    time::Duration,
};

use futures::future::join_all;
use tokio::time::{timeout_at, Instant};
use tracing::Instrument;

use crate::config::AuthSettings;
use crate::domain::group::Policy;
use crate::domain::{
    customer_user::check_user,
    email, fold, limits,
    record::{check_key, check_record},
    search::{CustomerSearch, Page, UserCriterion, UserSearch},
    Customer, CustomerField, CustomerPatch, CustomerUser, CustomerUserPatch, Field, Record,
    UserField,
};
use crate::error::{Error, FieldViolation, Result};
use crate::source::{CustomerSource, CustomerUserSource, GroupStore, SourceError};

mod auth;
mod groups;

pub use auth::{AuthOutcome, Authentication};

/// The most records one search returns, whatever the caller asks.
pub const MAX_LIMIT: usize = 10_000;

/// Preference keys that name native fields (OTRS's protected list, plus the API's field names):
/// refused by `set_preference`.
const PROTECTED_PREFERENCES: &[&str] = &[
    "UserID",
    "UserLogin",
    "UserPassword",
    "UserFirstname",
    "UserLastname",
    "UserFullname",
    "UserStreet",
    "UserCity",
    "UserZip",
    "UserCountry",
    "UserComment",
    "UserCustomerID",
    "UserTitle",
    "UserEmail",
    "ChangeTime",
    "ChangeBy",
    "CreateTime",
    "CreateBy",
    "UserPhone",
    "UserMobile",
    "UserFax",
    "UserMailString",
    "ValidID",
];

/// How one source answered a fanned-out read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    pub source: String,
    pub error: Option<String>,
    pub returned: usize,
    pub truncated: bool,
}

/// A merged answer.
#[derive(Debug, Clone)]
pub struct Merged<T> {
    pub items: Vec<T>,
    pub truncated: bool,
    pub status: Vec<SourceStatus>,
}

/// One resolved sender address.
#[derive(Debug, Clone)]
pub struct SenderResolution {
    pub address: String,
    pub normalized: Option<String>,
    pub error: Option<String>,
    pub customer_users: Vec<CustomerUser>,
}

/// A source with the bound for each call to it.
pub struct Bounded<S: ?Sized> {
    pub source: Arc<S>,
    pub timeout: Duration,
}

/// The multiplexer over every configured source.
pub struct Directory {
    users: Vec<Bounded<dyn CustomerUserSource>>,
    customers: Vec<Bounded<dyn CustomerSource>>,
    user_limit: usize,
    customer_limit: usize,
    groups: Option<Groups>,
    auth: AuthSettings,
}

/// The group store and the rules that decide permissions.
pub struct Groups {
    pub store: Arc<dyn GroupStore>,
    pub policy: Policy,
}

/// Runs `call` on every source concurrently, each bounded by the earlier of `deadline` and the
/// source's own timeout; results in source order.
async fn fan_out<'a, S, T, F, Fut>(
    sources: &'a [Bounded<S>],
    deadline: Instant,
    call: F,
) -> Vec<(&'a str, std::result::Result<T, SourceError>)>
where
    S: ?Sized + Named + 'a,
    F: Fn(&'a S) -> Fut,
    Fut: Future<Output = std::result::Result<T, SourceError>> + 'a,
{
    let all: Vec<&'a Bounded<S>> = sources.iter().collect();
    fan_out_refs(&all, deadline, call).await
}

/// What the multiplexer needs of any source kind.
pub trait Named {
    fn name(&self) -> &str;
    fn is_writable(&self) -> bool;
}

impl Named for dyn CustomerUserSource {
    fn name(&self) -> &str {
        CustomerUserSource::name(self)
    }
    fn is_writable(&self) -> bool {
        self.writable()
    }
}

impl Named for dyn CustomerSource {
    fn name(&self) -> &str {
        CustomerSource::name(self)
    }
    fn is_writable(&self) -> bool {
        self.writable()
    }
}

/// The source a create goes to: the named one, or the first writable one; a read-only target
/// is `FailedPrecondition` naming it.
fn write_target<S: ?Sized + Named>(
    sources: &[Bounded<S>],
    name: Option<&str>,
    kind: &str,
) -> Result<Arc<S>> {
    let target = match name {
        Some(name) => sources
            .iter()
            .find(|b| b.source.name() == name)
            .ok_or_else(|| {
                Error::invalid("source", format!("no {kind} source is named {name:?}"))
            })?,
        None => sources
            .iter()
            .find(|b| b.source.is_writable())
            .ok_or_else(|| Error::FailedPrecondition {
                reason: "NO_WRITABLE_SOURCE",
                message: format!("no writable {kind} source is configured"),
            })?,
    };
    if !target.source.is_writable() {
        return Err(Error::FailedPrecondition {
            reason: "SOURCE_READ_ONLY",
            message: format!(
                "{kind} source {:?} is read-only; write to a writable source",
                target.source.name()
            ),
        });
    }
    Ok(target.source.clone())
}

/// Merges pages: first source wins on a key (case-insensitive), sorted by key, cut at `limit`.
pub fn merge_pages<R: Record>(
    results: Vec<(&str, std::result::Result<Page<R>, SourceError>)>,
    limit: usize,
) -> Result<Merged<R>> {
    let mut status = Vec::with_capacity(results.len());
    // (folded key, record) in source order; the fold is computed once per record.
    let mut items: Vec<(String, R)> = Vec::new();
    let mut truncated = false;
    let mut failures = Vec::new();
    let asked = results.len();
    for (name, result) in results {
        match result {
            Ok(page) => {
                status.push(SourceStatus {
                    source: name.to_owned(),
                    error: None,
                    returned: page.items.len(),
                    truncated: page.truncated,
                });
                truncated |= page.truncated;
                items.extend(page.items.into_iter().map(|r| (fold(r.key()), r)));
            }
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                status.push(SourceStatus {
                    source: name.to_owned(),
                    error: Some(e.to_string()),
                    returned: 0,
                    truncated: false,
                });
            }
        }
    }
    if asked > 0 && failures.len() == asked {
        return Err(Error::Unavailable(format!(
            "every source failed: {}",
            failures.join("; ")
        )));
    }
    // A stable sort keeps source order among equal keys, so the dedup keeps the first
    // source's record.
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|later, first| later.0 == first.0);
    let mut items: Vec<R> = items.into_iter().map(|(_, r)| r).collect();
    if items.len() > limit {
        items.truncate(limit);
        truncated = true;
    }
    Ok(Merged {
        items,
        truncated,
        status,
    })
}

fn first_found<T>(
    kind: &'static str,
    key: &str,
    results: Vec<(&str, std::result::Result<Option<T>, SourceError>)>,
) -> Result<T> {
    let asked = results.len();
    let mut failures = Vec::new();
    for (name, r) in results {
        match r {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if asked > 0 && failures.len() == asked {
        return Err(Error::Unavailable(format!(
            "every source failed: {}",
            failures.join("; ")
        )));
    }
    Err(Error::not_found(kind, key))
}

fn checked_limit(limit: usize, default: usize) -> usize {
    match limit {
        0 => default,
        n => n.min(MAX_LIMIT),
    }
}

impl Directory {
    /// `users` and `customers` in precedence order.
    pub fn new(
        users: Vec<Bounded<dyn CustomerUserSource>>,
        customers: Vec<Bounded<dyn CustomerSource>>,
        user_limit: usize,
        customer_limit: usize,
        groups: Option<Groups>,
        auth: AuthSettings,
    ) -> Self {
        Self {
            users,
            customers,
            user_limit,
            customer_limit,
            groups,
            auth,
        }
    }

    pub fn user_sources(&self) -> impl Iterator<Item = &Arc<dyn CustomerUserSource>> {
        self.users.iter().map(|b| &b.source)
    }

    /// The group store, when one is configured.
    pub fn group_store(&self) -> Option<&Arc<dyn GroupStore>> {
        self.groups.as_ref().map(|g| &g.store)
    }

    pub fn customer_sources(&self) -> impl Iterator<Item = &Arc<dyn CustomerSource>> {
        self.customers.iter().map(|b| &b.source)
    }

    fn user_source(&self, name: &str) -> Option<&Arc<dyn CustomerUserSource>> {
        self.user_sources().find(|s| s.name() == name)
    }

    /// The customer user from the first source (in precedence order) that has the login.
    pub async fn get_user(&self, login: &str, deadline: Instant) -> Result<CustomerUser> {
        Ok(self.locate_user(login, deadline).await?.1)
    }

    /// The customer user and the source holding it.
    async fn locate_user(
        &self,
        login: &str,
        deadline: Instant,
    ) -> Result<(Arc<dyn CustomerUserSource>, CustomerUser)> {
        let mut v = Vec::new();
        check_key("login", login, limits::LOGIN, &mut v);
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        let results = fan_out(&self.users, deadline, |s| s.get(login)).await;
        let user = first_found("customer user", login, results)?;
        let source = self
            .user_source(&user.source)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("unknown source {:?}", user.source)))?;
        Ok((source, user))
    }

    /// Refuses `login` when any source other than `except` (the record's own source, for a
    /// rename that only changes case) already has it; every source must answer.
    async fn ensure_login_free(
        &self,
        login: &str,
        except: Option<(&str, &str)>,
        deadline: Instant,
    ) -> Result<()> {
        let results = fan_out(&self.users, deadline, |s| s.get(login)).await;
        for (name, r) in results {
            match r {
                Ok(Some(u))
                    if except.is_some_and(|(src, l)| src == name && fold(l) == fold(&u.login)) => {}
                Ok(Some(u)) => {
                    return Err(Error::AlreadyExists {
                        kind: "customer user",
                        field: "login",
                        key: u.login,
                        source_name: Some(name.to_owned()),
                    })
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::Unavailable(format!(
                        "cannot verify that login {login:?} is unused: source {name:?} {e}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// When the source requires it (and customers are configured), the customer must exist.
    async fn ensure_customer_exists(
        &self,
        source: &dyn CustomerUserSource,
        customer_id: &str,
        field: &str,
        deadline: Instant,
    ) -> Result<()> {
        if !source.customer_company_support() || self.customers.is_empty() || customer_id.is_empty()
        {
            return Ok(());
        }
        match self.get_customer(customer_id, deadline).await {
            Ok(_) => Ok(()),
            Err(Error::NotFound { .. }) => Err(Error::invalid(
                field,
                format!("customer {customer_id:?} does not exist; create it first (or set customer_company_support = false on source {:?})", source.name()),
            )),
            Err(e) => Err(e),
        }
    }

    /// Creates a customer user in `source` (or the first writable one). With
    /// `generate_password` and no password, a generated one is stored and returned.
    pub async fn create_user(
        &self,
        source: Option<&str>,
        user: CustomerUser,
        password: Option<String>,
        generate_password: bool,
        deadline: Instant,
    ) -> Result<(CustomerUser, Option<String>)> {
        let target = write_target(&self.users, source, "customer-user")?;
        let mut violations = check_user(&user, target.schema(), target.name());
        if password.is_some() && generate_password {
            violations.push(FieldViolation::new(
                "generate_password",
                "set either password or generate_password, not both",
            ));
        }
        if let Some(p) = &password {
            violations.extend(self.auth.policy.check(p, "password"));
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        self.ensure_login_free(&user.login, None, deadline).await?;
        self.ensure_customer_exists(
            &*target,
            &user.customer_id,
            "customer_user.customer_id",
            deadline,
        )
        .await?;
        let generated = match generate_password {
            true => Some(self.auth.policy.generate().ok_or_else(|| Error::FailedPrecondition {
                reason: "POLICY_UNSATISFIABLE",
                message: "no password of letters and digits satisfies auth.password_policy.pattern; set one instead".into(),
            })?),
            false => None,
        };
        let hash = match password.or_else(|| generated.clone()) {
            Some(p) => Some(crate::auth::hash_password(p, self.auth.argon2).await?),
            None => None,
        };
        let stored = target.create(&user, hash.as_deref()).await?;
        Ok((stored, generated))
    }

    /// Changes the masked attributes of `login`; a new login renames it everywhere.
    pub async fn update_user(
        &self,
        login: &str,
        patch: CustomerUserPatch,
        deadline: Instant,
    ) -> Result<CustomerUser> {
        let (source, current) = self.locate_user(login, deadline).await?;
        if !source.writable() {
            return Err(Error::FailedPrecondition {
                reason: "SOURCE_READ_ONLY",
                message: format!(
                    "customer user {login:?} is in read-only source {:?}",
                    source.name()
                ),
            });
        }
        let mut violations = patch.read_only_violations(source.schema(), source.name());
        let next = patch.apply(&current);
        violations.extend(check_user(&next, source.schema(), source.name()));
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        if let Some(new_login) = patch.new_key().filter(|n| *n != current.login) {
            self.ensure_login_free(new_login, Some((source.name(), &current.login)), deadline)
                .await?;
        }
        if patch.touches(&crate::domain::Attr::Field(UserField::CustomerId)) {
            self.ensure_customer_exists(
                &*source,
                &next.customer_id,
                "customer_user.customer_id",
                deadline,
            )
            .await?;
        }
        let updated = source.update(&current.login, &patch).await?;
        if let (Some(g), true) = (&self.groups, updated.login != current.login) {
            g.store.rename_login(&current.login, &updated.login).await.map_err(|e| {
                Error::Unavailable(format!(
                    "customer user renamed to {:?}, but its group grants still name {:?}: {e}; repeat the rename",
                    updated.login, current.login
                ))
            })?;
        }
        Ok(updated)
    }

    /// Searches the sources named in `only` (all when empty) and merges.
    pub async fn search_users(
        &self,
        criterion: UserCriterion,
        include_invalid: bool,
        limit: usize,
        only: &[String],
        deadline: Instant,
    ) -> Result<Merged<CustomerUser>> {
        for (i, name) in only.iter().enumerate() {
            if self.user_source(name).is_none() {
                return Err(Error::invalid(
                    format!("sources[{i}]"),
                    format!("no customer-user source is named {name:?}"),
                ));
            }
        }
        let limit = checked_limit(limit, self.user_limit);
        let search = UserSearch {
            criterion,
            include_invalid,
            limit,
        };
        let selected: Vec<&Bounded<dyn CustomerUserSource>> = self
            .users
            .iter()
            .filter(|b| only.is_empty() || only.iter().any(|n| n == b.source.name()))
            .collect();
        let results = fan_out_refs(&selected, deadline, |s| s.search(&search)).await;
        merge_pages(results, limit)
    }

    /// Resolves mail senders to valid customer users, one batch query per source.
    pub async fn resolve_senders(
        &self,
        addresses: &[String],
        deadline: Instant,
    ) -> Result<(Vec<SenderResolution>, Vec<SourceStatus>)> {
        let parsed: Vec<std::result::Result<String, email::AddressError>> =
            addresses.iter().map(|a| email::parse_sender(a)).collect();
        let mut unique: Vec<String> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        unique.sort();
        unique.dedup();
        let mut by_address: HashMap<String, Vec<CustomerUser>> = HashMap::new();
        let mut status = Vec::new();
        if !unique.is_empty() {
            let results = fan_out(&self.users, deadline, |s| s.find_by_emails(&unique)).await;
            let asked = results.len();
            let mut failures = Vec::new();
            let mut winner: HashMap<String, String> = HashMap::new();
            for (name, r) in results {
                match r {
                    Ok(matches) => {
                        status.push(SourceStatus {
                            source: name.to_owned(),
                            error: None,
                            returned: matches.len(),
                            truncated: false,
                        });
                        // A login found in an earlier source shadows the same login here.
                        let mut here = HashSet::new();
                        for (address, user) in matches {
                            let key = fold(&user.login);
                            if winner.get(&key).is_some_and(|s| s != name) {
                                continue;
                            }
                            winner.insert(key.clone(), name.to_owned());
                            if here.insert((address.clone(), key)) {
                                by_address.entry(address).or_default().push(user);
                            }
                        }
                    }
                    Err(e) => {
                        failures.push(format!("{name}: {e}"));
                        status.push(SourceStatus {
                            source: name.to_owned(),
                            error: Some(e.to_string()),
                            returned: 0,
                            truncated: false,
                        });
                    }
                }
            }
            if asked > 0 && failures.len() == asked {
                return Err(Error::Unavailable(format!(
                    "every source failed: {}",
                    failures.join("; ")
                )));
            }
        }
        let out = addresses
            .iter()
            .zip(parsed)
            .map(|(address, p)| match p {
                Ok(normalized) => {
                    let mut users = by_address.get(&normalized).cloned().unwrap_or_default();
                    users.sort_by_cached_key(|u| fold(&u.login));
                    SenderResolution {
                        address: address.clone(),
                        normalized: Some(normalized),
                        error: None,
                        customer_users: users,
                    }
                }
                Err(e) => SenderResolution {
                    address: address.clone(),
                    normalized: None,
                    error: Some(e.to_string()),
                    customer_users: Vec::new(),
                },
            })
            .collect();
        Ok((out, status))
    }

    /// The primary customer id first, then the additional memberships (no duplicates).
    pub async fn customer_ids(&self, login: &str, deadline: Instant) -> Result<Vec<String>> {
        let (source, user) = self.locate_user(login, deadline).await?;
        bounded(deadline, customer_ids_of(&*source, &user)).await
    }

    /// Adds or removes an additional customer of `login`; returns the ids afterwards.
    pub async fn set_membership(
        &self,
        login: &str,
        customer_id: &str,
        member: bool,
        deadline: Instant,
    ) -> Result<Vec<String>> {
        let mut v = Vec::new();
        check_key("customer_id", customer_id, limits::CUSTOMER_ID, &mut v);
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        let (source, user) = self.locate_user(login, deadline).await?;
        if member {
            self.ensure_customer_exists(&*source, customer_id, "customer_id", deadline)
                .await?;
        }
        source
            .set_membership(&user.login, customer_id, member)
            .await?;
        self.customer_ids(&user.login, deadline).await
    }

    pub async fn preferences(
        &self,
        login: &str,
        deadline: Instant,
    ) -> Result<BTreeMap<String, String>> {
        let (source, user) = self.locate_user(login, deadline).await?;
        bounded(deadline, source.preferences(&user.login)).await
    }

    /// Sets one preference; native field names are refused.
    pub async fn set_preference(
        &self,
        login: &str,
        key: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<()> {
        let mut v = Vec::new();
        check_key("key", key, limits::PREFERENCE_KEY, &mut v);
        let native = PROTECTED_PREFERENCES
            .iter()
            .any(|p| p.eq_ignore_ascii_case(key))
            || UserField::from_name(key).is_some();
        if native {
            v.push(FieldViolation::new(
                "key",
                format!("{key:?} names a native field; change it with UpdateCustomerUser"),
            ));
        }
        if value.chars().count() > limits::PREFERENCE_VALUE {
            v.push(FieldViolation::new(
                "value",
                format!("must be at most {} characters", limits::PREFERENCE_VALUE),
            ));
        }
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        let (source, user) = self.locate_user(login, deadline).await?;
        source.set_preference(&user.login, key, value).await
    }

    // ----- customers -----

    fn customer_source(&self, name: &str) -> Option<&Arc<dyn CustomerSource>> {
        self.customer_sources().find(|s| s.name() == name)
    }

    async fn locate_customer(
        &self,
        customer_id: &str,
        deadline: Instant,
    ) -> Result<(Arc<dyn CustomerSource>, Customer)> {
        let mut v = Vec::new();
        check_key(
            "customer_id",
            customer_id,
            CustomerField::KEY.max_len(),
            &mut v,
        );
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        let results = fan_out(&self.customers, deadline, |s| s.get(customer_id)).await;
        let customer = first_found("customer", customer_id, results)?;
        let source = self
            .customer_source(&customer.source)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("unknown source {:?}", customer.source)))?;
        Ok((source, customer))
    }

    pub async fn get_customer(&self, customer_id: &str, deadline: Instant) -> Result<Customer> {
        Ok(self.locate_customer(customer_id, deadline).await?.1)
    }

    pub async fn create_customer(
        &self,
        source: Option<&str>,
        customer: Customer,
        deadline: Instant,
    ) -> Result<Customer> {
        let target = write_target(&self.customers, source, "customer")?;
        let violations = check_record(&customer, target.schema(), target.name());
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let results = fan_out(&self.customers, deadline, |s| s.get(&customer.customer_id)).await;
        for (name, r) in results {
            match r {
                Ok(Some(c)) => {
                    return Err(Error::AlreadyExists {
                        kind: "customer",
                        field: "customer_id",
                        key: c.customer_id,
                        source_name: Some(name.to_owned()),
                    })
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::Unavailable(format!(
                        "cannot verify that customer id {:?} is unused: source {name:?} {e}",
                        customer.customer_id
                    )))
                }
            }
        }
        target.create(&customer).await
    }

    /// Changes the masked attributes; a new customer id moves every customer user and
    /// membership along (in the customer's transaction where they share its database).
    pub async fn update_customer(
        &self,
        customer_id: &str,
        patch: CustomerPatch,
        deadline: Instant,
    ) -> Result<Customer> {
        let (source, current) = self.locate_customer(customer_id, deadline).await?;
        if !source.writable() {
            return Err(Error::FailedPrecondition {
                reason: "SOURCE_READ_ONLY",
                message: format!(
                    "customer {customer_id:?} is in read-only source {:?}",
                    source.name()
                ),
            });
        }
        let mut violations = patch.read_only_violations(source.schema(), source.name());
        violations.extend(check_record(
            &patch.apply(&current),
            source.schema(),
            source.name(),
        ));
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let renamed = patch
            .new_key()
            .filter(|n| *n != current.customer_id)
            .map(str::to_owned);
        if let Some(new_id) = &renamed {
            if fold(new_id) != fold(&current.customer_id) {
                let results = fan_out(&self.customers, deadline, |s| s.get(new_id)).await;
                for (name, r) in results {
                    if let Ok(Some(c)) = r {
                        return Err(Error::AlreadyExists {
                            kind: "customer",
                            field: "customer_id",
                            key: c.customer_id,
                            source_name: Some(name.to_owned()),
                        });
                    }
                }
            }
        }
        let updated = source.update(&current.customer_id, &patch).await?;
        if let Some(new_id) = renamed {
            let done = source.renames_users_of();
            // Co-located users were moved behind their sources' backs: no cached answer survives.
            for s in self.user_sources() {
                s.invalidate_cache();
            }
            let mut failed = Vec::new();
            if let Some(g) = &self.groups {
                if let Err(e) = g.store.rename_customer(&current.customer_id, &new_id).await {
                    failed.push(format!("group grants: {e}"));
                }
            }
            for s in self
                .user_sources()
                .filter(|s| !done.iter().any(|d| d == s.name()))
            {
                if let Err(e) = s.rename_customer_id(&current.customer_id, &new_id).await {
                    tracing::error!(source = s.name(), error = %e, old = %current.customer_id, new = %new_id, "moving customer users to the renamed customer id failed");
                    failed.push(format!("{}: {e}", s.name()));
                }
            }
            if !failed.is_empty() {
                return Err(Error::Unavailable(format!(
                    "customer renamed to {new_id:?}, but customer users of these sources still name {:?}: {}; repeat the rename of their customer id once the sources are back",
                    current.customer_id,
                    failed.join("; ")
                )));
            }
        }
        Ok(updated)
    }

    pub async fn search_customers(
        &self,
        search: CustomerSearch,
        only: &[String],
        deadline: Instant,
    ) -> Result<Merged<Customer>> {
        for (i, name) in only.iter().enumerate() {
            if self.customer_source(name).is_none() {
                return Err(Error::invalid(
                    format!("sources[{i}]"),
                    format!("no customer source is named {name:?}"),
                ));
            }
        }
        let search = CustomerSearch {
            limit: checked_limit(search.limit, self.customer_limit),
            ..search
        };
        let selected: Vec<&Bounded<dyn CustomerSource>> = self
            .customers
            .iter()
            .filter(|b| only.is_empty() || only.iter().any(|n| n == b.source.name()))
            .collect();
        let results = fan_out_refs(&selected, deadline, |s| s.search(&search)).await;
        merge_pages(results, search.limit)
    }

    /// Customer users whose primary customer id is `customer_id`, plus the members of it.
    pub async fn customer_users_of(
        &self,
        customer_id: &str,
        include_invalid: bool,
        limit: usize,
        deadline: Instant,
    ) -> Result<Merged<CustomerUser>> {
        let mut v = Vec::new();
        check_key("customer_id", customer_id, limits::CUSTOMER_ID, &mut v);
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        let limit = checked_limit(limit, self.user_limit);
        let search = UserSearch {
            criterion: UserCriterion::CustomerId(crate::domain::query::Pattern::literal(
                customer_id,
            )),
            include_invalid,
            limit,
        };
        let search = &search;
        let results = fan_out(&self.users, deadline, |s| async move {
            let mut page = s.search(search).await?;
            let members = s.members_of(customer_id).await?;
            let have: HashSet<String> = page.items.iter().map(|u| fold(&u.login)).collect();
            for login in members.into_iter().filter(|l| !have.contains(&fold(l))) {
                if let Some(u) = s.get(&login).await? {
                    if include_invalid || u.validity == crate::domain::Validity::Valid {
                        page.items.push(u);
                    }
                }
            }
            page.items.sort_by_cached_key(|u| fold(&u.login));
            if page.items.len() > limit {
                page.items.truncate(limit);
                page.truncated = true;
            }
            Ok(page)
        })
        .await;
        merge_pages(results, limit)
    }
}

/// The customer ids of a located customer user: the primary first, then the memberships its
/// source keeps, without duplicates.
pub(crate) async fn customer_ids_of(
    source: &dyn CustomerUserSource,
    user: &CustomerUser,
) -> std::result::Result<Vec<String>, SourceError> {
    let mut ids = Vec::new();
    if !user.customer_id.is_empty() {
        ids.push(user.customer_id.clone());
    }
    for id in source.memberships(&user.login).await? {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Bounds a single-source call by the deadline.
async fn bounded<T>(
    deadline: Instant,
    fut: impl Future<Output = std::result::Result<T, SourceError>>,
) -> Result<T> {
    match timeout_at(deadline, fut).await {
        Ok(r) => r.map_err(Error::from),
        Err(_) => Err(Error::DeadlineExceeded(
            "the source did not answer in time".into(),
        )),
    }
}

/// `fan_out` over a filtered selection of sources.
async fn fan_out_refs<'a, S, T, F, Fut>(
    sources: &[&'a Bounded<S>],
    deadline: Instant,
    call: F,
) -> Vec<(&'a str, std::result::Result<T, SourceError>)>
where
    S: ?Sized + Named + 'a,
    F: Fn(&'a S) -> Fut,
    Fut: Future<Output = std::result::Result<T, SourceError>> + 'a,
{
    let started = Instant::now();
    let calls = sources.iter().map(|b| {
        let until = deadline.min(started + b.timeout);
        let fut = call(&*b.source);
        let name = b.source.name();
        let span = tracing::debug_span!("source", source = name, outcome = tracing::field::Empty);
        async move {
            let r = timeout_at(until, fut).await.unwrap_or_else(|_| {
                Err(SourceError::Unavailable(format!(
                    "no answer within {} ms (deadline or source timeout)",
                    b.timeout
                        .min(deadline.saturating_duration_since(started))
                        .as_millis()
                )))
            });
            let outcome = match &r {
                Ok(_) => "ok",
                Err(SourceError::Unavailable(_)) => "unavailable",
                Err(SourceError::Failed(_)) => "failed",
            };
            tracing::Span::current().record("outcome", outcome);
            metrics::histogram!("clientele_source_duration_seconds", "source" => name.to_owned(), "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
            if let Err(e) = &r {
                metrics::counter!("clientele_source_errors_total", "source" => name.to_owned(), "outcome" => outcome).increment(1);
                tracing::debug!(source = name, error = %e, "source call failed");
            }
            r
        }
        .instrument(span)
    });
    let results = join_all(calls).await;
    sources
        .iter()
        .map(|b| b.source.name())
        .zip(results)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(source: &str, logins: &[&str], truncated: bool) -> Page<CustomerUser> {
        Page {
            items: logins
                .iter()
                .map(|l| CustomerUser {
                    login: (*l).to_owned(),
                    source: source.to_owned(),
                    ..Default::default()
                })
                .collect(),
            truncated,
        }
    }

    #[test]
    fn merge_keeps_the_first_source_per_login_sorted_and_cut() {
        let merged = merge_pages(
            vec![
                ("a", Ok(page("a", &["mia", "Bob"], false))),
                ("b", Ok(page("b", &["bob", "anna", "MIA", "zoe"], false))),
            ],
            3,
        )
        .unwrap();
        let got: Vec<(&str, &str)> = merged
            .items
            .iter()
            .map(|u| (u.login.as_str(), u.source.as_str()))
            .collect();
        assert_eq!(got, [("anna", "b"), ("Bob", "a"), ("mia", "a")]);
        assert!(merged.truncated, "zoe was cut");
        assert_eq!(merged.status.len(), 2);
    }

    #[test]
    fn merge_fails_only_when_every_source_failed() {
        let one_down = merge_pages(
            vec![
                ("a", Err(SourceError::Unavailable("down".into()))),
                ("b", Ok(page("b", &["x"], false))),
            ],
            10,
        )
        .unwrap();
        assert_eq!(one_down.items.len(), 1);
        assert_eq!(
            one_down.status[0].error.as_deref(),
            Some("unavailable: down")
        );
        let all_down: Result<Merged<CustomerUser>> = merge_pages(
            vec![("a", Err(SourceError::Unavailable("down".into())))],
            10,
        );
        assert!(matches!(all_down, Err(Error::Unavailable(_))));
    }
}
