//! Everything that is not about one job: workers, tasks, stats, health, and the fallbacks.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use warren_protocol::{Heartbeat, JobId, JobState};
use warren_store::JobFilter;

use crate::auth::{Caller, Role};
use crate::problem::{ApiError, error_chain};
use crate::state::AppState;

/// How long each readiness check may take.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct WorkersResponse {
    workers: Vec<WorkerView>,
}

/// A worker's last heartbeat, plus the jobs the job records say it runs now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct WorkerView {
    #[serde(flatten)]
    heartbeat: Heartbeat,
    /// Jobs in `running` whose `worker` is this one, from the records: unlike the
    /// heartbeat's `busy` and `running`, this does not lag a heartbeat interval.
    running_jobs: Vec<JobId>,
}

/// Most running jobs read to attribute them to workers (pages of [`RUNNING_PAGE`]).
const RUNNING_MAX: usize = 10_000;
const RUNNING_PAGE: usize = 1000;

#[utoipa::path(
    get,
    path = "/v1/workers",
    tag = "cluster",
    responses(
        (status = 200, description = "Every live worker's last heartbeat, with the jobs it runs.", body = WorkersResponse),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `GET /v1/workers`: the last heartbeat of every live worker, with the jobs it runs.
pub(super) async fn workers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WorkersResponse>, ApiError> {
    caller.require(Role::Read)?;
    let store = state.store();
    let heartbeats = store.live_workers().await?;
    let mut running: HashMap<String, Vec<JobId>> = HashMap::new();
    let filter = JobFilter {
        state: Some(JobState::Running),
        ..JobFilter::default()
    };
    let mut cursor = None;
    let mut seen = 0;
    loop {
        let page = store.list(&filter, RUNNING_PAGE, cursor).await?;
        seen += page.jobs.len();
        for job in page.jobs {
            // Other tenants' job ids are not the caller's to see.
            if !caller.owns(&job) {
                continue;
            }
            if let Some(worker) = job.worker {
                running.entry(worker).or_default().push(job.id);
            }
        }
        let Some(next) = page.next_cursor.and_then(|c| c.parse().ok()) else {
            break;
        };
        if seen >= RUNNING_MAX {
            break;
        }
        cursor = Some(next);
    }
    let workers = heartbeats
        .into_iter()
        .map(|heartbeat| WorkerView {
            running_jobs: running
                .remove(heartbeat.worker_id.as_str())
                .unwrap_or_default(),
            heartbeat,
        })
        .collect();
    Ok(Json(WorkersResponse { workers }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TasksResponse {
    tasks: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/v1/tasks",
    tag = "cluster",
    responses(
        (status = 200, description = "The task names a job may use, sorted.", body = TasksResponse),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `GET /v1/tasks`: the task names a job may use (built-ins and registered ones), sorted.
pub(super) async fn tasks(State(state): State<AppState>) -> Result<Json<TasksResponse>, ApiError> {
    let tasks = state.store().known_tasks().await?;
    Ok(Json(TasksResponse { tasks }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct StatsResponse {
    #[schema(value_type = BTreeMap<String, u64>)]
    by_state: BTreeMap<&'static str, u64>,
    total: u64,
}

#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "cluster",
    responses(
        (status = 200, description = "How many jobs are in each state (every tenant: admin only).", body = StatsResponse),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `GET /v1/stats`: how many jobs are in each state.
pub(super) async fn stats(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<StatsResponse>, ApiError> {
    // The counts cover every tenant.
    caller.require(Role::Admin)?;
    let counts = state.store().count_by_state().await?;
    let total = counts.iter().map(|(_, n)| n).sum();
    let by_state = counts.into_iter().map(|(s, n)| (s.as_str(), n)).collect();
    Ok(Json(StatsResponse { by_state, total }))
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    security(()),
    responses((status = 200, description = "`{\"status\":\"ok\"}`", body = super::openapi::Status)),
)]
/// `GET /healthz`: the process is up and serving.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus text (the read role when tokens are on: labels name tenants).
pub(super) async fn metrics(caller: Caller) -> Result<axum::response::Response, ApiError> {
    caller.require(Role::Read)?;
    Ok(warren_kit::metrics::render(&warren_kit::metrics::install()))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    security(()),
    responses(
        (status = 200, description = "`{\"status\":\"ready\",\"scheduler\":\"active|missing\",\"rabbitmq_node\":\"host:port\"}`", body = super::openapi::Status),
        (status = 503, description = "Redis, RabbitMQ or (with WARREN_READY_REQUIRES_SCHEDULER) the scheduler is missing; `detail` says which."),
    ),
)]
/// `GET /readyz`: Redis answers, RabbitMQ confirms a probe publish (an open channel is not
/// enough: during a memory alarm the broker blocks publishers and submissions hang), and an
/// active scheduler is there (its status key, rewritten every 0.5 s, has not expired).
/// 200 `{"status":"ready","scheduler":"active|missing","rabbitmq_node":"host:port"}` (the
/// node of a cluster the submitter publishes through), or a 503 problem whose detail says
/// which check failed. A missing scheduler fails readiness only with
/// `WARREN_READY_REQUIRES_SCHEDULER` (the default).
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let redis = tokio::time::timeout(READY_CHECK_TIMEOUT, state.store().ping());
    let amqp = tokio::time::timeout(READY_CHECK_TIMEOUT, async {
        let lease = state.publisher().get().await?;
        lease.publisher.probe().await
    });
    let scheduler = tokio::time::timeout(READY_CHECK_TIMEOUT, state.store().scheduler_status());
    let (redis, amqp, scheduler) = tokio::join!(redis, amqp, scheduler);
    let redis_error = match redis {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(error_chain(&e)),
        Err(_) => Some("ping timed out".to_owned()),
    };
    let amqp_error = match amqp {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(error_chain(&e)),
        Err(_) => Some(format!(
            "no publisher confirm within {READY_CHECK_TIMEOUT:?} (is the broker blocking publishers?)"
        )),
    };
    // Unknown (Redis failing) counts as missing; the Redis check reports the cause.
    let scheduler = match scheduler {
        Ok(Ok(Some(_))) => "active",
        _ => "missing",
    };
    let scheduler_blocks = scheduler == "missing" && state.ready_requires_scheduler();
    if redis_error.is_none() && amqp_error.is_none() && !scheduler_blocks {
        return Ok(Json(json!({
            "status": "ready",
            "scheduler": scheduler,
            "rabbitmq_node": state.publisher().node(),
        })));
    }
    tracing::error!(redis = ?redis_error, rabbitmq = ?amqp_error, scheduler, "not ready");
    let mut failed = Vec::new();
    if redis_error.is_some() {
        failed.push("redis: unavailable".to_owned());
    }
    if amqp_error.is_some() {
        failed.push("rabbitmq: a publish cannot be confirmed".to_owned());
    }
    if scheduler_blocks {
        failed.push("scheduler: missing".to_owned());
    }
    Err(ApiError::unavailable_quiet("not_ready")
        .with_detail(format!("not ready: {}", failed.join("; "))))
}

/// Any unknown route: 404 problem.
pub(super) async fn not_found() -> ApiError {
    ApiError::from_status(StatusCode::NOT_FOUND)
}

/// A known route with the wrong method: 405 problem (axum adds `Allow`).
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED)
}
