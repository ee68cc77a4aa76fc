//! Accepting jobs (invariant I2): a job is answered 202 only once it is written to Redis *and*
//! RabbitMQ has confirmed it into the intake queue. If Redis fails nothing is published; if
//! the publish fails the Redis records are withdrawn again; either way the client gets 503.
//!
//! A publish that fails half-way may still have put some messages into intake (a confirm
//! that timed out, the first jobs of a batch). The records are written marked "submitting"
//! and the scheduler holds a marked job back, so none of those starts before the whole
//! submission is confirmed; a refused one is withdrawn, and the scheduler and workers drop
//! messages whose job does not exist. So no job runs that was refused.

use std::time::Duration;

use tokio::time::Instant;

use futures_util::future::join_all;
use warren_protocol::{JobEnvelope, JobId, JobSpec, Task, now_ms};
use warren_store::{NewJob, SubmitKey};
use warren_topology::delay::{NextHop, next_hop};
use warren_topology::{Pending, TopologyError};

use crate::extract::join_path;
use crate::problem::{ApiError, error_chain};
use crate::publisher::Lease;
use crate::state::AppState;

/// How long RabbitMQ may take to confirm a publish before the jobs are refused.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// How often ending a submission is tried again after Redis failed (a failover takes
/// seconds).
const END_RETRY_EVERY: Duration = Duration::from_millis(250);
/// How long an idempotency key is held while its submission is in flight. Long enough for
/// any submission (they are bounded by the Redis and confirm timeouts); short, so that a key
/// whose release failed does not refuse retries for long.
const PENDING_KEY_TTL: Duration = Duration::from_secs(300);

/// Validates a spec and checks that its task is one some worker runs; returns the parsed
/// task. Error fields start with `prefix` (`jobs[3]`) for batches.
pub(crate) async fn check_spec(
    state: &AppState,
    spec: &JobSpec,
    prefix: &str,
) -> Result<Task, ApiError> {
    let task = spec.validate().map_err(|e| {
        let field = join_path(prefix, &e.field);
        ApiError::unprocessable("invalid_field", format!("{field}: {}", e.message))
            .with_field(field)
    })?;
    if let Some(not_before) = spec.not_before_ms
        && not_before > now_ms().saturating_add(warren_protocol::MAX_DELAY_S * 1000)
    {
        let field = join_path(prefix, "not_before_ms");
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("{field}: at most 30 days ahead"),
        )
        .with_field(field));
    }
    if let Task::Custom { name, .. } = &task
        && !state.knows_task(name).await?
    {
        let field = join_path(prefix, "task");
        return Err(ApiError::unprocessable(
            "unknown_task",
            format!(
                "{field}: no worker has registered task {name:?}; use a built-in ({}) or start \
                 a worker that registers it (GET /v1/tasks lists them)",
                warren_protocol::BUILTIN_TASKS.join(", ")
            ),
        )
        .with_field(field));
    }
    Ok(task)
}

/// What became of a single submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Submitted {
    /// A new job was accepted.
    Created(JobId),
    /// The idempotency key already named this job; nothing new was created.
    Existing(JobId),
}

/// Accepts one job, honouring an idempotency key. Runs to completion in a tracked task even
/// if the request is abandoned.
pub(crate) async fn accept_one(
    state: &AppState,
    spec: JobSpec,
    correlation_id: String,
    idempotency_key: Option<String>,
) -> Result<Submitted, ApiError> {
    let deadline = publish_deadline(state);
    let task_state = state.clone();
    let work = async move {
        let state = task_state;
        let job = NewJob {
            id: JobId::new(),
            spec,
            created_ms: now_ms(),
        };
        let id = job.id;
        let Some(key) = idempotency_key else {
            accept_jobs(&state, &[job], &correlation_id, deadline, None).await?;
            return Ok(Submitted::Created(id));
        };
        let store = state.store();
        if let Some(holder) = store
            .reserve_idempotency_key(&key, id, PENDING_KEY_TTL)
            .await?
        {
            return Ok(Submitted::Existing(holder));
        }
        let marker = SubmitKey::Single(key.clone());
        if let Err(refused) =
            accept_jobs(&state, &[job], &correlation_id, deadline, Some(&marker)).await
        {
            if let Err(error) = store.release_idempotency_key(&key, id).await {
                // Retries with this key get 409 until the pending TTL frees it.
                tracing::error!(job_id = %id, error = %error_chain(&error), "cannot release an idempotency key");
            }
            return Err(refused);
        }
        if let Err(error) = store
            .keep_idempotency_key(&key, id, state.idempotency_ttl())
            .await
        {
            // The job is accepted; only replays after the pending TTL would create another.
            tracing::warn!(job_id = %id, error = %error_chain(&error), "cannot extend an idempotency key");
        }
        Ok(Submitted::Created(id))
    };
    state
        .spawn(work)
        .await
        .map_err(|e| ApiError::internal("accept task failed", &e))?
}

/// What became of a batch submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubmittedBatch {
    /// The batch was accepted.
    Created,
    /// The idempotency key already named this batch's jobs; nothing new was created.
    Existing(Vec<JobId>),
}

/// Accepts a batch (all or nothing), honouring an idempotency key, in a tracked task like
/// [`accept_one`]. The key is reserved for the whole batch before anything is written, so a
/// client whose batch got no answer can send it again and get the same jobs.
pub(crate) async fn accept_many(
    state: &AppState,
    jobs: Vec<NewJob>,
    correlation_id: String,
    idempotency_key: Option<String>,
) -> Result<SubmittedBatch, ApiError> {
    let deadline = publish_deadline(state);
    let task_state = state.clone();
    let work = async move {
        let state = task_state;
        let Some(key) = idempotency_key else {
            accept_jobs(&state, &jobs, &correlation_id, deadline, None).await?;
            return Ok(SubmittedBatch::Created);
        };
        let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
        let store = state.store();
        if let Some(holder) = store
            .reserve_batch_idempotency_key(&key, &ids, PENDING_KEY_TTL)
            .await?
        {
            return Ok(SubmittedBatch::Existing(holder));
        }
        let marker = SubmitKey::Batch(key.clone());
        if let Err(refused) =
            accept_jobs(&state, &jobs, &correlation_id, deadline, Some(&marker)).await
        {
            if let Err(error) = store.release_batch_idempotency_key(&key, &ids).await {
                // Retries with this key get 409 until the pending TTL frees it.
                tracing::error!(jobs = ids.len(), error = %error_chain(&error), "cannot release a batch idempotency key");
            }
            return Err(refused);
        }
        if let Err(error) = store
            .keep_batch_idempotency_key(&key, &ids, state.idempotency_ttl())
            .await
        {
            // The batch is accepted; only replays after the pending TTL would create another.
            tracing::warn!(jobs = ids.len(), error = %error_chain(&error), "cannot extend a batch idempotency key");
        }
        Ok(SubmittedBatch::Created)
    };
    state
        .spawn(work)
        .await
        .map_err(|e| ApiError::internal("accept task failed", &e))?
}

/// Writes the jobs in one `MULTI`, publishes them all, then waits for every confirm.
///
/// The jobs are written marked as "submitting" and the mark goes only once every confirm is
/// in; until then the scheduler holds them back, so that a job of a batch refused half-way
/// never starts. If this process dies in between, nobody got a 202 for them, and the
/// scheduler removes them after `WARREN_SUBMIT_REAP_AFTER` (with the idempotency key `key`,
/// so that the client's retry makes the jobs afresh) instead of leaving phantoms `queued`
/// for days.
async fn accept_jobs(
    state: &AppState,
    jobs: &[NewJob],
    correlation_id: &str,
    deadline: Instant,
    key: Option<&SubmitKey>,
) -> Result<(), ApiError> {
    // Nothing is published unless Redis has the records first.
    state.store().create_jobs_submitting(jobs, key).await?;
    let publish_deadline = deadline.min(Instant::now() + CONFIRM_TIMEOUT);
    let mut published = publish(state, jobs, correlation_id, publish_deadline)
        .await
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
    if published.is_ok() {
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        // Without the mark gone, the reaper would remove jobs that got a 202: refuse instead.
        if let Err(error) = end_submission(state, &ids, deadline).await {
            published = Err(Box::new(error));
        }
    }
    let first = jobs.first().map(|j| j.id.to_string()).unwrap_or_default();
    let Err(error) = published else {
        note_delays(state, jobs).await;
        for job in jobs {
            metrics::counter!(
                "warren_jobs_submitted_total",
                "task" => job.spec.task.clone(),
                "tenant" => job.spec.tenant.clone()
            )
            .increment(1);
        }
        if let [job] = jobs {
            tracing::info!(job_id = %job.id, task = %job.spec.task, tenant = %job.spec.tenant, "job accepted");
        } else {
            tracing::info!(jobs = jobs.len(), first_job_id = %first, "batch accepted");
            for job in jobs {
                tracing::debug!(job_id = %job.id, task = %job.spec.task, tenant = %job.spec.tenant, "job accepted");
            }
        }
        return Ok(());
    };
    tracing::error!(
        error = %error_chain(&*error),
        jobs = jobs.len(),
        first_job_id = %first,
        "publishing to intake failed; deleting the jobs again"
    );
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    match state.store().withdraw_submission(&ids).await {
        Ok(withdrawn) if withdrawn.len() < ids.len() => {
            // Possible only when the unmarking reached Redis and the replica wait failed.
            tracing::warn!(
                jobs = ids.len() - withdrawn.len(),
                first_job_id = %first,
                "some jobs of a refused submission were already sent to workers and will run"
            );
        }
        Ok(_) => {}
        Err(withdraw_error) => {
            // Still marked, so the scheduler holds them back until the reaper withdraws them
            // (`WARREN_SUBMIT_REAP_AFTER`); failing that, their provisional TTL ends them.
            tracing::error!(
                error = %error_chain(&withdraw_error),
                jobs = jobs.len(),
                first_job_id = %first,
                "cannot withdraw jobs whose submission failed"
            );
        }
    }
    Err(ApiError::unavailable_quiet("unavailable"))
}

/// Unmarks published jobs so that they may run (and, with replicas, waits for one to have
/// it). A failure here is ambiguous: the unmarking may have been applied, or even reached
/// the replica before the primary died, and then the jobs run once a replica is promoted.
/// Refusing then would run jobs the client was told were refused; so the unmarking, which
/// can be repeated, is tried again on whatever primary Redis has, until `deadline`. Only
/// records that are gone (a failover lost them) or a Redis that stays away refuse the
/// submission.
async fn end_submission(
    state: &AppState,
    ids: &[JobId],
    deadline: Instant,
) -> Result<(), warren_store::StoreError> {
    let store = state.store();
    let mut ended = store.confirm_submitted(ids).await;
    while let Err(error) = &ended {
        if Instant::now() + END_RETRY_EVERY >= deadline {
            break;
        }
        tracing::warn!(error = %error_chain(error), jobs = ids.len(), "cannot end a submission yet; trying again");
        tokio::time::sleep(END_RETRY_EVERY).await;
        ended = match store.admission_states(ids).await {
            // A failover lost the records (they never reached the replica): their messages
            // will find no job, and the submission is refused.
            Ok(states) if states.iter().any(|(state, _)| state.is_none()) => break,
            Ok(_) => store.confirm_submitted(ids).await,
            Err(error) => Err(error),
        };
    }
    ended
}

/// Says why delayed jobs wait (`delayed_until <time>`), until the ladder releases them.
async fn note_delays(state: &AppState, jobs: &[NewJob]) {
    for job in jobs {
        let Some(due) = job
            .spec
            .due_ms(job.created_ms)
            .filter(|due| *due > now_ms())
        else {
            continue;
        };
        let at = std::time::UNIX_EPOCH + Duration::from_millis(due);
        let reason = format!("delayed_until {}", humantime::format_rfc3339_millis(at));
        if let Err(error) = state.store().set_pending_reason(job.id, &reason).await {
            tracing::debug!(job_id = %job.id, error = %error_chain(&error), "could not note a delay");
        }
    }
}

/// When a submission must have its confirms, or be refused: well inside the request
/// timeout. The accepting task outlives an abandoned request, so a publish confirmed after
/// the timeout layer has answered 503 would run a job the client was told was refused (a
/// memory alarm showed it: the blocked publishes went through once it cleared). A quarter
/// of the timeout is left for deleting the records and answering.
fn publish_deadline(state: &AppState) -> Instant {
    Instant::now() + state.request_timeout() * 3 / 4
}

/// Publishes every job to intake (or, delayed, to the delay ladder) and awaits all confirms
/// in one round, all before `deadline`.
async fn publish(
    state: &AppState,
    jobs: &[NewJob],
    correlation_id: &str,
    deadline: Instant,
) -> Result<(), TopologyError> {
    let late = || TopologyError::Connect {
        message: "no publisher confirm before the submission's deadline".to_owned(),
    };
    let lease = tokio::time::timeout_at(deadline, state.publisher().get())
        .await
        .map_err(|_| late())??;
    let result =
        match tokio::time::timeout_at(deadline, publish_on(&lease, jobs, correlation_id)).await {
            Ok(result) => result,
            Err(_) => Err(late()),
        };
    if let Err(error) = &result
        && may_have_broken_the_channel(error)
    {
        state.publisher().discard(&lease).await;
    }
    result
}

async fn publish_on(
    lease: &Lease,
    jobs: &[NewJob],
    correlation_id: &str,
) -> Result<(), TopologyError> {
    let mut pending: Vec<Pending> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut envelope = JobEnvelope::first_attempt(
            job.id,
            job.spec.clone(),
            job.created_ms,
            Some(correlation_id.to_owned()),
        );
        let due = job
            .spec
            .due_ms(job.created_ms)
            .filter(|due| *due > now_ms());
        let sent = match due {
            // A delayed job waits in the delay ladder (durable, in no worker's memory); the
            // scheduler's ladder exit sends it to intake when it is due, on time.
            Some(due) => {
                envelope.not_before_ms = Some(due);
                let rung = match next_hop(Duration::from_millis(due - now_ms())) {
                    NextHop::Rung(rung) => rung,
                    NextHop::Due => 0,
                };
                lease.publisher.send_delay(rung, &envelope).await?
            }
            None => lease.publisher.send_intake(&envelope).await?,
        };
        pending.push(sent);
    }
    let results = join_all(pending.into_iter().map(Pending::confirmed)).await;
    results.into_iter().collect()
}

/// An unroutable message is a verdict on a healthy channel; anything else (a send that
/// failed, a confirm that never came, a nack) may mean the channel is gone or stuck. A nack
/// counts: after a quorum queue's leader node was killed, RabbitMQ 3.10 kept nacking every
/// publish on the channel that had been publishing to it (the cluster fault test saw minutes
/// of it), while a new channel was fine.
fn may_have_broken_the_channel(error: &TopologyError) -> bool {
    !matches!(error, TopologyError::Unroutable { .. })
}
