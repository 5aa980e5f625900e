//! Prometheus metrics (`/metrics`) and the health endpoints (`/healthz`, `/readyz`).
//!
//! Counters: reconciles by result, errors by `controller::Error::metric_label`, objects applied
//! and deleted by kind, status writes, watch errors by kind (a watch retries by itself; a
//! rising count names the kind it cannot list or watch); a reconcile duration histogram measured with a drop guard so early
//! returns are counted too. `/readyz` is ready as soon as `run` serves (it sets the flag right
//! after binding, before leader election and before any store syncs), on the leader and on a
//! standby alike: a standby that never became ready would stall rollouts and, under the
//! PodDisruptionBudget, block node drains. `photo_operator_leader` says which replica leads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub applied: Family<KindLabels, Counter>,
    pub deleted: Family<KindLabels, Counter>,
    pub status_writes: Counter,
    pub watch_errors: Family<KindLabels, Counter>,
    pub duration: Histogram,
    pub leader: Gauge,
    pub running: Gauge,
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("photo_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let applied = Family::<KindLabels, Counter>::default();
        let deleted = Family::<KindLabels, Counter>::default();
        let status_writes = Counter::default();
        let watch_errors = Family::<KindLabels, Counter>::default();
        let duration = Histogram::new([
            0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let leader = Gauge::default();
        let running = Gauge::default();
        registry.register(
            "reconciles",
            "PhotoSite reconciles by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by reason",
            errors.clone(),
        );
        registry.register(
            "objects_applied",
            "Server-side applies by kind",
            applied.clone(),
        );
        registry.register(
            "objects_deleted",
            "Children deleted by kind",
            deleted.clone(),
        );
        registry.register(
            "status_writes",
            "PhotoSite status patches (only when the status changed)",
            status_writes.clone(),
        );
        registry.register(
            "watch_errors",
            "Errors of the watches by kind (each watch retries with backoff)",
            watch_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile including API calls",
            duration.clone(),
        );
        registry.register(
            "reconciles_running",
            "Reconciles in progress",
            running.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            applied,
            deleted,
            status_writes,
            watch_errors,
            duration,
            leader,
            running,
            ready: AtomicBool::new(false),
        }
    }

    /// Start timing a reconcile (and count it running); the duration is recorded when the
    /// guard drops.
    pub fn timer(&self) -> ReconcileTimer<'_> {
        self.running.inc();
        ReconcileTimer {
            running: &self.running,
            start: Instant::now(),
            histogram: &self.duration,
        }
    }

    pub fn count_result(&self, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    pub fn count_watch_error(&self, kind: &str) {
        self.watch_errors
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// Count a reconcile error by its label (`controller::Error::metric_label`).
    pub fn count_error(&self, label: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: label.into(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    start: Instant,
    histogram: &'a Histogram,
    running: &'a Gauge,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
        self.running.dec();
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// The HTTP router for `/metrics`, `/healthz`, `/readyz`.
pub fn router(m: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters() {
        let m = Metrics::new();
        m.count_result("ok");
        m.count_error("invalid_spec");
        drop(m.timer());
        let text = m.encode();
        assert!(text.contains("photo_operator_reconciles_total{result=\"ok\"} 1"));
        assert!(text.contains("photo_operator_reconcile_errors_total{reason=\"invalid_spec\"} 1"));
        assert!(text.contains("photo_operator_reconcile_duration_seconds_count 1"));
        assert!(text.contains("photo_operator_reconciles_running 0"));
        let running = m.timer();
        assert!(m.encode().contains("photo_operator_reconciles_running 1"));
        drop(running);
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_health_readiness_and_metrics() {
        let m = Arc::new(Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router(m.clone())).await });
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(
            metrics.contains("photo_operator_reconcile_duration_seconds"),
            "{metrics}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() {
        let m = Arc::new(Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = m.clone();
        let server = tokio::spawn(async move { axum::serve(listener, router(served)).await });
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        m.ready.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        server.abort();
    }
}
