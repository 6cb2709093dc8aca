//! Environment overrides: `CLIENTELE_*` variables that address a configuration key with `__`
//! between path segments and numbers for list positions, e.g. `CLIENTELE_SERVER__LISTEN` or
//! `CLIENTELE_CUSTOMER_USER_SOURCES__0__URL`, applied to the parsed TOML before it is typed.

/// Environment variables with this prefix override configuration keys.
pub const ENV_PREFIX: &str = "CLIENTELE_";

/// The top-level keys an environment override may address; any other `CLIENTELE_*` variable
/// (`CLIENTELE_CONFIG`, `CLIENTELE_LOG`, a `url_env` target such as `CLIENTELE_PG_URL`, …) is
/// not an override.
const ENV_SECTIONS: &[&str] = &[
    "server",
    "customer_user_sources",
    "customer_sources",
    "auth",
    "groups",
    "callers",
];

/// Applies every override in `env` to `root`, in the order of the variable names; an override
/// that cannot be applied is a problem naming the variable. Variables that address no section
/// are ignored.
pub(super) fn apply_overrides(
    root: &mut toml::Value,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<String>,
) {
    let mut overrides: Vec<_> = env
        .into_iter()
        .filter(|(k, _)| {
            k.strip_prefix(ENV_PREFIX)
                .and_then(|rest| rest.split("__").next())
                .is_some_and(|section| {
                    ENV_SECTIONS.contains(&section.to_ascii_lowercase().as_str())
                })
        })
        .collect();
    overrides.sort();
    for (k, v) in overrides {
        if let Err(e) = apply_override(root, &k[ENV_PREFIX.len()..], &v) {
            problems.push(format!("{k}: {e}"));
        }
    }
}

/// Sets the value at `path` (`SERVER__LISTEN`, `CUSTOMER_USER_SOURCES__0__URL`) in `root`.
fn apply_override(root: &mut toml::Value, path: &str, raw: &str) -> Result<(), String> {
    let segments: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err("empty path segment (use __ between keys)".into());
    }
    let mut node = root;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        node = match node {
            toml::Value::Array(items) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| format!("{seg:?} is not a list position"))?;
                if idx > items.len() {
                    return Err(format!(
                        "list position {idx} skips entries (have {})",
                        items.len()
                    ));
                }
                if idx == items.len() {
                    items.push(toml::Value::Table(toml::Table::new()));
                }
                &mut items[idx]
            }
            toml::Value::Table(table) => {
                if last {
                    let value = parse_env_value(raw, table.get(seg.as_str()));
                    table.insert(seg.clone(), value);
                    return Ok(());
                }
                let next_is_index = segments[i + 1].parse::<usize>().is_ok();
                table.entry(seg.clone()).or_insert_with(|| {
                    if next_is_index {
                        toml::Value::Array(Vec::new())
                    } else {
                        toml::Value::Table(toml::Table::new())
                    }
                })
            }
            _ => return Err(format!("{seg:?} is inside a value that is not a table")),
        };
    }
    Err("a list position cannot be set as a whole".into())
}

/// A value is taken as TOML (number, boolean, array) when it parses as such and the key does
/// not already hold a string.
fn parse_env_value(raw: &str, existing: Option<&toml::Value>) -> toml::Value {
    if matches!(existing, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_owned());
    }
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}
