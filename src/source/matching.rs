//! A source's [`MatchingRules`](crate::domain::MatchingRules), built once from its resolved
//! configuration: the only place where settings become rules, for SQL and LDAP alike.

use crate::config::{CustomerSourceSettings, ResolvedMap, SourceSettings, UserSourceSettings};
use crate::domain::{Attr, CaseRule, CustomerRules, Field, UserRules};

/// The case rule of a source (`case_sensitive`, default false), also for the cache in front of
/// it.
pub fn case_rule(settings: &SourceSettings) -> CaseRule {
    CaseRule::new(settings.case_sensitive)
}

/// The configured search fields that the map gives a column (or LDAP attribute) to; an unmapped
/// field is never searched.
fn mapped<F: Field>(fields: &[Attr<F>], map: &ResolvedMap<F>) -> Vec<Attr<F>> {
    fields
        .iter()
        .filter(|a| map.column(a).is_some())
        .cloned()
        .collect()
}

/// The rules of a customer-user source: its mapped search fields, `search_prefix` /
/// `search_suffix`, `case_sensitive`, postmaster and name fields.
pub fn user_rules(cfg: &UserSourceSettings) -> UserRules {
    let (prefix, suffix) = cfg.settings.affixes();
    UserRules::new(
        mapped(&cfg.search_fields, &cfg.map),
        prefix,
        suffix,
        case_rule(&cfg.settings),
    )
    .with_postmaster(cfg.postmaster_fields.clone())
    .with_names(cfg.name_fields.clone(), &cfg.name_join)
}

/// The rules of a customer source: its mapped search fields, prefix/suffix and case rule.
pub fn customer_rules(cfg: &CustomerSourceSettings) -> CustomerRules {
    let (prefix, suffix) = cfg.settings.affixes();
    CustomerRules::new(
        mapped(&cfg.search_fields, &cfg.map),
        prefix,
        suffix,
        case_rule(&cfg.settings),
    )
}
