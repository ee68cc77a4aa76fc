//! Warren's dashboard: a web UI over the durable state in Redis and the live job events, its
//! read API, server-sent events for live updates, the cancel, retry and dead-letter requeue
//! actions, and Prometheus metrics on `/metrics`. The API takes the submitter's tokens and
//! roles (`auth`): a tenant token sees only its tenant.
//!
//! It sits at the end of the flow: client → submitter → intake → scheduler → pool queue →
//! worker → Redis → **dashboard**. Everything it shows comes from Redis through
//! `warren-store` (job records, indexes, logs, the worker registry, the terminal counters
//! the transition script keeps) and from the store's job event channel, so a restarted
//! dashboard shows the same thing. It writes only the sampled history of those counters
//! (see `series`). From RabbitMQ it reads only queue depths, with passive declares (`queues`).
//! Its actions go through the same store transition and intake publish as the submitter's
//! API; it does not schedule or run anything, and it never talks to another service
//! directly.
//!
//! Use [`run`] from a binary; [`build_state`] + [`serve`] to bind the listener yourself
//! (`warren up`, tests on `127.0.0.1:0`); [`app`] to drive the router without a socket.

mod actions;
mod api;
mod args;
mod assets;
mod auth;
mod backlog;
mod bulk;
mod dead;
mod error;
mod extract;
mod latency;
mod live;
mod metrics;
mod overview;
mod queues;
mod series;
mod state;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

pub use args::DashboardArgs;
pub use state::AppState;

/// Connects to Redis and RabbitMQ, binds `args.http_addr` and serves until `shutdown` is
/// cancelled; then ends the live streams, drains requests and returns.
///
/// # Errors
/// Fails when Redis or RabbitMQ cannot be reached at startup, the address cannot be bound,
/// or the server fails.
pub async fn run(args: DashboardArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = build_state(&args).await?;
    let listener = TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    serve(listener, state, shutdown).await
}

/// Builds the shared state: connects to Redis and RabbitMQ and starts the event pump and the
/// counter sampler.
///
/// # Errors
/// Fails when Redis or RabbitMQ cannot be reached; messages name the redacted URL.
pub async fn build_state(args: &DashboardArgs) -> anyhow::Result<AppState> {
    state::build(args).await
}

/// Serves the dashboard on `listener` until `shutdown` is cancelled.
///
/// # Errors
/// Fails when the server itself fails (not when a request does).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, namespace = %state.topology().namespace(), "dashboard listening");
    let stopping = state.stopping().clone();
    let served = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            // Ends the live streams, which would otherwise hold the drain open forever.
            stopping.cancel();
        })
        .await
        .context("serving http");
    state.drain().await;
    tracing::info!("dashboard stopped");
    served
}

/// Builds the router with every route and layer.
pub fn app(state: AppState) -> Router {
    let timed = Router::new()
        .route("/api/overview", get(api::get_overview))
        .route("/api/series", get(series::series))
        .route("/api/jobs", get(api::list_jobs))
        .route("/api/jobs/{id}", get(api::get_job))
        .route("/api/jobs/{id}/cancel", post(actions::cancel))
        .route("/api/jobs/{id}/retry", post(actions::retry))
        .route("/api/workers", get(api::get_workers))
        .route("/api/me", get(auth::me))
        .route("/api/backlog", get(backlog::backlog))
        .route("/api/dead", get(dead::list))
        .route("/api/dead/{id}/requeue", post(dead::requeue))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/api/scheduler", get(api::get_scheduler))
        .route("/api/queues", get(queues::get_queues))
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(api::healthz))
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route_layer(from_fn_with_state(state.clone(), request_timeout));
    // Streams bound themselves: they end at shutdown (and a log tail when its job ends). A
    // bulk action is bounded by its cap of jobs, and may take longer than one request should.
    let streams = Router::new()
        .route("/api/jobs/bulk", post(bulk::bulk))
        .route("/api/live", get(live::live))
        .route("/api/jobs/{id}/logs/live", get(api::tail_log));
    timed
        .merge(streams)
        .fallback(api::not_found)
        // Outside the routes so that an unknown `/api/` path is a 401 to a stranger too.
        .layer(from_fn_with_state(state.clone(), auth::authenticate))
        .layer(from_fn(metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Answers 503 when a request takes longer than the configured timeout.
async fn request_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit: Duration = state.request_timeout();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::timeout(limit).into_response(),
    }
}
