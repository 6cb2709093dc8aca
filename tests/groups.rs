//! GroupService over the real server: the group scenarios of the OTRS suites (spec 8.14),
//! rewritten, against SQLite, PostgreSQL and MariaDB.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;

use clientele::proto::{self as pb, grant_reason::Kind, group_service_client::GroupServiceClient};
use common::{customer_source, fresh_db, user_source, violations, Backend, TestServer};
use tonic::{transport::Channel, Code};

struct Env {
    s: TestServer,
    groups: GroupServiceClient<Channel>,
    _db: common::TestDb,
}

/// Users and customers on one database; `[groups]` settings as given.
async fn env(backend: Backend, groups: &str) -> Option<Env> {
    let db = fresh_db(backend).await?;
    let config = user_source("main", &db.url, "customer_user", "")
        + &customer_source("main", &db.url, "customer_company", "")
        + "[groups]\n"
        + groups;
    let s = TestServer::start(&config).await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Some(Env {
        s,
        groups: GroupServiceClient::new(channel),
        _db: db,
    })
}

const STRICT: &str = "customer_group_support = true\nalways_groups = []\ncustomer_always_groups = []\npermissions = [\"ro\", \"move_into\", \"rw\"]\n";

impl Env {
    async fn customer(&mut self, id: &str) {
        self.s
            .customers
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    customer_id: id.into(),
                    name: format!("{id} Inc."),
                    ..Default::default()
                }),
                source: String::new(),
            })
            .await
            .expect("create customer");
    }

    async fn user(&mut self, login: &str, customer: &str) {
        self.s
            .users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(pb::CustomerUser {
                    login: login.into(),
                    first_name: "F".into(),
                    last_name: "L".into(),
                    email: format!("{login}@example.com"),
                    customer_id: customer.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("create user");
    }

    async fn grant_user(
        &mut self,
        login: &str,
        group: &str,
        perms: &[(&str, bool)],
    ) -> Vec<String> {
        self.groups
            .set_customer_user_permissions(pb::SetCustomerUserPermissionsRequest {
                login: login.into(),
                group: group.into(),
                permissions: perms.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            })
            .await
            .expect("grant user")
            .into_inner()
            .permissions
    }

    async fn grant_customer(
        &mut self,
        cid: &str,
        group: &str,
        ctx: pb::PermissionContext,
        perms: &[(&str, bool)],
    ) -> Vec<String> {
        self.groups
            .set_customer_permissions(pb::SetCustomerPermissionsRequest {
                customer_id: cid.into(),
                group: group.into(),
                context: ctx.into(),
                permissions: perms.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            })
            .await
            .expect("grant customer")
            .into_inner()
            .permissions
    }

    async fn groups_of(&mut self, login: &str, perm: &str) -> Vec<String> {
        self.groups
            .list_customer_user_groups(pb::ListCustomerUserGroupsRequest {
                login: login.into(),
                permission: perm.into(),
            })
            .await
            .expect("list groups")
            .into_inner()
            .groups
            .into_iter()
            .map(|g| g.name)
            .collect()
    }

    /// Every member, walked in pages of `size` (each page at most `size`).
    async fn members_paged(&mut self, group: &str, perm: &str, size: u32) -> Vec<String> {
        let mut token = String::new();
        let mut out = Vec::new();
        loop {
            let r = self
                .groups
                .list_group_customer_users(pb::ListGroupCustomerUsersRequest {
                    group: group.into(),
                    permission: perm.into(),
                    page_size: size,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .expect("list members")
                .into_inner();
            assert!(r.logins.len() <= size as usize);
            out.extend(r.logins);
            if r.next_page_token.is_empty() {
                return out;
            }
            token = r.next_page_token;
        }
    }

    async fn members(&mut self, group: &str, perm: &str) -> Vec<String> {
        self.groups
            .list_group_customer_users(pb::ListGroupCustomerUsersRequest {
                group: group.into(),
                permission: perm.into(),
                limit: 0,
                ..Default::default()
            })
            .await
            .expect("list members")
            .into_inner()
            .logins
    }

    async fn effective(&mut self, login: &str) -> HashMap<(String, String), Vec<pb::GrantReason>> {
        self.groups
            .get_effective_permissions(pb::GetEffectivePermissionsRequest {
                login: login.into(),
            })
            .await
            .expect("effective")
            .into_inner()
            .groups
            .into_iter()
            .flat_map(|g| {
                let group = g.group;
                g.permissions
                    .into_iter()
                    .map(move |k| ((group.clone(), k.permission), k.reasons))
            })
            .collect()
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

async fn group_crud(backend: Backend) {
    let Some(mut e) = env(backend, STRICT).await else {
        return;
    };
    let names =
        |r: pb::ListGroupsResponse| r.groups.into_iter().map(|g| g.name).collect::<Vec<_>>();
    let all = e
        .groups
        .list_groups(pb::ListGroupsRequest {
            include_invalid: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(all), ["admin", "stats", "users"], "OTRS seeds");
    e.groups
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "support".into(),
                comment: "Helpdesk".into(),
                validity: 0,
            }),
        })
        .await
        .expect("create");
    let err = e
        .groups
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "SUPPORT".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = e
        .groups
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group::default()),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["group.name"]);
    let g = e
        .groups
        .get_group(pb::GetGroupRequest {
            name: "Support".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (g.name.as_str(), g.comment.as_str(), g.validity),
        ("support", "Helpdesk", pb::Validity::Valid as i32)
    );
    let renamed = e
        .groups
        .update_group(pb::UpdateGroupRequest {
            name: "support".into(),
            group: Some(pb::Group {
                name: "second-level".into(),
                validity: pb::Validity::Invalid as i32,
                ..Default::default()
            }),
            update_mask: mask(&["name", "validity"]),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(
        (renamed.name.as_str(), renamed.comment.as_str()),
        ("second-level", "Helpdesk")
    );
    let valid = e
        .groups
        .list_groups(pb::ListGroupsRequest {
            include_invalid: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(valid), ["admin", "stats", "users"]);
    assert_eq!(
        e.groups
            .get_group(pb::GetGroupRequest {
                name: "support".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    e.s.stop().await;
}

async fn direct_grants_and_rw(backend: Backend) {
    let Some(mut e) = env(backend, STRICT).await else {
        return;
    };
    e.customer("cid").await;
    e.user("uid", "cid").await;
    // 153: an empty permission map is fine and changes nothing.
    assert!(e.grant_user("uid", "users", &[]).await.is_empty());
    // 154.
    assert_eq!(e.grant_user("uid", "users", &[("ro", true)]).await, ["ro"]);
    assert_eq!(e.groups_of("uid", "ro").await, ["users"]);
    assert!(e.groups_of("uid", "rw").await.is_empty());
    // 155: keys not named stay as they are; false removes.
    assert_eq!(
        e.grant_user("uid", "users", &[("move_into", true), ("rw", false)])
            .await,
        ["move_into", "ro"]
    );
    assert_eq!(e.groups_of("uid", "move_into").await, ["users"]);
    assert_eq!(
        e.grant_user("uid", "users", &[("ro", false)]).await,
        ["move_into"]
    );
    assert!(
        e.groups_of("uid", "ro").await.is_empty(),
        "164: move_into only does not give ro"
    );
    // 156: rw implies every key.
    e.grant_user("uid", "admin", &[("rw", true)]).await;
    assert_eq!(e.groups_of("uid", "ro").await, ["admin"]);
    assert_eq!(e.groups_of("uid", "move_into").await, ["admin", "users"]);
    let eff = e.effective("uid").await;
    let ro_admin = &eff[&("admin".to_owned(), "ro".to_owned())];
    assert_eq!(ro_admin.len(), 1);
    assert_eq!(
        (ro_admin[0].kind, ro_admin[0].via_rw),
        (Kind::Direct as i32, true)
    );
    // 166/167: members by group, sorted, valid only (183).
    e.user("uid2", "cid").await;
    e.user("uid3", "cid").await;
    e.grant_user("uid2", "users", &[("ro", true)]).await;
    e.grant_user("uid3", "users", &[("rw", true)]).await;
    assert_eq!(e.members("users", "ro").await, ["uid2", "uid3"]);
    e.s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "uid2".into(),
            customer_user: Some(pb::CustomerUser {
                validity: pb::Validity::Invalid as i32,
                ..Default::default()
            }),
            update_mask: mask(&["validity"]),
        })
        .await
        .unwrap();
    assert_eq!(e.members("users", "ro").await, ["uid3"]);
    e.s.stop().await;
}

async fn company_inheritance(backend: Backend) {
    let Some(mut e) = env(backend, STRICT).await else {
        return;
    };
    use pb::PermissionContext::{OtherCustomers, SameCustomer};
    e.customer("cid").await;
    e.customer("cid2").await;
    e.user("uid", "cid").await;
    e.user("member", "cid2").await;
    e.s.users
        .set_customer_membership(pb::SetCustomerMembershipRequest {
            login: "member".into(),
            customer_id: "cid".into(),
            member: true,
        })
        .await
        .unwrap();
    // 173/174: user ro on users; company rw on users (same customer) -> rw via the company.
    e.grant_user("uid", "users", &[("ro", true)]).await;
    assert!(e.groups_of("uid", "rw").await.is_empty());
    assert_eq!(
        e.grant_customer("cid", "users", SameCustomer, &[("rw", true)])
            .await,
        ["rw"]
    );
    assert_eq!(e.groups_of("uid", "rw").await, ["users"]);
    assert_eq!(
        e.groups_of("member", "rw").await,
        ["users"],
        "members of the customer inherit too"
    );
    assert_eq!(e.members("users", "rw").await, ["member", "uid"]);
    let eff = e.effective("uid").await;
    let reasons = &eff[&("users".to_owned(), "ro".to_owned())];
    assert!(reasons
        .iter()
        .any(|r| r.kind == Kind::Direct as i32 && !r.via_rw));
    assert!(reasons.iter().any(|r| r.kind == Kind::Customer as i32
        && r.customer_id == "cid"
        && r.context == SameCustomer as i32
        && r.via_rw));
    // 175: replace semantics for customers; an empty map resets the context.
    assert!(e
        .grant_customer("cid", "users", SameCustomer, &[])
        .await
        .is_empty());
    assert!(e.members("users", "rw").await.is_empty());
    // 176: user ro on users/admin/stats + company rw on stats.
    e.grant_user("uid", "admin", &[("ro", true)]).await;
    e.grant_user("uid", "stats", &[("ro", true)]).await;
    e.grant_customer("cid", "stats", SameCustomer, &[("rw", true)])
        .await;
    assert_eq!(e.groups_of("uid", "rw").await, ["stats"]);
    assert_eq!(e.groups_of("uid", "ro").await, ["admin", "stats", "users"]);
    // The other-customers context is reported, but is no membership.
    e.grant_customer("cid", "admin", OtherCustomers, &[("rw", true)])
        .await;
    assert_eq!(e.groups_of("uid", "rw").await, ["stats"]);
    let eff = e.effective("uid").await;
    assert!(eff[&("admin".to_owned(), "rw".to_owned())]
        .iter()
        .any(|r| r.kind == Kind::Customer as i32 && r.context == OtherCustomers as i32));
    // 186-like: keys outside the configuration are refused, not silently dropped.
    let err = e
        .groups
        .set_customer_permissions(pb::SetCustomerPermissionsRequest {
            customer_id: "cid".into(),
            group: "users".into(),
            context: SameCustomer.into(),
            permissions: [("owner".to_owned(), true)].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["permissions.owner"]);
    e.s.stop().await;
}

async fn always_groups_and_support_off(backend: Backend) {
    let Some(mut e) = env(backend, "customer_group_support = true\nalways_groups = [\"users\"]\ncustomer_always_groups = [\"stats\"]\n").await else { return };
    e.customer("cid").await;
    e.user("uid", "cid").await;
    assert_eq!(e.groups_of("uid", "ro").await, ["stats", "users"]);
    assert_eq!(e.groups_of("uid", "rw").await, ["stats", "users"]);
    let eff = e.effective("uid").await;
    assert_eq!(
        eff[&("users".to_owned(), "ro".to_owned())][0].kind,
        Kind::AlwaysGroup as i32
    );
    let r = &eff[&("stats".to_owned(), "rw".to_owned())][0];
    assert_eq!(
        (r.kind, r.customer_id.as_str()),
        (Kind::CustomerAlwaysGroup as i32, "cid")
    );
    assert_eq!(e.members("users", "ro").await, ["uid"]);
    assert!(e.members("admin", "ro").await.is_empty());
    // Members page by login: an always-group (every valid user) and granted ones.
    for i in 0..5 {
        e.user(&format!("u{i}"), "cid").await;
        e.grant_user(&format!("u{i}"), "admin", &[("ro", true)])
            .await;
    }
    let everyone = ["u0", "u1", "u2", "u3", "u4", "uid"];
    assert_eq!(e.members_paged("users", "ro", 2).await, everyone);
    assert_eq!(e.members_paged("admin", "ro", 2).await, everyone[..5]);
    let first = e
        .groups
        .list_group_customer_users(pb::ListGroupCustomerUsersRequest {
            group: "admin".into(),
            permission: "ro".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let e2 = e
        .groups
        .list_group_customer_users(pb::ListGroupCustomerUsersRequest {
            group: "admin".into(),
            permission: "rw".into(),
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&e2), ["page_token"], "bound to its query");
    // An invalid always-group counts for nothing.
    e.groups
        .update_group(pb::UpdateGroupRequest {
            name: "users".into(),
            group: Some(pb::Group {
                validity: pb::Validity::Invalid as i32,
                ..Default::default()
            }),
            update_mask: mask(&["validity"]),
        })
        .await
        .unwrap();
    assert_eq!(e.groups_of("uid", "ro").await, ["stats"]);
    e.s.stop().await;

    // 184: group support off -> every valid group, every key, for everyone.
    let Some(mut e) = env(backend, "customer_group_support = false\n").await else {
        return;
    };
    e.customer("cid").await;
    e.user("uid", "cid").await;
    assert_eq!(e.groups_of("uid", "rw").await, ["admin", "stats", "users"]);
    let eff = e.effective("uid").await;
    assert!(eff[&("admin".to_owned(), "ro".to_owned())]
        .iter()
        .any(|r| r.kind == Kind::GroupSupportOff as i32));
    assert_eq!(e.members("admin", "rw").await, ["uid"]);
    e.s.stop().await;
}

async fn renames_keep_grants(backend: Backend) {
    let Some(mut e) = env(backend, STRICT).await else {
        return;
    };
    use pb::PermissionContext::SameCustomer;
    e.customer("cid").await;
    e.user("uid", "cid").await;
    e.grant_user("uid", "admin", &[("ro", true)]).await;
    e.grant_customer("cid", "stats", SameCustomer, &[("ro", true)])
        .await;
    e.s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "uid".into(),
            customer_user: Some(pb::CustomerUser {
                login: "uid-renamed".into(),
                ..Default::default()
            }),
            update_mask: mask(&["login"]),
        })
        .await
        .expect("rename login");
    e.s.customers
        .update_customer(pb::UpdateCustomerRequest {
            customer_id: "cid".into(),
            customer: Some(pb::Customer {
                customer_id: "cid-renamed".into(),
                ..Default::default()
            }),
            update_mask: mask(&["customer_id"]),
        })
        .await
        .expect("rename customer");
    assert_eq!(e.groups_of("uid-renamed", "ro").await, ["admin", "stats"]);
    let eff = e.effective("uid-renamed").await;
    assert!(eff[&("stats".to_owned(), "ro".to_owned())]
        .iter()
        .any(|r| r.customer_id == "cid-renamed"));
    e.s.stop().await;
}

async fn caller_mistakes(backend: Backend) {
    let Some(mut e) = env(backend, STRICT).await else {
        return;
    };
    e.customer("cid").await;
    e.user("uid", "cid").await;
    let err = e
        .groups
        .set_customer_user_permissions(pb::SetCustomerUserPermissionsRequest {
            login: "uid".into(),
            group: "nope".into(),
            permissions: [("ro".to_owned(), true)].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), violations(&err)),
        (Code::InvalidArgument, vec!["group".to_owned()])
    );
    let err = e
        .groups
        .set_customer_user_permissions(pb::SetCustomerUserPermissionsRequest {
            login: "uid".into(),
            group: "users".into(),
            permissions: [("fly".to_owned(), true)].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["permissions.fly"]);
    let err = e
        .groups
        .set_customer_permissions(pb::SetCustomerPermissionsRequest {
            customer_id: "cid".into(),
            group: "users".into(),
            context: 0,
            permissions: [("ro".to_owned(), true)].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["context"]);
    let err = e
        .groups
        .list_customer_user_groups(pb::ListCustomerUserGroupsRequest {
            login: "uid".into(),
            permission: "write".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["permission.write"]);
    let err = e
        .groups
        .list_customer_user_groups(pb::ListCustomerUserGroupsRequest {
            login: "ghost".into(),
            permission: "ro".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = e
        .groups
        .set_customer_permissions(pb::SetCustomerPermissionsRequest {
            customer_id: "ghost".into(),
            group: "users".into(),
            context: 1,
            permissions: [("ro".to_owned(), true)].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    e.s.stop().await;
}

async fn otobo_table_name(backend: Backend) {
    let Some(mut e) = env(backend, &format!("table = \"groups_table\"\n{STRICT}")).await else {
        return;
    };
    e.customer("cid").await;
    e.user("uid", "cid").await;
    e.grant_user("uid", "stats", &[("rw", true)]).await;
    assert_eq!(e.groups_of("uid", "move_into").await, ["stats"]);
    e.s.stop().await;
}

common::fixture::per_backend! {
    common::fixture::sql_backend: writes [
        group_crud,
        direct_grants_and_rw,
        company_inheritance,
        always_groups_and_support_off,
        renames_keep_grants,
        caller_mistakes,
        otobo_table_name,
    ];
}
