//! `[groups]`: where groups and grants are stored (by default the database of the first SQL
//! customer-user source) and the OTRS group rules, with their checks.

use serde::Deserialize;

use super::{map::check_identifier, secret, UserSourceSettings};

/// `[groups]`: where groups and grants are stored, and the OTRS group rules.
#[derive(Clone, Deserialize)]
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
#[derive(Clone)]
pub struct GroupSettings {
    pub url: String,
    pub migrate: bool,
    pub table: String,
    pub customer_group_support: bool,
    pub always_groups: Vec<String>,
    pub customer_always_groups: Vec<String>,
    pub permissions: Vec<String>,
}

// `Debug` without the passwords a URL may hold.
secret::debug_redacting_urls!(GroupsConfig { url_env, url_file, migrate, table, customer_group_support, always_groups, customer_always_groups, permissions } urls { url });
secret::debug_redacting_urls!(GroupSettings { migrate, table, customer_group_support, always_groups, customer_always_groups, permissions } urls { url });

/// Checks and resolves `[groups]`; `None` when no database can hold them (a problem is listed
/// when an explicit URL cannot be resolved).
pub(super) fn resolve_groups(
    g: &GroupsConfig,
    users: &[UserSourceSettings],
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
            match secret::resolve_url(url.as_deref(), url_env.as_deref(), url_file.as_deref()) {
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
        None => match users.iter().find_map(|u| Some((u, u.sql()?))) {
            Some((first, sql)) => (first.url.clone(), g.migrate.unwrap_or(sql.migrate)),
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
