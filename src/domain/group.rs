//! Groups and customer permissions with OTRS semantics (spec section 5), as pure rules: which
//! keys a customer user holds on which group, and why.

use std::collections::{BTreeMap, BTreeSet};

use super::record::{Attr, AttrRule, Field, Record, Schema};
use super::{fold, Timestamp, Validity};

/// The key that implies every other key.
pub const RW: &str = "rw";

/// A permission group (the OTRS groups table, shared with agents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub comment: String,
    pub validity: Validity,
    /// Always empty: groups have no extra attributes (kept for the shared record rules).
    pub extra: BTreeMap<String, String>,
}

/// The fields of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupField {
    Name,
    Comment,
    Validity,
}

impl Record for Group {
    fn times(&self) -> (Option<super::Timestamp>, Option<super::Timestamp>) {
        (None, None)
    }
    type Field = GroupField;
    const KIND: &'static str = "group";
    fn validity(&self) -> Validity {
        self.validity
    }
    fn set_validity(&mut self, validity: Validity) {
        self.validity = validity;
    }
    fn extra(&self) -> &BTreeMap<String, String> {
        &self.extra
    }
    fn extra_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.extra
    }
    fn set_origin(&mut self, _: &str, _: Option<Timestamp>, _: Option<Timestamp>) {}
}

impl Field for GroupField {
    type Record = Group;
    const RECORD: &'static [Self] = &[Self::Name, Self::Comment, Self::Validity];
    const KEY: Self = Self::Name;
    const VALIDITY: Self = Self::Validity;

    fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Comment => "comment",
            Self::Validity => "validity",
        }
    }
    fn required_by_default(self) -> bool {
        self != Self::Comment
    }
    fn max_len(self) -> usize {
        match self {
            Self::Name => 200,
            Self::Comment => 250,
            Self::Validity => 0,
        }
    }
    fn get(self, g: &Group) -> Option<&str> {
        match self {
            Self::Name => Some(&g.name),
            Self::Comment => Some(&g.comment),
            Self::Validity => None,
        }
    }
    fn set(self, g: &mut Group, value: String) {
        match self {
            Self::Name => g.name = value,
            Self::Comment => g.comment = value,
            Self::Validity => {}
        }
    }
}

/// What a group stores: every field, name required.
pub fn group_schema() -> Schema<GroupField> {
    Schema {
        rules: GroupField::RECORD
            .iter()
            .map(|&f| AttrRule {
                attr: Attr::Field(f),
                required: f.required_by_default(),
                read_only: false,
            })
            .collect(),
    }
}

/// The context of a customer's grant (OTRS `CustomerGroupPermissionContext`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// `Ticket::CustomerID::Same`: the customer's users get the group.
    SameCustomer,
    /// `Ticket::CustomerID::Other`: the customer's users may see other customers' tickets in
    /// the group; not a group membership.
    OtherCustomers,
}

impl Context {
    /// The value stored in `group_customer.permission_context`.
    pub fn stored(self) -> &'static str {
        match self {
            Self::SameCustomer => "Ticket::CustomerID::Same",
            Self::OtherCustomers => "Ticket::CustomerID::Other",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        [Self::SameCustomer, Self::OtherCustomers]
            .into_iter()
            .find(|c| c.stored() == s)
    }
}

/// Why a key is granted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Direct {
        via_rw: bool,
    },
    Customer {
        customer_id: String,
        context: Context,
        via_rw: bool,
    },
    AlwaysGroup,
    CustomerAlwaysGroup {
        customer_id: String,
    },
    GroupSupportOff,
}

/// The reason in words, as the console shows it: `direct`, `customer acme (same customer)`,
/// `always-group`, `customer always-group (acme)`, `group support off`; ` via rw` when granted
/// through `rw`.
impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rw = |v: bool| if v { " via rw" } else { "" };
        match self {
            Self::Direct { via_rw } => write!(f, "direct{}", rw(*via_rw)),
            Self::Customer {
                customer_id,
                context,
                via_rw,
            } => {
                let c = match context {
                    Context::SameCustomer => "same customer",
                    Context::OtherCustomers => "other customers",
                };
                write!(f, "customer {customer_id} ({c}){}", rw(*via_rw))
            }
            Self::AlwaysGroup => f.write_str("always-group"),
            Self::CustomerAlwaysGroup { customer_id } => {
                write!(f, "customer always-group ({customer_id})")
            }
            Self::GroupSupportOff => f.write_str("group support off"),
        }
    }
}

impl Reason {
    /// Whether the reason makes the user a member of the group (everything but grants in the
    /// other-customers context).
    pub fn is_membership(&self) -> bool {
        !matches!(
            self,
            Self::Customer {
                context: Context::OtherCustomers,
                ..
            }
        )
    }
}

/// The group configuration that decides permissions.
#[derive(Debug, Clone)]
pub struct Policy {
    /// OTRS `CustomerGroupSupport`; off = every valid group, every key, for everyone.
    pub customer_group_support: bool,
    pub always_groups: Vec<String>,
    pub customer_always_groups: Vec<String>,
    /// Every configured permission key (`rw` among them).
    pub keys: Vec<String>,
}

/// What is stored about one customer user.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Names of every valid group.
    pub valid_groups: Vec<String>,
    /// Direct grants: (group, key), value 1.
    pub direct: Vec<(String, String)>,
    /// Grants of the user's customers: (customer id, group, key, context), value 1.
    pub via_customers: Vec<(String, String, String, Context)>,
    /// The user's customer ids (primary first).
    pub customer_ids: Vec<String>,
}

/// For each valid group, each granted key with every reason, sorted by group then key.
pub type Effective = BTreeMap<String, BTreeMap<String, BTreeSet<Reason>>>;

/// Computes the effective permissions (spec 5.9): direct grants, grants of the user's customers
/// (both contexts, reported with theirs), always-groups of users and of customers, or every
/// valid group when group support is off. `rw` implies every configured key. Grants on invalid
/// or unknown groups, and keys that are not configured, count for nothing.
pub fn effective(facts: &Facts, policy: &Policy) -> Effective {
    let valid: BTreeMap<String, &String> =
        facts.valid_groups.iter().map(|g| (fold(g), g)).collect();
    let mut out: Effective = BTreeMap::new();
    let mut grant = |group: &str, key: &str, reason: Reason| {
        let Some(name) = valid.get(&fold(group)) else {
            return;
        };
        let keys: Vec<&String> = if key == RW {
            policy.keys.iter().collect()
        } else {
            policy.keys.iter().filter(|k| *k == key).collect()
        };
        for k in keys {
            let mut reason = reason.clone();
            if key == RW && k != RW {
                match &mut reason {
                    Reason::Direct { via_rw } | Reason::Customer { via_rw, .. } => *via_rw = true,
                    _ => {}
                }
            }
            out.entry((*name).clone())
                .or_default()
                .entry(k.clone())
                .or_default()
                .insert(reason);
        }
    };
    if !policy.customer_group_support {
        for g in &facts.valid_groups {
            grant(g, RW, Reason::GroupSupportOff);
        }
    }
    for g in &policy.always_groups {
        grant(g, RW, Reason::AlwaysGroup);
    }
    for cid in &facts.customer_ids {
        for g in &policy.customer_always_groups {
            grant(
                g,
                RW,
                Reason::CustomerAlwaysGroup {
                    customer_id: cid.clone(),
                },
            );
        }
    }
    for (g, key) in &facts.direct {
        grant(g, key, Reason::Direct { via_rw: false });
    }
    for (cid, g, key, context) in &facts.via_customers {
        grant(
            g,
            key,
            Reason::Customer {
                customer_id: cid.clone(),
                context: *context,
                via_rw: false,
            },
        );
    }
    out
}

/// The groups in which the user is a member with `key` (OTRS GroupMemberList by user).
pub fn member_groups(effective: &Effective, key: &str) -> Vec<String> {
    effective
        .iter()
        .filter(|(_, keys)| {
            keys.get(key)
                .is_some_and(|reasons| reasons.iter().any(Reason::is_membership))
        })
        .map(|(g, _)| g.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(support: bool) -> Policy {
        Policy {
            customer_group_support: support,
            always_groups: vec![],
            customer_always_groups: vec![],
            keys: vec!["ro".into(), "move_into".into(), "rw".into()],
        }
    }

    fn facts() -> Facts {
        Facts {
            valid_groups: vec!["users".into(), "admin".into(), "stats".into()],
            customer_ids: vec!["acme".into()],
            ..Default::default()
        }
    }

    #[test]
    fn direct_grants_and_rw_implication() {
        let mut f = facts();
        f.direct = vec![("users".into(), "ro".into()), ("admin".into(), "rw".into())];
        let e = effective(&f, &policy(true));
        assert_eq!(member_groups(&e, "ro"), ["admin", "users"]);
        assert_eq!(member_groups(&e, "rw"), ["admin"]);
        assert_eq!(member_groups(&e, "move_into"), ["admin"]);
        assert!(e["admin"]["ro"].contains(&Reason::Direct { via_rw: true }));
        assert!(e["admin"]["rw"].contains(&Reason::Direct { via_rw: false }));
    }

    #[test]
    fn customer_grants_in_both_contexts() {
        let mut f = facts();
        f.via_customers = vec![
            (
                "acme".into(),
                "stats".into(),
                "rw".into(),
                Context::SameCustomer,
            ),
            (
                "acme".into(),
                "admin".into(),
                "ro".into(),
                Context::OtherCustomers,
            ),
        ];
        let e = effective(&f, &policy(true));
        assert_eq!(member_groups(&e, "rw"), ["stats"]);
        assert_eq!(
            member_groups(&e, "ro"),
            ["stats"],
            "other-customers grants are no membership"
        );
        assert!(e["admin"]["ro"].iter().all(|r| !r.is_membership()));
    }

    #[test]
    fn always_groups_and_support_off() {
        let mut p = policy(true);
        p.always_groups = vec!["users".into(), "missing".into()];
        p.customer_always_groups = vec!["stats".into()];
        let e = effective(&facts(), &p);
        assert_eq!(member_groups(&e, "move_into"), ["stats", "users"]);
        assert!(e["stats"]["ro"].contains(&Reason::CustomerAlwaysGroup {
            customer_id: "acme".into()
        }));
        let off = effective(&facts(), &policy(false));
        assert_eq!(member_groups(&off, "ro"), ["admin", "stats", "users"]);
    }

    #[test]
    fn invalid_groups_and_unknown_keys_count_for_nothing() {
        let mut f = facts();
        f.direct = vec![
            ("gone".into(), "rw".into()),
            ("users".into(), "owner".into()),
        ];
        assert!(effective(&f, &policy(true)).is_empty());
    }
}
