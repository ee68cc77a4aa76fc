//! Actions from the UI: cancel and retry. Both go through the same store calls as the
//! submitter's API, so the state machine (invariant I1) decides, not the dashboard.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use warren_protocol::{JobEnvelope, JobId, JobState, now_ms};
use warren_store::{JobAction, JobRecord, NewJob, Transition, TransitionOutcome};
use warren_topology::TopologyError;

use warren_kit::auth::Role;

use crate::api::{job_id, job_not_found, load, load_for};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// How long RabbitMQ may take to confirm a retried job into intake.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /api/jobs/{id}/cancel`: cancels a job that has not finished, like the submitter's
/// `POST /v1/jobs/{id}/cancel`; a running job's worker is told to kill it. Answers the record,
/// 404, or 409 when the job has already finished. Needs the `submit` role, as the
/// submitter's cancel does; another tenant's job is a 404.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let id = job_id(&raw)?;
    // A job's tenant never changes, so checking it before the transition is enough.
    load_for(state.store(), &caller, id).await?;
    caller.require(Role::Submit)?;
    match cancel_one(&state, id, &caller.name, None).await? {
        TransitionOutcome::Done(_) => {}
        TransitionOutcome::Missing => return Err(job_not_found(id)),
        TransitionOutcome::Illegal(current)
        | TransitionOutcome::NotOwner(current)
        | TransitionOutcome::Stale(current) => {
            return Err(ApiError::conflict(
                "job_finished",
                format!("job {id} is already {current} and cannot be cancelled"),
            ));
        }
    }
    load(state.store(), id).await.map(Json)
}

/// Where dashboard actions come from, in a job's history.
pub(crate) const VIA: &str = "dashboard";

/// Cancels one job, tells its worker when it was running, and records the action in the
/// job's history under the token's name `by` (`detail`: `bulk` for bulk actions).
pub(crate) async fn cancel_one(
    state: &AppState,
    id: JobId,
    by: &str,
    detail: Option<&str>,
) -> Result<TransitionOutcome, ApiError> {
    let outcome = state
        .store()
        .transition(&Transition::new(id, JobState::Cancelled))
        .await?;
    if let TransitionOutcome::Done(previous) = outcome {
        tracing::info!(job_id = %id, %previous, caller = by, "job cancelled from the dashboard");
        metrics::counter!("warren_dashboard_actions_total", "action" => "cancel").increment(1);
        let mut action = JobAction::now("cancel", by, VIA);
        if let Some(detail) = detail {
            action = action.with_detail(detail);
        }
        note(state, id, &action).await;
        if previous == JobState::Running {
            tell_workers(state, id).await;
        }
    }
    Ok(outcome)
}

/// Adds an action to a job's history. Best effort: the action itself has happened.
pub(crate) async fn note(state: &AppState, id: JobId, action: &JobAction) {
    if let Err(error) = state.store().record_action(id, action).await {
        tracing::warn!(job_id = %id, error = %crate::error::chain(&error), "cannot record an action in the job's history");
    }
}

/// Whether a job in `state` may be retried: it finished without succeeding.
pub(crate) fn retryable(state: JobState) -> bool {
    state.is_terminal() && state != JobState::Succeeded
}

/// Broadcasts `job.cancel` so the worker running the job kills it. Best effort: the job is
/// already cancelled in Redis, and a worker never records a result over a terminal state.
async fn tell_workers(state: &AppState, id: JobId) {
    let sent = match state.publisher().await {
        Ok(publisher) => publisher.broadcast_cancel(id).await,
        Err(error) => Err(error),
    };
    if let Err(error) = sent {
        tracing::warn!(job_id = %id, error = %crate::error::chain(&error), "cannot tell workers to cancel a running job");
    }
}

/// The answer to a retry: the new job.
#[derive(Debug, Serialize)]
pub(crate) struct Retried {
    id: JobId,
    state: JobState,
    retry_of: JobId,
}

/// `POST /api/jobs/{id}/retry`: submits a finished job that did not succeed (failed, timed
/// out, cancelled) again, as a new job with the same spec and the label `retry_of`. The old
/// job keeps its outcome: a terminal state is never overwritten. Answers 202 with the new
/// job once it is in Redis and confirmed into intake (invariant I2, as in the submitter).
/// Needs the `submit` role, as the submitter's retry does.
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<Retried>), ApiError> {
    let id = job_id(&raw)?;
    let record = load_for(state.store(), &caller, id).await?;
    caller.require(Role::Submit)?;
    if !retryable(record.state) {
        return Err(ApiError::conflict(
            "not_retryable",
            format!(
                "job {id} is {}: only failed, timed out or cancelled jobs can be retried",
                record.state
            ),
        ));
    }
    let new_id = retry_one(&state, record, &caller.name, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Retried {
            id: new_id,
            state: JobState::Queued,
            retry_of: id,
        }),
    ))
}

/// Submits a finished job again as a new job (see [`retry`]) and records the retry in the
/// old job's history under the token's name `by`; returns the new job's id.
pub(crate) async fn retry_one(
    state: &AppState,
    record: JobRecord,
    by: &str,
    detail: Option<&str>,
) -> Result<JobId, ApiError> {
    let id = record.id;
    let mut spec = record.spec;
    spec.labels
        .insert(warren_store::RETRY_OF_LABEL.to_owned(), id.to_string());
    let job = NewJob {
        id: JobId::new(),
        spec,
        created_ms: now_ms(),
    };
    let jobs = [job];
    // Redis first, then intake; if the publish fails the record goes again (as in the
    // submitter), so nothing half-made stays.
    state.store().create_jobs(&jobs).await?;
    let [job] = jobs;
    if let Err(error) = publish(state, &job).await {
        if let Err(delete) = state.store().delete_jobs(std::slice::from_ref(&job)).await {
            tracing::error!(job_id = %job.id, error = %crate::error::chain(&delete), "cannot delete a retried job whose publish failed");
        }
        return Err(ApiError::unavailable(
            "publishing a retried job failed",
            &error,
        ));
    }
    tracing::info!(job_id = %job.id, retry_of = %id, caller = by, "job retried from the dashboard");
    metrics::counter!("warren_dashboard_actions_total", "action" => "retry").increment(1);
    let made = format!("as {}", job.id);
    let detail = detail.map_or(made.clone(), |d| format!("{d}, {made}"));
    note(
        state,
        id,
        &JobAction::now("retry", by, VIA).with_detail(detail),
    )
    .await;
    Ok(job.id)
}

async fn publish(state: &AppState, job: &NewJob) -> Result<(), TopologyError> {
    let envelope = JobEnvelope::first_attempt(job.id, job.spec.clone(), job.created_ms, None);
    publish_envelope(state, &envelope).await
}

/// Publishes a job to intake and waits for the broker's confirm (retries and requeues).
pub(crate) async fn publish_envelope(
    state: &AppState,
    envelope: &JobEnvelope,
) -> Result<(), TopologyError> {
    let publisher = state.publisher().await?;
    let pending = publisher.send_intake(envelope).await?;
    tokio::time::timeout(CONFIRM_TIMEOUT, pending.confirmed())
        .await
        .map_err(|_| TopologyError::Connect {
            message: format!("no publisher confirm within {CONFIRM_TIMEOUT:?}"),
        })?
}
