//! Single jobs: submit, read, list, cancel, logs.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warren_protocol::{JobId, JobSpec, JobState};
use warren_store::{FilterParams, JobAction, JobRecord, LogLine, Transition, TransitionOutcome};

use crate::auth::{Caller, Role};
use crate::extract::{ApiQuery, JobIdParam, JsonBody, bounded_param, parse_object};
use crate::middleware::CorrelationId;
use crate::placement::Warning;
use crate::problem::{ApiError, error_chain};
use crate::state::AppState;
use crate::submit::{Submitted, accept_one, check_spec};

static IDEMPOTENCY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// `{"id","state"}`: the answer to a submission, with `warnings` when no live worker could
/// run the job at the time (it is accepted all the same: workers may join later).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobRef {
    pub(super) id: JobId,
    pub(super) state: JobState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) warnings: Vec<Warning>,
}

/// Answers with `Location: /v1/jobs/{id}`.
pub(super) fn location(id: JobId) -> [(HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(&format!("/v1/jobs/{id}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/v1/jobs"));
    [(header::LOCATION, value)]
}

/// Reads a job or answers 404.
pub(super) async fn load(state: &AppState, id: JobId) -> Result<JobRecord, ApiError> {
    state
        .store()
        .get(id)
        .await?
        .ok_or_else(|| job_not_found(id))
}

/// Reads a job the caller may see: another tenant's job is a 404 like a missing one, so
/// that ids cannot be probed.
pub(super) async fn load_for(
    state: &AppState,
    caller: &Caller,
    id: JobId,
) -> Result<JobRecord, ApiError> {
    let record = load(state, id).await?;
    if !caller.owns(&record) {
        return Err(job_not_found(id));
    }
    Ok(record)
}

/// Whether a spec as sent names its tenant (rather than leaving it to the default).
pub(super) fn names_tenant(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        tenant: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.tenant.is_some())
}

/// 404 for a job id nobody knows.
pub(super) fn job_not_found(id: JobId) -> ApiError {
    ApiError::not_found(
        "job_not_found",
        format!("no job {id}: it never existed or has expired"),
    )
}

#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a repeat with the same spec answers 200 with the first job")),
    request_body(content = JobSpec, content_type = "application/json"),
    responses(
        (status = 202, description = "Stored and confirmed into intake.", body = JobRef, headers(("Location" = String, description = "/v1/jobs/{id}"))),
        (status = 200, description = "This Idempotency-Key already names this job (same spec).", body = JobRef),
        (status = 400, description = "Malformed JSON or Idempotency-Key."),
        (status = 409, description = "A submission with this Idempotency-Key is still in progress."),
        (status = 413, description = "The body is larger than WARREN_MAX_BODY_BYTES."),
        (status = 415, description = "The body is not declared as JSON."),
        (status = 422, description = "A field is invalid (`field` names it), the task is unknown, or the Idempotency-Key names another spec."),
        (status = 429, description = "The tenant submits faster than allowed (`Retry-After`)."),
        (status = 503, description = "RabbitMQ or Redis is unavailable: nothing was accepted (`Retry-After`)."),
    ),
)]
/// `POST /v1/jobs`: 202 `{"id","state":"queued"}` once the job is in Redis and confirmed
/// into intake. With an `Idempotency-Key` already used for the same spec: 200 with that job.
pub(super) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Submit)?;
    let key = idempotency_key(&headers)?;
    let mut spec: JobSpec = parse_object(&body)?;
    caller.bind_tenant(&mut spec, names_tenant(&body), "")?;
    let task = check_spec(&state, &spec, "").await?;
    state.charge_submissions(&spec.tenant, 1)?;
    // A tenant-bound token's keys are its tenant's own: they can neither replay nor reveal
    // another tenant's job. (Without such a token every job is visible to the caller.)
    let key = match caller.tenant() {
        Some(tenant) => key.map(|key| format!("{tenant}/{key}")),
        None => key,
    };
    let warnings = state.placement_warnings(&spec, &task).await;
    match accept_one(&state, spec.clone(), correlation.0, key).await? {
        Submitted::Created(id) => {
            let body = JobRef {
                id,
                state: JobState::Queued,
                warnings,
            };
            Ok((StatusCode::ACCEPTED, location(id), Json(body)).into_response())
        }
        Submitted::Existing(id) => {
            let Some(record) = state.store().get(id).await? else {
                // Reserved by a submission still in flight (or one that failed and whose key
                // could not be released): the client retries.
                return Err(ApiError::conflict(
                    "idempotency_key_in_use",
                    "a submission with this Idempotency-Key is still in progress; retry shortly",
                )
                .with_field("Idempotency-Key")
                .retry_later());
            };
            if record.spec != spec {
                return Err(ApiError::unprocessable(
                    "idempotency_key_reused",
                    format!("this Idempotency-Key already names job {id}, submitted with a different spec; use a new key"),
                )
                .with_field("Idempotency-Key"));
            }
            let body = JobRef {
                id,
                state: record.state,
                warnings: Vec::new(),
            };
            Ok((StatusCode::OK, location(id), Json(body)).into_response())
        }
    }
}

/// Reads `Idempotency-Key`: 1..=255 visible ASCII characters, optionally quoted (the IETF
/// draft sends a structured-field string).
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or("");
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(ApiError::bad_request(
            "invalid_header",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
        .with_field("Idempotency-Key"));
    }
    Ok(Some(raw.to_owned()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only jobs in this state.
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// Only this tenant's jobs (a tenant-bound token lists only its own).
    #[param(max_length = 64)]
    tenant: Option<String>,
    /// Only jobs of this queue.
    #[param(max_length = 64)]
    queue: Option<String>,
    /// Only jobs of this task (`command` for commands).
    #[param(max_length = 64)]
    task: Option<String>,
    /// Only jobs that require this resource tag.
    #[param(max_length = 64)]
    tag: Option<String>,
    /// Only jobs with this label, as `key=value`.
    label: Option<String>,
    /// Only jobs created at or after this time (ms since the epoch, or RFC 3339).
    since: Option<String>,
    /// Only jobs created before this time (ms since the epoch, or RFC 3339).
    until: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ListResponse {
    jobs: Vec<JobRecord>,
    /// Pass back as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of jobs, newest first.", body = ListResponse),
        (status = 400, description = "A query parameter is invalid (`field` names it)."),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `GET /v1/jobs?state=&tenant=&queue=&task=&tag=&label=&since=&until=&limit=&cursor=`.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    caller.require(Role::Read)?;
    // The same filters as the dashboard's listing, checked by the same code.
    let mut filter = FilterParams {
        state: query.state,
        tenant: query.tenant,
        queue: query.queue,
        task: query.task,
        tag: query.tag,
        label: query.label,
        since: query.since,
        until: query.until,
    }
    .parse()
    .map_err(|e| ApiError::bad_request("invalid_query", e.message).with_field(e.field))?;
    if let Some(own) = caller.tenant() {
        if filter.tenant.as_deref().is_some_and(|asked| asked != own) {
            return Err(ApiError::forbidden(
                "tenant_forbidden",
                format!("this token lists only tenant {own:?}"),
            )
            .with_field("tenant"));
        }
        filter.tenant = Some(own.to_owned());
    }
    let limit = bounded_param("limit", query.limit.as_deref(), 50, 1..=1000)?;
    let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse::<JobId>().map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                "cursor must be the next_cursor of a previous page",
            )
            .with_field("cursor")
        })?),
    };
    let limit = usize::try_from(limit).unwrap_or(1000);
    let mut page = state.store().list(&filter, limit, cursor).await?;
    explain_waiting(&state, &mut page.jobs).await?;
    Ok(Json(ListResponse {
        jobs: page.jobs,
        next_cursor: page.next_cursor,
    }))
}

/// Gives each waiting job of a page without a reason of its own the reason its class's first
/// job waits (only that job gets one from the scheduler), so `warren ls` says why each waits.
async fn explain_waiting(state: &AppState, jobs: &mut [JobRecord]) -> Result<(), ApiError> {
    let unexplained: Vec<usize> = jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| j.state == JobState::Queued && j.pending_reason.is_none())
        .map(|(i, _)| i)
        .collect();
    let places = futures_util::future::join_all(
        unexplained
            .iter()
            .map(|&i| state.store().pending_position(jobs[i].id)),
    )
    .await;
    for (i, place) in unexplained.into_iter().zip(places) {
        if let Some(place) = place? {
            jobs[i].pending_reason = place.class_reason;
        }
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = JobId, Path, description = "The job id.")),
    responses(
        (status = 200, description = "Cancelled; the record as it is now.", body = JobRecord),
        (status = 400, description = "The id is not a job id."),
        (status = 404, description = "No such job (or another tenant's)."),
        (status = 409, description = "The job has already finished."),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `POST /v1/jobs/{id}/cancel`: cancels a job that has not finished; a running job's worker
/// is told to kill it. Answers the record (200), 404, or 409 if it has already finished.
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
) -> Result<Json<JobRecord>, ApiError> {
    // A job's tenant never changes, so checking it before the transition is enough. Whose
    // job it is comes first: another tenant's job is a 404 whatever the token's roles.
    load_for(&state, &caller, id).await?;
    caller.require(Role::Submit)?;
    let outcome = state
        .store()
        .transition(&Transition::new(id, JobState::Cancelled))
        .await?;
    match outcome {
        TransitionOutcome::Done(previous) => {
            tracing::info!(job_id = %id, %previous, caller = caller.name(), "job cancelled");
            record_action(&state, id, JobAction::now("cancel", caller.name(), "api")).await;
            if previous == JobState::Running {
                tell_workers(&state, id).await;
            }
        }
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
    load(&state, id).await.map(Json)
}

/// The answer to a retry: the new job.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Retried {
    /// The new job.
    id: JobId,
    /// Always `queued`.
    #[schema(value_type = String)]
    state: JobState,
    /// The job it runs again.
    retry_of: JobId,
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = JobId, Path, description = "The job to run again.")),
    responses(
        (status = 202, description = "A new job with the same spec (labelled `retry_of`) is in Redis and confirmed into intake.", body = Retried),
        (status = 400, description = "The id is not a job id."),
        (status = 404, description = "No such job (or another tenant's)."),
        (status = 409, description = "The job has not finished, or succeeded: only failed, timed-out and cancelled jobs are retried."),
        (status = 429, description = "The tenant submits faster than allowed (`Retry-After`)."),
        (status = 503, description = "Redis or RabbitMQ is unavailable."),
    ),
)]
/// `POST /v1/jobs/{id}/retry`: runs a failed, timed-out or cancelled job again with its
/// original spec, as a new job labelled `retry_of` (a terminal state is never left, so the
/// old job keeps its outcome and gets a `retry` action naming the new one). Submitted like any
/// job: the tenant's rate limit counts it, and 202 comes only after the Redis write and the
/// broker's confirm.
pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    JobIdParam(id): JobIdParam,
) -> Result<(StatusCode, Json<Retried>), ApiError> {
    let record = load_for(&state, &caller, id).await?;
    caller.require(Role::Submit)?;
    if !record.state.is_terminal() || record.state == JobState::Succeeded {
        return Err(ApiError::conflict(
            "not_retryable",
            format!(
                "job {id} is {}: only failed, timed-out or cancelled jobs can be retried",
                record.state
            ),
        ));
    }
    let mut spec = record.spec;
    spec.labels
        .insert(warren_store::RETRY_OF_LABEL.to_owned(), id.to_string());
    // The spec was checked when it was submitted; the added label can still break a cap.
    check_spec(&state, &spec, "").await.map_err(|e| {
        ApiError::conflict(
            "not_retryable",
            format!("job {id} cannot run again as it is: {}", e.detail),
        )
    })?;
    state.charge_submissions(&spec.tenant, 1)?;
    // No idempotency key: always a new job.
    let (Submitted::Created(new_id) | Submitted::Existing(new_id)) =
        accept_one(&state, spec, correlation.0, None).await?;
    tracing::info!(job_id = %new_id, retry_of = %id, caller = caller.name(), "job retried");
    let action = JobAction::now("retry", caller.name(), "api").with_detail(format!("as {new_id}"));
    record_action(&state, id, action).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(Retried {
            id: new_id,
            state: JobState::Queued,
            retry_of: id,
        }),
    ))
}

/// Adds an action to the job's history. Best effort: the action itself has happened.
async fn record_action(state: &AppState, id: JobId, action: JobAction) {
    if let Err(error) = state.store().record_action(id, &action).await {
        tracing::warn!(job_id = %id, error = %error_chain(&error), "cannot record an action in the job's history");
    }
}

/// Broadcasts `job.cancel` so the worker running the job kills it. Best effort: the job is
/// already cancelled in Redis, and a worker never records a result over a terminal state.
async fn tell_workers(state: &AppState, id: JobId) {
    let sent = match state.publisher().get().await {
        Ok(lease) => lease.publisher.broadcast_cancel(id).await,
        Err(error) => Err(error),
    };
    if let Err(error) = sent {
        tracing::warn!(job_id = %id, error = %error_chain(&error), "cannot tell workers to cancel a running job");
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct LogsQuery {
    /// Read lines after this one (`next` of the previous page).
    after: Option<String>,
    /// Most lines, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// A page of log lines.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LogsResponse {
    lines: Vec<LogLine>,
    /// Pass back as `after` to read on; `null` when the log is still empty.
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/logs",
    tag = "jobs",
    params(("id" = JobId, Path, description = "The job id."), LogsQuery),
    responses(
        (status = 200, description = "A page of log lines.", body = LogsResponse),
        (status = 400, description = "The id or a query parameter is invalid."),
        (status = 404, description = "No such job (or another tenant's)."),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `GET /v1/jobs/{id}/logs?after=&limit=`: up to `limit` (default 100, max 1000) lines after
/// the entry `after`.
pub(super) async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    JobIdParam(id): JobIdParam,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Json<LogsResponse>, ApiError> {
    let after = query.after.filter(|a| !a.is_empty());
    if let Some(after) = &after
        && !is_stream_id(after)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "after must be the id of a log line (as in `next`)",
        )
        .with_field("after"));
    }
    let limit = bounded_param("limit", query.limit.as_deref(), 100, 1..=1000)?;
    load_for(&state, &caller, id).await?;
    caller.require(Role::Read)?;
    let count = usize::try_from(limit).unwrap_or(1000);
    let lines = state.store().read_log(id, after.as_deref(), count).await?;
    let next = lines.last().map(|l| l.id.clone()).or(after);
    Ok(Json(LogsResponse { lines, next }))
}

/// A Redis stream id: `ms` or `ms-seq`.
fn is_stream_id(raw: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match raw.split_once('-') {
        Some((ms, seq)) => digits(ms) && digits(seq),
        None => digits(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_checked_and_unquoted() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert(&IDEMPOTENCY_HEADER, HeaderValue::from_static("\"abc-1\""));
        assert_eq!(idempotency_key(&headers).unwrap().as_deref(), Some("abc-1"));
        headers.insert(&IDEMPOTENCY_HEADER, HeaderValue::from_static("a b"));
        assert!(idempotency_key(&headers).is_err());
        headers.insert(&IDEMPOTENCY_HEADER, HeaderValue::from_static(""));
        assert!(idempotency_key(&headers).is_err());
    }

    #[test]
    fn stream_ids_are_recognised() {
        assert!(is_stream_id("1700000000000-0"));
        assert!(is_stream_id("1700000000000"));
        assert!(!is_stream_id("abc"));
        assert!(!is_stream_id("1-"));
        assert!(!is_stream_id("-1"));
    }
}
