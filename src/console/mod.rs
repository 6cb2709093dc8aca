//! The admin console: server-rendered HTML (maud, no JavaScript) on `server.console_listen`,
//! over the same [`Directory`] operations the gRPC handlers call, so every rule (validation,
//! uniqueness, password policy, permissions and their reasons, lockout) is decided in one
//! place. Paths and form field names are DESIGN section 9's.
//!
//! Security decisions:
//! - With `[[callers]]`, `/login` takes a caller's bearer `token` (matched by
//!   [`Access::by_token`], the API's own check); TLS client certificates are not offered, since
//!   the console listener serves plain HTTP (put it behind loopback or a TLS proxy). Without
//!   callers every visitor is the anonymous caller, as on the API, and the listener must be
//!   loopback (checked at start like `server.listen`).
//! - A session is a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie, kept in a
//!   server-side table of at most [`MAX_SESSIONS`] entries (the oldest is dropped when full)
//!   for [`SESSION_LIFETIME`]; the token is never stored in it, only the caller's name.
//! - Every form that POSTs carries the session's CSRF token (`csrf`), compared in constant time
//!   on every POST; a POST without it is 403. The sign-in form, before any session, uses a
//!   double submit (the same random value in a short-lived cookie and in the form). Search
//!   forms are GETs that change nothing and carry no token (it would end up in URLs).
//! - Every action is allowed by the scope of the RPC it stands for ([`Access::may_call`] over
//!   `access::SCOPE_TABLE`): without the write scope no edit control is rendered, and a POST by
//!   hand is 403.
//! - Nothing secret in URLs (tokens and passwords are POSTed) or logs; a generated password is
//!   shown once, in the response body of the create.

// A handler's early answer (redirect, 403) is its `Err`: axum's idiom, and a page is rendered
// once per request, so the size of `Response` costs nothing that matters.
#![allow(clippy::result_large_err)]

mod pages;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use maud::Markup;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::access::Access;
use crate::directory::Directory;
use crate::domain::query::QueryLimits;
use crate::error::Error;

/// How long a session lasts from sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 10_000;
const COOKIE: &str = "clientele_session";
/// The double-submit CSRF cookie of the sign-in form (there is no session yet).
const LOGIN_COOKIE: &str = "clientele_login_csrf";

/// What the console needs: the directory, the callers, the limits.
pub struct Console {
    dir: Arc<Directory>,
    access: Access,
    list_limit: usize,
    deadline: Duration,
    query_limits: QueryLimits,
    /// (section, name, kind, read-only) of every configured source.
    sources: Vec<(&'static str, String, &'static str, bool)>,
    sessions: Mutex<HashMap<String, Session>>,
    /// `server.insecure`: no host check without callers (the operator opened it to everyone).
    insecure: bool,
    /// [`MAX_SESSIONS`] (smaller in tests).
    max_sessions: usize,
}

#[derive(Clone)]
struct Session {
    /// The caller's name (`anonymous` without callers).
    caller: String,
    csrf: String,
    created: Instant,
}

/// The signed-in visitor of one request.
pub struct Ctx {
    caller: String,
    csrf: String,
    /// A `Set-Cookie` for a session made by this request.
    cookie: Option<String>,
    signed_in: bool,
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Console {
    /// The console over `dir`, with the callers of `settings`.
    pub fn new(dir: Arc<Directory>, settings: &crate::config::Settings) -> Arc<Self> {
        let kind = |b: &crate::config::Backend| match b {
            crate::config::Backend::Sql(_) => "sql",
            crate::config::Backend::Ldap(_) => "ldap",
        };
        let mut sources: Vec<_> = settings
            .user_sources
            .iter()
            .map(|s| {
                (
                    "customer users",
                    s.settings.name.clone(),
                    kind(&s.backend),
                    s.settings.read_only,
                )
            })
            .collect();
        sources.extend(settings.customer_sources.iter().map(|s| {
            (
                "customers",
                s.settings.name.clone(),
                kind(&s.backend),
                s.settings.read_only,
            )
        }));
        Arc::new(Self {
            dir,
            access: settings.access.clone(),
            list_limit: settings.server.console_list_limit,
            deadline: settings.server.default_deadline,
            query_limits: QueryLimits {
                max_chars: settings.server.max_query_chars,
                max_terms: settings.server.max_query_terms,
            },
            sources,
            sessions: Mutex::new(HashMap::new()),
            insecure: settings.server.insecure,
            max_sessions: MAX_SESSIONS,
        })
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.deadline
    }

    fn session_of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers)?;
        let mut sessions = self.sessions.lock().ok()?;
        match sessions.get(&id) {
            Some(s) if s.created.elapsed() < SESSION_LIFETIME => Some(s.clone()),
            Some(_) => {
                sessions.remove(&id);
                None
            }
            None => None,
        }
    }

    fn open_session(&self, caller: String) -> (String, Session) {
        let id = random_id();
        let s = Session {
            caller,
            csrf: random_id(),
            created: Instant::now(),
        };
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| s.created.elapsed() < SESSION_LIFETIME);
            if sessions.len() >= self.max_sessions {
                if let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.created)
                    .map(|(k, _)| k.clone())
                {
                    sessions.remove(&oldest);
                }
            }
            sessions.insert(id.clone(), s.clone());
        }
        (id, s)
    }

    fn close_session(&self, headers: &HeaderMap) {
        if let (Some(id), Ok(mut sessions)) = (cookie(headers), self.sessions.lock()) {
            sessions.remove(&id);
        }
    }

    /// The visitor, or the way to the sign-in page. Without callers a session is opened on
    /// the first visit (it carries the CSRF token).
    fn ctx(&self, headers: &HeaderMap) -> Result<Ctx, Response> {
        self.check_host(headers)?;
        if let Some(s) = self.session_of(headers) {
            return Ok(Ctx {
                caller: s.caller,
                csrf: s.csrf,
                cookie: None,
                signed_in: !self.access.callers.is_empty(),
            });
        }
        if !self.access.callers.is_empty() {
            return Err(Redirect::to("/login").into_response());
        }
        let (id, s) = self.open_session("anonymous".into());
        Ok(Ctx {
            caller: s.caller,
            csrf: s.csrf,
            cookie: Some(set_cookie(&id)),
            signed_in: false,
        })
    }

    /// [`Console::ctx`] for a POST: the form's `csrf` must be the session's.
    fn post_ctx(&self, headers: &HeaderMap, form: &Form) -> Result<Ctx, Response> {
        self.check_host(headers)?;
        let s = self
            .session_of(headers)
            .ok_or_else(|| forbidden("no session: reload the page and sign in"))?;
        if !same_secret(Some(&s.csrf), form.get("csrf")) {
            return Err(forbidden(
                "the form's CSRF token is missing or wrong; reload the page",
            ));
        }
        Ok(Ctx {
            caller: s.caller,
            csrf: s.csrf,
            cookie: None,
            signed_in: !self.access.callers.is_empty(),
        })
    }

    /// Without callers anyone who reaches the page is allowed everything, so the page must be
    /// reached as a loopback name: a `Host` other than `localhost`, `127.0.0.1` or `[::1]` (any
    /// port) is refused, which stops a DNS-rebinding page in the administrator's browser from
    /// opening an anonymous session. With callers, the sign-in protects the pages; with
    /// `server.insecure = true` the operator has opened it to everyone anyway.
    fn check_host(&self, headers: &HeaderMap) -> Result<(), Response> {
        if !self.access.callers.is_empty() || self.insecure {
            return Ok(());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.split(':').next().unwrap_or(""),
        };
        match name {
            "localhost" | "127.0.0.1" | "::1" => Ok(()),
            _ => Err(forbidden(
                "without [[callers]] the console answers only to a loopback host name (localhost, 127.0.0.1, [::1])",
            )),
        }
    }

    /// Whether the visitor may call the RPC `rpc` (`Service/Method`).
    fn may(&self, ctx: &Ctx, rpc: &str) -> bool {
        self.access
            .may_call(&ctx.caller, &format!("/clientele.v1.{rpc}"))
    }

    /// 403 unless the visitor may call `rpc`.
    fn require(&self, ctx: &Ctx, rpc: &str) -> Result<(), Response> {
        if self.may(ctx, rpc) {
            Ok(())
        } else {
            Err(forbidden(&format!(
                "caller {:?} may not do this ({rpc} needs a scope it lacks)",
                ctx.caller
            )))
        }
    }

    fn render(&self, ctx: &Ctx, status: StatusCode, title: &str, body: Markup) -> Response {
        let who = ctx.signed_in.then_some(ctx.caller.as_str());
        let html = view::page(title, who, &ctx.csrf, body).into_string();
        let mut r = (status, Html(html)).into_response();
        // Pages may carry a generated password or a new TOTP secret, shown once: never cached.
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        if let Some(c) = &ctx.cookie {
            if let Ok(v) = c.parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
        }
        r
    }
}

fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    )
}

/// Whether `sent` is the non-empty `expected`, compared in constant time.
fn same_secret(expected: Option<&str>, sent: &str) -> bool {
    expected.is_some_and(|e| !e.is_empty() && bool::from(e.as_bytes().ct_eq(sent.as_bytes())))
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    cookie_named(headers, COOKIE)
}

fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

fn forbidden(message: &str) -> Response {
    let html = view::page("Forbidden", None, "", view::error_box(message)).into_string();
    (StatusCode::FORBIDDEN, Html(html)).into_response()
}

/// An error in words with its status; field violations are shown by the form that caused them.
fn error_words(e: &Error) -> (StatusCode, String) {
    let status = match e {
        Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::AlreadyExists { .. } | Error::Aborted(_) => StatusCode::CONFLICT,
        Error::FailedPrecondition { .. } => StatusCode::CONFLICT,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::PermissionDenied { .. } => StatusCode::FORBIDDEN,
        Error::RateLimited { .. } | Error::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) | Error::DeadlineExceeded(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let words = match status {
        StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::error!(error = %e, "console: internal error");
            "an internal error occurred; the server log has the details".to_owned()
        }
        _ => e.to_string(),
    };
    (status, words)
}

/// A decoded `application/x-www-form-urlencoded` body (repeated names kept in order).
pub struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// A GET's visitor ([`Console::ctx`]: signed in, or sent to `/login`).
pub struct Viewer(Ctx);

impl axum::extract::FromRequestParts<Arc<Console>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Response> {
        console.ctx(&parts.headers).map(Self)
    }
}

/// A POST's visitor and form, its CSRF token checked ([`Console::post_ctx`]); the handler's
/// last argument.
pub struct Posted(Ctx, Form);

impl axum::extract::FromRequest<Arc<Console>> for Posted {
    type Rejection = Response;

    async fn from_request(
        req: axum::extract::Request,
        console: &Arc<Console>,
    ) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let body = axum::body::Bytes::from_request(req, console)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = pages::form(&body);
        let ctx = console.post_ctx(&headers, &form)?;
        Ok(Self(ctx, form))
    }
}

/// Serves the console on `listener` until `shutdown` completes.
pub async fn serve(
    console: Arc<Console>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, pages::router(console))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Refuses a non-loopback console address without `[[callers]]` (unless `server.insecure`),
/// like the API's `server.listen`.
pub fn check_exposure(
    settings: &crate::config::Settings,
) -> Result<Option<std::net::SocketAddr>, String> {
    let listen = &settings.server.console_listen;
    if listen.is_empty() {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|e| format!("server.console_listen: {e}"))?;
    if settings.access.callers.is_empty() && !addr.ip().is_loopback() && !settings.server.insecure {
        return Err(format!(
            "refusing to serve the console on {addr} without [[callers]]: configure callers (the console then signs in with a caller's token), listen on loopback, or set server.insecure = true"
        ));
    }
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(max_sessions: usize) -> Console {
        let settings = crate::config::Config::from_toml("", Vec::new())
            .and_then(crate::config::Config::validate)
            .unwrap();
        let app = crate::app::build(settings.clone()).unwrap();
        let c = Console::new(app.directory, &settings);
        let mut c = Arc::try_unwrap(c).ok().unwrap();
        c.max_sessions = max_sessions;
        c
    }

    fn with_cookie(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={id}").parse().unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn the_session_table_is_bounded_and_drops_the_oldest() {
        let c = console(3);
        let ids: Vec<String> = (0..5).map(|i| c.open_session(format!("c{i}")).0).collect();
        assert_eq!(c.sessions.lock().unwrap().len(), 3);
        assert!(c.session_of(&with_cookie(&ids[0])).is_none());
        assert!(c.session_of(&with_cookie(&ids[1])).is_none());
        assert_eq!(c.session_of(&with_cookie(&ids[4])).unwrap().caller, "c4");
        assert!(c.session_of(&with_cookie("not-a-session")).is_none());
        c.close_session(&with_cookie(&ids[4]));
        assert!(c.session_of(&with_cookie(&ids[4])).is_none());
    }

    #[test]
    fn secrets_compare_only_when_equal_and_non_empty() {
        assert!(same_secret(Some("abc"), "abc"));
        assert!(!same_secret(Some("abc"), "abd"));
        assert!(!same_secret(Some(""), ""));
        assert!(!same_secret(None, "abc"));
    }
}
