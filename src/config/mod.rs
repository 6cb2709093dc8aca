//! Typed configuration: a TOML file plus `CLIENTELE_*` environment overrides ([`env`]), validated
//! at start-up with every problem listed at once, each naming its key (unknown keys included).
//!
//! This module is the load-and-validate driver; the sections live in their own modules:
//! [`server`], [`source`] (customer-user and customer sources, tagged by `kind`), [`map`]
//! (attribute maps), [`auth`], [`groups`], [`callers`], and [`secret`] (`*_env` / `*_file`
//! indirection).
//!
//! With no file at all the embedded default applies: one writable SQLite source in
//! `./clientele.db` for customer users and customers, served on `127.0.0.1:50051`.

pub mod auth;
pub mod callers;
pub mod env;
pub mod groups;
pub mod map;
pub mod secret;
pub mod server;
pub mod source;

use std::{fmt, path::Path, time::Duration};

use serde::{Deserialize, Deserializer};

pub use auth::{
    Argon2Config, AuthBackendConfig, AuthConfig, AuthSettings, PasswordPolicyConfig,
    RateLimitConfig, TwoFactorConfig, PENDING_TOTP_PREFERENCE,
};
pub use callers::CallerConfig;
pub use env::ENV_PREFIX;
pub use groups::{GroupSettings, GroupsConfig};
pub use map::{MapEntry, ResolvedMap};
pub use secret::REDACTED;
pub use server::{ServerConfig, TlsConfig};
pub use source::{
    Backend, BackendConfig, CustomerSourceConfig, CustomerSourceSettings, LdapBackend, LdapKeys,
    LdapScope, SearchIndexMode, SourceKind, SourceSettings, SqlBackend, SqlKeys, UserKeys,
    UserSourceConfig, UserSourceSettings,
};

/// The default database of the embedded configuration.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://clientele.db";

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

/// The configuration after validation: what the application is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerConfig,
    pub user_sources: Vec<UserSourceSettings>,
    pub customer_sources: Vec<CustomerSourceSettings>,
    /// `None` when no SQL database is available for them.
    pub groups: Option<GroupSettings>,
    pub auth: AuthSettings,
    pub access: crate::access::Access,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Names in a list (sources, callers) must be unique; each repeat is a problem at its position.
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

    /// Parses TOML text with environment overrides; unknown keys and keys of the other kind of
    /// source are problems, all listed (by `validate`). Fails at once only when the text is no
    /// TOML or a value has the wrong type.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut value: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError(vec![format!("config file: {e}")]))?;
        let mut problems = Vec::new();
        env::apply_overrides(&mut value, env, &mut problems);
        source::check_source_keys(&mut value, &mut problems);
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
        server::check_server(&self.server, &mut problems);
        let user_sources = source::resolve_user_sources(self.customer_user_sources, &mut problems);
        let customer_sources =
            source::resolve_customer_sources(self.customer_sources, &user_sources, &mut problems);
        let groups = groups::resolve_groups(&self.groups, &user_sources, &mut problems);
        let auth = auth::resolve_auth(&self.auth, &user_sources, &mut problems);
        let access = callers::resolve_callers(&self.callers, &mut problems);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Attr, UserField};

    fn none() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn no_config_is_the_embedded_default() {
        let s = Config::from_toml("", none()).unwrap().validate().unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:50051");
        assert_eq!(s.user_sources.len(), 1);
        assert_eq!(s.user_sources[0].url, DEFAULT_SQLITE_URL);
        assert_eq!(s.user_sources[0].sql().unwrap().table, "customer_user");
        assert_eq!(
            s.customer_sources[0].sql().unwrap().table,
            "customer_company"
        );
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
    fn two_factor_defaults_and_checks() {
        let s = Config::from_toml("", none()).unwrap().validate().unwrap();
        let tf = &s.auth.two_factor;
        assert!(!tf.enabled && tf.allow_empty_secret && tf.allow_previous_token);
        assert_eq!(
            (tf.issuer.as_str(), tf.secret_preference.as_str()),
            ("Clientele", "UserGoogleAuthenticatorSecretKey")
        );
        let toml =
            "[auth.two_factor]\nenabled = true\nissuer = \"a:b\"\nsecret_preference = \"\"\n";
        let err = Config::from_toml(toml, none())
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.0.iter().any(|p| p.contains("two_factor.issuer")),
            "{err}"
        );
        assert!(
            err.0
                .iter()
                .any(|p| p.contains("two_factor.secret_preference")),
            "{err}"
        );
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

    fn problems(toml: &str) -> Vec<String> {
        Config::from_toml(toml, none())
            .unwrap()
            .validate()
            .unwrap_err()
            .0
    }

    #[test]
    fn a_base_dn_on_a_sql_source_names_the_key_and_the_source() {
        let p = problems(
            r#"
            [[customer_user_sources]]
            name = "db"
            kind = "sql"
            url = "sqlite://a.db"
            base_dn = "dc=example"
        "#,
        );
        assert_eq!(
            p,
            vec![r#"customer_user_sources[0] ("db"): key "base_dn" is for kind = "ldap" sources"#]
        );
    }

    #[test]
    fn a_table_on_an_ldap_source_names_the_key_and_the_source() {
        let p = problems(
            r#"
            customer_sources = []
            [[customer_user_sources]]
            name = "sql"
            kind = "sql"
            url = "sqlite://a.db"
            [[customer_user_sources]]
            name = "dir"
            kind = "ldap"
            url = "ldap://127.0.0.1"
            base_dn = "dc=example"
            table = "customer_user"
            url_env = "X"
        "#,
        );
        assert_eq!(
            p,
            vec![
                r#"customer_user_sources[1] ("dir"): key "table" is for kind = "sql" sources"#,
                r#"customer_user_sources[1] ("dir"): key "url_env" is for kind = "sql" sources"#,
            ]
        );
        let p = problems(
            r#"
            [[customer_sources]]
            name = "companies"
            kind = "ldap"
            url = "ldap://127.0.0.1"
            base_dn = "dc=example"
            foreign_db = true
            name_join = "-"
        "#,
        );
        assert!(
            p.contains(&r#"customer_sources[0] ("companies"): key "foreign_db" is for kind = "sql" sources"#.to_owned()),
            "{p:?}"
        );
        // Keys of customer-user sources are unknown on customer sources.
        assert!(
            p.contains(&"customer_sources[0].name_join: unknown key".to_owned()),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_source_keys_are_reported_with_the_others() {
        let p = problems(
            r#"
            [server]
            listen = "nowhere"
            [[customer_user_sources]]
            name = "a"
            kind = "sql"
            url = "sqlite://a.db"
            list_limt = 5
        "#,
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|x| x.contains("server.listen")), "{p:?}");
        assert!(
            p.contains(&"customer_user_sources[0].list_limt: unknown key".to_owned()),
            "{p:?}"
        );
    }

    #[test]
    fn kind_specific_settings_are_resolved_per_kind() {
        let toml = r#"
            [[customer_user_sources]]
            name = "db"
            kind = "sql"
            url = "sqlite://a.db"
            table = "users"
            migrate = false
            foreign_db = true
            [[customer_user_sources]]
            name = "dir"
            kind = "ldap"
            url = "ldap://one"
            urls = ["ldap://two"]
            base_dn = "dc=example"
            scope = "one"
            [[customer_sources]]
            name = "companies"
            kind = "ldap"
            url = "ldap://one"
            base_dn = "dc=example"
        "#;
        let s = Config::from_toml(toml, none()).unwrap().validate().unwrap();
        let sql = s.user_sources[0].sql().unwrap();
        assert_eq!(
            (sql.table.as_str(), sql.migrate, sql.foreign_db),
            ("users", false, true)
        );
        assert!(s.user_sources[0].ldap().is_none());
        let ldap = s.user_sources[1].ldap().unwrap();
        assert_eq!(ldap.urls, ["ldap://one", "ldap://two"]);
        assert_eq!(ldap.scope, LdapScope::OneLevel);
        assert_eq!(s.user_sources[1].url, "ldap://one");
        // The directory's store: the first SQL source's database.
        assert_eq!(s.user_sources[1].store_url, "sqlite://a.db");
        assert_eq!(
            s.user_sources[1].map.field_column(UserField::Login),
            Some("uid")
        );
        assert_eq!(s.customer_sources[0].kind(), SourceKind::Ldap);
        let g = s.groups.unwrap();
        assert_eq!((g.url.as_str(), g.migrate), ("sqlite://a.db", false));
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let pw_file = dir.path().join("bind.pw");
        std::fs::write(&pw_file, "Bind-Secret-7\n").unwrap();
        let token_hash = "ab".repeat(32);
        let toml = format!(
            r#"
            [[customer_user_sources]]
            name = "db"
            kind = "sql"
            url = "postgres://otrs:Db-Secret-1@db.example:5432/otrs?sslmode=require&password=Q-Secret-2"
            [[customer_user_sources]]
            name = "dir"
            kind = "ldap"
            url = "ldap://ldap.example"
            base_dn = "dc=example"
            bind_dn = "cn=reader,dc=example"
            bind_password_file = "{}"
            store_url = "mysql://store:Store-Secret-3@store.example/otrs"
            [groups]
            url = "postgres://groups:Groups-Secret-4@db.example/otrs"
            [[callers]]
            name = "portal"
            token_sha256 = "{token_hash}"
            scopes = ["admin"]
        "#,
            pw_file.display()
        );
        let config = Config::from_toml(&toml, none()).unwrap();
        let raw = format!("{config:?}");
        let settings = config.validate().unwrap();
        // The bind password is readable (validation read it) but never printed.
        assert_eq!(
            settings.user_sources[1]
                .ldap()
                .unwrap()
                .bind_password()
                .unwrap(),
            "Bind-Secret-7"
        );
        let resolved = format!("{settings:?} {:#?}", settings);
        for text in [raw, resolved] {
            for secret in [
                "Db-Secret-1",
                "Q-Secret-2",
                "Bind-Secret-7",
                "Store-Secret-3",
                "Groups-Secret-4",
                &token_hash,
                "171, 171, 171",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            // What is not secret stays, so the output still says which database is meant.
            assert!(
                text.contains("otrs:[redacted]@db.example:5432/otrs"),
                "{text}"
            );
            assert!(text.contains("sslmode=require"), "{text}");
        }
    }

    #[test]
    fn urls_are_redacted_but_stay_recognisable() {
        use secret::redact_url;
        assert_eq!(
            redact_url("postgres://u:p@h/db"),
            "postgres://u:[redacted]@h/db"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(
            redact_url("sqlite://clientele.db?mode=rwc"),
            "sqlite://clientele.db?mode=rwc"
        );
        assert_eq!(
            redact_url("postgres://h/db?user=u&Password=p#x"),
            "postgres://h/db?user=u&Password=[redacted]#x"
        );
        assert_eq!(redact_url("mysql://u:p:q@w@h"), "mysql://u:[redacted]@h");
    }

    #[test]
    fn request_limits_have_defaults_and_must_be_positive() {
        let s = Config::from_toml("", none()).unwrap().validate().unwrap();
        assert_eq!(
            (
                s.server.max_request_bytes,
                s.server.max_query_chars,
                s.server.max_query_terms,
                s.auth.rate_limit.max_keys
            ),
            (4 * 1024 * 1024, 1000, 32, 100_000)
        );
        let p = problems(
            "[server]\nmax_request_bytes = 0\nmax_query_chars = 0\nmax_query_terms = 0\n[auth.rate_limit]\nmax_keys = 0\n",
        );
        for key in [
            "server.max_request_bytes",
            "server.max_query_chars",
            "server.max_query_terms",
            "auth.rate_limit.max_keys",
        ] {
            assert!(p.iter().any(|x| x.starts_with(key)), "{key}: {p:?}");
        }
    }

    #[test]
    fn the_example_configuration_validates() {
        // The secrets the example takes from the environment (names no other test uses).
        for var in ["CLIENTELE_PG_URL", "CLIENTELE_ZNUNY_URL"] {
            std::env::set_var(var, "postgres://u@localhost/db");
        }
        let text = include_str!("../../deploy/config.example.toml");
        let s = Config::from_toml(text, none()).unwrap().validate().unwrap();
        assert!(s.user_sources.len() >= 2);
    }
}
