//! Dead letters: list them (`GET /v1/dead`) and run a dead job again
//! (`POST /v1/dead/{id}/requeue`). The scheduler indexes every message of `{ns}.dead` in
//! Redis, so listing does not touch the queue.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use warren_protocol::JobEnvelope;
use warren_store::{DeadPage, RequeueError, Requeued};
use warren_topology::TopologyError;

use crate::auth::{Caller, Role};
use crate::extract::{ApiQuery, bounded_param};
use crate::problem::{ApiError, error_chain};
use crate::state::AppState;

/// How long RabbitMQ may take to confirm a requeued job into intake.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeadQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/dead",
    tag = "dead letters",
    params(DeadQuery),
    responses(
        (status = 200, description = "One page of dead letters, newest first, each with its reason.", body = DeadPage),
        (status = 400, description = "A query parameter is invalid (`field` names it)."),
        (status = 503, description = "Redis is unavailable."),
    ),
)]
/// `GET /v1/dead?limit=&cursor=`: dead letters, newest first, with their reason. A
/// tenant-bound token sees its tenant's only (a message with no readable tenant, such as a
/// malformed one, only tokens of every tenant see).
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DeadQuery>,
) -> Result<Json<DeadPage>, ApiError> {
    caller.require(Role::Read)?;
    let limit = bounded_param("limit", query.limit.as_deref(), 50, 1..=1000)?;
    let cursor = query.cursor.filter(|c| !c.is_empty());
    if let Some(cursor) = &cursor
        && !is_cursor(cursor)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "cursor must be the next_cursor of a previous page",
        )
        .with_field("cursor"));
    }
    let page = state
        .store()
        .list_dead(
            caller.tenant(),
            cursor.as_deref(),
            usize::try_from(limit).unwrap_or(1000),
        )
        .await?;
    Ok(Json(page))
}

/// `<13 digits>|<id>`, as the index spells its members.
fn is_cursor(raw: &str) -> bool {
    warren_store::is_dead_cursor(raw)
}

#[utoipa::path(
    post,
    path = "/v1/dead/{id}/requeue",
    tag = "dead letters",
    params(("id" = String, Path, description = "The dead letter's id (the job id, when it names a job).")),
    responses(
        (status = 202, description = "A new job from the dead job's spec is in Redis and confirmed into intake.", body = Requeued),
        (status = 404, description = "No such dead letter (or another tenant's)."),
        (status = 409, description = "The dead letter names no job (a malformed message), or its record expired."),
        (status = 503, description = "Redis or RabbitMQ is unavailable."),
    ),
)]
/// `POST /v1/dead/{id}/requeue` (admin): runs a dead job again as a new job with the dead
/// job's spec at attempt 1, labelled `requeued_from`; the dead job's record gets
/// `requeued_as` and leaves the dead letters. 202 with `{id, state, requeued_from}` once the
/// new job is in Redis and confirmed into intake. 404 for an unknown id, 409 for a dead
/// letter that names no job (a malformed message: listed, never runnable) or whose record
/// has expired.
pub(super) async fn requeue(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Requeued>), ApiError> {
    let not_found = || {
        ApiError::not_found(
            "dead_letter_not_found",
            format!("no dead letter {id}: never dead-lettered, already requeued, or forgotten"),
        )
    };
    // Another tenant's dead letter is a 404, like a missing one.
    state
        .store()
        .dead_letter_for(&id, caller.tenant())
        .await?
        .ok_or_else(not_found)?;
    caller.require(Role::Admin)?;
    let for_publish = state.clone();
    let publish = |envelope: JobEnvelope| async move { publish(&for_publish, &envelope).await };
    match state.store().requeue_dead(&id, publish).await {
        Ok(requeued) => {
            tracing::info!(job_id = %requeued.id, requeued_from = %requeued.requeued_from, "dead job requeued");
            Ok((StatusCode::ACCEPTED, Json(requeued)))
        }
        Err(RequeueError::NotFound(_)) => Err(not_found()),
        Err(RequeueError::NotRequeueable(why)) => Err(ApiError::conflict("not_requeueable", why)),
        Err(RequeueError::Store(error)) => Err(error.into()),
        Err(RequeueError::Publish(error)) => {
            tracing::error!(error = %error_chain(&error), "publishing a requeued job failed");
            Err(ApiError::unavailable_quiet("unavailable"))
        }
    }
}

async fn publish(state: &AppState, envelope: &JobEnvelope) -> Result<(), TopologyError> {
    let lease = state.publisher().get().await?;
    let sent = async {
        let pending = lease.publisher.send_intake(envelope).await?;
        tokio::time::timeout(CONFIRM_TIMEOUT, pending.confirmed())
            .await
            .map_err(|_| TopologyError::Connect {
                message: format!("no publisher confirm within {CONFIRM_TIMEOUT:?}"),
            })?
    }
    .await;
    if sent.is_err() {
        state.publisher().discard(&lease).await;
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_index_members() {
        assert!(is_cursor(
            "1764556800000|0190f3a2-7c1e-7d2a-9b1e-1234567890ab"
        ));
        assert!(!is_cursor("0190f3a2-7c1e-7d2a-9b1e-1234567890ab"));
        assert!(!is_cursor("17645|x"));
        assert!(!is_cursor("1764556800000|a b"));
    }
}
