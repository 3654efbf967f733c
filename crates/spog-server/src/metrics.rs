//! Prometheus metrics, kept per server rather than in a global registry so that tests
//! running several servers in one process each see their own.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route pattern, not the concrete path, to keep the label set small.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub stream_id: String,
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamBatchLabels {
    pub stream_id: String,
    pub sink: String,
    /// `success` or `failure`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamIdLabels {
    pub stream_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
}

/// Audit streams (SPEC 3.5 "Status").
pub struct StreamMetrics {
    pub entries: Family<StreamLabels, Counter>,
    pub batches: Family<StreamBatchLabels, Counter>,
    pub bytes: Family<StreamLabels, Counter>,
    pub lag_entries: Family<StreamIdLabels, Gauge>,
    pub lag_seconds: Family<StreamIdLabels, Gauge<f64, AtomicU64>>,
    pub batch_seconds: Family<SinkLabels, Histogram>,
}

impl StreamMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            entries: Family::default(),
            batches: Family::default(),
            bytes: Family::default(),
            lag_entries: Family::default(),
            lag_seconds: Family::default(),
            batch_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
        };
        registry.register(
            "audit_stream_entries",
            "Audit entries a stream's sink confirmed",
            metrics.entries.clone(),
        );
        registry.register(
            "audit_stream_batches",
            "Audit stream batch attempts, by outcome",
            metrics.batches.clone(),
        );
        registry.register(
            "audit_stream_bytes",
            "Bytes of audit stream batches a sink confirmed",
            metrics.bytes.clone(),
        );
        registry.register(
            "audit_stream_lag_entries",
            "Entries linked but not yet delivered by a stream",
            metrics.lag_entries.clone(),
        );
        registry.register(
            "audit_stream_lag_seconds",
            "Age by recording time of a stream's oldest undelivered entry",
            metrics.lag_seconds.clone(),
        );
        registry.register(
            "audit_stream_batch_duration_seconds",
            "Time one audit stream batch attempt took",
            metrics.batch_seconds.clone(),
        );
        metrics
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RequestLabels, Histogram>,
    pub audit_entries_linked: Counter,
    pub websocket_connections: Gauge,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub delivery_queue_depth: Gauge,
    pub delivery_attempt_seconds: Histogram,
    pub streams: StreamMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let audit_entries_linked = Counter::default();
        let websocket_connections = Gauge::default();
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        let delivery_queue_depth = Gauge::default();
        let delivery_attempt_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let mut registry = Registry::with_prefix("spog");
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            request_seconds.clone(),
        );
        registry.register(
            "audit_entries_linked",
            "Audit entries appended to their account's chain",
            audit_entries_linked.clone(),
        );
        registry.register(
            "websocket_connections",
            "Open WebSocket connections",
            websocket_connections.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts by the state they left the delivery in (succeeded, retrying, failed) or abandoned",
            deliveries.clone(),
        );
        registry.register(
            "delivery_queue_depth",
            "Deliveries waiting for an attempt",
            delivery_queue_depth.clone(),
        );
        registry.register(
            "delivery_attempt_duration_seconds",
            "Time one delivery attempt took",
            delivery_attempt_seconds.clone(),
        );
        let streams = StreamMetrics::register(&mut registry);
        Self {
            streams,
            registry: Mutex::new(registry),
            requests,
            request_seconds,
            audit_entries_linked,
            websocket_connections,
            deliveries,
            delivery_queue_depth,
            delivery_attempt_seconds,
        }
    }

    pub fn observe_request(&self, labels: RequestLabels, elapsed: Duration) {
        self.request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry.lock()).expect("writing to a String");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
