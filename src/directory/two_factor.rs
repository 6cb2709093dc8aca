//! The second factor of customer logins (`[auth.two_factor]`): TOTP as Znuny's and OTOBO's
//! GoogleAuthenticator module has it, the base32 secret in the customer preference
//! `secret_preference` (default `UserGoogleAuthenticatorSecretKey`) of the login's source
//! (SQL sources: their `customer_preferences`; LDAP sources: the one of their `store_url`), so
//! secrets Znuny or OTOBO stored keep working on their database and a secret enrolled here is
//! one they read. An empty stored value is no secret (Znuny's own "remove").
//!
//! Here: the check a login makes after the right password ([`Directory::second_factor`]), and
//! the operations the API, the console and the CLI call: [`Directory::enroll_totp`] (a new
//! secret, pending in [`PENDING_TOTP_PREFERENCE`] until confirmed, and its otpauth URI, which
//! `auth::totp::qr_svg` renders as a QR code), [`Directory::confirm_totp`] (activates it with
//! one right token) and [`Directory::remove_totp`]. Each token is used once per login: the
//! step it belongs to is recorded in the database (`Companion::use_totp_step`), atomically and
//! across replicas. Enrolment works whether or not `enabled` is set, so users can enrol before
//! logins require it.

use std::{fmt, time::Duration};

use tokio::time::Instant;

use super::{auth::within, bounded, Directory};
use crate::auth::totp;
use crate::config::PENDING_TOTP_PREFERENCE;
use crate::domain::limits;
use crate::error::{Error, FieldViolation, Result};
use crate::source::UserSourceBundle;

/// What the second factor decided on a login whose password was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SecondFactor {
    /// Two-factor is off, or the user has no secret and `allow_empty_secret` is on, or the
    /// token was right and unused: the login goes on.
    Passed,
    /// No token was sent for a user with a secret, or the user has no secret and
    /// `allow_empty_secret` is off: SECOND_FACTOR_REQUIRED, nothing counted.
    Required,
    /// A wrong, replayed or malformed token (or an unreadable stored secret): a failed
    /// attempt, counted like a wrong password.
    Failed,
}

/// A started enrolment: the new secret (base32, pending until [`Directory::confirm_totp`])
/// and the `otpauth://` URI that carries it with the issuer and the login. `Debug` shows
/// neither.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrollment {
    pub secret: String,
    pub otpauth_uri: String,
}

impl fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrollment")
            .field("secret", &"<redacted>")
            .field("otpauth_uri", &"<redacted>")
            .finish()
    }
}

/// The second factor of one login as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpStatus {
    /// A secret is active: logins need a token (when two-factor is enabled).
    pub active: bool,
    /// An enrolment waits for its confirming token.
    pub pending: bool,
    /// `[auth.two_factor] enabled`: logins check the second factor at all.
    pub required: bool,
}

/// The violation of an OTP longer than [`limits::OTP_BYTES`] (named `otp`).
pub(super) fn otp_length(otp: &str) -> Option<FieldViolation> {
    (otp.len() > limits::OTP_BYTES).then(|| {
        FieldViolation::new(
            "otp",
            format!("must be at most {} bytes", limits::OTP_BYTES),
        )
    })
}

fn non_empty(value: Option<&String>) -> Option<&str> {
    value.map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl Directory {
    /// Whether `key` is a preference of the second factor (the configured secret or a pending
    /// enrolment): hidden from `GetPreferences` and refused by `SetPreference`.
    pub(super) fn is_two_factor_preference(&self, key: &str) -> bool {
        [
            self.auth.two_factor.secret_preference.as_str(),
            PENDING_TOTP_PREFERENCE,
        ]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
    }

    /// The second factor of `login` (canonical) in `source`, after its password was right;
    /// every call bounded by the source's `call_timeout` (`bound`). With a secret and a
    /// non-empty `otp`, the token must belong to the current 30 s step (or, with
    /// `allow_previous_token`, the one before) and that step must not have been used by this
    /// login yet; using it is recorded in the same step.
    pub(super) async fn second_factor(
        &self,
        source: &UserSourceBundle,
        bound: Duration,
        login: &str,
        otp: &str,
    ) -> Result<SecondFactor> {
        let tf = &self.auth.two_factor;
        if !tf.enabled {
            return Ok(SecondFactor::Passed);
        }
        let unavailable = |e| super::auth::unavailable(source.name(), e);
        let prefs = within(bound, source.companion.preferences(login))
            .await
            .map_err(unavailable)?;
        let Some(secret) = non_empty(prefs.get(&tf.secret_preference)) else {
            return Ok(if tf.allow_empty_secret {
                SecondFactor::Passed
            } else {
                SecondFactor::Required
            });
        };
        if otp.trim().is_empty() {
            return Ok(SecondFactor::Required);
        }
        let Some(key) = totp::decode_secret(secret) else {
            tracing::warn!(
                login,
                source = source.name(),
                preference = %tf.secret_preference,
                "stored TOTP secret is not base32: no token matches it"
            );
            return Ok(SecondFactor::Failed);
        };
        let now = totp::step_at(self.clock.epoch_seconds());
        let Some(step) = totp::matching_step(&key, otp, now, tf.allow_previous_token) else {
            return Ok(SecondFactor::Failed);
        };
        let fresh = within(bound, source.companion.use_totp_step(login, step))
            .await
            .map_err(unavailable)?;
        if !fresh {
            tracing::warn!(target: "clientele::audit", login, source = source.name(), "TOTP token replayed: refused");
        }
        Ok(if fresh {
            SecondFactor::Passed
        } else {
            SecondFactor::Failed
        })
    }

    /// Whether `login` has an active secret and whether an enrolment is pending (what the
    /// console shows; neither secret leaves the directory). `NotFound` for an unknown login.
    pub async fn totp_status(&self, login: &str, deadline: Instant) -> Result<TotpStatus> {
        let (source, user) = self.locate_user(login, deadline).await?;
        let prefs = bounded(deadline, source.companion.preferences(&user.login)).await?;
        Ok(TotpStatus {
            active: non_empty(prefs.get(&self.auth.two_factor.secret_preference)).is_some(),
            pending: non_empty(prefs.get(PENDING_TOTP_PREFERENCE)).is_some(),
            required: self.auth.two_factor.enabled,
        })
    }

    /// Starts (or restarts) the enrolment of `login`: a new random secret, stored pending in
    /// the preference [`PENDING_TOTP_PREFERENCE`] of the login's source (it survives restarts
    /// and is seen by every replica; logins never read it), and its otpauth URI with the
    /// configured issuer and the canonical login. An active secret stays active until
    /// [`Directory::confirm_totp`] replaces it. `NotFound` for an unknown login.
    pub async fn enroll_totp(&self, login: &str, deadline: Instant) -> Result<TotpEnrollment> {
        let (source, user) = self.locate_user(login, deadline).await?;
        let secret = totp::generate_secret();
        bounded(
            deadline,
            source
                .companion
                .set_preference(&user.login, PENDING_TOTP_PREFERENCE, &secret),
        )
        .await?;
        tracing::info!(target: "clientele::audit", login = %user.login, source = source.name(), "TOTP enrolment started");
        Ok(TotpEnrollment {
            otpauth_uri: totp::otpauth_uri(&self.auth.two_factor.issuer, &user.login, &secret),
            secret,
        })
    }

    /// Confirms the pending enrolment of `login` with a token of its secret (current step, or
    /// the previous one with `allow_previous_token`): the pending secret becomes the active
    /// one (in `secret_preference`, where Znuny reads it) and the token's step counts as used,
    /// so the same token cannot log in afterwards. `InvalidArgument` naming `otp` when it is
    /// empty, too long, wrong or already used; `FailedPrecondition`
    /// (`NO_PENDING_TOTP_ENROLLMENT`) when nothing is pending; `NotFound` for an unknown login.
    pub async fn confirm_totp(&self, login: &str, otp: &str, deadline: Instant) -> Result<()> {
        if let Some(v) = otp_length(otp) {
            return Err(Error::InvalidArgument(vec![v]));
        }
        if otp.trim().is_empty() {
            return Err(Error::invalid(
                "otp",
                "required: a token of the pending secret",
            ));
        }
        let (source, user) = self.locate_user(login, deadline).await?;
        let prefs = bounded(deadline, source.companion.preferences(&user.login)).await?;
        let no_pending = || Error::FailedPrecondition {
            reason: "NO_PENDING_TOTP_ENROLLMENT",
            message: format!("no TOTP enrolment is pending for {login:?}; call EnrollTotp first"),
        };
        let pending = non_empty(prefs.get(PENDING_TOTP_PREFERENCE)).ok_or_else(no_pending)?;
        let key = totp::decode_secret(pending).ok_or_else(no_pending)?;
        let now = totp::step_at(self.clock.epoch_seconds());
        let tf = &self.auth.two_factor;
        let step = totp::matching_step(&key, otp, now, tf.allow_previous_token)
            .ok_or_else(|| Error::invalid("otp", "does not match the pending secret"))?;
        if !bounded(deadline, source.companion.use_totp_step(&user.login, step)).await? {
            return Err(Error::invalid(
                "otp",
                "this token was used already; wait for the next one",
            ));
        }
        let companion = &source.companion;
        bounded(
            deadline,
            companion.set_preference(&user.login, &tf.secret_preference, pending),
        )
        .await?;
        bounded(
            deadline,
            companion.set_preference(&user.login, PENDING_TOTP_PREFERENCE, ""),
        )
        .await?;
        tracing::info!(target: "clientele::audit", login = %user.login, source = source.name(), "TOTP enrolment confirmed");
        Ok(())
    }

    /// Removes the second factor of `login`: the active secret and any pending enrolment are
    /// emptied (stored as `""`, as Znuny's preferences screen removes a secret). Idempotent;
    /// `NotFound` for an unknown login.
    pub async fn remove_totp(&self, login: &str, deadline: Instant) -> Result<()> {
        let (source, user) = self.locate_user(login, deadline).await?;
        for key in [
            self.auth.two_factor.secret_preference.as_str(),
            PENDING_TOTP_PREFERENCE,
        ] {
            bounded(
                deadline,
                source.companion.set_preference(&user.login, key, ""),
            )
            .await?;
        }
        tracing::info!(target: "clientele::audit", login = %user.login, source = source.name(), "TOTP removed");
        Ok(())
    }
}
