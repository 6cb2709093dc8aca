//! Builds everything from the validated configuration (on the system clock, or on a given one
//! for tests) and runs the gRPC server until shutdown, keeping `source/<name>` health current
//! from the directory's probes.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::{server::TcpIncoming, Certificate, Identity, Server, ServerTlsConfig};

use crate::edge::EdgeLayer;
use tonic_health::{server::HealthReporter, ServingStatus};

use crate::api::{AuthApi, CustomerApi, CustomerUserApi, GroupApi, RateLimits};
use crate::clock::Clock;
use crate::config::Settings;
use crate::directory::Directory;
use crate::proto::{
    auth_service_server::AuthServiceServer, customer_service_server::CustomerServiceServer,
    customer_user_service_server::CustomerUserServiceServer,
    group_service_server::GroupServiceServer,
};
use crate::source::{factory, sql::Db};

/// The built service: the directory over every source, and the databases behind them.
pub struct App {
    pub settings: Settings,
    pub directory: Arc<Directory>,
    pub databases: Vec<(String, Arc<Db>)>,
}

/// Opens (lazily) every database and builds every source (see [`factory`]), on the system
/// clock. Fails only on configuration that cannot work at all (a malformed URL); an unreachable
/// database is reported later and retried.
pub fn build(settings: Settings) -> Result<App, String> {
    build_with_clock(settings, crate::clock::system())
}

/// [`build`] with every time-dependent rule (lock expiry, cache TTLs) on `clock`.
pub fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Result<App, String> {
    // A failing legacy-hash verification costs one argon2id computation with these parameters
    // from the first login on (see `auth::hash::verify`).
    crate::auth::hash::set_dummy_params(&settings.auth.argon2);
    let sources = factory::build(&settings, &clock)?;
    let user_limit = smallest_limit(settings.user_sources.iter().map(|s| s.settings.list_limit));
    let customer_limit = smallest_limit(
        settings
            .customer_sources
            .iter()
            .map(|s| s.settings.list_limit),
    );
    Ok(App {
        directory: Arc::new(
            Directory::new(
                sources.users,
                sources.customers,
                user_limit,
                customer_limit,
                sources.groups,
                settings.auth.clone(),
            )
            .with_clock(clock),
        ),
        databases: sources.databases,
        settings,
    })
}

/// The directory's bound for one list: the smallest `list_limit` of its sources (250 without).
fn smallest_limit(limits: impl Iterator<Item = u32>) -> usize {
    limits.min().map_or(250, |l| l as usize)
}

impl App {
    /// Connects to and migrates every database now; one line per database.
    pub async fn migrate(&self) -> Vec<(String, Result<(), String>)> {
        let mut out = Vec::new();
        for (_, db) in &self.databases {
            out.push((
                db.label().to_owned(),
                db.migrate_now().await.map_err(|e| e.to_string()),
            ));
        }
        out
    }

    /// Fills the SQL customer-user source `source` (and the first SQL customer source on the
    /// same database, if any) with the deterministic data set of [`crate::seed`]; every user
    /// gets `password` (hashed once, with the configured argon2id parameters).
    pub async fn seed(
        &self,
        source: &str,
        users: usize,
        customers: usize,
        password: &str,
        seed: u64,
    ) -> Result<String, String> {
        crate::source::sql::admin::seed(
            &self.settings,
            &self.databases,
            source,
            users,
            customers,
            password,
            seed,
        )
        .await
    }

    /// Adds the search and lookup indexes to every SQL customer-user table, also to tables
    /// Clientele does not own (`migrate = false`), and nothing else.
    pub async fn add_indexes(&self) -> Vec<(String, Result<(), String>)> {
        crate::source::sql::admin::add_indexes(&self.settings, &self.databases).await
    }

    /// Asks every source for a trivial answer (at most 15 s each); one line per source with
    /// its state.
    pub async fn check_sources(&self) -> Vec<(String, Result<(), String>)> {
        self.directory
            .probe(Some(Duration::from_secs(15)))
            .await
            .into_iter()
            .map(|p| {
                let line = match p.section {
                    "groups" => p.section.to_owned(),
                    section => format!("{section} {:?}", p.name),
                };
                (line, p.result)
            })
            .collect()
    }

    /// Serves on `listener` (and metrics on `server.metrics_listen`) until `shutdown`
    /// completes, then stops accepting, drains in-flight calls for at most
    /// `server.shutdown_grace` and closes the database pools.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let metrics = match self.settings.server.metrics_listen.as_str() {
            "" => None,
            addr => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("server.metrics_listen {addr}: {e}"))?,
            ),
        };
        let console = match crate::console::check_exposure(&self.settings)? {
            None => None,
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("server.console_listen {addr}: {e}"))?,
            ),
        };
        self.serve_full(listener, metrics, console, shutdown).await
    }

    /// [`App::serve`] with the metrics listener given (`None`: no metrics endpoint) and no
    /// console.
    pub async fn serve_with(
        self,
        listener: TcpListener,
        metrics_listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        self.serve_full(listener, metrics_listener, None, shutdown)
            .await
    }

    /// [`App::serve`] with the metrics and console listeners given (`None`: off). The
    /// console stops with the server.
    pub async fn serve_full(
        self,
        listener: TcpListener,
        metrics_listener: Option<TcpListener>,
        console_listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let console = console_listener.map(|l| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "admin console on http://{addr}/");
            }
            let c = crate::console::Console::new(self.directory.clone(), &self.settings);
            tokio::spawn(crate::console::serve(c, l, std::future::pending()))
        });
        let server_cfg = self.settings.server.clone();
        // The in-memory search indexes build in the background; searches use the database
        // until each is built.
        for s in self.directory.user_sources() {
            s.start_index();
        }
        for s in self.directory.customer_sources() {
            s.start_index();
        }
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        let probe = tokio::spawn(probe_sources(
            self.directory.clone(),
            reporter.clone(),
            server_cfg.health_probe_interval,
            self.databases.clone(),
        ));
        let metrics = metrics_listener.map(|l| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "metrics on /metrics");
            }
            tokio::spawn(crate::telemetry::serve_metrics(l))
        });
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| format!("reflection: {e}"))?;
        let deadline = server_cfg.default_deadline;
        // `[server]` request limits: every service decodes at most `max_request_bytes` (tonic
        // refuses larger messages, with OUT_OF_RANGE); search queries are bounded where they
        // are parsed.
        let max_request = server_cfg.max_request_bytes;
        let query_limits = crate::domain::query::QueryLimits {
            max_chars: server_cfg.max_query_chars,
            max_terms: server_cfg.max_query_terms,
        };
        let grace = server_cfg.shutdown_grace;
        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let reporter_for_stop = reporter.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
            reporter_for_stop
                .set_service_status("", ServingStatus::NotServing)
                .await;
            let _ = drain_tx.send(());
        };
        let mut builder = Server::builder()
            // Each call is bounded by this or by the caller's grpc-timeout, whichever is
            // shorter (DEADLINE_EXCEEDED / CANCELLED, never a hang).
            .timeout(server_cfg.request_timeout)
            // Load shedding: beyond the concurrency limit, calls are refused at once with
            // RESOURCE_EXHAUSTED instead of queueing.
            .load_shed(true);
        if let Some(tls) = &server_cfg.tls {
            builder = builder
                .tls_config(tls_config(tls)?)
                .map_err(|e| format!("server.tls: {e}"))?;
        }
        let server = builder
            // Global concurrency limit across connections (shed by the layer above when full).
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                server_cfg.concurrency_limit,
            ))
            // Request id, span, access control, metrics (see `edge`).
            .layer(EdgeLayer::new(self.settings.access.clone()))
            .add_service(health.max_decoding_message_size(max_request))
            .add_service(reflection.max_decoding_message_size(max_request))
            .add_service(
                CustomerUserServiceServer::new(
                    CustomerUserApi::new(self.directory.clone(), deadline)
                        .with_query_limits(query_limits),
                )
                .max_decoding_message_size(max_request),
            )
            .add_service(
                CustomerServiceServer::new(
                    CustomerApi::new(self.directory.clone(), deadline)
                        .with_query_limits(query_limits),
                )
                .max_decoding_message_size(max_request),
            )
            .add_service(
                GroupServiceServer::new(GroupApi::new(self.directory.clone(), deadline))
                    .max_decoding_message_size(max_request),
            )
            .add_service(
                AuthServiceServer::new(AuthApi::new(
                    self.directory.clone(),
                    deadline,
                    RateLimits::new(self.settings.auth.rate_limit),
                ))
                .max_decoding_message_size(max_request),
            )
            // TCP_NODELAY: small gRPC frames must not wait for delayed ACKs (40 ms stalls).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                signal,
            );
        tokio::pin!(server);
        let result = tokio::select! {
            r = &mut server => r.map_err(|e| e.to_string()),
            () = async {
                let _ = drain_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "in-flight calls did not finish within the grace period");
                Ok(())
            }
        };
        probe.abort();
        if let Some(m) = metrics {
            m.abort();
        }
        if let Some(c) = console {
            c.abort();
        }
        for (_, db) in &self.databases {
            db.pool().close().await;
            if let Some(pg) = db.pg_pool() {
                pg.close().await;
            }
        }
        result
    }
}

/// Server TLS from PEM files; with a client CA, client certificates are verified when presented
/// (optional, so token callers need none).
fn tls_config(tls: &crate::config::TlsConfig) -> Result<ServerTlsConfig, String> {
    let read = |f: &str| std::fs::read(f).map_err(|e| format!("server.tls: {f}: {e}"));
    let mut cfg = ServerTlsConfig::new().identity(Identity::from_pem(
        read(&tls.cert_file)?,
        read(&tls.key_file)?,
    ));
    if let Some(ca) = &tls.client_ca_file {
        cfg = cfg
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(true);
    }
    Ok(cfg)
}

/// Keeps `source/<name>` health current and logs changes (first probe at start-up: a source
/// that is down is reported, and retried every probe until it serves); records pool usage and,
/// per source, its circuit: `clientele_source_state` (1 open, 0 closed) and
/// `clientele_source_open_seconds` (time spent open), sampled every probe. Each probe
/// gives an open source its trial, so a healed source serves again within one interval.
async fn probe_sources(
    dir: Arc<Directory>,
    reporter: HealthReporter,
    every: Duration,
    databases: Vec<(String, Arc<Db>)>,
) {
    let mut last: std::collections::HashMap<String, bool> = Default::default();
    loop {
        // A customer-user and a customer source may share a name: `source/<name>` serves only
        // when every source of that name answers.
        let mut results: std::collections::BTreeMap<String, Result<(), String>> =
            Default::default();
        for p in dir.probe(None).await {
            let slot = results.entry(p.name).or_insert(Ok(()));
            if slot.is_ok() {
                *slot = p.result;
            }
        }
        for (name, r) in results {
            let ok = r.is_ok();
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter
                .set_service_status(format!("source/{name}"), status)
                .await;
            if last.insert(name.clone(), ok) != Some(ok) {
                match r {
                    Ok(()) => tracing::info!(source = %name, "source serving"),
                    Err(e) => {
                        tracing::warn!(source = %name, error = %e, "source unavailable; retrying")
                    }
                }
            }
        }
        for (name, snap) in dir.breakers() {
            metrics::gauge!("clientele_source_state", "source" => name.clone())
                .set(if snap.is_open() { 1.0 } else { 0.0 });
            metrics::gauge!("clientele_source_open_seconds", "source" => name)
                .set(snap.open_for.as_secs_f64());
        }
        for (_, db) in &databases {
            let pool = db.pool();
            let label = db.label().to_owned();
            metrics::gauge!("clientele_pool_connections", "database" => label.clone(), "state" => "open")
                .set(f64::from(pool.size()));
            metrics::gauge!("clientele_pool_connections", "database" => label, "state" => "idle")
                .set(pool.num_idle() as f64);
        }
        tokio::time::sleep(every).await;
    }
}

/// Refuses a non-loopback address when no caller is configured, unless `server.insecure`;
/// warns loudly whenever calls are not authenticated.
pub fn check_exposure(settings: &Settings, addr: SocketAddr) -> Result<(), String> {
    if !settings.access.callers.is_empty() {
        return Ok(());
    }
    if !addr.ip().is_loopback() && !settings.server.insecure {
        return Err(format!(
            "refusing to serve {addr} without [[callers]]: configure callers, listen on loopback, or set server.insecure = true"
        ));
    }
    if addr.ip().is_loopback() {
        tracing::warn!(%addr, "no [[callers]] configured: serving WITHOUT caller authentication (loopback only)");
    } else {
        tracing::warn!(%addr, "no [[callers]] configured: serving WITHOUT caller authentication on a non-loopback address (server.insecure = true)");
    }
    Ok(())
}

/// Binds the configured address after [`check_exposure`].
pub async fn bind(settings: &Settings) -> Result<TcpListener, String> {
    let addr: SocketAddr = settings
        .server
        .listen
        .parse()
        .map_err(|e| format!("server.listen: {e}"))?;
    check_exposure(settings, addr)?;
    crate::console::check_exposure(settings)?;
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}
