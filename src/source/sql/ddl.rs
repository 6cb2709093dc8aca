//! All DDL: Clientele's own tables, customer-user/customer/groups tables under a configured name
//! (from `migrations/templates/`), and the index DDL of lookups and searches per engine.

use super::{Dialect, IndexDdl, MariaDbTrigrams, SourceTable, SqliteSearch, TableKind};

/// `CREATE TABLE` statements for a customer-user or customer table with a non-default name,
/// with OTRS's columns and sizes (the default tables come from the migrations).
pub(super) fn create_table_sql(dialect: Dialect, table: &SourceTable) -> Vec<String> {
    let template = match (dialect, table.kind) {
        (Dialect::Postgres, TableKind::CustomerUser) => {
            include_str!("../../../migrations/templates/postgres/customer_user.sql")
        }
        (Dialect::MySql, TableKind::CustomerUser) => {
            include_str!("../../../migrations/templates/mysql/customer_user.sql")
        }
        (Dialect::Sqlite, TableKind::CustomerUser) => {
            include_str!("../../../migrations/templates/sqlite/customer_user.sql")
        }
        (Dialect::Postgres, TableKind::CustomerCompany) => {
            include_str!("../../../migrations/templates/postgres/customer_company.sql")
        }
        (Dialect::MySql, TableKind::CustomerCompany) => {
            include_str!("../../../migrations/templates/mysql/customer_company.sql")
        }
        (Dialect::Sqlite, TableKind::CustomerCompany) => {
            include_str!("../../../migrations/templates/sqlite/customer_company.sql")
        }
        (Dialect::Postgres, TableKind::Groups) => {
            include_str!("../../../migrations/templates/postgres/groups.sql")
        }
        (Dialect::MySql, TableKind::Groups) => {
            include_str!("../../../migrations/templates/mysql/groups.sql")
        }
        (Dialect::Sqlite, TableKind::Groups) => {
            include_str!("../../../migrations/templates/sqlite/groups.sql")
        }
    };
    split_statements(&template.replace("{table}", &table.name))
}

/// The indexes that make lookups and the search grammar fast on `table`, by each engine's own
/// means (`eq_cols`: login, customer id and postmaster fields, compared for equality;
/// `substring_cols`: the search fields, matched with `%x%`):
///
/// - PostgreSQL: `LOWER(col)` B-trees and `pg_trgm` GIN indexes on `LOWER(col)`;
/// - SQLite: `LOWER(col)` B-trees and an FTS5 trigram index (see [`super::search_index`]);
/// - MySQL/MariaDB: B-trees on the bare columns, which their case-insensitive (`_ci`) collations
///   compare case-insensitively (the SQL compares bare columns where the collation is `_ci`,
///   see [`super::Db::case_insensitive_columns`]). MariaDB has no index that serves `%x%` (no trigram
///   or n-gram index, no expression indexes), so substring search scans there.
pub fn index_statements(
    dialect: Dialect,
    table: &str,
    eq_cols: &[&str],
    substring_cols: &[&str],
) -> Vec<IndexDdl> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in eq_cols.iter().filter(|c| seen.insert(**c)) {
        out.push(match dialect {
            Dialect::MySql => IndexDdl::MySqlIndex {
                table: table.to_owned(),
                name: format!("{table}_{c}_ci"),
                column: (*c).to_owned(),
            },
            Dialect::Postgres | Dialect::Sqlite => IndexDdl::Statement(format!(
                "CREATE INDEX IF NOT EXISTS {table}_{c}_lower ON {table} (LOWER({c}))"
            )),
        });
    }
    match dialect {
        Dialect::Postgres if !substring_cols.is_empty() => {
            out.push(IndexDdl::Statement(
                "CREATE EXTENSION IF NOT EXISTS pg_trgm".to_owned(),
            ));
            let mut seen = std::collections::BTreeSet::new();
            for c in substring_cols.iter().filter(|c| seen.insert(**c)) {
                out.push(IndexDdl::Statement(format!(
                    "CREATE INDEX IF NOT EXISTS {table}_{c}_trgm ON {table} USING gin (LOWER({c}) gin_trgm_ops)"
                )));
            }
        }
        Dialect::Sqlite => {
            out.extend(SqliteSearch::new(table, substring_cols).map(IndexDdl::SqliteSearch));
        }
        Dialect::MySql => {
            out.extend(MariaDbTrigrams::new(table, substring_cols).map(IndexDdl::MariaDbTrigrams));
        }
        Dialect::Postgres => {}
    }
    out
}

/// The B-tree on `change_time` that the in-memory search index's refresh reads the rows
/// changed since its previous read through (`source::index`; without it every refresh scans
/// the table: at 1,000,000 rows, once a second).
pub(super) fn change_time_index(dialect: Dialect, table: &str) -> IndexDdl {
    match dialect {
        Dialect::MySql => IndexDdl::MySqlIndex {
            table: table.to_owned(),
            name: format!("{table}_change_time"),
            column: "change_time".to_owned(),
        },
        Dialect::Postgres | Dialect::Sqlite => IndexDdl::Statement(format!(
            "CREATE INDEX IF NOT EXISTS {table}_change_time ON {table} (change_time)"
        )),
    }
}

/// Clientele's own tables (`clientele_write_lock`, `clientele_login_state`,
/// `clientele_totp_step`).
pub(super) fn own_tables_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            include_str!("../../../migrations/templates/postgres/clientele_own.sql")
        }
        Dialect::MySql => include_str!("../../../migrations/templates/mysql/clientele_own.sql"),
        Dialect::Sqlite => include_str!("../../../migrations/templates/sqlite/clientele_own.sql"),
    }
}

pub(super) fn split_statements(script: &str) -> Vec<String> {
    script
        .split(';')
        .map(str::trim)
        .filter(|s| {
            s.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        })
        .map(str::to_owned)
        .collect()
}
