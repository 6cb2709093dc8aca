//! The source's matching rules (`domain::matching`) through the real server: an LDAP source
//! configured `case_sensitive = true` applies it to memberships of further customer-id values
//! (which once compared folded values) and to logins answered from the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use clientele::proto as pb;
use common::slapd::{person, Slapd, ADMIN_DN, ADMIN_PW};
use common::TestServer;
use tonic::Code;

/// A started directory and the files its source's configuration names.
struct Fixture {
    slapd: Slapd,
    dir: tempfile::TempDir,
    pw: std::path::PathBuf,
}

/// `jdoe` works at `acme` (primary) and `globex` (a further value of `o`).
fn fixture() -> Option<Fixture> {
    let ldif = person(
        "jdoe",
        "John",
        "Doe",
        "john.doe@example.com",
        &["acme", "globex"],
        "",
    );
    let slapd = Slapd::start(&ldif)?;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("bind.pw");
    std::fs::write(&pw, ADMIN_PW).unwrap();
    Some(Fixture { slapd, dir, pw })
}

impl Fixture {
    /// The configuration of one LDAP customer-user source; `extra` inside it.
    fn config(&self, extra: &str) -> String {
        format!(
            "customer_sources = []\n[[customer_user_sources]]\nname = \"dir\"\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\nscope = \"one\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=inetOrgPerson)\"\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\ncustomer_company_support = false\nstore_url = \"sqlite://{}\"\n{extra}\n",
            self.slapd.url(),
            self.pw.display(),
            self.dir.path().join("store.db").display(),
        )
    }
}

async fn users_of(s: &mut TestServer, customer_id: &str) -> Vec<String> {
    s.customers
        .list_customer_users_of_customer(pb::ListCustomerUsersOfCustomerRequest {
            customer_id: customer_id.into(),
            include_invalid: false,
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{customer_id}: {e:?}"))
        .into_inner()
        .customer_users
        .into_iter()
        .map(|u| u.login)
        .collect()
}

/// The directory's `o` matching is case-insensitive, so it returns `jdoe` for `GLOBEX`; the
/// source's rule decides. Case-insensitive: a member; case-sensitive: not (the membership
/// check of further customer ids ignored `case_sensitive` before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_case_sensitive_applies_to_further_customer_ids() {
    let Some(f) = fixture() else { return };

    let mut s = TestServer::start(&f.config("case_sensitive = false")).await;
    assert_eq!(users_of(&mut s, "globex").await, ["jdoe"]);
    assert_eq!(users_of(&mut s, "GLOBEX").await, ["jdoe"]);
    assert_eq!(users_of(&mut s, "ACME").await, ["jdoe"]);
    s.stop().await;

    let mut s = TestServer::start(&f.config("case_sensitive = true")).await;
    assert_eq!(users_of(&mut s, "globex").await, ["jdoe"]);
    assert_eq!(users_of(&mut s, "acme").await, ["jdoe"]);
    assert!(users_of(&mut s, "GLOBEX").await.is_empty());
    assert!(users_of(&mut s, "ACME").await.is_empty());
    s.stop().await;
}

/// With a cache in front, a case-sensitive source never answers `JDOE` from what it cached for
/// `jdoe` (the cache keyed logins by their fold before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_ldap_source_keeps_case_sensitive_logins_apart() {
    let Some(f) = fixture() else { return };
    let mut s = TestServer::start(&f.config("case_sensitive = true\ncache_ttl = \"60s\"")).await;
    for _ in 0..2 {
        let u = s
            .users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: "jdoe".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(u.login, "jdoe");
        let err = s
            .users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: "JDOE".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    s.stop().await;

    // Case-insensitive: both spellings are the same login, cached once.
    let mut s = TestServer::start(&f.config("cache_ttl = \"60s\"")).await;
    for login in ["jdoe", "JDOE", "jdoe"] {
        let u = s
            .users
            .get_customer_user(pb::GetCustomerUserRequest {
                login: login.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(u.login, "jdoe");
    }
    s.stop().await;
}
