//! The SQL dialects (PostgreSQL, MySQL/MariaDB, SQLite) and how each spells casts, epoch
//! seconds, case-folded ordering and `LIKE` escapes.

/// The SQL dialect of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    /// The dialect of a connection URL.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?;
        match scheme {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    /// Whether the dialect's `LOWER()` folds non-ASCII letters.
    pub(super) fn unicode_lower(self) -> bool {
        !matches!(self, Self::Sqlite)
    }

    /// `ESCAPE` clause for LIKE patterns escaped with a backslash.
    pub(super) fn like_escape(self) -> &'static str {
        match self {
            Self::MySql => " ESCAPE '\\\\'",
            _ => " ESCAPE '\\'",
        }
    }

    /// A text column read as text whatever its declared type.
    pub(super) fn text(self, column: &str) -> String {
        match self {
            Self::MySql => format!("CAST({column} AS CHAR)"),
            _ => format!("CAST({column} AS TEXT)"),
        }
    }

    /// An integer column read as a 64-bit integer.
    pub(super) fn int(self, column: &str) -> String {
        match self {
            Self::MySql => format!("CAST({column} AS SIGNED)"),
            Self::Postgres => format!("CAST({column} AS BIGINT)"),
            Self::Sqlite => format!("CAST({column} AS INTEGER)"),
        }
    }

    /// A timestamp column read as UTC epoch seconds.
    pub(super) fn epoch(self, column: &str) -> String {
        match self {
            // date_part is float arithmetic; EXTRACT computes a numeric, several times slower.
            Self::Postgres => format!("CAST(date_part('epoch', {column}) AS BIGINT)"),
            Self::MySql => format!("CAST(UNIX_TIMESTAMP({column}) AS SIGNED)"),
            Self::Sqlite => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
        }
    }

    /// The text around a bound epoch-seconds integer that makes it the timestamp
    /// [`Self::epoch`] maps to that integer, so that `column >= …` equals
    /// `epoch(column) >= t` and can use an index on the column: PostgreSQL's timestamp without
    /// time zone as UTC wall time, MySQL's in the session's time zone (as `UNIX_TIMESTAMP`
    /// reads it), SQLite's `YYYY-MM-DD HH:MM:SS` text (as `CURRENT_TIMESTAMP` writes it).
    pub(super) fn epoch_param(self) -> (&'static str, &'static str) {
        match self {
            Self::Postgres => (
                "(TIMESTAMP 'epoch' + CAST(",
                " AS BIGINT) * INTERVAL '1 second')",
            ),
            Self::MySql => ("FROM_UNIXTIME(", ")"),
            Self::Sqlite => ("datetime(", ", 'unixepoch')"),
        }
    }

    /// `ORDER BY` expression sorting by the case-folded value in code-point order.
    pub(super) fn order_folded(self, column: &str) -> String {
        match self {
            Self::Postgres => format!("LOWER({column}) COLLATE \"C\""),
            // CONVERT first: a utf8mb3 column (Znuny's `utf8`) cannot take a utf8mb4 collation.
            Self::MySql => format!("CONVERT(LOWER({column}) USING utf8mb4) COLLATE utf8mb4_bin"),
            Self::Sqlite => format!("LOWER({column})"),
        }
    }
}
