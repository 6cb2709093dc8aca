//! `[[customer_user_sources]]` and `[[customer_sources]]`: the keys every source has, the keys of
//! each kind (`kind = "sql"` or `kind = "ldap"`, a serde enum tagged by `kind`), their checks, and
//! the resolved forms [`UserSourceSettings`] and [`CustomerSourceSettings`] the sources are built
//! from. A key of the other kind is a problem naming the key and the source.

use std::{collections::BTreeMap, time::Duration};

use serde::{de, Deserialize};

use super::{
    check_unique_names, duration,
    map::{check_identifier, resolve_attrs, resolve_map, MapEntry, ResolvedMap},
    opt_duration, secret, DEFAULT_SQLITE_URL,
};
use crate::domain::{customer::CustomerField, customer_user::UserField, query::Pattern, Attr};

/// The kind of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Sql,
    Ldap,
}

impl SourceKind {
    /// The configuration spelling (`sql`, `ldap`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sql => "sql",
            Self::Ldap => "ldap",
        }
    }
}

/// The keys every source has, whatever its kind; they need no resolution, so the resolved
/// settings carry them as written.
#[derive(Clone, Deserialize)]
pub struct SourceSettings {
    pub name: String,
    /// SQL: the database URL (`sqlite://…`, `postgres://…`, `mysql://…`; or `url_env` /
    /// `url_file`). LDAP: the first server URL.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Bound for establishing a connection (and for waiting for a pooled one); default 1 s.
    /// Running out opens the source's circuit breaker.
    #[serde(default = "default_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Bound for one call to this source, default 5 s: a call ends at the smaller of this and
    /// the caller's deadline minus a margin; running out of it (not of the caller's deadline)
    /// opens the source's circuit breaker. `timeout` is its deprecated spelling, still read
    /// (a file must not give both).
    #[serde(
        default = "default_call_timeout",
        alias = "timeout",
        deserialize_with = "duration"
    )]
    pub call_timeout: Duration,
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
}

impl SourceSettings {
    /// The embedded default source: `local`, in the default SQLite file.
    fn embedded() -> Self {
        Self {
            name: "local".into(),
            url: Some(DEFAULT_SQLITE_URL.into()),
            read_only: false,
            pool_size: default_pool_size(),
            connect_timeout: default_connect_timeout(),
            call_timeout: default_call_timeout(),
            list_limit: default_list_limit(),
            case_sensitive: false,
            search_fields: None,
            search_prefix: star(),
            search_suffix: star(),
            cache_ttl: None,
            cache_size: default_cache_size(),
            map: BTreeMap::new(),
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

/// The keys of `kind = "sql"` sources only.
#[derive(Debug, Clone, Deserialize)]
pub struct SqlKeys {
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
    /// The table has no create/change columns.
    #[serde(default)]
    pub foreign_db: bool,
    /// Where searches are answered: `"memory"` (default, an in-process index of the table,
    /// see `source::index`) or `"database"` (a statement per search).
    #[serde(default)]
    pub search_index: SearchIndexMode,
    /// How soon rows written by anyone else are visible to the in-memory index (default 1 s).
    #[serde(default = "default_index_refresh", deserialize_with = "duration")]
    pub index_refresh: Duration,
}

/// `search_index`: where a SQL source answers searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchIndexMode {
    /// An in-process index of the table (`source::index`).
    #[default]
    Memory,
    /// One statement per search, as before the index existed.
    Database,
}

fn default_index_refresh() -> Duration {
    Duration::from_secs(1)
}

impl SqlKeys {
    fn embedded(table: &str) -> Self {
        Self {
            url_env: None,
            url_file: None,
            table: Some(table.into()),
            migrate: true,
            foreign_db: false,
            search_index: SearchIndexMode::default(),
            index_refresh: default_index_refresh(),
        }
    }
}

/// The keys of `kind = "ldap"` sources only.
#[derive(Clone, Deserialize)]
pub struct LdapKeys {
    /// Further server URLs, tried in order after `url` (failover).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Where the entries live.
    #[serde(default)]
    pub base_dn: Option<String>,
    /// `sub` (default) or `one`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Bind as this DN (anonymous when absent); the password from the env/file below.
    #[serde(default)]
    pub bind_dn: Option<String>,
    #[serde(default)]
    pub bind_password_env: Option<String>,
    #[serde(default)]
    pub bind_password_file: Option<String>,
    /// AND-ed into every search, e.g. `(objectClass=inetOrgPerson)`.
    #[serde(default)]
    pub always_filter: Option<String>,
    /// Entries matching this filter are invalid, e.g. `(employeeType=inactive)`.
    #[serde(default)]
    pub invalid_filter: Option<String>,
    /// Upgrade `ldap://` with StartTLS (certificates are always verified).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA that signed the server certificate (default: system roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The SQL database that keeps this source's preferences and memberships (default: the
    /// first SQL customer-user source's, else the embedded SQLite file).
    #[serde(default)]
    pub store_url: Option<String>,
}

/// The kind-specific keys of a source, tagged by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    Sql(SqlKeys),
    Ldap(LdapKeys),
}

/// The keys of customer-user sources only (both kinds).
#[derive(Debug, Clone, Deserialize)]
pub struct UserKeys {
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

/// `[[customer_user_sources]]` as written.
#[derive(Debug, Clone, Deserialize)]
pub struct UserSourceConfig {
    #[serde(flatten)]
    pub settings: SourceSettings,
    #[serde(flatten)]
    pub backend: BackendConfig,
    #[serde(flatten)]
    pub user: UserKeys,
}

/// `[[customer_sources]]` as written.
#[derive(Debug, Clone, Deserialize)]
pub struct CustomerSourceConfig {
    #[serde(flatten)]
    pub settings: SourceSettings,
    #[serde(flatten)]
    pub backend: BackendConfig,
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
    Duration::from_secs(1)
}
fn default_call_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_cache_size() -> u64 {
    10_000
}
fn default_list_limit() -> u32 {
    250
}

/// A SQL source's table, checked.
#[derive(Debug, Clone)]
pub struct SqlBackend {
    pub table: String,
    /// Clientele owns the table: create and upgrade it.
    pub migrate: bool,
    /// The table has no create/change columns.
    pub foreign_db: bool,
    /// Where searches are answered (`search_index`).
    pub search_index: SearchIndexMode,
    /// `index_refresh`: rows written by others are visible to the index within it.
    pub index_refresh: Duration,
}

/// LDAP search depth below the base DN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapScope {
    /// The whole subtree (`sub`, the default).
    Subtree,
    /// Direct children only (`one`).
    OneLevel,
}

/// An LDAP source's directory settings, checked.
#[derive(Clone)]
pub struct LdapBackend {
    /// Every server URL, in failover order (`url`, then `urls`).
    pub urls: Vec<String>,
    pub base_dn: String,
    pub scope: LdapScope,
    /// Bind as this DN; `None`: anonymous.
    pub bind_dn: Option<String>,
    pub bind_password_env: Option<String>,
    pub bind_password_file: Option<String>,
    pub always_filter: Option<String>,
    pub invalid_filter: Option<String>,
    pub starttls: bool,
    pub ca_file: Option<String>,
}

impl LdapBackend {
    /// The bind password from `bind_password_env` / `bind_password_file`, read now (validation
    /// checked that it can be read; it is read again when the source is built).
    pub fn bind_password(&self) -> Result<String, String> {
        secret::read_password(
            self.bind_password_env.as_deref(),
            self.bind_password_file.as_deref(),
        )
    }
}

/// What a source is backed by, with the settings of that kind only.
#[derive(Debug, Clone)]
pub enum Backend {
    Sql(SqlBackend),
    Ldap(LdapBackend),
}

impl Backend {
    pub fn kind(&self) -> SourceKind {
        match self {
            Self::Sql(_) => SourceKind::Sql,
            Self::Ldap(_) => SourceKind::Ldap,
        }
    }
    pub fn sql(&self) -> Option<&SqlBackend> {
        match self {
            Self::Sql(s) => Some(s),
            Self::Ldap(_) => None,
        }
    }
    pub fn ldap(&self) -> Option<&LdapBackend> {
        match self {
            Self::Ldap(l) => Some(l),
            Self::Sql(_) => None,
        }
    }
}

/// A customer-user source, checked and resolved.
#[derive(Clone)]
pub struct UserSourceSettings {
    /// The keys every source has.
    pub settings: SourceSettings,
    pub backend: Backend,
    /// SQL: the resolved database URL; LDAP: the first server URL.
    pub url: String,
    /// The SQL database of preferences and memberships (SQL sources: `url`).
    pub store_url: String,
    pub map: ResolvedMap<UserField>,
    pub search_fields: Vec<Attr<UserField>>,
    pub postmaster_fields: Vec<Attr<UserField>>,
    pub name_fields: Vec<Attr<UserField>>,
    pub name_join: String,
    pub email_unique: bool,
    pub customer_company_support: bool,
}

/// A customer source, checked and resolved.
#[derive(Clone)]
pub struct CustomerSourceSettings {
    /// The keys every source has.
    pub settings: SourceSettings,
    pub backend: Backend,
    /// SQL: the resolved database URL; LDAP: the first server URL.
    pub url: String,
    pub map: ResolvedMap<CustomerField>,
    pub search_fields: Vec<Attr<CustomerField>>,
}

// `Debug` without the passwords a URL may hold.
secret::debug_redacting_urls!(SourceSettings { name, read_only, pool_size, connect_timeout, call_timeout, list_limit, case_sensitive, search_fields, search_prefix, search_suffix, cache_ttl, cache_size, map } urls { url });
secret::debug_redacting_urls!(LdapKeys { base_dn, scope, bind_dn, bind_password_env, bind_password_file, always_filter, invalid_filter, starttls, ca_file } urls { urls, store_url });
secret::debug_redacting_urls!(LdapBackend { base_dn, scope, bind_dn, bind_password_env, bind_password_file, always_filter, invalid_filter, starttls, ca_file } urls { urls });
secret::debug_redacting_urls!(UserSourceSettings { settings, backend, map, search_fields, postmaster_fields, name_fields, name_join, email_unique, customer_company_support } urls { url, store_url });
secret::debug_redacting_urls!(CustomerSourceSettings { settings, backend, map, search_fields } urls { url });

impl UserSourceSettings {
    pub fn kind(&self) -> SourceKind {
        self.backend.kind()
    }
    /// The table settings of a SQL source; `None` for LDAP.
    pub fn sql(&self) -> Option<&SqlBackend> {
        self.backend.sql()
    }
    /// The directory settings of an LDAP source; `None` for SQL.
    pub fn ldap(&self) -> Option<&LdapBackend> {
        self.backend.ldap()
    }
}

impl CustomerSourceSettings {
    pub fn kind(&self) -> SourceKind {
        self.backend.kind()
    }
    /// The table settings of a SQL source; `None` for LDAP.
    pub fn sql(&self) -> Option<&SqlBackend> {
        self.backend.sql()
    }
    /// The directory settings of an LDAP source; `None` for SQL.
    pub fn ldap(&self) -> Option<&LdapBackend> {
        self.backend.ldap()
    }
}

/// Checks, before typing, the keys of every entry of the source lists in `root`: a key of the
/// other kind is a problem naming the key and the source
/// (`customer_user_sources[1] ("dir"): key "table" is for kind = "sql" sources`), a key of no
/// kind is an unknown key; both are removed so that typing does not fail on them. Entries
/// without a valid `kind` are left to typing, which rejects them.
pub(super) fn check_source_keys(root: &mut toml::Value, problems: &mut Vec<String>) {
    let common: Vec<&str> = ["kind"]
        .into_iter()
        .chain(field_names::<SourceSettings>().iter().copied())
        .collect();
    let sql = field_names::<SqlKeys>();
    let ldap = field_names::<LdapKeys>();
    let user = field_names::<UserKeys>();
    for (section, extra) in [
        ("customer_user_sources", user),
        ("customer_sources", &[][..]),
    ] {
        let Some(toml::Value::Array(entries)) = root.get_mut(section) else {
            continue;
        };
        for (i, entry) in entries.iter_mut().enumerate() {
            let Some(table) = entry.as_table_mut() else {
                continue;
            };
            let (own, other, other_kind) = match table.get("kind").and_then(|k| k.as_str()) {
                Some("sql") => (sql, ldap, SourceKind::Ldap),
                Some("ldap") => (ldap, sql, SourceKind::Sql),
                _ => continue,
            };
            let name = table
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_owned();
            let keys: Vec<String> = table.keys().cloned().collect();
            for key in keys {
                let k = key.as_str();
                if common.contains(&k) || own.contains(&k) || extra.contains(&k) {
                    continue;
                }
                if other.contains(&k) {
                    problems.push(format!(
                        "{section}[{i}] ({name:?}): key {k:?} is for kind = \"{}\" sources",
                        other_kind.name()
                    ));
                } else {
                    problems.push(format!("{section}[{i}].{k}: unknown key"));
                }
                table.remove(k);
            }
        }
    }
}

/// The field names of a derived `Deserialize` struct, as serde passes them to
/// `deserialize_struct` (so the key lists above cannot drift from the structs).
fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Names<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Names<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("names taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut names: &'static [&'static str] = &[];
    // The error is the expected way out: only the names are wanted.
    let _ = T::deserialize(Names(&mut names));
    names
}

/// `connect_timeout` and `call_timeout` (or its deprecated spelling `timeout`) are positive.
fn check_timeouts(s: &SourceSettings, key: &str, problems: &mut Vec<String>) {
    if s.call_timeout.is_zero() {
        problems.push(format!("{key}.call_timeout: must be positive"));
    }
    if s.connect_timeout.is_zero() {
        problems.push(format!("{key}.connect_timeout: must be positive"));
    }
}

/// The source name: non-empty, without surrounding spaces.
fn check_name(s: &SourceSettings, key: &str, problems: &mut Vec<String>) {
    if s.name.trim().is_empty() || s.name.trim() != s.name {
        problems.push(format!(
            "{key}.name: must be non-empty without surrounding spaces"
        ));
    }
    if s.list_limit == 0 {
        problems.push(format!("{key}.list_limit: must be at least 1"));
    }
}

/// SQL settings, checked; returns the resolved database URL.
fn check_sql(
    s: &SourceSettings,
    k: &SqlKeys,
    default_table: &str,
    key: &str,
    problems: &mut Vec<String>,
) -> (String, SqlBackend) {
    let url = match secret::resolve_url(
        s.url.as_deref(),
        k.url_env.as_deref(),
        k.url_file.as_deref(),
    ) {
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
    if let Some(t) = &k.table {
        check_identifier(&format!("{key}.table"), t, problems);
    }
    if s.pool_size == 0 {
        problems.push(format!("{key}.pool_size: must be at least 1"));
    }
    check_timeouts(s, key, problems);
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
    let backend = SqlBackend {
        table: k.table.clone().unwrap_or_else(|| default_table.into()),
        migrate: k.migrate,
        foreign_db: k.foreign_db,
        search_index: k.search_index,
        index_refresh: k.index_refresh,
    };
    if k.index_refresh.is_zero() {
        problems.push(format!("{key}.index_refresh: must be more than 0"));
    }
    (url, backend)
}

/// LDAP settings, checked; returns the first server URL.
fn check_ldap(
    s: &SourceSettings,
    k: &LdapKeys,
    key: &str,
    problems: &mut Vec<String>,
) -> (String, LdapBackend) {
    let urls: Vec<String> = s.url.iter().chain(&k.urls).cloned().collect();
    check_timeouts(s, key, problems);
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
        if k.starttls && u.starts_with("ldaps://") {
            problems.push(format!(
                "{key}.starttls: not with ldaps:// ({u:?} is TLS already)"
            ));
        }
    }
    let base_dn = k.base_dn.clone().unwrap_or_default();
    if base_dn.trim().is_empty() {
        problems.push(format!("{key}.base_dn: required for an LDAP source"));
    }
    let scope = match k.scope.as_deref() {
        None | Some("sub") => LdapScope::Subtree,
        Some("one") => LdapScope::OneLevel,
        Some(_) => {
            problems.push(format!("{key}.scope: \"sub\" or \"one\""));
            LdapScope::Subtree
        }
    };
    let backend = LdapBackend {
        urls,
        base_dn,
        scope,
        bind_dn: k.bind_dn.clone(),
        bind_password_env: k.bind_password_env.clone(),
        bind_password_file: k.bind_password_file.clone(),
        always_filter: k.always_filter.clone(),
        invalid_filter: k.invalid_filter.clone(),
        starttls: k.starttls,
        ca_file: k.ca_file.clone(),
    };
    if backend.bind_dn.is_some() {
        if let Err(e) = backend.bind_password() {
            problems.push(format!("{key}.bind_password_env: {e}"));
        }
    }
    for (name, f) in [
        ("always_filter", &backend.always_filter),
        ("invalid_filter", &backend.invalid_filter),
    ] {
        if let Some(f) = f {
            if !(f.starts_with('(') && f.ends_with(')')) {
                problems.push(format!(
                    "{key}.{name}: {f:?} must be a parenthesised LDAP filter"
                ));
            }
        }
    }
    if let Some(ca) = &backend.ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            problems.push(format!("{key}.ca_file: {ca:?}: {e}"));
        }
    }
    (backend.urls.first().cloned().unwrap_or_default(), backend)
}

/// The checks every source gets, then those of its kind; returns its URL and backend.
fn resolve_backend(
    s: &SourceSettings,
    b: &BackendConfig,
    default_table: &str,
    key: &str,
    problems: &mut Vec<String>,
) -> (String, Backend) {
    check_name(s, key, problems);
    match b {
        BackendConfig::Sql(k) => {
            let (url, sql) = check_sql(s, k, default_table, key, problems);
            (url, Backend::Sql(sql))
        }
        BackendConfig::Ldap(k) => {
            let (url, ldap) = check_ldap(s, k, key, problems);
            (url, Backend::Ldap(ldap))
        }
    }
}

/// Checks and resolves the customer-user sources (`None`: the embedded default, one SQLite
/// source). LDAP sources keep preferences and memberships in SQL: their own `store_url`, else the
/// first SQL source's database, else the embedded SQLite file.
pub(super) fn resolve_user_sources(
    cfgs: Option<Vec<UserSourceConfig>>,
    problems: &mut Vec<String>,
) -> Vec<UserSourceSettings> {
    let cfgs = cfgs.unwrap_or_else(|| {
        vec![UserSourceConfig {
            settings: SourceSettings::embedded(),
            backend: BackendConfig::Sql(SqlKeys::embedded("customer_user")),
            user: UserKeys {
                postmaster_search_fields: None,
                name_fields: None,
                name_join: space(),
                email_unique: true,
                customer_company_support: true,
            },
        }]
    });
    if cfgs.is_empty() {
        problems.push("customer_user_sources: at least one source is required".into());
    }
    check_unique_names(
        cfgs.iter().map(|s| s.settings.name.as_str()),
        "customer_user_sources",
        problems,
    );
    let needs_store: Vec<bool> = cfgs
        .iter()
        .map(|c| matches!(&c.backend, BackendConfig::Ldap(k) if k.store_url.is_none()))
        .collect();
    let mut out: Vec<UserSourceSettings> = cfgs
        .into_iter()
        .enumerate()
        .map(|(i, c)| resolve_user_source(c, &format!("customer_user_sources[{i}]"), problems))
        .collect();
    let first_sql = out
        .iter()
        .find(|u| u.kind() == SourceKind::Sql)
        .map(|u| u.url.clone());
    for (u, needs_store) in out.iter_mut().zip(needs_store) {
        if needs_store {
            u.store_url = first_sql
                .clone()
                .unwrap_or_else(|| DEFAULT_SQLITE_URL.to_owned());
        }
    }
    out
}

/// One customer-user source; an LDAP source's `store_url` is left empty when not configured
/// (filled in by [`resolve_user_sources`]).
fn resolve_user_source(
    c: UserSourceConfig,
    key: &str,
    problems: &mut Vec<String>,
) -> UserSourceSettings {
    let (url, backend) = resolve_backend(&c.settings, &c.backend, "customer_user", key, problems);
    let store_url = match &c.backend {
        BackendConfig::Sql(_) => url.clone(),
        BackendConfig::Ldap(k) => k.store_url.clone().unwrap_or_default(),
    };
    let map = resolve_map(
        backend.kind(),
        &c.settings.map,
        &[UserField::Password],
        key,
        problems,
    );
    let search_fields = resolve_attrs(
        c.settings.search_fields.as_ref(),
        &["login", "first_name", "last_name", "customer_id"],
        &map,
        &format!("{key}.search_fields"),
        problems,
    );
    let postmaster_fields = resolve_attrs(
        c.user.postmaster_search_fields.as_ref(),
        &["email"],
        &map,
        &format!("{key}.postmaster_search_fields"),
        problems,
    );
    if postmaster_fields.is_empty() {
        problems.push(format!(
            "{key}.postmaster_search_fields: must name at least one field"
        ));
    }
    let name_fields = resolve_attrs(
        c.user.name_fields.as_ref(),
        &["title", "first_name", "last_name"],
        &map,
        &format!("{key}.name_fields"),
        problems,
    );
    UserSourceSettings {
        settings: c.settings,
        backend,
        url,
        store_url,
        map,
        search_fields,
        postmaster_fields,
        name_fields,
        name_join: c.user.name_join,
        email_unique: c.user.email_unique,
        customer_company_support: c.user.customer_company_support,
    }
}

/// Checks and resolves the customer sources. `None`: one source on the database of the first
/// SQL customer-user source (table `customer_company`, same name, `migrate` and pool size), or
/// none when there is no SQL customer-user source.
pub(super) fn resolve_customer_sources(
    cfgs: Option<Vec<CustomerSourceConfig>>,
    users: &[UserSourceSettings],
    problems: &mut Vec<String>,
) -> Vec<CustomerSourceSettings> {
    let cfgs = cfgs.unwrap_or_else(|| {
        users
            .iter()
            .find_map(|u| Some((u, u.sql()?)))
            .map(|(u, sql)| {
                let settings = SourceSettings {
                    name: u.settings.name.clone(),
                    url: Some(u.url.clone()),
                    pool_size: u.settings.pool_size,
                    ..SourceSettings::embedded()
                };
                let mut keys = SqlKeys::embedded("customer_company");
                keys.migrate = sql.migrate;
                keys.search_index = sql.search_index;
                keys.index_refresh = sql.index_refresh;
                vec![CustomerSourceConfig {
                    settings,
                    backend: BackendConfig::Sql(keys),
                }]
            })
            .unwrap_or_default()
    });
    check_unique_names(
        cfgs.iter().map(|s| s.settings.name.as_str()),
        "customer_sources",
        problems,
    );
    let mut out = Vec::new();
    for (i, c) in cfgs.into_iter().enumerate() {
        let key = format!("customer_sources[{i}]");
        let (url, backend) =
            resolve_backend(&c.settings, &c.backend, "customer_company", &key, problems);
        let map = resolve_map(backend.kind(), &c.settings.map, &[], &key, problems);
        let search_fields = resolve_attrs(
            c.settings.search_fields.as_ref(),
            &["customer_id", "name"],
            &map,
            &format!("{key}.search_fields"),
            problems,
        );
        out.push(CustomerSourceSettings {
            settings: c.settings,
            backend,
            url,
            map,
            search_fields,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::time::Duration;

    fn timeouts(keys: &str) -> Result<(Duration, Duration), String> {
        let toml = format!(
            "[[customer_user_sources]]\nname = \"a\"\nkind = \"sql\"\nurl = \"sqlite://a.db\"\n{keys}"
        );
        let s = Config::from_toml(&toml, Vec::new())
            .and_then(Config::validate)
            .map_err(|e| e.to_string())?;
        let u = &s.user_sources[0].settings;
        Ok((u.connect_timeout, u.call_timeout))
    }

    #[test]
    fn call_timeout_defaults_and_its_deprecated_spelling() {
        assert_eq!(
            timeouts("").unwrap(),
            (Duration::from_secs(1), Duration::from_secs(5))
        );
        assert_eq!(
            timeouts("call_timeout = \"2s\"").unwrap().1,
            Duration::from_secs(2)
        );
        assert_eq!(
            timeouts("timeout = \"3s\"").unwrap().1,
            Duration::from_secs(3),
            "timeout is still read"
        );
        let e = timeouts("call_timeout = \"0s\"").unwrap_err();
        assert!(e.contains("call_timeout: must be positive"), "{e}");
        assert!(timeouts("timeout = \"1s\"\ncall_timeout = \"2s\"").is_err());
    }
}
