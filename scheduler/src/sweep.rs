//! The sweeper: every job that is `scheduled` or `running` belongs to a worker; when that
//! worker is gone (no heartbeat) and holds no lease on the job, the job goes back to the
//! pending index. So a job whose only message was lost (acked as a duplicate after a
//! reconnect, or stranded in a dead worker's queue) is never stuck: Redis, not a message,
//! says who owns it.

use std::collections::HashSet;

use tracing::{info, warn};
use warren_protocol::{JobId, JobState, WorkerId};
use warren_store::{Store, Transition, TransitionOutcome};

use crate::intake::{self, Admitted, Estimates};
use crate::policy::PolicyConfig;

/// Most jobs looked at per state and sweep.
const SWEEP_LIMIT: isize = 10_000;

/// A job whose worker was lost this many times while running it is a poison job (it kills
/// its workers, or the machines it lands on die): it fails instead of taking down worker
/// after worker for ever.
pub(crate) const MAX_WORKER_LOSSES: u32 = 3;

/// Finds jobs owned by workers that are gone and puts them back in the pending index.
/// `live` are the workers the scheduler hears from. Returns the jobs to order again.
pub(crate) async fn sweep(
    store: &Store,
    live: &HashSet<WorkerId>,
    estimates: &Estimates,
    config: &PolicyConfig,
) -> Vec<Admitted> {
    let mut back = Vec::new();
    for state in [JobState::Scheduled, JobState::Running] {
        let ids = match store.ids_in_state(state, SWEEP_LIMIT).await {
            Ok(ids) => ids,
            Err(error) => {
                warn!(%error, "sweep could not list jobs");
                return back;
            }
        };
        // Most jobs belong to live workers: read the records a page at a time and look
        // closer only at the others.
        for page in ids.chunks(500) {
            let Ok(records) = store.get_many(page).await else {
                return back;
            };
            for (id, record) in page.iter().zip(records) {
                let owned_by_live = record
                    .and_then(|r| r.worker)
                    .is_some_and(|w| live.contains(&WorkerId::from_raw(w)));
                if owned_by_live {
                    continue;
                }
                if let Some(admitted) = reclaim(store, *id, live, estimates, config).await {
                    back.push(admitted);
                }
            }
        }
    }
    back
}

async fn reclaim(
    store: &Store,
    id: JobId,
    live: &HashSet<WorkerId>,
    estimates: &Estimates,
    config: &PolicyConfig,
) -> Option<Admitted> {
    let record = store.get(id).await.ok()??;
    if !matches!(record.state, JobState::Scheduled | JobState::Running) {
        return None;
    }
    let worker = WorkerId::from_raw(record.worker.clone()?);
    if live.contains(&worker) || store.worker_alive(&worker).await.unwrap_or(true) {
        return None;
    }
    // A lease still held means the worker may be alive but silent (a partition): wait
    // for it to lapse rather than risk two copies.
    if store.lease_holder(id).await.ok()?.is_some() {
        return None;
    }
    let losses = record.takeovers + 1;
    if record.state == JobState::Running && losses >= MAX_WORKER_LOSSES {
        let reason = format!(
            "poison job: its worker was lost {losses} times while running it \
             (limit {MAX_WORKER_LOSSES})"
        );
        let fail = Transition::new(id, JobState::Failed)
            .at_attempt(record.attempt)
            .set("takeovers", losses)
            .set("error", &reason);
        if let Ok(TransitionOutcome::Done(_)) = store.transition(&fail).await {
            warn!(job_id = %id, %worker, %reason, "job failed as poison");
        }
        return None;
    }
    let task = record.spec.validate().ok()?;
    let mut admitted = intake::classify(id, &record.spec, &task, record.created_ms, estimates);
    // It was placed once: waiting for placement again is not what `schedule_timeout_s` bounds.
    admitted.deadline_ms = None;
    // Index first, then the state: if the transition fails (the job moved on), the entry is
    // dropped at dispatch, where the record is read again.
    intake::persist(store, std::slice::from_ref(&admitted), config)
        .await
        .ok()?;
    let back = Transition::new(id, JobState::Queued)
        .at_attempt(record.attempt)
        // Not a new attempt: the job did not fail, its worker vanished.
        .set("takeovers", record.takeovers + 1)
        .set(
            "pending_reason",
            "worker_lost: its worker stopped without finishing it",
        );
    match store.transition(&back).await {
        Ok(TransitionOutcome::Done(_)) => {
            info!(job_id = %id, %worker, "job of a lost worker returns to the pending index");
            Some(admitted)
        }
        _ => None,
    }
}
