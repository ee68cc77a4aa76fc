//! `GET /v1/jobs/{id}/wait?timeout_s=`: long-poll until the job is finished.
//!
//! Always 200 with the job record, like `GET /v1/jobs/{id}`. The `X-Warren-Wait` header
//! says why it returned: `terminal` (the job is finished) or `timeout` (it is not, yet:
//! `timeout_s` passed or the server is shutting down; call again). A timeout is not an error
//! of the request, so it is not a 408 or a 504.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::time::Instant;
use warren_store::JobRecord;

use super::jobs::load_for;
use crate::auth::{Caller, Role};
use crate::extract::{ApiQuery, JobIdParam, bounded_param};
use crate::problem::ApiError;
use crate::state::AppState;

/// Header saying whether the wait ended with the job finished.
static WAIT_HEADER: HeaderName = HeaderName::from_static("x-warren-wait");
/// Default and longest wait.
const DEFAULT_WAIT_S: u64 = 30;
const MAX_WAIT_S: u64 = 300;
/// Re-read the job this often even without an event: pub/sub is at-most-once, so a lost
/// message costs at most this much latency, never a stuck wait.
const RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct WaitQuery {
    /// Longest wait in seconds, 0 to 300 (default 30).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 300)]
    timeout_s: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/wait",
    tag = "jobs",
    params(("id" = warren_protocol::JobId, Path, description = "The job id."), WaitQuery),
    responses(
        (status = 200, description = "The job record, once finished or when the wait ends.", body = JobRecord,
            headers(("X-Warren-Wait" = String, description = "`terminal` (finished) or `timeout` (not yet: call again)"))),
        (status = 400, description = "The id or timeout_s is invalid."),
        (status = 404, description = "No such job (or another tenant's)."),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// Long-polls until the job is finished or `timeout_s` passes.
pub(super) async fn wait(
    State(state): State<AppState>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<JobRecord>), ApiError> {
    let timeout_s = bounded_param(
        "timeout_s",
        query.timeout_s.as_deref(),
        DEFAULT_WAIT_S,
        0..=MAX_WAIT_S,
    )?;
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    // Register before reading: a job that finishes in between still wakes us.
    let waiter = state.waiters().register(id);
    loop {
        let record = load_for(&state, &caller, id).await?;
        // After the tenant check, so another tenant's job is a 404 whatever the roles.
        caller.require(Role::Read)?;
        if record.state.is_terminal() {
            return Ok((
                [(WAIT_HEADER.clone(), HeaderValue::from_static("terminal"))],
                Json(record),
            ));
        }
        let recheck = (Instant::now() + RECHECK).min(deadline);
        tokio::select! {
            () = waiter.changed() => {}
            () = tokio::time::sleep_until(recheck), if recheck < deadline => {}
            () = tokio::time::sleep_until(deadline) => break,
            () = state.stopping().cancelled() => break,
        }
    }
    // Timed out or shutting down: answer with the job as it is now.
    let record = load_for(&state, &caller, id).await?;
    let outcome = if record.state.is_terminal() {
        "terminal"
    } else {
        "timeout"
    };
    Ok((
        [(WAIT_HEADER.clone(), HeaderValue::from_static(outcome))],
        Json(record),
    ))
}
