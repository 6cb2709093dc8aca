//! Walk benchmark: pages through every customer user of a running Clientele over real gRPC
//! (`SearchCustomerUsers` with `page_size` / `page_token`) and reports records per second; then
//! times detail searches (filters) beside free-text searches of similar selectivity.
//!
//! ```sh
//! cargo build --release --bin clientele --example walk
//! target/release/clientele --config bench.toml seed --users 100000 --customers 1000 --source main
//! target/release/clientele --config bench.toml serve &   # list_limit = 1000 on the source
//! target/release/examples/walk --page-size 1000 --searches 200
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark: a failed step ends the run

use std::time::{Duration, Instant};

use clap::Parser;
use clientele::proto::{
    self as pb, customer_user_service_client::CustomerUserServiceClient,
    search_customer_users_request::Criterion,
};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
    /// Full walks to run (the best and the mean are reported).
    #[arg(long, default_value_t = 3)]
    walks: usize,
    /// Searches per kind in the filter / free-text comparison.
    #[arg(long, default_value_t = 200)]
    searches: usize,
}

fn req() -> pb::SearchCustomerUsersRequest {
    pb::SearchCustomerUsersRequest {
        criterion: Some(Criterion::Login("*".into())),
        include_invalid: true,
        ..Default::default()
    }
}

async fn time_searches(
    c: &mut CustomerUserServiceClient<tonic::transport::Channel>,
    name: &str,
    requests: &[pb::SearchCustomerUsersRequest],
    n: usize,
) {
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    let mut found = 0;
    for i in 0..n {
        let r = requests[i % requests.len()].clone();
        let t = Instant::now();
        let page = c.search_customer_users(r).await.unwrap().into_inner();
        times.push(t.elapsed());
        found += page.customer_users.len();
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / n as u32;
    println!(
        "{name:<28} {n} calls: mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, {:.0} records/call",
        mean.as_secs_f64() * 1e3,
        times[n / 2].as_secs_f64() * 1e3,
        times[n * 99 / 100].as_secs_f64() * 1e3,
        found as f64 / n as f64
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut c = CustomerUserServiceClient::connect(args.server.clone())
        .await
        .unwrap()
        .max_decoding_message_size(64 * 1024 * 1024);
    let mut rates = Vec::new();
    for w in 0..args.walks {
        let start = Instant::now();
        let mut r = pb::SearchCustomerUsersRequest {
            page_size: args.page_size,
            ..req()
        };
        let (mut records, mut pages) = (0usize, 0usize);
        loop {
            let page = c
                .search_customer_users(r.clone())
                .await
                .unwrap()
                .into_inner();
            records += page.customer_users.len();
            pages += 1;
            if page.next_page_token.is_empty() {
                break;
            }
            r.page_token = page.next_page_token;
        }
        let s = start.elapsed().as_secs_f64();
        let rate = records as f64 / s;
        rates.push(rate);
        println!(
            "walk {w}: {records} records in {pages} pages of {} in {s:.2} s: {rate:.0} records/s",
            args.page_size
        );
    }
    let best = rates.iter().copied().fold(0.0, f64::max);
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    println!("walk: best {best:.0} records/s, mean {mean:.0} records/s (target >= 100000)");

    let filter = |k: &str, v: &str| pb::SearchCustomerUsersRequest {
        criterion: None,
        page_size: 100,
        filters: [(k.to_owned(), v.to_owned())].into(),
        ..Default::default()
    };
    let text = |q: &str| pb::SearchCustomerUsersRequest {
        criterion: Some(Criterion::Query(q.into())),
        limit: 100,
        ..Default::default()
    };
    let last = ["Müller", "Schmidt", "Kowalski", "García"];
    let filters: Vec<_> = last.iter().map(|l| filter("last_name", l)).collect();
    let texts: Vec<_> = last.iter().map(|l| text(l)).collect();
    time_searches(&mut c, "filter last_name=<name>", &filters, args.searches).await;
    time_searches(&mut c, "query <name> (free text)", &texts, args.searches).await;
    let prefix: Vec<_> = ["mü*", "sch*", "ko*"]
        .iter()
        .map(|p| filter("last_name", p))
        .collect();
    time_searches(&mut c, "filter last_name=<prefix>*", &prefix, args.searches).await;
    let ordered: Vec<_> = ["cust0001", "cust0002", "cust0003"]
        .iter()
        .map(|cid| pb::SearchCustomerUsersRequest {
            order_by: "last_name, first_name desc".into(),
            ..filter("customer_id", cid)
        })
        .collect();
    time_searches(
        &mut c,
        "filter customer_id + order",
        &ordered,
        args.searches,
    )
    .await;
}
