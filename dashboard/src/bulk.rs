//! Bulk actions: cancel or retry every job matching a filter, not only the page shown.
//!
//! The server walks the matching jobs itself, a batch at a time, through the same listing
//! as the Jobs view (one index, never a scan of all jobs). It reads only the states the
//! action applies to (unfinished jobs for cancel; failed, timed-out and cancelled ones for
//! retry), so a filter over a long history does not read its succeeded jobs. A dry run
//! counts them for the confirmation dialog; the real run acts on at most [`MAX_BULK`] jobs
//! and says when there were more.

use axum::Json;
use axum::extract::State;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use warren_protocol::{JobId, JobState};
use warren_store::{FilterParams, TransitionOutcome};

use crate::actions::{cancel_one, retry_one, retryable};
use crate::api::parse_filter;
use warren_kit::auth::Role;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Jobs read, and acted on concurrently, per round.
const BATCH: usize = 100;
/// Retries waiting for their publisher confirms at once.
const RETRY_CONCURRENCY: usize = 16;
/// Most jobs one bulk request counts or acts on.
pub(crate) const MAX_BULK: usize = 10_000;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BulkAction {
    /// Cancel the unfinished jobs.
    Cancel,
    /// Submit the failed, timed-out and cancelled jobs again.
    Retry,
}

impl BulkAction {
    fn applies_to(self, state: JobState) -> bool {
        match self {
            Self::Cancel => !state.is_terminal(),
            Self::Retry => retryable(state),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    action: BulkAction,
    /// The same filters as `GET /api/jobs`.
    #[serde(default)]
    filter: FilterParams,
    /// Only count the jobs the action would apply to.
    #[serde(default)]
    dry_run: bool,
}

/// The answer: how many jobs matched and what became of them.
#[derive(Debug, Serialize)]
pub(crate) struct BulkOutcome {
    action: BulkAction,
    dry_run: bool,
    /// Jobs the action applied to when they were read.
    matched: usize,
    /// Jobs cancelled or retried.
    done: usize,
    /// Jobs that moved on between the read and the action (finished meanwhile).
    skipped: usize,
    /// Jobs whose action failed (Redis or RabbitMQ trouble; see the log).
    failed: usize,
    /// More than [`MAX_BULK`] jobs matched: only the newest were counted or acted on.
    truncated: bool,
}

/// `POST /api/jobs/bulk` `{action: cancel|retry, filter: {state, tenant, queue, task, tag,
/// label, since, until}, dry_run}`.
pub(crate) async fn bulk(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<BulkRequest>,
) -> Result<Json<BulkOutcome>, ApiError> {
    // Each job is acted on exactly as the single action: the `submit` role, and only the
    // caller's tenant (the filter is bound to it).
    caller.require(Role::Submit)?;
    let filter = parse_filter(request.filter, &caller)?;
    let action = request.action;
    let states: Vec<JobState> = JobState::ALL
        .into_iter()
        .filter(|s| action.applies_to(*s) && filter.state.is_none_or(|f| f == *s))
        .collect();
    let mut outcome = BulkOutcome {
        action,
        dry_run: request.dry_run,
        matched: 0,
        done: 0,
        skipped: 0,
        failed: 0,
        truncated: false,
    };
    'states: for job_state in states {
        let mut filter = filter.clone();
        filter.state = Some(job_state);
        let mut cursor: Option<JobId> = None;
        loop {
            let room = MAX_BULK - outcome.matched;
            let page = state
                .store()
                .list(&filter, BATCH.min(room.max(1)), cursor)
                .await?;
            if room == 0 {
                outcome.truncated = !page.jobs.is_empty();
                break 'states;
            }
            cursor = page.next_cursor.as_deref().and_then(|c| c.parse().ok());
            outcome.matched += page.jobs.len();
            if !request.dry_run {
                apply(&state, &caller.name, action, page.jobs, &mut outcome).await;
            }
            if cursor.is_none() {
                break;
            }
        }
    }
    tracing::info!(
        ?action,
        dry_run = outcome.dry_run,
        matched = outcome.matched,
        done = outcome.done,
        skipped = outcome.skipped,
        failed = outcome.failed,
        caller = %caller.name,
        "bulk action from the dashboard"
    );
    Ok(Json(outcome))
}

async fn apply(
    state: &AppState,
    by: &str,
    action: BulkAction,
    jobs: Vec<warren_store::JobRecord>,
    outcome: &mut BulkOutcome,
) {
    match action {
        BulkAction::Cancel => {
            let results = join_all(
                jobs.iter()
                    .map(|j| cancel_one(state, j.id, by, Some("bulk"))),
            )
            .await;
            for result in results {
                match result {
                    Ok(TransitionOutcome::Done(_)) => outcome.done += 1,
                    Ok(_) => outcome.skipped += 1,
                    Err(_) => outcome.failed += 1,
                }
            }
        }
        BulkAction::Retry => {
            // A few at a time: each retry waits for its publisher confirm, and a burst of
            // thousands of publishes must not be thousands of waiting tasks.
            let mut jobs = jobs.into_iter().peekable();
            while jobs.peek().is_some() {
                let round: Vec<_> = jobs.by_ref().take(RETRY_CONCURRENCY).collect();
                let results = join_all(
                    round
                        .into_iter()
                        .map(|j| retry_one(state, j, by, Some("bulk"))),
                )
                .await;
                for result in results {
                    match result {
                        Ok(_) => outcome.done += 1,
                        Err(_) => outcome.failed += 1,
                    }
                }
            }
        }
    }
}
