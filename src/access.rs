//! Which caller may call which method. Callers authenticate with a bearer token (configured as
//! its SHA-256, never in plain text) or a TLS client certificate (matched by subject CN or DNS
//! name); each has scopes, and every RPC requires one, listed in [`SCOPE_TABLE`] (checked
//! against the descriptor set by a test). Health checks and reflection are open; any other path
//! is denied by default (only `admin` reaches the router, which answers UNIMPLEMENTED). With no
//! callers configured every call is allowed (loopback only, see `app::bind`). The decision
//! ([`CallerName`]) also says whether the caller may assert a login's client address. A refusal
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

/// Every method of our services and the scope it needs: the one table [`required_scope`] reads.
/// A unit test checks it against the compiled descriptor set, so a new RPC cannot be served
/// before its scope is decided here.
///
/// `ListCustomerUsersOfCustomer` answers full customer-user records, so it needs
/// `customer_users:read` (not `customers:read`): that scope alone already lists a customer's
/// users through `SearchCustomerUsers` with `customer_id`, so requiring `customers:read` too
/// would protect nothing.
pub const SCOPE_TABLE: &[(&str, Scope)] = {
    use Scope::*;
    &[
        (
            "/clientele.v1.CustomerUserService/CreateCustomerUser",
            CustomerUsersWrite,
        ),
        (
            "/clientele.v1.CustomerUserService/GetCustomerUser",
            CustomerUsersRead,
        ),
        (
            "/clientele.v1.CustomerUserService/UpdateCustomerUser",
            CustomerUsersWrite,
        ),
        (
            "/clientele.v1.CustomerUserService/SearchCustomerUsers",
            CustomerUsersRead,
        ),
        (
            "/clientele.v1.CustomerUserService/BatchGetCustomerUsers",
            CustomerUsersRead,
        ),
        (
            "/clientele.v1.CustomerUserService/ResolveSenders",
            CustomerUsersRead,
        ),
        (
            "/clientele.v1.CustomerUserService/ListCustomerIds",
            CustomerUsersRead,
        ),
        (
            "/clientele.v1.CustomerUserService/SetCustomerMembership",
            CustomerUsersWrite,
        ),
        (
            "/clientele.v1.CustomerUserService/GetPreferences",
            CustomerUsersRead,
        ),
        (
            "/clientele.v1.CustomerUserService/SetPreference",
            CustomerUsersWrite,
        ),
        (
            "/clientele.v1.CustomerService/CreateCustomer",
            CustomersWrite,
        ),
        ("/clientele.v1.CustomerService/GetCustomer", CustomersRead),
        (
            "/clientele.v1.CustomerService/UpdateCustomer",
            CustomersWrite,
        ),
        (
            "/clientele.v1.CustomerService/SearchCustomers",
            CustomersRead,
        ),
        (
            "/clientele.v1.CustomerService/BatchGetCustomers",
            CustomersRead,
        ),
        (
            "/clientele.v1.CustomerService/ListCustomerUsersOfCustomer",
            CustomerUsersRead,
        ),
        ("/clientele.v1.GroupService/CreateGroup", GroupsWrite),
        ("/clientele.v1.GroupService/GetGroup", GroupsRead),
        ("/clientele.v1.GroupService/ListGroups", GroupsRead),
        ("/clientele.v1.GroupService/UpdateGroup", GroupsWrite),
        (
            "/clientele.v1.GroupService/SetCustomerUserPermissions",
            GroupsWrite,
        ),
        (
            "/clientele.v1.GroupService/SetCustomerPermissions",
            GroupsWrite,
        ),
        (
            "/clientele.v1.GroupService/ListCustomerUserGroups",
            GroupsRead,
        ),
        (
            "/clientele.v1.GroupService/ListGroupCustomerUsers",
            GroupsRead,
        ),
        (
            "/clientele.v1.GroupService/GetEffectivePermissions",
            GroupsRead,
        ),
        ("/clientele.v1.AuthService/Authenticate", AuthCheck),
        ("/clientele.v1.AuthService/SetPassword", AuthManage),
        ("/clientele.v1.AuthService/UnlockLogin", AuthManage),
        ("/clientele.v1.AuthService/EnrollTotp", AuthManage),
        ("/clientele.v1.AuthService/ConfirmTotp", AuthManage),
        ("/clientele.v1.AuthService/RemoveTotp", AuthManage),
    ]
};

/// Services open to anyone (probes and tools carry no credential): health and reflection.
pub const OPEN_SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The scope an RPC needs, by its HTTP/2 path: `None` = open (a method of
/// [`OPEN_SERVICES`]), `Some(Ok(scope))` from [`SCOPE_TABLE`], and `Some(Err(()))` for any
/// other path. [`Access::check`] refuses such a path (deny by default) to everyone but an
/// `admin` caller, whom the router then answers UNIMPLEMENTED.
pub fn required_scope(path: &str) -> Option<Result<Scope, ()>> {
    if let Some((_, scope)) = SCOPE_TABLE.iter().find(|(p, _)| *p == path) {
        return Some(Ok(*scope));
    }
    let service = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .map(|(service, _)| service);
    match service {
        Some(s) if OPEN_SERVICES.contains(&s) => None,
        _ => Some(Err(())),
    }
}

/// A configured caller. Its `Debug` never shows the token hash.
#[derive(Clone)]
pub struct Caller {
    pub name: String,
    /// SHA-256 of the bearer token.
    pub token_sha256: Option<[u8; 32]>,
    /// Subject CN or DNS name of the client certificate.
    pub client_cert_name: Option<String>,
    pub scopes: Vec<Scope>,
    /// `trusted_client_ip = true`: this caller (a portal relaying its users' logins) may assert
    /// `AuthenticateRequest.client_ip`; for any other caller the peer address is the client.
    pub trusted_client_ip: bool,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.name)
            .field(
                "token_sha256",
                &self.token_sha256.as_ref().map(|_| crate::config::REDACTED),
            )
            .field("client_cert_name", &self.client_cert_name)
            .field("scopes", &self.scopes)
            .field("trusted_client_ip", &self.trusted_client_ip)
            .finish()
    }
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

/// Who is calling, as decided by [`Access::check`] (and put in the request extensions by
/// `edge`): the caller's name, and whether it may assert `AuthenticateRequest.client_ip`
/// (its `trusted_client_ip`; true for the anonymous caller of a server without `[[callers]]`,
/// which is reachable from loopback only and may do everything anyway).
#[derive(Debug, Clone)]
pub struct CallerName(pub String, pub bool);

impl CallerName {
    /// The caller's configured name (`anonymous` without `[[callers]]`).
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Whether `AuthenticateRequest.client_ip` from this caller names the client.
    pub fn trusts_client_ip(&self) -> bool {
        self.1
    }
}

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
    /// The caller whose bearer token is `token` (surrounding blanks ignored). Every caller is
    /// compared, in constant time, so timing tells nothing. Used by the API ([`Access::check`])
    /// and by the console's sign-in.
    pub fn by_token(&self, token: &str) -> Option<&Caller> {
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let mut found = None;
        for c in &self.callers {
            if let Some(h) = &c.token_sha256 {
                if bool::from(h.ct_eq(&digest)) && found.is_none() {
                    found = Some(c);
                }
            }
        }
        found
    }

    /// Whether the caller named `caller` may call the RPC at `path` (its scope in
    /// [`SCOPE_TABLE`]; `admin` for a path not in it). Always true without `[[callers]]`.
    pub fn may_call(&self, caller: &str, path: &str) -> bool {
        if self.callers.is_empty() {
            return true;
        }
        let scope = match required_scope(path) {
            None => return true,
            Some(Ok(s)) => s,
            Some(Err(())) => Scope::Admin,
        };
        self.callers
            .iter()
            .find(|c| c.name == caller)
            .is_some_and(|c| c.allows(scope))
    }

    /// Decides a call to `path` with the `authorization` header and the names of a verified
    /// client certificate: the caller, or [`Error::Unauthenticated`] (missing/wrong credential)
    /// or [`Error::PermissionDenied`] (missing scope). Deny by default: a path missing from
    /// [`SCOPE_TABLE`] (and not open) needs a valid credential and the `admin` scope; `Ok(None)`
    /// only for the open services.
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
            return Ok(Some(CallerName("anonymous".into(), true)));
        }
        let caller = match authorization {
            Some(value) => {
                let token = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .ok_or_else(|| {
                        Error::Unauthenticated("authorization must be \"Bearer <token>\"".into())
                    })?;
                self.by_token(token)
                    .ok_or_else(|| Error::Unauthenticated("unknown bearer token".into()))?
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
        // A path of no method of ours: only `admin` passes (and the router answers UNIMPLEMENTED).
        let scope = scope.unwrap_or(Scope::Admin);
        if caller.allows(scope) {
            Ok(Some(CallerName(
                caller.name.clone(),
                caller.trusted_client_ip,
            )))
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
            callers: vec![
                Caller {
                    name: "mail".into(),
                    token_sha256: Some(Sha256::digest(b"s3cret").into()),
                    client_cert_name: Some("gateway.internal".into()),
                    scopes: vec![Scope::CustomerUsersRead],
                    trusted_client_ip: false,
                },
                Caller {
                    name: "root".into(),
                    token_sha256: Some(Sha256::digest(b"r00t").into()),
                    client_cert_name: None,
                    scopes: vec![Scope::Admin],
                    trusted_client_ip: true,
                },
                Caller {
                    name: "crm".into(),
                    token_sha256: Some(Sha256::digest(b"crm").into()),
                    client_cert_name: None,
                    scopes: vec![Scope::CustomersRead],
                    trusted_client_ip: false,
                },
            ],
        }
    }

    fn code(r: Result<Option<CallerName>, Error>) -> tonic::Code {
        match r {
            Ok(_) => tonic::Code::Ok,
            Err(e) => crate::api::status::to_status(e).code(),
        }
    }

    #[test]
    fn unknown_paths_are_denied_by_default() {
        let a = access();
        for path in [
            "/clientele.v1.CustomerUserService/DropEverything",
            "/clientele.v1.Nope/GetCustomerUser",
            "/grpc.health.v1.Sneaky/Check",
            "/x",
            "",
        ] {
            assert_eq!(
                code(a.check(path, None, &[])),
                tonic::Code::Unauthenticated,
                "{path}"
            );
            assert_eq!(
                code(a.check(path, Some("Bearer nope"), &[])),
                tonic::Code::Unauthenticated,
                "{path}"
            );
            assert_eq!(
                code(a.check(path, Some("Bearer s3cret"), &[])),
                tonic::Code::PermissionDenied,
                "{path}"
            );
            // admin passes; the router answers UNIMPLEMENTED.
            assert!(matches!(
                a.check(path, Some("Bearer r00t"), &[]),
                Ok(Some(CallerName(n, _))) if n == "root"
            ));
        }
        // Without callers (loopback only) everything passes, as before.
        assert!(Access::default().check("/x/y", None, &[]).is_ok());
    }

    #[test]
    fn every_rpc_of_the_descriptor_set_has_a_scope() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes");
        let mut paths = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        assert!(paths.len() >= SCOPE_TABLE.len(), "{paths:?}");
        for p in &paths {
            assert!(
                matches!(required_scope(p), Some(Ok(_))),
                "{p} has no entry in SCOPE_TABLE: decide its scope"
            );
        }
        for (p, _) in SCOPE_TABLE {
            assert!(
                paths.iter().any(|x| x == p),
                "{p} is no RPC of the descriptor set"
            );
        }
    }

    #[test]
    fn customer_users_of_a_customer_need_customer_users_read() {
        let a = access();
        let path = "/clientele.v1.CustomerService/ListCustomerUsersOfCustomer";
        assert_eq!(
            code(a.check(path, Some("Bearer crm"), &[])),
            tonic::Code::PermissionDenied
        );
        assert!(a.check(path, Some("Bearer s3cret"), &[]).is_ok());
        assert!(a
            .check(
                "/clientele.v1.CustomerService/GetCustomer",
                Some("Bearer crm"),
                &[]
            )
            .is_ok());
    }

    #[test]
    fn the_caller_carries_its_client_ip_trust() {
        let a = access();
        let read = "/clientele.v1.AuthService/Authenticate";
        let trust = |auth: &str| match a.check(read, Some(auth), &[]) {
            Ok(Some(c)) => c.trusts_client_ip(),
            other => panic!("{other:?}"),
        };
        assert!(trust("Bearer r00t"));
        let mail = Access {
            callers: vec![Caller {
                scopes: vec![Scope::AuthCheck],
                ..access().callers[0].clone()
            }],
        };
        assert!(matches!(
            mail.check(read, Some("Bearer s3cret"), &[]),
            Ok(Some(CallerName(_, false)))
        ));
        assert!(matches!(
            Access::default().check(read, None, &[]),
            Ok(Some(CallerName(_, true)))
        ));
    }

    #[test]
    fn debug_hides_token_hashes() {
        let text = format!("{:?}", access());
        let hash = hex::encode(Sha256::digest(b"s3cret"));
        assert!(!text.contains(&hash), "{text}");
        let bytes = format!("{:?}", <[u8; 32]>::from(Sha256::digest(b"s3cret")));
        assert!(!text.contains(&bytes), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
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
