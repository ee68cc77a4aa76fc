//! `POST /v1/jobs/batch`: up to [`MAX_BATCH`] jobs, all or nothing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_protocol::{JobId, JobSpec, JobState, now_ms};
use warren_store::NewJob;

use super::jobs::JobRef;
use crate::auth::{Caller, Role};
use crate::extract::{JsonBody, object_from_value, parse_object};
use crate::middleware::CorrelationId;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::submit::{accept_many, check_spec};

/// Most jobs one batch may carry.
pub(crate) const MAX_BATCH: usize = 1000;

/// The body: `{"jobs":[spec, ...]}`. Specs stay raw until the count is checked, so that a
/// batch of 5000 is told it is too large rather than where its first typo is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    jobs: Vec<Value>,
}

/// The answer: one `{"id","state"}` per job (with `warnings` as for a single job), in
/// the order they were sent.
#[derive(Debug, Serialize)]
pub(super) struct BatchResponse {
    jobs: Vec<JobRef>,
}

/// Validates every spec first (any invalid one: 422 naming `jobs[i].field`, nothing stored),
/// then writes all jobs in one `MULTI`, publishes all and awaits every confirm. Any failure
/// deletes them all again and answers 503.
pub(super) async fn submit_batch(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    caller.require(Role::Submit)?;
    let request: BatchRequest = parse_object(&body)?;
    if request.jobs.is_empty() {
        return Err(
            ApiError::unprocessable("empty_batch", "jobs must hold at least one job spec")
                .with_field("jobs"),
        );
    }
    if request.jobs.len() > MAX_BATCH {
        return Err(ApiError::too_large(
            "batch_too_large",
            format!(
                "a batch holds at most {MAX_BATCH} jobs, this one has {}; split it up",
                request.jobs.len()
            ),
        )
        .with_field("jobs"));
    }
    let created_ms = now_ms();
    let mut jobs = Vec::with_capacity(request.jobs.len());
    let mut refs = Vec::with_capacity(request.jobs.len());
    for (index, raw) in request.jobs.into_iter().enumerate() {
        let prefix = format!("jobs[{index}]");
        let names_tenant = raw.get("tenant").is_some();
        let mut spec: JobSpec = object_from_value(raw, &prefix)?;
        caller.bind_tenant(&mut spec, names_tenant, &prefix)?;
        let task = check_spec(&state, &spec, &prefix).await?;
        let job = NewJob {
            id: JobId::new(),
            spec,
            created_ms,
        };
        refs.push(JobRef {
            id: job.id,
            state: JobState::Queued,
            warnings: state.placement_warnings(&job.spec, &task).await,
        });
        jobs.push(job);
    }
    crate::rate::charge_batch(&state, jobs.iter().map(|j| j.spec.tenant.as_str()))?;
    accept_many(&state, jobs, correlation.0).await?;
    Ok((StatusCode::ACCEPTED, Json(BatchResponse { jobs: refs })))
}
