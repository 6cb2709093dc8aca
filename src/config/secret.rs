//! Secrets: their indirection — a value given inline, through an environment variable (`*_env`)
//! or in a file (`*_file`), so that passwords stay out of configuration files; exactly one form
//! may be set; errors name the keys involved, never the value — and their redaction from
//! `Debug` ([`redact_url`], [`Redacted`] and the `debug_redacting_urls!` macro that writes
//! `Debug` for the settings holding URLs). Bind passwords are never held in settings (only the
//! names of their variable or file); token hashes print as [`REDACTED`].

/// A URL from `url`, `url_env` or `url_file` (surrounding whitespace of a file removed).
pub fn resolve_url(
    url: Option<&str>,
    url_env: Option<&str>,
    url_file: Option<&str>,
) -> Result<String, String> {
    match (url, url_env, url_file) {
        (Some(u), None, None) => Ok(u.to_owned()),
        (None, Some(var), None) => std::env::var(var)
            .map_err(|_| format!("environment variable {var:?} (url_env) is not set")),
        (None, None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("cannot read url_file {path:?}: {e}")),
        (None, None, None) => Err("one of url, url_env, url_file is required".into()),
        _ => Err("set only one of url, url_env, url_file".into()),
    }
}

/// A bind password from `bind_password_env` or `bind_password_file` (only trailing line
/// breaks of a file removed: a password may end in a space).
pub fn read_password(env: Option<&str>, file: Option<&str>) -> Result<String, String> {
    match (env, file) {
        (Some(var), None) => {
            std::env::var(var).map_err(|_| format!("environment variable {var:?} is not set"))
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("cannot read bind_password_file {path:?}: {e}")),
        (None, None) => Err("bind_dn needs bind_password_env or bind_password_file".into()),
        _ => Err("set only one of bind_password_env, bind_password_file".into()),
    }
}

/// What `Debug` prints instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// `url` with the password of its user info and the values of query parameters named like a
/// secret (`password`, `pass`, `secret`, `token`, any case) replaced by [`REDACTED`]; the rest
/// (scheme, user, host, database) is kept so that a log still tells which database is meant.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, frag)) => (q, Some(frag)),
                None => (query, None),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if is_secret_name(k) => format!("{k}={REDACTED}"),
                    _ => kv.to_owned(),
                })
                .collect();
            let mut t = format!("{path}?{}", params.join("&"));
            if let Some(frag) = fragment {
                t.push('#');
                t.push_str(frag);
            }
            t
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

fn is_secret_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["pass", "secret", "token"].iter().any(|s| k.contains(s))
}

/// A URL (or several) shown by `Debug` through [`redact_url`].
pub struct Redacted<'a, T: ?Sized>(pub &'a T);

impl std::fmt::Debug for Redacted<'_, String> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&redact_url(self.0), f)
    }
}

impl std::fmt::Debug for Redacted<'_, Option<String>> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0.as_deref().map(redact_url), f)
    }
}

impl std::fmt::Debug for Redacted<'_, Vec<String>> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|u| redact_url(u)))
            .finish()
    }
}

/// `Debug` for a settings struct holding URLs: the plain fields as derived, the URL fields
/// through [`Redacted`]. The struct is destructured, so a field missing from the lists does
/// not compile (a new field cannot bypass the redaction by being forgotten).
macro_rules! debug_redacting_urls {
    ($ty:ident { $($field:ident),* $(,)? } urls { $($url:ident),* $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let $ty { $($field,)* $($url,)* } = self;
                let mut d = f.debug_struct(stringify!($ty));
                $( d.field(stringify!($field), $field); )*
                $( d.field(stringify!($url), &$crate::config::secret::Redacted($url)); )*
                d.finish()
            }
        }
    };
}
pub(crate) use debug_redacting_urls;
