//! Checked search requests, as the sources receive them, and the rules of detail searches
//! (OTRS `CustomerSearchDetail`) as pure functions over records: which records a filter keeps
//! under a source's case rule ([`Filter::matches`]), the order of a walk ([`Order`], parsed
//! from AIP-132 `order_by`, ties broken by the folded key) and the keyset test of a page
//! ([`Detail::is_after`]). SQL and LDAP sources narrow with them, the multiplexer merges with
//! them, and anything that answers searches without a database (an in-memory index) calls the
//! same functions, so every path answers alike.

use std::cmp::Ordering;

use super::query::{Expr, Pattern, QueryLimits};
use super::{fold, Attr, CaseRule, Field, Record, Validity};
use crate::error::FieldViolation;

/// What a customer-user search looks for: exactly one criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCriterion {
    /// The OTRS grammar over the source's search fields, with its prefix/suffix.
    Query(Expr),
    /// Exact, case-insensitive equality on the postmaster fields; the address is normalised.
    Email(String),
    /// The primary customer id; `*` wildcards only, no implicit prefix/suffix.
    CustomerId(Pattern),
    /// The login; `*` wildcards only, exact otherwise.
    Login(Pattern),
}

impl UserCriterion {
    /// Every record: the criterion of a search by filters alone.
    pub fn everything() -> Self {
        Self::Login(Pattern::wildcards("*"))
    }
}

/// A customer-user search as one source runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearch {
    pub criterion: UserCriterion,
    /// Include invalid and invalid-temporarily records.
    pub include_invalid: bool,
    /// Return at most this many; a source that has more sets `truncated`.
    pub limit: usize,
    /// Filters, order and the keyset position of a page.
    pub detail: Detail<super::UserField>,
}

/// A customer (company) search as one source runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSearch {
    /// The full OTRS grammar over the source's search fields.
    pub query: Expr,
    pub include_invalid: bool,
    pub limit: usize,
    pub detail: Detail<super::CustomerField>,
}

/// One source's answer to a search: in the search's order (by key, case-insensitively, unless
/// an `order_by` says otherwise), at most the limit.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The source had more matches than it returned.
    pub truncated: bool,
}

/// The most matches one source reads to answer a search in an order other than by key (it
/// sorts them itself); a source with more answers an error asking to narrow the search.
pub const ORDER_SCAN_MAX: usize = 10_000;

/// The most filters one search takes.
pub const MAX_FILTERS: usize = 16;
/// The most keys one `order_by` takes.
pub const MAX_ORDER_KEYS: usize = 8;

/// Which stored time a range filter or an order key looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeField {
    Create,
    Change,
}

impl TimeField {
    fn name(self) -> &'static str {
        match self {
            Self::Create => "create_time",
            Self::Change => "change_time",
        }
    }

    fn of<R: Record>(self, r: &R) -> Option<i64> {
        let (create, change) = r.times();
        match self {
            Self::Create => create,
            Self::Change => change,
        }
        .map(|t| t.0)
    }
}

/// One condition of a detail search; every filter of a search must hold (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter<F> {
    /// The attribute's whole value matches the `*` pattern under the source's case rule (an
    /// attribute the source does not map, or an absent extra, counts as empty).
    Matches(Attr<F>, Pattern),
    /// The record has this validity (the search then includes invalid records).
    Validity(Validity),
    /// The stored time is at or after (`create_time>=`) / before (`create_time<`) the epoch
    /// second; a record without that time never matches.
    Time {
        field: TimeField,
        at_least: bool,
        at: i64,
    },
}

impl<F: Field> Filter<F> {
    /// Whether `record` satisfies the filter under `case`.
    pub fn matches(&self, record: &F::Record, case: CaseRule) -> bool {
        match self {
            Self::Matches(attr, p) => case.matches(p, attr.get(record).unwrap_or("")),
            Self::Validity(v) => record.validity() == *v,
            Self::Time {
                field,
                at_least,
                at,
            } => field
                .of(record)
                .is_some_and(|t| if *at_least { t >= *at } else { t < *at }),
        }
    }
}

/// What a walk is ordered by (besides the final tie-break on the folded key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey<F> {
    /// A text attribute, compared folded (case-insensitively, Unicode) whatever the source's
    /// case rule, so every source sorts alike; absent values sort as empty.
    Attr(Attr<F>),
    /// A stored time; records without it sort first.
    Time(TimeField),
}

/// The order of a search: keys with their direction (`true` = descending), then the folded
/// key ascending. The empty order is the default, by key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Order<F> {
    pub keys: Vec<(OrderKey<F>, bool)>,
}

/// One component of a record's position in an [`Order`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SortValue {
    /// An absent time.
    Missing,
    Int(i64),
    /// A folded text value.
    Text(String),
}

/// A record's position in an [`Order`]: its order values, then its folded key. Page tokens
/// carry the position of the last record answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SortKey {
    pub values: Vec<SortValue>,
    pub key: String,
}

impl<F: Field> Order<F> {
    /// Whether this is the default order (by key alone): then a source's natural key order
    /// is the walk's order.
    pub fn is_by_key(&self) -> bool {
        self.keys
            .iter()
            .all(|(k, desc)| !desc && *k == OrderKey::Attr(Attr::Field(F::KEY)))
    }

    /// The position of `record`.
    pub fn sort_key(&self, record: &F::Record) -> SortKey {
        SortKey {
            values: self
                .keys
                .iter()
                .map(|(k, _)| match k {
                    OrderKey::Attr(a) => SortValue::Text(fold(a.get(record).unwrap_or(""))),
                    OrderKey::Time(t) => t.of(record).map_or(SortValue::Missing, SortValue::Int),
                })
                .collect(),
            key: fold(record.key()),
        }
    }

    /// Compares two positions in this order (descending keys reversed, the folded key last).
    pub fn compare(&self, a: &SortKey, b: &SortKey) -> Ordering {
        for (i, (_, desc)) in self.keys.iter().enumerate() {
            let o = a.values.get(i).cmp(&b.values.get(i));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.key.cmp(&b.key)
    }

    /// Sorts `records` in this order (stable: equal positions keep their order).
    pub fn sort(&self, records: &mut Vec<F::Record>) {
        let mut keyed: Vec<(SortKey, F::Record)> =
            records.drain(..).map(|r| (self.sort_key(&r), r)).collect();
        keyed.sort_by(|a, b| self.compare(&a.0, &b.0));
        records.extend(keyed.into_iter().map(|(_, r)| r));
    }
}

/// The detail part of a search: filters (AND), order and where the page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail<F> {
    pub filters: Vec<Filter<F>>,
    pub order: Order<F>,
    /// Only records strictly after this position (the last record of the previous page).
    pub after: Option<SortKey>,
    /// A page of a walk: the answer must be the first `limit` matches in the order, not any
    /// `limit` of them (a source whose backend returns matches unordered reads them all).
    pub paged: bool,
}

impl<F> Default for Detail<F> {
    fn default() -> Self {
        Self {
            filters: Vec::new(),
            order: Order { keys: Vec::new() },
            after: None,
            paged: false,
        }
    }
}

impl<F: Field> Detail<F> {
    /// Whether every filter holds for `record` under `case`.
    pub fn filters_match(&self, record: &F::Record, case: CaseRule) -> bool {
        self.filters.iter().all(|f| f.matches(record, case))
    }

    /// Whether `record` lies past the page position (always, on a first page).
    pub fn is_after(&self, record: &F::Record) -> bool {
        self.after.as_ref().is_none_or(|pos| {
            self.order.compare(&self.order.sort_key(record), pos) == Ordering::Greater
        })
    }

    /// Both: what a source keeps of a candidate besides its criterion.
    pub fn keeps(&self, record: &F::Record, case: CaseRule) -> bool {
        self.filters_match(record, case) && self.is_after(record)
    }

    /// `items` (all candidates past the position, in any order) as a page: sorted in the
    /// detail's order, cut at `limit` (`truncated` when something was cut).
    pub fn page_of(&self, mut items: Vec<F::Record>, limit: usize) -> Page<F::Record> {
        self.order.sort(&mut items);
        let truncated = items.len() > limit;
        items.truncate(limit);
        Page { items, truncated }
    }

    /// A validity filter asks for invalid records too.
    pub fn wants_invalid(&self) -> bool {
        self.filters
            .iter()
            .any(|f| matches!(f, Filter::Validity(_)))
    }
}

/// The attribute named `name` in a filter key or `order_by`: a built-in field name, or an extra
/// attribute (`room` or `extra.room`) that `known_extra` accepts; `None` when unknown.
pub fn attribute<F: Field>(name: &str, known_extra: &dyn Fn(&str) -> bool) -> Option<Attr<F>> {
    if let Some(extra) = name.strip_prefix("extra.") {
        return known_extra(extra).then(|| Attr::Extra(extra.to_owned()));
    }
    match F::from_name(name) {
        Some(f) if f == F::VALIDITY => None,
        Some(f) => Some(Attr::Field(f)),
        None => known_extra(name).then(|| Attr::Extra(name.to_owned())),
    }
}

/// Parses a time bound: RFC 3339 (`2024-05-01T00:00:00Z`) or epoch seconds.
fn parse_time(v: &str) -> Option<i64> {
    if let Ok(n) = v.parse::<i64>() {
        return Some(n);
    }
    let t = humantime::parse_rfc3339_weak(v).ok()?;
    let secs = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_secs()).ok()?,
    };
    Some(secs)
}

/// Checks the `filters` map of a request: at most [`MAX_FILTERS`]; keys are attributes
/// (pattern with `*`, no longer than a query may be), `validity` (`VALID`, `INVALID`,
/// `INVALID_TEMPORARILY`), or `create_time>=` / `create_time<` / `change_time>=` /
/// `change_time<` (RFC 3339 or epoch seconds). Violations name `filters[KEY]`.
pub fn parse_filters<F: Field>(
    filters: &[(String, String)],
    known_extra: &dyn Fn(&str) -> bool,
    limits: QueryLimits,
    out: &mut Vec<FieldViolation>,
) -> Vec<Filter<F>> {
    if filters.len() > MAX_FILTERS {
        out.push(FieldViolation::new(
            "filters",
            format!("at most {MAX_FILTERS} filters"),
        ));
        return Vec::new();
    }
    let mut parsed = Vec::new();
    for (key, value) in filters {
        let field = format!("filters[{key}]");
        if let Err(e) = limits.check_length(value) {
            out.push(FieldViolation::new(field, e.to_string()));
            continue;
        }
        let time = [TimeField::Create, TimeField::Change]
            .into_iter()
            .find_map(|t| {
                let rest = key.strip_prefix(t.name())?;
                match rest {
                    ">=" => Some((t, true)),
                    "<" => Some((t, false)),
                    _ => None,
                }
            });
        if let Some((field_t, at_least)) = time {
            match parse_time(value.trim()) {
                Some(at) => parsed.push(Filter::Time {
                    field: field_t,
                    at_least,
                    at,
                }),
                None => out.push(FieldViolation::new(
                    field,
                    "must be an RFC 3339 time (2024-05-01T00:00:00Z) or epoch seconds",
                )),
            }
            continue;
        }
        if key == "validity" {
            let v = match value.trim() {
                "VALID" => Validity::Valid,
                "INVALID" => Validity::Invalid,
                "INVALID_TEMPORARILY" => Validity::InvalidTemporarily,
                _ => {
                    out.push(FieldViolation::new(
                        field,
                        "must be VALID, INVALID or INVALID_TEMPORARILY",
                    ));
                    continue;
                }
            };
            parsed.push(Filter::Validity(v));
            continue;
        }
        match attribute::<F>(key, known_extra) {
            Some(_) if value.trim().is_empty() => {
                out.push(FieldViolation::new(
                    field,
                    "must not be blank (use * to match everything)",
                ));
            }
            Some(attr) => parsed.push(Filter::Matches(attr, Pattern::wildcards(value.trim()))),
            None => out.push(FieldViolation::new(
                field,
                format!("no source maps an attribute named {key:?}"),
            )),
        }
    }
    parsed
}

/// Parses an AIP-132 `order_by` ("last_name, first_name desc"; empty = by key): at most
/// [`MAX_ORDER_KEYS`] comma-separated attribute names (as in [`parse_filters`], or
/// `create_time` / `change_time`), each optionally followed by `desc` or `asc`. Violations
/// name `order_by`.
pub fn parse_order<F: Field>(
    order_by: &str,
    known_extra: &dyn Fn(&str) -> bool,
    out: &mut Vec<FieldViolation>,
) -> Order<F> {
    let mut keys = Vec::new();
    if order_by.trim().is_empty() {
        return Order { keys };
    }
    if order_by.len() > 1000 {
        out.push(FieldViolation::new("order_by", "at most 1000 bytes"));
        return Order { keys };
    }
    let parts: Vec<&str> = order_by.split(',').collect();
    if parts.len() > MAX_ORDER_KEYS {
        out.push(FieldViolation::new(
            "order_by",
            format!("at most {MAX_ORDER_KEYS} keys"),
        ));
        return Order { keys };
    }
    for part in parts {
        let words: Vec<&str> = part.split_whitespace().collect();
        let (name, desc) = match words.as_slice() {
            [name] => (*name, false),
            [name, dir] if dir.eq_ignore_ascii_case("desc") => (*name, true),
            [name, dir] if dir.eq_ignore_ascii_case("asc") => (*name, false),
            _ => {
                out.push(FieldViolation::new(
                    "order_by",
                    format!("{:?} is not `attribute [desc]`", part.trim()),
                ));
                continue;
            }
        };
        let key = match name {
            "create_time" => Some(OrderKey::Time(TimeField::Create)),
            "change_time" => Some(OrderKey::Time(TimeField::Change)),
            _ => attribute::<F>(name, known_extra).map(OrderKey::Attr),
        };
        match key {
            Some(k) => keys.push((k, desc)),
            None => out.push(FieldViolation::new(
                "order_by",
                format!("no source maps an attribute named {name:?}"),
            )),
        }
    }
    Order { keys }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::{CustomerUser, Timestamp, UserField};

    fn user(login: &str, last: &str, first: &str) -> CustomerUser {
        CustomerUser {
            login: login.into(),
            last_name: last.into(),
            first_name: first.into(),
            ..Default::default()
        }
    }

    fn extra_room(n: &str) -> bool {
        n == "room"
    }

    #[test]
    fn order_parses_aip132_and_sorts_with_the_key_as_tie_break() {
        let mut v = Vec::new();
        let order: Order<UserField> =
            parse_order("last_name, first_name desc", &extra_room, &mut v);
        assert!(v.is_empty(), "{v:?}");
        let mut users = vec![
            user("c", "Doe", "Ann"),
            user("b", "doe", "Zed"),
            user("a", "Doe", "Zed"),
            user("d", "Able", "X"),
        ];
        order.sort(&mut users);
        let logins: Vec<&str> = users.iter().map(|u| u.login.as_str()).collect();
        assert_eq!(logins, ["d", "a", "b", "c"]);
        assert!(!order.is_by_key());
        assert!(parse_order::<UserField>("", &extra_room, &mut v).is_by_key());
        assert!(parse_order::<UserField>("login", &extra_room, &mut v).is_by_key());
    }

    #[test]
    fn unknown_attributes_are_named() {
        let mut v = Vec::new();
        parse_order::<UserField>("shoe_size desc", &extra_room, &mut v);
        parse_order::<UserField>("last_name sideways", &extra_room, &mut v);
        let f = parse_filters::<UserField>(
            &[
                ("shoe_size".into(), "4*".into()),
                ("room".into(), "B*".into()),
                ("create_time>=".into(), "yesterday".into()),
            ],
            &extra_room,
            QueryLimits::default(),
            &mut v,
        );
        let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "order_by",
                "order_by",
                "filters[shoe_size]",
                "filters[create_time>=]"
            ]
        );
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn filters_follow_the_case_rule_validity_and_time_ranges() {
        let mut v = Vec::new();
        let filters = parse_filters::<UserField>(
            &[
                ("last_name".into(), "d*".into()),
                ("extra.room".into(), "b1*".into()),
                ("validity".into(), "VALID".into()),
                ("create_time>=".into(), "2024-01-01T00:00:00Z".into()),
                ("create_time<".into(), "1704153600".into()),
            ],
            &extra_room,
            QueryLimits::default(),
            &mut v,
        );
        assert!(v.is_empty(), "{v:?}");
        let detail = Detail {
            filters,
            ..Detail::default()
        };
        let mut u = user("x", "Doe", "J");
        u.extra.insert("room".into(), "B12".into());
        u.create_time = Some(Timestamp(1_704_067_200 + 10));
        assert!(detail.filters_match(&u, CaseRule::new(false)));
        assert!(!detail.filters_match(&u, CaseRule::new(true)), "case rule");
        u.create_time = Some(Timestamp(1_704_153_600));
        assert!(
            !detail.filters_match(&u, CaseRule::new(false)),
            "< is strict"
        );
        u.create_time = None;
        assert!(!detail.filters_match(&u, CaseRule::new(false)));
        assert!(detail.wants_invalid());
    }

    #[test]
    fn after_is_strict_in_the_order() {
        let order: Order<UserField> = parse_order("last_name desc", &extra_room, &mut Vec::new());
        let pos = order.sort_key(&user("m", "Mid", ""));
        let detail = Detail {
            order,
            after: Some(pos),
            ..Detail::default()
        };
        assert!(detail.is_after(&user("a", "Low", "")));
        assert!(detail.is_after(&user("z", "mid", "")));
        assert!(!detail.is_after(&user("m", "Mid", "")));
        assert!(!detail.is_after(&user("a", "Mid", "")));
        assert!(!detail.is_after(&user("a", "Zed", "")));
    }
}
