//! Which caller may call which method. Callers authenticate with a bearer token (configured as
//! its SHA-256, never in plain text) or a TLS client certificate (matched by subject CN or DNS
//! name); each has scopes, and every RPC requires one. Health checks and reflection are open.
//! With no callers configured every call is allowed (loopback only, see `app::bind`). A refusal
//! is an [`Error`] (`Unauthenticated` / `PermissionDenied`), made a status in `api::status`.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// A permission a caller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    CustomerUsersRead,
    CustomerUsersWrite,
    CustomersRead,
    CustomersWrite,
    GroupsRead,
    GroupsWrite,
    AuthCheck,
    AuthManage,
    /// Every other scope.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Self::CustomerUsersRead,
        Self::CustomerUsersWrite,
        Self::CustomersRead,
        Self::CustomersWrite,
        Self::GroupsRead,
        Self::GroupsWrite,
        Self::AuthCheck,
        Self::AuthManage,
        Self::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CustomerUsersRead => "customer_users:read",
            Self::CustomerUsersWrite => "customer_users:write",
            Self::CustomersRead => "customers:read",
            Self::CustomersWrite => "customers:write",
            Self::GroupsRead => "groups:read",
            Self::GroupsWrite => "groups:write",
            Self::AuthCheck => "auth:check",
            Self::AuthManage => "auth:manage",
            Self::Admin => "admin",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The scope an RPC needs, by its HTTP/2 path; `None` = open (health, reflection), and
/// `Some(Err(()))` for a path that is no method of ours (the router answers UNIMPLEMENTED).
pub fn required_scope(path: &str) -> Option<Result<Scope, ()>> {
    use Scope::*;
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    if service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.") {
        return None;
    }
    let read_write = |reads: &[&str], read: Scope, write: Scope| {
        if reads.contains(&method) {
            read
        } else {
            write
        }
    };
    Some(Ok(match service {
        "clientele.v1.CustomerUserService" => read_write(
            &[
                "GetCustomerUser",
                "SearchCustomerUsers",
                "ResolveSenders",
                "ListCustomerIds",
                "GetPreferences",
            ],
            CustomerUsersRead,
            CustomerUsersWrite,
        ),
        "clientele.v1.CustomerService" => read_write(
            &[
                "GetCustomer",
                "SearchCustomers",
                "ListCustomerUsersOfCustomer",
            ],
            CustomersRead,
            CustomersWrite,
        ),
        "clientele.v1.GroupService" => read_write(
            &[
                "GetGroup",
                "ListGroups",
                "ListCustomerUserGroups",
                "ListGroupCustomerUsers",
                "GetEffectivePermissions",
            ],
            GroupsRead,
            GroupsWrite,
        ),
        "clientele.v1.AuthService" => read_write(&["Authenticate"], AuthCheck, AuthManage),
        _ => return Some(Err(())),
    }))
}

/// A configured caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    /// SHA-256 of the bearer token.
    pub token_sha256: Option<[u8; 32]>,
    /// Subject CN or DNS name of the client certificate.
    pub client_cert_name: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Caller {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

/// Every configured caller.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub callers: Vec<Caller>,
}

/// Who is calling, as decided by [`Access::check`].
#[derive(Debug, Clone)]
pub struct CallerName(pub String);

/// The names in a DER client certificate: subject CN and DNS SANs.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push((*d).to_owned());
            }
        }
    }
    names
}

impl Access {
    /// Decides a call to `path` with the `authorization` header and the names of a verified
    /// client certificate: the caller, or [`Error::Unauthenticated`] (missing/wrong credential)
    /// or [`Error::PermissionDenied`] (missing scope).
    pub fn check(
        &self,
        path: &str,
        authorization: Option<&str>,
        cert_names: &[String],
    ) -> Result<Option<CallerName>, Error> {
        let Some(scope) = required_scope(path) else {
            return Ok(None);
        };
        if self.callers.is_empty() {
            return Ok(Some(CallerName("anonymous".into())));
        }
        let Ok(scope) = scope else {
            return Ok(None);
        };
        let caller = match authorization {
            Some(value) => {
                let token = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .ok_or_else(|| {
                        Error::Unauthenticated("authorization must be \"Bearer <token>\"".into())
                    })?;
                let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
                // Every caller is compared, in constant time, so timing tells nothing.
                let mut found = None;
                for c in &self.callers {
                    if let Some(h) = &c.token_sha256 {
                        if bool::from(h.ct_eq(&digest)) && found.is_none() {
                            found = Some(c);
                        }
                    }
                }
                found.ok_or_else(|| Error::Unauthenticated("unknown bearer token".into()))?
            }
            None => self
                .callers
                .iter()
                .find(|c| {
                    c.client_cert_name
                        .as_ref()
                        .is_some_and(|n| cert_names.iter().any(|x| x.eq_ignore_ascii_case(n)))
                })
                .ok_or_else(|| {
                    Error::Unauthenticated(
                        "no credential: send \"authorization: Bearer <token>\" or a known client certificate".into(),
                    )
                })?,
        };
        if caller.allows(scope) {
            Ok(Some(CallerName(caller.name.clone())))
        } else {
            Err(Error::PermissionDenied {
                caller: caller.name.clone(),
                scope: scope.name(),
                method: path.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access {
            callers: vec![Caller {
                name: "mail".into(),
                token_sha256: Some(Sha256::digest(b"s3cret").into()),
                client_cert_name: Some("gateway.internal".into()),
                scopes: vec![Scope::CustomerUsersRead],
            }],
        }
    }

    #[test]
    fn scopes_by_path() {
        assert_eq!(
            required_scope("/clientele.v1.CustomerUserService/ResolveSenders"),
            Some(Ok(Scope::CustomerUsersRead))
        );
        assert_eq!(
            required_scope("/clientele.v1.AuthService/SetPassword"),
            Some(Ok(Scope::AuthManage))
        );
        assert_eq!(required_scope("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn tokens_certificates_and_scopes() {
        let a = access();
        let read = "/clientele.v1.CustomerUserService/GetCustomerUser";
        let write = "/clientele.v1.CustomerUserService/CreateCustomerUser";
        let code = |r: Result<Option<CallerName>, Error>| {
            crate::api::status::to_status(r.unwrap_err()).code()
        };
        assert!(a.check(read, Some("Bearer s3cret"), &[]).is_ok());
        assert!(matches!(
            a.check(write, Some("Bearer s3cret"), &[]),
            Err(Error::PermissionDenied {
                scope: "customer_users:write",
                ..
            })
        ));
        assert_eq!(
            code(a.check(write, Some("Bearer s3cret"), &[])),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            code(a.check(read, Some("Bearer nope"), &[])),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            code(a.check(read, Some("Basic eA=="), &[])),
            tonic::Code::Unauthenticated
        );
        assert_eq!(code(a.check(read, None, &[])), tonic::Code::Unauthenticated);
        assert!(a.check(read, None, &["Gateway.Internal".into()]).is_ok());
        assert!(a.check("/grpc.health.v1.Health/Check", None, &[]).is_ok());
    }
}
