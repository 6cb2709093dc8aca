//! The edge of every call, as one tower layer in front of the gRPC router (after tonic's own
//! timeout, concurrency and load-shedding layers, see `app::serve`). In order, per request:
//! 1. a request id: the caller's `x-request-id`, or a new one; returned in the response headers;
//! 2. a `tracing` span `rpc` with method, request id and caller, continuing the caller's W3C trace
//!    context (`traceparent`) when OpenTelemetry export is on;
//! 3. access control (`access`): UNAUTHENTICATED / PERMISSION_DENIED before any handler runs;
//! 4. `cache-control: no-cache` bypasses the per-replica caches for this call;
//! 5. metrics: `clientele_rpc_requests_total` and `clientele_rpc_duration_seconds` by method
//!    and gRPC code.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Request, Response};
use tonic::{body::Body, transport::server::TcpConnectInfo};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::access::{certificate_names, Access};

const REQUEST_ID: &str = "x-request-id";

/// See the module documentation.
#[derive(Clone)]
pub struct EdgeLayer {
    access: Arc<Access>,
}

impl EdgeLayer {
    pub fn new(access: Access) -> Self {
        Self {
            access: Arc::new(access),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            access: self.access.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    access: Arc<Access>,
}

/// Reads W3C trace context from request headers.
struct Headers<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

fn peer_cert_names<B>(req: &Request<B>) -> Vec<String> {
    req.extensions()
        .get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs())
        .map(|certs| certs.iter().flat_map(|c| certificate_names(c)).collect())
        .unwrap_or_default()
}

/// The gRPC code of a response: trailers-only (errors) carry it in the headers; a response
/// whose status follows in trailers is counted as OK.
fn code_of(res: &Response<Body>) -> String {
    res.headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or_else(
            || "Ok".to_owned(),
            |c| format!("{:?}", tonic::Code::from_i32(c)),
        )
}

impl<S> Service<Request<Body>> for Edge<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = req.uri().path().to_owned();
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned);
        let decision = self
            .access
            .check(
                &path,
                req.headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok()),
                &peer_cert_names(&req),
            )
            .map_err(tonic::Status::from);
        let caller = match &decision {
            Ok(Some(c)) => c.0.clone(),
            _ => String::new(),
        };
        let span =
            tracing::info_span!("rpc", method = %path, request_id = %request_id, caller = %caller);
        let parent =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
        let _ = span.set_parent(parent);
        // `cache-control: no-cache` reads through the per-replica caches.
        let no_cache = req
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-cache"));
        if let Ok(Some(c)) = decision.as_ref() {
            req.extensions_mut().insert(c.clone());
        }
        Box::pin(
            async move {
                let started = Instant::now();
                let mut res = match decision {
                    Err(status) => {
                        tracing::warn!(code = ?status.code(), message = status.message(), "call refused");
                        status.into_http()
                    }
                    Ok(_) => crate::source::cached::bypass(no_cache, inner.call(req)).await?,
                };
                let code = code_of(&res);
                let elapsed = started.elapsed().as_secs_f64();
                metrics::counter!("clientele_rpc_requests_total", "method" => path.clone(), "code" => code.clone()).increment(1);
                metrics::histogram!("clientele_rpc_duration_seconds", "method" => path, "code" => code).record(elapsed);
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    res.headers_mut().insert(REQUEST_ID, v);
                }
                Ok(res)
            }
            .instrument(span),
        )
    }
}
