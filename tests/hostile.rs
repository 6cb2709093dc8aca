//! Hostile callers get nothing (issue 13), at the server: access is deny-by-default, scopes do
//! not leak records, a caller cannot pose as another client to the rate limits, and oversized
//! queries and requests are refused at once, before any source sees them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::Duration;

use clientele::proto::{self as pb, search_customer_users_request::Criterion};
use common::{user_source, violations, TestServer};
use sha2::{Digest, Sha256};
use tonic::{transport::Channel, Code};

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A `[[callers]]` entry whose token is `token-<name>`.
fn caller(name: &str, scopes: &[&str], extra: &str) -> String {
    format!(
        "[[callers]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nscopes = [{}]\n{extra}\n",
        sha(&format!("token-{name}")),
        scopes
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A request carrying the bearer token of `name` (none for `None`).
fn with_token<T>(message: T, name: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(n) = name {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer token-{n}").parse().unwrap(),
        );
    }
    req.set_timeout(Duration::from_secs(10));
    req
}

/// Calls `path` with an empty request and the token of `name`; the status code.
async fn raw_call(channel: Channel, path: &str, name: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::from_maybe_shared(path.to_owned().into_bytes()).unwrap();
    match grpc.unary(with_token((), name), path, codec).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

async fn channel(s: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A server on a fresh SQLite file with `extra` configuration before the source.
async fn server(extra: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let config = extra.to_owned()
        + &user_source(
            "main",
            &url,
            "customer_user",
            "customer_company_support = false",
        );
    (TestServer::start(&config).await, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_denied_by_default() {
    let callers = caller("reader", &["customer_users:read"], "") + &caller("root", &["admin"], "");
    let (s, _dir) = server(&callers).await;
    let ch = channel(&s).await;
    for path in [
        "/clientele.v1.CustomerUserService/DeleteEverything",
        "/clientele.v1.Secret/GetCustomerUser",
        "/grpc.health.v1.Sneaky/Check",
        "/nothing",
    ] {
        assert_eq!(
            raw_call(ch.clone(), path, None).await,
            Code::Unauthenticated,
            "{path}"
        );
        assert_eq!(
            raw_call(ch.clone(), path, Some("nobody")).await,
            Code::Unauthenticated,
            "{path}"
        );
        assert_eq!(
            raw_call(ch.clone(), path, Some("reader")).await,
            Code::PermissionDenied,
            "{path}"
        );
        assert_eq!(
            raw_call(ch.clone(), path, Some("root")).await,
            Code::Unimplemented,
            "{path}"
        );
    }
    // Health stays open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    assert!(health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new()
        })
        .await
        .is_ok());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_read_cannot_list_customer_users() {
    let callers =
        caller("crm", &["customers:read"], "") + &caller("reader", &["customer_users:read"], "");
    let (s, _dir) = server(&callers).await;
    let ch = channel(&s).await;
    let mut customers = pb::customer_service_client::CustomerServiceClient::new(ch.clone());
    let list = || pb::ListCustomerUsersOfCustomerRequest {
        customer_id: "acme".into(),
        ..Default::default()
    };
    let err = customers
        .list_customer_users_of_customer(with_token(list(), Some("crm")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("customer_users:read"), "{err:?}");
    // The scope that reads customer users may.
    let ok = customers
        .list_customer_users_of_customer(with_token(list(), Some("reader")))
        .await;
    assert!(
        !matches!(
            ok.as_ref().map_err(tonic::Status::code),
            Err(Code::PermissionDenied | Code::Unauthenticated)
        ),
        "{ok:?}"
    );
    s.stop().await;
}

// `..Default::default()` keeps this compiling when the request gains fields (e.g. `otp`).
#[allow(clippy::needless_update)]
async fn authenticate(
    ch: &Channel,
    caller: &str,
    login: &str,
    client_ip: &str,
) -> Result<pb::AuthenticateResponse, tonic::Status> {
    let mut auth = pb::auth_service_client::AuthServiceClient::new(ch.clone());
    auth.authenticate(with_token(
        pb::AuthenticateRequest {
            login: login.into(),
            password: "wrong".into(),
            client_ip: client_ip.into(),
            ..Default::default()
        },
        Some(caller),
    ))
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_trusted_callers_assert_the_client_ip() {
    let config = "[auth.rate_limit]\nper_login_per_minute = 0\nper_client_per_minute = 2\n"
        .to_owned()
        + &caller("app", &["auth:check"], "")
        + &caller("portal", &["auth:check"], "trusted_client_ip = true");
    let (s, _dir) = server(&config).await;
    let ch = channel(&s).await;
    let victim = "192.0.2.50";
    // An untrusted caller naming the victim spends its own (peer) bucket, not the victim's ...
    for i in 0..2 {
        authenticate(&ch, "app", &format!("a{i}"), victim)
            .await
            .unwrap();
    }
    // ... and cannot dodge its limit by naming yet another address.
    let err = authenticate(&ch, "app", "a3", "198.51.100.9")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // The victim's bucket is untouched: the trusted portal asserts it twice ...
    for i in 0..2 {
        authenticate(&ch, "portal", &format!("p{i}"), victim)
            .await
            .unwrap_or_else(|e| panic!("the victim's bucket was burnt by another caller: {e:?}"));
    }
    // ... and then it is spent, while another asserted client is not affected.
    let err = authenticate(&ch, "portal", "p3", victim).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    authenticate(&ch, "portal", "p4", "192.0.2.51")
        .await
        .unwrap();
    // An asserted client must be an address.
    let err = authenticate(&ch, "portal", "p5", "not an address")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["client_ip"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_queries_are_refused_at_once_naming_the_query() {
    let (mut s, _dir) = server("").await;
    let huge = "x ".repeat(500_000); // 1 MB
    let many = (0..33)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join("+");
    for query in [huge.as_str(), many.as_str(), &"y".repeat(1001)] {
        let err = s
            .users
            .search_customer_users(with_token(
                pb::SearchCustomerUsersRequest {
                    criterion: Some(Criterion::Query(query.to_owned())),
                    ..Default::default()
                },
                None,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(violations(&err), ["query"], "{err:?}");
        let err = s
            .customers
            .search_customers(with_token(
                pb::SearchCustomersRequest {
                    query: query.to_owned(),
                    ..Default::default()
                },
                None,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(violations(&err), ["query"], "{err:?}");
    }
    // Long login / customer_id patterns are bounded the same way.
    let err = s
        .users
        .search_customer_users(with_token(
            pb::SearchCustomerUsersRequest {
                criterion: Some(Criterion::Login("z".repeat(1_000_000))),
                ..Default::default()
            },
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["login"], "{err:?}");
    // Within the limits a query still works.
    let ok = s
        .users
        .search_customer_users(with_token(
            pb::SearchCustomerUsersRequest {
                criterion: Some(Criterion::Query(
                    (0..32)
                        .map(|i| format!("t{i}"))
                        .collect::<Vec<_>>()
                        .join("+"),
                )),
                ..Default::default()
            },
            None,
        ))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_by_the_codec() {
    // The default (4 MiB, as tonic's own) and a configured limit.
    for (config, size) in [
        ("", 5 * 1024 * 1024),
        ("[server]\nmax_request_bytes = 4096\n", 10_000),
    ] {
        let (mut s, _dir) = server(config).await;
        let err = s
            .customers
            .search_customers(with_token(
                pb::SearchCustomersRequest {
                    query: "q".repeat(size),
                    ..Default::default()
                },
                None,
            ))
            .await
            .unwrap_err();
        assert!(
            // tonic 0.14 answers OUT_OF_RANGE ("decoded message length too large").
            matches!(
                err.code(),
                Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
            ),
            "{err:?}"
        );
        // The query limit did not answer: the codec refused the message first.
        assert!(violations(&err).is_empty(), "{err:?}");
        s.stop().await;
    }
}
