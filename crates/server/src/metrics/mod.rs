//! Prometheus metrics: one registry of families, owned here, encoded at
//! `GET /metrics` (on the main listener, or alone on `[metrics] addr`).
//!
//! Every label set is bounded: endpoints are the router's names
//! ([`crate::endpoint::Endpoint::route_label`], or `unknown`), never raw paths; methods are
//! the standard ones or `other`; statuses are classes. Values come from
//! where things happen (the body wrappers, the login and upload limits, the
//! store's [`Observer`]), except the storage totals, which a background task
//! reads from the metadata every `[metrics] storage_refresh_secs`.

mod body;
mod listener;

use std::sync::Arc;
use std::time::Duration;

use berth_store::{GcRun, Observer, StorageTotals};
use http::{Method, Response, StatusCode};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

pub use self::body::count_sent;
pub use self::listener::serve as serve_listener;
use crate::{full, Body};

/// The media type of what [`Metrics::encode`] writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where and how `/metrics` is served.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Collect and serve metrics; off, `/metrics` answers 404.
    pub enabled: bool,
    /// Served on a listener of its own (`[metrics] addr`): the main
    /// listener's `/metrics` answers 404.
    pub separate_listener: bool,
    /// On the main listener, serve `/metrics` without credentials.
    pub public: bool,
    /// How often the storage totals are read from the metadata.
    pub storage_refresh: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            separate_listener: false,
            public: false,
            storage_refresh: Duration::from_secs(60),
        }
    }
}

impl MetricsConfig {
    /// Whether the main listener answers `/metrics`.
    pub fn on_main_listener(&self) -> bool {
        self.enabled && !self.separate_listener
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    method: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: Throttle,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// Why a request was refused 429.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Throttle {
    /// Too many failed logins from the address or for the user.
    failed_logins,
    /// Too many logins being checked at once.
    login_checks,
    /// `server.max_concurrent_uploads` reached.
    uploads,
    /// The caller's `server.max_concurrent_uploads_per_client` reached.
    client_uploads,
    /// `server.max_manifest_bytes_in_flight` reached.
    manifest_bytes,
}

/// How a webhook delivery attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx: the delivery is done.
    Delivered,
    /// The attempt failed; another one is scheduled.
    Retried,
    /// The attempt failed and the retry period is over: the delivery is
    /// marked failed.
    Failed,
}

impl DeliveryOutcome {
    const ALL: [DeliveryOutcome; 3] = [
        DeliveryOutcome::Delivered,
        DeliveryOutcome::Retried,
        DeliveryOutcome::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retried => "retried",
            DeliveryOutcome::Failed => "failed",
        }
    }
}

/// The webhook families, for the code that delivers webhooks: it reports
/// each delivery's outcome and the depth of its queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    deliveries: Family<OutcomeLabel, Counter>,
    queue_depth: Gauge,
}

impl WebhookMetrics {
    /// One delivery attempt ended with `outcome`.
    pub fn delivered(&self, outcome: DeliveryOutcome) {
        self.deliveries
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Events not yet fanned out plus deliveries pending, as the worker
    /// last saw them.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s: manifest reads take a millisecond, blob pushes
    // seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric family of the server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    received: Counter,
    sent: Counter,
    uploads: Gauge,
    blobs: Gauge,
    blob_bytes: Gauge,
    manifests: Gauge,
    repositories: Gauge,
    gc_runs: Family<OutcomeLabel, Counter>,
    gc_duration: Histogram,
    gc_freed: Counter,
    webhooks: WebhookMetrics,
    failed_logins: Counter,
    throttled: Family<ReasonLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The families, registered, at zero.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("berth");
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "http_requests",
            "HTTP requests answered, by endpoint, method and status class",
            requests.clone(),
        );
        let duration = Family::<EndpointLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response head, by endpoint",
            Unit::Seconds,
            duration.clone(),
        );
        let received = Counter::default();
        r.register_with_unit(
            "http_received",
            "Request body bytes read",
            Unit::Bytes,
            received.clone(),
        );
        let sent = Counter::default();
        r.register_with_unit(
            "http_sent",
            "Response body bytes sent",
            Unit::Bytes,
            sent.clone(),
        );
        let uploads = Gauge::default();
        r.register(
            "uploads_in_progress",
            "Blob uploads receiving bytes now",
            uploads.clone(),
        );
        let gauge = |r: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
            let g = Gauge::default();
            match unit {
                Some(u) => r.register_with_unit(name, help, u, g.clone()),
                None => r.register(name, help, g.clone()),
            }
            g
        };
        let blobs = gauge(
            &mut r,
            "storage_blobs",
            "Blobs stored (from the metadata)",
            None,
        );
        let blob_bytes = gauge(
            &mut r,
            "storage_blob",
            "Bytes of the blobs stored, each blob once (from the metadata)",
            Some(Unit::Bytes),
        );
        let manifests = gauge(
            &mut r,
            "storage_manifests",
            "Manifests stored, once per repository (from the metadata)",
            None,
        );
        let repositories = gauge(
            &mut r,
            "storage_repositories",
            "Repositories (from the metadata)",
            None,
        );
        let gc_runs = Family::<OutcomeLabel, Counter>::default();
        r.register(
            "gc_runs",
            "Garbage-collection runs finished while serving, by outcome",
            gc_runs.clone(),
        );
        let gc_duration = Histogram::new(exponential_buckets(0.01, 4.0, 10));
        r.register_with_unit(
            "gc_duration",
            "Duration of garbage-collection runs",
            Unit::Seconds,
            gc_duration.clone(),
        );
        let gc_freed = Counter::default();
        r.register_with_unit(
            "gc_freed",
            "Bytes of blobs deleted by garbage collection",
            Unit::Bytes,
            gc_freed.clone(),
        );
        let webhooks = WebhookMetrics {
            deliveries: Family::default(),
            queue_depth: Gauge::default(),
        };
        r.register(
            "webhook_deliveries",
            "Webhook deliveries ended, by outcome",
            webhooks.deliveries.clone(),
        );
        r.register(
            "webhook_queue_depth",
            "Webhook deliveries waiting to be sent",
            webhooks.queue_depth.clone(),
        );
        let failed_logins = Counter::default();
        r.register(
            "login_failures",
            "Logins refused for a wrong user name, password or token",
            failed_logins.clone(),
        );
        let throttled = Family::<ReasonLabel, Counter>::default();
        r.register(
            "throttled_requests",
            "Requests refused 429, by reason",
            throttled.clone(),
        );
        let build = Family::<VersionLabel, Gauge>::default();
        r.register("build_info", "The running build, always 1", build.clone());
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        // Series with a fixed set of labels exist from the start, at zero,
        // so that rates and alerts see them before the first event.
        for outcome in ["succeeded", "failed"] {
            let _ = gc_runs.get_or_create(&OutcomeLabel { outcome });
        }
        for o in DeliveryOutcome::ALL {
            let _ = webhooks
                .deliveries
                .get_or_create(&OutcomeLabel { outcome: o.label() });
        }
        for reason in [
            Throttle::failed_logins,
            Throttle::login_checks,
            Throttle::uploads,
            Throttle::client_uploads,
            Throttle::manifest_bytes,
        ] {
            let _ = throttled.get_or_create(&ReasonLabel { reason });
        }
        Metrics {
            registry: r,
            requests,
            duration,
            received,
            sent,
            uploads,
            blobs,
            blob_bytes,
            manifests,
            repositories,
            gc_runs,
            gc_duration,
            gc_freed,
            webhooks,
            failed_logins,
            throttled,
        }
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One answered request; `endpoint` is its [`crate::endpoint::Endpoint::route_label`],
    /// or `unknown` for a path that is no endpoint.
    pub(crate) fn request(
        &self,
        endpoint: &'static str,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                method: method_label(method),
                status_class: status_class(status),
            })
            .inc();
        self.duration
            .get_or_create(&EndpointLabel { endpoint })
            .observe(elapsed.as_secs_f64());
    }

    /// The counter of request body bytes, for [`crate::body::Incoming`].
    pub(crate) fn received(&self) -> Counter {
        self.received.clone()
    }

    /// The counter of response body bytes, for [`count_sent`].
    pub(crate) fn sent(&self) -> Counter {
        self.sent.clone()
    }

    /// Counts an upload receiving bytes until the guard is dropped.
    pub(crate) fn upload_started(&self) -> UploadGuard {
        self.uploads.inc();
        UploadGuard(self.uploads.clone())
    }

    /// A login refused for bad credentials.
    pub(crate) fn login_failed(&self) {
        self.failed_logins.inc();
    }

    /// A request refused 429.
    pub(crate) fn throttled(&self, reason: Throttle) {
        self.throttled.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The families webhook delivery reports to.
    pub fn webhooks(&self) -> WebhookMetrics {
        self.webhooks.clone()
    }

    /// Sets the storage gauges.
    pub fn set_storage(&self, t: &StorageTotals) {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.blobs.set(g(t.blobs));
        self.blob_bytes.set(g(t.blob_bytes));
        self.manifests.set(g(t.manifests));
        self.repositories.set(g(t.repositories));
    }

    /// `GET /metrics`.
    pub(crate) fn response(&self) -> Response<Body> {
        let text = self.encode();
        Response::builder()
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(http::header::CONTENT_LENGTH, text.len())
            .body(full(text))
            .unwrap_or_else(|_| {
                let mut r = Response::new(full("metrics could not be encoded\n"));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            })
    }
}

impl Observer for Metrics {
    fn gc_run_finished(&self, run: &GcRun) {
        let outcome = if run.status == "succeeded" {
            "succeeded"
        } else {
            "failed"
        };
        self.gc_runs.get_or_create(&OutcomeLabel { outcome }).inc();
        let secs = match (&run.report, run.finished_at) {
            (Some(r), _) => r.duration_ms as f64 / 1000.0,
            (None, Some(end)) => end.saturating_sub(run.started_at) as f64 / 1000.0,
            (None, None) => 0.0,
        };
        self.gc_duration.observe(secs);
        if let Some(r) = run.report.as_ref().filter(|r| !r.dry_run) {
            self.gc_freed.inc_by(r.bytes_freed);
        }
    }
}

/// Holds one place in `berth_uploads_in_progress`.
pub(crate) struct UploadGuard(Gauge);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Reads the storage totals now and then every `every`, until aborted.
/// A failed read keeps the last values and is logged.
pub(crate) fn spawn_storage_refresher(
    registry: berth_store::Registry,
    metrics: Arc<Metrics>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match registry.storage_totals().await {
                Ok(t) => metrics.set_storage(&t),
                Err(e) => tracing::warn!(error = %e, "reading storage totals for metrics failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let m = Metrics::new();
        m.request(
            "unknown",
            &Method::GET,
            StatusCode::NOT_FOUND,
            Duration::from_millis(3),
        );
        let text = m.encode();
        for name in [
            "berth_http_requests_total{endpoint=\"unknown\",method=\"GET\",status_class=\"4xx\"} 1",
            "berth_http_request_duration_seconds_count{endpoint=\"unknown\"} 1",
            "berth_http_received_bytes_total 0",
            "berth_http_sent_bytes_total 0",
            "berth_build_info{version=\"",
            "berth_webhook_deliveries_total{outcome=\"failed\"} 0",
            "berth_webhook_queue_depth 0",
            "berth_throttled_requests_total{reason=\"failed_logins\"} 0",
            "berth_storage_blob_bytes 0",
            "berth_gc_freed_bytes_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
