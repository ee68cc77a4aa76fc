//! One delivery from the pool queue: claim, run, record, ack — in that order, so a crash at
//! any point leaves the message unacked and the broker redelivers it (invariant I4), and the
//! claim makes the redelivery harmless (invariant I3).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{Instrument, debug, info, info_span, warn};
use warren_protocol::{JobEnvelope, JobState};
use warren_store::{ClaimOutcome, Transition, TransitionOutcome};
use warren_topology::Destination;
use warren_topology::lapin::message::Delivery;
use warren_topology::lapin::options::{BasicAckOptions, BasicNackOptions};
use warren_topology::signing::check_message;

use crate::runtime::Runtime;
use crate::task::{JobError, TaskResult};
use crate::{execute, lease, retry};

pub(crate) async fn delivery(rt: Arc<Runtime>, delivery: Delivery) {
    if let Err(reason) = check_message(
        rt.topology.signing(),
        &delivery.properties,
        &delivery.data,
        &[Destination::Worker(rt.id.clone())],
    ) {
        // The record is left alone: a forged message must not be able to end a real job.
        dead_letter(&rt, &delivery, &reason).await;
        return;
    }
    let mut envelope = match JobEnvelope::from_bytes(&delivery.data) {
        Ok(envelope) => envelope,
        Err(reason) => {
            dead_letter(&rt, &delivery, &format!("malformed job message: {reason}")).await;
            return;
        }
    };
    // The record in Redis, written by the submitter after its checks, is what runs; the
    // message only says which job and attempt.
    match rt.store.spec(envelope.job_id).await {
        Ok(Some(stored)) => {
            if stored != envelope.spec {
                warn!(job_id = %envelope.job_id, "the message's spec differs from the stored one; running the stored one");
                envelope.spec = stored;
            }
        }
        Ok(None) => {
            warn!(job_id = %envelope.job_id, "job record is missing (expired or never written); dropping the message");
            ack(&delivery).await;
            return;
        }
        Err(error) => {
            warn!(job_id = %envelope.job_id, %error, "cannot read the job's spec; returning the message to the queue");
            // Not at once: while Redis is down, an immediate requeue would spin.
            tokio::time::sleep(Duration::from_secs(1)).await;
            nack_requeue(&delivery).await;
            return;
        }
    }
    let span = info_span!(
        "job",
        job_id = %envelope.job_id,
        task = %envelope.spec.task,
        tenant = %envelope.spec.tenant,
        attempt = envelope.attempt,
        correlation_id = envelope.correlation_id.as_deref().unwrap_or(""),
    );
    handle(rt, delivery, envelope).instrument(span).await;
}

async fn handle(rt: Arc<Runtime>, delivery: Delivery, envelope: JobEnvelope) {
    let task = match envelope.spec.validate() {
        Ok(task) => task,
        Err(error) => {
            let reason = format!("invalid job spec: {error}");
            fail_unrunnable(&rt, &envelope, &reason).await;
            dead_letter(&rt, &delivery, &reason).await;
            return;
        }
    };
    if let Err(reason) = execute::can_run(&rt, &task) {
        bounce(&rt, &delivery, &envelope, &reason).await;
        return;
    }
    // Wait for a free slot (in delivery order: the semaphore is fair).
    let Ok(slot) = rt.slots.acquire().await else {
        nack_requeue(&delivery).await;
        return;
    };
    if rt.is_draining() {
        bounce(&rt, &delivery, &envelope, "its worker is shutting down").await;
        return;
    }
    let Some(cancel) = rt.start_job(envelope.job_id) else {
        debug!("already running here; dropping the duplicate delivery");
        ack(&delivery).await;
        return;
    };
    // A built-in without side effects starts with its claim in flight: it changes nothing
    // outside this process, so a run the claim refuses is simply dropped, and a short job's
    // slot does not wait for the claim's round trip (see docs/scheduling.md, "Workers stay
    // busy"). Everything else runs only once the claim is in.
    let early_cancel = cancel.child_token();
    let early = execute::side_effect_free(&task).then(|| {
        let (rt, envelope, task) = (rt.clone(), envelope.clone(), task.clone());
        let cancel = early_cancel.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = execute::attempt(&rt, &envelope, task, cancel).await;
            (outcome, started)
        })
    });
    let claimed = claim(&rt, &envelope, &cancel).await;
    if !claimed.run {
        if let Some(work) = early {
            // Cancelled as well as aborted: CPU work on a blocking thread checks the token.
            early_cancel.cancel();
            work.abort();
        }
        rt.finish_job(envelope.job_id);
        if claimed.requeue {
            nack_requeue(&delivery).await;
        } else {
            ack(&delivery).await;
        }
        return;
    }

    let lost = Arc::new(AtomicBool::new(false));
    let renewer = lease::spawn_renewal(rt.clone(), &envelope, cancel.clone(), lost.clone());
    crate::metrics::started(&rt, &envelope);
    let (outcome, started) = match early {
        Some(work) => work.await.unwrap_or_else(|error| {
            (
                Err(JobError::retryable(format!("the task panicked: {error}"))),
                Instant::now(),
            )
        }),
        None => {
            let started = Instant::now();
            (
                execute::attempt(&rt, &envelope, task, cancel.clone()).await,
                started,
            )
        }
    };
    // The slot is free once the work is: the next delivery starts while this outcome is
    // written, so a short job's slot does not idle for a Redis round trip. The scheduler
    // counts the job until its end event, so nothing beyond the worker's capacity is sent.
    drop(slot);
    rt.finish_job(envelope.job_id);

    if lost.load(Ordering::SeqCst) {
        // Stopped because the job is someone else's now (taken over, or returned to the
        // pending index by the sweeper): record nothing, or a stop that no client asked for
        // would end the job `cancelled` under its new owner.
        renewer.abort();
        info!("the job was taken from this worker; leaving it to its new owner");
        ack(&delivery).await;
        return;
    }
    if matches!(outcome, Err(JobError::Cancelled)) && rt.is_aborting() {
        renewer.abort();
        // Shutdown ran out of grace: hand the job back instead of failing it.
        let back = Transition::new(envelope.job_id, JobState::Queued)
            .by_worker(&rt.id)
            .at_attempt(envelope.attempt)
            .releasing_lease();
        let _ = rt.store.transition(&back).await;
        // Back through intake, not this worker's queue, which nobody will consume: the
        // scheduler puts it in the pending index and places it elsewhere.
        let sent = async {
            rt.publisher()
                .send_intake(&envelope)
                .await?
                .confirmed()
                .await
        }
        .await;
        match sent {
            Ok(()) => ack(&delivery).await,
            Err(error) => {
                // Still `queued`, with no message the scheduler sees: the message stays in this
                // worker's queue, and the record says no worker holds it. Log loudly.
                warn!(%error, "could not hand the job back through intake");
                nack_requeue(&delivery).await;
            }
        }
        info!("requeued on shutdown");
        return;
    }
    // The lease is kept while the outcome is stored: sending a retry may wait out a broker
    // outage, and the job is still this worker's until its next attempt is safe.
    let recorded = record(&rt, &envelope, outcome, started.elapsed()).await;
    renewer.abort();
    if recorded {
        ack(&delivery).await;
    } else {
        // The outcome is not in Redis: acking would lose the job (it would stay `running`
        // with no message left to redeliver). Hand the message back instead; once this
        // worker's lease lapses, whoever gets it takes the job over and runs it again.
        nack_requeue(&delivery).await;
    }
}

struct Claimed {
    run: bool,
    requeue: bool,
}

/// Claims the job, waiting out the lease of a worker that may have died (unless `cancel`
/// fires first: then the message goes back to the queue).
async fn claim(
    rt: &Runtime,
    envelope: &JobEnvelope,
    cancel: &tokio_util::sync::CancellationToken,
) -> Claimed {
    let lease = rt.args.lease_ttl;
    let give_up = Instant::now() + lease * 2 + Duration::from_secs(1);
    loop {
        let outcome = rt
            .store
            .claim(
                envelope.job_id,
                &rt.id,
                envelope.attempt,
                &rt.args.tags.to_string(),
                lease,
            )
            .await;
        match outcome {
            Ok(ClaimOutcome::Claimed(JobState::Running)) => {
                info!("took over a job whose worker died");
                return Claimed {
                    run: true,
                    requeue: false,
                };
            }
            Ok(ClaimOutcome::Claimed(_)) => {
                return Claimed {
                    run: true,
                    requeue: false,
                };
            }
            Ok(ClaimOutcome::Terminal(state)) => {
                debug!(%state, "job already finished; dropping the message");
                return Claimed {
                    run: false,
                    requeue: false,
                };
            }
            Ok(ClaimOutcome::Stale(state)) => {
                debug!(%state, "message is for an older attempt; dropping it");
                return Claimed {
                    run: false,
                    requeue: false,
                };
            }
            Ok(ClaimOutcome::Missing) => {
                warn!("job record is missing (expired or never written); dropping the message");
                return Claimed {
                    run: false,
                    requeue: false,
                };
            }
            Ok(ClaimOutcome::Held(holder)) => {
                // Either a duplicate of a job a live worker runs (its own delivery will be
                // acked: drop ours), or a redelivery after that worker died (its lease will
                // lapse: then take over). Waiting out one lease tells them apart.
                if Instant::now() >= give_up {
                    debug!(%holder, "job is held by a live worker; dropping the duplicate");
                    return Claimed {
                        run: false,
                        requeue: false,
                    };
                }
            }
            Err(error) => {
                warn!(%error, "claim failed; returning the message to the queue");
                // Not at once: while Redis is down, an immediate requeue would spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Claimed {
                    run: false,
                    requeue: true,
                };
            }
        }
        tokio::select! {
            () = tokio::time::sleep(lease / 4) => {}
            () = cancel.cancelled() => {
                return Claimed {
                    run: false,
                    requeue: true,
                };
            }
        }
    }
}

/// Stores the outcome of an attempt: success, retry through the delay ladder, or failure.
/// Returns `false` when Redis could not be written, so the delivery must not be acked.
async fn record(rt: &Runtime, envelope: &JobEnvelope, outcome: TaskResult, took: Duration) -> bool {
    let id = envelope.job_id;
    let base = |to| {
        Transition::new(id, to)
            .by_worker(&rt.id)
            .at_attempt(envelope.attempt)
            .set("duration_ms", took.as_millis() as u64)
    };
    let mut exhausted = None;
    let transition = match outcome {
        Ok(result) => with_result(base(JobState::Succeeded), Some(result)),
        Err(JobError::TimedOut { result }) => {
            with_result(base(JobState::TimedOut), result).set("error", "timed out")
        }
        Err(JobError::Cancelled) => base(JobState::Cancelled).set("error", "cancelled"),
        Err(JobError::Retryable {
            message,
            after,
            result,
        }) if envelope.attempt < envelope.spec.max_attempts => {
            let Some(due) = retry::send(rt, envelope, after).await else {
                // Shutting down with the broker still out of reach: the job stays `running`
                // under this worker, whose lease and heartbeats stop with it, so the
                // scheduler's sweeper returns it to the pending index. Never `failed`: the
                // job has attempts left.
                return false;
            };
            with_result(base(JobState::Retrying), result)
                .set("error", &message)
                .set("attempt", envelope.attempt + 1)
                .set("next_attempt_ms", due)
                .releasing_lease()
        }
        Err(JobError::Retryable {
            message, result, ..
        }) if envelope.spec.max_attempts > 1 => {
            // It asked for retries and used them all: a dead letter as well as `failed`.
            let reason = format!(
                "attempts exhausted ({} of {}): {message}",
                envelope.attempt, envelope.spec.max_attempts
            );
            exhausted = Some(reason.clone());
            with_result(base(JobState::Failed), result)
                .set("error", message)
                .set("dead_reason", reason)
        }
        Err(
            JobError::Retryable {
                message, result, ..
            }
            | JobError::Permanent { message, result },
        ) => with_result(base(JobState::Failed), result).set("error", message),
    };
    let target = transition.to;
    match write_with_retry(rt, &transition).await {
        Some(TransitionOutcome::Done(_)) => {
            info!(state = %target, took_ms = took.as_millis() as u64, "job finished attempt");
            crate::metrics::finished(rt, envelope, target, took);
            if let Some(reason) = exhausted {
                send_dead(rt, envelope, &reason).await;
            }
            true
        }
        Some(other) => {
            debug!(?other, state = %target, "job had moved on (cancelled or taken over)");
            true
        }
        None => false,
    }
}

fn with_result(mut t: Transition, result: Option<Value>) -> Transition {
    if let Some(result) = result {
        if let Some(code) = result.get("exit_code").and_then(Value::as_i64) {
            t = t.set("exit_code", code);
        }
        if let Some(signal) = result.get("exit_signal").and_then(Value::as_str) {
            t = t.set("exit_signal", signal);
        }
        if result.get("oom_killed").and_then(Value::as_bool) == Some(true) {
            t = t.set("oom_killed", "1");
        }
        t = t.set("result", result.to_string());
    }
    t
}

/// Writes a transition, retrying transient Redis errors for a while: the outcome of work
/// that was done must not be thrown away because Redis blinked.
async fn write_with_retry(rt: &Runtime, t: &Transition) -> Option<TransitionOutcome> {
    let mut wait = Duration::from_millis(100);
    for _ in 0..8 {
        match rt.store.transition(t).await {
            Ok(outcome) => return Some(outcome),
            Err(error) if error.is_transient() => {
                warn!(%error, retry_in = ?wait, "could not record the outcome; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                warn!(%error, "could not record the outcome");
                return None;
            }
        }
    }
    None
}

/// Marks a job that can never run as failed (its spec does not validate).
async fn fail_unrunnable(rt: &Runtime, envelope: &JobEnvelope, reason: &str) {
    let t = Transition::new(envelope.job_id, JobState::Failed).set("error", reason);
    if let Err(error) = rt.store.transition(&t).await {
        warn!(%error, "could not mark the job failed");
    }
}

/// Sends a job this worker cannot run back to the scheduler (it was placed on a stale view of
/// the pool), then acks the delivery.
async fn bounce(rt: &Runtime, delivery: &Delivery, envelope: &JobEnvelope, reason: &str) {
    warn!(
        reason,
        "cannot run this job here; returning it to the scheduler"
    );
    let sent = async {
        rt.publisher()
            .send_intake(envelope)
            .await?
            .confirmed()
            .await
    }
    .await;
    match sent {
        Ok(()) => {
            // Legal from `scheduled`; a job the scheduler had not yet marked is still
            // `queued`, and keeps that state. Either way it now says why it waits.
            let back =
                Transition::new(envelope.job_id, JobState::Queued).at_attempt(envelope.attempt);
            let _ = rt.store.transition(&back).await;
            let _ = rt.store.set_pending_reason(envelope.job_id, reason).await;
            ack(delivery).await;
        }
        Err(error) => {
            warn!(%error, "could not return the job; leaving it in the queue");
            nack_requeue(delivery).await;
        }
    }
}

/// Copies a job that failed for good after all its attempts to `{ns}.dead`, where the
/// scheduler indexes it for `GET /v1/dead` and a requeue. Best effort: the job is `failed`
/// already (with `dead_reason`); a copy that cannot be sent is logged.
async fn send_dead(rt: &Runtime, envelope: &JobEnvelope, reason: &str) {
    let sent = tokio::time::timeout(Duration::from_secs(10), async {
        rt.publisher()
            .send_dead(
                &envelope.to_bytes(),
                warren_topology::job_properties(envelope),
                reason,
            )
            .await?
            .confirmed()
            .await
    })
    .await;
    match sent {
        Ok(Ok(())) => info!(reason, "job dead-lettered"),
        Ok(Err(error)) => warn!(%error, reason, "could not dead-letter the job"),
        Err(_) => warn!(
            reason,
            "could not dead-letter the job: no confirm within 10s"
        ),
    }
}

async fn dead_letter(rt: &Runtime, delivery: &Delivery, reason: &str) {
    rt.publisher().dead_letter(delivery, reason).await;
}

async fn ack(delivery: &Delivery) {
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        // The channel is gone; the broker will redeliver and the claim will drop the copy.
        debug!(%error, "ack failed");
    }
}

async fn nack_requeue(delivery: &Delivery) {
    if let Err(error) = delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
    {
        debug!(%error, "nack failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_carry_exit_codes() {
        let t = with_result(
            Transition::new(warren_protocol::JobId::new(), JobState::Failed),
            Some(serde_json::json!({"exit_code": 3})),
        );
        assert!(t.fields.iter().any(|(k, v)| *k == "exit_code" && v == "3"));
    }
}
