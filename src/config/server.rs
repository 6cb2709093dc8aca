//! `[server]` and `[server.tls]`: listening addresses, TLS, deadlines, load shedding, log
//! format and the request limits (`max_request_bytes`, `max_query_chars`, `max_query_terms`),
//! with their checks.

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: String,
    pub metrics_listen: String,
    pub insecure: bool,
    /// Bound of the graceful drain on shutdown.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Used when a call carries no deadline of its own.
    #[serde(deserialize_with = "duration")]
    pub default_deadline: Duration,
    /// `[server.tls]`: serve TLS; with `client_ca_file`, client certificates are verified.
    pub tls: Option<TlsConfig>,
    /// Bound of one call on the server (the caller's shorter deadline wins).
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Calls served at once; more are refused with RESOURCE_EXHAUSTED (load shedding).
    pub concurrency_limit: usize,
    /// How often each source is probed for `grpc.health.v1` (`source/<name>`).
    #[serde(deserialize_with = "duration")]
    pub health_probe_interval: Duration,
    /// `human` or `json`.
    pub log_format: String,
    /// The largest request message any service decodes (default 4 MiB, so a field-level limit
    /// such as the 1,024-byte password or `max_query_chars` still answers a 1 MiB value with
    /// INVALID_ARGUMENT naming the field); larger requests are refused by tonic's codec before a
    /// handler runs (tonic 0.14 answers OUT_OF_RANGE).
    pub max_request_bytes: usize,
    /// The longest search query, in characters (default 1,000); longer queries are
    /// INVALID_ARGUMENT naming `query`, before any source sees them.
    pub max_query_chars: usize,
    /// The most search terms in one query (default 32); more are INVALID_ARGUMENT naming `query`.
    pub max_query_terms: usize,
    /// The admin console's address (HTML over HTTP, see `console`); `""` turns it off. Like
    /// the API, a non-loopback address needs `[[callers]]` (or `insecure = true`).
    pub console_listen: String,
    /// The page size of a console sub-list — a customer's customer users, a group's members
    /// (default 1,000, as OTRS's "only the first 1000 customer users are listed"); a full
    /// page links to the next. The search lists page 50 at a time.
    pub console_list_limit: usize,
}

/// `[server.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: String,
    pub key_file: String,
    /// CA of client certificates (optional for callers with tokens).
    #[serde(default)]
    pub client_ca_file: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            metrics_listen: "127.0.0.1:9464".into(),
            insecure: false,
            shutdown_grace: Duration::from_secs(10),
            default_deadline: Duration::from_secs(30),
            tls: None,
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 256,
            health_probe_interval: Duration::from_secs(10),
            log_format: "human".into(),
            max_request_bytes: 4 * 1024 * 1024,
            max_query_chars: 1000,
            max_query_terms: 32,
            console_listen: "127.0.0.1:8080".into(),
            console_list_limit: 1000,
        }
    }
}

/// Checks `[server]`: addresses, log format, concurrency limit, request limits (at least 1) and
/// that the TLS files exist.
pub(super) fn check_server(s: &ServerConfig, problems: &mut Vec<String>) {
    if s.listen.parse::<std::net::SocketAddr>().is_err() {
        problems.push(format!(
            "server.listen: {:?} is not an address:port",
            s.listen
        ));
    }
    if !s.console_listen.is_empty() && s.console_listen.parse::<std::net::SocketAddr>().is_err() {
        problems.push(format!(
            "server.console_listen: {:?} is not an address:port (or \"\" for off)",
            s.console_listen
        ));
    }
    if !matches!(s.log_format.as_str(), "human" | "json") {
        problems.push(format!(
            "server.log_format: {:?} is not \"human\" or \"json\"",
            s.log_format
        ));
    }
    if s.concurrency_limit == 0 {
        problems.push("server.concurrency_limit: must be at least 1".into());
    }
    for (key, value) in [
        ("max_request_bytes", s.max_request_bytes),
        ("max_query_chars", s.max_query_chars),
        ("max_query_terms", s.max_query_terms),
        ("console_list_limit", s.console_list_limit),
    ] {
        if value == 0 {
            problems.push(format!("server.{key}: must be at least 1"));
        }
    }
    if let Some(t) = &s.tls {
        for (k, f) in [
            ("cert_file", Some(&t.cert_file)),
            ("key_file", Some(&t.key_file)),
            ("client_ca_file", t.client_ca_file.as_ref()),
        ] {
            if let Some(f) = f {
                if let Err(e) = std::fs::metadata(f) {
                    problems.push(format!("server.tls.{k}: {f:?}: {e}"));
                }
            }
        }
    }
}
