//! Health probing in one place: every customer-user source, customer source and the group store
//! pinged concurrently. `check-config` reports the probes once; the server's health loop
//! (`app`) turns them into `source/<name>` health statuses.

use std::{future::Future, pin::Pin, time::Duration};

use futures::future::join_all;

use super::Directory;
use crate::source::SourceError;

/// The answer of one probed source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The configuration section the source is in: `customer_user_sources`,
    /// `customer_sources` or `groups`.
    pub section: &'static str,
    /// The source's name (`groups` for the group store).
    pub name: String,
    /// `Err` with the source's error, or with "no answer within …" when the bound ran out.
    pub result: Result<(), String>,
}

type Ping<'a> = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send + 'a>>;

impl Directory {
    /// Pings every source and the group store concurrently, each bounded by `bound` (`None`:
    /// as long as the source takes). One [`Probe`] per source in configuration order:
    /// customer-user sources, customer sources, then the group store if configured.
    pub async fn probe(&self, bound: Option<Duration>) -> Vec<Probe> {
        let mut pings: Vec<(&'static str, String, Ping<'_>)> = Vec::new();
        for s in self.user_sources() {
            pings.push((
                "customer_user_sources",
                s.name().to_owned(),
                s.reader.ping(),
            ));
        }
        for s in self.customer_sources() {
            pings.push(("customer_sources", s.name().to_owned(), s.reader.ping()));
        }
        if let Some(g) = self.group_store() {
            pings.push(("groups", "groups".to_owned(), g.ping()));
        }
        let (heads, calls): (Vec<_>, Vec<_>) = pings
            .into_iter()
            .map(|(section, name, ping)| ((section, name), ping))
            .unzip();
        let results = join_all(calls.into_iter().map(|ping| async move {
            match bound {
                None => ping.await.map_err(|e| e.to_string()),
                Some(limit) => match tokio::time::timeout(limit, ping).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
                },
            }
        }))
        .await;
        heads
            .into_iter()
            .zip(results)
            .map(|((section, name), result)| Probe {
                section,
                name,
                result,
            })
            .collect()
    }
}
