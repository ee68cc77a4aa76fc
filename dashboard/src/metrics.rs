//! Prometheus metrics: the `metrics` facade with the Prometheus exporter's recorder, rendered
//! on `GET /metrics`. Job and worker gauges are read from Redis at scrape time (cheap: a few
//! counters and index sizes), so every dashboard replica reports the same numbers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::error::ApiError;
use crate::state::AppState;

/// Renders what the process-wide recorder holds.
#[derive(Clone)]
pub(crate) struct Metrics {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The process-wide recorder (shared with the other services in `warren up`).
    pub(crate) fn install() -> Self {
        Self {
            handle: warren_kit::metrics::install(),
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store();
    for (job_state, count) in store.count_by_state().await? {
        metrics::gauge!("warren_jobs", "state" => job_state.as_str()).set(count as f64);
    }
    let totals = store.terminal_counters().await?;
    for (name, value) in [
        ("warren_jobs_succeeded_total", totals.succeeded),
        ("warren_jobs_failed_total", totals.failed),
        ("warren_jobs_timed_out_total", totals.timed_out),
        ("warren_jobs_cancelled_total", totals.cancelled),
    ] {
        metrics::counter!(name).absolute(value);
    }
    let workers = store.worker_registry().await?;
    let live: Vec<_> = workers
        .iter()
        .filter_map(|w| w.heartbeat.as_ref())
        .collect();
    metrics::gauge!("warren_workers", "status" => "live").set(live.len() as f64);
    metrics::gauge!("warren_workers", "status" => "lost").set((workers.len() - live.len()) as f64);
    let slots: u32 = live.iter().map(|h| h.slots).sum();
    let busy: u32 = live.iter().map(|h| h.busy.min(h.slots)).sum();
    metrics::gauge!("warren_worker_slots", "state" => "busy").set(f64::from(busy));
    metrics::gauge!("warren_worker_slots", "state" => "free").set(f64::from(slots - busy));
    metrics::gauge!("warren_dashboard_live_clients").set(state.live().receiver_count() as f64);
    Ok(warren_kit::metrics::render(&state.metrics().handle))
}

/// Counts requests and their latency by route template and status (bounded labels: the
/// template, never the raw path with its job id).
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "warren_dashboard_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "warren_dashboard_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}
