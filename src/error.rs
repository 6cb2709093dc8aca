//! The one error type of the service, classified where it arises (domain operations, caller
//! access, rate limits) and mapped to a gRPC status in exactly one place (`api::status`).

use std::fmt;

/// One invalid field of a request: the field path (as the API names it) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Everything that can go wrong in a domain operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong; every problem is listed.
    #[error("invalid request: {}", join(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The addressed record does not exist in any source.
    #[error("{kind} {key:?} not found")]
    NotFound { kind: &'static str, key: String },
    /// A record with this unique key already exists.
    #[error("{kind} with {field} {key:?} already exists{}", .source_name.as_deref().map(|s| format!(" in source {s:?}")).unwrap_or_default())]
    AlreadyExists {
        kind: &'static str,
        field: &'static str,
        key: String,
        source_name: Option<String>,
    },
    /// The system is not in a state that allows the operation (e.g. a read-only source).
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    /// No source could answer (all failed, or the one needed is down).
    #[error("{0}")]
    Unavailable(String),
    /// The caller's deadline passed before the operation finished.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A conflicting concurrent change won; the caller may retry.
    #[error("{0}")]
    Aborted(String),
    /// The caller presented no credential, or one that is not a configured caller's.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but lacks the scope the method needs.
    #[error("caller {caller:?} lacks scope {scope} for {method}")]
    PermissionDenied {
        caller: String,
        scope: &'static str,
        method: String,
    },
    /// Too many attempts of one kind (`what`: e.g. "this login"); retry after `retry_after`.
    #[error("too many authentication attempts for {what}; retry later")]
    RateLimited {
        what: &'static str,
        retry_after: std::time::Duration,
    },
    /// The server is saturated with work of one kind (e.g. the password-hashing queue is
    /// full); nothing was done, and the same call may succeed shortly.
    #[error("{0}")]
    Overloaded(String),
    /// A bug or an unexpected backend answer; logged with its cause, returned generically.
    #[error("internal error: {0}")]
    Internal(String),
}

fn join(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A single-field `InvalidArgument`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(kind: &'static str, key: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            key: key.into(),
        }
    }
}

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
