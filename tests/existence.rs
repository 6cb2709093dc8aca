//! The one existence check of the directory: a key is written (created, or renamed onto) only
//! when every source proves it unused, so a source that is down makes the write UNAVAILABLE —
//! for customer ids as for logins, on create as on rename.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod common;

use clientele::proto as pb;
use common::{customer_source, fresh_db, user_source, Backend, TestServer};
use tonic::Code;

/// A customer source nobody listens on.
const DEAD: &str = "postgres://nobody@127.0.0.1:1/none";

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn customer(id: &str, name: &str) -> pb::Customer {
    pb::Customer {
        customer_id: id.into(),
        name: name.into(),
        ..Default::default()
    }
}

fn rename(from: &str, to: &str) -> pb::UpdateCustomerRequest {
    pb::UpdateCustomerRequest {
        customer_id: from.into(),
        customer: Some(customer(to, "")),
        update_mask: mask(&["customer_id"]),
    }
}

async fn customer_id_writes_need_every_source(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let users = user_source(
        "users",
        &db.url,
        "customer_user",
        "customer_company_support = false",
    );
    // First the live source alone: the customers exist before the second source is configured.
    let mut s = TestServer::start(
        &(users.clone() + &customer_source("live", &db.url, "customer_company", "")),
    )
    .await;
    s.customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(customer("acme", "Acme Inc.")),
            source: String::new(),
        })
        .await
        .expect("create acme");
    s.stop().await;

    let config = users
        + &customer_source("live", &db.url, "customer_company", "")
        + &customer_source("dead", DEAD, "customer_company", "connect_timeout = \"1s\"");
    let mut s = TestServer::start(&config).await;
    // Reads fall through the dead source.
    let acme = s
        .customers
        .get_customer(pb::GetCustomerRequest {
            customer_id: "acme".into(),
        })
        .await
        .expect("get acme while a source is down")
        .into_inner();
    assert_eq!(acme.source, "live");
    // The dead source may hold any id: a rename onto one cannot be proven safe.
    let err = s
        .customers
        .update_customer(rename("acme", "acme-intl"))
        .await
        .expect_err("rename while a source is down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("\"dead\""), "{}", err.message());
    // A rename that only changes case is checked the same way.
    let err = s
        .customers
        .update_customer(rename("acme", "ACME"))
        .await
        .expect_err("case-only rename while a source is down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Nothing was renamed.
    let still = s
        .customers
        .get_customer(pb::GetCustomerRequest {
            customer_id: "acme".into(),
        })
        .await
        .expect("acme is still there")
        .into_inner();
    assert_eq!(still.customer_id, "acme");
    // Creating a customer needs the same proof.
    let err = s
        .customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(customer("globex", "Globex")),
            source: "live".into(),
        })
        .await
        .expect_err("create while a source is down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Changes that keep the id do not ask the other sources.
    let updated = s
        .customers
        .update_customer(pb::UpdateCustomerRequest {
            customer_id: "acme".into(),
            customer: Some(pb::Customer {
                city: "Springfield".into(),
                ..Default::default()
            }),
            update_mask: mask(&["city"]),
        })
        .await
        .expect("update without rename")
        .into_inner();
    assert_eq!(updated.city, "Springfield");
    s.stop().await;
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn customer_id_writes_need_every_source() {
        super::customer_id_writes_need_every_source(Backend::Sqlite).await
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn customer_id_writes_need_every_source() {
        super::customer_id_writes_need_every_source(Backend::Postgres).await
    }
}

mod mariadb {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn customer_id_writes_need_every_source() {
        super::customer_id_writes_need_every_source(Backend::MySql).await
    }
}
