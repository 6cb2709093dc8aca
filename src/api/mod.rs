//! gRPC services: thin handlers that check a request into domain types, call the directory and
//! convert the answer back. No SQL, no LDAP here.

pub mod auth;
pub mod codec;
pub mod convert;
pub mod customer;
pub mod customer_user;
pub mod group;
mod paging;
mod redact;
pub mod status;

pub use auth::{AuthApi, RateLimits};
pub use customer::CustomerApi;
pub use customer_user::CustomerUserApi;
pub use group::GroupApi;
