//! Running it in production: callers and scopes, TLS client certificates, refusing insecure
//! exposure, health, reflection, metrics, caching, and graceful shutdown of a real process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::Duration;

use clientele::access::{required_scope, Scope};
use clientele::proto as pb;
use common::{user_source, TestServer};
use sha2::{Digest, Sha256};
use tonic::{
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Code,
};

/// Every RPC of the four services.
const METHODS: &[&str] = &[
    "/clientele.v1.CustomerUserService/CreateCustomerUser",
    "/clientele.v1.CustomerUserService/GetCustomerUser",
    "/clientele.v1.CustomerUserService/UpdateCustomerUser",
    "/clientele.v1.CustomerUserService/SearchCustomerUsers",
    "/clientele.v1.CustomerUserService/ResolveSenders",
    "/clientele.v1.CustomerUserService/ListCustomerIds",
    "/clientele.v1.CustomerUserService/SetCustomerMembership",
    "/clientele.v1.CustomerUserService/GetPreferences",
    "/clientele.v1.CustomerUserService/SetPreference",
    "/clientele.v1.CustomerService/CreateCustomer",
    "/clientele.v1.CustomerService/GetCustomer",
    "/clientele.v1.CustomerService/UpdateCustomer",
    "/clientele.v1.CustomerService/SearchCustomers",
    "/clientele.v1.CustomerService/ListCustomerUsersOfCustomer",
    "/clientele.v1.GroupService/CreateGroup",
    "/clientele.v1.GroupService/GetGroup",
    "/clientele.v1.GroupService/ListGroups",
    "/clientele.v1.GroupService/UpdateGroup",
    "/clientele.v1.GroupService/SetCustomerUserPermissions",
    "/clientele.v1.GroupService/SetCustomerPermissions",
    "/clientele.v1.GroupService/ListCustomerUserGroups",
    "/clientele.v1.GroupService/ListGroupCustomerUsers",
    "/clientele.v1.GroupService/GetEffectivePermissions",
    "/clientele.v1.AuthService/Authenticate",
    "/clientele.v1.AuthService/SetPassword",
    "/clientele.v1.AuthService/UnlockLogin",
];

/// Calls `path` with an empty request (every field default) and the token; the status code.
async fn raw_call(channel: Channel, path: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(());
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::from_maybe_shared(path.to_owned().into_bytes()).unwrap();
    match grpc.unary(req, path, codec).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn callers() -> String {
    Scope::ALL
        .iter()
        .map(|s| {
            format!(
                "[[callers]]\nname = \"{s}\"\ntoken_sha256 = \"{}\"\nscopes = [\"{s}\"]\n",
                sha(&format!("token-{s}"))
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_allows_exactly_its_rpcs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let config = callers()
        + &user_source(
            "main",
            &url,
            "customer_user",
            "customer_company_support = false",
        );
    let s = TestServer::start(&config).await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for scope in Scope::ALL {
        let token = format!("token-{scope}");
        for path in METHODS {
            let needed = required_scope(path).unwrap().unwrap();
            let code = raw_call(channel.clone(), path, Some(&token)).await;
            if scope == Scope::Admin || scope == needed {
                assert!(
                    !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                    "{scope} must reach {path}: {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{scope} on {path}");
            }
        }
    }
    let get = "/clientele.v1.CustomerUserService/GetCustomerUser";
    assert_eq!(
        raw_call(channel.clone(), get, None).await,
        Code::Unauthenticated
    );
    assert_eq!(
        raw_call(channel.clone(), get, Some("wrong")).await,
        Code::Unauthenticated
    );
    // Health and reflection stay open (probes carry no token).
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    assert!(health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new()
        })
        .await
        .is_ok());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificates_identify_callers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::certs::ca(d, "ca");
    common::certs::ca(d, "other");
    common::certs::leaf(d, "ca", "server", "localhost", "DNS:localhost,IP:127.0.0.1");
    common::certs::leaf(
        d,
        "ca",
        "gateway",
        "gateway.internal",
        "DNS:gateway.internal",
    );
    common::certs::leaf(
        d,
        "ca",
        "stranger",
        "stranger.internal",
        "DNS:stranger.internal",
    );
    common::certs::leaf(
        d,
        "other",
        "forged",
        "gateway.internal",
        "DNS:gateway.internal",
    );
    let url = format!("sqlite://{}", d.join("a.db").display());
    let config = format!(
        "[server]\n[server.tls]\ncert_file = \"{0}/server.pem\"\nkey_file = \"{0}/server.key\"\nclient_ca_file = \"{0}/ca.pem\"\n[[callers]]\nname = \"gateway\"\nclient_cert_name = \"gateway.internal\"\nscopes = [\"customer_users:read\"]\n",
        d.display()
    ) + &user_source("main", &url, "customer_user", "customer_company_support = false");
    let s = TestServer::start_plain(&config).await;
    let ca = Certificate::from_pem(std::fs::read(d.join("ca.pem")).unwrap());
    let connect = |name: Option<&str>| {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("localhost");
        if let Some(n) = name {
            tls = tls.identity(Identity::from_pem(
                std::fs::read(d.join(format!("{n}.pem"))).unwrap(),
                std::fs::read(d.join(format!("{n}.key"))).unwrap(),
            ));
        }
        let addr = s.addr;
        async move {
            Channel::from_shared(format!("https://localhost:{}", addr.port()))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
        }
    };
    let get = "/clientele.v1.CustomerUserService/GetCustomerUser";
    let create = "/clientele.v1.CustomerUserService/CreateCustomerUser";
    let gateway = connect(Some("gateway"))
        .await
        .expect("TLS with a known client certificate");
    assert_eq!(
        raw_call(gateway.clone(), get, None).await,
        Code::InvalidArgument,
        "allowed: the empty login is refused by the handler"
    );
    assert_eq!(
        raw_call(gateway, create, None).await,
        Code::PermissionDenied
    );
    let stranger = connect(Some("stranger")).await.unwrap();
    assert_eq!(raw_call(stranger, get, None).await, Code::Unauthenticated);
    let anonymous = connect(None).await.unwrap();
    assert_eq!(raw_call(anonymous, get, None).await, Code::Unauthenticated);
    // A certificate from another CA does not get through the handshake.
    let forged = match connect(Some("forged")).await {
        Ok(ch) => raw_call(ch, get, None).await,
        Err(_) => Code::Unavailable,
    };
    assert!(
        matches!(
            forged,
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        ),
        "{forged:?}"
    );
    s.stop().await;
}

#[test]
fn refuses_to_serve_a_public_address_without_callers() {
    use clientele::config::Config;
    let addr: std::net::SocketAddr = "0.0.0.0:50051".parse().unwrap();
    let settings = |extra: &str| {
        Config::from_toml(extra, Vec::new())
            .unwrap()
            .validate()
            .unwrap()
    };
    let err = clientele::app::check_exposure(&settings(""), addr).unwrap_err();
    assert!(err.contains("insecure"), "{err}");
    assert!(clientele::app::check_exposure(&settings("[server]\ninsecure = true\n"), addr).is_ok());
    let with_callers = format!(
        "[[callers]]\nname = \"x\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n",
        sha("t")
    );
    assert!(clientele::app::check_exposure(&settings(&with_callers), addr).is_ok());
    assert!(clientele::app::check_exposure(&settings(""), "127.0.0.1:1".parse().unwrap()).is_ok());
    // A token in plain text instead of its hash is refused.
    let plain =
        "[[callers]]\nname = \"x\"\ntoken_sha256 = \"my-secret-token\"\nscopes = [\"admin\"]\n";
    let err = Config::from_toml(plain, Vec::new())
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("callers[0].token_sha256"), "{err}");
}

async fn health_of(channel: &Channel, service: &str) -> i32 {
    let mut h = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    h.check(tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    })
    .await
    .map(|r| r.into_inner().status)
    .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_sources_and_reflection_lists_the_services() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("later");
    let url = format!("sqlite://{}", later.join("a.db").display());
    let config = "customer_sources = []\n[groups]\nurl = \"sqlite://".to_owned()
        + &dir.path().join("g.db").display().to_string()
        + "\"\n"
        + &user_source(
            "late",
            &url,
            "customer_user",
            "customer_company_support = false",
        );
    let s = TestServer::start(&config).await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let wait_for = |want: ServingStatus| {
        let channel = channel.clone();
        async move {
            for _ in 0..100 {
                if health_of(&channel, "source/late").await == want as i32 {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(wait_for(ServingStatus::NotServing).await, "down at start");
    assert_eq!(
        health_of(&channel, "").await,
        ServingStatus::Serving as i32,
        "the server itself serves"
    );
    std::fs::create_dir_all(&later).unwrap();
    assert!(
        wait_for(ServingStatus::Serving).await,
        "serving once the database is reachable"
    );

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(resp)) = futures::StreamExt::next(&mut stream).await else {
        panic!("no reflection answer")
    };
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for svc in [
        "clientele.v1.CustomerUserService",
        "clientele.v1.CustomerService",
        "clientele.v1.GroupService",
        "clientele.v1.AuthService",
    ] {
        assert!(
            names.contains(&svc.to_owned()),
            "{svc} missing in {names:?}"
        );
    }
    s.stop().await;
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let config = "customer_sources = []\n".to_owned()
        + &user_source(
            "main",
            &url,
            "customer_user",
            "customer_company_support = false\ncache_ttl = \"1s\"",
        )
        + "[auth]\nmax_failed_logins = 1\n";
    let mut s = TestServer::start(&config).await;
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(pb::CustomerUser {
                login: "cached".into(),
                first_name: "Old".into(),
                last_name: "Name".into(),
                email: "cached@example.com".into(),
                customer_id: "c".into(),
                ..Default::default()
            }),
            password: Some("Cached-Password-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let get = |s: &mut TestServer, no_cache: bool| {
        let mut c = s.users.clone();
        async move {
            let mut req = tonic::Request::new(pb::GetCustomerUserRequest {
                login: "cached".into(),
            });
            if no_cache {
                req.metadata_mut()
                    .insert("cache-control", "no-cache".parse().unwrap());
            }
            c.get_customer_user(req)
                .await
                .unwrap()
                .into_inner()
                .first_name
        }
    };
    assert_eq!(get(&mut s, false).await, "Old");
    // Changed behind the service's back: the cache answers until its TTL or a bypass.
    {
        use sqlx::Connection;
        let mut raw = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE customer_user SET first_name = 'Behind' WHERE login = 'cached'")
            .execute(&mut raw)
            .await
            .unwrap();
    }
    assert_eq!(get(&mut s, false).await, "Old", "cached");
    assert_eq!(
        get(&mut s, true).await,
        "Behind",
        "cache-control: no-cache reads through"
    );
    // A write through this replica invalidates at once.
    s.users
        .update_customer_user(pb::UpdateCustomerUserRequest {
            login: "cached".into(),
            customer_user: Some(pb::CustomerUser {
                first_name: "New".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["first_name".into()],
            }),
        })
        .await
        .unwrap();
    assert_eq!(get(&mut s, false).await, "New");
    // The TTL itself is tested on a manual clock: tests/clock.rs cache_ttl_bounds_staleness.
    // Traffic for the other series: senders, an authentication, a lockout.
    s.users
        .resolve_senders(pb::ResolveSendersRequest {
            addresses: vec!["cached@example.com".into()],
        })
        .await
        .unwrap();
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut auth = pb::auth_service_client::AuthServiceClient::new(channel);
    auth.authenticate(pb::AuthenticateRequest {
        login: "cached".into(),
        password: "wrong".into(),
        client_ip: String::new(),
        otp: String::new(),
    })
    .await
    .unwrap();
    let text = scrape(s.metrics_addr).await;
    for series in [
        "clientele_rpc_requests_total",
        "clientele_rpc_duration_seconds",
        "clientele_source_duration_seconds",
        "clientele_cache_hits_total",
        "clientele_cache_misses_total",
        "clientele_auth_outcomes_total",
        "clientele_lockouts_total",
        "clientele_pool_connections",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    assert!(
        text.contains("method=\"/clientele.v1.CustomerUserService/GetCustomerUser\""),
        "{text}"
    );
    s.stop().await;
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clientele"))
        .current_dir(dir.path())
        .env("CLIENTELE_SERVER__METRICS_LISTEN", "")
        .env("CLIENTELE_SERVER__CONSOLE_LISTEN", "")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let codes = rt.block_on(async {
        let url = format!("http://127.0.0.1:{port}");
        let channel = loop {
            if let Ok(c) = Channel::from_shared(url.clone()).unwrap().connect().await {
                if health_of(&c, "").await == 1 {
                    break c;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let mut c = pb::customer_user_service_client::CustomerUserServiceClient::new(
                    channel.clone(),
                );
                tokio::spawn(async move {
                    let mut codes = Vec::new();
                    for _ in 0..400 {
                        let r = c
                            .search_customer_users(pb::SearchCustomerUsersRequest {
                                criterion: Some(
                                    pb::search_customer_users_request::Criterion::Query("*".into()),
                                ),
                                ..Default::default()
                            })
                            .await;
                        let code = match r {
                            Ok(_) => Code::Ok,
                            // A stream the draining server refused with a graceful GOAWAY
                            // (NO_ERROR) was never processed: refused, not failed half-way.
                            Err(e)
                                if format!("{e:?}").contains("GoAway(b\"\", NO_ERROR, Remote)") =>
                            {
                                Code::Unavailable
                            }
                            Err(e) => {
                                eprintln!("call failed: {e:?}");
                                e.code()
                            }
                        };
                        codes.push(code);
                        if code != Code::Ok {
                            break;
                        }
                    }
                    codes
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        all
    });
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");
    assert!(
        codes.iter().filter(|c| **c == Code::Ok).count() > 10,
        "calls were served before the signal"
    );
    // A call either completed or was refused as the server went away; none failed half-way.
    for c in &codes {
        assert!(
            matches!(c, Code::Ok | Code::Unavailable | Code::Cancelled),
            "{c:?}"
        );
    }
}
