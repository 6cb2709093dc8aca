//! The one place errors become gRPC statuses (google.rpc error model with details): domain
//! errors, refused callers and rate limits alike.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

/// The `ErrorInfo.domain` of every status this service returns.
pub const ERROR_DOMAIN: &str = "clientele.v1";

fn info(details: &mut ErrorDetails, reason: &str, metadata: HashMap<String, String>) {
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
}

/// Maps an error to a status with `ErrorInfo` (a stable `reason`: `INVALID_ARGUMENT`,
/// `<KIND>_NOT_FOUND`, `ALREADY_EXISTS`, the precondition's own reason, `SOURCE_UNAVAILABLE`,
/// `DEADLINE_EXCEEDED`, `CONCURRENT_CHANGE`, `UNAUTHENTICATED`, `SCOPE_MISSING` (metadata
/// `caller`, `scope`, `method`), `RATE_LIMITED` (with `RetryInfo`, at least 1 s), `INTERNAL`) and,
/// for invalid requests, `BadRequest` field violations. Internal errors are logged with their
/// cause and returned with a generic message.
pub fn to_status(err: Error) -> Status {
    let mut details = ErrorDetails::new();
    let (code, message) = match &err {
        Error::InvalidArgument(violations) => {
            for v in violations {
                details.add_bad_request_violation(&v.field, &v.description);
            }
            info(&mut details, "INVALID_ARGUMENT", HashMap::new());
            (Code::InvalidArgument, err.to_string())
        }
        Error::NotFound { kind, key } => {
            let reason = format!("{}_NOT_FOUND", kind.replace(' ', "_").to_uppercase());
            info(
                &mut details,
                &reason,
                HashMap::from([("key".to_owned(), key.clone())]),
            );
            (Code::NotFound, err.to_string())
        }
        Error::AlreadyExists {
            field,
            key,
            source_name,
            ..
        } => {
            let mut meta = HashMap::from([
                ("field".to_owned(), (*field).to_owned()),
                ("key".to_owned(), key.clone()),
            ]);
            if let Some(s) = source_name {
                meta.insert("source".to_owned(), s.clone());
            }
            info(&mut details, "ALREADY_EXISTS", meta);
            (Code::AlreadyExists, err.to_string())
        }
        Error::FailedPrecondition { reason, message } => {
            info(&mut details, reason, HashMap::new());
            (Code::FailedPrecondition, message.clone())
        }
        Error::Unavailable(message) => {
            info(&mut details, "SOURCE_UNAVAILABLE", HashMap::new());
            (Code::Unavailable, message.clone())
        }
        Error::DeadlineExceeded(_) => {
            info(&mut details, "DEADLINE_EXCEEDED", HashMap::new());
            (Code::DeadlineExceeded, err.to_string())
        }
        Error::Aborted(message) => {
            info(&mut details, "CONCURRENT_CHANGE", HashMap::new());
            (Code::Aborted, message.clone())
        }
        Error::Unauthenticated(message) => {
            info(&mut details, "UNAUTHENTICATED", HashMap::new());
            (Code::Unauthenticated, message.clone())
        }
        Error::PermissionDenied {
            caller,
            scope,
            method,
        } => {
            info(
                &mut details,
                "SCOPE_MISSING",
                HashMap::from([
                    ("caller".to_owned(), caller.clone()),
                    ("scope".to_owned(), (*scope).to_owned()),
                    ("method".to_owned(), method.clone()),
                ]),
            );
            (Code::PermissionDenied, err.to_string())
        }
        Error::RateLimited { retry_after, .. } => {
            details.set_retry_info(Some((*retry_after).max(Duration::from_secs(1))));
            info(&mut details, "RATE_LIMITED", HashMap::new());
            (Code::ResourceExhausted, err.to_string())
        }
        Error::Overloaded(message) => {
            details.set_retry_info(Some(Duration::from_secs(1)));
            info(&mut details, "OVERLOADED", HashMap::new());
            (Code::ResourceExhausted, message.clone())
        }
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error");
            info(&mut details, "INTERNAL", HashMap::new());
            (
                Code::Internal,
                "internal error; the server log has the cause".to_owned(),
            )
        }
    };
    Status::with_error_details(code, message, details)
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        to_status(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldViolation;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let s = to_status(Error::InvalidArgument(vec![
            FieldViolation::new("a", "bad"),
            FieldViolation::new("b", "worse"),
        ]));
        assert_eq!(s.code(), Code::InvalidArgument);
        let d = s.get_error_details();
        let br = d.bad_request().unwrap();
        assert_eq!(br.field_violations.len(), 2);
        assert_eq!(br.field_violations[1].field, "b");
        assert_eq!(d.error_info().unwrap().reason, "INVALID_ARGUMENT");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let s = to_status(Error::Internal("password=secret".into()));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("secret"));
    }

    #[test]
    fn access_and_rate_limit_errors_have_stable_reasons() {
        let s = to_status(Error::Unauthenticated("unknown bearer token".into()));
        assert_eq!(s.code(), Code::Unauthenticated);
        assert_eq!(s.message(), "unknown bearer token");
        assert_eq!(
            s.get_error_details().error_info().unwrap().reason,
            "UNAUTHENTICATED"
        );
        let s = to_status(Error::PermissionDenied {
            caller: "mail".into(),
            scope: "customer_users:write",
            method: "/clientele.v1.CustomerUserService/CreateCustomerUser".into(),
        });
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(s.message().contains("lacks scope customer_users:write"));
        let info = s.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "SCOPE_MISSING");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata["caller"], "mail");
        let s = to_status(Error::Overloaded("queue full".into()));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.get_error_details().error_info().unwrap().reason,
            "OVERLOADED"
        );
        let s = to_status(Error::RateLimited {
            what: "this login",
            retry_after: Duration::from_millis(10),
        });
        assert_eq!(s.code(), Code::ResourceExhausted);
        let d = s.get_error_details();
        assert_eq!(d.error_info().unwrap().reason, "RATE_LIMITED");
        assert_eq!(
            d.retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn not_found_reason_names_the_kind() {
        let s = to_status(Error::not_found("customer user", "x"));
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(
            s.get_error_details().error_info().unwrap().reason,
            "CUSTOMER_USER_NOT_FOUND"
        );
    }
}
