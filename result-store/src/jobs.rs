use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use warren_protocol::{JobId, JobSpec, JobState, WorkerId, now_ms};

use crate::record::JobRecord;
use crate::scripts::{ANNOTATE, CLAIM, RENEW, TRANSITION, WITHDRAW, state_list};
use crate::{Store, StoreError};

/// A record that exists only for the window between the Redis write and the broker's confirm:
/// if the submitter dies there, the record was never acknowledged to anyone and expires.
const PROVISIONAL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A job about to be accepted.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id.
    pub id: JobId,
    /// Its validated spec.
    pub spec: JobSpec,
    /// When it was accepted.
    pub created_ms: u64,
}

/// The idempotency key that reserved a submission, so that a submission that dies half-way
/// frees it (see [`Store::reap_interrupted_submits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitKey {
    /// `Idempotency-Key` of a single submit.
    Single(String),
    /// `Idempotency-Key` of a batch.
    Batch(String),
}

/// A state change to make atomically.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The job.
    pub id: JobId,
    /// The target state.
    pub to: JobState,
    /// Only if the job's worker is this one (workers finishing their own jobs).
    pub worker: Option<WorkerId>,
    /// Only if the job is at this attempt (stale messages must not move it).
    pub attempt: Option<u32>,
    /// Release the lease on a non-terminal move (retrying, requeue).
    pub release_lease: bool,
    /// Fields to set with the move.
    pub fields: Vec<(&'static str, String)>,
    /// Only from these states (within the legal ones); `None`: any legal source.
    pub only_from: Option<Vec<JobState>>,
}

impl Transition {
    /// A move of `id` to `to` with no extra conditions.
    pub fn new(id: JobId, to: JobState) -> Self {
        Self {
            id,
            to,
            worker: None,
            attempt: None,
            release_lease: false,
            fields: Vec::new(),
            only_from: None,
        }
    }

    /// Allows the move only from `states` (among the legal sources): a scheduler failing a
    /// job that waited too long must not fail one that has just started.
    pub fn only_from(mut self, states: &[JobState]) -> Self {
        self.only_from = Some(states.to_vec());
        self
    }

    /// Requires the job's worker to be `worker`.
    pub fn by_worker(mut self, worker: &WorkerId) -> Self {
        self.worker = Some(worker.clone());
        self
    }

    /// Requires the job to be at `attempt`.
    pub fn at_attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// Sets a field with the move.
    pub fn set(mut self, field: &'static str, value: impl ToString) -> Self {
        self.fields.push((field, value.to_string()));
        self
    }

    /// Releases the lease with a non-terminal move.
    pub fn releasing_lease(mut self) -> Self {
        self.release_lease = true;
        self
    }
}

/// What became of a [`Transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// It happened; the job was in this state before.
    Done(JobState),
    /// The job does not exist (or has expired).
    Missing,
    /// The job's state does not allow the move (it is in this state).
    Illegal(JobState),
    /// Another worker holds the job.
    NotOwner(JobState),
    /// The job has moved on to another attempt.
    Stale(JobState),
}

/// What became of a lease renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRenewal {
    /// The caller held the lease and it was extended.
    Renewed,
    /// The lease had lapsed with nobody else taking the job; the caller holds it again.
    Retaken,
    /// Another worker holds the job now, or it has left `running` for this attempt: the
    /// caller must stop.
    Lost,
}

/// What became of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller now holds the lease and must run the job; it was in this state before
    /// (`running` means the caller took it over from a dead worker).
    Claimed(JobState),
    /// The job is finished: drop the message.
    Terminal(JobState),
    /// A live lease is held on it, by this worker: the job runs there right now. The holder
    /// may be the caller itself, when a duplicate of the message reached the worker that
    /// already runs the job; it must not run it a second time.
    Held(WorkerId),
    /// The message is for an older attempt, or the job waits in the delay ladder: drop it.
    Stale(JobState),
    /// No such job.
    Missing,
}

pub(crate) fn parse_state(raw: &str) -> Result<JobState, StoreError> {
    raw.parse().map_err(|e| StoreError::Corrupt {
        key: "state".into(),
        message: format!("{e}"),
    })
}

impl Store {
    /// Writes new jobs (state `queued`) and their index entries in one atomic `MULTI`.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails; nothing is written then.
    pub async fn create_jobs(&self, jobs: &[NewJob]) -> Result<(), StoreError> {
        self.write_new_jobs(jobs, None).await
    }

    /// Writes new jobs like [`Store::create_jobs`] and marks them as being submitted (the
    /// `submitting` set, with the idempotency key that reserved them, if any), in the same
    /// `MULTI`. The submitter calls [`Store::confirm_submitted`] once the broker confirmed
    /// them; jobs still marked after a while belong to a submission that died half-way and
    /// are removed by [`Store::reap_interrupted_submits`].
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails; nothing is written then.
    pub async fn create_jobs_submitting(
        &self,
        jobs: &[NewJob],
        key: Option<&SubmitKey>,
    ) -> Result<(), StoreError> {
        self.write_new_jobs(jobs, Some(key)).await
    }

    /// Ends the submission of jobs whose publish was confirmed: the scheduler, which holds
    /// a marked job back, may now run them, and is told so on [`Keys::submitted_channel`].
    ///
    /// With Sentinel and replicas, the records and this unmarking must reach a replica before
    /// the 202: a failover that rolled the unmarking back would leave the job marked, and the
    /// reaper would withdraw a job the client was told was accepted. A replica that is merely
    /// slow (`WAIT` answers, late) is no refusal, since the primary has everything; a `WAIT`
    /// that fails means the primary is likely gone, and the submission is refused.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    ///
    /// [`Keys::submitted_channel`]: crate::Keys::submitted_channel
    pub async fn confirm_submitted(&self, ids: &[JobId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = ids.iter().map(JobId::to_string).collect();
        let mut pipe = redis::pipe();
        pipe.zrem(self.keys.submitting(), members)
            .ignore()
            .publish(self.keys.submitted_channel(), ids.len())
            .ignore();
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError::redis("confirming a submission", e))?;
        self.wait_replicated().await?;
        Ok(())
    }

    /// Removes jobs whose submission started before `cutoff_ms` and never finished (the
    /// submitter died between writing them and the broker's confirm): no client got a 202
    /// for them. A job some service has touched since is left alone. Looks at most at
    /// `limit` jobs; returns the ids removed.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn reap_interrupted_submits(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.conn();
        let marked: Vec<String> = conn
            .zrangebyscore_limit(self.keys.submitting(), "-inf", cutoff_ms, 0, limit as isize)
            .await
            .map_err(|e| StoreError::redis("reaping interrupted submissions", e))?;
        self.withdraw(&marked, Some(cutoff_ms)).await
    }

    /// Takes back the jobs of a submission that is being refused after its records were
    /// written (some of their messages may be in intake already): each job never sent to a
    /// worker is deleted with its index entries and its idempotency key. Returns the ids
    /// removed; a job missing from it got out and runs.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn withdraw_submission(&self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        let ids: Vec<String> = ids.iter().map(JobId::to_string).collect();
        self.withdraw(&ids, None).await
    }

    async fn withdraw(
        &self,
        ids: &[String],
        cutoff_ms: Option<u64>,
    ) -> Result<Vec<JobId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = WITHDRAW.prepare_invoke();
        invocation
            .key(self.keys.submitting())
            .arg(self.keys.prefix())
            .arg(u64::try_from(self.options.result_ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(cutoff_ms.map(|ms| ms.to_string()).unwrap_or_default());
        for id in ids {
            invocation.arg(id);
        }
        let mut conn = self.conn();
        let removed: Vec<String> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("withdrawing a submission", e))?;
        Ok(removed.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Each job's state and whether its submission is still in flight (marked), for
    /// admission, which holds marked jobs back: a job whose submission may yet be refused
    /// must not start.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn admission_states(
        &self,
        ids: &[JobId],
    ) -> Result<Vec<(Option<JobState>, bool)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(self.keys.job(*id), "state")
                .zscore(self.keys.submitting(), id.to_string());
        }
        let mut conn = self.conn();
        let raw: Vec<(Option<String>, Option<f64>)> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reading job states", e))?;
        raw.into_iter()
            .map(|(state, mark)| {
                let state = state.as_deref().map(parse_state).transpose()?;
                Ok((state, mark.is_some()))
            })
            .collect()
    }

    /// The jobs marked as being submitted right now (written, not yet confirmed): few, as
    /// the set holds only submissions in flight.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn submitting_ids(&self) -> Result<std::collections::HashSet<JobId>, StoreError> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn
            .zrange(self.keys.submitting(), 0, -1)
            .await
            .map_err(|e| StoreError::redis("reading the submissions in flight", e))?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// How many jobs are marked as being submitted right now (written, not yet confirmed).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn submissions_in_flight(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        conn.zcard(self.keys.submitting())
            .await
            .map_err(|e| StoreError::redis("counting submissions in flight", e))
    }

    async fn write_new_jobs(
        &self,
        jobs: &[NewJob],
        submitting: Option<Option<&SubmitKey>>,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let queued = self.keys.index_state(JobState::Queued);
        for job in jobs {
            let key = self.keys.job(job.id);
            let id = job.id.to_string();
            let spec = serde_json::to_string(&job.spec).unwrap_or_default();
            pipe.hset_multiple(
                &key,
                &[
                    ("id", id.as_str()),
                    ("state", JobState::Queued.as_str()),
                    ("spec", spec.as_str()),
                    ("tenant", job.spec.tenant.as_str()),
                    ("queue", job.spec.queue.as_str()),
                    ("attempt", "1"),
                    ("created_ms", &job.created_ms.to_string()),
                    ("queued_ms", &job.created_ms.to_string()),
                    ("updated_ms", &job.created_ms.to_string()),
                ],
            )
            .ignore();
            pipe.expire(&key, PROVISIONAL_TTL.as_secs() as i64).ignore();
            if let Some(marker) = submitting {
                pipe.zadd(self.keys.submitting(), &id, job.created_ms)
                    .ignore();
                match marker {
                    Some(SubmitKey::Single(k)) => {
                        pipe.hset(&key, "idem_key", k).ignore();
                    }
                    Some(SubmitKey::Batch(k)) => {
                        pipe.hset(&key, "idem_batch_key", k).ignore();
                    }
                    None => {}
                }
            }
            pipe.zadd(self.keys.index_all(), &id, 0).ignore();
            pipe.zadd(&queued, &id, 0).ignore();
            pipe.zadd(self.keys.index_tenant(&job.spec.tenant), &id, 0)
                .ignore();
            pipe.zadd(self.keys.index_queue(&job.spec.queue), &id, 0)
                .ignore();
            let extra = extra_indexes(&job.spec);
            if !extra.is_empty() {
                // Named on the record so that the transition to a terminal state can hand
                // them to the pruning of expired jobs.
                let names = serde_json::to_string(&extra).unwrap_or_default();
                pipe.hset(&key, "indexes", names).ignore();
                for suffix in &extra {
                    pipe.zadd(format!("{}{suffix}", self.keys.prefix()), &id, 0)
                        .ignore();
                }
            }
        }
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError::redis("creating jobs", e))
    }

    /// Removes jobs whose publish failed, so nothing half-made stays (invariant I2).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn delete_jobs(&self, jobs: &[NewJob]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for job in jobs {
            let id = job.id.to_string();
            pipe.del(self.keys.job(job.id)).ignore();
            pipe.zrem(self.keys.index_all(), &id).ignore();
            for state in JobState::ALL {
                pipe.zrem(self.keys.index_state(state), &id).ignore();
            }
            pipe.zrem(self.keys.index_tenant(&job.spec.tenant), &id)
                .ignore();
            pipe.zrem(self.keys.index_queue(&job.spec.queue), &id)
                .ignore();
            for suffix in extra_indexes(&job.spec) {
                pipe.zrem(format!("{}{suffix}", self.keys.prefix()), &id)
                    .ignore();
            }
        }
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError::redis("deleting jobs", e))
    }

    /// Reads many jobs in one round trip, in order (`None` for missing ones).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails or a record is corrupt.
    pub async fn get_many(&self, ids: &[JobId]) -> Result<Vec<Option<JobRecord>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.job(*id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| StoreError::redis("reading jobs", e))?;
        ids.iter()
            .zip(hashes)
            .map(|(id, hash)| {
                if hash.is_empty() {
                    Ok(None)
                } else {
                    JobRecord::from_hash(&self.keys.job(*id), hash).map(Some)
                }
            })
            .collect()
    }

    /// Reads one job.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails or the record is corrupt.
    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let key = self.keys.job(id);
        let mut conn = self.conn();
        let hash: HashMap<String, String> = conn
            .hgetall(&key)
            .await
            .map_err(|e| StoreError::redis("reading a job", e))?;
        if hash.is_empty() {
            return Ok(None);
        }
        JobRecord::from_hash(&key, hash).map(Some)
    }

    /// Reads only a job's stored spec; `None` if the job has no record.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails or the stored spec is corrupt.
    pub async fn spec(&self, id: JobId) -> Result<Option<JobSpec>, StoreError> {
        let key = self.keys.job(id);
        let mut conn = self.conn();
        let spec: Option<String> = conn
            .hget(&key, "spec")
            .await
            .map_err(|e| StoreError::redis("reading a job's spec", e))?;
        spec.map(|json| {
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                message: format!("spec: {e}"),
            })
        })
        .transpose()
    }

    /// Reads only a job's state (cheaper than [`Store::get`]).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn state(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let mut conn = self.conn();
        let raw: Option<String> = conn
            .hget(self.keys.job(id), "state")
            .await
            .map_err(|e| StoreError::redis("reading a job state", e))?;
        raw.as_deref().map(parse_state).transpose()
    }

    /// Reads the states of many jobs in one round trip (`None` for missing ones).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn states(&self, ids: &[JobId]) -> Result<Vec<Option<JobState>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(self.keys.job(*id), "state");
        }
        let mut conn = self.conn();
        let raw: Vec<Option<String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reading job states", e))?;
        raw.into_iter()
            .map(|s| s.as_deref().map(parse_state).transpose())
            .collect()
    }

    /// Applies a state change atomically (invariant I1).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails. A refused move is an `Ok` outcome.
    pub async fn transition(&self, t: &Transition) -> Result<TransitionOutcome, StoreError> {
        let mut invocation = TRANSITION.prepare_invoke();
        invocation
            .key(self.keys.job(t.id))
            .key(self.keys.lease(t.id))
            .key(self.keys.job_log(t.id))
            .arg(self.keys.prefix())
            .arg(t.id.to_string())
            .arg(t.to.as_str())
            .arg(now_ms())
            .arg(state_list(&sources(t)))
            .arg(t.worker.as_ref().map_or("", WorkerId::as_str))
            .arg(t.attempt.map(|a| a.to_string()).unwrap_or_default())
            .arg(if t.to.is_terminal() { "1" } else { "0" })
            .arg(self.options.result_ttl.as_secs().max(1))
            .arg(if t.release_lease { "1" } else { "0" });
        for (field, value) in &t.fields {
            invocation.arg(*field).arg(value);
        }
        let mut conn = self.conn();
        let (outcome, previous): (String, String) = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("transition script", e))?;
        Ok(match outcome.as_str() {
            "ok" => TransitionOutcome::Done(parse_state(&previous)?),
            "missing" => TransitionOutcome::Missing,
            "illegal" => TransitionOutcome::Illegal(parse_state(&previous)?),
            "not_owner" => TransitionOutcome::NotOwner(parse_state(&previous)?),
            _ => TransitionOutcome::Stale(parse_state(&previous)?),
        })
    }

    /// Claims a job for `worker` before running it (invariant I3).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn claim(
        &self,
        id: JobId,
        worker: &WorkerId,
        attempt: u32,
        pool: &str,
        lease: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut conn = self.conn();
        let (outcome, detail): (String, String) = CLAIM
            .key(self.keys.job(id))
            .key(self.keys.lease(id))
            .arg(self.keys.prefix())
            .arg(id.to_string())
            .arg(worker.as_str())
            .arg(now_ms())
            .arg(lease.as_millis() as u64)
            .arg(attempt)
            .arg(pool)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("claim script", e))?;
        Ok(match outcome.as_str() {
            "claimed" => ClaimOutcome::Claimed(parse_state(&detail)?),
            "terminal" => ClaimOutcome::Terminal(parse_state(&detail)?),
            "held" => ClaimOutcome::Held(WorkerId::from_raw(detail)),
            "stale" => ClaimOutcome::Stale(parse_state(&detail)?),
            _ => ClaimOutcome::Missing,
        })
    }

    /// Extends `worker`'s lease on a job at `attempt`. A lease that has lapsed (Redis was out
    /// of reach for longer than the lease) is taken again when the record still names this
    /// worker, attempt and `running`: only another holder, or a job that moved on, is a loss.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails: that says nothing about who holds the lease.
    pub async fn renew_lease(
        &self,
        id: JobId,
        worker: &WorkerId,
        attempt: u32,
        lease: Duration,
    ) -> Result<LeaseRenewal, StoreError> {
        let mut conn = self.conn();
        let renewed: i64 = RENEW
            .key(self.keys.lease(id))
            .key(self.keys.job(id))
            .arg(worker.as_str())
            .arg(lease.as_millis() as u64)
            .arg(attempt)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("renewing a lease", e))?;
        Ok(match renewed {
            1 => LeaseRenewal::Renewed,
            2 => LeaseRenewal::Retaken,
            _ => LeaseRenewal::Lost,
        })
    }

    /// Returns who holds the lease on a job.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn lease_holder(&self, id: JobId) -> Result<Option<WorkerId>, StoreError> {
        let mut conn = self.conn();
        let holder: Option<String> = conn
            .get(self.keys.lease(id))
            .await
            .map_err(|e| StoreError::redis("reading a lease", e))?;
        Ok(holder.map(WorkerId::from_raw))
    }

    /// Forgets why a job waited (a delayed job released to the scheduler, which says why it
    /// waits from then on).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn clear_pending_reason(&self, id: JobId) -> Result<(), StoreError> {
        self.conn()
            .hdel::<_, _, ()>(self.keys.job(id), "pending_reason")
            .await
            .map_err(|e| StoreError::redis("clearing a pending reason", e))
    }

    /// Records why a queued job is still waiting (`no_matching_pool: …`); a no-op once the job
    /// has left `queued`.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn set_pending_reason(&self, id: JobId, reason: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: i64 = ANNOTATE
            .key(self.keys.job(id))
            .arg(state_list(&[JobState::Queued]))
            .arg("pending_reason")
            .arg(reason)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("setting a pending reason", e))?;
        Ok(())
    }
}

/// The task, tag and label indexes a job belongs to, as key suffixes after the prefix.
pub(crate) fn extra_indexes(spec: &JobSpec) -> Vec<String> {
    let mut out = vec![crate::Keys::index_task_suffix(&spec.task)];
    out.extend(
        spec.requires
            .tags
            .iter()
            .map(|tag| crate::Keys::index_tag_suffix(tag.as_str())),
    );
    out.extend(
        spec.labels
            .iter()
            .map(|(k, v)| crate::Keys::index_label_suffix(k, v)),
    );
    out
}

/// The states a transition may start from: the legal ones, narrowed by `only_from`.
fn sources(t: &Transition) -> Vec<JobState> {
    let legal = t.to.legal_sources();
    match &t.only_from {
        None => legal.to_vec(),
        Some(only) => legal.iter().copied().filter(|s| only.contains(s)).collect(),
    }
}
