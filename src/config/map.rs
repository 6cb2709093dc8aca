//! Attribute maps and field lists: a source's `map` resolved against the default columns
//! ([`crate::source::sql::columns`]) or LDAP attributes ([`crate::source::ldap::attrs`]) of its
//! kind, the `search_fields`-style lists resolved against a map, and the name checks of SQL
//! identifiers and LDAP attribute descriptions.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SourceKind;
use crate::domain::{Attr, AttrRule, Field, Schema};
use crate::source::{ldap::attrs::DefaultLdapAttr, sql::columns::DefaultColumn};

/// One mapped attribute: a column name, or a table with its rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MapEntry {
    Column(String),
    Full {
        column: String,
        #[serde(default)]
        required: Option<bool>,
        #[serde(default)]
        read_only: bool,
    },
}

/// A source's attribute map resolved against the built-in defaults: attribute -> column, with the
/// domain rules.
#[derive(Debug, Clone)]
pub struct ResolvedMap<F> {
    pub columns: Vec<(Attr<F>, String)>,
    pub schema: Schema<F>,
}

impl<F: Field> ResolvedMap<F> {
    /// The column of an attribute, if the source maps it.
    pub fn column(&self, attr: &Attr<F>) -> Option<&str> {
        self.columns
            .iter()
            .find(|(a, _)| a == attr)
            .map(|(_, c)| c.as_str())
    }

    /// The column of a built-in field, if the source maps it.
    pub fn field_column(&self, field: F) -> Option<&str> {
        self.column(&Attr::Field(field))
    }
}

/// Resolves a map: built-ins default to the columns ([`DefaultColumn`]) or LDAP attributes
/// ([`DefaultLdapAttr`]) of the source's kind; an empty column unmaps a built-in; any
/// other name is an extra attribute. `extra_builtins` are fields outside `F::RECORD` that may be
/// mapped (the customer-user password).
pub(super) fn resolve_map<F: DefaultColumn + DefaultLdapAttr>(
    kind: SourceKind,
    map: &BTreeMap<String, MapEntry>,
    extra_builtins: &[F],
    key: &str,
    problems: &mut Vec<String>,
) -> ResolvedMap<F> {
    let check = |path: &str, name: &str, problems: &mut Vec<String>| match kind {
        SourceKind::Sql => check_identifier(path, name, problems),
        SourceKind::Ldap => check_ldap_attr(path, name, problems),
    };
    let builtins: Vec<F> = F::RECORD.iter().chain(extra_builtins).copied().collect();
    let mut columns = Vec::new();
    let mut rules = Vec::new();
    for &f in &builtins {
        let (column, required, read_only) = match map.get(f.name()) {
            None if kind == SourceKind::Ldap => (f.default_ldap_attr().to_owned(), None, false),
            None => (f.default_column().to_owned(), None, false),
            Some(MapEntry::Column(c)) => (c.clone(), None, false),
            Some(MapEntry::Full {
                column,
                required,
                read_only,
            }) => (column.clone(), *required, *read_only),
        };
        if column.is_empty() {
            if f == F::KEY {
                problems.push(format!(
                    "{key}.map.{}: the key attribute must be mapped",
                    f.name()
                ));
            }
            continue;
        }
        if kind == SourceKind::Ldap && f == F::VALIDITY {
            problems.push(format!(
                "{key}.map.{}: LDAP sources mark invalid entries with invalid_filter",
                f.name()
            ));
            continue;
        }
        check(&format!("{key}.map.{}", f.name()), &column, problems);
        columns.push((Attr::Field(f), column));
        if F::RECORD.contains(&f) {
            rules.push(AttrRule {
                attr: Attr::Field(f),
                required: f == F::KEY || required.unwrap_or_else(|| f.required_by_default()),
                read_only: read_only && f != F::KEY,
            });
        }
    }
    for (name, entry) in map {
        if builtins.iter().any(|f| f.name() == name) {
            continue;
        }
        let path = format!("{key}.map.{name}");
        if !is_identifier(name) {
            problems.push(format!("{path}: attribute names are letters, digits and _"));
        }
        let (column, required, read_only) = match entry {
            MapEntry::Column(c) => (c.clone(), false, false),
            MapEntry::Full {
                column,
                required,
                read_only,
            } => (column.clone(), required.unwrap_or(false), *read_only),
        };
        check(&path, &column, problems);
        columns.push((Attr::Extra(name.clone()), column));
        rules.push(AttrRule {
            attr: Attr::Extra(name.clone()),
            required,
            read_only,
        });
    }
    ResolvedMap {
        columns,
        schema: Schema { rules },
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// SQL identifiers (tables, columns) are interpolated into statements, so they are restricted to
/// plain names; values are always bound.
pub(super) fn check_identifier(key: &str, ident: &str, problems: &mut Vec<String>) {
    if !is_identifier(ident) {
        problems.push(format!(
            "{key}: {ident:?} is not a plain SQL name (letters, digits, _; at most 64)"
        ));
    }
}

/// LDAP attribute descriptions: a name (letters, digits, hyphens) or a numeric OID.
fn check_ldap_attr(key: &str, attr: &str, problems: &mut Vec<String>) {
    let name = attr.starts_with(|c: char| c.is_ascii_alphabetic())
        && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !attr.is_empty()
        && attr
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !(name || oid) || attr.len() > 128 {
        problems.push(format!("{key}: {attr:?} is not an LDAP attribute name"));
    }
}

/// Resolves a configured list of attribute names (search fields, name fields) against a map;
/// every name must be mapped. Without a configured list, the defaults the map has are taken.
pub(super) fn resolve_attrs<F: Field>(
    configured: Option<&Vec<String>>,
    defaults: &[&str],
    map: &ResolvedMap<F>,
    key: &str,
    problems: &mut Vec<String>,
) -> Vec<Attr<F>> {
    let to_attr =
        |name: &str| F::from_name(name).map_or_else(|| Attr::Extra(name.to_owned()), Attr::Field);
    let Some(names) = configured else {
        return defaults
            .iter()
            .map(|n| to_attr(n))
            .filter(|a| map.column(a).is_some())
            .collect();
    };
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let attr = to_attr(name);
        if map.column(&attr).is_none() || matches!(attr, Attr::Field(f) if f == F::VALIDITY) {
            problems.push(format!(
                "{key}[{i}]: {name:?} is not a mapped text attribute of this source"
            ));
        } else {
            out.push(attr);
        }
    }
    out
}
