//! Customer logins: ordered auth backends over the sources, each checking passwords its way
//! (stored hashes in every OTRS format, or an LDAP bind), lockout counted in the companion
//! tables and expiring on the directory's clock, re-hashing to argon2id, and an audit event per
//! decision. Also setting passwords and unlocking logins.

use std::sync::Arc;

use tokio::time::Instant;

use super::{fanin::writer_of, Directory};
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
    /// Unknown login or wrong password: the same answer, in the same time.
    InvalidCredentials,
    /// Too many failed attempts.
    Locked,
    /// The customer user is not valid.
    Disabled,
}

impl AuthOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Locked => "locked",
            Self::Disabled => "disabled",
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
    /// The source that decided ("" for an unknown login).
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

fn unavailable(source: &str, e: SourceError) -> Error {
    Error::Unavailable(format!("auth backend {source:?}: {e}"))
}

impl Directory {
    fn auth_backends(&self) -> impl Iterator<Item = &UserSourceBundle> {
        self.auth
            .backends
            .iter()
            .filter_map(|name| self.user_sources().find(|s| s.name() == name))
    }

    /// Checks a login and password against the auth backends in order: the first backend whose
    /// source has the login decides (see [`Directory::decide`] for the outcomes). A login longer
    /// than its column or a password longer than [`limits::PASSWORD_BYTES`] is
    /// `InvalidArgument` naming the field, before anything is looked up or hashed. A backend
    /// that cannot be reached makes the call `Unavailable` and counts nothing.
    pub async fn authenticate(
        &self,
        login: &str,
        password: &str,
        client: &str,
        deadline: Instant,
    ) -> Result<Authentication> {
        let mut v = Vec::new();
        check_key("login", login, limits::LOGIN, &mut v);
        v.extend(password_length(password));
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        let result = tokio::time::timeout_at(deadline, self.decide(login, password))
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
    async fn decide(&self, login: &str, password: &str) -> Result<Authentication> {
        let denied = |outcome, source: &str, locked_until| Authentication {
            outcome,
            customer_user: None,
            customer_ids: Vec::new(),
            source: source.to_owned(),
            locked_until,
        };
        let invalid = || denied(AuthOutcome::InvalidCredentials, "", None);
        let mut found = None;
        for source in self.auth_backends() {
            match credentials_of(source, login).await {
                Ok(Some((user, check))) => {
                    found = Some((source, user, check));
                    break;
                }
                Ok(None) => {}
                Err(e) => return Err(unavailable(source.name(), e)),
            }
        }
        let Some((source, user, check)) = found else {
            self.spend(Spent::Dummy, password).await?;
            return Ok(invalid());
        };
        let side = &source.companion;
        let at = self.clock.epoch_seconds();
        let state = side
            .login_state(&user.login)
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
                let bound = directory
                    .bind_as(dn, password)
                    .await
                    .map_err(|e| unavailable(source.name(), e))?;
                if !bound {
                    // A refused bind costs what a wrong stored password costs.
                    self.spend(Spent::Dummy, password).await?;
                }
                (bound, None)
            }
        };
        if !ok {
            let lock_for = self
                .auth
                .lockout
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let failure = side
                .record_failure(&user.login, self.auth.max_failed_logins, lock_for, at)
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
            let now = side
                .login_state(&user.login)
                .await
                .map_err(|e| unavailable(source.name(), e))?;
            return Ok(if now.locked_at(at) {
                denied(AuthOutcome::Locked, source.name(), now.locked_until)
            } else {
                denied(AuthOutcome::Disabled, source.name(), None)
            });
        }
        let locked = side
            .record_success(
                &user.login,
                at,
                state.failed == 0 && state.locked_until.is_none(),
            )
            .await
            .map_err(|e| unavailable(source.name(), e))?;
        if let Some(until) = locked {
            return Ok(denied(AuthOutcome::Locked, source.name(), Some(until)));
        }
        if let Some(old) = stored.filter(|h| hash::needs_rehash(h, &self.auth.argon2)) {
            match &source.writer {
                Some(writer) => {
                    self.rehash(&**writer, source.name(), &user.login, &old, password)
                        .await
                }
                None => tracing::info!(
                    login = %user.login,
                    source = source.name(),
                    "read-only source: outdated password hash not re-hashed"
                ),
            }
        }
        let customer_ids = super::customer_ids_of(source, &user)
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
