//! Warren's HTTP API (axum): clients submit jobs (one or a batch), read, list, wait for and
//! cancel them, read their logs, and see workers, tasks and counts.
//!
//! It sits at the start of the flow: client → **submitter** → RabbitMQ intake → scheduler →
//! pool queue → worker → Redis. A job is answered `202` only once it is in Redis *and*
//! RabbitMQ has confirmed it into intake (invariant I2); if either fails the client gets
//! `503` with `Retry-After` and nothing half-made stays. Every error is an RFC 9457
//! `application/problem+json` body with a machine-readable `code` (and `field` when one
//! input field is at fault).
//!
//! Callers present bearer tokens from a tokens file (`auth`): each has roles and a tenant, and
//! acts only for that tenant. Submissions are rate-limited per tenant (`rate`), and the accept
//! loop caps connections and closes idle and slow ones (`server`).
//!
//! This crate does not schedule, run or store anything itself: queue names and declaration
//! belong to `warren-topology`, Redis keys and state transitions to `warren-store`, the job
//! vocabulary and its validation to `warren-protocol`.
//!
//! Use [`run`] from a binary; [`build_state`] + [`serve`] to bind a listener yourself
//! (`warren up`, tests on `127.0.0.1:0`); [`app`] to drive the router without a socket.

mod args;
mod auth;
mod extract;
mod middleware;
mod placement;
mod problem;
mod publisher;
mod rate;
mod routes;
mod server;
mod state;
mod submit;
mod waiters;
mod wire;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_topology::TopologyOptions;

pub use args::{Rate, SecurityArgs, SubmitterArgs};
pub use auth::{Role, hash_token};
pub use state::AppState;

/// Connects to Redis and RabbitMQ, declares the core topology, binds `args.http_addr` and
/// serves until `shutdown` is cancelled; then drains in-flight requests and returns.
///
/// # Errors
/// Fails when a setting is invalid, Redis or RabbitMQ cannot be reached at startup, the
/// topology cannot be declared, the address cannot be bound, or the server fails.
pub async fn run(args: SubmitterArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = build_state(&args).await?;
    let listener = TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    serve(listener, state, shutdown).await
}

/// Builds the shared state: connects to Redis and RabbitMQ, declares the core topology
/// (idempotent) and starts the job event subscription behind long-polls.
///
/// # Errors
/// Fails when a setting is invalid, Redis or RabbitMQ cannot be reached, or the topology
/// cannot be declared. Messages name the redacted URL, never a password.
pub async fn build_state(args: &SubmitterArgs) -> anyhow::Result<AppState> {
    state::build(args, TopologyOptions::default()).await
}

/// Like [`build_state`], with the options the core topology is declared with (tests set
/// `queue_expires` so that their queues clean themselves up).
///
/// # Errors
/// See [`build_state`].
pub async fn build_state_with(
    args: &SubmitterArgs,
    options: TopologyOptions,
) -> anyhow::Result<AppState> {
    state::build(args, options).await
}

/// Serves the API on `listener` until `shutdown` is cancelled, with the connection limits of
/// [`SecurityArgs`]. Then long-polls return at once, in-flight requests finish (bounded by
/// the request timeout), accept tasks complete, and the event subscription stops.
///
/// # Errors
/// Fails when the bound address cannot be read (not when a request or a connection does).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("reading the bound address")?;
    let https = state.limits().tls.is_some();
    tracing::info!(%addr, https, namespace = %state.topology().namespace(), "submitter listening");
    let stopping = state.stopping().clone();
    let stop_long_polls = async {
        shutdown.cancelled().await;
        // Ends long-polls, so the drain is not held up by them.
        stopping.cancel();
    };
    let serving = server::serve(
        listener,
        app(state.clone()),
        state.limits(),
        shutdown.clone(),
    );
    tokio::join!(serving, stop_long_polls);
    state.drain().await;
    tracing::info!("submitter stopped");
    Ok(())
}

/// Builds the router with every route and layer, for [`serve`] or for driving it directly
/// with `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}
