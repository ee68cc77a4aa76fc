//! `POST /v1/jobs/batch`: up to [`MAX_BATCH`] jobs, all or nothing.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_protocol::{JobId, JobSpec, JobState, now_ms};
use warren_store::NewJob;

use super::jobs::{JobRef, idempotency_key};
use crate::auth::{Caller, Role};
use crate::extract::{JsonBody, object_from_value, parse_object};
use crate::middleware::CorrelationId;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::submit::{SubmittedBatch, accept_many, check_spec};

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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct BatchResponse {
    jobs: Vec<JobRef>,
}

#[utoipa::path(
    post,
    path = "/v1/jobs/batch",
    tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "As for one job; a repeat with the same specs answers 200 with the first batch")),
    request_body(content = super::openapi::BatchBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Every job stored and confirmed into intake, in the order sent.", body = BatchResponse),
        (status = 200, description = "This Idempotency-Key already names this batch.", body = BatchResponse),
        (status = 400, description = "Malformed JSON or Idempotency-Key."),
        (status = 409, description = "A batch with this Idempotency-Key is still in progress."),
        (status = 413, description = "The body or the batch is too large."),
        (status = 415, description = "The body is not declared as JSON."),
        (status = 422, description = "A spec is invalid (`field` names it, e.g. `jobs[3].priority`); nothing was stored."),
        (status = 429, description = "The tenant submits faster than allowed (`Retry-After`)."),
        (status = 503, description = "RabbitMQ or Redis is unavailable: nothing was accepted (`Retry-After`)."),
    ),
)]
/// Validates every spec first (any invalid one: 422 naming `jobs[i].field`, nothing stored),
/// then writes all jobs in one `MULTI`, publishes all and awaits every confirm. Any failure
/// deletes them all again and answers 503. With an `Idempotency-Key` already used for the
/// same specs: 200 with that batch's jobs; for other specs: 422.
pub(super) async fn submit_batch(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    caller.require(Role::Submit)?;
    // A tenant-bound token's keys are its tenant's own, as for single submits.
    let key = idempotency_key(&headers)?.map(|key| match caller.tenant() {
        Some(tenant) => format!("{tenant}/{key}"),
        None => key,
    });
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
    let specs: Vec<JobSpec> = jobs.iter().map(|job| job.spec.clone()).collect();
    match accept_many(&state, jobs, correlation.0, key).await? {
        SubmittedBatch::Created => Ok((StatusCode::ACCEPTED, Json(BatchResponse { jobs: refs }))),
        SubmittedBatch::Existing(ids) => {
            let jobs = earlier_batch(&state, &ids, &specs).await?;
            Ok((StatusCode::OK, Json(BatchResponse { jobs })))
        }
    }
}

/// The jobs of the batch an idempotency key already names, if it was sent with the same
/// specs in the same order.
async fn earlier_batch(
    state: &AppState,
    ids: &[JobId],
    specs: &[JobSpec],
) -> Result<Vec<JobRef>, ApiError> {
    let reused = || {
        ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key already names a batch with different jobs; use a new key",
        )
        .with_field("Idempotency-Key")
    };
    if ids.len() != specs.len() {
        return Err(reused());
    }
    let mut refs = Vec::with_capacity(ids.len());
    for (id, spec) in ids.iter().zip(specs) {
        let Some(record) = state.store().get(*id).await? else {
            // Reserved by a submission still in flight (or one that failed and whose key
            // could not be released): the client retries.
            return Err(ApiError::conflict(
                "idempotency_key_in_use",
                "a batch with this Idempotency-Key is still in progress; retry shortly",
            )
            .with_field("Idempotency-Key")
            .retry_later());
        };
        if record.spec != *spec {
            return Err(reused());
        }
        refs.push(JobRef {
            id: *id,
            state: record.state,
            warnings: Vec::new(),
        });
    }
    Ok(refs)
}
