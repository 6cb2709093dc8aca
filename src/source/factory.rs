//! The source factory: builds every source from the validated [`Settings`] — one constructor per
//! kind (SQL and LDAP customer-user sources, SQL and LDAP customer sources, the group store) —
//! after declaring what each needs from its database (tables, locks, index DDL) in one
//! [`DbRegistry`] and opening every database once.
//!
//! Databases open lazily: building fails only on configuration that cannot work at all (a
//! malformed URL, an unreadable LDAP bind password); an unreachable server is reported later and
//! retried.

use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::clock::Clock;
use crate::config::{
    Backend, CustomerSourceSettings, GroupSettings, Settings, SqlBackend, UserSourceSettings,
};
use crate::directory::{Bounded, Groups};
use crate::domain::group::Policy;
use crate::source::{
    ldap::{customer::LdapCustomerSource, user::LdapUserSource},
    sql::{
        customer::SqlCustomerSource,
        groups::SqlGroupStore,
        user::{index_statements_for, CustomerIdRef, SqlUserSource},
        Db, DbRegistry, Dialect, IndexDdl, SourceTable, TableKind,
    },
    CustomerSourceBundle, UserSourceBundle,
};

/// Every source, ready for the directory, and the databases behind them (sorted by URL).
pub struct Sources {
    pub users: Vec<Bounded<UserSourceBundle>>,
    pub customers: Vec<Bounded<CustomerSourceBundle>>,
    pub groups: Option<Groups>,
    pub databases: Vec<(String, Arc<Db>)>,
}

/// The open databases by URL.
type Databases = HashMap<String, Arc<Db>>;

/// Opens every database and builds every source, in configuration order; caches and every
/// other time-dependent rule read `clock`.
pub fn build(settings: &Settings, clock: &Arc<dyn Clock>) -> Result<Sources, String> {
    let dbs = open_databases(settings)?;
    let mut sql_users: Vec<(&str, Arc<SqlUserSource>)> = Vec::new();
    let mut users = Vec::new();
    for s in &settings.user_sources {
        let source = match &s.backend {
            Backend::Sql(_) => {
                let sql = sql_user_source(s, &dbs)?;
                sql_users.push((&s.url, sql.clone()));
                crate::source::index::user_bundle(sql)
            }
            Backend::Ldap(_) => ldap_user_source(s, &dbs)?,
        };
        users.push(Bounded {
            source: cached(s, source, clock),
            timeout: s.settings.call_timeout,
        });
    }
    let mut customers = Vec::new();
    for s in &settings.customer_sources {
        let source = match &s.backend {
            Backend::Sql(_) => {
                // Writable customer-user tables on the same database follow a customer rename.
                let colocated = sql_users
                    .iter()
                    .filter(|(url, u)| *url == s.url && u.writable())
                    .filter_map(|(_, u)| u.customer_id_ref())
                    .collect();
                sql_customer_source(s, &dbs, colocated)?
            }
            Backend::Ldap(_) => ldap_customer_source(s)?,
        };
        customers.push(Bounded {
            source,
            timeout: s.settings.call_timeout,
        });
    }
    let groups = settings
        .groups
        .as_ref()
        .map(|g| group_store(g, &dbs))
        .transpose()?;
    let mut databases: Vec<(String, Arc<Db>)> = dbs.into_iter().collect();
    databases.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Sources {
        users,
        customers,
        groups,
        databases,
    })
}

/// A SQL customer-user source on its database.
pub fn sql_user_source(
    s: &UserSourceSettings,
    dbs: &Databases,
) -> Result<Arc<SqlUserSource>, String> {
    Ok(Arc::new(SqlUserSource::new(s.clone(), db(dbs, &s.url)?)?))
}

/// An LDAP customer-user source, with its SQL store of preferences and memberships.
pub fn ldap_user_source(
    s: &UserSourceSettings,
    dbs: &Databases,
) -> Result<UserSourceBundle, String> {
    let source = LdapUserSource::new(s.clone(), db(dbs, &s.store_url)?)
        .map_err(|e| format!("customer-user source {:?}: {e}", s.settings.name))?;
    Ok(Arc::new(source).into_bundle())
}

/// A SQL customer source; `colocated` are the customer-user tables a rename also updates.
pub fn sql_customer_source(
    s: &CustomerSourceSettings,
    dbs: &Databases,
    colocated: Vec<CustomerIdRef>,
) -> Result<CustomerSourceBundle, String> {
    let source = SqlCustomerSource::new(s.clone(), db(dbs, &s.url)?, colocated)?;
    Ok(crate::source::index::customer_bundle(Arc::new(source)))
}

/// An LDAP customer source.
pub fn ldap_customer_source(s: &CustomerSourceSettings) -> Result<CustomerSourceBundle, String> {
    let source = LdapCustomerSource::new(s.clone())
        .map_err(|e| format!("customer source {:?}: {e}", s.settings.name))?;
    Ok(Arc::new(source).into_bundle())
}

/// The group store and the OTRS group rules.
pub fn group_store(g: &GroupSettings, dbs: &Databases) -> Result<Groups, String> {
    Ok(Groups {
        store: Arc::new(SqlGroupStore::new(db(dbs, &g.url)?, &g.table)),
        policy: Policy {
            customer_group_support: g.customer_group_support,
            always_groups: g.always_groups.clone(),
            customer_always_groups: g.customer_always_groups.clone(),
            keys: g.permissions.clone(),
        },
    })
}

/// With a positive `cache_ttl`, the source's reads behind a per-replica cache.
fn cached(
    s: &UserSourceSettings,
    source: UserSourceBundle,
    clock: &Arc<dyn Clock>,
) -> UserSourceBundle {
    match s.settings.cache_ttl {
        Some(ttl) => source.with_cache(
            crate::source::matching::case_rule(&s.settings),
            ttl,
            s.settings.cache_size,
            clock.clone(),
        ),
        None => source,
    }
}

fn db(dbs: &Databases, url: &str) -> Result<Arc<Db>, String> {
    dbs.get(url)
        .cloned()
        .ok_or_else(|| format!("no database for {url}"))
}

/// What one user of a database needs from it.
struct Need<'a> {
    pool_size: u32,
    connect_timeout: Duration,
    /// `Some`: Clientele owns this table (`migrate`): create it, lock by its name.
    table: Option<(TableKind, &'a str)>,
    /// Plain migration of the side tables (an LDAP source's store) without a table of its own.
    migrate: bool,
    indexes: Vec<IndexDdl>,
}

/// Declares every database the sources need, merging the needs of sources on the same URL
/// (largest pool and connect timeout win; any owner migrates), and opens them.
fn open_databases(settings: &Settings) -> Result<Databases, String> {
    let mut registry = DbRegistry::default();
    for s in &settings.user_sources {
        let need = match &s.backend {
            Backend::Sql(sql) => owned(
                sql,
                s.settings.pool_size,
                s.settings.connect_timeout,
                TableKind::CustomerUser,
                || Dialect::of_url(&s.url).map_or_else(Vec::new, |d| index_statements_for(s, d)),
            ),
            Backend::Ldap(_) => store_of(s.settings.connect_timeout),
        };
        want(&mut registry, &s.store_url, need);
    }
    for s in &settings.customer_sources {
        if let Backend::Sql(sql) = &s.backend {
            let need = owned(
                sql,
                s.settings.pool_size,
                s.settings.connect_timeout,
                TableKind::CustomerCompany,
                Vec::new,
            );
            want(&mut registry, &s.url, need);
        }
    }
    if let Some(g) = &settings.groups {
        let need = Need {
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            table: g.migrate.then_some((TableKind::Groups, g.table.as_str())),
            migrate: false,
            indexes: Vec::new(),
        };
        want(&mut registry, &g.url, need);
    }
    registry.open()
}

/// The need of a SQL source on its table; index DDL only for tables Clientele owns.
fn owned<'a>(
    sql: &'a SqlBackend,
    pool_size: u32,
    connect_timeout: Duration,
    kind: TableKind,
    indexes: impl FnOnce() -> Vec<IndexDdl>,
) -> Need<'a> {
    Need {
        pool_size,
        connect_timeout,
        table: sql.migrate.then_some((kind, sql.table.as_str())),
        migrate: false,
        indexes: if sql.migrate { indexes() } else { Vec::new() },
    }
}

/// The need of an LDAP source: only the SQL store of preferences and memberships.
fn store_of(connect_timeout: Duration) -> Need<'static> {
    Need {
        pool_size: 2,
        connect_timeout,
        table: None,
        migrate: true,
        indexes: Vec::new(),
    }
}

/// The one place a need is merged into the registry.
fn want(registry: &mut DbRegistry, url: &str, need: Need<'_>) {
    registry.want(url, |spec| {
        spec.pool_size = spec.pool_size.max(need.pool_size);
        spec.connect_timeout = spec.connect_timeout.max(need.connect_timeout);
        spec.migrate |= need.migrate;
        if let Some((kind, name)) = need.table {
            spec.migrate = true;
            spec.tables.push(SourceTable {
                kind,
                name: name.to_owned(),
            });
            spec.lock_names.push(name.to_owned());
        }
        spec.indexes.extend(need.indexes);
    });
}
