//! The sweeper: every job that is `scheduled` or `running` belongs to a worker; when that
//! worker is gone (no heartbeat) and holds no lease on the job, the job goes back to the
//! pending index. So a job whose only message was lost (acked as a duplicate after a
//! reconnect, or stranded in a dead worker's queue) is never stuck: Redis, not a message,
//! says who owns it.

use std::collections::HashSet;

use tracing::{info, warn};
use warren_protocol::{JobEnvelope, JobId, JobState, WorkerId};
use warren_store::{JobRecord, Store, Transition, TransitionOutcome};
use warren_topology::{Publisher, job_properties};

use crate::intake::{self, Admitted, Estimates};
use crate::policy::PolicyConfig;

/// Most jobs looked at per state and sweep.
const SWEEP_LIMIT: isize = 10_000;

/// Finds jobs owned by workers that are gone and puts them back in the pending index.
/// `live` are the workers the scheduler hears from. Returns the jobs to order again.
/// When a lost job is a poison job instead.
pub(crate) struct Limits<'a> {
    /// To send poison jobs to `{ns}.dead`.
    pub(crate) publisher: &'a Publisher,
    /// Workers a job may lose before it is a poison job (`WARREN_MAX_TAKEOVERS`).
    pub(crate) max_takeovers: u32,
}

pub(crate) async fn sweep(
    store: &Store,
    live: &HashSet<WorkerId>,
    estimates: &Estimates,
    config: &PolicyConfig,
    limits: &Limits<'_>,
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
                if let Some(admitted) = reclaim(store, *id, live, estimates, config, limits).await {
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
    limits: &Limits<'_>,
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
    if record.takeovers >= limits.max_takeovers {
        poison(store, limits, &record, &worker).await;
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

/// A job whose workers keep dying under it (a crash, an OOM kill of the whole worker) would
/// take down every worker it reaches: it fails with the reason and goes to `{ns}.dead`,
/// from where an operator can requeue it once it is fixed.
async fn poison(store: &Store, limits: &Limits<'_>, record: &JobRecord, worker: &WorkerId) {
    let reason = format!(
        "poison job: its worker was lost {} times (limit WARREN_MAX_TAKEOVERS = {}), last {worker}",
        record.takeovers + 1,
        limits.max_takeovers
    );
    let fail = Transition::new(record.id, JobState::Failed)
        .only_from(&[JobState::Scheduled, JobState::Running])
        .at_attempt(record.attempt)
        .set("takeovers", record.takeovers + 1)
        .set("error", &reason)
        .set("dead_reason", &reason);
    if !matches!(
        store.transition(&fail).await,
        Ok(TransitionOutcome::Done(_))
    ) {
        return;
    }
    warn!(job_id = %record.id, %reason, "poison job failed and dead-lettered");
    let mut envelope =
        JobEnvelope::first_attempt(record.id, record.spec.clone(), record.created_ms, None);
    envelope.attempt = record.attempt;
    let sent = async {
        limits
            .publisher
            .send_dead(&envelope.to_bytes(), job_properties(&envelope), &reason)
            .await?
            .confirmed()
            .await
    };
    if let Err(error) = sent.await {
        // The job is failed with its reason already; only the index entry is missing.
        warn!(job_id = %record.id, %error, "could not dead-letter a poison job");
    }
}
