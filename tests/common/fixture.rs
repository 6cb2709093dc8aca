//! One data set on every backend, and `per_backend!`, which turns each behaviour into one test
//! per backend.
//!
//! A [`Fixture`] is a running server whose customer-user source `"main"` holds a given list of
//! [`Person`]s on one [`Target`]: on SQLite, PostgreSQL and MariaDB seeded through the API (a
//! fresh database per test, see [`super::fresh_db`]); on OpenLDAP loaded as LDIF into the test's
//! own `slapd` (see [`super::slapd`]), with preferences and memberships in an SQLite side store
//! beside it. A backend that is not available skips the test with a message, or fails it under
//! `CLIENTELE_TEST_REQUIRE_ALL=1` (the rule of `fresh_db` and `Slapd::start`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use clientele::proto as pb;

use super::slapd::{attr, Slapd, ADMIN_DN, ADMIN_PW};
use super::{fresh_db, user_source, Backend, TestDb, TestServer};

/// The backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Sqlite,
    Postgres,
    MariaDb,
    Ldap,
}

impl Target {
    /// The SQL backend, `None` for the directory.
    pub fn sql(self) -> Option<Backend> {
        match self {
            Self::Sqlite => Some(Backend::Sqlite),
            Self::Postgres => Some(Backend::Postgres),
            Self::MariaDb => Some(Backend::MySql),
            Self::Ldap => None,
        }
    }
}

/// The name of the fixture's customer-user source.
pub const SOURCE: &str = "main";

/// The auth settings of every fixture: rate limits off (the auth tests check them themselves).
const AUTH: &str =
    "[auth]\n[auth.rate_limit]\nper_login_per_minute = 0\nper_client_per_minute = 0\n";

/// One customer user of a data set: the first customer id (there must be one) is the primary
/// one, the others are memberships (SQL) or further values of `o` (LDAP).
#[derive(Debug, Clone)]
pub struct Person {
    pub login: String,
    pub first: String,
    pub last: String,
    pub email: String,
    pub customer_ids: Vec<String>,
    pub valid: bool,
    /// A password to log in with (SQL: set on create; LDAP: `userPassword`).
    pub password: Option<String>,
}

impl Person {
    /// A valid person without a password.
    pub fn new(login: &str, first: &str, last: &str, email: &str, customer_ids: &[&str]) -> Self {
        Self {
            login: login.into(),
            first: first.into(),
            last: last.into(),
            email: email.into(),
            customer_ids: customer_ids.iter().map(|c| (*c).to_owned()).collect(),
            valid: true,
            password: None,
        }
    }

    /// The same person, invalid (SQL `valid_id` 2; LDAP matched by `invalid_filter`).
    pub fn invalid(mut self) -> Self {
        self.valid = false;
        self
    }

    /// The same person with a password.
    pub fn password(mut self, pw: &str) -> Self {
        self.password = Some(pw.into());
        self
    }

    fn ldif(&self) -> String {
        let mut e = attr(
            "dn",
            &format!("uid={},ou=people,{}", self.login, super::slapd::SUFFIX),
        ) + "objectClass: inetOrgPerson\n";
        e += &attr("uid", &self.login);
        e += &attr("cn", &format!("{} {}", self.first, self.last));
        e += &attr("givenName", &self.first);
        e += &attr("sn", &self.last);
        e += &attr("mail", &self.email);
        for o in &self.customer_ids {
            e += &attr("o", o);
        }
        if !self.valid {
            e += "employeeType: inactive\n";
        }
        if let Some(pw) = &self.password {
            e += &attr("userPassword", pw);
        }
        e + "\n"
    }
}

/// A running server whose source [`SOURCE`] holds a data set on [`Fixture::target`].
pub struct Fixture {
    pub s: TestServer,
    pub target: Target,
    /// The SQL database (for raw SQL); `None` on LDAP.
    pub db: Option<TestDb>,
    /// The directory; `None` on SQL.
    pub slapd: Option<Slapd>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A server on `target` holding `people`, or `None` (with a message) when the backend is
    /// not available and not required.
    pub async fn start(target: Target, people: &[Person]) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        match target.sql() {
            Some(backend) => {
                let db = fresh_db(backend).await?;
                let config = "customer_sources = []\n".to_owned()
                    + &user_source(
                        SOURCE,
                        &db.url,
                        "customer_user",
                        "customer_company_support = false\nemail_unique = false",
                    )
                    + AUTH;
                let mut s = TestServer::start(&config).await;
                for p in people {
                    seed(&mut s, p).await;
                }
                Some(Self {
                    s,
                    target,
                    db: Some(db),
                    slapd: None,
                    _dir: dir,
                })
            }
            None => {
                let ldif: String = people.iter().map(Person::ldif).collect();
                let slapd = Slapd::start(&ldif)?;
                let pw = dir.path().join("bind.pw");
                std::fs::write(&pw, ADMIN_PW).expect("write bind password");
                let config = format!(
                    "customer_sources = []\n[[customer_user_sources]]\nname = \"{SOURCE}\"\nkind = \"ldap\"\nurl = \"{}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\nscope = \"one\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nalways_filter = \"(objectClass=inetOrgPerson)\"\ninvalid_filter = \"(employeeType=inactive)\"\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\ncustomer_company_support = false\nstore_url = \"sqlite://{}\"\n{AUTH}",
                    slapd.url(),
                    pw.display(),
                    dir.path().join("store.db").display()
                );
                let s = TestServer::start(&config).await;
                Some(Self {
                    s,
                    target,
                    db: None,
                    slapd: Some(slapd),
                    _dir: dir,
                })
            }
        }
    }

    /// Stops the server (then the backends go with the fixture).
    pub async fn stop(self) {
        self.s.stop().await;
    }
}

/// Creates `p` through the API, then its further customer ids as memberships.
async fn seed(s: &mut TestServer, p: &Person) {
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(pb::CustomerUser {
                login: p.login.clone(),
                first_name: p.first.clone(),
                last_name: p.last.clone(),
                email: p.email.clone(),
                customer_id: p.customer_ids[0].clone(),
                validity: if p.valid {
                    pb::Validity::Valid
                } else {
                    pb::Validity::Invalid
                }
                .into(),
                ..Default::default()
            }),
            password: p.password.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("seed {}: {e:?}", p.login));
    for extra in &p.customer_ids[1..] {
        s.users
            .set_customer_membership(pb::SetCustomerMembershipRequest {
                login: p.login.clone(),
                customer_id: extra.clone(),
                member: true,
            })
            .await
            .unwrap_or_else(|e| panic!("seed {} member of {extra}: {e:?}", p.login));
    }
}

/// The fixture of behaviours that set up their own SQL database (`async fn a(backend: Backend)`
/// calling [`super::fresh_db`], which does the skipping): the [`Backend`] of an SQL target.
/// Used in `writes [..]` only; on [`Target::Ldap`] it gives `None`.
pub async fn sql_backend(target: Target) -> Option<Backend> {
    target.sql()
}

/// `per_backend! { fixture: reads [a, b] writes [c] ldap [d]; other_fixture: reads [e]; }`: for
/// each behaviour `async fn a(fx: F)`, one test per backend in modules `sqlite`, `postgres`,
/// `mariadb` and `ldap`, so a failure names the behaviour and the backend (`ldap::a`). `reads`
/// run on all four, `writes` on the SQL three, `ldap` on the directory only; each list may be
/// left out. `fixture` is an `async fn(Target) -> Option<F>`; `None` skips the test (the fixture
/// reports why, or panics under `CLIENTELE_TEST_REQUIRE_ALL=1`).
#[allow(unused_macros)]
macro_rules! per_backend {
    ($($fixture:path : $(reads [$($r:ident),* $(,)?])? $(writes [$($w:ident),* $(,)?])? $(ldap [$($l:ident),* $(,)?])? ;)+) => {
        $crate::common::fixture::per_backend!(@mod sqlite, Sqlite, $($fixture : [$($($r,)*)? $($($w,)*)?])+);
        $crate::common::fixture::per_backend!(@mod postgres, Postgres, $($fixture : [$($($r,)*)? $($($w,)*)?])+);
        $crate::common::fixture::per_backend!(@mod mariadb, MariaDb, $($fixture : [$($($r,)*)? $($($w,)*)?])+);
        $crate::common::fixture::per_backend!(@mod ldap, Ldap, $($fixture : [$($($r,)*)? $($($l,)*)?])+);
    };
    (@mod $m:ident, $target:ident, $($fixture:path : [$($t:ident,)*])+) => {
        mod $m {
            #[allow(unused_imports)]
            use super::*;
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $t() {
                    if let Some(fx) = $fixture($crate::common::fixture::Target::$target).await {
                        super::$t(fx).await
                    }
                }
            )*)+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use per_backend;
