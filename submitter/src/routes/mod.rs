//! The route table and the layers around it.

mod batch;
mod dead;
mod jobs;
mod misc;
mod openapi;
mod scheduling;
mod wait;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::middleware::{from_fn, from_fn_with_state, map_response};
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::auth::authenticate;
use crate::middleware::{
    CorrelationId, correlation, ensure_problem, request_timeout, track, uri_cap,
};
use crate::state::AppState;

/// Builds the router: every route, authentication (probes excepted), the request timeout
/// (long-polls excepted), the body limit, tracing, the correlation id and the problem+json
/// safety net.
pub(crate) fn router(state: AppState) -> Router {
    let timed = Router::new()
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/jobs/batch", post(batch::submit_batch))
        .route("/v1/jobs/{id}", get(scheduling::get_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/logs", get(jobs::logs))
        .route("/v1/dead", get(dead::list))
        .route("/v1/dead/{id}/requeue", post(dead::requeue))
        .route("/v1/workers", get(misc::workers))
        .route("/v1/tasks", get(misc::tasks))
        .route("/v1/stats", get(misc::stats))
        .route("/v1/scheduler", get(scheduling::status))
        .route("/v1/scheduler/policy", put(scheduling::set_policy))
        .route("/metrics", get(misc::metrics))
        .route("/healthz", get(misc::healthz))
        .route("/readyz", get(misc::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route_layer(from_fn_with_state(state.clone(), request_timeout));
    // A long-poll bounds itself (`timeout_s`, at most 5 minutes, and shutdown).
    let untimed = Router::new().route("/v1/jobs/{id}/wait", get(wait::wait));

    let max_body = state.max_body_bytes();
    timed
        .merge(untimed)
        .fallback(misc::not_found)
        .method_not_allowed_fallback(misc::method_not_allowed)
        // tower-http enforces the limit (early, from Content-Length, or while streaming);
        // axum's own default limit would only duplicate it.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(CatchPanicLayer::new())
        .layer(from_fn(track))
        // Outside the body limit: a caller without a token learns nothing else.
        .layer(from_fn_with_state(state.clone(), authenticate))
        .layer(from_fn(uri_cap))
        .layer(map_response(ensure_problem))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let correlation_id = req
                .extensions()
                .get::<CorrelationId>()
                .map_or("", |c| c.0.as_str());
            tracing::info_span!(
                "http",
                method = %req.method(),
                path = %req.uri().path(),
                correlation_id,
                caller = tracing::field::Empty,
            )
        }))
        .layer(from_fn(correlation))
        .with_state(state)
}
