//! The source multiplexer: every read fans out to all sources concurrently (each bounded by the
//! caller's deadline and its own timeout), answers are merged exactly once per key with the
//! first configured source winning, sorted by key case-insensitively and cut at the limit. A
//! failing source yields a partial answer with its status; only when every source failed does a
//! read fail (`Unavailable`). A key is written only when every source proves it unused.
//!
//! Here: the [`Directory`] and its customer-user, customer and membership operations; the
//! fan-out / fan-in rules in `fanin`, authentication in `auth`, groups in `groups`, health
//! probes in `health`.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    sync::Arc,
};

use tokio::time::{timeout_at, Instant};

use crate::clock::Clock;
use crate::config::AuthSettings;
use crate::domain::group::Policy;
use crate::domain::{
    customer_user::check_user,
    email, fold, limits,
    record::{check_key, check_record},
    search::{CustomerSearch, Detail, SortKey, UserCriterion, UserSearch},
    Customer, CustomerField, CustomerPatch, CustomerUser, CustomerUserPatch, Field, UserField,
};
use crate::error::{Error, FieldViolation, Result};
use crate::source::{cached, CustomerSourceBundle, GroupStore, SourceError, UserSourceBundle};

mod auth;
mod fanin;
mod groups;
mod health;
mod login_state;
pub mod paging;
mod two_factor;
mod walk;

pub use auth::{AuthOutcome, Authentication};
pub use fanin::{merge_pages, Bounded, Held, Merged, SourceStatus};
pub use health::Probe;
pub use two_factor::{TotpEnrollment, TotpStatus};
pub use walk::{Total, Walk, COUNT_MAX, MAX_BATCH};

use fanin::{collect, ensure_key_free, fan_out, locate, merge_walk, write_target, writer_of};

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

/// One resolved sender address.
#[derive(Debug, Clone)]
pub struct SenderResolution {
    pub address: String,
    pub normalized: Option<String>,
    pub error: Option<String>,
    pub customer_users: Vec<CustomerUser>,
}

/// The multiplexer over every configured source.
pub struct Directory {
    users: Vec<Bounded<UserSourceBundle>>,
    customers: Vec<Bounded<CustomerSourceBundle>>,
    user_limit: usize,
    customer_limit: usize,
    groups: Option<Groups>,
    auth: AuthSettings,
    /// Lock expiry is decided on it.
    clock: Arc<dyn Clock>,
}

/// The group store and the rules that decide permissions.
pub struct Groups {
    pub store: Arc<dyn GroupStore>,
    pub policy: Policy,
}

fn checked_limit(limit: usize, default: usize) -> usize {
    match limit {
        0 => default,
        n => n.min(MAX_LIMIT),
    }
}

impl Directory {
    /// `users` and `customers` in precedence order.
    /// `users` and `customers` in precedence order; lock expiry on the system clock (see
    /// [`Directory::with_clock`]).
    pub fn new(
        users: Vec<Bounded<UserSourceBundle>>,
        customers: Vec<Bounded<CustomerSourceBundle>>,
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
            clock: crate::clock::system(),
        }
    }

    /// The same directory deciding lock expiry on `clock` (the caches of its sources take
    /// their clock when they are built).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The customer-user sources, in precedence order.
    pub fn user_sources(&self) -> impl Iterator<Item = &UserSourceBundle> {
        self.users.iter().map(|b| &b.source)
    }

    /// The group store, when one is configured.
    pub fn group_store(&self) -> Option<&Arc<dyn GroupStore>> {
        self.groups.as_ref().map(|g| &g.store)
    }

    /// The customer sources, in precedence order.
    pub fn customer_sources(&self) -> impl Iterator<Item = &CustomerSourceBundle> {
        self.customers.iter().map(|b| &b.source)
    }

    fn user_source(&self, name: &str) -> Option<&UserSourceBundle> {
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
    ) -> Result<(&UserSourceBundle, CustomerUser)> {
        let mut v = Vec::new();
        check_key("login", login, limits::LOGIN, &mut v);
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        locate(&self.users, login, deadline, |s| s.reader.get(login)).await
    }

    /// Refuses `login` when any source other than `except` (the record's own source, for a
    /// rename that only changes case) already has it; every source must answer.
    async fn ensure_login_free(
        &self,
        login: &str,
        except: Option<(&str, &str)>,
        deadline: Instant,
    ) -> Result<()> {
        ensure_key_free(&self.users, "login", login, except, deadline, |s| {
            s.reader.get(login)
        })
        .await
    }

    /// When the source requires it (and customers are configured), the customer must exist.
    async fn ensure_customer_exists(
        &self,
        source: &UserSourceBundle,
        customer_id: &str,
        field: &str,
        deadline: Instant,
    ) -> Result<()> {
        if !source.reader.customer_company_support()
            || self.customers.is_empty()
            || customer_id.is_empty()
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
        let (target, writer) = write_target(&self.users, source)?;
        let mut violations = check_user(&user, target.reader.schema(), target.name());
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
            target,
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
        let stored = writer.create(&user, hash.as_deref()).await;
        target.forget(&[&user.login]).await;
        Ok((stored?, generated))
    }

    /// Changes the masked attributes of `login`; a new login renames it everywhere. A rename
    /// moves, in the record's own transaction, the record, its preferences, its memberships and
    /// its failed-login state (SQL sources keep them in the record's database), then the group
    /// grants (the group store, possibly another database). A customer user of a read-only
    /// source (LDAP included) cannot be renamed (`FailedPrecondition`), so nothing of it is left
    /// behind. A rename that could not reach every place answers `Unavailable` naming the places
    /// that still hold the old login; repeating the same call completes it: when `login` is gone
    /// and the new login exists in a writable source, only the remaining places are moved and
    /// the record is answered as it is (`finish_user_rename`). Both look-ups read past the
    /// per-replica cache, so a repetition on another replica finds what the first call did.
    pub async fn update_user(
        &self,
        login: &str,
        patch: CustomerUserPatch,
        deadline: Instant,
    ) -> Result<CustomerUser> {
        // Read past the per-replica cache: another replica may have renamed the record.
        let located = cached::bypass(true, self.locate_user(login, deadline)).await;
        let (source, current) = match located {
            Err(Error::NotFound { kind, key }) => {
                return match patch.new_key().filter(|n| *n != login) {
                    Some(new_login) => self
                        .finish_user_rename(login, new_login, &patch, deadline)
                        .await?
                        .ok_or(Error::NotFound { kind, key }),
                    None => Err(Error::NotFound { kind, key }),
                };
            }
            other => other?,
        };
        let writer = writer_of(source)?;
        let schema = source.reader.schema();
        let mut violations = patch.read_only_violations(schema, source.name());
        let next = patch.apply(&current);
        violations.extend(check_user(&next, schema, source.name()));
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        if let Some(new_login) = patch.new_key().filter(|n| *n != current.login) {
            self.ensure_login_free(new_login, Some((source.name(), &current.login)), deadline)
                .await?;
        }
        if patch.touches(&crate::domain::Attr::Field(UserField::CustomerId)) {
            self.ensure_customer_exists(
                source,
                &next.customer_id,
                "customer_user.customer_id",
                deadline,
            )
            .await?;
        }
        let updated = writer.update(&current.login, &patch).await;
        let new_login = patch.new_key().unwrap_or(&current.login);
        source.forget(&[&current.login, new_login]).await;
        let updated = updated?;
        if updated.login != current.login {
            self.move_grants_of_login(&current.login, &updated.login)
                .await?;
        }
        Ok(updated)
    }

    /// The repetition of a rename `old` → `new` whose record already moved: when `new` exists
    /// in a writable source, the places outside the record's transaction that may still hold
    /// `old` (the group grants) are moved and the record at `new` is answered unchanged (the
    /// first call wrote it whole). `None` when no source has `new` (the caller's `NotFound`).
    /// The request is checked as for a rename, so bad input keeps its status.
    async fn finish_user_rename(
        &self,
        old: &str,
        new: &str,
        patch: &CustomerUserPatch,
        deadline: Instant,
    ) -> Result<Option<CustomerUser>> {
        let (source, current) = match cached::bypass(true, self.locate_user(new, deadline)).await {
            Ok(found) => found,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        writer_of(source)?;
        let schema = source.reader.schema();
        let mut violations = patch.read_only_violations(schema, source.name());
        violations.extend(check_user(&patch.apply(&current), schema, source.name()));
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        tracing::info!(source = source.name(), %old, new = %current.login, "repeated rename: completing the places that still hold the old login");
        source.forget(&[old, &current.login]).await;
        self.move_grants_of_login(old, &current.login).await?;
        Ok(Some(current))
    }

    /// Moves the group grants of login `old` to `new` (idempotent: nothing left is nothing
    /// moved); `Unavailable` naming the place that still holds `old` when the group store
    /// cannot do it, so the caller repeats the rename.
    async fn move_grants_of_login(&self, old: &str, new: &str) -> Result<()> {
        let Some(g) = &self.groups else {
            return Ok(());
        };
        g.store.rename_login(old, new).await.map_err(|e| {
            tracing::error!(%old, %new, error = %e, "moving group grants to the renamed login failed");
            Error::Unavailable(format!(
                "customer user renamed to {new:?}, but these places still hold {old:?}: group grants ({e}); repeat the same rename to complete it"
            ))
        })
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
            detail: Detail::default(),
        };
        let selected = self
            .users
            .iter()
            .filter(|b| only.is_empty() || only.iter().any(|n| n == b.source.name()));
        let results = fan_out(selected, deadline, |s| s.reader.search(&search)).await;
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
            let results =
                fan_out(&self.users, deadline, |s| s.reader.find_by_emails(&unique)).await;
            let collected = collect(results, |matches| (matches.len(), false))?;
            status = collected.status;
            let mut winner: HashMap<String, &str> = HashMap::new();
            for (source, matches) in collected.answers {
                let name = source.name();
                // A login found in an earlier source shadows the same login here.
                let mut here = HashSet::new();
                for (address, user) in matches {
                    let key = fold(&user.login);
                    if winner.get(&key).is_some_and(|s| *s != name) {
                        continue;
                    }
                    winner.insert(key.clone(), name);
                    if here.insert((address.clone(), key)) {
                        by_address.entry(address).or_default().push(user);
                    }
                }
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
        bounded(deadline, customer_ids_of(source, &user)).await
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
            self.ensure_customer_exists(source, customer_id, "customer_id", deadline)
                .await?;
        }
        source
            .companion
            .set_membership(&user.login, customer_id, member)
            .await?;
        self.customer_ids(&user.login, deadline).await
    }

    /// The stored preferences of `login`, without the second factor's secret and pending
    /// enrolment (secrets never leave the service).
    pub async fn preferences(
        &self,
        login: &str,
        deadline: Instant,
    ) -> Result<BTreeMap<String, String>> {
        let (source, user) = self.locate_user(login, deadline).await?;
        let mut all = bounded(deadline, source.companion.preferences(&user.login)).await?;
        all.retain(|key, _| !self.is_two_factor_preference(key));
        Ok(all)
    }

    /// Sets one preference; native field names are refused, and so are the second factor's
    /// (its secret and a pending enrolment: see `EnrollTotp`).
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
        } else if self.is_two_factor_preference(key) {
            v.push(FieldViolation::new(
                "key",
                format!("{key:?} holds a second-factor secret; use EnrollTotp, ConfirmTotp and RemoveTotp"),
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
        source
            .companion
            .set_preference(&user.login, key, value)
            .await
    }

    // ----- customers -----

    fn customer_source(&self, name: &str) -> Option<&CustomerSourceBundle> {
        self.customer_sources().find(|s| s.name() == name)
    }

    /// The customer and the source holding it.
    async fn locate_customer(
        &self,
        customer_id: &str,
        deadline: Instant,
    ) -> Result<(&CustomerSourceBundle, Customer)> {
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
        locate(&self.customers, customer_id, deadline, |s| {
            s.reader.get(customer_id)
        })
        .await
    }

    /// Refuses `customer_id` when any source other than `except` (the record's own source, for
    /// a rename that only changes case) already has it; every source must answer.
    async fn ensure_customer_id_free(
        &self,
        customer_id: &str,
        except: Option<(&str, &str)>,
        deadline: Instant,
    ) -> Result<()> {
        ensure_key_free(
            &self.customers,
            "customer_id",
            customer_id,
            except,
            deadline,
            |s| s.reader.get(customer_id),
        )
        .await
    }

    pub async fn get_customer(&self, customer_id: &str, deadline: Instant) -> Result<Customer> {
        Ok(self.locate_customer(customer_id, deadline).await?.1)
    }

    /// Creates a customer in `source` (or the first writable one) once every source proved
    /// its id unused.
    pub async fn create_customer(
        &self,
        source: Option<&str>,
        customer: Customer,
        deadline: Instant,
    ) -> Result<Customer> {
        let (target, writer) = write_target(&self.customers, source)?;
        let violations = check_record(&customer, target.reader.schema(), target.name());
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        self.ensure_customer_id_free(&customer.customer_id, None, deadline)
            .await?;
        writer.create(&customer).await
    }

    /// Changes the masked attributes; a new customer id (proven unused by every source first)
    /// moves every place that names the old one: the customer record, with the customer users
    /// and memberships of the same database in its transaction; then the group grants of the
    /// customer, the customer users of every other writable source, and the additional
    /// memberships kept in every source's companion tables (LDAP and read-only sources
    /// included). The records of read-only sources keep naming the old id (Clientele does not
    /// write them; logged as a warning). A rename that could not reach every place answers
    /// `Unavailable` naming the places that still hold the old id; repeating the same call
    /// completes it: when `customer_id` is gone and the new id exists in a writable source,
    /// only the remaining places are moved and the customer is answered as it is.
    pub async fn update_customer(
        &self,
        customer_id: &str,
        patch: CustomerPatch,
        deadline: Instant,
    ) -> Result<Customer> {
        let (source, current) = match self.locate_customer(customer_id, deadline).await {
            Err(Error::NotFound { kind, key }) => {
                let Some(new_id) = patch.new_key().filter(|n| *n != customer_id) else {
                    return Err(Error::NotFound { kind, key });
                };
                let (source, found) = match self.locate_customer(new_id, deadline).await {
                    Ok(found) => found,
                    Err(Error::NotFound { .. }) => return Err(Error::NotFound { kind, key }),
                    Err(e) => return Err(e),
                };
                let writer = writer_of(source)?;
                let schema = source.reader.schema();
                let mut violations = patch.read_only_violations(schema, source.name());
                violations.extend(check_record(&patch.apply(&found), schema, source.name()));
                if !violations.is_empty() {
                    return Err(Error::InvalidArgument(violations));
                }
                tracing::info!(source = source.name(), old = %customer_id, new = %found.customer_id, "repeated customer rename: completing the places that still hold the old id");
                self.move_customer_references(
                    writer.as_ref(),
                    customer_id,
                    &found.customer_id,
                    deadline,
                )
                .await?;
                return Ok(found);
            }
            other => other?,
        };
        let writer = writer_of(source)?;
        let schema = source.reader.schema();
        let mut violations = patch.read_only_violations(schema, source.name());
        violations.extend(check_record(&patch.apply(&current), schema, source.name()));
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let renamed = patch
            .new_key()
            .filter(|n| *n != current.customer_id)
            .map(str::to_owned);
        if let Some(new_id) = &renamed {
            self.ensure_customer_id_free(
                new_id,
                Some((source.name(), &current.customer_id)),
                deadline,
            )
            .await?;
        }
        let updated = writer.update(&current.customer_id, &patch).await?;
        if let Some(new_id) = renamed {
            self.move_customer_references(writer.as_ref(), &current.customer_id, &new_id, deadline)
                .await?;
        }
        Ok(updated)
    }

    /// Moves what names customer `old` outside the customer's own transaction to `new`: group
    /// grants, customer users of writable sources not moved by `writer` itself, and the
    /// additional memberships in every source's companion tables. Idempotent (what was moved
    /// is not found again), so a repeated rename completes it; `Unavailable` naming each place
    /// that still holds `old` when any could not be reached.
    async fn move_customer_references(
        &self,
        writer: &dyn crate::source::CustomerWriter,
        old: &str,
        new: &str,
        deadline: Instant,
    ) -> Result<()> {
        let done = writer.renames_users_of();
        // Co-located users were moved behind their sources' backs: no cached answer survives.
        for s in self.user_sources() {
            s.forget_all();
        }
        let mut failed = Vec::new();
        if let Some(g) = &self.groups {
            if let Err(e) = g.store.rename_customer(old, new).await {
                failed.push(format!("group grants ({e})"));
            }
        }
        for s in self.user_sources() {
            match (&s.writer, done.iter().any(|d| d == s.name())) {
                (Some(w), false) => {
                    let r = w.rename_customer_id(old, new).await;
                    s.forget_all();
                    if let Err(e) = r {
                        tracing::error!(source = s.name(), error = %e, %old, %new, "moving customer users to the renamed customer id failed");
                        failed.push(format!("customer users of source {:?} ({e})", s.name()));
                        continue;
                    }
                }
                (None, _) => {
                    // A read-only source's records keep what they name; say so, once per rename.
                    match bounded(deadline, s.reader.by_customer_ids(&[old.to_owned()])).await {
                        Ok(users) if !users.is_empty() => tracing::warn!(
                            source = s.name(),
                            %old,
                            %new,
                            customer_users = users.len(),
                            "customer renamed, but customer users of a read-only source still name the old customer id"
                        ),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(source = s.name(), error = %e, "cannot count the customer users of a read-only source that name the renamed customer id")
                        }
                    }
                }
                (Some(_), true) => {}
            }
            if let Err(e) = move_memberships(s, old, new).await {
                tracing::error!(source = s.name(), error = %e, %old, %new, "moving customer memberships to the renamed customer id failed");
                failed.push(format!("memberships of source {:?} ({e})", s.name()));
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(Error::Unavailable(format!(
            "customer renamed to {new:?}, but these places still hold {old:?}: {}; repeat the same rename to complete it",
            failed.join("; ")
        )))
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
        let selected = self
            .customers
            .iter()
            .filter(|b| only.is_empty() || only.iter().any(|n| n == b.source.name()));
        let results = fan_out(selected, deadline, |s| s.reader.search(&search)).await;
        merge_pages(results, search.limit)
    }

    /// Customer users whose primary customer id is `customer_id`, plus the members of it,
    /// by login: at most `limit`, after the folded login `after` (a page of the list; `next`
    /// says where the next page starts).
    pub async fn customer_users_of(
        &self,
        customer_id: &str,
        include_invalid: bool,
        limit: usize,
        after: Option<String>,
        deadline: Instant,
    ) -> Result<Walk<CustomerUser>> {
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
            detail: Detail {
                after: after.map(|key| SortKey {
                    values: Vec::new(),
                    key,
                }),
                paged: true,
                ..Detail::default()
            },
        };
        let search = &search;
        let results = fan_out(&self.users, deadline, |s| async move {
            let mut page = s.reader.search(search).await?;
            let mut members = s.companion.members_of(customer_id).await?;
            members.extend(s.reader.record_members_of(customer_id).await?);
            let mut have: HashSet<String> = page.items.iter().map(|u| fold(&u.login)).collect();
            for login in members {
                if !have.insert(fold(&login)) {
                    continue;
                }
                if let Some(u) = s.reader.get(&login).await? {
                    if (include_invalid || u.validity == crate::domain::Validity::Valid)
                        && search.detail.is_after(&u)
                    {
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
        let names: Vec<&str> = self.users.iter().map(|b| b.source.name()).collect();
        let walked = merge_walk(results, &names, &search.detail.order, limit)?;
        Ok(Walk {
            items: walked.items.into_iter().map(|(_, u)| u).collect(),
            next: walked.next,
            status: walked.status,
            total: None,
        })
    }
}

/// The customer ids of a located customer user: the primary first, then those its record
/// carries itself, then the memberships of the companion tables, without duplicates.
pub(crate) async fn customer_ids_of(
    source: &UserSourceBundle,
    user: &CustomerUser,
) -> std::result::Result<Vec<String>, SourceError> {
    let mut ids = Vec::new();
    if !user.customer_id.is_empty() {
        ids.push(user.customer_id.clone());
    }
    let mut more = source.reader.record_memberships(&user.login).await?;
    more.extend(source.companion.memberships(&user.login).await?);
    for id in more {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Moves the additional memberships in customer `old` kept in `source`'s companion tables to
/// `new`, one login at a time (each added to `new`, then removed from `old`), so a move cut
/// short leaves every login a member of at least one of them and a repetition finishes it.
async fn move_memberships(source: &UserSourceBundle, old: &str, new: &str) -> Result<()> {
    for login in source.companion.members_of(old).await? {
        source.companion.set_membership(&login, new, true).await?;
        source.companion.set_membership(&login, old, false).await?;
    }
    Ok(())
}

/// Bounds a single-source call by the deadline.
async fn bounded<T, E: Into<Error>>(
    deadline: Instant,
    fut: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    match timeout_at(deadline, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(Error::DeadlineExceeded(
            "the source did not answer in time".into(),
        )),
    }
}
