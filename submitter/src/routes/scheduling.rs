//! The scheduler seen through the API: its status, a policy change, and where a waiting job
//! stands. The submitter never talks to the scheduler: both meet in Redis, where the active
//! scheduler writes its status and reads the policy an operator asked for.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use warren_protocol::JobState;
use warren_protocol::policy::PolicyConfig;
use warren_store::JobRecord;

use crate::auth::{Caller, Role};
use crate::extract::{JobIdParam, JsonBody, parse_json};
use crate::problem::ApiError;
use crate::state::AppState;

/// Where a waiting job stands, and why it waits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Standing {
    /// Pending jobs of every class with a smaller key: under `fifo`, `priority` and `sjf`
    /// the jobs that start before it (0: it is next), capacity and placement aside; under
    /// `fair` and the round-robins a class's turn counts too (see `class_rank`).
    jobs_ahead: Option<u64>,
    /// Jobs of its class (same tenant, queue, requirements and task) ahead of it.
    position_in_class: Option<u64>,
    /// Jobs of its class waiting in all.
    class_pending: u64,
    /// Classes whose first job comes before its class's first job under the policy now
    /// (0: its class is served next); refreshed every second.
    class_rank: Option<u64>,
    /// Its class.
    class: Option<Value>,
    /// Its key under the policy in force (smaller runs first): arrival − priority × weight +
    /// size weight × estimated runtime, in milliseconds.
    key: Option<i64>,
    /// The factors of its key.
    factors: Option<Factors>,
    /// Why the first job of its class waits (so why this one does too).
    class_reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Factors {
    arrival_ms: u64,
    priority: u8,
    estimated_runtime_ms: u64,
}

/// A job record, and for a waiting job its standing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct JobView {
    #[serde(flatten)]
    record: JobRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduling: Option<Standing>,
}

/// Adds the standing of a `queued` job; the record's `pending_reason` falls back to its
/// class's reason (only the first job of a class gets one of its own).
pub(super) async fn view(state: &AppState, mut record: JobRecord) -> Result<JobView, ApiError> {
    if record.state != JobState::Queued {
        return Ok(JobView {
            record,
            scheduling: None,
        });
    }
    let Some(place) = state.store().pending_position(record.id).await? else {
        return Ok(JobView {
            record,
            scheduling: None,
        });
    };
    let factors = parse_factors(&place.member);
    let jobs_ahead = state.store().pending_ahead(&place).await?;
    if record.pending_reason.is_none() {
        record.pending_reason.clone_from(&place.class_reason);
    }
    Ok(JobView {
        record,
        scheduling: Some(Standing {
            jobs_ahead,
            position_in_class: place.rank,
            class_pending: place.class_pending,
            class_rank: place.class_rank,
            class: place
                .class_json
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
            key: place.score,
            factors,
            class_reason: place.class_reason,
        }),
    })
}

/// Reads `id|priority|est_ms|arrival_ms`.
fn parse_factors(member: &str) -> Option<Factors> {
    let mut parts = member.split('|').skip(1);
    let priority = parts.next()?.parse().ok()?;
    let estimated_runtime_ms = parts.next()?.parse().ok()?;
    let arrival_ms = parts.next()?.parse().ok()?;
    Some(Factors {
        arrival_ms,
        priority,
        estimated_runtime_ms,
    })
}

#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = warren_protocol::JobId, Path, description = "The job id.")),
    responses(
        (status = 200, description = "The job record; for a waiting job, where it stands.", body = JobView),
        (status = 400, description = "The id is not a job id."),
        (status = 404, description = "No such job (or another tenant's)."),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `GET /v1/jobs/{id}`: the job record, and for a waiting job where it stands.
pub(super) async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<JobView>, ApiError> {
    // Whose job it is first: another tenant's job is a 404 whatever the token's roles.
    let record = super::jobs::load_for(&state, &caller, id).await?;
    caller.require(Role::Read)?;
    Ok(Json(view(&state, record).await?))
}

#[utoipa::path(
    get,
    path = "/v1/scheduler",
    tag = "scheduler",
    responses(
        (status = 200, description = "The active scheduler's status (policy, pending per class, usage, capacity).", body = Object),
        (status = 503, description = "No scheduler reported lately, or Redis is unavailable."),
    ),
)]
/// `GET /v1/scheduler`: the active scheduler's status: policy and weights, pending per
/// class, per-tenant usage against share, workers' free capacity, the backfill reservation,
/// limits, and which instance is active.
pub(super) async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    // It shows every tenant's usage and pending work.
    caller.require(Role::Admin)?;
    let Some(json) = state.store().scheduler_status().await? else {
        return Err(ApiError::unavailable_quiet("no_active_scheduler")
            .with_detail("no scheduler has reported in the last 10 s: is one running?"));
    };
    let status: Value = serde_json::from_str(&json)
        .map_err(|e| ApiError::internal("the scheduler status does not parse", &e))?;
    Ok(Json(status))
}

#[utoipa::path(
    put,
    path = "/v1/scheduler/policy",
    tag = "scheduler",
    request_body(content = Object, content_type = "application/json", description = "`preset` and any settings to override (see docs/scheduling.md)."),
    responses(
        (status = 202, description = "Stored; the active scheduler applies it within a second.", body = Object),
        (status = 400, description = "Malformed JSON."),
        (status = 413, description = "The body is too large."),
        (status = 415, description = "The body is not declared as JSON."),
        (status = 422, description = "The policy is invalid."),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `PUT /v1/scheduler/policy`: changes the policy. The body names a `preset` and may
/// override any of its settings; the active scheduler applies it within a second, to every
/// job already waiting.
pub(super) async fn set_policy(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    let changes: Value = parse_json(&body)?;
    let config = PolicyConfig::from_changes(&changes)
        .map_err(|e| ApiError::unprocessable("invalid_policy", e).with_field("policy"))?;
    let json = serde_json::to_string(&config)
        .map_err(|e| ApiError::internal("serialising the policy", &e))?;
    state.store().set_desired_policy(&json).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "policy": config,
            "applies": "within a second, by the active scheduler, to every waiting job",
        })),
    ))
}
