//! `[[callers]]`: who may call, identified by a token hash or a client certificate name, and
//! with which scopes; resolved into [`crate::access::Access`].

use serde::Deserialize;

use super::check_unique_names;

/// `[[callers]]`
#[derive(Debug, Clone, Deserialize)]
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
        });
    }
    check_unique_names(out.iter().map(|c| c.name.as_str()), "callers", problems);
    crate::access::Access { callers: out }
}
