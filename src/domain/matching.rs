//! The matching rules of one source, in one place: which records a search criterion keeps,
//! which addresses a customer user answers mail for (postmaster values), when two keys are the
//! same (the case rule) and how the full name is composed. Every engine (SQL, LDAP) and the
//! cache in front of them call these, so every engine answers identically; a database or
//! directory only narrows the candidates, these rules decide.

use super::{
    customer::CustomerField,
    customer_user::{CustomerUser, UserField},
    email::normalize_address,
    fold,
    query::{Expr, Pattern},
    search::UserCriterion,
    Attr, Field,
};

/// How a source compares keys and text: exactly, or case-insensitively by Unicode lowercase
/// (one character at a time, as [`fold`] and the search grammar do). OTRS's default, and
/// Clientele's, is case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaseRule {
    case_sensitive: bool,
}

impl CaseRule {
    /// Case-insensitive whatever the source says: for names OTRS keeps unique regardless of
    /// case (a company name).
    pub const INSENSITIVE: Self = Self {
        case_sensitive: false,
    };

    /// The rule of a source configured with `case_sensitive`.
    pub fn new(case_sensitive: bool) -> Self {
        Self { case_sensitive }
    }

    /// Whether comparisons are exact.
    pub fn is_case_sensitive(self) -> bool {
        self.case_sensitive
    }

    /// Whether `a` and `b` are the same key (login, customer id) under this rule.
    pub fn same(self, a: &str, b: &str) -> bool {
        if self.case_sensitive {
            a == b
        } else {
            a.chars()
                .flat_map(char::to_lowercase)
                .eq(b.chars().flat_map(char::to_lowercase))
        }
    }

    /// The form of `key` under which equal keys coincide (for maps, sets and caches):
    /// `key` itself when case-sensitive, its fold otherwise. `rule.key(a) == rule.key(b)`
    /// exactly when `rule.same(a, b)`.
    pub fn key(self, key: &str) -> String {
        if self.case_sensitive {
            key.to_owned()
        } else {
            fold(key)
        }
    }

    /// Whether `value` matches the whole `pattern` under this rule.
    pub fn matches(self, pattern: &Pattern, value: &str) -> bool {
        pattern.matches(value, self.case_sensitive)
    }
}

/// The matching rules of one source over records of field type `F`: built once per source from
/// its resolved settings (search fields that are mapped, prefix/suffix, case rule, postmaster
/// fields, name fields).
#[derive(Debug, Clone)]
pub struct MatchingRules<F: Field> {
    /// The fields the search grammar looks in, in configuration order (only mapped ones).
    pub search_fields: Vec<Attr<F>>,
    /// Implicit wildcards around every search term (`search_prefix` / `search_suffix`).
    pub prefix: Pattern,
    pub suffix: Pattern,
    pub case: CaseRule,
    /// The fields whose addresses identify a customer user to mail ingestion; empty for customers.
    pub postmaster_fields: Vec<Attr<F>>,
    /// The fields the full name is made of, in order, and what joins them; empty for customers.
    pub name_fields: Vec<Attr<F>>,
    pub name_join: String,
}

/// The rules of a customer-user source.
pub type UserRules = MatchingRules<UserField>;
/// The rules of a customer (company) source.
pub type CustomerRules = MatchingRules<CustomerField>;

impl<F: Field> MatchingRules<F> {
    /// Rules with no postmaster and no name fields (add them with [`Self::with_postmaster`]
    /// and [`Self::with_names`]).
    pub fn new(
        search_fields: Vec<Attr<F>>,
        prefix: Pattern,
        suffix: Pattern,
        case: CaseRule,
    ) -> Self {
        Self {
            search_fields,
            prefix,
            suffix,
            case,
            postmaster_fields: Vec::new(),
            name_fields: Vec::new(),
            name_join: String::new(),
        }
    }

    pub fn with_postmaster(mut self, fields: Vec<Attr<F>>) -> Self {
        self.postmaster_fields = fields;
        self
    }

    pub fn with_names(mut self, fields: Vec<Attr<F>>, join: &str) -> Self {
        self.name_fields = fields;
        self.name_join = join.to_owned();
        self
    }

    /// Whether `record` matches the OTRS search expression: a positive term matches if any
    /// search field matches prefix+term+suffix, a negated term if none does (see
    /// [`Expr::matches`]); an absent value counts as empty.
    pub fn query_matches(&self, query: &Expr, record: &F::Record) -> bool {
        let values: Vec<&str> = self
            .search_fields
            .iter()
            .map(|a| a.get(record).unwrap_or(""))
            .collect();
        query.matches(
            &values,
            &self.prefix,
            &self.suffix,
            self.case.is_case_sensitive(),
        )
    }

    /// The search values of `record` as an in-memory index keeps them: in search-field order,
    /// an absent value empty, each under the case rule ([`CaseRule::key`]). With
    /// [`Self::prepared_query`] they answer exactly what [`Self::query_matches`] answers.
    pub fn search_values(&self, record: &F::Record) -> Vec<String> {
        self.search_fields
            .iter()
            .map(|a| self.case.key(a.get(record).unwrap_or("")))
            .collect()
    }

    /// `query` with the source's prefix/suffix and case rule applied, for
    /// [`Expr::matches_prepared`] over [`Self::search_values`].
    pub fn prepared_query(&self, query: &Expr) -> Expr {
        query.prepared(&self.prefix, &self.suffix, self.case.is_case_sensitive())
    }

    /// The normalised addresses (see [`normalize_address`]) of the non-empty postmaster fields of
    /// `record`, in field order; an address in two fields comes twice.
    pub fn postmaster_values<'a>(
        &'a self,
        record: &'a F::Record,
    ) -> impl Iterator<Item = String> + 'a {
        self.postmaster_fields
            .iter()
            .filter_map(|a| a.get(record))
            .filter(|v| !v.is_empty())
            .map(normalize_address)
    }

    /// Whether one of the postmaster values of `record` is `address` (already normalised).
    pub fn has_address(&self, record: &F::Record, address: &str) -> bool {
        self.postmaster_values(record).any(|v| v == address)
    }

    /// The non-empty name fields of `record`, joined by `name_join` (OTRS
    /// `CustomerUserNameFields`).
    pub fn full_name(&self, record: &F::Record) -> String {
        self.name_fields
            .iter()
            .filter_map(|a| a.get(record))
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(&self.name_join)
    }

    /// Whether `a` and `b` are the same key under the source's case rule.
    pub fn same_key(&self, a: &str, b: &str) -> bool {
        self.case.same(a, b)
    }
}

impl UserRules {
    /// Whether `user` matches a customer-user search criterion: the grammar over the search
    /// fields (with prefix/suffix), an exact postmaster address, or a `*`-pattern over the
    /// primary customer id or the login (no implicit prefix/suffix), under the case rule.
    pub fn user_matches(&self, criterion: &UserCriterion, user: &CustomerUser) -> bool {
        match criterion {
            UserCriterion::Query(expr) => self.query_matches(expr, user),
            UserCriterion::Email(address) => self.has_address(user, address),
            UserCriterion::CustomerId(p) => self.case.matches(p, &user.customer_id),
            UserCriterion::Login(p) => self.case.matches(p, &user.login),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::query::{parse, Grammar};
    use crate::domain::Customer;

    fn user() -> CustomerUser {
        CustomerUser {
            login: "JDoe".into(),
            first_name: "John".into(),
            last_name: "Doe".into(),
            email: "John.Doe@Example.COM".into(),
            customer_id: "Acme".into(),
            ..Default::default()
        }
    }

    fn rules(case_sensitive: bool, prefix: &str, suffix: &str) -> UserRules {
        UserRules::new(
            vec![
                Attr::Field(UserField::Login),
                Attr::Field(UserField::FirstName),
                Attr::Field(UserField::LastName),
            ],
            Pattern::wildcards(prefix),
            Pattern::wildcards(suffix),
            CaseRule::new(case_sensitive),
        )
        .with_postmaster(vec![
            Attr::Field(UserField::Email),
            Attr::Extra("alias".into()),
        ])
        .with_names(
            vec![
                Attr::Field(UserField::FirstName),
                Attr::Field(UserField::LastName),
            ],
            " ",
        )
    }

    fn query(q: &str) -> UserCriterion {
        UserCriterion::Query(parse(q, Grammar::Full).unwrap())
    }

    #[test]
    fn case_rule_keys() {
        let ci = CaseRule::new(false);
        let cs = CaseRule::new(true);
        assert!(ci.same("JÜRGEN", "jürgen"));
        assert!(!cs.same("JÜRGEN", "jürgen"));
        assert!(cs.same("jürgen", "jürgen"));
        assert!(!ci.same("jürgen", "jürge"));
        assert_eq!(ci.key("JDoe"), "jdoe");
        assert_eq!(cs.key("JDoe"), "JDoe");
        let p = Pattern::wildcards("ac*");
        assert!(ci.matches(&p, "ACME"));
        assert!(!cs.matches(&p, "ACME"));
        assert!(cs.matches(&p, "acme"));
    }

    #[test]
    fn every_criterion_kind() {
        let r = rules(false, "*", "*");
        let u = user();
        assert!(r.user_matches(&query("doe"), &u));
        assert!(r.user_matches(&query("oh"), &u));
        assert!(!r.user_matches(&query("smith"), &u));
        assert!(!r.user_matches(&query("!doe"), &u));
        assert!(r.user_matches(&query("john && !smith"), &u));
        assert!(r.user_matches(&UserCriterion::Email("john.doe@example.com".into()), &u));
        assert!(!r.user_matches(&UserCriterion::Email("jane@example.com".into()), &u));
        // Customer id and login: `*` wildcards only, no implicit prefix/suffix.
        assert!(r.user_matches(&UserCriterion::CustomerId(Pattern::literal("acme")), &u));
        assert!(!r.user_matches(&UserCriterion::CustomerId(Pattern::literal("acm")), &u));
        assert!(r.user_matches(&UserCriterion::CustomerId(Pattern::wildcards("ac*")), &u));
        assert!(r.user_matches(&UserCriterion::Login(Pattern::literal("jdoe")), &u));
        assert!(!r.user_matches(&UserCriterion::Login(Pattern::literal("doe")), &u));
    }

    #[test]
    fn case_sensitive_applies_to_every_kind() {
        let r = rules(true, "*", "*");
        let u = user();
        assert!(r.user_matches(&query("Doe"), &u));
        assert!(!r.user_matches(&query("doe"), &u));
        assert!(r.user_matches(&UserCriterion::Login(Pattern::literal("JDoe")), &u));
        assert!(!r.user_matches(&UserCriterion::Login(Pattern::literal("jdoe")), &u));
        assert!(!r.user_matches(&UserCriterion::CustomerId(Pattern::literal("acme")), &u));
        assert!(r.user_matches(&UserCriterion::CustomerId(Pattern::literal("Acme")), &u));
        // Addresses are normalised on both sides, whatever the case rule.
        assert!(r.user_matches(&UserCriterion::Email("john.doe@example.com".into()), &u));
        assert!(!r.same_key("JDoe", "jdoe"));
        assert!(rules(false, "*", "*").same_key("JDoe", "jdoe"));
    }

    #[test]
    fn prefix_and_suffix() {
        let u = user();
        // No implicit wildcards: a term must match a whole value.
        let exact = rules(false, "", "");
        assert!(!exact.user_matches(&query("oh"), &u));
        assert!(exact.user_matches(&query("john"), &u));
        assert!(exact.user_matches(&query("jo*"), &u));
        // Prefix only: the term must end the value.
        let suffix_free = rules(false, "*", "");
        assert!(suffix_free.user_matches(&query("ohn"), &u));
        assert!(!suffix_free.user_matches(&query("joh"), &u));
        // Suffix only: the term must start the value.
        let prefix_free = rules(false, "", "*");
        assert!(prefix_free.user_matches(&query("joh"), &u));
        assert!(!prefix_free.user_matches(&query("ohn"), &u));
    }

    #[test]
    fn postmaster_values_are_normalised_non_empty_in_field_order() {
        let r = rules(false, "*", "*");
        let mut u = user();
        assert_eq!(
            r.postmaster_values(&u).collect::<Vec<_>>(),
            ["john.doe@example.com"]
        );
        u.extra.insert("alias".into(), "JD@Example.com".into());
        assert_eq!(
            r.postmaster_values(&u).collect::<Vec<_>>(),
            ["john.doe@example.com", "jd@example.com"]
        );
        assert!(r.has_address(&u, "jd@example.com"));
        u.email.clear();
        assert_eq!(
            r.postmaster_values(&u).collect::<Vec<_>>(),
            ["jd@example.com"]
        );
    }

    /// Moved from `customer_user::tests::full_name_skips_empty_parts`.
    #[test]
    fn full_name_skips_empty_parts() {
        let fields = vec![
            Attr::Field(UserField::Title),
            Attr::Field(UserField::FirstName),
            Attr::Field(UserField::LastName),
        ];
        let with = |join: &str| rules(false, "*", "*").with_names(fields.clone(), join);
        assert_eq!(with(" ").full_name(&user()), "John Doe");
        assert_eq!(with("###").full_name(&user()), "John###Doe");
        assert_eq!(with("").full_name(&user()), "JohnDoe");
    }

    #[test]
    fn full_name_skips_empty_fields() {
        let r = rules(false, "*", "*");
        let mut u = user();
        assert_eq!(r.full_name(&u), "John Doe");
        let joined = r.clone().with_names(r.name_fields.clone(), "###");
        assert_eq!(joined.full_name(&u), "John###Doe");
        u.first_name.clear();
        assert_eq!(r.full_name(&u), "Doe");
        assert_eq!(
            UserRules::new(
                vec![],
                Pattern::wildcards("*"),
                Pattern::wildcards("*"),
                CaseRule::default()
            )
            .full_name(&u),
            ""
        );
    }

    #[test]
    fn customer_rules_match_the_grammar() {
        let r = CustomerRules::new(
            vec![
                Attr::Field(CustomerField::CustomerId),
                Attr::Field(CustomerField::Name),
            ],
            Pattern::wildcards("*"),
            Pattern::wildcards("*"),
            CaseRule::new(false),
        );
        let c = Customer {
            customer_id: "acme".into(),
            name: "ACME Corp".into(),
            ..Default::default()
        };
        assert!(r.query_matches(&parse("corp", Grammar::Full).unwrap(), &c));
        assert!(!r.query_matches(&parse("globex", Grammar::Full).unwrap(), &c));
        assert!(r.same_key("ACME", "acme"));
    }
}
