//! Dead letters: the list (`GET /api/dead`) and the requeue of a dead job
//! (`POST /api/dead/{id}/requeue`), through the same store calls as the submitter's
//! `GET /v1/dead` and `POST /v1/dead/{id}/requeue` (the scheduler keeps the index; the
//! store makes the new job and undoes it when the publish fails).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use warren_kit::auth::Role;
use warren_protocol::JobEnvelope;
use warren_store::{DeadPage, JobAction, RequeueError, Requeued};

use crate::actions::{VIA, note, publish_envelope};
use crate::api::page_limit;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct DeadQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/dead?limit=&cursor=`: dead letters, newest first, with their reason; 25 a page
/// (`limit` 1 to 500). A tenant token sees its tenant's only.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DeadQuery>,
) -> Result<Json<DeadPage>, ApiError> {
    caller.require(Role::Read)?;
    let limit = page_limit(query.limit)?;
    let cursor = query.cursor.filter(|c| !c.is_empty());
    if let Some(cursor) = &cursor
        && !warren_store::is_dead_cursor(cursor)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "cursor must be the next_cursor of a previous page",
        ));
    }
    let page = state
        .store()
        .list_dead(caller.tenant_scope(), cursor.as_deref(), limit)
        .await?;
    Ok(Json(page))
}

/// `POST /api/dead/{id}/requeue` (admin, as in the submitter): runs a dead job again as a
/// new job with its spec, labelled `requeued_from`; the dead job's timeline gets a `requeue`
/// action naming the token and the new job. 202 `{id, state, requeued_from}`; 404 for an
/// unknown id or another tenant's; 409 for a dead letter that names no job or whose record
/// expired; 503 when Redis or RabbitMQ failed (nothing is left half-made).
pub(crate) async fn requeue(
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
    // Whose it is first: another tenant's dead letter is a 404, like a missing one.
    state
        .store()
        .dead_letter_for(&id, caller.tenant_scope())
        .await?
        .ok_or_else(not_found)?;
    caller.require(Role::Admin)?;
    let for_publish = state.clone();
    let publish =
        |envelope: JobEnvelope| async move { publish_envelope(&for_publish, &envelope).await };
    match state.store().requeue_dead(&id, publish).await {
        Ok(requeued) => {
            tracing::info!(job_id = %requeued.id, requeued_from = %requeued.requeued_from, caller = %caller.name, "dead job requeued from the dashboard");
            metrics::counter!("warren_dashboard_actions_total", "action" => "requeue").increment(1);
            let action = JobAction::now("requeue", &caller.name, VIA)
                .with_detail(format!("as {}", requeued.id));
            note(&state, requeued.requeued_from, &action).await;
            Ok((StatusCode::ACCEPTED, Json(requeued)))
        }
        Err(RequeueError::NotFound(_)) => Err(not_found()),
        Err(RequeueError::NotRequeueable(why)) => Err(ApiError::conflict("not_requeueable", why)),
        Err(RequeueError::Store(error)) => Err(error.into()),
        Err(RequeueError::Publish(error)) => Err(ApiError::unavailable(
            "publishing a requeued job failed",
            &error,
        )),
    }
}
