//! The read API behind the pages: JSON over what Redis holds.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use warren_protocol::{JobId, JobState};
use warren_store::{FilterParams, JobFilter, JobRecord, LogLine, Page, SchedulerInfo, Store};

use warren_kit::auth::Role;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::overview::{self, Overview, WorkerView};
use crate::state::AppState;

/// How often an open log tail looks for new lines. Log lines publish no event, so the tail
/// reads the stream (one `XRANGE` from the last id seen) on this beat, per open tail.
const LOG_POLL: Duration = Duration::from_millis(500);
/// Most log lines sent in one message.
const LOG_BATCH: usize = 200;

/// `GET /api/overview`.
pub(crate) async fn get_overview(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Overview>, ApiError> {
    // Every tenant's counts, like the submitter's `GET /v1/stats`: admin only.
    caller.require(Role::Admin)?;
    Ok(Json(overview::overview(state.store()).await?))
}

/// Most running jobs of a tenant read to keep its own in the workers' running lists.
const OWN_RUNNING_MAX: usize = 10_000;

/// `GET /api/workers`: live, draining and recently lost workers (`read`, as the submitter's
/// `GET /v1/workers`). A tenant's token sees every worker, but in each heartbeat's running
/// list only its own tenant's jobs.
pub(crate) async fn get_workers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WorkerView>>, ApiError> {
    caller.require(Role::Read)?;
    let mut workers = overview::workers(state.store()).await?;
    let Some(own) = caller.tenant_scope() else {
        return Ok(Json(workers));
    };
    // The tenant's running jobs, through its own index (never every tenant's jobs).
    let filter = JobFilter {
        state: Some(JobState::Running),
        tenant: Some(own.to_owned()),
        ..JobFilter::default()
    };
    let mut mine = std::collections::HashSet::new();
    let mut cursor = None;
    while mine.len() < OWN_RUNNING_MAX {
        let page = state.store().list(&filter, 500, cursor).await?;
        mine.extend(page.jobs.iter().map(|j| j.id));
        let Some(next) = page.next_cursor.and_then(|c| c.parse().ok()) else {
            break;
        };
        cursor = Some(next);
    }
    for worker in &mut workers {
        if let Some(heartbeat) = worker.heartbeat.as_mut() {
            heartbeat.running.retain(|id| mine.contains(id));
        }
    }
    Ok(Json(workers))
}

/// `GET /api/scheduler`: what the scheduler publishes in Redis, as stored.
pub(crate) async fn get_scheduler(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SchedulerInfo>, ApiError> {
    // Every tenant's usage and pending work, like the submitter's `GET /v1/scheduler`.
    caller.require(Role::Admin)?;
    Ok(Json(state.store().scheduler_info().await?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(flatten)]
    filter: FilterParams,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Checks filter parameters, answering 400 `invalid_query` naming the parameter, and binds
/// the filter to the caller's tenant: a tenant token filtering on another tenant is a 403,
/// as in the submitter's `GET /v1/jobs`.
pub(crate) fn parse_filter(params: FilterParams, caller: &Caller) -> Result<JobFilter, ApiError> {
    let mut filter = params.parse().map_err(|e| {
        ApiError::bad_request("invalid_query", format!("{}: {}", e.field, e.message))
    })?;
    if let Some(own) = caller.tenant_scope() {
        if filter.tenant.as_deref().is_some_and(|asked| asked != own) {
            return Err(ApiError::forbidden(
                "tenant_forbidden",
                format!("tenant: this token sees only tenant {own:?}"),
            ));
        }
        filter.tenant = Some(own.to_owned());
    }
    Ok(filter)
}

/// `GET /api/jobs?state=&tenant=&queue=&task=&tag=&label=&since=&until=&limit=&cursor=`: a
/// page of jobs, newest first (the store's listing, reading the narrowest index among the
/// filters; `next_cursor` is absent on the last page).
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    caller.require(Role::Read)?;
    let filter = parse_filter(query.filter, &caller)?;
    let limit = page_limit(query.limit)?;
    let cursor = match non_empty(query.cursor) {
        None => None,
        Some(raw) => Some(raw.parse::<JobId>().map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                "cursor must be the next_cursor of a previous page",
            )
        })?),
    };
    Ok(Json(state.store().list(&filter, limit, cursor).await?))
}

/// A page's `limit` parameter: 1 to 500, 25 when absent; 400 `invalid_query` otherwise.
pub(crate) fn page_limit(raw: Option<String>) -> Result<usize, ApiError> {
    let Some(raw) = non_empty(raw) else {
        return Ok(25);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=500).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_query", "limit must be a number from 1 to 500")
        })
}

fn non_empty(raw: Option<String>) -> Option<String> {
    raw.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty())
}

/// Parses a job id from the path, answering 400 in the API's shape.
pub(crate) fn job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request("invalid_job_id", format!("{raw:?} is not a job id")))
}

/// Reads a job or answers 404.
pub(crate) async fn load(store: &Store, id: JobId) -> Result<JobRecord, ApiError> {
    store.get(id).await?.ok_or_else(|| job_not_found(id))
}

/// Reads a job the caller may see: another tenant's job is a 404 like a missing one, so
/// that ids cannot be probed (the submitter's rule).
pub(crate) async fn load_for(
    store: &Store,
    caller: &Caller,
    id: JobId,
) -> Result<JobRecord, ApiError> {
    let record = load(store, id).await?;
    if !caller.owns(&record) {
        return Err(job_not_found(id));
    }
    Ok(record)
}

/// 404 for a job id nobody knows.
pub(crate) fn job_not_found(id: JobId) -> ApiError {
    ApiError::not_found(
        "job_not_found",
        format!("no job {id}: it never existed or has expired"),
    )
}

/// `GET /api/jobs/{id}`: the job record (spec, timestamps, pending reason, result, error).
pub(crate) async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    // Whose job it is first: another tenant's job is a 404 whatever the token's roles.
    let record = load_for(state.store(), &caller, job_id(&raw)?).await?;
    caller.require(Role::Read)?;
    Ok(Json(record))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogQuery {
    after: Option<String>,
}

#[derive(Debug, Serialize)]
struct LogBatch {
    lines: Vec<LogLine>,
}

/// `GET /api/jobs/{id}/logs/live?after=`: the job's log as server-sent events: `lines`
/// events (`{"lines":[…]}`) as lines arrive, then one `end` event (data: the final state)
/// once the job has finished and every line has been sent.
pub(crate) async fn tail_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = job_id(&raw)?;
    load_for(state.store(), &caller, id).await?;
    caller.require(Role::Read)?;
    let tail = Tail {
        store: state.store().clone(),
        id,
        after: non_empty(query.after),
        done: false,
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = tail.next_event().await?;
        Some((Ok(event), tail))
    })
    .take_until(state.stopping().clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct Tail {
    store: Store,
    id: JobId,
    after: Option<String>,
    done: bool,
}

impl Tail {
    /// Waits for the next event; `None` once `end` has been sent.
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        loop {
            // The state is read before the lines: lines written before a terminal state are
            // then always read before `end` is sent.
            let job_state = self.store.state(self.id).await;
            let lines = self
                .store
                .read_log(self.id, self.after.as_deref(), LOG_BATCH)
                .await;
            match (job_state, lines) {
                (_, Ok(lines)) if !lines.is_empty() => {
                    self.after = lines.last().map(|l| l.id.clone());
                    let event = Event::default()
                        .event("lines")
                        .json_data(LogBatch { lines })
                        .unwrap_or_else(|_| Event::default().event("lines").data("{\"lines\":[]}"));
                    return Some(event);
                }
                (Ok(state), Ok(_)) if state.is_none_or(JobState::is_terminal) => {
                    self.done = true;
                    let state = state.map_or("expired", JobState::as_str);
                    return Some(Event::default().event("end").data(state));
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::debug!(job_id = %self.id, error = %crate::error::chain(&error), "log tail read failed");
                }
                _ => {}
            }
            tokio::time::sleep(LOG_POLL).await;
        }
    }
}

/// `GET /healthz`: the process answers and Redis does.
pub(crate) async fn healthz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store().ping().await?;
    Ok("ok")
}

/// Any path no route matches.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such page or endpoint")
}
