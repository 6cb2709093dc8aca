//! `[[callers]]`: who may call, identified by a token hash or a client certificate name, and
//! with which scopes, and whether it may assert the client address of a login
//! (`trusted_client_ip`); resolved into [`crate::access::Access`].

use serde::Deserialize;

use super::check_unique_names;

/// `[[callers]]`; its `Debug` never shows the token hash.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    pub name: String,
    /// Hex SHA-256 of the bearer token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Subject CN or DNS name of the caller's TLS client certificate.
    #[serde(default)]
    pub client_cert_name: Option<String>,
    pub scopes: Vec<String>,
    /// This caller may assert `AuthenticateRequest.client_ip` (a portal relaying its users'
    /// logins); for every other caller the client is the peer address.
    #[serde(default)]
    pub trusted_client_ip: bool,
}

impl std::fmt::Debug for CallerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            name,
            token_sha256,
            client_cert_name,
            scopes,
            trusted_client_ip,
        } = self;
        f.debug_struct("CallerConfig")
            .field("name", name)
            .field(
                "token_sha256",
                &token_sha256.as_ref().map(|_| super::REDACTED),
            )
            .field("client_cert_name", client_cert_name)
            .field("scopes", scopes)
            .field("trusted_client_ip", trusted_client_ip)
            .finish()
    }
}

/// Checks and resolves `[[callers]]`; every problem names its key (`callers[1].scopes[0]`).
pub(super) fn resolve_callers(
    callers: &[CallerConfig],
    problems: &mut Vec<String>,
) -> crate::access::Access {
    use crate::access::{Caller, Scope};
    let mut out = Vec::new();
    for (i, c) in callers.iter().enumerate() {
        let key = format!("callers[{i}]");
        let token_sha256 = c.token_sha256.as_ref().and_then(|h| {
            let bytes = hex::decode(h.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
            if bytes.is_none() {
                problems.push(format!("{key}.token_sha256: 64 hex digits of the token's SHA-256 (never the token itself)"));
            }
            bytes
        });
        if c.token_sha256.is_none() && c.client_cert_name.is_none() {
            problems.push(format!("{key}: set token_sha256 or client_cert_name"));
        }
        let mut scopes = Vec::new();
        for (j, s) in c.scopes.iter().enumerate() {
            match Scope::from_name(s) {
                Some(x) => scopes.push(x),
                None => problems.push(format!(
                    "{key}.scopes[{j}]: unknown scope {s:?}; one of {}",
                    Scope::ALL.map(Scope::name).join(", ")
                )),
            }
        }
        out.push(Caller {
            name: c.name.clone(),
            token_sha256,
            client_cert_name: c.client_cert_name.clone(),
            scopes,
            trusted_client_ip: c.trusted_client_ip,
        });
    }
    check_unique_names(out.iter().map(|c| c.name.as_str()), "callers", problems);
    crate::access::Access { callers: out }
}
