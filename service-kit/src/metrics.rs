//! Prometheus metrics for every service: one process-wide recorder behind the `metrics`
//! facade (`metrics-exporter-prometheus`), rendered as Prometheus text on `GET /metrics`.
//!
//! The submitter and the dashboard render it on their own HTTP port; the scheduler and the
//! worker have no HTTP server, so [`serve`] gives them a small one on `WARREN_METRICS_ADDR`
//! (off unless set: several workers on one host would fight over a fixed port).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Buckets of every `*_seconds` histogram: from a millisecond (a dispatch, an HTTP read) to
/// an hour (a long job).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where the scheduler or a worker serves `/metrics`.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on GET /metrics at this address (e.g. 0.0.0.0:9100); off
    /// when unset.
    #[arg(long, env = "WARREN_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// Installs the Prometheus recorder as the process's global recorder, once, and returns its
/// handle. `warren up` and tests run several services in one process: they share it.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            builder.install_recorder().unwrap_or_else(|error| {
                // Another recorder owns the facade (an embedding application's): our series
                // go there, and this handle renders an empty registry.
                tracing::warn!(%error, "a metrics recorder is already installed");
                PrometheusBuilder::new().build_recorder().handle()
            })
        })
        .clone()
}

/// The `/metrics` answer for `handle`.
pub fn render(handle: &PrometheusHandle) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render()).into_response()
}

/// Serves `GET /metrics` on `addr` until `shutdown` is cancelled, in the background; returns
/// the bound address (port 0 picks a free one) once it listens.
///
/// # Errors
/// Fails when the address cannot be bound.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<SocketAddr> {
    let handle = install();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr}"))?;
    let bound = listener
        .local_addr()
        .context("reading the metrics address")?;
    let upkeep = handle.clone();
    let app = Router::new().route("/metrics", get(move || async move { render(&handle) }));
    tracing::info!(addr = %bound, "metrics listening on /metrics");
    let stop = shutdown.clone();
    tokio::spawn(async move {
        // Histograms are folded into their buckets at render; without scrapes they would
        // hold every sample, so they are folded now and then regardless.
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => upkeep.run_upkeep(),
            }
        }
    });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the metrics server failed");
        }
    });
    Ok(bound)
}

/// Starts [`serve`] when `args` name an address.
///
/// # Errors
/// Fails when the address cannot be bound.
pub async fn serve_if_set(
    args: &MetricsArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    match args.metrics_addr {
        Some(addr) => serve(addr, shutdown.clone()).await.map(Some),
        None => Ok(None),
    }
}
