//! The admin console against the real server (SQLite): plain HTTP for the security rules
//! (sessions, CSRF, scopes, 403s), and headless Chromium driven over WebDriver (chromedriver,
//! started here on a free port) through the seed workflow. Without chromium the browser test
//! skips and says so, unless `CLIENTELE_TEST_REQUIRE_ALL=1`; with `CLIENTELE_SCREENSHOTS=1` it
//! writes the main screens to `docs/screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use clientele::config::Config;
use clientele::proto::{self as pb, auth_service_client::AuthServiceClient};
use fantoccini::{ClientBuilder, Locator};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/totp.rs"]
mod totp;

const ADMIN: &str = "admin-console-token";
const READER: &str = "reader-console-token";

struct Served {
    grpc: SocketAddr,
    console: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

fn sha(t: &str) -> String {
    hex::encode(sha2::Sha256::digest(t.as_bytes()))
}

/// The server with its console on loopback ports, two callers (admin, read-only).
async fn serve() -> Served {
    serve_with("", true).await
}

/// [`serve`] with `server` lines added to `[server]`, with or without the callers.
async fn serve_with(server: &str, callers: bool) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let config = format!(
        r#"
[server]
metrics_listen = ""
{server}
[auth]
max_failed_logins = 3
lockout_duration = "until-unlocked"
[groups]
customer_group_support = true
always_groups = []
{callers}
[[customer_user_sources]]
name = "local"
kind = "sql"
url = "{url}"
[[customer_sources]]
name = "local"
kind = "sql"
url = "{url}"
"#,
        callers = match callers {
            true => format!(
                "[[callers]]\nname = \"admin\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n[[callers]]\nname = \"reader\"\ntoken_sha256 = \"{}\"\nscopes = [\"customer_users:read\", \"customers:read\", \"groups:read\"]\n",
                sha(ADMIN),
                sha(READER)
            ),
            false => String::new(),
        }
    );
    let settings = Config::from_toml(&config, Vec::new())
        .and_then(Config::validate)
        .unwrap_or_else(|e| panic!("{e}"));
    let app = clientele::app::build(settings).unwrap();
    for (_, r) in app.migrate().await {
        r.unwrap();
    }
    let grpc_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc, console) = (
        grpc_l.local_addr().unwrap(),
        console_l.local_addr().unwrap(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve_full(grpc_l, None, Some(console_l), async move {
        let _ = rx.await;
    }));
    Served {
        grpc,
        console,
        _stop: tx,
        _dir: dir,
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request over a fresh connection.
async fn http(addr: SocketAddr, method: &str, path: &str, cookie: &str, form: &str) -> Answer {
    http_as(&addr.to_string(), addr, method, path, cookie, form).await
}

/// [`http`] with the `Host` header `host`.
async fn http_as(
    host: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    form: &str,
) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head[9..12].parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Signs in with `token`: the session cookie.
async fn sign_in(addr: SocketAddr, token: &str) -> String {
    let (cookie, csrf) = login_csrf(addr).await;
    let a = http(
        addr,
        "POST",
        "/login",
        &cookie,
        &format!("csrf={csrf}&token={}", enc(token)),
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.head);
    let line = a
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    assert!(line.contains("Max-Age="), "bounded lifetime: {line}");
    line.split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The sign-in form's double-submit cookie and CSRF value.
async fn login_csrf(addr: SocketAddr) -> (String, String) {
    let a = http(addr, "GET", "/login", "", "").await;
    assert_eq!(a.status, 200);
    let line = a
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("the sign-in CSRF cookie");
    let cookie = line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (cookie, csrf_of(&a.body))
}

fn csrf_of(body: &str) -> String {
    let i = body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    body[i..i + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_csrf_and_scopes_over_plain_http() {
    let s = serve().await;
    // Without a session: to the sign-in page; a wrong token is refused without a session.
    let a = http(s.console, "GET", "/customer-users", "", "").await;
    assert_eq!(a.status, 303);
    assert!(a.head.contains("location: /login"), "{}", a.head);
    let (cookie, csrf) = login_csrf(s.console).await;
    let a = http(
        s.console,
        "POST",
        "/login",
        &cookie,
        &format!("csrf={csrf}&token=wrong"),
    )
    .await;
    assert_eq!(a.status, 401);
    assert!(!a.head.contains("clientele_session"));
    // The sign-in form's CSRF token is checked too (a forged sign-in is refused).
    let a = http(s.console, "POST", "/login", "", &format!("token={ADMIN}")).await;
    assert_eq!(a.status, 403);
    let a = http(
        s.console,
        "POST",
        "/login",
        &cookie,
        &format!("csrf={}&token={ADMIN}", "1".repeat(64)),
    )
    .await;
    assert_eq!(a.status, 403);

    let admin = sign_in(s.console, ADMIN).await;
    let page = http(s.console, "GET", "/customers/new", &admin, "").await;
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.body);
    // A POST without the CSRF token, or with a wrong one, is refused and changes nothing.
    let a = http(
        s.console,
        "POST",
        "/customers/new",
        &admin,
        "source=local&customer_id=acme&name=ACME",
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = http(
        s.console,
        "POST",
        "/customers/new",
        &admin,
        &format!("csrf={}&customer_id=acme&name=ACME", "0".repeat(64)),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        http(s.console, "GET", "/customers/acme", &admin, "")
            .await
            .status,
        404
    );
    // Validation errors next to their field; then the real create.
    let a = http(
        s.console,
        "POST",
        "/customers/new",
        &admin,
        &format!("csrf={csrf}&source=local&customer_id=acme&name="),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("id=\"err-name\""), "{}", a.body);
    let a = http(
        s.console,
        "POST",
        "/customers/new",
        &admin,
        &format!("csrf={csrf}&source=local&customer_id=acme&name=ACME"),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = http(
        s.console,
        "POST",
        "/customer-users/new",
        &admin,
        &format!("csrf={csrf}&source=local&login=road&first_name=Road&last_name=Runner&email=road%40acme.example&customer_id=acme&generate_password=true"),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(a.body.contains("id=\"generated-password\""));

    // The read-only caller sees no edit controls, and a hand-made POST with its own valid
    // CSRF token is 403.
    let reader = sign_in(s.console, READER).await;
    let page = http(s.console, "GET", "/customer-users/road", &reader, "").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(">Save<"), "{}", page.body);
    assert!(!page.body.contains(">Set password<"));
    assert!(page.body.contains(" disabled"));
    let list = http(s.console, "GET", "/customer-users", &reader, "").await;
    assert!(!list.body.contains("Add customer user"));
    assert!(list.body.contains("road"));
    let rcsrf = csrf_of(&page.body);
    let a = http(
        s.console,
        "POST",
        "/customer-users/road",
        &reader,
        &format!("csrf={rcsrf}&first_name=Evil"),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        http(s.console, "GET", "/customer-users/new", &reader, "")
            .await
            .status,
        403
    );
    let a = http(
        s.console,
        "POST",
        "/groups/new",
        &reader,
        &format!("csrf={rcsrf}&name=evil"),
    )
    .await;
    assert_eq!(a.status, 403);
    // The reader's token is not the admin's session: each session has its own CSRF token.
    let a = http(
        s.console,
        "POST",
        "/groups/new",
        &admin,
        &format!("csrf={rcsrf}&name=evil"),
    )
    .await;
    assert_eq!(a.status, 403);
    // Errors in words, never a trace.
    let a = http(s.console, "GET", "/customer-users/nobody", &admin, "").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("not found"), "{}", a.body);
    // Signing out ends the session.
    let a = http(
        s.console,
        "POST",
        "/logout",
        &admin,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, 303);
    assert_eq!(
        http(s.console, "GET", "/customers", &admin, "")
            .await
            .status,
        303
    );
}

/// The session cookie a page set (without callers the first visit opens one).
fn session_of(a: &Answer) -> String {
    let line = a
        .head
        .lines()
        .find(|l| l.contains("clientele_session="))
        .expect("a session cookie");
    line.split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_callers_every_visitor_is_anonymous_but_forms_still_need_csrf() {
    let s = serve_with("console_list_limit = 3", false).await;
    let a = http(s.console, "GET", "/customers/new", "", "").await;
    assert_eq!(a.status, 200);
    assert!(!a.body.contains("Sign out"));
    let me = session_of(&a);
    let csrf = csrf_of(&a.body);
    // A page reached by another host name (a DNS-rebinding page) gets nothing.
    let a = http_as(
        "evil.example:8080",
        s.console,
        "GET",
        "/customers/new",
        "",
        "",
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(!a.head.contains("clientele_session"));
    let a = http_as("localhost:8080", s.console, "GET", "/", "", "").await;
    assert_eq!(a.status, 200);
    let a = http(
        s.console,
        "POST",
        "/customers/new",
        &me,
        "source=local&customer_id=acme&name=ACME",
    )
    .await;
    assert_eq!(a.status, 403);
    let a = http(
        s.console,
        "POST",
        "/customers/new",
        &me,
        &format!("csrf={csrf}&source=local&customer_id=acme&name=ACME"),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    for login in ["u1", "u2", "u3", "u4"] {
        let a = http(
            s.console,
            "POST",
            "/customer-users/new",
            &me,
            &format!("csrf={csrf}&source=local&login={login}&first_name=U&last_name={login}&email={login}%40acme.example&customer_id=acme&password=Long-Enough-1"),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert!(
            !a.body.contains("generated-password"),
            "a given password is not shown"
        );
    }
    // The list pages (50 a page, page tokens); console_list_limit no longer cuts it.
    let list = http(s.console, "GET", "/customer-users?q=u*", &me, "").await;
    assert!(
        list.body.contains(">u1<") && list.body.contains(">u4<"),
        "{}",
        list.body
    );
    assert!(list.body.contains("page 1") && !list.body.contains("next →"));
    // A bad query is an error next to the search box, in words.
    let bad = http(s.console, "GET", "/customer-users?q=%20", &me, "").await;
    assert!(bad.body.contains("class=\"violation\""), "{}", bad.body);

    // Renames: a customer user's login, and a customer's id, which its customer users follow.
    let a = http(s.console, "POST", "/customer-users/u1", &me, &format!("csrf={csrf}&login=u1-renamed&first_name=U&last_name=u1&email=u1%40acme.example&customer_id=acme&validity=VALID")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Customer user u1-renamed saved."));
    assert_eq!(
        http(s.console, "GET", "/customer-users/u1", &me, "")
            .await
            .status,
        404
    );
    let a = http(
        s.console,
        "POST",
        "/customers/acme",
        &me,
        &format!("csrf={csrf}&customer_id=acme-inc&name=ACME%20Inc.&validity=VALID"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Customer acme-inc saved."));
    let u = http(s.console, "GET", "/customer-users/u2", &me, "").await;
    assert!(u.body.contains("value=\"acme-inc\""), "{}", u.body);
    // An update that breaks a rule: the violation next to its field, nothing changed.
    let a = http(
        s.console,
        "POST",
        "/customer-users/u2",
        &me,
        &format!("csrf={csrf}&email=not-an-address"),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("id=\"err-email\""), "{}", a.body);
    // Groups: add, edit.
    let a = http(
        s.console,
        "POST",
        "/groups/new",
        &me,
        &format!("csrf={csrf}&name=support&comment=x&validity=VALID"),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = http(
        s.console,
        "POST",
        "/groups/support",
        &me,
        &format!("csrf={csrf}&name=support&comment=Support%20portal&validity=VALID"),
    )
    .await;
    assert!(
        a.body.contains("Group support saved.") && a.body.contains("Support portal"),
        "{}",
        a.body
    );
    // Assignments on the group's page: a customer user, and a customer (with its context),
    // whose customer users then hold the group.
    let a = http(
        s.console,
        "POST",
        "/groups/support/customer-users",
        &me,
        &format!("csrf={csrf}&login=u3&permission=ro&granted=true"),
    )
    .await;
    assert!(
        a.body.contains("u3: Permissions on support: ro."),
        "{}",
        a.body
    );
    let a = http(
        s.console,
        "POST",
        "/groups/support/customers",
        &me,
        &format!(
            "csrf={csrf}&customer_id=acme-inc&context=SAME_CUSTOMER&permission=ro&granted=true"
        ),
    )
    .await;
    assert!(
        a.body.contains("acme-inc: Permissions on support: ro."),
        "{}",
        a.body
    );
    let u = http(s.console, "GET", "/customer-users/u2", &me, "").await;
    assert!(
        u.body.contains("customer acme-inc (same customer)"),
        "{}",
        u.body
    );
    let src = http(s.console, "GET", "/sources", &me, "").await;
    assert!(
        src.body.contains("<td>sql</td>") && src.body.contains("ok"),
        "{}",
        src.body
    );
}

#[test]
fn a_public_console_without_callers_refuses_to_start() {
    let settings = Config::from_toml("[server]\nconsole_listen = \"0.0.0.0:8080\"\n", Vec::new())
        .and_then(Config::validate)
        .unwrap();
    let e = clientele::console::check_exposure(&settings).unwrap_err();
    assert!(e.contains("without [[callers]]"), "{e}");
}

/// chromedriver on a free port, or `None` (skipped, with a message) when chromium is missing.
fn chromedriver() -> Option<(Kill, u16)> {
    let present = std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists();
    if !present {
        if std::env::var("CLIENTELE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("chromium / chromedriver are not installed but CLIENTELE_TEST_REQUIRE_ALL=1 (apt-get install chromium chromium-driver)");
        }
        eprintln!(
            "skipping the browser test: /usr/bin/chromium or /usr/bin/chromedriver is missing"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Kill(
        std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("chromedriver did not listen on {port}");
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn shot(b: &fantoccini::Client, name: &str) {
    if std::env::var("CLIENTELE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let png = b.screenshot().await.unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
    }
}

async fn fill(b: &fantoccini::Client, id: &str, value: &str) {
    let e = b.find(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Submits the form posting to `form_action` with its button `label`, and waits (bounded)
/// until the answer replaced the page: the button is gone from the document (stale) and the new
/// document has loaded, so the next read sees the answer, not the page that was left.
async fn press(b: &fantoccini::Client, form_action: &str, label: &str) {
    let button = b
        .find(Locator::XPath(&format!(
            "//form[@action='{form_action}']//button[normalize-space()='{label}']"
        )))
        .await
        .unwrap();
    button.click().await.unwrap();
    let start = std::time::Instant::now();
    while button.is_enabled().await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no answer replaced the page after {label:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while b
        .execute("return document.readyState", vec![])
        .await
        .ok()
        .and_then(|v| v.as_str().map(|s| s == "complete"))
        != Some(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the answer to {label:?} did not load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_workflow_in_a_real_browser() {
    let Some((_driver, port)) = chromedriver() else {
        return;
    };
    let s = serve().await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--window-size=1200,900"],
        }),
    );
    let b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session");
    let base = format!("http://{}", s.console);
    let src = |b: &fantoccini::Client| {
        let b = b.clone();
        async move { b.source().await.unwrap() }
    };

    // Sign in with the admin caller's token.
    b.goto(&format!("{base}/login")).await.unwrap();
    shot(&b, "login").await;
    fill(&b, "f-token", ADMIN).await;
    press(&b, "/login", "Sign in").await;
    assert!(src(&b).await.contains("Signed in as admin"));

    // A group, a customer, a customer user with a generated password.
    b.goto(&format!("{base}/groups/new")).await.unwrap();
    fill(&b, "f-name", "support").await;
    fill(&b, "f-comment", "Support portal").await;
    press(&b, "/groups/new", "Create").await;
    assert!(src(&b).await.contains("Group support created."));
    b.goto(&format!("{base}/customers/new")).await.unwrap();
    fill(&b, "f-customer_id", "acme").await;
    fill(&b, "f-name", "ACME Corporation").await;
    press(&b, "/customers/new", "Create").await;
    assert!(src(&b).await.contains("Customer acme created."));
    b.goto(&format!("{base}/customer-users/new")).await.unwrap();
    // A required field left empty: the violation appears next to it.
    fill(&b, "f-login", "wile").await;
    press(&b, "/customer-users/new", "Create").await;
    assert!(
        b.find(Locator::Id("err-first_name")).await.is_ok(),
        "{}",
        src(&b).await
    );
    fill(&b, "f-first_name", "Wile").await;
    fill(&b, "f-last_name", "Coyote").await;
    fill(&b, "f-email", "wile@acme.example").await;
    fill(&b, "f-customer_id", "acme").await;
    shot(&b, "customer-user-new").await;
    press(&b, "/customer-users/new", "Create").await;
    let password = b
        .find(Locator::Id("generated-password"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(password.len() >= 8, "{password}");
    shot(&b, "customer-user-created").await;

    // Find it with the search box.
    b.goto(&format!("{base}/customer-users")).await.unwrap();
    fill(&b, "f-q", "wile+coyote").await;
    b.find(Locator::Id("f-q"))
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap(); // Enter
    b.find(Locator::LinkText("wile")).await.unwrap();
    shot(&b, "customer-users").await;
    b.find(Locator::LinkText("wile"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Edit it.
    fill(&b, "f-city", "Phoenix").await;
    press(&b, "/customer-users/wile", "Save").await;
    assert!(src(&b).await.contains("Customer user wile saved."));

    // Grant the group and read the effective permissions with their reasons.
    b.find(Locator::Id("f-group"))
        .await
        .unwrap()
        .select_by_value("support")
        .await
        .unwrap();
    fill(&b, "f-permission", "rw").await;
    press(&b, "/customer-users/wile/groups", "Apply").await;
    let perms = b
        .find(Locator::Id("effective-permissions"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        perms.contains("support") && perms.contains("direct"),
        "{perms}"
    );
    assert!(perms.contains("via rw"), "{perms}");

    // Lock the login with failed Authenticate calls, then unlock it here.
    let mut auth = AuthServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .unwrap();
    let bearer = |login: &str, pw: &str| {
        let mut r = tonic::Request::new(pb::AuthenticateRequest {
            login: login.into(),
            password: pw.into(),
            client_ip: String::new(),
            otp: String::new(),
        });
        r.metadata_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        r
    };
    for _ in 0..3 {
        auth.authenticate(bearer("wile", "wrong")).await.unwrap();
    }
    let r = auth
        .authenticate(bearer("wile", &password))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome, pb::Outcome::Locked as i32);
    b.goto(&format!("{base}/customer-users/wile"))
        .await
        .unwrap();
    let state = b
        .find(Locator::Id("login-state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        state.contains("Login forbidden") && state.contains("Failed logins: 3"),
        "{state}"
    );
    shot(&b, "customer-user").await;
    press(&b, "/customer-users/wile/unlock", "Unlock").await;
    let state = b
        .find(Locator::Id("login-state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(state.contains("Not locked"), "{state}");
    let r = auth
        .authenticate(bearer("wile", &password))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome, pb::Outcome::Success as i32);

    // A password against the policy: the violation next to the field.
    fill(&b, "f-new-password", "short").await;
    press(&b, "/customer-users/wile/password", "Set password").await;
    assert!(b.find(Locator::Id("err-password")).await.is_ok());

    // Invalidate it (validity instead of delete).
    b.find(Locator::Id("f-validity"))
        .await
        .unwrap()
        .select_by_value("INVALID")
        .await
        .unwrap();
    press(&b, "/customer-users/wile", "Save").await;
    assert!(src(&b).await.contains("Customer user wile saved."));
    let r = auth
        .authenticate(bearer("wile", &password))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome, pb::Outcome::Disabled as i32);

    // The other screens render.
    for (path, name) in [
        ("/customers/acme", "customer"),
        ("/groups/support", "group"),
        ("/sources", "sources"),
    ] {
        b.goto(&format!("{base}{path}")).await.unwrap();
        assert!(!src(&b).await.contains("internal error"));
        shot(&b, name).await;
    }
    assert!(src(&b).await.contains("sqlite") || src(&b).await.contains("sql"));

    // The read-only caller: no edit controls.
    press(&b, "/logout", "Sign out").await;
    fill(&b, "f-token", READER).await;
    press(&b, "/login", "Sign in").await;
    b.goto(&format!("{base}/customer-users/wile"))
        .await
        .unwrap();
    let page = src(&b).await;
    assert!(
        !page.contains(">Save<") && !page.contains(">Unlock<") && !page.contains(">Apply<"),
        "{page}"
    );
    shot(&b, "read-only").await;
    b.close().await.unwrap();
}

/// The second factor on a customer user's page: enrol (the secret, its otpauth URI and the QR
/// code as inline SVG, shown once and never cached), a wrong token named next to its field,
/// confirm with a token of the test's own TOTP, remove; a reader sees no two-factor controls
/// and a hand-made enrol is 403.
#[tokio::test]
async fn two_factor_enrolment_on_a_customer_users_page() {
    let s = serve().await;
    let me = sign_in(s.console, ADMIN).await;
    let page = http(s.console, "GET", "/customers/new", &me, "").await;
    let csrf = csrf_of(&page.body);
    let a = http(
        s.console,
        "POST",
        "/customers/new",
        &me,
        &format!("csrf={csrf}&source=local&customer_id=acme&name=ACME"),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = http(s.console, "POST", "/customer-users/new", &me, &format!("csrf={csrf}&source=local&login=road&first_name=Road&last_name=Runner&email=road%40acme.example&customer_id=acme&password=Long-Enough-1")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let view = http(s.console, "GET", "/customer-users/road", &me, "").await;
    assert!(view.body.contains("No TOTP secret."), "{}", view.body);

    let a = http(
        s.console,
        "POST",
        "/customer-users/road/totp/enroll",
        &me,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.head
            .to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{}",
        a.head
    );
    assert!(a.body.contains("<svg"), "QR code inline: {}", a.body);
    let after = a.body.split("id=\"totp-secret\">").nth(1).unwrap();
    let secret = &after[..after.find('<').unwrap()];
    assert_eq!(secret.len(), 16, "{secret}");
    assert!(a.body.contains("otpauth://totp/"), "{}", a.body);
    assert!(a
        .body
        .contains("An enrolment waits for its confirming token."));

    let a = http(
        s.console,
        "POST",
        "/customer-users/road/totp/confirm",
        &me,
        &format!("csrf={csrf}&otp=12"),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body.contains("id=\"err-otp\""),
        "next to its field: {}",
        a.body
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let otp = totp::token(secret, now);
    let a = http(
        s.console,
        "POST",
        "/customer-users/road/totp/confirm",
        &me,
        &format!("csrf={csrf}&otp={otp}"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains("Second factor active.") && a.body.contains("A TOTP secret is active."),
        "{}",
        a.body
    );

    let reader = sign_in(s.console, READER).await;
    let rv = http(s.console, "GET", "/customer-users/road", &reader, "").await;
    assert_eq!(rv.status, 200);
    assert!(!rv.body.contains("Two-factor"), "{}", rv.body);
    let rcsrf = csrf_of(&rv.body);
    let a = http(
        s.console,
        "POST",
        "/customer-users/road/totp/enroll",
        &reader,
        &format!("csrf={rcsrf}"),
    )
    .await;
    assert_eq!(a.status, 403);

    let a = http(
        s.console,
        "POST",
        "/customer-users/road/totp/remove",
        &me,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Second factor removed.") && a.body.contains("No TOTP secret."));
}

/// The `href` of the link labelled `label` in `body` (HTML entities of a query string undone).
fn href_of(body: &str, label: &str) -> Option<String> {
    let end = body.find(&format!(">{label}</a>"))?;
    let start = body[..end].rfind("href=\"")? + 6;
    let stop = start + body[start..].find('"')?;
    Some(body[start..stop].replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_through_every_record_with_page_tokens() {
    let s = serve_with("console_list_limit = 3", false).await;
    let mut users = pb::customer_user_service_client::CustomerUserServiceClient::connect(format!(
        "http://{}",
        s.grpc
    ))
    .await
    .unwrap();
    pb::customer_service_client::CustomerServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .unwrap()
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                customer_id: "acme".into(),
                name: "ACME".into(),
                validity: pb::Validity::Valid.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..57 {
        users
            .create_customer_user(pb::CreateCustomerUserRequest {
                customer_user: Some(pb::CustomerUser {
                    login: format!("p{i:02}"),
                    first_name: "P".into(),
                    last_name: format!("L{i}"),
                    email: format!("p{i}@acme.example"),
                    customer_id: "acme".into(),
                    validity: pb::Validity::Valid.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let me = session_of(&http(s.console, "GET", "/", "", "").await);
    let first = http(s.console, "GET", "/customer-users?q=p*", &me, "").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains(">p00<") && first.body.contains(">p49<"));
    assert!(!first.body.contains(">p50<"), "50 a page");
    assert!(first.body.contains("page 1"));
    let next = href_of(&first.body, "next →").expect("a next link on a full page");
    assert!(next.contains("page_token="), "{next}");
    let second = http(s.console, "GET", &next, &me, "").await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(second.body.contains(">p50<") && second.body.contains(">p56<"));
    assert!(!second.body.contains(">p49<"), "no record twice");
    assert!(second.body.contains("page 2"));
    assert!(href_of(&second.body, "next →").is_none(), "the last page");
    assert!(href_of(&second.body, "← first page").is_some());
    // A token used with another query is refused next to the search box.
    let token = next
        .split("page_token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let other = http(
        s.console,
        "GET",
        &format!("/customer-users?q=q*&page_token={token}"),
        &me,
        "",
    )
    .await;
    assert!(other.body.contains("class=\"violation\""), "{}", other.body);
    // A customer's customer users page console_list_limit (3) at a time.
    let acme = http(s.console, "GET", "/customers/acme", &me, "").await;
    assert_eq!(acme.status, 200, "{}", acme.body);
    assert!(acme.body.contains(">p02<") && !acme.body.contains(">p03<"));
    let next = href_of(&acme.body, "next →").expect("a next link under a full sub-list");
    let acme2 = http(s.console, "GET", &next, &me, "").await;
    assert!(acme2.body.contains(">p03<") && acme2.body.contains(">p05<"));
    assert!(!acme2.body.contains(">p02<") && !acme2.body.contains(">p06<"));
    // Customers page the same way.
    let customers = http(s.console, "GET", "/customers?q=*", &me, "").await;
    assert_eq!(customers.status, 200, "{}", customers.body);
    assert!(customers.body.contains("page 1"));
}
