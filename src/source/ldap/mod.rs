//! LDAP directories as read-only sources (ldap3): server failover with a circuit breaker per
//! host ([`Hosts`]: an open host is skipped, the directory answers at once only while every
//! host is open), StartTLS/LDAPS with certificate verification, a small pool of reused,
//! self-healing connections, every operation bounded by `call_timeout` and every connect by
//! `connect_timeout`, RFC 4515 escaped filters built from the search grammar, and size limits
//! reported as truncation.
//!
//! As with SQL: the directory narrows, Rust decides — every entry is checked again with the
//! same Unicode rules before it is returned.

pub mod attrs;
pub mod customer;
pub mod user;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use ldap3::{
    adapters::{Adapter, EntriesOnly, PagedResults},
    ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Scope, SearchEntry,
    SearchOptions,
};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use tokio::sync::Mutex;

use crate::config::{Backend, LdapScope, ResolvedMap, SourceSettings};
use crate::domain::{
    query::{Expr, Pattern, Piece},
    search::{Detail, Filter, Page, ORDER_SCAN_MAX},
    Attr, CaseRule, Field,
};
use crate::source::breaker::{Breaker, Fuse, Snapshot, TRIAL_WAIT};
use crate::source::SourceError;

/// LDAP result codes this module tells apart.
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INVALID_CREDENTIALS: u32 = 49;
/// Entries per page of the paged-results control.
const PAGE_SIZE: i32 = 500;
/// Values per OR-ed equality filter.
pub const BATCH: usize = 100;

/// The connection settings of one directory.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    pub source: String,
    pub urls: Vec<String>,
    pub base_dn: String,
    pub scope: Scope,
    pub bind: Option<(String, String)>,
    pub always_filter: Option<String>,
    pub invalid_filter: Option<String>,
    pub starttls: bool,
    pub ca_file: Option<String>,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
    pub pool_size: usize,
}

impl DirectorySettings {
    /// From a validated source configuration; fails when `backend` is not LDAP or the bind
    /// password cannot be read.
    pub fn from_config(s: &SourceSettings, backend: &Backend) -> Result<Self, String> {
        let Backend::Ldap(l) = backend else {
            return Err(format!("source {:?} is not an LDAP source", s.name));
        };
        let bind = match &l.bind_dn {
            Some(dn) => Some((dn.clone(), l.bind_password()?)),
            None => None,
        };
        Ok(Self {
            source: s.name.clone(),
            urls: l.urls.clone(),
            base_dn: l.base_dn.clone(),
            scope: match l.scope {
                LdapScope::OneLevel => Scope::OneLevel,
                LdapScope::Subtree => Scope::Subtree,
            },
            bind,
            always_filter: l.always_filter.clone(),
            invalid_filter: l.invalid_filter.clone(),
            starttls: l.starttls,
            ca_file: l.ca_file.clone(),
            connect_timeout: s.connect_timeout,
            op_timeout: s.call_timeout,
            pool_size: s.pool_size.clamp(1, 8) as usize,
        })
    }
}

/// A small pool of multiplexed connections; a connection that fails is dropped and the next
/// call reconnects (so a restarted server is used again without restarting Clientele). Each
/// host (url) has its circuit breaker ([`Hosts`]): failover skips an open host, and the
/// directory refuses at once only while every host is open.
pub struct Directory {
    pub settings: DirectorySettings,
    hosts: Arc<Hosts>,
    /// Per slot: the host index the connection is to, and the connection.
    slots: Vec<Mutex<Option<(usize, Ldap)>>>,
    next: AtomicUsize,
}

/// The servers of one directory, in failover order, each with its breaker: a connection
/// failure, a timeout (`connect_timeout` to connect, `call_timeout` per operation) or a broken
/// connection opens a host; a successful connection (a trial's, the probe's) closes it.
pub struct Hosts {
    settings: DirectorySettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    breakers: Vec<Arc<Breaker>>,
    /// The host the last connection went to (the one a caller's timeout blames).
    current: AtomicUsize,
}

fn tls_config(ca_file: Option<&str>) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    let Some(path) = ca_file else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|e| format!("ca_file {path:?}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("ca_file {path:?}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("ca_file {path:?}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Unavailable(format!("{what}: {e}"))
}

impl Hosts {
    /// Opens a connection to host `i` and, when configured, binds as the service account:
    /// `Err((error, counts))`, where `counts` says whether the failure is the host's (cannot
    /// connect, timeout) rather than a refused bind.
    async fn open(&self, i: usize) -> Result<Ldap, (SourceError, bool)> {
        let url = &self.settings.urls[i];
        let mut cs = LdapConnSettings::new()
            .set_conn_timeout(self.settings.connect_timeout)
            .set_starttls(self.settings.starttls);
        if let Some(tls) = &self.tls {
            cs = cs.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(cs, url)
            .await
            .map_err(|e| (unavailable(url, e), true))?;
        ldap3::drive!(conn);
        if let Some((dn, pw)) = &self.settings.bind {
            let r = ldap
                .with_timeout(self.settings.op_timeout)
                .simple_bind(dn, pw)
                .await
                .map_err(|e| (unavailable(&format!("bind to {url}"), e), true))?;
            if r.rc == RC_INVALID_CREDENTIALS {
                return Err((
                    SourceError::Failed(format!(
                        "bind refused by {url} for {dn:?}: invalid credentials"
                    )),
                    false,
                ));
            }
            if r.rc != 0 {
                return Err((
                    SourceError::Failed(format!("bind refused by {url} for {dn:?}: {r}")),
                    false,
                ));
            }
        }
        Ok(ldap)
    }

    /// Connects to the first host that is not open and answers (recording each host's
    /// outcome on its breaker). While every host is open, a trial of one host starts (see
    /// `breaker::TRIAL_GAP`) and is awaited up to `breaker::TRIAL_WAIT`: when it reached its
    /// host, that host is used; otherwise the refusal, at once.
    async fn connect(self: &Arc<Self>) -> Result<(usize, Ldap), SourceError> {
        match self.connect_open_hosts().await {
            Err(None) => {}
            other => return other.map_err(|e| e.unwrap_or_else(|| self.refusal())),
        }
        let Some(trial) = self.start_trial() else {
            return Err(self.refusal());
        };
        match tokio::time::timeout(TRIAL_WAIT, trial).await {
            Ok(Ok(true)) => self
                .connect_open_hosts()
                .await
                .map_err(|e| e.unwrap_or_else(|| self.refusal())),
            _ => Err(self.refusal()),
        }
    }

    /// The refusal of a directory whose hosts are all open: the one that opened last speaks.
    fn refusal(&self) -> SourceError {
        self.breakers
            .iter()
            .max_by_key(|b| b.snapshot().open_since)
            .and_then(|b| b.check().err())
            .unwrap_or_else(|| SourceError::Unavailable("every LDAP host is open".into()))
    }

    /// Tries each host that is not open, in order; `Err(None)`: every host is open.
    async fn connect_open_hosts(&self) -> Result<(usize, Ldap), Option<SourceError>> {
        let mut errors = Vec::new();
        for (i, breaker) in self.breakers.iter().enumerate() {
            if breaker.is_open() {
                continue;
            }
            match self.open(i).await {
                Ok(ldap) => {
                    breaker.record_success();
                    self.current.store(i, Ordering::Relaxed);
                    return Ok((i, ldap));
                }
                Err((e, false)) => return Err(Some(e)),
                Err((e, true)) => {
                    breaker.record_failure(&e.to_string());
                    errors.push(e.to_string());
                }
            }
        }
        if errors.is_empty() {
            return Err(None);
        }
        Err(Some(SourceError::Unavailable(format!(
            "cannot connect: {}",
            errors.join("; ")
        ))))
    }

    /// A trial of one open host in the background (see `breaker::TRIAL_GAP`); its handle says
    /// whether it closed that host.
    fn start_trial(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<bool>> {
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let (i, trial) = self
            .breakers
            .iter()
            .enumerate()
            .find_map(|(i, b)| Some((i, b.try_trial(false)?)))?;
        let hosts = self.clone();
        Some(rt.spawn(async move {
            match hosts.open(i).await {
                Ok(mut ldap) => {
                    trial.succeeded();
                    let _ = ldap.unbind().await;
                    true
                }
                Err((e, _)) => {
                    trial.failed(&e.to_string());
                    false
                }
            }
        }))
    }
}

#[async_trait]
impl Fuse for Hosts {
    fn check(&self) -> Result<(), SourceError> {
        if self.breakers.iter().any(|b| !b.is_open()) {
            return Ok(());
        }
        // Every host is open: the one that opened last speaks.
        let last = self
            .breakers
            .iter()
            .max_by_key(|b| b.snapshot().open_since)
            .map(|b| b.check());
        last.unwrap_or(Ok(()))
    }

    /// Hosts record their own failures (connections, `call_timeout` on each operation); a
    /// failure a caller saw (its bound ran out first) opens the host last connected to.
    fn record_failure(&self, cause: &str) {
        if let Some(b) = self.breakers.get(self.current.load(Ordering::Relaxed)) {
            b.record_failure(cause);
        }
    }

    async fn trial(&self) -> Result<(), SourceError> {
        for (i, b) in self.breakers.iter().enumerate() {
            if !b.is_open() {
                continue;
            }
            match self.open(i).await {
                Ok(mut ldap) => {
                    b.record_success();
                    let _ = ldap.unbind().await;
                }
                Err((e, _)) => b.note_cause(&e.to_string()),
            }
        }
        match self.breakers.iter().any(|b| !b.is_open()) {
            true => Ok(()),
            false => self
                .breakers
                .iter()
                .max_by_key(|b| b.snapshot().open_since)
                .map(|b| b.state())
                .unwrap_or(Ok(())),
        }
    }

    /// Open while every host is: since the last host opened, with every host's cause; time
    /// open is the shortest of the hosts'; short-circuits are summed.
    fn snapshot(&self) -> Snapshot {
        let all: Vec<Snapshot> = self.breakers.iter().map(|b| b.snapshot()).collect();
        let open = all.iter().all(Snapshot::is_open);
        Snapshot {
            open_since: if open {
                all.iter().filter_map(|s| s.open_since).max()
            } else {
                None
            },
            cause: if open {
                self.settings
                    .urls
                    .iter()
                    .zip(&all)
                    .map(|(u, s)| format!("{u}: {}", s.cause))
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                String::new()
            },
            open_for: all.iter().map(|s| s.open_for).min().unwrap_or_default(),
            short_circuited: all.iter().map(|s| s.short_circuited).sum(),
        }
    }

    fn ping_bound(&self) -> Option<Duration> {
        Some(self.settings.connect_timeout)
    }
}

impl Directory {
    pub fn new(settings: DirectorySettings) -> Result<Self, String> {
        let tls = tls_config(settings.ca_file.as_deref())?;
        let slots = (0..settings.pool_size).map(|_| Mutex::new(None)).collect();
        let clock = crate::clock::system();
        let breakers = settings
            .urls
            .iter()
            .map(|u| Breaker::new(format!("LDAP host {u}"), clock.clone()))
            .collect();
        Ok(Self {
            hosts: Arc::new(Hosts {
                settings: settings.clone(),
                tls,
                breakers,
                current: AtomicUsize::new(0),
            }),
            settings,
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// The breakers of this directory's hosts, as its sources see them.
    pub fn fuse(&self) -> Arc<dyn Fuse> {
        self.hosts.clone()
    }

    /// Checks `password` by binding as `dn` on a connection of its own (never pooled: it
    /// carries the user's identity), on the first host that is not open and answers. An empty
    /// password is refused before it reaches the server (an empty simple bind would be an
    /// anonymous bind that "succeeds").
    pub async fn bind_as(&self, dn: &str, password: &str) -> Result<bool, SourceError> {
        if password.is_empty() {
            return Ok(false);
        }
        let mut errors = Vec::new();
        for (i, url) in self.settings.urls.iter().enumerate() {
            let breaker = &self.hosts.breakers[i];
            if breaker.is_open() {
                continue;
            }
            let mut cs = LdapConnSettings::new()
                .set_conn_timeout(self.settings.connect_timeout)
                .set_starttls(self.settings.starttls);
            if let Some(tls) = &self.hosts.tls {
                cs = cs.set_config(tls.clone());
            }
            let (conn, mut ldap) = match LdapConnAsync::with_settings(cs, url).await {
                Ok(c) => c,
                Err(e) => {
                    breaker.record_failure(&format!("{url}: {e}"));
                    errors.push(format!("{url}: {e}"));
                    continue;
                }
            };
            ldap3::drive!(conn);
            let r = ldap
                .with_timeout(self.settings.op_timeout)
                .simple_bind(dn, password)
                .await
                .map_err(|e| {
                    breaker.record_failure(&format!("bind to {url}: {e}"));
                    unavailable(&format!("bind to {url}"), e)
                })?;
            let _ = ldap.unbind().await;
            return match r.rc {
                0 => Ok(true),
                RC_INVALID_CREDENTIALS => Ok(false),
                _ => Err(SourceError::Failed(format!(
                    "bind as user refused by {url}: {r}"
                ))),
            };
        }
        if errors.is_empty() {
            return Err(self.hosts.refusal());
        }
        Err(SourceError::Unavailable(format!(
            "cannot connect: {}",
            errors.join("; ")
        )))
    }

    /// A connected handle from the pool (connecting if the slot is empty, closed, or to a
    /// host that opened meanwhile) and the slot it is in.
    async fn handle(&self) -> Result<(usize, Ldap), SourceError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some((host, l)) = slot.as_mut() {
            if !l.is_closed() && !self.hosts.breakers[*host].is_open() {
                return Ok((i, l.clone()));
            }
        }
        let (host, ldap) = self.hosts.connect().await?;
        *slot = Some((host, ldap.clone()));
        Ok((i, ldap))
    }

    /// The connection in slot `i` broke (`cause`): its host opens and the slot is emptied.
    async fn broken(&self, i: usize, cause: &str) {
        let mut slot = self.slots[i].lock().await;
        if let Some((host, _)) = slot.take() {
            self.hosts.breakers[host].record_failure(cause);
        }
    }

    /// The full filter: `always_filter` AND `filter` (AND NOT `invalid_filter` when `valid_only`).
    pub fn filter(&self, filter: &str, valid_only: bool) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.settings.always_filter {
            parts.push(a.clone());
        }
        parts.push(filter.to_owned());
        if valid_only {
            if let Some(i) = &self.settings.invalid_filter {
                parts.push(format!("(!{i})"));
            }
        }
        if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("(&{})", parts.concat())
        }
    }

    /// Searches the base with `filter` (complete, see [`Directory::filter`]); at most `limit`
    /// entries (`None`: all), paged where the server offers it. Returns the entries and whether
    /// the size limit cut the answer (never an error).
    pub async fn search(
        &self,
        filter: &str,
        attrs: &[String],
        limit: Option<usize>,
    ) -> Result<(Vec<SearchEntry>, bool), SourceError> {
        let (slot, mut ldap) = self.handle().await?;
        match self.search_on(&mut ldap, filter, attrs, limit).await {
            Ok(r) => Ok(r),
            Err((e, broken)) => {
                if broken {
                    self.broken(slot, &e.to_string()).await;
                }
                Err(e)
            }
        }
    }

    async fn search_on(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        attrs: &[String],
        limit: Option<usize>,
    ) -> Result<(Vec<SearchEntry>, bool), (SourceError, bool)> {
        let io = |e: LdapError| {
            let broken = !matches!(e, LdapError::FilterParsing | LdapError::LdapResult { .. });
            let err = match e {
                LdapError::FilterParsing => SourceError::Failed(format!("bad filter {filter:?}")),
                other if broken => unavailable("directory", other),
                other => SourceError::Failed(other.to_string()),
            };
            (err, broken)
        };
        let mut opts = SearchOptions::new();
        if let Some(n) = limit {
            opts = opts.sizelimit(i32::try_from(n).unwrap_or(i32::MAX));
        }
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE_SIZE)),
        ];
        let mut stream = ldap
            .with_search_options(opts)
            .with_timeout(self.settings.op_timeout)
            .streaming_search_with(
                adapters,
                &self.settings.base_dn,
                self.settings.scope,
                filter,
                attrs.to_vec(),
            )
            .await
            .map_err(io)?;
        let mut entries = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(e)) => entries.push(SearchEntry::construct(e)),
                Ok(None) => break,
                Err(e) => return Err(io(e)),
            }
        }
        let res: LdapResult = stream.finish().await;
        match res.rc {
            0 => Ok((entries, false)),
            RC_SIZE_LIMIT_EXCEEDED => Ok((entries, true)),
            RC_NO_SUCH_OBJECT => Err((
                SourceError::Failed(format!(
                    "bad base DN {:?}: no such object",
                    self.settings.base_dn
                )),
                false,
            )),
            _ => Err((SourceError::Failed(format!("search failed: {res}")), false)),
        }
    }

    /// Connect, bind, read the base entry and run the always-filter: the exact cause of a
    /// failure (cannot connect / bind refused / bad base DN / bad filter).
    pub async fn ping(&self) -> Result<(), SourceError> {
        let (slot, mut ldap) = self.handle().await?;
        let base = ldap
            .with_timeout(self.settings.op_timeout)
            .search(
                &self.settings.base_dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["1.1"],
            )
            .await;
        match base {
            Ok(r) if r.1.rc == RC_NO_SUCH_OBJECT => {
                return Err(SourceError::Failed(format!(
                    "bad base DN {:?}: no such object",
                    self.settings.base_dn
                )))
            }
            Ok(r) if r.1.rc != 0 => {
                return Err(SourceError::Failed(format!("reading the base DN: {}", r.1)))
            }
            Ok(_) => {}
            Err(e) => {
                let e = unavailable("directory", e);
                self.broken(slot, &e.to_string()).await;
                return Err(e);
            }
        }
        self.search(
            &self.filter("(objectClass=*)", true),
            &["1.1".to_owned()],
            Some(1),
        )
        .await
        .map(|_| ())
    }
}

/// `(attr=value)` with the value escaped (RFC 4515).
pub fn eq(attr: &str, value: &str) -> String {
    format!("({attr}={})", ldap_escape(value))
}

/// `(|(attr=v1)(attr=v2)…)` over every attr and value.
pub fn any_eq(attrs: &[&str], values: &[String]) -> String {
    let parts: String = attrs
        .iter()
        .flat_map(|a| values.iter().map(move |v| eq(a, v)))
        .collect();
    format!("(|{parts})")
}

/// A filter for `pattern` on `attr`: wildcards only from the grammar, everything else escaped.
pub fn pattern(attr: &str, p: &Pattern) -> String {
    if p.is_match_all() {
        return format!("({attr}=*)");
    }
    let mut value = String::new();
    for piece in p.pieces() {
        match piece {
            Piece::Any => value.push('*'),
            Piece::Text(t) => value.push_str(&ldap_escape(t.as_str())),
        }
    }
    format!("({attr}={value})")
}

/// `core` AND-ed with the detail's pattern filters on mapped attributes (escaped like
/// [`pattern`]); other filters (validity, time ranges, unmapped attributes) are decided in Rust.
pub fn with_filters<F: Field>(core: String, detail: &Detail<F>, map: &ResolvedMap<F>) -> String {
    let parts: String = detail
        .filters
        .iter()
        .filter_map(|f| match f {
            Filter::Matches(attr, p) => Some(pattern(map.column(attr)?, p)),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        core
    } else {
        format!("(&{core}{parts})")
    }
}

/// How many entries a search asks the directory for: one more than `limit` when any `limit`
/// entries will do, else (a page of a walk, or an order other than by key: the directory
/// returns entries in no order) every match up to [`ORDER_SCAN_MAX`].
pub fn fetch_limit<F: Field>(detail: &Detail<F>, limit: usize) -> usize {
    if detail.paged || !detail.order.is_by_key() {
        ORDER_SCAN_MAX.saturating_add(1)
    } else {
        limit.saturating_add(1)
    }
}

/// The page of a search from the entries the directory gave (`cut`: its size limit was hit),
/// already checked against the criterion: the detail's filters and position applied, in its
/// order, at most `limit`. A walk that needed every match and did not get them all is an error.
pub fn detail_page<F: Field>(
    found: Vec<F::Record>,
    cut: bool,
    detail: &Detail<F>,
    case: CaseRule,
    limit: usize,
) -> Result<Page<F::Record>, SourceError> {
    let complete = detail.paged || !detail.order.is_by_key();
    if complete && cut {
        return Err(SourceError::Failed(format!(
            "a page or an order_by reads at most {ORDER_SCAN_MAX} matches of a directory; narrow the search with filters"
        )));
    }
    let kept: Vec<F::Record> = found
        .into_iter()
        .filter(|r| detail.keeps(r, case))
        .collect();
    let mut page = detail.page_of(kept, limit);
    page.truncated |= cut;
    Ok(page)
}

/// The grammar as a filter over `attrs`: a positive term matches in any attribute, a negated one
/// in none.
pub fn expr(e: &Expr, attrs: &[&str], prefix: &Pattern, suffix: &Pattern) -> String {
    match e {
        Expr::And(items) => format!(
            "(&{})",
            items
                .iter()
                .map(|i| expr(i, attrs, prefix, suffix))
                .collect::<String>()
        ),
        Expr::Or(items) => format!(
            "(|{})",
            items
                .iter()
                .map(|i| expr(i, attrs, prefix, suffix))
                .collect::<String>()
        ),
        Expr::Term {
            pattern: p,
            negated,
        } => {
            let full = p.with_affixes(prefix, suffix);
            let any = format!(
                "(|{})",
                attrs.iter().map(|a| pattern(a, &full)).collect::<String>()
            );
            if *negated {
                format!("(!{any})")
            } else {
                any
            }
        }
    }
}

/// Attribute values of an entry by lower-cased attribute name (servers may answer in any case).
pub fn values(entry: &SearchEntry) -> HashMap<String, &Vec<String>> {
    entry
        .attrs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// Fills the text fields and extras of a record from an entry: the first value of each mapped
/// attribute (binary values are ignored).
pub fn fill<F: Field>(
    record: &mut F::Record,
    map: &ResolvedMap<F>,
    vals: &HashMap<String, &Vec<String>>,
) {
    use crate::domain::Record;
    for (attr, name) in &map.columns {
        let Some(first) = vals.get(&name.to_ascii_lowercase()).and_then(|v| v.first()) else {
            continue;
        };
        match attr {
            Attr::Field(f) => f.set(record, first.clone()),
            Attr::Extra(x) => {
                record.extra_mut().insert(x.clone(), first.clone());
            }
        }
    }
}

/// The attributes to ask for.
pub fn requested<F: Field>(map: &ResolvedMap<F>) -> Vec<String> {
    map.columns.iter().map(|(_, a)| a.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::query::{parse, Grammar};

    #[test]
    fn values_are_escaped_and_wildcards_come_only_from_the_grammar() {
        assert_eq!(eq("uid", "a*b(c)\\d\0"), "(uid=a\\2ab\\28c\\29\\5cd\\00)");
        let star = Pattern::wildcards("*");
        let e = parse("jo*n+!x)y", Grammar::CustomerUser).unwrap();
        assert_eq!(
            expr(&e, &["uid", "sn"], &star, &star),
            "(&(|(uid=*jo*n*)(sn=*jo*n*))(!(|(uid=*x\\29y*)(sn=*x\\29y*))))"
        );
        assert_eq!(pattern("uid", &Pattern::wildcards("*")), "(uid=*)");
        assert_eq!(
            any_eq(&["mail"], &["a@b".into(), "c@d".into()]),
            "(|(mail=a@b)(mail=c@d))"
        );
    }
}
