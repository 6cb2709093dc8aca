//! Typed configuration: a TOML file plus `CLIENTELE_*` environment overrides, validated at
//! start-up with every problem listed by its key.
//!
//! Environment overrides address any key with `__` between path segments and numbers for list
//! positions, e.g. `CLIENTELE_SERVER__LISTEN=0.0.0.0:50051` or
//! `CLIENTELE_CUSTOMER_USER_SOURCES__0__URL=postgres://…`. A value is taken as TOML (number,
//! boolean, array) when it parses as such and the key does not already hold a string.
//!
//! With no file at all the embedded default applies: one writable SQLite source in
//! `./clientele.db` for customer users and customers, served on `127.0.0.1:50051`.

use std::{collections::BTreeMap, fmt, path::Path, time::Duration};

use serde::{Deserialize, Deserializer};

use crate::domain::{
    customer::CustomerField, customer_user::UserField, query::Pattern, Attr, AttrRule, Field,
    Schema,
};

/// The default database of the embedded configuration.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://clientele.db";
/// Environment variables with this prefix override configuration keys.
pub const ENV_PREFIX: &str = "CLIENTELE_";
/// The top-level keys an environment override may address; any other `CLIENTELE_*` variable
/// (`CLIENTELE_CONFIG`, `CLIENTELE_LOG`, a `url_env` target such as `CLIENTELE_PG_URL`, …) is
/// not an override.
const ENV_SECTIONS: &[&str] = &[
    "server",
    "customer_user_sources",
    "customer_sources",
    "auth",
    "groups",
    "callers",
];

/// Everything wrong with a configuration, one problem per line, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// Ordered: the order is the precedence (first source wins on a login).
    #[serde(default)]
    pub customer_user_sources: Option<Vec<UserSourceConfig>>,
    /// Ordered like the customer-user sources. Absent: one source on the database of the first
    /// SQL customer-user source (table `customer_company`).
    #[serde(default)]
    pub customer_sources: Option<Vec<CustomerSourceConfig>>,
    /// Sections of later capabilities, accepted so an operator's file keeps working.
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub groups: GroupsConfig,
    #[serde(default)]
    pub callers: Vec<CallerConfig>,
    /// Problems found while reading (unknown keys, bad overrides), reported by `validate`
    /// together with everything else.
    #[serde(skip)]
    pub read_problems: Vec<String>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: String,
    pub metrics_listen: String,
    pub insecure: bool,
    /// Bound of the graceful drain on shutdown.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Used when a call carries no deadline of its own.
    #[serde(deserialize_with = "duration")]
    pub default_deadline: Duration,
    /// `[server.tls]`: serve TLS; with `client_ca_file`, client certificates are verified.
    pub tls: Option<TlsConfig>,
    /// Bound of one call on the server (the caller's shorter deadline wins).
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Calls served at once; more are refused with RESOURCE_EXHAUSTED (load shedding).
    pub concurrency_limit: usize,
    /// How often each source is probed for `grpc.health.v1` (`source/<name>`).
    #[serde(deserialize_with = "duration")]
    pub health_probe_interval: Duration,
    /// `human` or `json`.
    pub log_format: String,
}

/// `[server.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: String,
    pub key_file: String,
    /// CA of client certificates (optional for callers with tokens).
    #[serde(default)]
    pub client_ca_file: Option<String>,
}

/// `[[callers]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    pub name: String,
    /// Hex SHA-256 of the bearer token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Subject CN or DNS name of the caller's TLS client certificate.
    #[serde(default)]
    pub client_cert_name: Option<String>,
    pub scopes: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            metrics_listen: "127.0.0.1:9464".into(),
            insecure: false,
            shutdown_grace: Duration::from_secs(10),
            default_deadline: Duration::from_secs(30),
            tls: None,
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 256,
            health_probe_interval: Duration::from_secs(10),
            log_format: "human".into(),
        }
    }
}

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
        }
    }
}

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
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_login_per_minute: 20,
            per_client_per_minute: 120,
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
}

fn resolve_auth(
    a: &AuthConfig,
    users: &[UserSource],
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
    })
}

/// `[groups]`: where groups and grants are stored, and the OTRS group rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GroupsConfig {
    /// The database of the groups table and grants; default: the first customer-user source's.
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    /// Default: the `migrate` of the source whose database is used.
    pub migrate: Option<bool>,
    /// `groups` (OTRS 6, Znuny 6), `permission_groups` (Znuny 7), `groups_table` (OTOBO).
    pub table: String,
    /// OTRS CustomerGroupSupport: off = every valid group, every key, for every customer user.
    pub customer_group_support: bool,
    /// OTRS CustomerGroupAlwaysGroups: groups every customer user has.
    pub always_groups: Vec<String>,
    /// OTRS CustomerGroupCompanyAlwaysGroups: groups every customer has (same-customer context).
    pub customer_always_groups: Vec<String>,
    /// OTRS System::Customer::Permission: the permission keys; `rw` implies every other one.
    pub permissions: Vec<String>,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_env: None,
            url_file: None,
            migrate: None,
            table: "groups".into(),
            customer_group_support: false,
            always_groups: vec!["users".into()],
            customer_always_groups: vec!["users".into()],
            permissions: vec!["ro".into(), "rw".into()],
        }
    }
}

/// `[groups]`, checked and resolved.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub url: String,
    pub migrate: bool,
    pub table: String,
    pub customer_group_support: bool,
    pub always_groups: Vec<String>,
    pub customer_always_groups: Vec<String>,
    pub permissions: Vec<String>,
}

/// The kind of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Sql,
    Ldap,
}

/// One mapped attribute: a column name, or a table with its rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MapEntry {
    Column(String),
    Full {
        column: String,
        #[serde(default)]
        required: Option<bool>,
        #[serde(default)]
        read_only: bool,
    },
}

/// Connection and behaviour settings every SQL source has, customer users and customers alike.
#[derive(Debug, Clone, Deserialize)]
pub struct SqlSettings {
    pub name: String,
    pub kind: SourceKind,
    /// `sqlite://…`, `postgres://…`, `mysql://…`.
    #[serde(default)]
    pub url: Option<String>,
    /// Name of an environment variable holding the URL (keeps passwords out of files).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Path of a file holding the URL.
    #[serde(default)]
    pub url_file: Option<String>,
    #[serde(default)]
    pub table: Option<String>,
    /// false = a table Clientele does not own (e.g. Znuny's): never create or alter anything.
    #[serde(default = "yes")]
    pub migrate: bool,
    #[serde(default)]
    pub read_only: bool,
    /// The table has no create/change columns.
    #[serde(default)]
    pub foreign_db: bool,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Bound for establishing a connection.
    #[serde(default = "default_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Bound for one call to this source (the caller's deadline, when shorter, wins).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_list_limit")]
    pub list_limit: u32,
    #[serde(default)]
    pub case_sensitive: bool,
    #[serde(default)]
    pub search_fields: Option<Vec<String>>,
    #[serde(default = "star")]
    pub search_prefix: String,
    #[serde(default = "star")]
    pub search_suffix: String,
    /// Per-replica cache of Get and ResolveSenders answers: lifetime (absent = no cache).
    #[serde(default, deserialize_with = "opt_duration")]
    pub cache_ttl: Option<Duration>,
    /// Entries per cache.
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
    #[serde(default)]
    pub map: BTreeMap<String, MapEntry>,
    /// LDAP: further server URLs, tried in order after `url` (failover).
    #[serde(default)]
    pub urls: Vec<String>,
    /// LDAP: where the entries live.
    #[serde(default)]
    pub base_dn: Option<String>,
    /// LDAP: `sub` (default) or `one`.
    #[serde(default)]
    pub scope: Option<String>,
    /// LDAP: bind as this DN (anonymous when absent); the password from the env/file below.
    #[serde(default)]
    pub bind_dn: Option<String>,
    #[serde(default)]
    pub bind_password_env: Option<String>,
    #[serde(default)]
    pub bind_password_file: Option<String>,
    /// LDAP: AND-ed into every search, e.g. `(objectClass=inetOrgPerson)`.
    #[serde(default)]
    pub always_filter: Option<String>,
    /// LDAP: entries matching this filter are invalid, e.g. `(employeeType=inactive)`.
    #[serde(default)]
    pub invalid_filter: Option<String>,
    /// LDAP: upgrade `ldap://` with StartTLS (certificates are always verified).
    #[serde(default)]
    pub starttls: bool,
    /// LDAP: PEM file of the CA that signed the server certificate (default: system roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// LDAP: the SQL database that keeps this source's preferences and memberships (default:
    /// the first SQL customer-user source's, else the embedded SQLite file).
    #[serde(default)]
    pub store_url: Option<String>,
}

/// `[[customer_user_sources]]`
#[derive(Debug, Clone, Deserialize)]
pub struct UserSourceConfig {
    #[serde(flatten)]
    pub sql: SqlSettings,
    /// Fields compared (exactly, case-insensitively) with a sender address.
    /// Default `["email"]`.
    #[serde(default)]
    pub postmaster_search_fields: Option<Vec<String>>,
    /// Default `["title", "first_name", "last_name"]` (those the map has).
    #[serde(default)]
    pub name_fields: Option<Vec<String>>,
    #[serde(default = "space")]
    pub name_join: String,
    /// Refuse a second customer user with the same email in this source (case-insensitive).
    #[serde(default = "yes")]
    pub email_unique: bool,
    /// The customer (company) of a new or changed customer user must exist (OTRS
    /// CustomerCompanySupport). Checked only when customer sources are configured.
    #[serde(default = "yes")]
    pub customer_company_support: bool,
}

/// `[[customer_sources]]`
#[derive(Debug, Clone, Deserialize)]
pub struct CustomerSourceConfig {
    #[serde(flatten)]
    pub sql: SqlSettings,
}

fn yes() -> bool {
    true
}
fn star() -> String {
    "*".into()
}
fn space() -> String {
    " ".into()
}
fn default_pool_size() -> u32 {
    8
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_cache_size() -> u64 {
    10_000
}
fn default_list_limit() -> u32 {
    250
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl SqlSettings {
    fn embedded(table: &str) -> Self {
        Self {
            name: "local".into(),
            kind: SourceKind::Sql,
            url: Some(DEFAULT_SQLITE_URL.into()),
            url_env: None,
            url_file: None,
            table: Some(table.into()),
            migrate: true,
            read_only: false,
            foreign_db: false,
            pool_size: default_pool_size(),
            connect_timeout: default_connect_timeout(),
            timeout: default_timeout(),
            list_limit: default_list_limit(),
            case_sensitive: false,
            search_fields: None,
            search_prefix: star(),
            search_suffix: star(),
            cache_ttl: None,
            cache_size: default_cache_size(),
            map: BTreeMap::new(),
            urls: Vec::new(),
            base_dn: None,
            scope: None,
            bind_dn: None,
            bind_password_env: None,
            bind_password_file: None,
            always_filter: None,
            invalid_filter: None,
            starttls: false,
            ca_file: None,
            store_url: None,
        }
    }

    /// The connection URL, resolved through `url_env` / `url_file` when set.
    pub fn resolve_url(&self) -> Result<String, String> {
        match (&self.url, &self.url_env, &self.url_file) {
            (Some(u), None, None) => Ok(u.clone()),
            (None, Some(var), None) => std::env::var(var)
                .map_err(|_| format!("environment variable {var:?} (url_env) is not set")),
            (None, None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("cannot read url_file {path:?}: {e}")),
            (None, None, None) => Err("one of url, url_env, url_file is required".into()),
            _ => Err("set only one of url, url_env, url_file".into()),
        }
    }

    /// LDAP: `url` then `urls`, in failover order.
    pub fn ldap_urls(&self) -> Vec<String> {
        self.url.iter().chain(&self.urls).cloned().collect()
    }

    /// LDAP: the bind password from `bind_password_env` / `bind_password_file`.
    pub fn bind_password(&self) -> Result<String, String> {
        match (&self.bind_password_env, &self.bind_password_file) {
            (Some(var), None) => {
                std::env::var(var).map_err(|_| format!("environment variable {var:?} is not set"))
            }
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| format!("cannot read bind_password_file {path:?}: {e}")),
            (None, None) => Err("bind_dn needs bind_password_env or bind_password_file".into()),
            _ => Err("set only one of bind_password_env, bind_password_file".into()),
        }
    }

    /// The search prefix and suffix as wildcard patterns.
    pub fn affixes(&self) -> (Pattern, Pattern) {
        (
            Pattern::wildcards(&self.search_prefix),
            Pattern::wildcards(&self.search_suffix),
        )
    }
}

/// A source's attribute map resolved against the built-in defaults: attribute -> column, with the
/// domain rules.
#[derive(Debug, Clone)]
pub struct ResolvedMap<F> {
    pub columns: Vec<(Attr<F>, String)>,
    pub schema: Schema<F>,
}

impl<F: Field> ResolvedMap<F> {
    /// The column of an attribute, if the source maps it.
    pub fn column(&self, attr: &Attr<F>) -> Option<&str> {
        self.columns
            .iter()
            .find(|(a, _)| a == attr)
            .map(|(_, c)| c.as_str())
    }

    pub fn field_column(&self, field: F) -> Option<&str> {
        self.column(&Attr::Field(field))
    }
}

/// Resolves a map: built-ins default to the OTRS columns; an empty column unmaps a built-in; any
/// other name is an extra attribute. `extra_builtins` are fields outside `F::RECORD` that may be
/// mapped (the customer-user password).
fn resolve_map<F: Field>(
    kind: SourceKind,
    map: &BTreeMap<String, MapEntry>,
    extra_builtins: &[F],
    key: &str,
    problems: &mut Vec<String>,
) -> ResolvedMap<F> {
    let check = |path: &str, name: &str, problems: &mut Vec<String>| match kind {
        SourceKind::Sql => check_identifier(path, name, problems),
        SourceKind::Ldap => check_ldap_attr(path, name, problems),
    };
    let builtins: Vec<F> = F::RECORD.iter().chain(extra_builtins).copied().collect();
    let mut columns = Vec::new();
    let mut rules = Vec::new();
    for &f in &builtins {
        let (column, required, read_only) = match map.get(f.name()) {
            None if kind == SourceKind::Ldap => (f.default_ldap_attr().to_owned(), None, false),
            None => (f.default_column().to_owned(), None, false),
            Some(MapEntry::Column(c)) => (c.clone(), None, false),
            Some(MapEntry::Full {
                column,
                required,
                read_only,
            }) => (column.clone(), *required, *read_only),
        };
        if column.is_empty() {
            if f == F::KEY {
                problems.push(format!(
                    "{key}.map.{}: the key attribute must be mapped",
                    f.name()
                ));
            }
            continue;
        }
        if kind == SourceKind::Ldap && f == F::VALIDITY {
            problems.push(format!(
                "{key}.map.{}: LDAP sources mark invalid entries with invalid_filter",
                f.name()
            ));
            continue;
        }
        check(&format!("{key}.map.{}", f.name()), &column, problems);
        columns.push((Attr::Field(f), column));
        if F::RECORD.contains(&f) {
            rules.push(AttrRule {
                attr: Attr::Field(f),
                required: f == F::KEY || required.unwrap_or_else(|| f.required_by_default()),
                read_only: read_only && f != F::KEY,
            });
        }
    }
    for (name, entry) in map {
        if builtins.iter().any(|f| f.name() == name) {
            continue;
        }
        let path = format!("{key}.map.{name}");
        if !is_identifier(name) {
            problems.push(format!("{path}: attribute names are letters, digits and _"));
        }
        let (column, required, read_only) = match entry {
            MapEntry::Column(c) => (c.clone(), false, false),
            MapEntry::Full {
                column,
                required,
                read_only,
            } => (column.clone(), required.unwrap_or(false), *read_only),
        };
        check(&path, &column, problems);
        columns.push((Attr::Extra(name.clone()), column));
        rules.push(AttrRule {
            attr: Attr::Extra(name.clone()),
            required,
            read_only,
        });
    }
    ResolvedMap {
        columns,
        schema: Schema { rules },
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// SQL identifiers (tables, columns) are interpolated into statements, so they are restricted to
/// plain names; values are always bound.
fn check_identifier(key: &str, ident: &str, problems: &mut Vec<String>) {
    if !is_identifier(ident) {
        problems.push(format!(
            "{key}: {ident:?} is not a plain SQL name (letters, digits, _; at most 64)"
        ));
    }
}

/// LDAP attribute descriptions: a name (letters, digits, hyphens) or a numeric OID.
fn check_ldap_attr(key: &str, attr: &str, problems: &mut Vec<String>) {
    let name = attr.starts_with(|c: char| c.is_ascii_alphabetic())
        && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !attr.is_empty()
        && attr
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !(name || oid) || attr.len() > 128 {
        problems.push(format!("{key}: {attr:?} is not an LDAP attribute name"));
    }
}

/// Resolves a configured list of attribute names (search fields, name fields) against a map;
/// every name must be mapped. Without a configured list, the defaults the map has are taken.
fn resolve_attrs<F: Field>(
    configured: Option<&Vec<String>>,
    defaults: &[&str],
    map: &ResolvedMap<F>,
    key: &str,
    problems: &mut Vec<String>,
) -> Vec<Attr<F>> {
    let to_attr =
        |name: &str| F::from_name(name).map_or_else(|| Attr::Extra(name.to_owned()), Attr::Field);
    let Some(names) = configured else {
        return defaults
            .iter()
            .map(|n| to_attr(n))
            .filter(|a| map.column(a).is_some())
            .collect();
    };
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let attr = to_attr(name);
        if map.column(&attr).is_none() || matches!(attr, Attr::Field(f) if f == F::VALIDITY) {
            problems.push(format!(
                "{key}[{i}]: {name:?} is not a mapped text attribute of this source"
            ));
        } else {
            out.push(attr);
        }
    }
    out
}

/// A customer-user SQL source, checked and resolved.
#[derive(Debug, Clone)]
pub struct UserSource {
    pub settings: SqlSettings,
    /// SQL: the database URL; LDAP: the first server URL.
    pub url: String,
    /// The SQL database of preferences and memberships (SQL sources: `url`).
    pub store_url: String,
    pub table: String,
    pub map: ResolvedMap<UserField>,
    pub search_fields: Vec<Attr<UserField>>,
    pub postmaster_fields: Vec<Attr<UserField>>,
    pub name_fields: Vec<Attr<UserField>>,
    pub name_join: String,
    pub email_unique: bool,
    pub customer_company_support: bool,
}

/// A customer SQL source, checked and resolved.
#[derive(Debug, Clone)]
pub struct CustomerSource {
    pub settings: SqlSettings,
    pub url: String,
    pub table: String,
    pub map: ResolvedMap<CustomerField>,
    pub search_fields: Vec<Attr<CustomerField>>,
}

/// The configuration after validation: what the application is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerConfig,
    pub user_sources: Vec<UserSource>,
    pub customer_sources: Vec<CustomerSource>,
    /// `None` when no SQL database is available for them.
    pub groups: Option<GroupSettings>,
    pub auth: AuthSettings,
    pub access: crate::access::Access,
}

/// LDAP settings, checked; returns the first server URL.
fn check_ldap(s: &SqlSettings, key: &str, problems: &mut Vec<String>) -> String {
    let urls = s.ldap_urls();
    if urls.is_empty() {
        problems.push(format!(
            "{key}.url: an ldap:// or ldaps:// URL (or urls) is required"
        ));
    }
    for u in &urls {
        if !(u.starts_with("ldap://") || u.starts_with("ldaps://")) {
            problems.push(format!(
                "{key}.url: {u:?} is not an ldap:// or ldaps:// URL"
            ));
        }
        if s.starttls && u.starts_with("ldaps://") {
            problems.push(format!(
                "{key}.starttls: not with ldaps:// ({u:?} is TLS already)"
            ));
        }
    }
    if s.base_dn.as_deref().is_none_or(|b| b.trim().is_empty()) {
        problems.push(format!("{key}.base_dn: required for an LDAP source"));
    }
    if !matches!(s.scope.as_deref(), None | Some("sub" | "one")) {
        problems.push(format!("{key}.scope: \"sub\" or \"one\""));
    }
    if s.bind_dn.is_some() {
        if let Err(e) = s.bind_password() {
            problems.push(format!("{key}.bind_password_env: {e}"));
        }
    }
    for (k, f) in [
        ("always_filter", &s.always_filter),
        ("invalid_filter", &s.invalid_filter),
    ] {
        if let Some(f) = f {
            if !(f.starts_with('(') && f.ends_with(')')) {
                problems.push(format!(
                    "{key}.{k}: {f:?} must be a parenthesised LDAP filter"
                ));
            }
        }
    }
    if let Some(ca) = &s.ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            problems.push(format!("{key}.ca_file: {ca:?}: {e}"));
        }
    }
    if s.list_limit == 0 {
        problems.push(format!("{key}.list_limit: must be at least 1"));
    }
    urls.first().cloned().unwrap_or_default()
}

fn check_common(s: &SqlSettings, key: &str, problems: &mut Vec<String>) -> String {
    if s.name.trim().is_empty() || s.name.trim() != s.name {
        problems.push(format!(
            "{key}.name: must be non-empty without surrounding spaces"
        ));
    }
    if s.kind == SourceKind::Ldap {
        return check_ldap(s, key, problems);
    }
    let url = match s.resolve_url() {
        Ok(u) => u,
        Err(e) => {
            problems.push(format!("{key}.url: {e}"));
            String::new()
        }
    };
    if !url.is_empty()
        && !["sqlite:", "postgres:", "postgresql:", "mysql:", "mariadb:"]
            .iter()
            .any(|p| url.starts_with(p))
    {
        problems.push(format!(
            "{key}.url: unsupported scheme (use sqlite://, postgres:// or mysql://)"
        ));
    }
    if let Some(t) = &s.table {
        check_identifier(&format!("{key}.table"), t, problems);
    }
    if s.pool_size == 0 {
        problems.push(format!("{key}.pool_size: must be at least 1"));
    }
    if s.list_limit == 0 {
        problems.push(format!("{key}.list_limit: must be at least 1"));
    }
    if s.timeout.is_zero() {
        problems.push(format!("{key}.timeout: must be positive"));
    }
    for (k, v) in [
        ("search_prefix", &s.search_prefix),
        ("search_suffix", &s.search_suffix),
    ] {
        if v.chars().any(|c| c != '*') {
            problems.push(format!(
                "{key}.{k}: only \"\" or \"*\" is supported, got {v:?}"
            ));
        }
    }
    url
}

fn check_unique_names<'a>(
    names: impl Iterator<Item = &'a str>,
    key: &str,
    problems: &mut Vec<String>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, n) in names.enumerate() {
        if !seen.insert(n) {
            problems.push(format!(
                "{key}[{i}].name: {n:?} is used by an earlier source"
            ));
        }
    }
}

impl Config {
    /// Reads the file (if given), applies `CLIENTELE_*` overrides from `env`, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| {
                ConfigError(vec![format!(
                    "cannot read config file {}: {e}",
                    p.display()
                )])
            })?,
            None => String::new(),
        };
        Self::from_toml(&text, env)?.validate()
    }

    /// Parses TOML text with environment overrides; unknown keys are problems, all listed.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut value: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError(vec![format!("config file: {e}")]))?;
        let mut problems = Vec::new();
        let mut overrides: Vec<_> = env
            .into_iter()
            .filter(|(k, _)| {
                k.strip_prefix(ENV_PREFIX)
                    .and_then(|rest| rest.split("__").next())
                    .is_some_and(|section| {
                        ENV_SECTIONS.contains(&section.to_ascii_lowercase().as_str())
                    })
            })
            .collect();
        overrides.sort();
        for (k, v) in overrides {
            if let Err(e) = apply_override(&mut value, &k[ENV_PREFIX.len()..], &v) {
                problems.push(format!("{k}: {e}"));
            }
        }
        let mut unknown = Vec::new();
        let config: Result<Config, _> =
            serde_ignored::deserialize(value, |path| unknown.push(path.to_string()));
        match config {
            Err(e) => {
                problems.push(e.to_string());
                Err(ConfigError(problems))
            }
            Ok(mut c) => {
                problems.extend(unknown.into_iter().map(|p| format!("{p}: unknown key")));
                c.read_problems = problems;
                Ok(c)
            }
        }
    }

    /// Checks every setting and resolves maps and field lists; lists every problem found.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let mut problems = self.read_problems;
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "server.listen: {:?} is not an address:port",
                self.server.listen
            ));
        }
        let user_cfgs = self.customer_user_sources.unwrap_or_else(|| {
            vec![UserSourceConfig {
                sql: SqlSettings::embedded("customer_user"),
                postmaster_search_fields: None,
                name_fields: None,
                name_join: space(),
                email_unique: true,
                customer_company_support: true,
            }]
        });
        if user_cfgs.is_empty() {
            problems.push("customer_user_sources: at least one source is required".into());
        }
        check_unique_names(
            user_cfgs.iter().map(|s| s.sql.name.as_str()),
            "customer_user_sources",
            &mut problems,
        );
        let mut user_sources = Vec::new();
        for (i, c) in user_cfgs.into_iter().enumerate() {
            let key = format!("customer_user_sources[{i}]");
            let url = check_common(&c.sql, &key, &mut problems);
            let map = resolve_map(
                c.sql.kind,
                &c.sql.map,
                &[UserField::Password],
                &key,
                &mut problems,
            );
            let search_fields = resolve_attrs(
                c.sql.search_fields.as_ref(),
                &["login", "first_name", "last_name", "customer_id"],
                &map,
                &format!("{key}.search_fields"),
                &mut problems,
            );
            let postmaster_fields = resolve_attrs(
                c.postmaster_search_fields.as_ref(),
                &["email"],
                &map,
                &format!("{key}.postmaster_search_fields"),
                &mut problems,
            );
            if postmaster_fields.is_empty() {
                problems.push(format!(
                    "{key}.postmaster_search_fields: must name at least one field"
                ));
            }
            let name_fields = resolve_attrs(
                c.name_fields.as_ref(),
                &["title", "first_name", "last_name"],
                &map,
                &format!("{key}.name_fields"),
                &mut problems,
            );
            user_sources.push(UserSource {
                table: c
                    .sql
                    .table
                    .clone()
                    .unwrap_or_else(|| "customer_user".into()),
                store_url: url.clone(),
                url,
                map,
                search_fields,
                postmaster_fields,
                name_fields,
                name_join: c.name_join,
                email_unique: c.email_unique,
                customer_company_support: c.customer_company_support,
                settings: c.sql,
            });
        }
        // LDAP sources keep preferences and memberships in SQL: their own store_url, else the
        // first SQL source's database, else the embedded SQLite file.
        let first_sql = user_sources
            .iter()
            .find(|u| u.settings.kind == SourceKind::Sql)
            .map(|u| u.url.clone());
        for u in &mut user_sources {
            if u.settings.kind == SourceKind::Ldap {
                u.store_url = u
                    .settings
                    .store_url
                    .clone()
                    .or_else(|| first_sql.clone())
                    .unwrap_or_else(|| DEFAULT_SQLITE_URL.to_owned());
            }
        }
        let customer_cfgs = self.customer_sources.unwrap_or_else(|| {
            user_sources
                .iter()
                .find(|u| u.settings.kind == SourceKind::Sql)
                .map(|u| {
                    let mut s = SqlSettings::embedded("customer_company");
                    s.name = u.settings.name.clone();
                    s.url = Some(u.url.clone());
                    s.migrate = u.settings.migrate;
                    s.pool_size = u.settings.pool_size;
                    vec![CustomerSourceConfig { sql: s }]
                })
                .unwrap_or_default()
        });
        check_unique_names(
            customer_cfgs.iter().map(|s| s.sql.name.as_str()),
            "customer_sources",
            &mut problems,
        );
        let mut customer_sources = Vec::new();
        for (i, c) in customer_cfgs.into_iter().enumerate() {
            let key = format!("customer_sources[{i}]");
            let url = check_common(&c.sql, &key, &mut problems);
            let map = resolve_map(c.sql.kind, &c.sql.map, &[], &key, &mut problems);
            let search_fields = resolve_attrs(
                c.sql.search_fields.as_ref(),
                &["customer_id", "name"],
                &map,
                &format!("{key}.search_fields"),
                &mut problems,
            );
            customer_sources.push(CustomerSource {
                table: c
                    .sql
                    .table
                    .clone()
                    .unwrap_or_else(|| "customer_company".into()),
                url,
                map,
                search_fields,
                settings: c.sql,
            });
        }
        let groups = resolve_groups(&self.groups, &user_sources, &mut problems);
        let auth = resolve_auth(&self.auth, &user_sources, &mut problems);
        let access = resolve_callers(&self.callers, &mut problems);
        if !matches!(self.server.log_format.as_str(), "human" | "json") {
            problems.push(format!(
                "server.log_format: {:?} is not \"human\" or \"json\"",
                self.server.log_format
            ));
        }
        if self.server.concurrency_limit == 0 {
            problems.push("server.concurrency_limit: must be at least 1".into());
        }
        if let Some(t) = &self.server.tls {
            for (k, f) in [
                ("cert_file", Some(&t.cert_file)),
                ("key_file", Some(&t.key_file)),
                ("client_ca_file", t.client_ca_file.as_ref()),
            ] {
                if let Some(f) = f {
                    if let Err(e) = std::fs::metadata(f) {
                        problems.push(format!("server.tls.{k}: {f:?}: {e}"));
                    }
                }
            }
        }
        match auth {
            Some(auth) if problems.is_empty() => Ok(Settings {
                server: self.server,
                user_sources,
                customer_sources,
                groups,
                auth,
                access,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

fn resolve_callers(callers: &[CallerConfig], problems: &mut Vec<String>) -> crate::access::Access {
    use crate::access::{Caller, Scope};
    let mut out = Vec::new();
    for (i, c) in callers.iter().enumerate() {
        let key = format!("callers[{i}]");
        let token_sha256 = c.token_sha256.as_ref().and_then(|h| {
            let bytes = hex::decode(h.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
            if bytes.is_none() {
                problems.push(format!("{key}.token_sha256: 64 hex digits of the token's SHA-256 (never the token itself)"));
            }
            bytes
        });
        if c.token_sha256.is_none() && c.client_cert_name.is_none() {
            problems.push(format!("{key}: set token_sha256 or client_cert_name"));
        }
        let mut scopes = Vec::new();
        for (j, s) in c.scopes.iter().enumerate() {
            match Scope::from_name(s) {
                Some(x) => scopes.push(x),
                None => problems.push(format!(
                    "{key}.scopes[{j}]: unknown scope {s:?}; one of {}",
                    Scope::ALL.map(Scope::name).join(", ")
                )),
            }
        }
        out.push(Caller {
            name: c.name.clone(),
            token_sha256,
            client_cert_name: c.client_cert_name.clone(),
            scopes,
        });
    }
    check_unique_names(out.iter().map(|c| c.name.as_str()), "callers", problems);
    crate::access::Access { callers: out }
}

fn resolve_groups(
    g: &GroupsConfig,
    users: &[UserSource],
    problems: &mut Vec<String>,
) -> Option<GroupSettings> {
    check_identifier("groups.table", &g.table, problems);
    if !g.permissions.iter().any(|p| p == crate::domain::group::RW) {
        problems
            .push("groups.permissions: must contain \"rw\" (it implies every other key)".into());
    }
    for (i, p) in g.permissions.iter().enumerate() {
        if p.is_empty() || p.chars().count() > 20 || p.chars().any(char::is_whitespace) {
            problems.push(format!(
                "groups.permissions[{i}]: {p:?} must be 1 to 20 characters without spaces"
            ));
        }
    }
    let explicit = match (&g.url, &g.url_env, &g.url_file) {
        (None, None, None) => None,
        (url, url_env, url_file) => {
            let probe = SqlSettings {
                url: url.clone(),
                url_env: url_env.clone(),
                url_file: url_file.clone(),
                ..SqlSettings::embedded("groups")
            };
            match probe.resolve_url() {
                Ok(u) => Some(u),
                Err(e) => {
                    problems.push(format!("groups.url: {e}"));
                    return None;
                }
            }
        }
    };
    let (url, migrate) = match explicit {
        Some(u) => (u, g.migrate.unwrap_or(true)),
        None => match users.iter().find(|u| u.settings.kind == SourceKind::Sql) {
            Some(first) => (
                first.url.clone(),
                g.migrate.unwrap_or(first.settings.migrate),
            ),
            // Only directories: the store of their preferences and memberships.
            None => (users.first()?.store_url.clone(), g.migrate.unwrap_or(true)),
        },
    };
    Some(GroupSettings {
        url,
        migrate,
        table: g.table.clone(),
        customer_group_support: g.customer_group_support,
        always_groups: g.always_groups.clone(),
        customer_always_groups: g.customer_always_groups.clone(),
        permissions: g.permissions.clone(),
    })
}

/// Sets the value at `path` (`SERVER__LISTEN`, `CUSTOMER_USER_SOURCES__0__URL`) in `root`.
fn apply_override(root: &mut toml::Value, path: &str, raw: &str) -> Result<(), String> {
    let segments: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err("empty path segment (use __ between keys)".into());
    }
    let mut node = root;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        node = match node {
            toml::Value::Array(items) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| format!("{seg:?} is not a list position"))?;
                if idx > items.len() {
                    return Err(format!(
                        "list position {idx} skips entries (have {})",
                        items.len()
                    ));
                }
                if idx == items.len() {
                    items.push(toml::Value::Table(toml::Table::new()));
                }
                &mut items[idx]
            }
            toml::Value::Table(table) => {
                if last {
                    let value = parse_env_value(raw, table.get(seg.as_str()));
                    table.insert(seg.clone(), value);
                    return Ok(());
                }
                let next_is_index = segments[i + 1].parse::<usize>().is_ok();
                table.entry(seg.clone()).or_insert_with(|| {
                    if next_is_index {
                        toml::Value::Array(Vec::new())
                    } else {
                        toml::Value::Table(toml::Table::new())
                    }
                })
            }
            _ => return Err(format!("{seg:?} is inside a value that is not a table")),
        };
    }
    Err("a list position cannot be set as a whole".into())
}

fn parse_env_value(raw: &str, existing: Option<&toml::Value>) -> toml::Value {
    if matches!(existing, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_owned());
    }
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn no_config_is_the_embedded_default() {
        let s = Config::from_toml("", none()).unwrap().validate().unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:50051");
        assert_eq!(s.user_sources.len(), 1);
        assert_eq!(s.user_sources[0].url, DEFAULT_SQLITE_URL);
        assert_eq!(s.user_sources[0].table, "customer_user");
        assert_eq!(s.customer_sources[0].table, "customer_company");
        assert_eq!(
            s.user_sources[0].map.field_column(UserField::Comment),
            Some("comments")
        );
        assert_eq!(s.user_sources[0].search_fields.len(), 4);
    }

    #[test]
    fn env_overrides_keys_and_list_entries() {
        let toml = r#"
            [[customer_user_sources]]
            name = "a"
            kind = "sql"
            url = "sqlite://a.db"
        "#;
        let env = vec![
            ("CLIENTELE_SERVER__LISTEN".into(), "127.0.0.1:7000".into()),
            (
                "CLIENTELE_CUSTOMER_USER_SOURCES__0__LIST_LIMIT".into(),
                "10".into(),
            ),
            (
                "CLIENTELE_CUSTOMER_USER_SOURCES__0__URL".into(),
                "sqlite://b.db".into(),
            ),
            ("CLIENTELE_TEST_POSTGRES_URL".into(), "ignored".into()),
            (
                "CLIENTELE_PG_URL".into(),
                "a url_env target, ignored".into(),
            ),
            ("CLIENTELE_LOG".into(), "debug".into()),
            ("OTHER".into(), "ignored".into()),
        ];
        let s = Config::from_toml(toml, env).unwrap().validate().unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:7000");
        assert_eq!(s.user_sources[0].settings.list_limit, 10);
        assert_eq!(s.user_sources[0].url, "sqlite://b.db");
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let toml = r#"
            [server]
            listen = "nowhere"
            [[customer_user_sources]]
            name = "a"
            kind = "sql"
            url = "ftp://x"
            table = "customer user"
            list_limit = 0
            search_fields = ["login", "nickname"]
            [customer_user_sources.map]
            login = ""
            room = { column = "room; drop", required = true }
            [[customer_user_sources]]
            name = "a"
            kind = "sql"
        "#;
        let err = Config::from_toml(toml, none())
            .unwrap()
            .validate()
            .unwrap_err();
        let text = err.to_string();
        for needle in [
            "server.listen",
            "customer_user_sources[0].url",
            "customer_user_sources[0].table",
            "customer_user_sources[0].list_limit",
            "customer_user_sources[0].search_fields[1]",
            "customer_user_sources[0].map.login",
            "customer_user_sources[0].map.room",
            "customer_user_sources[1].name",
            "customer_user_sources[1].url",
        ] {
            assert!(text.contains(needle), "{needle} missing in:\n{text}");
        }
    }

    #[test]
    fn unknown_keys_are_all_reported() {
        let toml = "[server]\nlisten = \"nowhere\"\nlistne = 1\nbogus = 2\n";
        let err = Config::from_toml(toml, none())
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err.0.iter().any(|p| p.contains("server.listen")), "{err}");
        assert!(err.0.iter().any(|p| p.contains("server.listne")), "{err}");
    }

    #[test]
    fn extra_attributes_and_rules() {
        let toml = r#"
            [[customer_user_sources]]
            name = "a"
            kind = "sql"
            url = "sqlite://a.db"
            [customer_user_sources.map]
            room = { column = "room", required = true }
            title = ""
            email = { column = "mail", read_only = true }
        "#;
        let s = Config::from_toml(toml, none()).unwrap().validate().unwrap();
        let m = &s.user_sources[0].map;
        assert_eq!(m.column(&Attr::Extra("room".into())), Some("room"));
        assert_eq!(m.field_column(UserField::Title), None);
        assert_eq!(m.field_column(UserField::Email), Some("mail"));
        let email = m.schema.rule(&Attr::Field(UserField::Email)).unwrap();
        assert!(email.read_only && email.required);
        assert!(m.schema.rule(&Attr::Extra("room".into())).unwrap().required);
    }
}
