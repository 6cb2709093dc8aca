//! Admin commands that talk to a running server over gRPC: one subcommand per RPC
//! (`customer …`, `user …`, `group …`, `auth …`, `resolve`). The server address comes from
//! `--server` / `CLIENTELE_SERVER`, the bearer token from `CLIENTELE_TOKEN`, passwords from
//! `CLIENTELE_PASSWORD` or the first line of stdin (never from the command line, where other
//! users could read them).
//!
//! Each command builds its request, makes one call and turns the answer into an [`Out`]:
//! `--output table` (default) prints tab-separated rows without a header (one row per record,
//! the columns named in each command's help), so `cut -f1` works; `--output json` prints the
//! whole answer as one JSON document. A new RPC is a new variant, one match arm that calls it,
//! and a `…_json` conversion of its answer when it answers a new kind of record.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

/// `println!` that ignores a closed stdout (`clientele … | head -1` must not panic).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use tonic::{metadata::MetadataValue, transport::Channel, Request};

use crate::proto::{
    self as pb, auth_service_client::AuthServiceClient,
    customer_service_client::CustomerServiceClient,
    customer_user_service_client::CustomerUserServiceClient,
    group_service_client::GroupServiceClient, search_customer_users_request::Criterion,
};

/// How answers are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tab-separated rows, no header.
    #[default]
    Table,
    /// The whole answer as JSON.
    Json,
}

/// A validity on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidityArg {
    Valid,
    Invalid,
    InvalidTemporarily,
}

impl From<ValidityArg> for pb::Validity {
    fn from(v: ValidityArg) -> Self {
        match v {
            ValidityArg::Valid => Self::Valid,
            ValidityArg::Invalid => Self::Invalid,
            ValidityArg::InvalidTemporarily => Self::InvalidTemporarily,
        }
    }
}

/// The attributes of a customer user; on `update`, the ones given are the update mask.
#[derive(Debug, Clone, Default, Args)]
pub struct UserFields {
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub first_name: Option<String>,
    #[arg(long)]
    pub last_name: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub customer_id: Option<String>,
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long)]
    pub fax: Option<String>,
    #[arg(long)]
    pub mobile: Option<String>,
    #[arg(long)]
    pub street: Option<String>,
    #[arg(long)]
    pub zip: Option<String>,
    #[arg(long)]
    pub city: Option<String>,
    #[arg(long)]
    pub country: Option<String>,
    #[arg(long)]
    pub comment: Option<String>,
    #[arg(long, value_enum)]
    pub validity: Option<ValidityArg>,
    /// An extra attribute of the source's map, `NAME=VALUE` (repeatable).
    #[arg(long, value_parser = key_value)]
    pub extra: Vec<(String, String)>,
}

impl UserFields {
    /// The message (with `login`) and the mask paths of the attributes given.
    fn into_pb(self, login: String) -> (pb::CustomerUser, Vec<String>) {
        let mut paths = Vec::new();
        let mut take = |name: &str, v: Option<String>| masked(&mut paths, name, v);
        let u = pb::CustomerUser {
            title: take("title", self.title),
            first_name: take("first_name", self.first_name),
            last_name: take("last_name", self.last_name),
            email: take("email", self.email),
            customer_id: take("customer_id", self.customer_id),
            phone: take("phone", self.phone),
            fax: take("fax", self.fax),
            mobile: take("mobile", self.mobile),
            street: take("street", self.street),
            zip: take("zip", self.zip),
            city: take("city", self.city),
            country: take("country", self.country),
            comment: take("comment", self.comment),
            login,
            validity: validity_field(self.validity, &mut paths),
            extra: extra_field(self.extra, &mut paths),
            ..Default::default()
        };
        (u, paths)
    }
}

/// The attributes of a customer; on `update`, the ones given are the update mask.
#[derive(Debug, Clone, Default, Args)]
pub struct CustomerFields {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub street: Option<String>,
    #[arg(long)]
    pub zip: Option<String>,
    #[arg(long)]
    pub city: Option<String>,
    #[arg(long)]
    pub country: Option<String>,
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub comment: Option<String>,
    #[arg(long, value_enum)]
    pub validity: Option<ValidityArg>,
    /// An extra attribute of the source's map, `NAME=VALUE` (repeatable).
    #[arg(long, value_parser = key_value)]
    pub extra: Vec<(String, String)>,
}

impl CustomerFields {
    fn into_pb(self, customer_id: String) -> (pb::Customer, Vec<String>) {
        let mut paths = Vec::new();
        let mut take = |name: &str, v: Option<String>| masked(&mut paths, name, v);
        let c = pb::Customer {
            name: take("name", self.name),
            street: take("street", self.street),
            zip: take("zip", self.zip),
            city: take("city", self.city),
            country: take("country", self.country),
            url: take("url", self.url),
            comment: take("comment", self.comment),
            customer_id,
            validity: validity_field(self.validity, &mut paths),
            extra: extra_field(self.extra, &mut paths),
            ..Default::default()
        };
        (c, paths)
    }
}

/// The value of an optional attribute; a given one joins the update mask.
fn masked(paths: &mut Vec<String>, name: &str, v: Option<String>) -> String {
    if v.is_some() {
        paths.push(name.to_owned());
    }
    v.unwrap_or_default()
}

fn validity_field(v: Option<ValidityArg>, paths: &mut Vec<String>) -> i32 {
    v.map_or(0, |v| {
        paths.push("validity".into());
        pb::Validity::from(v).into()
    })
}

fn extra_field(
    extra: Vec<(String, String)>,
    paths: &mut Vec<String>,
) -> std::collections::HashMap<String, String> {
    paths.extend(extra.iter().map(|(k, _)| format!("extra.{k}")));
    extra.into_iter().collect()
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

/// Customer users. Rows: login, full name, email, customer id, validity, source.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Print one customer user.
    Get { login: String },
    /// Search with the OTRS grammar.
    Search {
        /// The OTRS grammar; may be left out when `--filter` is given.
        query: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        include_invalid: bool,
        #[command(flatten)]
        paging: PagingArgs,
    },
    /// Create a customer user (the customer must exist).
    Create {
        #[arg(long)]
        login: String,
        #[command(flatten)]
        fields: UserFields,
        /// The source to create it in (default: the first writable one).
        #[arg(long, default_value = "")]
        source: String,
        /// Generate a password (printed once).
        #[arg(long)]
        generate_password: bool,
    },
    /// Change the attributes given (and only those); `--new-login` renames.
    Update {
        login: String,
        #[arg(long)]
        new_login: Option<String>,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Set a customer user invalid (records are never deleted).
    Invalidate {
        login: String,
        /// INVALID_TEMPORARILY instead of INVALID.
        #[arg(long)]
        temporarily: bool,
    },
    /// The customer ids of a customer user (primary first); `--add` / `--remove` change the
    /// additional ones. Rows: customer id.
    Memberships {
        login: String,
        #[arg(long, conflicts_with = "remove")]
        add: Option<String>,
        #[arg(long)]
        remove: Option<String>,
    },
    /// The preferences of a customer user; `--set KEY=VALUE` sets one. Rows: key, value.
    Preferences {
        login: String,
        #[arg(long, value_parser = key_value)]
        set: Option<(String, String)>,
    },
    /// The groups in which a customer user has `--permission` (default ro). Rows: group.
    Groups {
        login: String,
        #[arg(long, default_value = "ro")]
        permission: String,
    },
    /// Set a password (from CLIENTELE_PASSWORD or stdin); same as `auth set-password`.
    SetPassword { login: String },
}

/// Customers (companies). Rows: customer id, name, city, validity, source.
#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer.
    Create {
        #[arg(long)]
        customer_id: String,
        #[command(flatten)]
        fields: CustomerFields,
        #[arg(long, default_value = "")]
        source: String,
    },
    /// Print one customer.
    Get { customer_id: String },
    /// Change the attributes given; `--new-customer-id` renames (its customer users follow).
    Update {
        customer_id: String,
        #[arg(long)]
        new_customer_id: Option<String>,
        #[command(flatten)]
        fields: CustomerFields,
    },
    /// Search with the OTRS grammar.
    Search {
        /// The OTRS grammar (`*` for all).
        #[arg(default_value = "*")]
        query: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        include_invalid: bool,
        #[command(flatten)]
        paging: PagingArgs,
    },
    /// The customer users of a customer (primary and additional). Rows as `user search`.
    Users {
        customer_id: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        include_invalid: bool,
    },
}

/// Which context a customer's grant applies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContextArg {
    /// Tickets of the same customer.
    Same,
    /// Tickets of other customers.
    Other,
}

/// Groups and permissions. Rows: name, validity, comment.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Print one group.
    Get { name: String },
    /// List the groups.
    List {
        #[arg(long)]
        include_invalid: bool,
    },
    /// Change the attributes given; `--new-name` renames.
    Update {
        name: String,
        #[arg(long)]
        new_name: Option<String>,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long, value_enum)]
        validity: Option<ValidityArg>,
    },
    /// Grant (`--permission`) and revoke (`--revoke`) keys of a group to a customer user
    /// (`--login`) or a customer (`--customer-id`, in `--context`). Rows: the keys held now.
    Grant {
        group: String,
        #[arg(
            long,
            required_unless_present = "customer_id",
            conflicts_with = "customer_id"
        )]
        login: Option<String>,
        #[arg(long)]
        customer_id: Option<String>,
        #[arg(long, value_enum, default_value = "same")]
        context: ContextArg,
        /// A key to grant, e.g. `ro`, `rw` (repeatable).
        #[arg(long)]
        permission: Vec<String>,
        /// A key to take away (repeatable).
        #[arg(long)]
        revoke: Vec<String>,
    },
    /// The effective permissions of a customer user, each key with why it is granted.
    /// Rows: group, key, reasons.
    Permissions { login: String },
    /// The customer users with `--permission` (default ro) in a group. Rows: login.
    Members {
        group: String,
        #[arg(long, default_value = "ro")]
        permission: String,
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
}

/// Logins. `check` rows: outcome, source, customer ids.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Check a login's password (from CLIENTELE_PASSWORD or stdin); exit code 1 unless SUCCESS.
    /// When the answer is SECOND_FACTOR_REQUIRED, the one-time password comes from CLIENTELE_OTP
    /// or, without it, from the next line of stdin (asked for on stderr).
    Check { login: String },
    /// Clear the failed-login lock of a login.
    Unlock { login: String },
    /// Set a password (from CLIENTELE_PASSWORD or stdin), checked against the policy.
    SetPassword { login: String },
    /// The second factor (TOTP) of a login.
    #[command(subcommand)]
    Totp(TotpCommand),
}

/// Two-factor enrolment. `enroll` rows: secret, otpauth URI (pending until `confirm`).
#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Start (or restart) the enrolment: prints the new secret and its otpauth:// URI.
    Enroll { login: String },
    /// Activate the pending secret with a token (from CLIENTELE_OTP or stdin).
    Confirm { login: String },
    /// Remove the active secret and any pending enrolment.
    Remove { login: String },
}

/// Detail search and paging (AIP-158) of `user search` and `customer search`.
#[derive(Debug, Args)]
pub struct PagingArgs {
    /// ATTRIBUTE=PATTERN (`*` wildcards; also `validity=VALID`, `create_time>=2024-01-01T00:00:00Z`);
    /// repeatable, all must hold.
    #[arg(long = "filter", value_parser = key_value)]
    filters: Vec<(String, String)>,
    /// AIP-132 order, e.g. "last_name, first_name desc" (default: login / customer id).
    #[arg(long, default_value = "")]
    order_by: String,
    /// Walk every page (of `--page-size`), printing each page as it arrives.
    #[arg(long)]
    all: bool,
    /// Records per page (at most 1000); with it, one page is answered and its next token said.
    #[arg(long, default_value_t = 0)]
    page_size: u32,
    /// Continue a walk where its previous page ended.
    #[arg(long, default_value = "")]
    page_token: String,
    /// Also count every match (deduplicated across sources).
    #[arg(long)]
    include_total: bool,
}

impl PagingArgs {
    fn paged(&self) -> bool {
        self.all || self.page_size > 0 || !self.page_token.is_empty()
    }
    fn page_size(&self) -> u32 {
        match (self.page_size, self.all) {
            (0, true) => 1000,
            (n, _) => n,
        }
    }
}

/// One answered page of a walk, as the walk loop needs it.
struct PageOf<T> {
    items: Vec<T>,
    next: String,
    truncated: bool,
    total: Option<i64>,
    status: Vec<pb::SourceStatus>,
}

/// Asks `fetch` for pages: one (`--page-size`/`--page-token`) or, with `--all`, every page,
/// printing each page's rows as it arrives in table mode (JSON gathers them into one answer).
async fn walk<T, F, Fut>(
    c: &Clients,
    key: &str,
    args: &PagingArgs,
    to_json: fn(&T) -> Value,
    to_row: fn(&T) -> Vec<String>,
    mut fetch: F,
) -> Result<Out, String>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<PageOf<T>, String>>,
{
    let (mut token, mut items, mut pages) = (args.page_token.clone(), Vec::new(), 0u32);
    let last = loop {
        let page = fetch(token).await?;
        pages += 1;
        if args.all && c.output == Output::Table {
            for item in &page.items {
                say!("{}", to_row(item).join("\t"));
            }
        } else {
            items.extend(page.items.iter().map(to_json));
        }
        token = page.next.clone();
        if !args.all || token.is_empty() {
            break page;
        }
    };
    let mut doc = Map::new();
    doc.insert(key.into(), Value::Array(items));
    doc.insert("next_page_token".into(), json!(last.next));
    doc.insert("truncated".into(), json!(last.truncated));
    if let Some(t) = last.total {
        doc.insert("total_size".into(), json!(t));
    }
    doc.insert(
        "source_status".into(),
        last.status.iter().map(status_json).collect(),
    );
    let rows = match args.all {
        true => Vec::new(),
        false => last.items.iter().map(to_row).collect(),
    };
    let mut out = Out::new(Value::Object(doc), rows);
    out.notes.extend(
        last.status
            .iter()
            .filter(|s| !s.ok)
            .map(|s| format!("source {}: {}", s.source, s.error)),
    );
    if let Some(t) = last.total {
        out.notes.push(format!("total: {t}"));
    }
    if args.all {
        out.notes.push(format!("{pages} page(s)"));
    } else if !last.next.is_empty() {
        out.notes
            .push(format!("next page: --page-token {}", last.next));
    }
    Ok(out)
}

/// A client command.
#[derive(Debug)]
pub enum ClientCommand {
    User(UserCommand),
    Customer(CustomerCommand),
    Group(GroupCommand),
    Resolve(Vec<String>),
    Auth(AuthCommand),
}

/// What a command answers: printed as table rows or as JSON.
struct Out {
    /// The whole answer.
    json: Value,
    /// The table rows.
    rows: Vec<Vec<String>>,
    /// Said on stderr in table mode (truncation, failing sources).
    notes: Vec<String>,
    /// Exit code 1 after printing (e.g. a refused login).
    failed: Option<String>,
}

impl Out {
    fn new(json: Value, rows: Vec<Vec<String>>) -> Self {
        Self {
            json,
            rows,
            notes: Vec::new(),
            failed: None,
        }
    }

    fn message(text: &str) -> Self {
        Self::new(json!({ "result": text }), vec![vec![text.to_owned()]])
    }

    fn print(&self, output: Output) {
        match output {
            Output::Json => say!(
                "{}",
                serde_json::to_string_pretty(&self.json).unwrap_or_default()
            ),
            Output::Table => {
                for row in &self.rows {
                    say!("{}", row.join("\t"));
                }
                for note in &self.notes {
                    eprintln!("{note}");
                }
            }
        }
    }
}

fn authed<T>(message: T) -> Result<Request<T>, String> {
    let mut req = Request::new(message);
    if let Ok(token) = std::env::var("CLIENTELE_TOKEN") {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| "CLIENTELE_TOKEN is not a valid header value".to_owned())?;
        req.metadata_mut().insert("authorization", value);
    }
    Ok(req)
}

fn password() -> Result<String, String> {
    if let Ok(p) = std::env::var("CLIENTELE_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The one-time password: CLIENTELE_OTP, else the next line of stdin (asked for on stderr).
fn otp() -> Result<String, String> {
    if let Ok(p) = std::env::var("CLIENTELE_OTP") {
        return Ok(p);
    }
    eprint!("one-time password: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the one-time password from stdin: {e}"))?;
    Ok(line.trim().to_owned())
}

fn validity_name(raw: i32) -> &'static str {
    pb::Validity::try_from(raw).map_or("?", |v| v.as_str_name())
}

fn time_json(t: Option<&prost_types::Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(t.seconds))
}

fn user_json(u: &pb::CustomerUser) -> Value {
    json!({
        "login": u.login, "title": u.title, "first_name": u.first_name,
        "last_name": u.last_name, "email": u.email, "customer_id": u.customer_id,
        "phone": u.phone, "fax": u.fax, "mobile": u.mobile, "street": u.street, "zip": u.zip,
        "city": u.city, "country": u.country, "comment": u.comment,
        "validity": validity_name(u.validity), "extra": u.extra, "source": u.source,
        "full_name": u.full_name, "create_time": time_json(u.create_time.as_ref()),
        "change_time": time_json(u.change_time.as_ref()),
    })
}

fn user_row(u: &pb::CustomerUser) -> Vec<String> {
    vec![
        u.login.clone(),
        u.full_name.clone(),
        u.email.clone(),
        u.customer_id.clone(),
        validity_name(u.validity).to_owned(),
        u.source.clone(),
    ]
}

fn customer_json(c: &pb::Customer) -> Value {
    json!({
        "customer_id": c.customer_id, "name": c.name, "street": c.street, "zip": c.zip,
        "city": c.city, "country": c.country, "url": c.url, "comment": c.comment,
        "validity": validity_name(c.validity), "extra": c.extra, "source": c.source,
        "create_time": time_json(c.create_time.as_ref()),
        "change_time": time_json(c.change_time.as_ref()),
    })
}

fn customer_row(c: &pb::Customer) -> Vec<String> {
    vec![
        c.customer_id.clone(),
        c.name.clone(),
        c.city.clone(),
        validity_name(c.validity).to_owned(),
        c.source.clone(),
    ]
}

fn group_json(g: &pb::Group) -> Value {
    json!({ "name": g.name, "comment": g.comment, "validity": validity_name(g.validity) })
}

fn group_row(g: &pb::Group) -> Vec<String> {
    vec![
        g.name.clone(),
        validity_name(g.validity).to_owned(),
        g.comment.clone(),
    ]
}

fn status_json(s: &pb::SourceStatus) -> Value {
    json!({ "source": s.source, "ok": s.ok, "error": s.error, "returned": s.returned,
            "truncated": s.truncated })
}

/// A list answer: rows, JSON under `key`, with truncation and failing sources as notes.
fn listing<T>(
    key: &str,
    items: &[T],
    to_json: fn(&T) -> Value,
    to_row: fn(&T) -> Vec<String>,
    truncated: bool,
    status: &[pb::SourceStatus],
) -> Out {
    let mut doc = Map::new();
    doc.insert(key.into(), items.iter().map(to_json).collect());
    doc.insert("truncated".into(), json!(truncated));
    doc.insert(
        "source_status".into(),
        status.iter().map(status_json).collect(),
    );
    let mut out = Out::new(Value::Object(doc), items.iter().map(to_row).collect());
    out.notes.extend(
        status
            .iter()
            .filter(|s| !s.ok)
            .map(|s| format!("source {}: {}", s.source, s.error)),
    );
    if truncated {
        out.notes
            .push("(more results: raise --limit or narrow the query)".into());
    }
    out
}

fn mask(paths: Vec<String>) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths })
}

/// The gRPC clients of one connection.
struct Clients {
    output: Output,
    users: CustomerUserServiceClient<Channel>,
    customers: CustomerServiceClient<Channel>,
    groups: GroupServiceClient<Channel>,
    auth: AuthServiceClient<Channel>,
}

fn status(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Runs a client command against `server`, printing in `output`; exit code 1 on any error.
pub async fn run(server: &str, output: Output, command: ClientCommand) -> ExitCode {
    match run_inner(server, output, command).await {
        Ok(out) => {
            out.print(output);
            match out.failed {
                None => ExitCode::SUCCESS,
                Some(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner(server: &str, output: Output, command: ClientCommand) -> Result<Out, String> {
    let channel = Channel::from_shared(server.to_owned())
        .map_err(|e| format!("--server {server}: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    let mut c = Clients {
        output,
        users: CustomerUserServiceClient::new(channel.clone()),
        customers: CustomerServiceClient::new(channel.clone()),
        groups: GroupServiceClient::new(channel.clone()),
        auth: AuthServiceClient::new(channel),
    };
    match command {
        ClientCommand::User(cmd) => user(&mut c, cmd).await,
        ClientCommand::Customer(cmd) => customer(&mut c, cmd).await,
        ClientCommand::Group(cmd) => group(&mut c, cmd).await,
        ClientCommand::Auth(cmd) => auth(&mut c, cmd).await,
        ClientCommand::Resolve(addresses) => resolve(&mut c, addresses).await,
    }
}

fn one_user(u: &pb::CustomerUser) -> Out {
    Out::new(user_json(u), vec![user_row(u)])
}

async fn user(c: &mut Clients, cmd: UserCommand) -> Result<Out, String> {
    Ok(match cmd {
        UserCommand::Get { login } => {
            let u = c
                .users
                .get_customer_user(authed(pb::GetCustomerUserRequest { login })?)
                .await
                .map_err(status)?
                .into_inner();
            one_user(&u)
        }
        UserCommand::Search {
            query,
            limit,
            include_invalid,
            paging,
        } if paging.paged() || !paging.filters.is_empty() || !paging.order_by.is_empty() => {
            let users = c.users.clone();
            let request = pb::SearchCustomerUsersRequest {
                criterion: query.map(Criterion::Query),
                limit,
                include_invalid,
                page_size: paging.page_size(),
                filters: paging.filters.iter().cloned().collect(),
                order_by: paging.order_by.clone(),
                include_total: paging.include_total,
                ..Default::default()
            };
            walk(
                c,
                "customer_users",
                &paging,
                user_json,
                user_row,
                |page_token| {
                    let (mut users, mut request) = (users.clone(), request.clone());
                    request.page_token = page_token;
                    async move {
                        let r = users
                            .search_customer_users(authed(request)?)
                            .await
                            .map_err(status)?
                            .into_inner();
                        Ok(PageOf {
                            items: r.customer_users,
                            next: r.next_page_token,
                            truncated: r.truncated,
                            total: r.total_size,
                            status: r.source_status,
                        })
                    }
                },
            )
            .await?
        }
        UserCommand::Search {
            query,
            limit,
            include_invalid,
            paging: _,
        } => {
            let r = c
                .users
                .search_customer_users(authed(pb::SearchCustomerUsersRequest {
                    criterion: query.map(Criterion::Query),
                    limit,
                    include_invalid,
                    ..Default::default()
                })?)
                .await
                .map_err(status)?
                .into_inner();
            listing(
                "customer_users",
                &r.customer_users,
                user_json,
                user_row,
                r.truncated,
                &r.source_status,
            )
        }
        UserCommand::Create {
            login,
            fields,
            source,
            generate_password,
        } => {
            let (customer_user, _) = fields.into_pb(login);
            let r = c
                .users
                .create_customer_user(authed(pb::CreateCustomerUserRequest {
                    source,
                    customer_user: Some(customer_user),
                    password: None,
                    generate_password,
                })?)
                .await
                .map_err(status)?
                .into_inner();
            let u = r.customer_user.unwrap_or_default();
            let mut out = one_user(&u);
            if !r.generated_password.is_empty() {
                out.json["generated_password"] = json!(r.generated_password);
                out.rows.push(vec![format!(
                    "generated password: {}",
                    r.generated_password
                )]);
            }
            out
        }
        UserCommand::Update {
            login,
            new_login,
            fields,
        } => {
            let (mut u, mut paths) = fields.into_pb(String::new());
            if let Some(n) = new_login {
                u.login = n;
                paths.push("login".into());
            }
            update_user(c, login, u, paths).await?
        }
        UserCommand::Invalidate { login, temporarily } => {
            let validity = match temporarily {
                true => pb::Validity::InvalidTemporarily,
                false => pb::Validity::Invalid,
            };
            let u = pb::CustomerUser {
                validity: validity.into(),
                ..Default::default()
            };
            update_user(c, login, u, vec!["validity".into()]).await?
        }
        UserCommand::Memberships { login, add, remove } => {
            let ids = match (add, remove) {
                (None, None) => {
                    c.users
                        .list_customer_ids(authed(pb::ListCustomerIdsRequest { login })?)
                        .await
                        .map_err(status)?
                        .into_inner()
                        .customer_ids
                }
                (add, remove) => {
                    let member = add.is_some();
                    let customer_id = add.or(remove).unwrap_or_default();
                    c.users
                        .set_customer_membership(authed(pb::SetCustomerMembershipRequest {
                            login,
                            customer_id,
                            member,
                        })?)
                        .await
                        .map_err(status)?
                        .into_inner()
                        .customer_ids
                }
            };
            let rows = ids.iter().map(|i| vec![i.clone()]).collect();
            Out::new(json!({ "customer_ids": ids }), rows)
        }
        UserCommand::Preferences { login, set } => {
            if let Some((key, value)) = set {
                c.users
                    .set_preference(authed(pb::SetPreferenceRequest {
                        login: login.clone(),
                        key,
                        value,
                    })?)
                    .await
                    .map_err(status)?;
            }
            let prefs: std::collections::BTreeMap<String, String> = c
                .users
                .get_preferences(authed(pb::GetPreferencesRequest { login })?)
                .await
                .map_err(status)?
                .into_inner()
                .preferences
                .into_iter()
                .collect();
            let rows = prefs
                .iter()
                .map(|(k, v)| vec![k.clone(), v.clone()])
                .collect();
            Out::new(json!({ "preferences": prefs }), rows)
        }
        UserCommand::Groups { login, permission } => {
            let groups = c
                .groups
                .list_customer_user_groups(authed(pb::ListCustomerUserGroupsRequest {
                    login,
                    permission,
                })?)
                .await
                .map_err(status)?
                .into_inner()
                .groups;
            listing("groups", &groups, group_json, group_row, false, &[])
        }
        UserCommand::SetPassword { login } => set_password(c, login).await?,
    })
}

async fn update_user(
    c: &mut Clients,
    login: String,
    customer_user: pb::CustomerUser,
    paths: Vec<String>,
) -> Result<Out, String> {
    let u = c
        .users
        .update_customer_user(authed(pb::UpdateCustomerUserRequest {
            login,
            customer_user: Some(customer_user),
            update_mask: mask(paths),
        })?)
        .await
        .map_err(status)?
        .into_inner();
    Ok(one_user(&u))
}

fn one_customer(c: &pb::Customer) -> Out {
    Out::new(customer_json(c), vec![customer_row(c)])
}

async fn customer(c: &mut Clients, cmd: CustomerCommand) -> Result<Out, String> {
    Ok(match cmd {
        CustomerCommand::Create {
            customer_id,
            fields,
            source,
        } => {
            let (customer, _) = fields.into_pb(customer_id);
            let r = c
                .customers
                .create_customer(authed(pb::CreateCustomerRequest {
                    source,
                    customer: Some(customer),
                })?)
                .await
                .map_err(status)?
                .into_inner();
            one_customer(&r)
        }
        CustomerCommand::Get { customer_id } => {
            let r = c
                .customers
                .get_customer(authed(pb::GetCustomerRequest { customer_id })?)
                .await
                .map_err(status)?
                .into_inner();
            one_customer(&r)
        }
        CustomerCommand::Update {
            customer_id,
            new_customer_id,
            fields,
        } => {
            let (mut customer, mut paths) = fields.into_pb(String::new());
            if let Some(n) = new_customer_id {
                customer.customer_id = n;
                paths.push("customer_id".into());
            }
            let r = c
                .customers
                .update_customer(authed(pb::UpdateCustomerRequest {
                    customer_id,
                    customer: Some(customer),
                    update_mask: mask(paths),
                })?)
                .await
                .map_err(status)?
                .into_inner();
            one_customer(&r)
        }
        CustomerCommand::Search {
            query,
            limit,
            include_invalid,
            paging,
        } if paging.paged() || !paging.filters.is_empty() || !paging.order_by.is_empty() => {
            let customers = c.customers.clone();
            let request = pb::SearchCustomersRequest {
                query,
                limit,
                include_invalid,
                page_size: paging.page_size(),
                filters: paging.filters.iter().cloned().collect(),
                order_by: paging.order_by.clone(),
                include_total: paging.include_total,
                ..Default::default()
            };
            walk(
                c,
                "customers",
                &paging,
                customer_json,
                customer_row,
                |page_token| {
                    let (mut customers, mut request) = (customers.clone(), request.clone());
                    request.page_token = page_token;
                    async move {
                        let r = customers
                            .search_customers(authed(request)?)
                            .await
                            .map_err(status)?
                            .into_inner();
                        Ok(PageOf {
                            items: r.customers,
                            next: r.next_page_token,
                            truncated: r.truncated,
                            total: r.total_size,
                            status: r.source_status,
                        })
                    }
                },
            )
            .await?
        }
        CustomerCommand::Search {
            query,
            limit,
            include_invalid,
            paging: _,
        } => {
            let r = c
                .customers
                .search_customers(authed(pb::SearchCustomersRequest {
                    query,
                    include_invalid,
                    limit,
                    ..Default::default()
                })?)
                .await
                .map_err(status)?
                .into_inner();
            listing(
                "customers",
                &r.customers,
                customer_json,
                customer_row,
                r.truncated,
                &r.source_status,
            )
        }
        CustomerCommand::Users {
            customer_id,
            limit,
            include_invalid,
        } => {
            let r = c
                .customers
                .list_customer_users_of_customer(authed(pb::ListCustomerUsersOfCustomerRequest {
                    customer_id,
                    include_invalid,
                    limit,
                    ..Default::default()
                })?)
                .await
                .map_err(status)?
                .into_inner();
            listing(
                "customer_users",
                &r.customer_users,
                user_json,
                user_row,
                r.truncated,
                &r.source_status,
            )
        }
    })
}

fn one_group(g: &pb::Group) -> Out {
    Out::new(group_json(g), vec![group_row(g)])
}

fn context_name(raw: i32) -> &'static str {
    pb::PermissionContext::try_from(raw).map_or("?", |c| c.as_str_name())
}

/// One reason in words: `direct`, `customer acme (SAME_CUSTOMER)`, `always-group`, …, with
/// ` via rw` when granted through `rw`.
fn reason_text(r: &pb::GrantReason) -> String {
    use pb::grant_reason::Kind;
    let base = match Kind::try_from(r.kind).unwrap_or(Kind::Unspecified) {
        Kind::Direct => "direct".to_owned(),
        Kind::Customer => format!("customer {} ({})", r.customer_id, context_name(r.context)),
        Kind::AlwaysGroup => "always-group".to_owned(),
        Kind::CustomerAlwaysGroup => format!("customer always-group ({})", r.customer_id),
        Kind::GroupSupportOff => "group support off".to_owned(),
        Kind::Unspecified => "?".to_owned(),
    };
    match r.via_rw {
        true => format!("{base} via rw"),
        false => base,
    }
}

fn reason_json(r: &pb::GrantReason) -> Value {
    use pb::grant_reason::Kind;
    json!({
        "kind": Kind::try_from(r.kind).map_or("?", |k| k.as_str_name()),
        "customer_id": r.customer_id,
        "context": context_name(r.context),
        "via_rw": r.via_rw,
    })
}

async fn group(c: &mut Clients, cmd: GroupCommand) -> Result<Out, String> {
    Ok(match cmd {
        GroupCommand::Create { name, comment } => {
            let g = c
                .groups
                .create_group(authed(pb::CreateGroupRequest {
                    group: Some(pb::Group {
                        name,
                        comment,
                        validity: pb::Validity::Valid.into(),
                    }),
                })?)
                .await
                .map_err(status)?
                .into_inner();
            one_group(&g)
        }
        GroupCommand::Get { name } => {
            let g = c
                .groups
                .get_group(authed(pb::GetGroupRequest { name })?)
                .await
                .map_err(status)?
                .into_inner();
            one_group(&g)
        }
        GroupCommand::List { include_invalid } => {
            let groups = c
                .groups
                .list_groups(authed(pb::ListGroupsRequest { include_invalid })?)
                .await
                .map_err(status)?
                .into_inner()
                .groups;
            listing("groups", &groups, group_json, group_row, false, &[])
        }
        GroupCommand::Update {
            name,
            new_name,
            comment,
            validity,
        } => {
            let mut paths = Vec::new();
            let group = pb::Group {
                name: new_name
                    .inspect(|_| paths.push("name".into()))
                    .unwrap_or_default(),
                comment: comment
                    .inspect(|_| paths.push("comment".into()))
                    .unwrap_or_default(),
                validity: validity_field(validity, &mut paths),
            };
            let g = c
                .groups
                .update_group(authed(pb::UpdateGroupRequest {
                    name,
                    group: Some(group),
                    update_mask: mask(paths),
                })?)
                .await
                .map_err(status)?
                .into_inner();
            one_group(&g)
        }
        GroupCommand::Grant {
            group,
            login,
            customer_id,
            context,
            permission,
            revoke,
        } => {
            let permissions: std::collections::HashMap<String, bool> = permission
                .into_iter()
                .map(|k| (k, true))
                .chain(revoke.into_iter().map(|k| (k, false)))
                .collect();
            let held = match (login, customer_id) {
                (Some(login), _) => {
                    c.groups
                        .set_customer_user_permissions(authed(
                            pb::SetCustomerUserPermissionsRequest {
                                login,
                                group,
                                permissions,
                            },
                        )?)
                        .await
                        .map_err(status)?
                        .into_inner()
                        .permissions
                }
                (None, customer_id) => {
                    let context = match context {
                        ContextArg::Same => pb::PermissionContext::SameCustomer,
                        ContextArg::Other => pb::PermissionContext::OtherCustomers,
                    };
                    c.groups
                        .set_customer_permissions(authed(pb::SetCustomerPermissionsRequest {
                            customer_id: customer_id.unwrap_or_default(),
                            group,
                            context: context.into(),
                            permissions,
                        })?)
                        .await
                        .map_err(status)?
                        .into_inner()
                        .permissions
                }
            };
            let rows = held.iter().map(|k| vec![k.clone()]).collect();
            Out::new(json!({ "permissions": held }), rows)
        }
        GroupCommand::Permissions { login } => {
            let groups = c
                .groups
                .get_effective_permissions(authed(pb::GetEffectivePermissionsRequest { login })?)
                .await
                .map_err(status)?
                .into_inner()
                .groups;
            let mut rows = Vec::new();
            let mut doc = Vec::new();
            for g in &groups {
                let mut keys = Map::new();
                for k in &g.permissions {
                    let reasons: Vec<String> = k.reasons.iter().map(reason_text).collect();
                    rows.push(vec![
                        g.group.clone(),
                        k.permission.clone(),
                        reasons.join("; "),
                    ]);
                    keys.insert(
                        k.permission.clone(),
                        k.reasons.iter().map(reason_json).collect(),
                    );
                }
                doc.push(json!({ "group": g.group, "permissions": keys }));
            }
            Out::new(json!({ "groups": doc }), rows)
        }
        GroupCommand::Members {
            group,
            permission,
            limit,
        } => {
            let r = c
                .groups
                .list_group_customer_users(authed(pb::ListGroupCustomerUsersRequest {
                    group,
                    permission,
                    limit,
                    ..Default::default()
                })?)
                .await
                .map_err(status)?
                .into_inner();
            let rows = r.logins.iter().map(|l| vec![l.clone()]).collect();
            let mut out = Out::new(
                json!({ "logins": r.logins, "truncated": r.truncated }),
                rows,
            );
            if r.truncated {
                out.notes.push("(more results: raise --limit)".into());
            }
            out
        }
    })
}

async fn set_password(c: &mut Clients, login: String) -> Result<Out, String> {
    let password = password()?;
    c.auth
        .set_password(authed(pb::SetPasswordRequest { login, password })?)
        .await
        .map_err(status)?;
    Ok(Out::message("password set"))
}

async fn auth(c: &mut Clients, cmd: AuthCommand) -> Result<Out, String> {
    Ok(match cmd {
        AuthCommand::Check { login } => {
            let password = password()?;
            let mut request = pb::AuthenticateRequest {
                login,
                password,
                client_ip: String::new(),
                otp: std::env::var("CLIENTELE_OTP").unwrap_or_default(),
            };
            let mut r = c
                .auth
                .authenticate(authed(request.clone())?)
                .await
                .map_err(status)?
                .into_inner();
            // A second factor is asked for only after the right password (nothing counted).
            if r.outcome == pb::Outcome::SecondFactorRequired as i32 && request.otp.is_empty() {
                request.otp = otp()?;
                if !request.otp.is_empty() {
                    r = c
                        .auth
                        .authenticate(authed(request)?)
                        .await
                        .map_err(status)?
                        .into_inner();
                }
            }
            let outcome = pb::Outcome::try_from(r.outcome).map_or("?", |o| o.as_str_name());
            let mut out = Out::new(
                json!({
                    "outcome": outcome,
                    "source": r.source,
                    "customer_ids": r.customer_ids,
                    "customer_user": r.customer_user.as_ref().map(user_json),
                    "locked_until": time_json(r.locked_until.as_ref()),
                }),
                vec![vec![
                    outcome.to_owned(),
                    r.source.clone(),
                    r.customer_ids.join(","),
                ]],
            );
            if r.outcome != pb::Outcome::Success as i32 {
                out.failed = Some(format!("authentication: {outcome}"));
            }
            out
        }
        AuthCommand::Unlock { login } => {
            c.auth
                .unlock_login(authed(pb::UnlockLoginRequest { login })?)
                .await
                .map_err(status)?;
            Out::message("unlocked")
        }
        AuthCommand::SetPassword { login } => set_password(c, login).await?,
        AuthCommand::Totp(cmd) => totp(c, cmd).await?,
    })
}

async fn totp(c: &mut Clients, cmd: TotpCommand) -> Result<Out, String> {
    Ok(match cmd {
        TotpCommand::Enroll { login } => {
            let r = c
                .auth
                .enroll_totp(authed(pb::EnrollTotpRequest { login })?)
                .await
                .map_err(status)?
                .into_inner();
            Out::new(
                json!({ "secret": r.secret, "otpauth_uri": r.otpauth_uri }),
                vec![vec![r.secret.clone(), r.otpauth_uri.clone()]],
            )
        }
        TotpCommand::Confirm { login } => {
            let otp = otp()?;
            c.auth
                .confirm_totp(authed(pb::ConfirmTotpRequest { login, otp })?)
                .await
                .map_err(status)?;
            Out::message("second factor active")
        }
        TotpCommand::Remove { login } => {
            c.auth
                .remove_totp(authed(pb::RemoveTotpRequest { login })?)
                .await
                .map_err(status)?;
            Out::message("second factor removed")
        }
    })
}

/// Rows: address, normalized address, logins (comma-separated), error or `ambiguous`.
async fn resolve(c: &mut Clients, addresses: Vec<String>) -> Result<Out, String> {
    let r = c
        .users
        .resolve_senders(authed(pb::ResolveSendersRequest { addresses })?)
        .await
        .map_err(status)?
        .into_inner();
    let mut rows = Vec::new();
    let mut doc = Vec::new();
    for res in &r.results {
        let logins: Vec<&str> = res
            .customer_users
            .iter()
            .map(|u| u.login.as_str())
            .collect();
        let note = if !res.error.is_empty() {
            res.error.clone()
        } else if res.ambiguous {
            "ambiguous".to_owned()
        } else {
            String::new()
        };
        rows.push(vec![
            res.address.clone(),
            res.normalized.clone(),
            logins.join(","),
            note,
        ]);
        doc.push(json!({
            "address": res.address, "normalized": res.normalized,
            "customer_users": res.customer_users.iter().map(user_json).collect::<Vec<_>>(),
            "ambiguous": res.ambiguous, "error": res.error,
        }));
    }
    let mut out = Out::new(
        json!({ "results": doc, "source_status": r.source_status.iter().map(status_json).collect::<Vec<_>>() }),
        rows,
    );
    out.notes.extend(
        r.source_status
            .iter()
            .filter(|s| !s.ok)
            .map(|s| format!("source {}: {}", s.source, s.error)),
    );
    Ok(out)
}
