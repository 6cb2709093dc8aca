//! The console's routes: thin handlers that turn a form into a domain value, call the
//! [`crate::directory::Directory`] operation the matching RPC calls, and render the answer.
//! Each action is allowed by the scope of that RPC (`Console::require`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use maud::{html, Markup};

use super::view::{self, csrf_field, error_box, escape_path, notice, record_fields, text_input};
use super::{error_words, Console, Ctx, Form, Posted, Viewer};
use crate::directory::paging::{next_token, PageRequest};
use crate::directory::Held;
use crate::domain::group::Context;
use crate::domain::group::Group;
use crate::domain::query::{parse_within, Grammar};
use crate::domain::search::{CustomerSearch, UserCriterion, UserSearch};
use crate::domain::{
    Attr, Customer, CustomerField, CustomerUser, Field, Patch, Record, Schema, UserField, Validity,
};
use crate::error::{Error, FieldViolation};

type S = State<Arc<Console>>;
const PAGE: usize = 50;

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/console.css", get(css))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/customer-users", get(users))
        .route("/customer-users/new", get(user_new).post(user_create))
        .route("/customer-users/{login}", get(user_view).post(user_update))
        .route("/customer-users/{login}/unlock", post(user_unlock))
        .route("/customer-users/{login}/password", post(user_password))
        .route(
            "/customer-users/{login}/totp/enroll",
            post(user_totp_enroll),
        )
        .route(
            "/customer-users/{login}/totp/confirm",
            post(user_totp_confirm),
        )
        .route(
            "/customer-users/{login}/totp/remove",
            post(user_totp_remove),
        )
        .route("/customer-users/{login}/groups", post(user_grant))
        .route("/customers", get(customers))
        .route("/customers/new", get(customer_new).post(customer_create))
        .route(
            "/customers/{customer_id}",
            get(customer_view).post(customer_update),
        )
        .route("/customers/{customer_id}/groups", post(customer_grant))
        .route("/groups", get(groups))
        .route("/groups/new", get(group_new).post(group_create))
        .route("/groups/{name}", get(group_view).post(group_update))
        .route("/groups/{name}/customer-users", post(group_grant_user))
        .route("/groups/{name}/customers", post(group_grant_customer))
        .route("/sources", get(sources))
        .with_state(console)
}

pub(super) fn form(body: &Bytes) -> Form {
    Form(url::form_urlencoded::parse(body).into_owned().collect())
}

/// `Ok(page)` or the response that replaces it (redirect, 403, error page).
type Page = Result<Response, Response>;

fn fail(c: &Console, ctx: &Ctx, e: &Error) -> Response {
    let (status, words) = error_words(e);
    let body = match e {
        Error::InvalidArgument(v) => {
            html! { (error_box(&words)) ul { @for x in v { li { (x.field) ": " (x.description) } } } }
        }
        _ => error_box(&words),
    };
    c.render(ctx, status, "Error", body)
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css")], view::CSS).into_response()
}

async fn overview(State(c): S, Viewer(ctx): Viewer) -> Page {
    let body = html! {
        p { "Customer users, customers, groups and permissions of this Clientele server." }
        ul {
            li { a href="/customer-users" { "Customer users" } " — search, add, edit, permissions, login state" }
            li { a href="/customers" { "Customers" } " — the companies" }
            li { a href="/groups" { "Groups" } " — and their customer users and customers" }
            li { a href="/sources" { "Sources" } " — health, kind, read-only" }
        }
    };
    Ok(c.render(&ctx, StatusCode::OK, "Overview", body))
}

async fn login_page(State(c): S) -> Response {
    login_form(&c, StatusCode::OK, None)
}

/// The sign-in form. It has no session yet, so its CSRF token is a double submit: a random
/// value in a short-lived `HttpOnly; SameSite=Strict` cookie and in the form, which `login`
/// compares.
fn login_form(c: &Console, status: StatusCode, error: Option<&str>) -> Response {
    if c.access.callers.is_empty() {
        return Redirect::to("/").into_response();
    }
    let csrf = super::random_id();
    let body = html! {
        @if let Some(e) = error { (error_box(e)) }
        form method="post" action="/login" {
            (csrf_field(&csrf))
            label for="f-token" { "Caller token" }
            input type="password" id="f-token" name="token" autocomplete="current-password";
            button type="submit" { "Sign in" }
        }
        p.muted { "Sign in with the bearer token of a configured caller; its scopes apply." }
    };
    let html = view::page("Sign in", None, "", body).into_string();
    let mut r = (status, axum::response::Html(html)).into_response();
    let cookie = format!(
        "{}={csrf}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=900",
        super::LOGIN_COOKIE
    );
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn login(State(c): S, headers: HeaderMap, body: Bytes) -> Response {
    let f = form(&body);
    if !super::same_secret(
        super::cookie_named(&headers, super::LOGIN_COOKIE).as_deref(),
        f.get("csrf"),
    ) {
        return super::forbidden(
            "the sign-in form's CSRF token is missing or wrong; reload the page",
        );
    }
    let Some(caller) = c.access.by_token(f.get("token")).map(|c| c.name.clone()) else {
        tracing::warn!("console: sign-in with an unknown token");
        return login_form(&c, StatusCode::UNAUTHORIZED, Some("unknown token"));
    };
    tracing::info!(caller, "console: signed in");
    let (id, _) = c.open_session(caller);
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = super::set_cookie(&id).parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(c): S, headers: HeaderMap, body: Bytes) -> Page {
    c.post_ctx(&headers, &form(&body))?;
    c.close_session(&headers);
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        super::COOKIE
    )
    .parse()
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

fn validity_of(f: &Form, out: &mut Vec<FieldViolation>) -> Validity {
    match f.get("validity") {
        "" | "VALID" => Validity::Valid,
        "INVALID" => Validity::Invalid,
        "INVALID_TEMPORARILY" => Validity::InvalidTemporarily,
        _ => {
            out.push(FieldViolation::new(
                "validity",
                "must be VALID, INVALID or INVALID_TEMPORARILY",
            ));
            Validity::Valid
        }
    }
}

/// A record from the form's fields of `schema` (and the patch of the fields present).
fn record_from<R: Record>(
    schema: &Schema<R::Field>,
    f: &Form,
    v: &mut Vec<FieldViolation>,
) -> Patch<R> {
    let mut r = R::default();
    let mut fields = Vec::new();
    for rule in view::text_attrs(schema) {
        let name = view::field_name(&rule.attr);
        if !f.has(&name) {
            continue;
        }
        let value = f.get(&name).trim().to_owned();
        match &rule.attr {
            Attr::Field(field) => field.set(&mut r, value),
            Attr::Extra(x) => {
                r.extra_mut().insert(x.clone(), value);
            }
        }
        fields.push(rule.attr.clone());
    }
    if f.has("validity") {
        r.set_validity(validity_of(f, v));
        fields.push(Attr::Field(R::Field::VALIDITY));
    }
    Patch { values: r, fields }
}

/// What an action leaves to show on the page it returns to: a message (done, or the error in
/// words), the field violations (shown next to their fields) and the status.
#[derive(Default)]
struct Feedback {
    message: Option<Markup>,
    violations: Vec<FieldViolation>,
    status: StatusCode,
}

impl Feedback {
    /// The outcome of an action: `done` says what it did.
    fn of<T>(r: &Result<T, Error>, done: impl FnOnce(&T) -> String) -> Self {
        match r {
            Ok(x) => Self {
                message: Some(notice(&done(x))),
                ..Self::default()
            },
            Err(Error::InvalidArgument(v)) => Self {
                violations: v.clone(),
                status: StatusCode::BAD_REQUEST,
                ..Self::default()
            },
            Err(e) => {
                let (status, words) = error_words(e);
                Self {
                    message: Some(error_box(&words)),
                    status,
                    ..Self::default()
                }
            }
        }
    }

    /// A finished action: `message` says what it did.
    fn done(message: &str) -> Self {
        Self::of(&Ok::<_, Error>(()), |()| message.to_owned())
    }

    /// A failed action: its violations next to their fields, anything else in words.
    fn failed(e: Error) -> Self {
        Self::of(&Err::<(), _>(e), |()| String::new())
    }

    fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// The update of a record of `schema` from the form: the attributes posted, less the read-only
/// ones (rendered disabled, so a hand-made post cannot change them either).
fn edit_patch<R: Record>(schema: &Schema<R::Field>, f: &Form) -> Result<Patch<R>, Error> {
    let mut v = Vec::new();
    let mut patch: Patch<R> = record_from(schema, f, &mut v);
    patch
        .fields
        .retain(|a| schema.rule(a).is_none_or(|r| !r.read_only));
    match v.is_empty() {
        true => Ok(patch),
        false => Err(Error::InvalidArgument(v)),
    }
}

/// What a grant left: the keys held now on `group`.
fn held(group: &str, keys: &[String]) -> String {
    match keys.is_empty() {
        true => format!("Permissions on {group}: none."),
        false => format!("Permissions on {group}: {}.", keys.join(", ")),
    }
}

fn user_row(u: &CustomerUser) -> Markup {
    html! {
        tr {
            td { a href={ "/customer-users/" (escape_path(&u.login)) } { (u.login) } }
            td { (u.full_name) } td { (u.email) } td { (u.customer_id) }
            td { (u.source) } td { (u.validity) }
        }
    }
}

fn user_table(users: &[CustomerUser]) -> Markup {
    html! {
        table {
            thead { tr { th { "Login" } th { "Name" } th { "Email" } th { "Customer" } th { "Source" } th { "Validity" } } }
            tbody { @for u in users { (user_row(u)) } }
        }
    }
}

/// The links of a walked list: back to the first page, and on to the next one through the
/// walk's page token (empty on the last page), so a list pages to its end however large the
/// directory. `n` is this page's number, carried in the link for display only.
fn pager(base: &str, q: &str, n: usize, next: &str) -> Markup {
    let first = format!("{base}?q={}", escape_path(q));
    let link = format!(
        "{base}?q={}&page_token={}&n={}",
        escape_path(q),
        escape_path(next),
        n + 1
    );
    html! {
        nav aria-label="Pages" {
            @if n > 1 { a href=(first) { "← first page" } " " }
            span { "page " (n) }
            @if !next.is_empty() { " " a href=(link) { "next →" } }
        }
    }
}

/// The links of a detail page's sub-list (a customer's customer users, a group's members):
/// back to its start, and on past `next` (the last key shown; `None` on the last page). The
/// links end at the list's heading `anchor`.
fn sub_pager(path: &str, anchor: &str, next: Option<&str>) -> Markup {
    html! {
        @if let Some(n) = next {
            nav aria-label="Pages" {
                a href={ (path) "#" (anchor) } { "← first" } " "
                a href={ (path) "?after=" (escape_path(n)) "#" (anchor) } { "next →" }
            }
        }
    }
}

/// The page token and page number of a list request (`page_token`, `n`).
fn list_position(q: &BTreeMap<String, String>) -> (String, usize) {
    let token = q.get("page_token").cloned().unwrap_or_default();
    let n = q
        .get("n")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    (token, n)
}

async fn users(
    State(c): S,
    Viewer(ctx): Viewer,
    Query(q): Query<BTreeMap<String, String>>,
) -> Page {
    let query = q.get("q").map_or("*", |s| s.as_str()).to_owned();
    let (token, n) = list_position(&q);
    // A walk in pages of PAGE (page tokens bound to the query, as the API's).
    let paging = PageRequest::list(PAGE as u32, &token, 0);
    let result = async {
        let expr = parse_within(&query, Grammar::CustomerUser, c.query_limits)
            .map_err(|e| Error::invalid("q", e.to_string()))?;
        let criterion = UserCriterion::Query(expr);
        let dir = &c.dir;
        let (detail, digest) = paging.detail::<UserField>(
            &format!("console|{criterion:?}"),
            &|x| dir.user_extra_known(x),
            c.query_limits,
        )?;
        let search = UserSearch {
            criterion,
            include_invalid: true,
            limit: paging.size(),
            detail,
        };
        let w = dir.walk_users(search, &[], false, c.deadline()).await?;
        Ok::<_, Error>((next_token(&digest, w.next.as_ref()), w))
    }
    .await;
    let body = html! {
        form method="get" action="/customer-users" role="search" {
            label for="f-q" { "Search (OTRS grammar: * wildcard, + and, ! not, \"phrase\")" }
            input type="search" id="f-q" name="q" value=(query);
            button type="submit" { "Search" }
        }
        @if c.may(&ctx, "CustomerUserService/CreateCustomerUser") {
            p { a href="/customer-users/new" { "Add customer user" } }
        }
        @match &result {
            Err(Error::InvalidArgument(v)) => { @for x in v { p.violation { (x.description) } } }
            Err(e) => (error_box(&error_words(e).1)),
            Ok((next, m)) => {
                @for s in m.status.iter().filter(|s| s.error.is_some()) {
                    (error_box(&format!("source {}: {}", s.source, s.error.clone().unwrap_or_default())))
                }
                p { (m.items.len()) " customer users on this page" }
                (user_table(&m.items))
                (pager("/customer-users", &query, n, next))
            }
        }
    };
    Ok(c.render(&ctx, StatusCode::OK, "Customer users", body))
}

/// The writable customer-user sources, and the chosen one (by name, else the first).
/// The writable sources among `all` (names in order), and the one named `chosen` (else the
/// first writable one): the data-source choice of an add screen.
fn write_choice<'a, B: Held>(
    all: impl Iterator<Item = &'a B>,
    chosen: &str,
) -> (Vec<&'a str>, Option<&'a B>) {
    let writable: Vec<&B> = all.filter(|s| s.writer().is_some()).collect();
    let names = writable.iter().map(|s| s.name()).collect();
    let target = writable
        .iter()
        .find(|s| s.name() == chosen)
        .or(writable.first())
        .copied();
    (names, target)
}

fn user_new_form(
    c: &Console,
    ctx: &Ctx,
    chosen: &str,
    user: &CustomerUser,
    v: &[FieldViolation],
) -> Markup {
    let (names, target) = write_choice(c.dir.user_sources(), chosen);
    let Some(target) = target else {
        return error_box("no customer-user source is writable");
    };
    let mut shown = view::form_fields(target.reader.schema());
    shown.extend(["password", "generate_password", "source"].map(String::from));
    html! {
        @if names.len() > 1 {
            form method="get" action="/customer-users/new" {
                label for="f-source-pick" { "Data source" }
                select id="f-source-pick" name="source" {
                    @for n in &names { option value=(n) selected[*n == target.name()] { (n) } }
                }
                button type="submit" { "Choose" }
            }
        }
        (view::other_violations(&shown, v))
        form method="post" action="/customer-users/new" {
            (csrf_field(&ctx.csrf))
            input type="hidden" name="source" value=(target.name());
            p.muted { "Source: " (target.name()) ". Fields marked " span.req { "*" } " are required; the customer must exist." }
            (record_fields(target.reader.schema(), user, false, true, v))
            label for="f-password" { "Password (leave empty and tick below to generate one)" }
            input type="password" id="f-password" name="password" autocomplete="new-password";
            (view::violations_of("password", v))
            div.check {
                input type="checkbox" id="f-generate_password" name="generate_password" value="true" checked;
                " " label for="f-generate_password" { "Generate a password (shown once)" }
            }
            (view::violations_of("generate_password", v))
            button type="submit" { "Create" }
        }
    }
}

async fn user_new(
    State(c): S,
    Viewer(ctx): Viewer,
    Query(q): Query<BTreeMap<String, String>>,
) -> Page {
    c.require(&ctx, "CustomerUserService/CreateCustomerUser")?;
    let chosen = q.get("source").cloned().unwrap_or_default();
    let body = user_new_form(&c, &ctx, &chosen, &CustomerUser::default(), &[]);
    Ok(c.render(&ctx, StatusCode::OK, "Add customer user", body))
}

async fn user_create(State(c): S, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "CustomerUserService/CreateCustomerUser")?;
    let (_, target) = write_choice(c.dir.user_sources(), f.get("source"));
    let Some(target) = target else {
        return Ok(c.render(
            &ctx,
            StatusCode::CONFLICT,
            "Add customer user",
            error_box("no customer-user source is writable"),
        ));
    };
    let source = target.name().to_owned();
    let mut v = Vec::new();
    let mut user: CustomerUser = record_from(target.reader.schema(), &f, &mut v).values;
    if !f.has("validity") {
        user.validity = Validity::Valid;
    }
    let password = Some(f.get("password").to_owned()).filter(|p| !p.is_empty());
    let generate = password.is_none() && f.get("generate_password") == "true";
    let result = match v.is_empty() {
        true => {
            c.dir
                .create_user(
                    Some(&source),
                    user.clone(),
                    password,
                    generate,
                    c.deadline(),
                )
                .await
        }
        false => Err(Error::InvalidArgument(v)),
    };
    Ok(match result {
        Ok((u, generated)) => {
            let body = html! {
                (notice(&format!("Customer user {} created in source {}.", u.login, u.source)))
                @if let Some(p) = generated {
                    p { "Generated password (shown once, not stored anywhere readable): " code id="generated-password" { (p) } }
                }
                p { a href={ "/customer-users/" (escape_path(&u.login)) } { "Open " (u.login) } }
            };
            c.render(&ctx, StatusCode::CREATED, "Customer user created", body)
        }
        Err(Error::InvalidArgument(v)) => {
            let body = user_new_form(&c, &ctx, &source, &user, &v);
            c.render(&ctx, StatusCode::BAD_REQUEST, "Add customer user", body)
        }
        Err(e) => {
            let body = html! { (error_box(&error_words(&e).1)) (user_new_form(&c, &ctx, &source, &user, &[])) };
            c.render(&ctx, error_words(&e).0, "Add customer user", body)
        }
    })
}

async fn user_page(c: &Console, ctx: &Ctx, login: &str, fb: Feedback) -> Response {
    let Feedback {
        message,
        violations,
        status,
    } = fb;
    let v = violations.as_slice();
    let until = c.deadline();
    let user = match c.dir.get_user(login, until).await {
        Ok(u) => u,
        Err(e) => return fail(c, ctx, &e),
    };
    let source = c.dir.user_sources().find(|s| s.name() == user.source);
    let writable = source.is_some_and(|s| s.writer.is_some())
        && c.may(ctx, "CustomerUserService/UpdateCustomerUser");
    let path = format!("/customer-users/{}", escape_path(&user.login));
    let permissions = if c.may(ctx, "GroupService/GetEffectivePermissions") {
        Some(c.dir.effective_permissions(&user.login, until).await)
    } else {
        None
    };
    let state = c.dir.login_state(&user.login, until).await;
    let totp = if c.may(ctx, "AuthService/EnrollTotp") {
        Some(c.dir.totp_status(&user.login, until).await)
    } else {
        None
    };
    let groups = c.dir.list_groups(false).await.unwrap_or_default();
    let body = html! {
        @if let Some(m) = message { (m) }
        section aria-labelledby="h-attrs" {
            h2 id="h-attrs" { "Attributes" }
            p.muted { "Source: " (user.source) ". " @if !writable { "Read only for you or in this source." } }
            @if let Some(s) = source {
                (view::other_violations(&view::form_fields(s.reader.schema()), v))
                form method="post" action=(path) {
                    (csrf_field(&ctx.csrf))
                    (record_fields(s.reader.schema(), &user, true, writable, v))
                    @if writable { button type="submit" { "Save" } }
                }
            }
        }
        section aria-labelledby="h-login" {
            h2 id="h-login" { "Login state" }
            @match &state {
                Ok((st, locked)) => {
                    p id="login-state" {
                        "Failed logins: " (st.failed) ". "
                        @if *locked {
                            strong { "Login forbidden" }
                            @match st.locked_until { Some(i64::MAX) => " until unlocked.", Some(t) => { " until " (humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0).unsigned_abs()))) " (UTC)." }, None => "" }
                        } @else { "Not locked." }
                    }
                    @if c.may(ctx, "AuthService/UnlockLogin") && (*locked || st.failed > 0) {
                        form method="post" action={ (path) "/unlock" } {
                            (csrf_field(&ctx.csrf))
                            button type="submit" { "Unlock" }
                        }
                    }
                }
                Err(e) => (error_box(&error_words(e).1)),
            }
            @if c.may(ctx, "AuthService/SetPassword") && source.is_some_and(|s| s.writer.is_some()) {
                h3 { "Set password" }
                form method="post" action={ (path) "/password" } {
                    (csrf_field(&ctx.csrf))
                    label for="f-new-password" { "New password" }
                    input type="password" id="f-new-password" name="password" autocomplete="new-password"
                        aria-invalid=[v.iter().any(|x| x.field == "password").then_some("true")];
                    (view::violations_of("password", v))
                    button type="submit" { "Set password" }
                }
            }
        }
        @if let Some(t) = totp {
            (two_factor_section(&path, &ctx.csrf, &t, v))
        }
        @if let Some(p) = permissions {
            section aria-labelledby="h-perms" {
                h2 id="h-perms" { "Effective permissions" }
                @match p {
                    Ok(groups) if groups.is_empty() => p { "No permissions." },
                    Ok(groups) => table id="effective-permissions" {
                        thead { tr { th { "Group" } th { "Permission" } th { "Why" } } }
                        tbody {
                            @for (g, keys) in &groups { @for (k, reasons) in keys {
                                tr { td { (g) } td { (k) } td { (reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")) } }
                            } }
                        }
                    },
                    Err(e) => (error_box(&error_words(&e).1)),
                }
                @if c.may(ctx, "GroupService/SetCustomerUserPermissions") {
                    h3 { "Grant or revoke a group permission" }
                    (grant_form(&format!("{path}/groups"), &ctx.csrf, "f", Some(&groups), None, false))
                }
            }
        }
    };
    c.render(ctx, status, &format!("Customer user {}", user.login), body)
}

/// The form granting or revoking one key of a group (to a customer user, or with contexts to
/// a customer).
fn grant_form(
    action: &str,
    csrf: &str,
    id: &str,
    groups: Option<&[Group]>,
    who: Option<(&str, &str)>,
    contexts: bool,
) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf_field(csrf))
            @if let Some((name, label)) = who {
                label for={ (id) "-" (name) } { (label) }
                input type="text" id={ (id) "-" (name) } name=(name);
            }
            @if let Some(groups) = groups {
                label for={ (id) "-group" } { "Group" }
                select id={ (id) "-group" } name="group" { @for g in groups { option value=(g.name) { (g.name) } } }
            }
            label for={ (id) "-permission" } { "Permission key (e.g. ro, rw)" }
            input type="text" id={ (id) "-permission" } name="permission" value="ro";
            @if contexts {
                label for={ (id) "-context" } { "Context" }
                select id={ (id) "-context" } name="context" {
                    option value="SAME_CUSTOMER" { "same customer (its users get the group)" }
                    option value="OTHER_CUSTOMERS" { "other customers" }
                }
            }
            label for={ (id) "-granted" } { "Grant or revoke" }
            select id={ (id) "-granted" } name="granted" { option value="true" { "grant" } option value="false" { "revoke" } }
            button type="submit" { "Apply" }
        }
    }
}

fn context_of(f: &Form) -> Context {
    match f.get("context") {
        "OTHER_CUSTOMERS" => Context::OtherCustomers,
        _ => Context::SameCustomer,
    }
}

async fn user_view(State(c): S, Viewer(ctx): Viewer, Path(login): Path<String>) -> Page {
    Ok(user_page(&c, &ctx, &login, Feedback::default()).await)
}

async fn user_update(State(c): S, Path(login): Path<String>, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "CustomerUserService/UpdateCustomerUser")?;
    let until = c.deadline();
    let result = match c.dir.get_user(&login, until).await {
        Ok(u) => match c.dir.user_sources().find(|s| s.name() == u.source) {
            Some(source) => match edit_patch(source.reader.schema(), &f) {
                Ok(patch) => c.dir.update_user(&login, patch, until).await,
                Err(e) => Err(e),
            },
            None => Err(Error::not_found("customer user", &login)),
        },
        Err(e) => Err(e),
    };
    let key = result.as_ref().map_or(login.clone(), |u| u.login.clone());
    let fb = Feedback::of(&result, |u| format!("Customer user {} saved.", u.login));
    Ok(user_page(&c, &ctx, &key, fb).await)
}

async fn user_unlock(State(c): S, Path(login): Path<String>, Posted(ctx, _): Posted) -> Page {
    c.require(&ctx, "AuthService/UnlockLogin")?;
    let r = c.dir.unlock_login(&login, c.deadline()).await;
    let fb = Feedback::of(&r, |()| "Login unlocked.".into());
    Ok(user_page(&c, &ctx, &login, fb).await)
}

async fn user_password(State(c): S, Path(login): Path<String>, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "AuthService/SetPassword")?;
    let r = c
        .dir
        .set_password(&login, f.get("password"), c.deadline())
        .await;
    let fb = Feedback::of(&r, |()| "Password set.".into());
    Ok(user_page(&c, &ctx, &login, fb).await)
}

/// The second factor of a customer user: its state, enrol (restart), confirm with a token,
/// remove. Shown to callers with `auth:manage` (the scope of the TOTP RPCs).
fn two_factor_section(
    path: &str,
    csrf: &str,
    status: &Result<crate::directory::TotpStatus, Error>,
    v: &[FieldViolation],
) -> Markup {
    html! {
        section aria-labelledby="h-2fa" {
            h2 id="h-2fa" { "Two-factor (TOTP)" }
            @match status {
                Ok(t) => {
                    p id="totp-state" {
                        @if t.active { "A TOTP secret is active." } @else { "No TOTP secret." }
                        @if t.pending { " An enrolment waits for its confirming token." }
                        @if !t.required { " Logins do not check it ([auth.two_factor] enabled = false)." }
                    }
                    form method="post" action={ (path) "/totp/enroll" } {
                        (csrf_field(csrf))
                        button type="submit" { @if t.pending || t.active { "Enrol anew" } @else { "Enrol" } }
                    }
                    @if t.pending {
                        form method="post" action={ (path) "/totp/confirm" } {
                            (csrf_field(csrf))
                            label for="f-otp" { "Token from the authenticator app" }
                            input type="text" id="f-otp" name="otp" inputmode="numeric" autocomplete="one-time-code"
                                aria-invalid=[v.iter().any(|x| x.field == "otp").then_some("true")];
                            (view::violations_of("otp", v))
                            button type="submit" { "Confirm" }
                        }
                    }
                    @if t.active || t.pending {
                        form method="post" action={ (path) "/totp/remove" } {
                            (csrf_field(csrf))
                            button type="submit" { "Remove the second factor" }
                        }
                    }
                }
                Err(e) => (error_box(&error_words(e).1)),
            }
        }
    }
}

async fn user_totp_enroll(State(c): S, Path(login): Path<String>, Posted(ctx, _): Posted) -> Page {
    c.require(&ctx, "AuthService/EnrollTotp")?;
    let r = c.dir.enroll_totp(&login, c.deadline()).await;
    let fb = match r {
        Ok(e) => {
            let qr = crate::auth::totp::qr_svg(&e.otpauth_uri);
            Feedback {
                message: Some(html! {
                    div.notice role="status" {
                        p { "Enrolment started: scan the code (or type the secret) into an authenticator app, then confirm with a token below. Shown once." }
                        @if let Ok(svg) = qr { figure id="totp-qr" { (maud::PreEscaped(svg)) figcaption { "otpauth URI as QR code" } } }
                        p { "Secret: " code id="totp-secret" { (e.secret) } }
                        p { "URI: " code id="totp-uri" { (e.otpauth_uri) } }
                    }
                }),
                ..Feedback::default()
            }
        }
        Err(e) => Feedback::failed(e),
    };
    Ok(user_page(&c, &ctx, &login, fb).await)
}

async fn user_totp_confirm(State(c): S, Path(login): Path<String>, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "AuthService/ConfirmTotp")?;
    let r = c.dir.confirm_totp(&login, f.get("otp"), c.deadline()).await;
    let fb = Feedback::of(&r, |()| "Second factor active.".into());
    Ok(user_page(&c, &ctx, &login, fb).await)
}

async fn user_totp_remove(State(c): S, Path(login): Path<String>, Posted(ctx, _): Posted) -> Page {
    c.require(&ctx, "AuthService/RemoveTotp")?;
    let r = c.dir.remove_totp(&login, c.deadline()).await;
    let fb = Feedback::of(&r, |()| "Second factor removed.".into());
    Ok(user_page(&c, &ctx, &login, fb).await)
}

fn grant_of(f: &Form) -> BTreeMap<String, bool> {
    BTreeMap::from([(
        f.get("permission").trim().to_owned(),
        f.get("granted") != "false",
    )])
}

async fn user_grant(State(c): S, Path(login): Path<String>, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "GroupService/SetCustomerUserPermissions")?;
    let group = f.get("group");
    let r = c
        .dir
        .set_user_permissions(&login, group, grant_of(&f), c.deadline())
        .await;
    let fb = Feedback::of(&r, |keys| held(group, keys));
    Ok(user_page(&c, &ctx, &login, fb).await)
}

// ---- customers ----

async fn customers(
    State(c): S,
    Viewer(ctx): Viewer,
    Query(q): Query<BTreeMap<String, String>>,
) -> Page {
    let query = q.get("q").map_or("*", |s| s.as_str()).to_owned();
    let (token, n) = list_position(&q);
    let paging = PageRequest::list(PAGE as u32, &token, 0);
    let result = async {
        let expr = parse_within(&query, Grammar::Full, c.query_limits)
            .map_err(|e| Error::invalid("q", e.to_string()))?;
        let dir = &c.dir;
        let (detail, digest) = paging.detail::<CustomerField>(
            &format!("console|{expr:?}"),
            &|x| dir.customer_extra_known(x),
            c.query_limits,
        )?;
        let search = CustomerSearch {
            query: expr,
            include_invalid: true,
            limit: paging.size(),
            detail,
        };
        let w = dir.walk_customers(search, &[], false, c.deadline()).await?;
        Ok::<_, Error>((next_token(&digest, w.next.as_ref()), w))
    }
    .await;
    let body = html! {
        form method="get" action="/customers" role="search" {
            label for="f-q" { "Search (OTRS grammar)" }
            input type="search" id="f-q" name="q" value=(query);
            button type="submit" { "Search" }
        }
        @if c.may(&ctx, "CustomerService/CreateCustomer") { p { a href="/customers/new" { "Add customer" } } }
        @match &result {
            Err(Error::InvalidArgument(v)) => { @for x in v { p.violation { (x.description) } } }
            Err(e) => (error_box(&error_words(e).1)),
            Ok((next, m)) => {
                p { (m.items.len()) " customers on this page" }
                table {
                    thead { tr { th { "Customer ID" } th { "Name" } th { "City" } th { "Source" } th { "Validity" } } }
                    tbody {
                        @for x in &m.items {
                            tr { td { a href={ "/customers/" (escape_path(&x.customer_id)) } { (x.customer_id) } } td { (x.name) } td { (x.city) } td { (x.source) } td { (x.validity) } }
                        }
                    }
                }
                (pager("/customers", &query, n, next))
            }
        }
    };
    Ok(c.render(&ctx, StatusCode::OK, "Customers", body))
}

fn customer_new_form(
    c: &Console,
    ctx: &Ctx,
    chosen: &str,
    customer: &Customer,
    v: &[FieldViolation],
) -> Markup {
    let (names, target) = write_choice(c.dir.customer_sources(), chosen);
    let Some(target) = target else {
        return error_box("no customer source is writable");
    };
    let shown = view::form_fields(target.reader.schema());
    html! {
        (view::other_violations(&shown, v))
        form method="post" action="/customers/new" {
            (csrf_field(&ctx.csrf))
            @if names.len() > 1 {
                label for="f-source" { "Data source" }
                select id="f-source" name="source" { @for n in &names { option value=(n) selected[*n == target.name()] { (n) } } }
            } @else { input type="hidden" name="source" value=(target.name()); }
            (record_fields(target.reader.schema(), customer, false, true, v))
            button type="submit" { "Create" }
        }
    }
}

async fn customer_new(State(c): S, Viewer(ctx): Viewer) -> Page {
    c.require(&ctx, "CustomerService/CreateCustomer")?;
    let body = customer_new_form(&c, &ctx, "", &Customer::default(), &[]);
    Ok(c.render(&ctx, StatusCode::OK, "Add customer", body))
}

async fn customer_create(State(c): S, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "CustomerService/CreateCustomer")?;
    let (_, target) = write_choice(c.dir.customer_sources(), f.get("source"));
    let Some(target) = target else {
        return Ok(c.render(
            &ctx,
            StatusCode::CONFLICT,
            "Add customer",
            error_box("no customer source is writable"),
        ));
    };
    let source = target.name().to_owned();
    let mut v = Vec::new();
    let customer: Customer = record_from(target.reader.schema(), &f, &mut v).values;
    let result = match v.is_empty() {
        true => {
            c.dir
                .create_customer(Some(&source), customer.clone(), c.deadline())
                .await
        }
        false => Err(Error::InvalidArgument(v)),
    };
    Ok(match result {
        Ok(x) => {
            let fb = Feedback::done(&format!("Customer {} created.", x.customer_id));
            customer_page(
                &c,
                &ctx,
                &x.customer_id,
                fb.status(StatusCode::CREATED),
                None,
            )
            .await
        }
        Err(e) => {
            let fb = Feedback::failed(e);
            let form = customer_new_form(&c, &ctx, &source, &customer, &fb.violations);
            c.render(
                &ctx,
                fb.status,
                "Add customer",
                html! { @if let Some(m) = fb.message { (m) } (form) },
            )
        }
    })
}

/// A customer's page; its customer users start after `after` (a folded login: the `after`
/// query parameter of the page's "next →" link), `console_list_limit` at a time.
async fn customer_page(
    c: &Console,
    ctx: &Ctx,
    id: &str,
    fb: Feedback,
    after: Option<String>,
) -> Response {
    let Feedback {
        message,
        violations,
        status,
    } = fb;
    let v = violations.as_slice();
    let until = c.deadline();
    let customer = match c.dir.get_customer(id, until).await {
        Ok(x) => x,
        Err(e) => return fail(c, ctx, &e),
    };
    let source = c
        .dir
        .customer_sources()
        .find(|s| s.name() == customer.source);
    let writable =
        source.is_some_and(|s| s.writer.is_some()) && c.may(ctx, "CustomerService/UpdateCustomer");
    let path = format!("/customers/{}", escape_path(&customer.customer_id));
    let users = if c.may(ctx, "CustomerService/ListCustomerUsersOfCustomer") {
        Some(
            c.dir
                .customer_users_of(&customer.customer_id, true, c.list_limit, after, until)
                .await,
        )
    } else {
        None
    };
    let groups = c.dir.list_groups(false).await.unwrap_or_default();
    let body = html! {
        @if let Some(m) = message { (m) }
        @if let Some(s) = source {
            (view::other_violations(&view::form_fields(s.reader.schema()), v))
            form method="post" action=(path) {
                (csrf_field(&ctx.csrf))
                (record_fields(s.reader.schema(), &customer, true, writable, v))
                @if writable { button type="submit" { "Save" } p.muted { "Renaming the customer ID carries its customer users with it." } }
            }
        }
        @if let Some(users) = users {
            section aria-labelledby="h-users" {
                h2 id="h-users" { "Customer users" }
                @match users {
                    Ok(m) => {
                        (user_table(&m.items))
                        (sub_pager(&path, "h-users", m.next.as_ref().map(|n| n.key.as_str())))
                    }
                    Err(e) => (error_box(&error_words(&e).1)),
                }
            }
        }
        @if c.may(ctx, "GroupService/SetCustomerPermissions") {
            section {
                h2 { "Grant or revoke a group permission" }
                (grant_form(&format!("{path}/groups"), &ctx.csrf, "f", Some(&groups), None, true))
            }
        }
    };
    c.render(
        ctx,
        status,
        &format!("Customer {}", customer.customer_id),
        body,
    )
}

async fn customer_view(
    State(c): S,
    Viewer(ctx): Viewer,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Page {
    let after = q.get("after").cloned();
    Ok(customer_page(&c, &ctx, &id, Feedback::default(), after).await)
}

async fn customer_update(State(c): S, Path(id): Path<String>, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "CustomerService/UpdateCustomer")?;
    let until = c.deadline();
    let result = match c.dir.get_customer(&id, until).await {
        Ok(x) => match c.dir.customer_sources().find(|s| s.name() == x.source) {
            Some(source) => match edit_patch(source.reader.schema(), &f) {
                Ok(patch) => c.dir.update_customer(&id, patch, until).await,
                Err(e) => Err(e),
            },
            None => Err(Error::not_found("customer", &id)),
        },
        Err(e) => Err(e),
    };
    let key = result
        .as_ref()
        .map_or(id.clone(), |x| x.customer_id.clone());
    let fb = Feedback::of(&result, |x| format!("Customer {} saved.", x.customer_id));
    Ok(customer_page(&c, &ctx, &key, fb, None).await)
}

async fn customer_grant(State(c): S, Path(id): Path<String>, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "GroupService/SetCustomerPermissions")?;
    let context = context_of(&f);
    let group = f.get("group");
    let r = c
        .dir
        .set_customer_permissions(&id, group, context, grant_of(&f), c.deadline())
        .await;
    let fb = Feedback::of(&r, |keys| held(group, keys));
    Ok(customer_page(&c, &ctx, &id, fb, None).await)
}

// ---- groups ----

fn group_fields(g: &Group, writable: bool, v: &[FieldViolation]) -> Markup {
    html! {
        (text_input("name", "Name", &g.name, true, !writable, v))
        (text_input("comment", "Comment", &g.comment, false, !writable, v))
        (view::validity_select(g.validity, !writable))
    }
}

fn group_from(f: &Form, v: &mut Vec<FieldViolation>) -> Group {
    Group {
        name: f.get("name").trim().to_owned(),
        comment: f.get("comment").trim().to_owned(),
        validity: validity_of(f, v),
        extra: BTreeMap::new(),
    }
}

async fn groups(State(c): S, Viewer(ctx): Viewer) -> Page {
    let list = c.dir.list_groups(true).await;
    let body = html! {
        @if c.may(&ctx, "GroupService/CreateGroup") { p { a href="/groups/new" { "Add group" } } }
        @match list {
            Ok(gs) => table {
                thead { tr { th { "Name" } th { "Validity" } th { "Comment" } } }
                tbody { @for g in gs { tr { td { a href={ "/groups/" (escape_path(&g.name)) } { (g.name) } } td { (g.validity) } td { (g.comment) } } } }
            },
            Err(e) => (error_box(&error_words(&e).1)),
        }
    };
    Ok(c.render(&ctx, StatusCode::OK, "Groups", body))
}

fn group_new_form(ctx: &Ctx, g: &Group, v: &[FieldViolation]) -> Markup {
    html! {
        (view::other_violations(&["name".into(), "comment".into(), "validity".into()], v))
        form method="post" action="/groups/new" {
            (csrf_field(&ctx.csrf))
            (group_fields(g, true, v))
            button type="submit" { "Create" }
        }
    }
}

async fn group_new(State(c): S, Viewer(ctx): Viewer) -> Page {
    c.require(&ctx, "GroupService/CreateGroup")?;
    Ok(c.render(
        &ctx,
        StatusCode::OK,
        "Add group",
        group_new_form(&ctx, &Group::default(), &[]),
    ))
}

async fn group_create(State(c): S, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "GroupService/CreateGroup")?;
    let mut v = Vec::new();
    let g = group_from(&f, &mut v);
    let result = match v.is_empty() {
        true => c.dir.create_group(g.clone()).await,
        false => Err(Error::InvalidArgument(v)),
    };
    Ok(match result {
        Ok(g) => {
            let fb = Feedback::done(&format!("Group {} created.", g.name));
            group_page(&c, &ctx, &g.name, fb.status(StatusCode::CREATED), None).await
        }
        Err(e) => {
            let fb = Feedback::failed(e);
            let form = group_new_form(&ctx, &g, &fb.violations);
            c.render(
                &ctx,
                fb.status,
                "Add group",
                html! { @if let Some(m) = fb.message { (m) } (form) },
            )
        }
    })
}

/// A group's page; its members start after `after` (as [`customer_page`]'s customer users).
async fn group_page(
    c: &Console,
    ctx: &Ctx,
    name: &str,
    fb: Feedback,
    after: Option<String>,
) -> Response {
    let Feedback {
        message,
        violations,
        status,
    } = fb;
    let v = violations.as_slice();
    let g = match c.dir.get_group(name).await {
        Ok(g) => g,
        Err(e) => return fail(c, ctx, &e),
    };
    let writable = c.may(ctx, "GroupService/UpdateGroup");
    let members = c
        .dir
        .group_customer_users(&g.name, "ro", c.list_limit, after, c.deadline())
        .await;
    let path = format!("/groups/{}", escape_path(&g.name));
    let body = html! {
        @if let Some(m) = message { (m) }
        (view::other_violations(&["name".into(), "comment".into(), "validity".into()], v))
        form method="post" action=(path) {
            (csrf_field(&ctx.csrf))
            (group_fields(&g, writable, v))
            @if writable { button type="submit" { "Save" } }
        }
        section aria-labelledby="h-members" {
            h2 id="h-members" { "Customer users with ro" }
            @match members {
                Ok((logins, next)) => {
                    ul { @for l in &logins { li { a href={ "/customer-users/" (escape_path(l)) } { (l) } } } }
                    (sub_pager(&path, "h-members", next.as_deref()))
                }
                Err(e) => (error_box(&error_words(&e).1)),
            }
            @if c.may(ctx, "GroupService/SetCustomerUserPermissions") {
                h3 { "Assign a customer user" }
                (grant_form(&format!("{path}/customer-users"), &ctx.csrf, "u", None, Some(("login", "Login")), false))
            }
            @if c.may(ctx, "GroupService/SetCustomerPermissions") {
                h3 { "Assign a customer" }
                (grant_form(&format!("{path}/customers"), &ctx.csrf, "c", None, Some(("customer_id", "Customer ID")), true))
            }
        }
    };
    c.render(ctx, status, &format!("Group {}", g.name), body)
}

async fn group_view(
    State(c): S,
    Viewer(ctx): Viewer,
    Path(name): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Page {
    let after = q.get("after").cloned();
    Ok(group_page(&c, &ctx, &name, Feedback::default(), after).await)
}

async fn group_update(State(c): S, Path(name): Path<String>, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "GroupService/UpdateGroup")?;
    let mut v = Vec::new();
    let values = group_from(&f, &mut v);
    let patch = Patch {
        values,
        fields: crate::domain::group::GroupField::RECORD
            .iter()
            .map(|f| Attr::Field(*f))
            .collect(),
    };
    let result = match v.is_empty() {
        true => c.dir.update_group(&name, patch).await,
        false => Err(Error::InvalidArgument(v)),
    };
    let key = result.as_ref().map_or(name.clone(), |g| g.name.clone());
    let fb = Feedback::of(&result, |g| format!("Group {} saved.", g.name));
    Ok(group_page(&c, &ctx, &key, fb, None).await)
}

async fn group_grant_user(State(c): S, Path(name): Path<String>, Posted(ctx, f): Posted) -> Page {
    c.require(&ctx, "GroupService/SetCustomerUserPermissions")?;
    let login = f.get("login").trim();
    let r = c
        .dir
        .set_user_permissions(login, &name, grant_of(&f), c.deadline())
        .await;
    let fb = Feedback::of(&r, |keys| format!("{login}: {}", held(&name, keys)));
    Ok(group_page(&c, &ctx, &name, fb, None).await)
}

async fn group_grant_customer(
    State(c): S,
    Path(name): Path<String>,
    Posted(ctx, f): Posted,
) -> Page {
    c.require(&ctx, "GroupService/SetCustomerPermissions")?;
    let id = f.get("customer_id").trim();
    let r = c
        .dir
        .set_customer_permissions(id, &name, context_of(&f), grant_of(&f), c.deadline())
        .await;
    let fb = Feedback::of(&r, |keys| format!("{id}: {}", held(&name, keys)));
    Ok(group_page(&c, &ctx, &name, fb, None).await)
}

async fn sources(State(c): S, Viewer(ctx): Viewer) -> Page {
    let probes = c.dir.probe(Some(std::time::Duration::from_secs(5))).await;
    let health = |section: &str, name: &str| {
        let section = match section {
            "customer users" => "customer_user_sources",
            _ => "customer_sources",
        };
        probes
            .iter()
            .find(|p| p.section == section && p.name == name)
            .map(|p| p.result.clone())
    };
    let body = html! {
        table {
            thead { tr { th { "Source" } th { "Of" } th { "Kind" } th { "Read only" } th { "Health" } } }
            tbody {
                @for (section, name, kind, ro) in &c.sources {
                    tr {
                        td { (name) } td { (section) } td { (kind) } td { @if *ro { "yes" } @else { "no" } }
                        td { @match health(section, name) { Some(Ok(())) => "ok", Some(Err(e)) => { "failing: " (e) }, None => "?" } }
                    }
                }
            }
        }
        @if let Some(p) = probes.iter().find(|p| p.section == "groups") {
            p { "Group store: " @match &p.result { Ok(()) => "ok", Err(e) => { "failing: " (e) } } }
        }
    };
    Ok(c.render(&ctx, StatusCode::OK, "Sources", body))
}
