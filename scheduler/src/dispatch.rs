//! Dispatch: chosen jobs go to their workers' queues, in the order the policy chose them
//! (a worker runs what it is sent in order). Publish (confirmed) first, then record
//! `scheduled` and take the job out of the pending index: a crash between the steps at worst
//! leaves a duplicate, which the worker's claim absorbs (I3).

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use warren_protocol::{ENVELOPE_SCHEMA_VERSION, JobEnvelope, JobId, JobState};
use warren_store::{JobRecord, Store, StoreError, Transition};
use warren_topology::{Publisher, TopologyError};

use crate::intake;
use crate::policy::Dispatch;

/// A job to send, with the pool name of the worker it goes to (recorded on the job).
pub(crate) type Order = (Dispatch, String);

/// What became of a dispatch, reported back to the scheduling loop.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The job was no longer waiting (finished, or run elsewhere): forget it.
    Gone(JobId),
    /// It could not be sent now: it waits again, after a pause.
    Failed(Box<Dispatch>),
}

/// Sends orders as they come, coalescing what queued up meanwhile into one batch: records
/// read concurrently, messages published in order, confirms awaited together.
pub(crate) async fn run(
    mut orders: mpsc::UnboundedReceiver<Vec<Order>>,
    store: Store,
    publisher: Publisher,
    outcomes: mpsc::UnboundedSender<Vec<Outcome>>,
) {
    while let Some(mut batch) = orders.recv().await {
        while let Ok(more) = orders.try_recv() {
            batch.extend(more);
        }
        let done = send_batch(&store, &publisher, batch).await;
        if !done.is_empty() && outcomes.send(done).is_err() {
            return;
        }
    }
}

async fn send_batch(store: &Store, publisher: &Publisher, batch: Vec<Order>) -> Vec<Outcome> {
    let records = join_all(batch.iter().map(|(d, _)| store.get(d.job))).await;
    let mut outcomes = Vec::new();
    let mut sent = Vec::new();
    for ((dispatch, pool), record) in batch.into_iter().zip(records) {
        match prepare(store, &dispatch, record).await {
            Ok(Some(envelope)) => {
                // In order: the publish frame goes out before the next one.
                match publisher.send_worker(&dispatch.worker, &envelope).await {
                    Ok(pending) => {
                        let sent_at = (envelope.attempt == 1).then_some(envelope.created_at_ms);
                        sent.push((dispatch, pool, envelope.attempt, sent_at, pending));
                    }
                    Err(error) => outcomes.push(failed(dispatch, &error.to_string())),
                }
            }
            Ok(None) => outcomes.push(Outcome::Gone(dispatch.job)),
            Err(error) => outcomes.push(failed(dispatch, &error.to_string())),
        }
    }
    let confirmed = join_all(sent.into_iter().map(
        |(dispatch, pool, attempt, created_ms, pending)| async move {
            let confirm: Result<(), TopologyError> = pending.confirmed().await;
            match confirm {
                Ok(()) => {
                    crate::metrics::dispatched(&pool, created_ms);
                    record_sent(store, &dispatch, &pool, attempt).await;
                    None
                }
                Err(error) => Some(failed(dispatch, &error.to_string())),
            }
        },
    ))
    .await;
    outcomes.extend(confirmed.into_iter().flatten());
    outcomes
}

/// Builds the message from the stored record; `None` if the job no longer waits.
async fn prepare(
    store: &Store,
    dispatch: &Dispatch,
    record: Result<Option<JobRecord>, StoreError>,
) -> Result<Option<JobEnvelope>, StoreError> {
    let record = record?;
    let Some(record) = record.filter(|r| matches!(r.state, JobState::Queued | JobState::Scheduled))
    else {
        debug!(job_id = %dispatch.job, "job no longer waits; dropping it from the index");
        let (class_id, _) = intake::class_id(&dispatch.class);
        let _ = store
            .pending_remove(dispatch.job, &class_id, &intake::member(&dispatch.factors))
            .await;
        return Ok(None);
    };
    // The worker runs the stored spec: the record, not a message, is the source of truth.
    Ok(Some(JobEnvelope {
        schema_version: ENVELOPE_SCHEMA_VERSION,
        job_id: dispatch.job,
        attempt: record.attempt,
        created_at_ms: record.created_ms,
        not_before_ms: None,
        correlation_id: None,
        spec: record.spec,
    }))
}

async fn record_sent(store: &Store, dispatch: &Dispatch, pool: &str, attempt: u32) {
    let scheduled = Transition::new(dispatch.job, JobState::Scheduled)
        .at_attempt(attempt)
        .set("worker", &dispatch.worker)
        .set("pool", pool);
    if let Err(error) = store.transition(&scheduled).await {
        // The worker's claim moves it on regardless.
        debug!(job_id = %dispatch.job, %error, "could not record scheduled");
    }
    let (class_id, _) = intake::class_id(&dispatch.class);
    let member = intake::member(&dispatch.factors);
    if let Err(error) = store.pending_remove(dispatch.job, &class_id, &member).await {
        // Left in the index, it is found not waiting at its next dispatch and dropped.
        debug!(job_id = %dispatch.job, %error, "could not remove a dispatched job from the index");
    }
}

fn failed(dispatch: Dispatch, error: &str) -> Outcome {
    warn!(job_id = %dispatch.job, worker = %dispatch.worker, error, "dispatch failed; the job waits again");
    Outcome::Failed(Box::new(dispatch))
}
