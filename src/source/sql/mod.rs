//! SQL sources over PostgreSQL, MySQL/MariaDB and SQLite (sqlx `Any`), on OTRS's own tables.
//!
//! Principle: SQL narrows, Rust decides. Every lookup and search is rendered as a condition that
//! matches *at least* the wanted rows on every dialect (SQLite's `LOWER()` only folds ASCII,
//! MySQL's `_ci` collations also fold accents), and each row is then checked exactly in Rust with
//! the same rules everywhere ([`crate::domain::matching`]). Values are always bound; identifiers
//! come from the validated configuration only.
//!
//! This file is the index; each concern has its file, re-exported here:
//! - `dialect`: [`Dialect`], how each engine spells casts, epochs, folded order, `LIKE` escapes;
//! - `statement`: the statement builder [`Sql`], [`Val`], the grammar rendered as SQL;
//! - `rows`: reading rows of either driver ([`DbRow`]) and classifying database errors;
//! - `db`: pools ([`Db`], [`DbRegistry`]), migrations, write locks, [`redact`];
//! - `ddl`: all DDL, owned tables and [`index_statements`];
//! - [`search_index`]: the SQLite FTS5 and MariaDB trigram search indexes;
//! - [`admin`]: the `seed` and `add-indexes` commands, over the data set of [`seed`];
//! - [`table`], [`user`], [`customer`], [`groups`], [`side`]: the sources and stores.

pub mod admin;
pub mod columns;
pub mod customer;
mod db;
mod ddl;
mod dialect;
pub mod groups;
mod rows;
pub mod search_index;
pub mod seed;
pub mod side;
mod statement;
pub mod table;
pub mod user;

pub use db::{redact, Db, DbRegistry, DbSpec, SourceTable, TableKind};
pub use ddl::index_statements;
pub use dialect::Dialect;
pub use rows::DbRow;
pub(crate) use rows::{int_at, source_error, text_at, time_at, write_error};
pub use search_index::{IndexDdl, MariaDbTrigrams, SearchIndex, SqliteSearch};
pub use statement::{audit_columns, Sql, Val};
