//! Prometheus metrics: the golden signals of the HTTP server plus the cache,
//! the renderer and uploads. Served at `/metrics` in the text format.

use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Bytes of response bodies sent with `sendfile` since start
/// (`photo_http_sendfile_bytes_total`): one count for the process, kept by
/// `server::sendfile`, which has no `Metrics` at hand.
pub static SENT_FROM_FILES: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Route templates and methods are a small fixed set (see
/// `http::observe`), so they are static strings: no allocation per request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SizeLabels {
    pub size: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

/// Cheap to clone: every metric is a handle on shared atomics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub cache_evictions: Counter,
    pub cache_write_errors: Counter,
    pub cache_bytes: Gauge,
    pub render_duration: Family<SizeLabels, Histogram>,
    pub renders_in_flight: Gauge,
    pub renders_queued: Gauge,
    pub renders_rejected: Counter,
    pub renders_cancelled: Counter,
    pub render_memory_reserved: Gauge,
    pub render_memory_waits: Counter,
    pub uploads: Family<OutcomeLabels, Counter>,
    pub upload_bytes: Counter,
    pub logins: Family<OutcomeLabels, Counter>,
    pub http_connections: Gauge,
    pub http_connections_refused: Counter,
    pub renders_failed: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

fn render_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4])
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("photo");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_evictions: Counter::default(),
            cache_write_errors: Counter::default(),
            cache_bytes: Gauge::default(),
            render_duration: Family::new_with_constructor(render_histogram),
            renders_in_flight: Gauge::default(),
            renders_queued: Gauge::default(),
            renders_rejected: Counter::default(),
            renders_cancelled: Counter::default(),
            render_memory_reserved: Gauge::default(),
            render_memory_waits: Counter::default(),
            uploads: Family::default(),
            upload_bytes: Counter::default(),
            logins: Family::default(),
            http_connections: Gauge::default(),
            http_connections_refused: Counter::default(),
            renders_failed: Counter::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            m.http_duration.clone(),
        );
        registry.register(
            "http_sendfile_bytes",
            "Bytes of response bodies sent from files with sendfile (large cached renditions)",
            SENT_FROM_FILES.clone(),
        );
        registry.register(
            "cache_hits",
            "Renditions served from the cache",
            m.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Renditions not in the cache",
            m.cache_misses.clone(),
        );
        registry.register(
            "cache_evictions",
            "Renditions evicted to stay under the cache cap",
            m.cache_evictions.clone(),
        );
        registry.register(
            "cache_write_errors",
            "Failed writes to the cache directory",
            m.cache_write_errors.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes of renditions on disk",
            m.cache_bytes.clone(),
        );
        registry.register(
            "render_duration_seconds",
            "Time to render a rendition, by size",
            m.render_duration.clone(),
        );
        registry.register(
            "renders_in_flight",
            "Renders running on the render pool",
            m.renders_in_flight.clone(),
        );
        registry.register(
            "renders_queued",
            "Renders planned and waiting for a render thread or for memory",
            m.renders_queued.clone(),
        );
        registry.register(
            "renders_rejected",
            "Renders refused with 503 because the queue was full",
            m.renders_rejected.clone(),
        );
        registry.register(
            "renders_cancelled",
            "Queued renders dropped before they started: every request for them had gone away",
            m.renders_cancelled.clone(),
        );
        registry.register(
            "render_memory_reserved_bytes",
            "Memory planned by running renders, out of PHOTO_RENDER_MEMORY_BYTES",
            m.render_memory_reserved.clone(),
        );
        registry.register(
            "render_memory_waits",
            "Renders passed over at least once because their memory did not fit beside the running ones",
            m.render_memory_waits.clone(),
        );
        registry.register("uploads", "Uploaded files by outcome", m.uploads.clone());
        registry.register(
            "upload_bytes",
            "Bytes of originals stored",
            m.upload_bytes.clone(),
        );
        registry.register("logins", "Login attempts by outcome", m.logins.clone());
        registry.register(
            "render_failures",
            "Renders that failed (then remembered for a while, not retried)",
            m.renders_failed.clone(),
        );
        registry.register(
            "http_connections",
            "Connections open on the public listener",
            m.http_connections.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections closed when accepted: their client held its share of the cap",
            m.http_connections_refused.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..m
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One finished request (`http::observe` calls this for every request).
    pub fn record_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        self.http_duration
            .get_or_create(&RouteLabels { route, method })
            .observe(elapsed.as_secs_f64());
        self.http_requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    pub fn upload(&self, outcome: &str) {
        self.uploads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
