//! Groups and customer permissions through the directory: grants are checked against existing
//! customer users, customers and groups, and effective permissions combine the group store with
//! the customer ids the sources know.

use std::collections::{BTreeMap, HashSet};

use tokio::time::Instant;

use super::{fanin::fan_out, Directory, Groups};
use crate::domain::{
    fold,
    group::{effective, group_schema, member_groups, Context, Effective, Facts, Group, RW},
    limits,
    record::check_record,
    search::{Detail, SortKey, UserCriterion, UserSearch},
    Patch, Validity,
};
use crate::error::{Error, FieldViolation, Result};
use crate::source::StoredGroup;

impl Directory {
    fn groups(&self) -> Result<&Groups> {
        self.groups
            .as_ref()
            .ok_or_else(|| Error::FailedPrecondition {
                reason: "NO_GROUP_STORE",
                message: "no SQL database is configured for groups ([groups] url)".into(),
            })
    }

    /// The group `name`, as an argument of a call: unknown is `InvalidArgument` on `field`.
    async fn group_arg(&self, name: &str, field: &str) -> Result<StoredGroup> {
        self.groups()?
            .store
            .get(name)
            .await?
            .ok_or_else(|| Error::invalid(field, format!("no group is named {name:?}")))
    }

    /// Checks that every key of `perms` is configured.
    fn check_keys<'a>(&self, keys: impl Iterator<Item = &'a String>, field: &str) -> Result<()> {
        let policy = &self.groups()?.policy;
        let bad: Vec<FieldViolation> = keys
            .filter(|k| !policy.keys.contains(k))
            .map(|k| {
                FieldViolation::new(
                    format!("{field}.{k}"),
                    format!(
                        "unknown permission key; configured: {}",
                        policy.keys.join(", ")
                    ),
                )
            })
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(bad))
        }
    }

    pub async fn create_group(&self, group: Group) -> Result<Group> {
        let v = check_record(&group, &group_schema(), "groups");
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        self.groups()?.store.create(&group).await
    }

    pub async fn get_group(&self, name: &str) -> Result<Group> {
        self.groups()?
            .store
            .get(name)
            .await?
            .map(|g| g.group)
            .ok_or_else(|| Error::not_found("group", name))
    }

    pub async fn list_groups(&self, include_invalid: bool) -> Result<Vec<Group>> {
        Ok(self
            .groups()?
            .store
            .list()
            .await?
            .into_iter()
            .map(|g| g.group)
            .filter(|g| include_invalid || g.validity == Validity::Valid)
            .collect())
    }

    pub async fn update_group(&self, name: &str, patch: Patch<Group>) -> Result<Group> {
        let store = &self.groups()?.store;
        let current = store
            .get(name)
            .await?
            .ok_or_else(|| Error::not_found("group", name))?;
        let v = check_record(&patch.apply(&current.group), &group_schema(), "groups");
        if !v.is_empty() {
            return Err(Error::InvalidArgument(v));
        }
        store.update(&current.group.name, &patch).await
    }

    /// Sets the named keys of a customer user on a group; the others stay as they are.
    pub async fn set_user_permissions(
        &self,
        login: &str,
        group: &str,
        permissions: BTreeMap<String, bool>,
        deadline: Instant,
    ) -> Result<Vec<String>> {
        self.check_keys(permissions.keys(), "permissions")?;
        let g = self.group_arg(group, "group").await?;
        let user = self.get_user(login, deadline).await?;
        if user.login.chars().count() > limits::MEMBERSHIP_LOGIN {
            return Err(Error::invalid(
                "login",
                format!(
                    "grants are stored for logins of at most {} characters",
                    limits::MEMBERSHIP_LOGIN
                ),
            ));
        }
        let changes: Vec<(String, bool)> = permissions.into_iter().collect();
        self.groups()?
            .store
            .set_user_permissions(&user.login, g.id, &changes)
            .await
    }

    /// Replaces the keys of a customer on a group in one context.
    pub async fn set_customer_permissions(
        &self,
        customer_id: &str,
        group: &str,
        context: Context,
        permissions: BTreeMap<String, bool>,
        deadline: Instant,
    ) -> Result<Vec<String>> {
        self.check_keys(permissions.keys(), "permissions")?;
        let g = self.group_arg(group, "group").await?;
        let customer_id = if self.customer_sources().next().is_some() {
            self.get_customer(customer_id, deadline).await?.customer_id
        } else {
            customer_id.to_owned()
        };
        let keys: Vec<String> = permissions
            .into_iter()
            .filter_map(|(k, granted)| granted.then_some(k))
            .collect();
        self.groups()?
            .store
            .set_customer_permissions(&customer_id, g.id, context, &keys)
            .await
    }

    /// Everything stored about `login` that decides its permissions.
    async fn effective_of(&self, login: &str, deadline: Instant) -> Result<Effective> {
        let groups = self.groups()?;
        // One lookup of the user for both its record and its customer ids.
        let (source, user) = self.locate_user(login, deadline).await?;
        let customer_ids = super::bounded(deadline, super::customer_ids_of(source, &user)).await?;
        let all = groups.store.list().await?;
        let name_of = |id: i64| {
            all.iter()
                .find(|g| g.id == id)
                .map(|g| g.group.name.clone())
        };
        let direct = groups
            .store
            .user_grants(&user.login)
            .await?
            .into_iter()
            .filter_map(|(id, key)| Some((name_of(id)?, key)))
            .collect();
        let via_customers = groups
            .store
            .customer_grants(&customer_ids)
            .await?
            .into_iter()
            .filter_map(|(cid, id, key, ctx)| Some((cid, name_of(id)?, key, ctx)))
            .collect();
        let facts = Facts {
            valid_groups: all
                .iter()
                .filter(|g| g.group.validity == Validity::Valid)
                .map(|g| g.group.name.clone())
                .collect(),
            direct,
            via_customers,
            customer_ids,
        };
        Ok(effective(&facts, &groups.policy))
    }

    /// For every group, each key `login` holds and why.
    pub async fn effective_permissions(&self, login: &str, deadline: Instant) -> Result<Effective> {
        self.effective_of(login, deadline).await
    }

    /// The groups in which `login` holds `permission` (OTRS GroupMemberList by user).
    pub async fn customer_user_groups(
        &self,
        login: &str,
        permission: &str,
        deadline: Instant,
    ) -> Result<Vec<Group>> {
        self.check_keys(std::iter::once(&permission.to_owned()), "permission")?;
        let eff = self.effective_of(login, deadline).await?;
        let names = member_groups(&eff, permission);
        let all = self.groups()?.store.list().await?;
        Ok(all
            .into_iter()
            .filter(|g| names.contains(&g.group.name))
            .map(|g| g.group)
            .collect())
    }

    /// The valid customer users holding `permission` in `group`, sorted, at most `limit`.
    pub async fn group_customer_users(
        &self,
        group: &str,
        permission: &str,
        limit: usize,
        after: Option<String>,
        deadline: Instant,
    ) -> Result<(Vec<String>, Option<String>)> {
        self.check_keys(std::iter::once(&permission.to_owned()), "permission")?;
        let groups = self.groups()?;
        let g = self.group_arg(group, "group").await?;
        if g.group.validity != Validity::Valid {
            return Ok((Vec::new(), None));
        }
        let policy = &groups.policy;
        let everyone = !policy.customer_group_support
            || policy
                .always_groups
                .iter()
                .chain(&policy.customer_always_groups)
                .any(|a| fold(a) == fold(&g.group.name));
        if everyone {
            let search = UserSearch {
                criterion: UserCriterion::everything(),
                include_invalid: false,
                limit: if limit == 0 {
                    self.user_limit
                } else {
                    limit.min(super::MAX_LIMIT)
                },
                detail: Detail {
                    after: after.map(|key| SortKey {
                        values: Vec::new(),
                        key,
                    }),
                    ..Detail::default()
                },
            };
            let walk = self.walk_users(search, &[], false, deadline).await?;
            return Ok((
                walk.items.into_iter().map(|u| u.login).collect(),
                walk.next.map(|n| n.key),
            ));
        }
        let keys: Vec<&str> = if permission == RW {
            vec![RW]
        } else {
            vec![permission, RW]
        };
        let direct = groups.store.group_user_grants(g.id, &keys).await?;
        let customers = groups
            .store
            .group_customer_grants(g.id, &keys, Context::SameCustomer)
            .await?;
        // Candidates: direct grantees, members of the customers, users whose primary customer
        // id is one of them — each resolved in one batch per source, first source winning.
        let members = fan_out(&self.users, deadline, |s| {
            s.companion.members_of_any(&customers)
        })
        .await;
        let mut candidates = direct;
        for (_, r) in members {
            candidates.extend(r?);
        }
        let by_login = fan_out(&self.users, deadline, |s| s.reader.get_many(&candidates)).await;
        let by_customer = fan_out(&self.users, deadline, |s| {
            s.reader.by_customer_ids(&customers)
        })
        .await;
        let mut seen = HashSet::new();
        let mut logins = Vec::new();
        for ((_, a), (_, b)) in by_login.into_iter().zip(by_customer) {
            for u in a?.into_iter().chain(b?) {
                if seen.insert(fold(&u.login)) && u.validity == Validity::Valid {
                    logins.push(u.login);
                }
            }
        }
        if let Some(after) = &after {
            logins.retain(|l| fold(l) > *after);
        }
        logins.sort_by_cached_key(|l| fold(l));
        let limit = if limit == 0 {
            self.user_limit
        } else {
            limit.min(super::MAX_LIMIT)
        };
        let truncated = logins.len() > limit;
        logins.truncate(limit);
        let next = if truncated {
            logins.last().map(|l| fold(l))
        } else {
            None
        };
        Ok((logins, next))
    }
}
