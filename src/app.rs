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
use crate::config::{Settings, SourceKind};
use crate::directory::{Bounded, Directory, Groups};
use crate::domain::group::Policy;
use crate::proto::{
    auth_service_server::AuthServiceServer, customer_service_server::CustomerServiceServer,
    customer_user_service_server::CustomerUserServiceServer,
    group_service_server::GroupServiceServer,
};
use crate::source::{
    ldap::{customer::LdapCustomerSource, user::LdapUserSource},
    sql::{
        customer::SqlCustomerSource,
        groups::SqlGroupStore,
        user::{index_statements_for, SqlUserSource},
        Db, DbRegistry, Dialect, SourceTable, TableKind,
    },
    CustomerSourceBundle, UserSourceBundle,
};

/// The built service: the directory over every source, and the databases behind them.
pub struct App {
    pub settings: Settings,
    pub directory: Arc<Directory>,
    pub databases: Vec<(String, Arc<Db>)>,
}

/// Opens (lazily) every database and builds every source, on the system clock. Fails only on
/// configuration that cannot work at all (a malformed URL); an unreachable database is reported
/// later and retried.
pub fn build(settings: Settings) -> Result<App, String> {
    build_with_clock(settings, crate::clock::system())
}

/// [`build`] with every time-dependent rule (lock expiry, cache TTLs) on `clock`.
pub fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Result<App, String> {
    let mut registry = DbRegistry::default();
    for s in &settings.user_sources {
        if s.settings.kind == SourceKind::Ldap {
            // Only the SQL store of preferences and memberships.
            registry.want(&s.store_url, |spec| {
                spec.pool_size = spec.pool_size.max(2);
                spec.connect_timeout = spec.connect_timeout.max(s.settings.connect_timeout);
                spec.migrate = true;
            });
            continue;
        }
        registry.want(&s.url, |spec| {
            spec.pool_size = spec.pool_size.max(s.settings.pool_size);
            spec.connect_timeout = spec.connect_timeout.max(s.settings.connect_timeout);
            if s.settings.migrate {
                spec.migrate = true;
                spec.tables.push(SourceTable {
                    kind: TableKind::CustomerUser,
                    name: s.table.clone(),
                });
                spec.lock_names.push(s.table.clone());
                if let Some(d) = Dialect::of_url(&s.url) {
                    spec.indexes.extend(index_statements_for(s, d));
                }
            }
        });
    }
    for s in settings
        .customer_sources
        .iter()
        .filter(|s| s.settings.kind == SourceKind::Sql)
    {
        registry.want(&s.url, |spec| {
            spec.pool_size = spec.pool_size.max(s.settings.pool_size);
            spec.connect_timeout = spec.connect_timeout.max(s.settings.connect_timeout);
            if s.settings.migrate {
                spec.migrate = true;
                spec.tables.push(SourceTable {
                    kind: TableKind::CustomerCompany,
                    name: s.table.clone(),
                });
                spec.lock_names.push(s.table.clone());
            }
        });
    }
    if let Some(g) = &settings.groups {
        registry.want(&g.url, |spec| {
            spec.pool_size = spec.pool_size.max(4);
            spec.connect_timeout = spec.connect_timeout.max(Duration::from_secs(5));
            if g.migrate {
                spec.migrate = true;
                spec.tables.push(SourceTable {
                    kind: TableKind::Groups,
                    name: g.table.clone(),
                });
                spec.lock_names.push(g.table.clone());
            }
        });
    }
    let dbs = registry.open()?;
    let db = |url: &str| {
        dbs.get(url)
            .cloned()
            .ok_or_else(|| format!("no database for {url}"))
    };
    let mut sql_users = Vec::new();
    let mut users: Vec<Bounded<UserSourceBundle>> = Vec::new();
    for s in &settings.user_sources {
        let source = match s.settings.kind {
            SourceKind::Sql => {
                let sql = Arc::new(SqlUserSource::new(s.clone(), db(&s.url)?));
                sql_users.push((s.url.clone(), sql.clone()));
                sql.into_bundle()
            }
            SourceKind::Ldap => Arc::new(
                LdapUserSource::new(s.clone(), db(&s.store_url)?)
                    .map_err(|e| format!("customer-user source {:?}: {e}", s.settings.name))?,
            )
            .into_bundle(),
        };
        let source = match s.settings.cache_ttl {
            Some(ttl) => source.with_cache(ttl, s.settings.cache_size, clock.clone()),
            None => source,
        };
        users.push(Bounded {
            source,
            timeout: s.settings.timeout,
        });
    }
    let mut customers: Vec<Bounded<CustomerSourceBundle>> = Vec::new();
    for s in &settings.customer_sources {
        let source = match s.settings.kind {
            SourceKind::Sql => {
                let colocated = sql_users
                    .iter()
                    .filter(|(url, u)| url == &s.url && u.writable())
                    .filter_map(|(_, u)| u.customer_id_ref())
                    .collect();
                Arc::new(SqlCustomerSource::new(s.clone(), db(&s.url)?, colocated)).into_bundle()
            }
            SourceKind::Ldap => Arc::new(
                LdapCustomerSource::new(s.clone())
                    .map_err(|e| format!("customer source {:?}: {e}", s.settings.name))?,
            )
            .into_bundle(),
        };
        customers.push(Bounded {
            source,
            timeout: s.settings.timeout,
        });
    }
    let user_limit = settings
        .user_sources
        .iter()
        .map(|s| s.settings.list_limit as usize)
        .min()
        .unwrap_or(250);
    let customer_limit = settings
        .customer_sources
        .iter()
        .map(|s| s.settings.list_limit as usize)
        .min()
        .unwrap_or(250);
    let groups = match &settings.groups {
        Some(g) => Some(Groups {
            store: Arc::new(SqlGroupStore::new(db(&g.url)?, &g.table)),
            policy: Policy {
                customer_group_support: g.customer_group_support,
                always_groups: g.always_groups.clone(),
                customer_always_groups: g.customer_always_groups.clone(),
                keys: g.permissions.clone(),
            },
        }),
        None => None,
    };
    let mut databases: Vec<(String, Arc<Db>)> = dbs.into_iter().collect();
    databases.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(App {
        directory: Arc::new(
            Directory::new(
                users,
                customers,
                user_limit,
                customer_limit,
                groups,
                settings.auth.clone(),
            )
            .with_clock(clock),
        ),
        databases,
        settings,
    })
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
        let cfg = self
            .settings
            .user_sources
            .iter()
            .find(|s| s.settings.name == source && s.settings.kind == SourceKind::Sql)
            .ok_or_else(|| format!("no SQL customer-user source is named {source:?}"))?;
        let db = self
            .databases
            .iter()
            .find(|(url, _)| url == &cfg.url)
            .map(|(_, db)| db.clone())
            .ok_or("source database not open")?;
        let started = std::time::Instant::now();
        let target = SqlUserSource::new(cfg.clone(), db.clone());
        let hash = crate::auth::hash_password(password.to_owned(), self.settings.auth.argon2)
            .await
            .map_err(|e| e.to_string())?;
        let mut made_customers = 0;
        if let Some(c) = self
            .settings
            .customer_sources
            .iter()
            .find(|c| c.settings.kind == SourceKind::Sql && c.url == cfg.url)
        {
            made_customers = SqlCustomerSource::new(c.clone(), db.clone(), Vec::new())
                .bulk_insert(&crate::seed::customers(customers, seed))
                .await
                .map_err(|e| e.to_string())?;
        }
        let made = target
            .bulk_insert(
                &crate::seed::customer_users(users, customers, seed),
                Some(&hash),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "seeded {made} customer users and {made_customers} customers into {source:?} in {:.1} s",
            started.elapsed().as_secs_f64()
        ))
    }

    /// Adds the search and lookup indexes to every SQL customer-user table, also to tables
    /// Clientele does not own (`migrate = false`), and nothing else.
    pub async fn add_indexes(&self) -> Vec<(String, Result<(), String>)> {
        let mut out = Vec::new();
        for s in self
            .settings
            .user_sources
            .iter()
            .filter(|s| s.settings.kind == SourceKind::Sql)
        {
            let Some((_, db)) = self.databases.iter().find(|(url, _)| url == &s.url) else {
                continue;
            };
            let statements = index_statements_for(s, db.dialect());
            let r = db
                .apply_indexes(&statements)
                .await
                .map_err(|e| e.to_string());
            out.push((
                format!(
                    "customer_user_sources {:?} ({} indexes)",
                    s.settings.name,
                    statements.len()
                ),
                r,
            ));
        }
        out
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
        self.serve_with(listener, metrics, shutdown).await
    }

    /// [`App::serve`] with the metrics listener given (`None`: no metrics endpoint).
    pub async fn serve_with(
        self,
        listener: TcpListener,
        metrics_listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let server_cfg = self.settings.server.clone();
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
            .add_service(health)
            .add_service(reflection)
            .add_service(CustomerUserServiceServer::new(CustomerUserApi::new(
                self.directory.clone(),
                deadline,
            )))
            .add_service(CustomerServiceServer::new(CustomerApi::new(
                self.directory.clone(),
                deadline,
            )))
            .add_service(GroupServiceServer::new(GroupApi::new(
                self.directory.clone(),
                deadline,
            )))
            .add_service(AuthServiceServer::new(AuthApi::new(
                self.directory.clone(),
                deadline,
                RateLimits::new(self.settings.auth.rate_limit),
            )))
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
/// that is down is reported, and retried every probe until it serves); records pool usage.
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
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}
