//! Load generator: drives a running Clientele over real gRPC with a fixed mix and measures, in the
//! same run, the equivalent SQL straight against the database (the floor).
//!
//! ```sh
//! cargo build --release --bin clientele --example loadgen
//! target/release/clientele --config bench.toml seed --users 100000 --customers 1000 --source main
//! target/release/clientele --config bench.toml serve &
//! target/release/examples/loadgen --db-url postgres://postgres@127.0.0.1/bench --server-pid $!
//! ```
//!
//! Operations (each run for `--duration` at `--concurrency`, then its floor the same way):
//! - `search`: free text over the four search fields, terms of varied selectivity, limit 250;
//! - `typeahead`: what people type into a search box (the Znuny baseline's workload): 70% a
//!   2-5 character prefix of a random valid user's last name as the whole term, 15% a whole
//!   last name, 15% `first+last` of a random user; valid users, limit 250. Its floor is the best
//!   plan each database can run for the same answer (see [`typeahead_floor_sql`]), not the
//!   statement Clientele's database path runs;
//! - `resolve1` / `resolve100`: ResolveSenders with 1 and 100 addresses (80% known);
//! - `get`: GetCustomerUser of a random seeded login;
//! - `auth`: Authenticate with the seeded password (floor: cores / one argon2id hash);
//! - `create`: CreateCustomerUser of new logins.
//!
//! The last two columns are the CPU milliseconds per call that the server (`--server-pid`)
//! and the load generator itself spent during Clientele's phase (from `/proc`): on a machine
//! whose cores they share, they say who the throughput is bound by. `--no-floor` runs only
//! Clientele's side, for the whole `--duration`.
//!
//! The data set must be the one `clientele seed` writes with the same `--users`, `--customers`
//! and `--seed`. `--db-url` may be PostgreSQL (every floor), SQLite or MariaDB (`search` and
//! `typeahead` floors; the other operations are then skipped).
#![allow(clippy::unwrap_used, clippy::expect_used)] // load generator: a failed step ends the run

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use clap::Parser;
use clientele::proto::{
    self as pb, auth_service_client::AuthServiceClient,
    customer_user_service_client::CustomerUserServiceClient,
    search_customer_users_request::Criterion,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use sqlx::{any::AnyPoolOptions, postgres::PgPoolOptions, AnyPool, PgPool};
use tonic::transport::Channel;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Database of the seeded source, for the floor (PostgreSQL; SQLite or MariaDB for the
    /// search floors only).
    #[arg(long)]
    db_url: String,
    #[arg(long, default_value = "customer_user")]
    table: String,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Per operation, for Clientele and again for the floor.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(
        long,
        default_value = "search,typeahead,resolve1,resolve100,get,auth,create"
    )]
    ops: String,
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 1_000)]
    customers: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value = "Load-Test-1")]
    password: String,
    /// Bearer token, if the server has callers.
    #[arg(long, env = "CLIENTELE_TOKEN")]
    token: Option<String>,
    /// The server's process id, to report its peak resident memory and the CPU it spends
    /// per operation.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Run only Clientele's side (the whole `--duration`), not the floors.
    #[arg(long)]
    no_floor: bool,
    /// Searches (`search`, `typeahead`) read each answer's records as bytes instead of
    /// decoding their fields, so that the generator's own decoding does not take the CPU the
    /// server is measured on (a client elsewhere pays it on its own cores).
    #[arg(long)]
    lean_client: bool,
}

/// Search terms of varied selectivity, as people type them into a portal: one broad (a common
/// surname, ~2.5% of all users), five narrow (first and last name together, a customer id, a
/// login fragment, a surname with an apostrophe and a first name), two that find nothing.
const TERMS: &[&str] = &[
    "müller",
    "anna+smith",
    "jürgen+groß",
    "cust0042",
    "ingrid.weiß1",
    "o'brien+maria",
    "xyzzy",
    "zz9+qq",
];

struct Data {
    logins: Vec<String>,
    emails: Vec<String>,
    /// (first name, last name) of the valid users.
    names: Vec<(String, String)>,
}

/// A term of the typeahead mix (see the module documentation).
fn typeahead_term(data: &Data, r: &mut StdRng) -> String {
    let (first, last) = &data.names[r.gen_range(0..data.names.len())];
    let pick = r.gen_range(0..100);
    if pick < 70 {
        let n = r.gen_range(2..=5);
        last.chars().take(n).collect()
    } else if pick < 85 {
        last.clone()
    } else {
        format!("{first}+{last}")
    }
}

/// The engine of `--db-url`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    Postgres,
    Sqlite,
    MariaDb,
}

/// The best plan each database can run for a search's answer (valid users, every `+` part
/// in one of login, first name, last name or customer id, case-insensitively; the first 251 by
/// login), with one placeholder per part:
/// - PostgreSQL: `ORDER BY lower(login)` without `COLLATE "C"`, so the `lower(login)` index
///   delivers the rows in order and the scan stops at 251 (the database collates C.UTF-8,
///   code point order, so the answer is the same);
/// - SQLite: the same over its `LOWER(login)` index;
/// - MariaDB: the `_ci` columns compare case-insensitively themselves, so the bare columns and
///   `ORDER BY login` walk the login index.
fn typeahead_floor_sql(engine: Engine, table: &str, parts: usize) -> String {
    // Text columns only: sqlx's `Any` driver cannot decode PostgreSQL `timestamp` columns.
    let mut sql = format!(
        "SELECT login, title, first_name, last_name, email, customer_id, phone, fax, mobile, \
         street, zip, city, country, comments FROM {table} WHERE valid_id = 1"
    );
    for i in 1..=parts {
        let p = match engine {
            Engine::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        };
        let cond = match engine {
            Engine::MariaDb => format!(" AND (login LIKE {p} OR first_name LIKE {p} OR last_name LIKE {p} OR customer_id LIKE {p})"),
            _ => format!(" AND (lower(login) LIKE {p} OR lower(first_name) LIKE {p} OR lower(last_name) LIKE {p} OR lower(customer_id) LIKE {p})"),
        };
        sql.push_str(&cond);
    }
    sql.push_str(match engine {
        Engine::MariaDb => " ORDER BY login LIMIT 251",
        _ => " ORDER BY lower(login) LIMIT 251",
    });
    sql
}

/// How many times [`typeahead_floor_sql`] binds each part: PostgreSQL refers to `$i` in each
/// of the four columns; `?` placeholders are bound one by one.
fn floor_binds(engine: Engine) -> usize {
    match engine {
        Engine::Postgres => 1,
        Engine::Sqlite | Engine::MariaDb => 4,
    }
}

/// The LIKE patterns of a term's `+` parts (substring, lower-cased, `%`/`_` escaped).
fn like_parts(term: &str) -> Vec<String> {
    term.split('+')
        .map(|p| {
            format!(
                "%{}%",
                p.to_lowercase().replace('%', "\\%").replace('_', "\\_")
            )
        })
        .collect()
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    errors: usize,
    units: usize,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.latencies.extend(o.latencies);
        self.errors += o.errors;
        self.units += o.units;
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l[i].as_secs_f64() * 1000.0
    }
}

/// `SearchCustomerUsersResponse` with its records left encoded (`--lean-client`): the same
/// bytes on the wire, split per record but not decoded.
#[derive(Clone, PartialEq, prost::Message)]
struct LeanSearchResponse {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    customer_users: Vec<prost::bytes::Bytes>,
    #[prost(bool, tag = "2")]
    truncated: bool,
}

/// SearchCustomerUsers, its answer decoded fully or (`--lean-client`) leanly; the number of
/// records answered.
async fn search_call(
    channel: Channel,
    request: pb::SearchCustomerUsersRequest,
    token: &Option<String>,
) -> Result<usize, String> {
    if !LEAN_CLIENT.load(Ordering::Relaxed) {
        return CustomerUserServiceClient::new(channel)
            .search_customer_users(authed(request, token))
            .await
            .map(|r| r.into_inner().customer_users.len())
            .map_err(|e| e.to_string());
    }
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let codec =
        tonic_prost::ProstCodec::<pb::SearchCustomerUsersRequest, LeanSearchResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/clientele.v1.CustomerUserService/SearchCustomerUsers",
    );
    grpc.unary(authed(request, token), path, codec)
        .await
        .map(|r| r.into_inner().customer_users.len())
        .map_err(|e| e.to_string())
}

fn authed<T>(m: T, token: &Option<String>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    if let Some(t) = token {
        if let Ok(v) = format!("Bearer {t}").parse() {
            r.metadata_mut().insert("authorization", v);
        }
    }
    r
}

/// Runs `op` with `concurrency` workers for `duration`; each call returns how many units
/// (addresses, calls) it handled, or an error.
async fn drive<F, Fut>(concurrency: usize, duration: Duration, op: Arc<F>) -> (Stats, Duration)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<usize, String>> + Send,
{
    let started = Instant::now();
    let until = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut s = Stats::default();
                let mut n = 0u64;
                while Instant::now() < until {
                    let t = Instant::now();
                    match op(w, n).await {
                        Ok(units) => {
                            s.latencies.push(t.elapsed());
                            s.units += units;
                        }
                        Err(e) => {
                            if s.errors < 3 {
                                eprintln!("error: {e}");
                            }
                            s.errors += 1;
                        }
                    }
                    n += 1;
                }
                s
            })
        })
        .collect();
    let mut total = Stats::default();
    for w in workers {
        if let Ok(s) = w.await {
            total.merge(s);
        }
    }
    (total, started.elapsed())
}

/// Unique suffixes of created logins across rounds.
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An operation to run, possibly several times.
fn job<F>(op: F) -> Arc<F> {
    Arc::new(op)
}

/// Clientele and its floor alternately, each twice for half the duration, so neither profits
/// from caches the other warmed.
async fn compare<F1, Fut1, F2, Fut2>(
    c: usize,
    d: Duration,
    clientele: &Arc<F1>,
    floor: &Arc<F2>,
) -> ((Stats, Duration), (Stats, Duration))
where
    F1: Fn(usize, u64) -> Fut1 + Send + Sync + 'static,
    Fut1: std::future::Future<Output = Result<usize, String>> + Send,
    F2: Fn(usize, u64) -> Fut2 + Send + Sync + 'static,
    Fut2: std::future::Future<Output = Result<usize, String>> + Send,
{
    let no_floor = NO_FLOOR.load(Ordering::Relaxed);
    let half = if no_floor { d } else { d / 2 };
    let (mut s, mut st) = (Stats::default(), Duration::ZERO);
    let (mut f, mut ft) = (Stats::default(), Duration::ZERO);
    let (mut server_cpu, mut own_cpu) = (0.0, 0.0);
    for _ in 0..if no_floor { 1 } else { 2 } {
        let (server0, own0) = (
            cpu_seconds(SERVER_PID.load(Ordering::Relaxed)),
            cpu_seconds(0),
        );
        let (a, at) = drive(c, half, clientele.clone()).await;
        server_cpu += cpu_seconds(SERVER_PID.load(Ordering::Relaxed)) - server0;
        own_cpu += cpu_seconds(0) - own0;
        s.merge(a);
        st += at;
        if !no_floor {
            let (b, bt) = drive(c, half, floor.clone()).await;
            f.merge(b);
            ft += bt;
        }
    }
    if let Ok(mut last) = LAST_CPU.lock() {
        *last = (server_cpu, own_cpu);
    }
    ((s, st), (f, ft))
}

/// `--lean-client`.
static LEAN_CLIENT: AtomicBool = AtomicBool::new(false);
/// `--no-floor`.
static NO_FLOOR: AtomicBool = AtomicBool::new(false);
/// `--server-pid` (0: none).
static SERVER_PID: AtomicU32 = AtomicU32::new(0);
/// CPU seconds the server and the load generator spent in the last Clientele phase.
static LAST_CPU: Mutex<(f64, f64)> = Mutex::new((0.0, 0.0));

/// User + system CPU seconds of process `pid` (0: this one) from `/proc` (0 where unreadable).
fn cpu_seconds(pid: u32) -> f64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_owned()
    } else {
        format!("/proc/{pid}/stat")
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn row(name: &str, s: &Stats, took: Duration, floor: Option<(&Stats, Duration)>) {
    let rate = |s: &Stats, d: Duration| s.units as f64 / d.as_secs_f64();
    let floor_text = match floor {
        Some((f, fd)) => format!(
            "{:>10.0} {:>8.2} {:>8.2} {:>7.2}x",
            rate(f, fd),
            f.pct(0.5),
            f.pct(0.99),
            rate(s, took) / rate(f, fd).max(f64::MIN_POSITIVE)
        ),
        None => String::new(),
    };
    let floor_text = if NO_FLOOR.load(Ordering::Relaxed) {
        format!("{:>10}", "skipped")
    } else {
        floor_text
    };
    // CPU per call (not per address) on each side of the Clientele phase.
    let (server_cpu, own_cpu) = LAST_CPU.lock().map_or((0.0, 0.0), |l| *l);
    let calls = (s.latencies.len() + s.errors).max(1) as f64;
    println!(
        "{name:<12} {:>10.0} {:>8.2} {:>8.2} {:>7} | {floor_text} | {:>8.3} {:>8.3}",
        rate(s, took),
        s.pct(0.5),
        s.pct(0.99),
        s.errors,
        server_cpu * 1000.0 / calls,
        own_cpu * 1000.0 / calls,
    );
}

fn rng(w: usize, n: u64) -> StdRng {
    StdRng::seed_from_u64((w as u64) << 32 ^ n)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let users = clientele::seed::customer_users(args.users, args.customers, args.seed);
    let valid: Vec<&clientele::domain::CustomerUser> = users
        .iter()
        .filter(|u| u.validity == clientele::domain::Validity::Valid)
        .collect();
    let data = Arc::new(Data {
        logins: valid.iter().map(|u| u.login.clone()).collect(),
        emails: valid.iter().map(|u| u.email.to_lowercase()).collect(),
        names: valid
            .iter()
            .map(|u| (u.first_name.clone(), u.last_name.clone()))
            .collect(),
    });
    let engine = if args.db_url.starts_with("postgres") {
        Engine::Postgres
    } else if args.db_url.starts_with("sqlite") {
        Engine::Sqlite
    } else {
        Engine::MariaDb
    };
    sqlx::any::install_default_drivers();
    let any: AnyPool = AnyPoolOptions::new()
        .max_connections(u32::try_from(args.concurrency).unwrap_or(8))
        .connect(&args.db_url)
        .await?;
    let channel = Channel::from_shared(args.server.clone())?.connect().await?;
    // The same session planner costs Clientele's pools use (SSD: random_page_cost 1.1), so the
    // floor is the indexed floor.
    let db: PgPool = PgPoolOptions::new()
        .max_connections(u32::try_from(args.concurrency).unwrap_or(8))
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET random_page_cost = 1.1")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        // Not PostgreSQL: a pool that never connects (only the search floors run, on `any`).
        .connect_lazy(if engine == Engine::Postgres {
            &args.db_url
        } else {
            "postgres://none@127.0.0.1:1/none"
        })?;
    let table = args.table.clone();
    // The whole record, as Clientele reads it.
    let cols = "*";
    println!(
        "{} users, concurrency {}, {:?} per operation and floor; ops/s counts addresses for resolve",
        args.users, args.concurrency, args.duration
    );
    NO_FLOOR.store(args.no_floor, Ordering::Relaxed);
    LEAN_CLIENT.store(args.lean_client, Ordering::Relaxed);
    SERVER_PID.store(args.server_pid.unwrap_or(0), Ordering::Relaxed);
    println!(
        "{:<12} {:>10} {:>8} {:>8} {:>7} | {:>10} {:>8} {:>8} {:>8} | {:>8} {:>8}",
        "operation",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "floor/s",
        "p50 ms",
        "p99 ms",
        "ratio",
        "srv cpu",
        "gen cpu"
    );
    let run_id = std::process::id();
    for op in args.ops.split(',') {
        let (c, d, token) = (args.concurrency, args.duration, args.token.clone());
        if engine != Engine::Postgres && !matches!(op, "search" | "typeahead") {
            eprintln!("{op}: its floor needs PostgreSQL; skipped");
            continue;
        }
        match op {
            "search" => {
                let ch = channel.clone();
                let cj = job(move |w: usize, n: u64| {
                    let ch = ch.clone();
                    let term = TERMS[rng(w, n).gen_range(0..TERMS.len())];
                    let token = token.clone();
                    async move {
                        let request = pb::SearchCustomerUsersRequest {
                            criterion: Some(Criterion::Query(term.into())),
                            limit: 250,
                            ..Default::default()
                        };
                        search_call(ch, request, &token).await.map(|_| 1)
                    }
                });
                let (any2, table2) = (any.clone(), table.clone());
                let fj = job(move |w: usize, n: u64| {
                    let term = TERMS[rng(w, n).gen_range(0..TERMS.len())];
                    let (any, table) = (any2.clone(), table2.clone());
                    async move {
                        // The best plan for the same answer (see `typeahead_floor_sql`).
                        let parts = like_parts(term);
                        let sql = typeahead_floor_sql(engine, &table, parts.len());
                        let mut q = sqlx::query(&sql);
                        for p in parts {
                            // PostgreSQL's `$i` is bound once; `?` once per column.
                            for _ in 0..floor_binds(engine) {
                                q = q.bind(p.clone());
                            }
                        }
                        q.fetch_all(&any)
                            .await
                            .map(|_| 1)
                            .map_err(|e| e.to_string())
                    }
                });
                let ((s, t), (f, ft)) = compare(c, d, &cj, &fj).await;
                row("search", &s, t, Some((&f, ft)));
            }
            "typeahead" => {
                let ch = channel.clone();
                let data2 = data.clone();
                let cj = job(move |w: usize, n: u64| {
                    let ch = ch.clone();
                    let term = typeahead_term(&data2, &mut rng(w, n));
                    let token = token.clone();
                    async move {
                        let request = pb::SearchCustomerUsersRequest {
                            criterion: Some(Criterion::Query(term)),
                            limit: 250,
                            ..Default::default()
                        };
                        search_call(ch, request, &token).await.map(|_| 1)
                    }
                });
                let (any2, table2, data3) = (any.clone(), table.clone(), data.clone());
                let fj = job(move |w: usize, n: u64| {
                    let term = typeahead_term(&data3, &mut rng(w, n));
                    let (any, table) = (any2.clone(), table2.clone());
                    async move {
                        let parts = like_parts(&term);
                        let sql = typeahead_floor_sql(engine, &table, parts.len());
                        let mut q = sqlx::query(&sql);
                        for p in parts {
                            // PostgreSQL's `$i` is bound once; `?` once per column.
                            for _ in 0..floor_binds(engine) {
                                q = q.bind(p.clone());
                            }
                        }
                        q.fetch_all(&any)
                            .await
                            .map(|_| 1)
                            .map_err(|e| e.to_string())
                    }
                });
                let ((s, t), (f, ft)) = compare(c, d, &cj, &fj).await;
                row("typeahead", &s, t, Some((&f, ft)));
            }
            "resolve1" | "resolve100" => {
                let batch = if op == "resolve1" { 1 } else { 100 };
                let ch = channel.clone();
                let data2 = data.clone();
                let cj = job(move |w: usize, n: u64| {
                    let mut cl = CustomerUserServiceClient::new(ch.clone());
                    let mut r = rng(w, n);
                    let addresses: Vec<String> = (0..batch)
                        .map(|_| {
                            if r.gen_bool(0.8) {
                                data2.emails[r.gen_range(0..data2.emails.len())].clone()
                            } else {
                                format!("nobody{}@example.org", r.gen::<u32>())
                            }
                        })
                        .collect();
                    let token = token.clone();
                    async move {
                        cl.resolve_senders(authed(pb::ResolveSendersRequest { addresses }, &token))
                            .await
                            .map(|_| batch)
                            .map_err(|e| e.to_string())
                    }
                });
                let (db2, table2, data3) = (db.clone(), table.clone(), data.clone());
                let fj = job(move |w: usize, n: u64| {
                    let mut r = rng(w, n);
                    let addresses: Vec<String> = (0..batch)
                        .map(|_| {
                            if r.gen_bool(0.8) {
                                data3.emails[r.gen_range(0..data3.emails.len())].clone()
                            } else {
                                format!("nobody{}@example.org", r.gen::<u32>())
                            }
                        })
                        .collect();
                    let (db, table) = (db2.clone(), table2.clone());
                    async move {
                        sqlx::query(&format!("SELECT {cols} FROM {table} WHERE lower(email) = ANY($1) AND valid_id = 1"))
                            .bind(addresses)
                            .fetch_all(&db)
                            .await
                            .map(|_| batch)
                            .map_err(|e| e.to_string())
                    }
                });
                let ((s, t), (f, ft)) = compare(c, d, &cj, &fj).await;
                row(op, &s, t, Some((&f, ft)));
            }
            "get" => {
                let ch = channel.clone();
                let data2 = data.clone();
                let cj = job(move |w: usize, n: u64| {
                    let mut cl = CustomerUserServiceClient::new(ch.clone());
                    let login = data2.logins[rng(w, n).gen_range(0..data2.logins.len())].clone();
                    let token = token.clone();
                    async move {
                        cl.get_customer_user(authed(pb::GetCustomerUserRequest { login }, &token))
                            .await
                            .map(|_| 1)
                            .map_err(|e| e.to_string())
                    }
                });
                let (db2, table2, data3) = (db.clone(), table.clone(), data.clone());
                let fj = job(move |w: usize, n: u64| {
                    let login =
                        data3.logins[rng(w, n).gen_range(0..data3.logins.len())].to_lowercase();
                    let (db, table) = (db2.clone(), table2.clone());
                    async move {
                        sqlx::query(&format!(
                            "SELECT {cols} FROM {table} WHERE lower(login) = $1"
                        ))
                        .bind(login)
                        .fetch_all(&db)
                        .await
                        .map(|_| 1)
                        .map_err(|e| e.to_string())
                    }
                });
                let ((s, t), (f, ft)) = compare(c, d, &cj, &fj).await;
                row("get", &s, t, Some((&f, ft)));
            }
            "auth" => {
                let ch = channel.clone();
                let data2 = data.clone();
                let password = args.password.clone();
                let cj = job(move |w: usize, n: u64| {
                    let mut cl = AuthServiceClient::new(ch.clone());
                    let login = data2.logins[rng(w, n).gen_range(0..data2.logins.len())].clone();
                    let (token, password) = (token.clone(), password.clone());
                    async move {
                        let r = cl
                            .authenticate(authed(
                                pb::AuthenticateRequest {
                                    login,
                                    password,
                                    client_ip: format!("198.51.100.{}", n % 250),
                                    otp: String::new(),
                                },
                                &token,
                            ))
                            .await
                            .map_err(|e| e.to_string())?
                            .into_inner();
                        if r.outcome == pb::Outcome::Success as i32 {
                            Ok(1)
                        } else {
                            Err(format!("outcome {}", r.outcome))
                        }
                    }
                });
                let (s, t) = drive(c, d, cj).await;
                // The floor: one argon2id verification per core, back to back.
                let hash = clientele::auth::hash::hash(
                    &args.password,
                    &clientele::auth::hash::Argon2Params::default(),
                )?;
                let timed = Instant::now();
                let rounds = 10;
                for _ in 0..rounds {
                    let _ = clientele::auth::hash::verify(&args.password, &hash, false);
                }
                let one = timed.elapsed() / rounds;
                let cores = std::thread::available_parallelism().map_or(2, usize::from);
                let floor = cores as f64 / one.as_secs_f64();
                let rate = s.units as f64 / t.as_secs_f64();
                println!(
                    "{:<12} {:>10.0} {:>8.2} {:>8.2} {:>7} | {:>10.0} {:>8.2} {:>8} {:>7.2}x  (floor = {cores} cores / {:.1} ms per argon2id verify)",
                    "auth", rate, s.pct(0.5), s.pct(0.99), s.errors, floor, one.as_secs_f64() * 1000.0, "-", rate / floor, one.as_secs_f64() * 1000.0
                );
            }
            "create" => {
                let ch = channel.clone();
                let cj = job(move |w: usize, _n: u64| {
                    let mut cl = CustomerUserServiceClient::new(ch.clone());
                    let login = format!(
                        "lg{run_id}-{w}-{}",
                        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    );
                    let token = token.clone();
                    async move {
                        cl.create_customer_user(authed(
                            pb::CreateCustomerUserRequest {
                                customer_user: Some(pb::CustomerUser {
                                    email: format!("{login}@load.example.com"),
                                    login,
                                    first_name: "Load".into(),
                                    last_name: "Gen".into(),
                                    customer_id: "cust0001".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            },
                            &token,
                        ))
                        .await
                        .map(|_| 1)
                        .map_err(|e| e.to_string())
                    }
                });
                let (db2, table2) = (db.clone(), table.clone());
                let fj = job(move |w: usize, _n: u64| {
                    let login = format!(
                        "fl{run_id}-{w}-{}",
                        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    );
                    let (db, table) = (db2.clone(), table2.clone());
                    async move {
                        sqlx::query(&format!("INSERT INTO {table} (login, email, customer_id, first_name, last_name, valid_id, create_time, create_by, change_time, change_by) VALUES ($1, $2, 'cust0001', 'Load', 'Floor', 1, current_timestamp, 1, current_timestamp, 1)"))
                            .bind(&login)
                            .bind(format!("{login}@floor.example.com"))
                            .execute(&db)
                            .await
                            .map(|_| 1)
                            .map_err(|e| e.to_string())
                    }
                });
                let ((s, t), (f, ft)) = compare(c, d, &cj, &fj).await;
                row("create", &s, t, Some((&f, ft)));
            }
            other => eprintln!("unknown operation {other:?}"),
        }
    }
    if let Some(pid) = args.server_pid {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status
                .lines()
                .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
            {
                println!("server {line}");
            }
        }
    }
    Ok(())
}
