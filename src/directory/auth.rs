//! Customer logins: ordered auth backends over the sources, each checking passwords its way
//! (stored hashes in every OTRS format, or an LDAP bind), lockout counted in the companion
//! tables (count and lock decided atomically there, the lock checked again when a success is
//! recorded) and expiring on the directory's clock, re-hashing to argon2id, and an audit event
//! per decision. Callers learn nothing they should not: `INVALID_CREDENTIALS` is one answer
//! (no source) costing one argon2id verification on every path, invalid users are counted like
//! any other, and over-long logins, passwords and OTPs are refused before any work. After the
//! right password comes the second factor (`two_factor`): a missing token of a user with a
//! secret answers `SECOND_FACTOR_REQUIRED` (nothing counted), a wrong or replayed one is a
//! failed attempt like a wrong password. Also setting passwords and unlocking logins.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{
    fanin::{writer_of, Bounded},
    two_factor::SecondFactor,
    Directory,
};
use crate::auth::{dummy_verify, hash, hash_password, verify_password};
use crate::domain::{limits, record::check_key, CustomerUser, Validity};
use crate::error::{Error, FieldViolation, Result};
use crate::source::{
    Credentials, DirectoryBind, Failure, SourceError, UserSourceBundle, UserWriter,
};

/// The decision on one login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Success,
    /// Unknown login, wrong or empty password, no password set, refused bind, for valid and
    /// invalid users alike: the same answer (no source), one argon2id verification each.
    InvalidCredentials,
    /// Too many failed attempts, whatever the password.
    Locked,
    /// The right password of a customer user that is not valid (wrong ones are
    /// `InvalidCredentials` and counted), with the second factor passed.
    Disabled,
    /// The right password, but the second factor is missing: the user has a secret and no
    /// OTP was sent, or has none while `allow_empty_secret` is off (then never anything else
    /// until enrolled). Nothing is counted; no source, no user.
    SecondFactorRequired,
}

impl AuthOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Locked => "locked",
            Self::Disabled => "disabled",
            Self::SecondFactorRequired => "second_factor_required",
        }
    }
}

/// The answer to an authentication.
#[derive(Debug, Clone)]
pub struct Authentication {
    pub outcome: AuthOutcome,
    /// Only on success.
    pub customer_user: Option<CustomerUser>,
    pub customer_ids: Vec<String>,
    /// The source that decided; empty for `InvalidCredentials`, so that an unknown login and
    /// a wrong password read the same.
    pub source: String,
    /// Epoch seconds, when locked (`i64::MAX`: until unlocked).
    pub locked_until: Option<i64>,
}

/// What the found login's password is checked against.
enum Check {
    /// The stored hash (`None`: no password set, nothing verifies).
    Hash(Option<String>),
    /// A bind as the entry's DN.
    Bind(Arc<dyn DirectoryBind>, String),
}

/// The one password computation an attempt pays for.
enum Spent<'a> {
    /// Verifying against this stored hash.
    Verify(&'a str),
    /// A dummy argon2id verification: nothing can verify, or a bind was refused.
    Dummy,
}

#[cfg(test)]
thread_local! {
    /// How many password computations this thread started (the unit tests count them).
    static SPENT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The violation of a password longer than [`limits::PASSWORD_BYTES`] (named `password`),
/// decided before anything is hashed or verified.
fn password_length(password: &str) -> Option<FieldViolation> {
    (password.len() > limits::PASSWORD_BYTES).then(|| {
        FieldViolation::new(
            "password",
            format!("must be at most {} bytes", limits::PASSWORD_BYTES),
        )
    })
}

/// A login's call to its source, bounded by the source's `call_timeout` whatever the caller's
/// deadline (which bounds the whole login besides): a silent source makes the login
/// `Unavailable` after at most `call_timeout`, and counts nothing. A statement cut off by the
/// bound is rolled back with its transaction.
pub(super) async fn within<T>(
    bound: Duration,
    call: impl Future<Output = std::result::Result<T, SourceError>>,
) -> std::result::Result<T, SourceError> {
    tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
        Err(SourceError::Unavailable(format!(
            "no answer within {} ms (call_timeout)",
            bound.as_millis()
        )))
    })
}

/// The customer user with `login` in `source` and how its password is checked, or `None`.
async fn credentials_of(
    source: &UserSourceBundle,
    login: &str,
) -> std::result::Result<Option<(CustomerUser, Check)>, SourceError> {
    Ok(match &source.credentials {
        Credentials::Hashes(h) => h
            .with_hash(login)
            .await?
            .map(|(user, hash)| (user, Check::Hash(hash))),
        Credentials::Bind(b) => b
            .with_dn(login)
            .await?
            .map(|(user, dn)| (user, Check::Bind(b.clone(), dn))),
    })
}

pub(super) fn unavailable(source: &str, e: SourceError) -> Error {
    Error::Unavailable(format!("auth backend {source:?}: {e}"))
}

impl Directory {
    /// The auth backends in order, each with its source's `call_timeout`.
    fn auth_backends(&self) -> impl Iterator<Item = &Bounded<UserSourceBundle>> {
        self.auth
            .backends
            .iter()
            .filter_map(|name| self.users.iter().find(|b| b.source.name() == name))
    }

    /// Checks a login, password and (with `[auth.two_factor] enabled`) one-time password
    /// `otp` ("" for none) against the auth backends in order: the first backend whose source
    /// has the login decides (see [`Directory::decide`] for the outcomes). A login longer than
    /// its column, a password longer than [`limits::PASSWORD_BYTES`] or an OTP longer than
    /// [`limits::OTP_BYTES`] is `InvalidArgument` naming the field, before anything is looked
    /// up or hashed. A backend that cannot be reached makes the call `Unavailable` and counts
    /// nothing.
    pub async fn authenticate(
        &self,
        login: &str,
        password: &str,
        otp: &str,
        client: &str,
        deadline: Instant,
    ) -> Result<Authentication> {
        let mut v = Vec::new();
        check_key("login", login, limits::LOGIN, &mut v);
        v.extend(password_length(password));
        v.extend(super::two_factor::otp_length(otp));
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        let result = tokio::time::timeout_at(deadline, self.decide(login, password, otp))
            .await
            .map_err(|_| Error::DeadlineExceeded("authentication did not finish in time".into()))?;
        if let Ok(a) = &result {
            metrics::counter!("clientele_auth_outcomes_total", "outcome" => a.outcome.as_str())
                .increment(1);
        }
        match &result {
            Ok(a) => tracing::info!(
                target: "clientele::audit",
                login,
                outcome = a.outcome.as_str(),
                source = %a.source,
                client,
                "authentication"
            ),
            Err(e) => tracing::warn!(
                target: "clientele::audit",
                login,
                outcome = "unavailable",
                client,
                error = %e,
                "authentication"
            ),
        }
        result
    }

    /// The decision, in this order: the first backend with the login; a login locked at this
    /// moment is LOCKED (nothing verified, nothing counted); then exactly one password check
    /// (a verification, a bind followed by a dummy verification when refused, or a dummy
    /// verification when nothing can verify), so every INVALID_CREDENTIALS costs one argon2id
    /// verification whatever the stored format. A wrong password is counted atomically with
    /// the lock decision, for valid and invalid users alike. The right password answers
    /// DISABLED for an invalid user and SUCCESS otherwise, each only if the login is not
    /// locked after the verification (a success resets the count in one conditional
    /// statement). INVALID_CREDENTIALS names no source: it reads the same for an unknown login.
    ///
    /// The second factor is asked only after the right password (so a wrong password answers
    /// the same whatever `otp` is, and whether or not a secret exists) and before validity (as
    /// in Znuny: DISABLED is told only to both factors): missing, it is
    /// SECOND_FACTOR_REQUIRED (nothing counted, nothing named); wrong or replayed, the attempt
    /// is counted and answered like a wrong password.
    async fn decide(&self, login: &str, password: &str, otp: &str) -> Result<Authentication> {
        let denied = |outcome, source: &str, locked_until| Authentication {
            outcome,
            customer_user: None,
            customer_ids: Vec::new(),
            source: source.to_owned(),
            locked_until,
        };
        let invalid = || denied(AuthOutcome::InvalidCredentials, "", None);
        let mut found = None;
        for backend in self.auth_backends() {
            let source = &backend.source;
            match within(backend.timeout, credentials_of(source, login)).await {
                Ok(Some((user, check))) => {
                    found = Some((source, backend.timeout, user, check));
                    break;
                }
                Ok(None) => {}
                Err(e) => return Err(unavailable(source.name(), e)),
            }
        }
        let Some((source, bound, user, check)) = found else {
            self.spend(Spent::Dummy, password).await?;
            return Ok(invalid());
        };
        let side = &source.companion;
        let at = self.clock.epoch_seconds();
        let state = within(bound, side.login_state(&user.login))
            .await
            .map_err(|e| unavailable(source.name(), e))?;
        if state.locked_at(at) {
            return Ok(denied(
                AuthOutcome::Locked,
                source.name(),
                state.locked_until,
            ));
        }
        let (ok, stored) = match &check {
            Check::Hash(Some(stored)) if !password.is_empty() => (
                self.spend(Spent::Verify(stored), password).await?,
                Some(stored.clone()),
            ),
            Check::Hash(_) => (self.spend(Spent::Dummy, password).await?, None),
            Check::Bind(directory, dn) => {
                let bound = within(bound, directory.bind_as(dn, password))
                    .await
                    .map_err(|e| unavailable(source.name(), e))?;
                if !bound {
                    // A refused bind costs what a wrong stored password costs.
                    self.spend(Spent::Dummy, password).await?;
                }
                (bound, None)
            }
        };
        let ok = ok
            && match self.second_factor(source, bound, &user.login, otp).await? {
                SecondFactor::Passed => true,
                SecondFactor::Failed => false,
                SecondFactor::Required => {
                    return Ok(denied(AuthOutcome::SecondFactorRequired, "", None))
                }
            };
        if !ok {
            let lock_for = self
                .auth
                .lockout
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let failure = within(
                bound,
                side.record_failure(&user.login, self.auth.max_failed_logins, lock_for, at),
            )
            .await
            .map_err(|e| unavailable(source.name(), e))?;
            return Ok(match failure {
                Failure::Counted(state) => {
                    if state.locked_until.is_some() {
                        metrics::counter!("clientele_lockouts_total", "source" => source.name().to_owned()).increment(1);
                        tracing::warn!(target: "clientele::audit", login = %user.login, source = source.name(), "login locked after too many failed attempts");
                    }
                    invalid()
                }
                Failure::Locked { until } => {
                    denied(AuthOutcome::Locked, source.name(), Some(until))
                }
            });
        }
        if user.validity != Validity::Valid {
            // Nothing is written for a disabled login; a lock committed meanwhile still wins.
            let now = within(bound, side.login_state(&user.login))
                .await
                .map_err(|e| unavailable(source.name(), e))?;
            return Ok(if now.locked_at(at) {
                denied(AuthOutcome::Locked, source.name(), now.locked_until)
            } else {
                denied(AuthOutcome::Disabled, source.name(), None)
            });
        }
        let locked = within(
            bound,
            side.record_success(
                &user.login,
                at,
                state.failed == 0 && state.locked_until.is_none(),
            ),
        )
        .await
        .map_err(|e| unavailable(source.name(), e))?;
        if let Some(until) = locked {
            return Ok(denied(AuthOutcome::Locked, source.name(), Some(until)));
        }
        if let Some(old) = stored.filter(|h| hash::needs_rehash(h, &self.auth.argon2)) {
            match &source.writer {
                Some(writer) => {
                    let rehash = self.rehash(&**writer, source.name(), &user.login, &old, password);
                    if tokio::time::timeout(bound, rehash).await.is_err() {
                        tracing::warn!(login = %user.login, source = source.name(), "re-hashing not stored: no answer within call_timeout");
                    }
                }
                None => tracing::info!(
                    login = %user.login,
                    source = source.name(),
                    "read-only source: outdated password hash not re-hashed"
                ),
            }
        }
        let customer_ids = within(bound, super::customer_ids_of(source, &user))
            .await
            .map_err(|e| unavailable(source.name(), e))?;
        Ok(Authentication {
            outcome: AuthOutcome::Success,
            source: source.name().to_owned(),
            customer_user: Some(user),
            customer_ids,
            locked_until: None,
        })
    }

    /// Runs the one password computation of an attempt on the hashing threads: whether the
    /// password verified (a dummy never does).
    async fn spend(&self, what: Spent<'_>, password: &str) -> Result<bool> {
        #[cfg(test)]
        SPENT.with(|n| n.set(n.get() + 1));
        match what {
            Spent::Verify(stored) => {
                verify_password(
                    password.to_owned(),
                    stored.to_owned(),
                    self.auth.allow_plain,
                )
                .await
            }
            Spent::Dummy => dummy_verify(password.to_owned(), self.auth.argon2)
                .await
                .map(|()| false),
        }
    }

    /// Replaces a legacy or outdated hash after a successful login, only if the stored hash is
    /// still the one verified (a password changed meanwhile wins). Failures are logged: the
    /// login itself succeeded.
    async fn rehash(
        &self,
        writer: &dyn UserWriter,
        source: &str,
        login: &str,
        old: &str,
        password: &str,
    ) {
        let new = match hash_password(password.to_owned(), self.auth.argon2).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(login, error = %e, "re-hashing failed");
                return;
            }
        };
        match writer.store_password_hash(login, Some(old), &new).await {
            Ok(true) => tracing::info!(login, source, "password re-hashed to argon2id"),
            Ok(false) => tracing::info!(login, "password changed meanwhile; not re-hashed"),
            Err(e) => tracing::warn!(login, error = %e, "re-hashing not stored"),
        }
    }

    /// Sets a password after checking it against the policy (every violation listed).
    /// A password longer than [`limits::PASSWORD_BYTES`] is refused before any hashing.
    pub async fn set_password(&self, login: &str, password: &str, deadline: Instant) -> Result<()> {
        if let Some(v) = password_length(password) {
            return Err(Error::InvalidArgument(vec![v]));
        }
        let violations: Vec<FieldViolation> = self.auth.policy.check(password, "password");
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let (source, user) = self.locate_user(login, deadline).await?;
        let writer = writer_of(source)?;
        let new = hash_password(password.to_owned(), self.auth.argon2).await?;
        if writer.store_password_hash(&user.login, None, &new).await? {
            Ok(())
        } else {
            Err(Error::not_found("customer user", login))
        }
    }

    /// Clears the failed-login lock of `login`.
    pub async fn unlock_login(&self, login: &str, deadline: Instant) -> Result<()> {
        let (source, user) = self.locate_user(login, deadline).await?;
        source
            .companion
            .unlock(&user.login)
            .await
            .map_err(|e| unavailable(source.name(), e))
    }
}

#[cfg(test)]
mod tests {
    //! The decision over an in-memory source (hashes or binds) whose companion keeps the login
    //! state like the SQL one does, counting the password computations of each attempt.

    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::auth::hash::Argon2Params;
    use crate::auth::policy::PasswordPolicy;
    use crate::config::{AuthSettings, RateLimitConfig};
    use crate::directory::Bounded;
    use crate::domain::{
        record::Schema,
        search::{Page, UserSearch},
        CustomerUserPatch, UserSchema,
    };
    use crate::source::{Companion, LoginState, PasswordHashes, UserReader};

    const PARAMS: Argon2Params = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// Users by login: (record, stored hash / the password a bind accepts).
    struct Fake {
        name: &'static str,
        schema: UserSchema,
        users: HashMap<String, (CustomerUser, Option<String>)>,
        state: Mutex<HashMap<String, LoginState>>,
        /// A bind first locks the login, as a concurrent burst would.
        lock_during_bind: std::sync::atomic::AtomicBool,
        /// TOTP secrets by login (the preference `UserGoogleAuthenticatorSecretKey`).
        secrets: Mutex<HashMap<String, String>>,
    }

    impl Fake {
        fn new(name: &'static str, users: &[(&str, Validity, Option<String>)]) -> Arc<Self> {
            Arc::new(Self {
                name,
                schema: Schema { rules: Vec::new() },
                users: users
                    .iter()
                    .map(|(login, validity, secret)| {
                        let user = CustomerUser {
                            login: (*login).to_owned(),
                            validity: *validity,
                            customer_id: "acme".into(),
                            source: name.into(),
                            ..Default::default()
                        };
                        ((*login).to_owned(), (user, secret.clone()))
                    })
                    .collect(),
                state: Mutex::new(HashMap::new()),
                lock_during_bind: false.into(),
                secrets: Mutex::new(HashMap::new()),
            })
        }

        fn state_of(&self, login: &str) -> LoginState {
            self.state
                .lock()
                .unwrap()
                .get(login)
                .copied()
                .unwrap_or_default()
        }
    }

    #[async_trait]
    impl UserReader for Fake {
        fn name(&self) -> &str {
            self.name
        }
        fn schema(&self) -> &UserSchema {
            &self.schema
        }
        fn customer_company_support(&self) -> bool {
            false
        }
        async fn ping(&self) -> std::result::Result<(), SourceError> {
            Ok(())
        }
        async fn get(&self, login: &str) -> std::result::Result<Option<CustomerUser>, SourceError> {
            Ok(self.users.get(login).map(|(u, _)| u.clone()))
        }
        async fn search(
            &self,
            _: &UserSearch,
        ) -> std::result::Result<Page<CustomerUser>, SourceError> {
            Ok(Page {
                items: Vec::new(),
                truncated: false,
            })
        }
        async fn find_by_emails(
            &self,
            _: &[String],
        ) -> std::result::Result<Vec<(String, CustomerUser)>, SourceError> {
            Ok(Vec::new())
        }
        async fn get_many(
            &self,
            _: &[String],
        ) -> std::result::Result<Vec<CustomerUser>, SourceError> {
            Ok(Vec::new())
        }
        async fn by_customer_ids(
            &self,
            _: &[String],
        ) -> std::result::Result<Vec<CustomerUser>, SourceError> {
            Ok(Vec::new())
        }
        async fn record_memberships(
            &self,
            _: &str,
        ) -> std::result::Result<Vec<String>, SourceError> {
            Ok(Vec::new())
        }
        async fn record_members_of(
            &self,
            _: &str,
        ) -> std::result::Result<Vec<String>, SourceError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl PasswordHashes for Fake {
        async fn with_hash(
            &self,
            login: &str,
        ) -> std::result::Result<Option<(CustomerUser, Option<String>)>, SourceError> {
            Ok(self.users.get(login).cloned())
        }
    }

    #[async_trait]
    impl DirectoryBind for Fake {
        async fn with_dn(
            &self,
            login: &str,
        ) -> std::result::Result<Option<(CustomerUser, String)>, SourceError> {
            Ok(self
                .users
                .get(login)
                .map(|(u, _)| (u.clone(), login.to_owned())))
        }
        async fn bind_as(
            &self,
            dn: &str,
            password: &str,
        ) -> std::result::Result<bool, SourceError> {
            if self
                .lock_during_bind
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                let locked = LoginState {
                    failed: 5,
                    locked_until: Some(i64::MAX),
                };
                self.state.lock().unwrap().insert(dn.to_owned(), locked);
            }
            Ok(!password.is_empty()
                && self
                    .users
                    .get(dn)
                    .is_some_and(|(_, pw)| pw.as_deref() == Some(password)))
        }
    }

    #[async_trait]
    impl Companion for Fake {
        async fn memberships(&self, _: &str) -> std::result::Result<Vec<String>, SourceError> {
            Ok(Vec::new())
        }
        async fn set_membership(&self, _: &str, _: &str, _: bool) -> Result<()> {
            Ok(())
        }
        async fn members_of(&self, _: &str) -> std::result::Result<Vec<String>, SourceError> {
            Ok(Vec::new())
        }
        async fn members_of_any(
            &self,
            _: &[String],
        ) -> std::result::Result<Vec<String>, SourceError> {
            Ok(Vec::new())
        }
        async fn preferences(
            &self,
            login: &str,
        ) -> std::result::Result<BTreeMap<String, String>, SourceError> {
            Ok(self
                .secrets
                .lock()
                .unwrap()
                .get(login)
                .map(|s| ("UserGoogleAuthenticatorSecretKey".to_owned(), s.clone()))
                .into_iter()
                .collect())
        }
        async fn set_preference(&self, _: &str, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn login_state(&self, login: &str) -> std::result::Result<LoginState, SourceError> {
            Ok(self.state_of(login))
        }
        async fn record_failure(
            &self,
            login: &str,
            max: u32,
            lock_for: Option<i64>,
            now: i64,
        ) -> std::result::Result<Failure, SourceError> {
            let mut all = self.state.lock().unwrap();
            let s = all.entry(login.to_owned()).or_default();
            if s.locked_at(now) {
                return Ok(Failure::Locked {
                    until: s.locked_until.unwrap_or(i64::MAX),
                });
            }
            s.failed = if s.locked_until.is_some() {
                1
            } else {
                s.failed + 1
            };
            s.locked_until =
                (max > 0 && s.failed >= max).then(|| lock_for.map_or(i64::MAX, |d| now + d));
            Ok(Failure::Counted(*s))
        }
        async fn record_success(
            &self,
            login: &str,
            now: i64,
            _: bool,
        ) -> std::result::Result<Option<i64>, SourceError> {
            let mut all = self.state.lock().unwrap();
            let s = all.entry(login.to_owned()).or_default();
            if s.locked_at(now) {
                return Ok(s.locked_until);
            }
            *s = LoginState::default();
            Ok(None)
        }
        async fn unlock(&self, login: &str) -> std::result::Result<(), SourceError> {
            self.state.lock().unwrap().remove(login);
            Ok(())
        }
        async fn use_totp_step(&self, _: &str, _: i64) -> std::result::Result<bool, SourceError> {
            Ok(true)
        }
    }

    #[async_trait]
    impl UserWriter for Fake {
        async fn create(&self, u: &CustomerUser, _: Option<&str>) -> Result<CustomerUser> {
            Ok(u.clone())
        }
        async fn update(&self, login: &str, _: &CustomerUserPatch) -> Result<CustomerUser> {
            Err(Error::not_found("customer user", login))
        }
        async fn store_password_hash(&self, _: &str, _: Option<&str>, _: &str) -> Result<bool> {
            Ok(true)
        }
        async fn rename_customer_id(&self, _: &str, _: &str) -> Result<u64> {
            Ok(0)
        }
    }

    /// A directory over a hash source `db` (alice: valid, nopw: no password, off: invalid)
    /// and a bind source `dir` (lena: valid, gone: invalid), all with the password "right".
    fn directory(max_failed_logins: u32) -> (Directory, Arc<Fake>, Arc<Fake>) {
        directory_with(max_failed_logins, crate::config::TwoFactorConfig::default())
    }

    /// [`directory`] with these two-factor settings.
    fn directory_with(
        max_failed_logins: u32,
        two_factor: crate::config::TwoFactorConfig,
    ) -> (Directory, Arc<Fake>, Arc<Fake>) {
        let hash = hash::hash("right", &PARAMS).unwrap();
        let db = Fake::new(
            "db",
            &[
                ("alice", Validity::Valid, Some(hash.clone())),
                ("nopw", Validity::Valid, None),
                ("off", Validity::Invalid, Some(hash)),
            ],
        );
        let dir = Fake::new(
            "dir",
            &[
                ("lena", Validity::Valid, Some("right".into())),
                ("gone", Validity::InvalidTemporarily, Some("right".into())),
            ],
        );
        let bundle = |f: &Arc<Fake>, credentials| Bounded {
            source: UserSourceBundle::new(f.clone(), None, credentials, f.clone()),
            timeout: Duration::from_secs(5),
        };
        let users = vec![
            bundle(&db, Credentials::Hashes(db.clone())),
            bundle(&dir, Credentials::Bind(dir.clone())),
        ];
        let auth = AuthSettings {
            max_failed_logins,
            lockout: None,
            backends: vec!["db".into(), "dir".into()],
            policy: PasswordPolicy::new(0, false, false, "").unwrap(),
            argon2: PARAMS,
            allow_plain: false,
            rate_limit: RateLimitConfig::default(),
            two_factor,
        };
        (Directory::new(users, Vec::new(), 0, 0, None, auth), db, dir)
    }

    /// The answer and how many password computations it cost.
    async fn attempt(d: &Directory, login: &str, password: &str) -> (Authentication, u32) {
        attempt_otp(d, login, password, "").await
    }

    /// [`attempt`] with a one-time password.
    async fn attempt_otp(
        d: &Directory,
        login: &str,
        password: &str,
        otp: &str,
    ) -> (Authentication, u32) {
        SPENT.with(|n| n.set(0));
        let far = Instant::now() + Duration::from_secs(30);
        let a = d
            .authenticate(login, password, otp, "test", far)
            .await
            .unwrap();
        (a, SPENT.with(std::cell::Cell::get))
    }

    fn looks(a: &Authentication) -> (AuthOutcome, bool, usize, &str, Option<i64>) {
        (
            a.outcome,
            a.customer_user.is_some(),
            a.customer_ids.len(),
            a.source.as_str(),
            a.locked_until,
        )
    }

    #[tokio::test]
    async fn every_invalid_credentials_costs_one_verification_and_names_no_source() {
        let (d, _, _) = directory(0);
        let (unknown, spent) = attempt(&d, "nobody", "wrong").await;
        assert_eq!(spent, 1, "unknown login");
        for (login, what) in [
            ("alice", "wrong password"),
            ("nopw", "no password set"),
            ("off", "invalid user, wrong password"),
            ("lena", "bind refused"),
            ("gone", "invalid directory user, bind refused"),
        ] {
            let (a, spent) = attempt(&d, login, "wrong").await;
            assert_eq!(spent, 1, "{what}");
            assert_eq!(
                looks(&a),
                looks(&unknown),
                "{what} reads like an unknown login"
            );
            assert_eq!(
                looks(&a),
                (AuthOutcome::InvalidCredentials, false, 0, "", None)
            );
        }
        // A bind that succeeds is the verification: nothing else is spent.
        let (ok, spent) = attempt(&d, "lena", "right").await;
        assert_eq!(
            (ok.outcome, ok.source.as_str(), spent),
            (AuthOutcome::Success, "dir", 0)
        );
        let (ok, spent) = attempt(&d, "alice", "right").await;
        assert_eq!(
            (ok.outcome, ok.source.as_str(), spent),
            (AuthOutcome::Success, "db", 1)
        );
    }

    #[tokio::test]
    async fn invalid_users_are_counted_and_locked_like_any_other() {
        let (d, db, dir) = directory(3);
        for (fake, login) in [(&db, "off"), (&dir, "gone")] {
            assert_eq!(
                attempt(&d, login, "right").await.0.outcome,
                AuthOutcome::Disabled
            );
            for n in 1..=3 {
                let (a, _) = attempt(&d, login, "wrong").await;
                assert_eq!(a.outcome, AuthOutcome::InvalidCredentials, "{login} #{n}");
                assert_eq!(fake.state_of(login).failed, n, "{login} counted");
            }
            // Locked now: the right password no longer tells that it is right.
            let (a, spent) = attempt(&d, login, "right").await;
            assert_eq!((a.outcome, spent), (AuthOutcome::Locked, 0), "{login}");
            let (a, _) = attempt(&d, login, "wrong").await;
            assert_eq!(a.outcome, AuthOutcome::Locked, "{login}");
        }
    }

    #[tokio::test]
    async fn a_lock_committed_during_verification_wins_over_the_right_password() {
        let (d, _, dir) = directory(5);
        // The fifth failure of a concurrent burst commits while this attempt binds: the state
        // read before the verification was clean.
        dir.lock_during_bind
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (a, _) = attempt(&d, "lena", "right").await;
        assert_eq!(a.outcome, AuthOutcome::Locked);
        assert!(a.customer_user.is_none());
        assert_eq!(dir.state_of("lena").failed, 5, "the lock stands");
    }

    #[tokio::test]
    async fn a_password_over_the_limit_is_refused_before_any_hashing() {
        let (d, _, _) = directory(5);
        let far = Instant::now() + Duration::from_secs(30);
        let long = "x".repeat(limits::PASSWORD_BYTES + 1);
        SPENT.with(|n| n.set(0));
        for login in ["alice", "nobody"] {
            let err = d
                .authenticate(login, &long, "", "test", far)
                .await
                .unwrap_err();
            let Error::InvalidArgument(v) = err else {
                panic!("{err:?}")
            };
            assert_eq!(
                v.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(),
                ["password"]
            );
        }
        let err = d.set_password("alice", &long, far).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(v) if v[0].field == "password"),
            "{err:?}"
        );
        assert_eq!(SPENT.with(std::cell::Cell::get), 0);
        // At the limit it is an ordinary wrong password.
        let at = "x".repeat(limits::PASSWORD_BYTES);
        let (a, spent) = attempt(&d, "alice", &at).await;
        assert_eq!((a.outcome, spent), (AuthOutcome::InvalidCredentials, 1));
        let err = d
            .authenticate(&"l".repeat(limits::LOGIN + 1), "x", "", "test", far)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(v) if v[0].field == "login"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_second_factor_costs_nothing_more_and_wrong_tokens_count() {
        let tf = crate::config::TwoFactorConfig {
            enabled: true,
            ..Default::default()
        };
        let (d, db, dir) = directory_with(5, tf);
        let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
        for (fake, login) in [(&db, "alice"), (&dir, "lena")] {
            fake.secrets
                .lock()
                .unwrap()
                .insert(login.to_owned(), seed.to_owned());
        }
        let now = crate::auth::totp::step_at(d.clock.epoch_seconds());
        let right = crate::auth::totp::token_at(b"12345678901234567890", now).unwrap();
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        let (unknown, _) = attempt_otp(&d, "nobody", "wrong", &right).await;
        for (fake, login, verified) in [(&db, "alice", 1), (&dir, "lena", 0)] {
            for otp in ["", wrong, right.as_str()] {
                let (a, spent) = attempt_otp(&d, login, "wrong", otp).await;
                assert_eq!(looks(&a), looks(&unknown), "{login} / wrong / {otp:?}");
                assert_eq!(spent, 1, "{login}");
            }
            assert_eq!(fake.state_of(login).failed, 3, "{login}");
            let (a, spent) = attempt_otp(&d, login, "right", "").await;
            assert_eq!(
                (looks(&a), spent),
                (
                    (AuthOutcome::SecondFactorRequired, false, 0, "", None),
                    verified
                ),
                "{login}"
            );
            assert_eq!(fake.state_of(login).failed, 3, "not counted: {login}");
            let (a, spent) = attempt_otp(&d, login, "right", wrong).await;
            assert_eq!((looks(&a), spent), (looks(&unknown), verified), "{login}");
            assert_eq!(fake.state_of(login).failed, 4, "counted: {login}");
            let (a, _) = attempt_otp(&d, login, "right", &right).await;
            assert_eq!(a.outcome, AuthOutcome::Success, "{login}");
            assert_eq!(fake.state_of(login).failed, 0, "{login}");
        }
        // Without a secret, the password alone (allow_empty_secret).
        let (a, _) = attempt(&d, "off", "right").await;
        assert_eq!(a.outcome, AuthOutcome::Disabled);
    }
}
