//! `[auth]`: customer logins — lockout, the ordered auth backends, the password policy, argon2id
//! parameters of new hashes, plain-text compatibility and rate limits (with the bound of their
//! state, `max_keys`), the second factor (`[auth.two_factor]`) — and its checks.

use std::time::Duration;

use serde::Deserialize;

use super::UserSourceSettings;

/// `[auth]`: customer logins.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Failed attempts before the login is locked; 0 = never lock.
    pub max_failed_logins: u32,
    /// humantime (`"15m"`), or `"until-unlocked"`.
    pub lockout_duration: String,
    /// Ordered auth backends; default: one per customer-user source, in order.
    pub backends: Option<Vec<AuthBackendConfig>>,
    pub password_policy: PasswordPolicyConfig,
    pub argon2: Argon2Config,
    /// Compare stored values that are no hash as plain text (OTRS CryptType "plain").
    pub allow_plain: bool,
    pub rate_limit: RateLimitConfig,
    pub two_factor: TwoFactorConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            max_failed_logins: 5,
            lockout_duration: "15m".into(),
            backends: None,
            password_policy: PasswordPolicyConfig::default(),
            argon2: Argon2Config::default(),
            allow_plain: false,
            rate_limit: RateLimitConfig::default(),
            two_factor: TwoFactorConfig::default(),
        }
    }
}

/// `[auth.two_factor]`: the second factor of customer logins, TOTP as Znuny's and OTOBO's
/// `Customer::AuthTwoFactorModule` (GoogleAuthenticator) has it, with the same options and the
/// same stored secret, so a Znuny database keeps its enrolments.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TwoFactorConfig {
    /// Whether logins check a second factor at all (enrolment works either way, so users can
    /// enrol before it is switched on).
    pub enabled: bool,
    /// A user without a secret logs in with the password alone (AllowEmptySecret); off: such a
    /// user answers SECOND_FACTOR_REQUIRED until enrolled.
    pub allow_empty_secret: bool,
    /// The token of the previous 30 s window is accepted too (AllowPreviousToken).
    pub allow_previous_token: bool,
    /// The issuer shown by authenticator apps (in the otpauth URI); no `:`.
    pub issuer: String,
    /// The customer preference holding the base32 secret (Znuny's SecretPreferencesKey).
    pub secret_preference: String,
}

impl Default for TwoFactorConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_empty_secret: true,
            allow_previous_token: true,
            issuer: "Clientele".into(),
            secret_preference: "UserGoogleAuthenticatorSecretKey".into(),
        }
    }
}

/// The customer preference keeping an enrolment that is not confirmed yet: it survives a
/// restart and works on every replica (it is in the preferences table), and logins never read
/// it. Znuny knows no such key and ignores it.
pub const PENDING_TOTP_PREFERENCE: &str = "ClienteleTotpPendingSecret";

/// `[[auth.backends]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthBackendConfig {
    /// A customer-user source: `sql` sources check the stored hash, `ldap` sources bind as the user.
    pub source: String,
}

/// `[auth.password_policy]` (OTRS CustomerPreferencesGroups###Password).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PasswordPolicyConfig {
    pub min_length: usize,
    /// At least two lower-case and two upper-case letters (PasswordMin2Lower2UpperCharacters).
    pub require_mixed_case: bool,
    /// At least one digit (PasswordNeedDigit).
    pub require_digit: bool,
    /// A regular expression the password must match (PasswordRegExp); "" = none.
    pub pattern: String,
}

impl Default for PasswordPolicyConfig {
    fn default() -> Self {
        Self {
            min_length: 8,
            require_mixed_case: false,
            require_digit: false,
            pattern: String::new(),
        }
    }
}

/// `[auth.argon2]`: parameters of new hashes (OWASP defaults).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// `[auth.rate_limit]`: Authenticate calls per minute; 0 = no limit.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    pub per_login_per_minute: u32,
    pub per_client_per_minute: u32,
    /// The most logins (and, separately, client addresses) each limiter remembers (default
    /// 100,000: 96 bytes a key plus table slack, at most about 20 MB per limiter). Keys idle for
    /// a minute are forgotten anyway; when the table is full of recent keys, new keys share one
    /// bucket until room is made.
    pub max_keys: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_login_per_minute: 20,
            per_client_per_minute: 120,
            max_keys: 100_000,
        }
    }
}

/// `[auth]`, checked.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub max_failed_logins: u32,
    /// `None`: locked until unlocked.
    pub lockout: Option<Duration>,
    /// Customer-user source names, in order.
    pub backends: Vec<String>,
    pub policy: crate::auth::policy::PasswordPolicy,
    pub argon2: crate::auth::hash::Argon2Params,
    pub allow_plain: bool,
    pub rate_limit: RateLimitConfig,
    pub two_factor: TwoFactorConfig,
}

/// Checks and resolves `[auth]`; `None` when the password policy cannot be built (the problem
/// is listed).
pub(super) fn resolve_auth(
    a: &AuthConfig,
    users: &[UserSourceSettings],
    problems: &mut Vec<String>,
) -> Option<AuthSettings> {
    let lockout = if a.lockout_duration == "until-unlocked" {
        None
    } else {
        match humantime::parse_duration(&a.lockout_duration) {
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(format!(
                    "auth.lockout_duration: {:?}: {e} (or \"until-unlocked\")",
                    a.lockout_duration
                ));
                None
            }
        }
    };
    let backends: Vec<String> = match &a.backends {
        Some(list) => {
            for (i, b) in list.iter().enumerate() {
                if !users.iter().any(|u| u.settings.name == b.source) {
                    problems.push(format!(
                        "auth.backends[{i}].source: no customer-user source is named {:?}",
                        b.source
                    ));
                }
            }
            list.iter().map(|b| b.source.clone()).collect()
        }
        None => users.iter().map(|u| u.settings.name.clone()).collect(),
    };
    let policy = match crate::auth::policy::PasswordPolicy::new(
        a.password_policy.min_length,
        a.password_policy.require_mixed_case,
        a.password_policy.require_digit,
        &a.password_policy.pattern,
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(format!("auth.password_policy.pattern: {e}"));
            None
        }
    };
    let argon2 = crate::auth::hash::Argon2Params {
        memory_kib: a.argon2.memory_kib,
        iterations: a.argon2.iterations,
        parallelism: a.argon2.parallelism,
    };
    if a.rate_limit.max_keys == 0 {
        problems.push("auth.rate_limit.max_keys: must be at least 1".into());
    }
    let tf = &a.two_factor;
    if tf.issuer.trim().is_empty() || tf.issuer.contains(':') {
        problems.push(format!(
            "auth.two_factor.issuer: {:?}: must be non-empty and contain no ':'",
            tf.issuer
        ));
    }
    let key_chars = tf.secret_preference.chars().count();
    if key_chars == 0 || key_chars > crate::domain::limits::PREFERENCE_KEY {
        problems.push(format!(
            "auth.two_factor.secret_preference: must be 1 to {} characters",
            crate::domain::limits::PREFERENCE_KEY
        ));
    }
    if tf.secret_preference == PENDING_TOTP_PREFERENCE {
        problems.push(format!(
            "auth.two_factor.secret_preference: {PENDING_TOTP_PREFERENCE:?} is where pending enrolments are kept"
        ));
    }
    if let Err(e) = crate::auth::hash::check_params(&argon2) {
        problems.push(format!("auth.argon2: {e}"));
    }
    Some(AuthSettings {
        max_failed_logins: a.max_failed_logins,
        lockout,
        backends,
        policy: policy?,
        argon2,
        allow_plain: a.allow_plain,
        rate_limit: a.rate_limit,
        two_factor: a.two_factor.clone(),
    })
}
