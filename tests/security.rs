//! Hostile callers get nothing (issue 13), over the real server: a client certificate chain
//! cannot name another caller, random paths cannot grow the metrics, a huge `grpc-timeout`
//! gets an answer, a huge password is refused as an invalid argument before any hashing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::{path::Path, process::Command, time::Duration};

use clientele::proto as pb;
use common::{user_source, violations, TestServer};
use futures::StreamExt;
use tonic::{
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Code,
};

/// Calls `path` with an empty request and `metadata`; the status code.
async fn raw_call(channel: Channel, path: &str, metadata: &[(&'static str, &str)]) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return Code::Unavailable;
    }
    let mut req = tonic::Request::new(());
    for (k, v) in metadata {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::from_maybe_shared(path.to_owned().into_bytes()).unwrap();
    match grpc.unary(req, path, codec).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn sqlite_source(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("a.db").display());
    user_source(
        "main",
        &url,
        "customer_user",
        "customer_company_support = false",
    )
}

/// A self-signed certificate `<name>.pem` / `<name>.key` whose CN and DNS name are `cn`.
fn self_signed(dir: &Path, name: &str, cn: &str) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            &format!("subjectAltName=DNS:{cn}"),
        ])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_certificate_in_the_chain_names_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::certs::ca(d, "ca");
    common::certs::leaf(d, "ca", "server", "localhost", "DNS:localhost,IP:127.0.0.1");
    common::certs::leaf(
        d,
        "ca",
        "gateway",
        "gateway.internal",
        "DNS:gateway.internal",
    );
    self_signed(d, "evil", "admin.internal");
    // The admin caller comes first: a server that takes names from the whole chain finds it.
    let config = format!(
        "[server]\n[server.tls]\ncert_file = \"{0}/server.pem\"\nkey_file = \"{0}/server.key\"\nclient_ca_file = \"{0}/ca.pem\"\n\
         [[callers]]\nname = \"admin\"\nclient_cert_name = \"admin.internal\"\nscopes = [\"admin\"]\n\
         [[callers]]\nname = \"gateway\"\nclient_cert_name = \"gateway.internal\"\nscopes = [\"customer_users:read\"]\n",
        d.display()
    ) + &sqlite_source(d);
    let s = TestServer::start_plain(&config).await;
    let ca = Certificate::from_pem(std::fs::read(d.join("ca.pem")).unwrap());
    let mut chain = std::fs::read(d.join("gateway.pem")).unwrap();
    chain.extend(std::fs::read(d.join("evil.pem")).unwrap());
    let tls = ClientTlsConfig::new()
        .ca_certificate(ca)
        .domain_name("localhost")
        .identity(Identity::from_pem(
            chain,
            std::fs::read(d.join("gateway.key")).unwrap(),
        ));
    let channel = Channel::from_shared(format!("https://localhost:{}", s.addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("the leaf is valid: the handshake succeeds");
    let get = "/clientele.v1.CustomerUserService/GetCustomerUser";
    let create = "/clientele.v1.CustomerUserService/CreateCustomerUser";
    assert_eq!(
        raw_call(channel.clone(), get, &[]).await,
        Code::InvalidArgument,
        "the gateway may read (the empty login is refused by the handler)"
    );
    assert_eq!(
        raw_call(channel, create, &[]).await,
        Code::PermissionDenied,
        "the chain's extra certificate must not make the caller admin"
    );
    s.stop().await;
}

/// `GET /metrics` over a raw TCP connection: the body's lines that are series (not comments).
async fn series_lines(addr: std::net::SocketAddr) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).await.unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_leave_the_metrics_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let token_sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(b"reader-token"))
    };
    let config = format!(
        "[[callers]]\nname = \"reader\"\ntoken_sha256 = \"{token_sha}\"\nscopes = [\"customer_users:read\"]\n"
    ) + &sqlite_source(dir.path());
    let s = TestServer::start(&config).await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let call = |i: u64, token: bool| {
        let channel = channel.clone();
        async move {
            let path = format!("/x{:016x}.Svc/M{i}", rand_u64(i));
            let auth = [("authorization", "Bearer reader-token")];
            raw_call(channel, &path, if token { &auth } else { &[] }).await
        }
    };
    // Warm up: the shared series of unknown methods exist (refused and not).
    for i in 0..10 {
        call(i, i % 2 == 0).await;
    }
    let before = series_lines(s.metrics_addr).await;
    let rss_before = rss_kib();
    // CLIENTELE_SECURITY_CALLS raises the number of calls for a manual measurement.
    let calls: u64 = std::env::var("CLIENTELE_SECURITY_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let codes: Vec<Code> = futures::stream::iter(0..calls)
        .map(|i| call(i + 1_000, i % 2 == 0))
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        codes.iter().all(|c| *c != Code::Ok),
        "no random path answers OK"
    );
    let after = series_lines(s.metrics_addr).await;
    eprintln!(
        "{calls} calls to random paths: /metrics {before} -> {after} series lines, \
         process RSS {rss_before} -> {} KiB",
        rss_kib()
    );
    assert!(
        after <= before + 40,
        "{calls} random paths grew /metrics from {before} to {after} series lines"
    );
    s.stop().await;
}

/// This process's resident set size in KiB (Linux), 0 where unknown.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A deterministic scramble (splitmix64), so every call has a path of its own.
fn rand_u64(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_grpc_timeout_gets_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&sqlite_source(dir.path())).await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut users = pb::customer_user_service_client::CustomerUserServiceClient::new(channel);
    // tonic's own timeout layer reads at most 8 digits and ignores a longer value, which then
    // reaches the service's own deadline parser whole.
    for timeout in [
        "99999999H",
        "99999999M",
        "99999999S",
        "18446744073709551615S",
        "9999999999999999999H",
    ] {
        let mut req = tonic::Request::new(pb::GetCustomerUserRequest {
            login: "nobody".into(),
        });
        req.metadata_mut()
            .insert("grpc-timeout", timeout.parse().unwrap());
        let code = match tokio::time::timeout(Duration::from_secs(10), users.get_customer_user(req))
            .await
            .expect("an answer in time")
        {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        assert_eq!(code, Code::NotFound, "grpc-timeout {timeout}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_password_is_an_invalid_argument_before_any_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_source(dir.path())
        + "[auth.rate_limit]\nper_login_per_minute = 0\nper_client_per_minute = 0\n";
    let mut s = TestServer::start(&config).await;
    let channel = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    s.users
        .create_customer_user(pb::CreateCustomerUserRequest {
            customer_user: Some(pb::CustomerUser {
                login: "legacy".into(),
                first_name: "L".into(),
                last_name: "U".into(),
                email: "legacy@example.com".into(),
                customer_id: "acme".into(),
                ..Default::default()
            }),
            password: Some("Secret123!".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut auth = pb::auth_service_client::AuthServiceClient::new(channel);
    let huge = "p".repeat(1024 * 1024);
    for login in ["legacy", "nobody"] {
        let started = std::time::Instant::now();
        let status = auth
            .authenticate(pb::AuthenticateRequest {
                login: login.into(),
                password: huge.clone(),
                client_ip: String::new(),
                otp: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{login}: {status:?}");
        assert_eq!(violations(&status), ["password"], "{login}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{login}: {:?}",
            started.elapsed()
        );
    }
    // Setting one is refused the same way.
    let status = auth
        .set_password(pb::SetPasswordRequest {
            login: "legacy".into(),
            password: huge,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    s.stop().await;
}
