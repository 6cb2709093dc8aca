//! Reading result rows of either driver ([`DbRow`]: sqlx `Any` or PostgreSQL's native rows)
//! and classifying database errors for reads ([`source_error`]) and writes ([`write_error`]).

use sqlx::{any::AnyRow, Row};

use crate::domain::Timestamp;
use crate::error::Error;
use crate::source::SourceError;

/// Reads a text column that may be NULL.
pub(crate) fn text_at<R: DbRow + ?Sized>(row: &R, idx: usize) -> Result<String, SourceError> {
    row.text(idx)
        .map(Option::unwrap_or_default)
        .map_err(|e| SourceError::Failed(format!("column {idx}: {e}")))
}

/// Reads an integer column that may be NULL.
pub(crate) fn int_at<R: DbRow + ?Sized>(row: &R, idx: usize) -> Result<Option<i64>, SourceError> {
    row.int(idx)
        .map_err(|e| SourceError::Failed(format!("column {idx}: {e}")))
}

pub(crate) fn time_at<R: DbRow + ?Sized>(
    row: &R,
    idx: usize,
) -> Result<Option<Timestamp>, SourceError> {
    int_at(row, idx).map(|v| v.map(Timestamp))
}

/// A result row of either driver: the database-neutral one, or PostgreSQL's own (the hot read
/// path on PostgreSQL skips the conversion of every row into the neutral form).
pub trait DbRow {
    fn text(&self, idx: usize) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, idx: usize) -> Result<Option<i64>, sqlx::Error>;
}

impl DbRow for AnyRow {
    fn text(&self, idx: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(idx)
    }
    fn int(&self, idx: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(idx)
    }
}

impl DbRow for sqlx::postgres::PgRow {
    fn text(&self, idx: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(idx)
    }
    fn int(&self, idx: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(idx)
    }
}

/// Classifies a database error for reads.
pub(crate) fn source_error(e: sqlx::Error) -> SourceError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => SourceError::Unavailable(e.to_string()),
        other => SourceError::Failed(other.to_string()),
    }
}

/// Classifies a database error for writes: unique violations become `AlreadyExists`.
pub(crate) fn write_error(
    e: sqlx::Error,
    kind: &'static str,
    field: &'static str,
    key: &str,
    source: &str,
) -> Error {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return Error::AlreadyExists {
                kind,
                field,
                key: key.to_owned(),
                source_name: Some(source.to_owned()),
            };
        }
        // SQLite busy / MySQL deadlock / PostgreSQL serialization failure: a concurrent writer won.
        let code = db.code().map(|c| c.to_string()).unwrap_or_default();
        if matches!(code.as_str(), "5" | "517" | "1213" | "40001" | "40P01") {
            return Error::Aborted(format!("a concurrent change won, retry: {db}"));
        }
    }
    match source_error(e) {
        SourceError::Unavailable(m) => Error::Unavailable(format!("source {source:?}: {m}")),
        SourceError::Failed(m) => Error::Internal(format!("source {source:?}: {m}")),
    }
}
