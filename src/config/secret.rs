//! Secret indirection: a value given inline, through an environment variable (`*_env`) or in a
//! file (`*_file`), so that passwords stay out of configuration files. Exactly one form may be
//! set; errors name the keys involved, never the value.

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
