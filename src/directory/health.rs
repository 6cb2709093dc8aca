//! Health probing in one place: every customer-user source, customer source and the group store
//! pinged concurrently, each source's circuit breaker given its trial first when it is open
//! (so the probe is what closes a healed source), and each ping's failure fed to the breaker.
//! `check-config` reports the probes once; the server's health loop (`app`) turns them into
//! `source/<name>` health statuses and, from [`Directory::breakers`], the per-source breaker
//! metrics.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use futures::future::join_all;

use super::Directory;
use crate::source::{
    breaker::{Fuse, Snapshot},
    SourceError,
};

/// The answer of one probed source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The configuration section the source is in: `customer_user_sources`,
    /// `customer_sources` or `groups`.
    pub section: &'static str,
    /// The source's name (`groups` for the group store).
    pub name: String,
    /// `Err` with the source's error (for an open source: since when and why), or with
    /// "no answer within …" when the bound ran out.
    pub result: Result<(), String>,
}

type Ping<'a> = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send + 'a>>;

/// One source to probe: its ping, its breakers and the bound of a ping.
struct Target<'a> {
    section: &'static str,
    name: String,
    ping: Ping<'a>,
    fuse: Option<Arc<dyn Fuse>>,
    bound: Option<Duration>,
}

impl Directory {
    /// Pings every source and the group store concurrently, each bounded by `bound` (`None`,
    /// the health loop: by the smaller of the source's `call_timeout` and its
    /// `connect_timeout` once the backend was first reached — a ping is the smallest unit of
    /// work, so a backend that cannot answer one within `connect_timeout` is silent; the group
    /// store then by 15 s). A source whose circuit
    /// is open first gets one trial (a connection within its `connect_timeout`); while it stays
    /// open its probe fails with the breaker's refusal. A ping that times out or cannot connect
    /// opens the source's breaker. One [`Probe`] per source in configuration order:
    /// customer-user sources, customer sources, then the group store if configured.
    pub async fn probe(&self, bound: Option<Duration>) -> Vec<Probe> {
        let mut targets: Vec<Target<'_>> = Vec::new();
        for b in &self.users {
            targets.push(Target {
                section: "customer_user_sources",
                name: b.source.name().to_owned(),
                ping: b.source.reader.ping(),
                fuse: b.source.fuse.clone(),
                bound: Some(bound.unwrap_or_else(|| health_bound(b))),
            });
        }
        for b in &self.customers {
            targets.push(Target {
                section: "customer_sources",
                name: b.source.name().to_owned(),
                ping: b.source.reader.ping(),
                fuse: b.source.fuse.clone(),
                bound: Some(bound.unwrap_or_else(|| health_bound(b))),
            });
        }
        if let Some(g) = self.group_store() {
            targets.push(Target {
                section: "groups",
                name: "groups".to_owned(),
                ping: g.ping(),
                fuse: None,
                bound: Some(bound.unwrap_or(Duration::from_secs(15))),
            });
        }
        let heads: Vec<(&'static str, String)> = targets
            .iter()
            .map(|t| (t.section, t.name.clone()))
            .collect();
        let results = join_all(targets.into_iter().map(probe_one)).await;
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

    /// The breaker state of every customer-user and customer source that has breakers, by
    /// name, in configuration order (no network call).
    pub fn breakers(&self) -> Vec<(String, Snapshot)> {
        let users = self
            .users
            .iter()
            .filter_map(|b| Some((b.source.name(), b.source.fuse.as_ref()?)));
        let customers = self
            .customers
            .iter()
            .filter_map(|b| Some((b.source.name(), b.source.fuse.as_ref()?)));
        users
            .chain(customers)
            .map(|(name, fuse)| (name.to_owned(), fuse.snapshot()))
            .collect()
    }
}

/// The health loop's bound of one source's ping.
fn health_bound<S: super::Held>(b: &super::Bounded<S>) -> Duration {
    b.source
        .fuse()
        .and_then(|f| f.ping_bound())
        .map_or(b.timeout, |p| b.timeout.min(p))
}

async fn probe_one(t: Target<'_>) -> Result<(), String> {
    if let Some(fuse) = &t.fuse {
        if fuse.snapshot().is_open() {
            fuse.trial().await.map_err(|e| e.to_string())?;
        }
    }
    let r = match t.bound {
        None => t.ping.await,
        Some(limit) => match tokio::time::timeout(limit, t.ping).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Unavailable(format!(
                "no answer within {} ms",
                limit.as_millis()
            ))),
        },
    };
    if let (Err(SourceError::Unavailable(cause)), Some(fuse)) = (&r, &t.fuse) {
        fuse.record_failure(cause);
    }
    r.map_err(|e| e.to_string())
}
