//! The index of dead letters: every message that reached `{ns}.dead` (malformed messages,
//! jobs that failed for good after their attempts, poison jobs), with the reason, listable
//! without draining the queue, and the requeue of a dead job from its stored spec.
//!
//! The scheduler consumes `{ns}.dead` and writes each message here ([`Store::record_dead`]);
//! entries are forgotten after the result TTL, like the job records they point to.

use std::future::Future;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use warren_protocol::{JobEnvelope, JobId, JobState, now_ms};

use crate::jobs::NewJob;
use crate::scripts::{DEAD_ADD, DEAD_REMOVE};
use crate::{Store, StoreError};

/// The label a requeued job carries: the id of the dead job it runs again.
pub const REQUEUED_FROM_LABEL: &str = "requeued_from";

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// The entry's id: the job id, or a fresh id for a message that names no job.
    pub id: String,
    /// The job the message was for, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// Why it died.
    pub reason: String,
    /// When it reached the index (ms since the epoch).
    pub dead_ms: u64,
    /// The job's tenant, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The job's task, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The attempt the message carried, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Whether `POST /v1/dead/{id}/requeue` can run it again: only a message that names a
    /// job can (a malformed message has no spec to run).
    pub requeueable: bool,
}

/// Whether `raw` can be a `next_cursor` of [`Store::list_dead`]: `<13 digits>|<id>`, as the
/// index spells its members. The submitter and the dashboard check cursors with it before
/// they reach Redis.
#[must_use]
pub fn is_dead_cursor(raw: &str) -> bool {
    raw.split_once('|').is_some_and(|(ms, id)| {
        ms.len() == 13
            && ms.bytes().all(|b| b.is_ascii_digit())
            && !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

impl DeadLetter {
    fn member(&self) -> String {
        format!("{:013}|{}", self.dead_ms, self.id)
    }
}

/// One page of dead letters, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DeadPage {
    /// The entries.
    pub dead: Vec<DeadLetter>,
    /// Pass back as `cursor` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// The answer to a requeue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Requeued {
    /// The new job (attempt 1, the dead job's spec).
    pub id: JobId,
    /// Always `queued`.
    pub state: JobState,
    /// The dead job it runs again.
    pub requeued_from: JobId,
}

/// Why a dead letter could not be requeued.
#[derive(Debug, thiserror::Error)]
pub enum RequeueError<E: std::error::Error + 'static> {
    /// No dead letter has this id (never, or already requeued, or forgotten).
    #[error("no dead letter {0}")]
    NotFound(String),
    /// The dead letter cannot run again (no job record, or the job is live again).
    #[error("{0}")]
    NotRequeueable(String),
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The new job could not be published; nothing was created.
    #[error("publishing the requeued job")]
    Publish(#[source] E),
}

impl Store {
    /// Indexes a dead letter (replacing an earlier one with the same id) and forgets entries
    /// older than the result TTL.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn record_dead(&self, entry: &DeadLetter) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt {
            key: self.keys.dead_entries(),
            message: format!("encoding a dead letter: {e}"),
        })?;
        let ttl_ms = u64::try_from(self.options.result_ttl.as_millis()).unwrap_or(u64::MAX);
        let cutoff = format!("{:013}", now_ms().saturating_sub(ttl_ms));
        let tenant_key = entry
            .tenant
            .as_deref()
            .map(|t| self.keys.dead_tenant(t))
            .unwrap_or_default();
        let mut conn = self.conn();
        let _: i64 = DEAD_ADD
            .key(self.keys.dead_entries())
            .key(self.keys.dead_index())
            .arg(&entry.id)
            .arg(json)
            .arg(entry.member())
            .arg(tenant_key)
            .arg(cutoff)
            .arg(self.keys.dead_tenant_prefix())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("indexing a dead letter", e))?;
        Ok(())
    }

    /// Reads one dead letter.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails or the entry is corrupt.
    pub async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let mut conn = self.conn();
        let raw: Option<String> = conn
            .hget(self.keys.dead_entries(), id)
            .await
            .map_err(|e| StoreError::redis("reading a dead letter", e))?;
        raw.map(|raw| self.parse_dead(&raw)).transpose()
    }

    /// Reads one dead letter as a caller bound to `tenant` may see it: `None` for another
    /// tenant's, or for one with no readable tenant (a malformed message) unless `tenant` is
    /// `None` (every tenant). The submitter and the dashboard answer both as "not found", so
    /// ids cannot be probed.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails or the entry is corrupt.
    pub async fn dead_letter_for(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let entry = self.dead_letter(id).await?;
        Ok(entry.filter(|e| tenant.is_none_or(|own| e.tenant.as_deref() == Some(own))))
    }

    fn parse_dead(&self, raw: &str) -> Result<DeadLetter, StoreError> {
        serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
            key: self.keys.dead_entries(),
            message: format!("dead letter: {e}"),
        })
    }

    /// Lists dead letters, newest first, `limit` per page, of one tenant or of all.
    /// `cursor` is the `next_cursor` of the previous page.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn list_dead(
        &self,
        tenant: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DeadPage, StoreError> {
        let index = tenant.map_or_else(|| self.keys.dead_index(), |t| self.keys.dead_tenant(t));
        let max = cursor.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
        let mut conn = self.conn();
        let members: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
            .arg(&index)
            .arg(&max)
            .arg("-")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + 1)
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("listing dead letters", e))?;
        let more = members.len() > limit;
        let members = &members[..members.len().min(limit)];
        let ids: Vec<&str> = members
            .iter()
            .filter_map(|m| m.split_once('|').map(|(_, id)| id))
            .collect();
        let mut dead = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            let raws: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.keys.dead_entries())
                .arg(&ids)
                .query_async(&mut conn)
                .await
                .map_err(|e| StoreError::redis("reading dead letters", e))?;
            for raw in raws.into_iter().flatten() {
                dead.push(self.parse_dead(&raw)?);
            }
        }
        let next_cursor = if more { members.last().cloned() } else { None };
        Ok(DeadPage { dead, next_cursor })
    }

    /// Removes a dead letter from the index.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn remove_dead(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let removed: i64 = DEAD_REMOVE
            .key(self.keys.dead_entries())
            .key(self.keys.dead_index())
            .arg(id)
            .arg(self.keys.dead_tenant_prefix())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("removing a dead letter", e))?;
        Ok(removed == 1)
    }

    /// Runs a dead job again: a new job (attempt 1) with the dead job's stored spec, run now
    /// (no delay), labelled `requeued_from`; the dead job's record says `requeued_as` and the
    /// entry leaves the index. `publish` sends the new job's envelope to intake and waits for
    /// the broker's confirm (the store does not talk to RabbitMQ); if it fails the new record
    /// is deleted again, so nothing half-made stays (invariant I2). The submitter's
    /// `POST /v1/dead/{id}/requeue` and the dashboard share this.
    ///
    /// # Errors
    /// [`RequeueError::NotFound`], [`RequeueError::NotRequeueable`] (a malformed message with
    /// no job, a record that expired, a job that is live again), [`RequeueError::Store`] or
    /// [`RequeueError::Publish`].
    pub async fn requeue_dead<F, Fut, E>(
        &self,
        id: &str,
        publish: F,
    ) -> Result<Requeued, RequeueError<E>>
    where
        F: FnOnce(JobEnvelope) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::error::Error + 'static,
    {
        let entry = self
            .dead_letter(id)
            .await?
            .ok_or_else(|| RequeueError::NotFound(id.to_owned()))?;
        let Some(job_id) = entry.job_id else {
            return Err(RequeueError::NotRequeueable(format!(
                "dead letter {id} is a message that names no job ({}): there is no spec to \
                 run; it is listed for inspection only",
                entry.reason
            )));
        };
        let Some(record) = self.get(job_id).await? else {
            return Err(RequeueError::NotRequeueable(format!(
                "job {job_id} has no record any more (it expired or was never written): \
                 there is no spec to run"
            )));
        };
        if !record.state.is_terminal() {
            return Err(RequeueError::NotRequeueable(format!(
                "job {job_id} is {} again: only a finished job can be requeued",
                record.state
            )));
        }
        let mut spec = record.spec;
        spec.delay_s = None;
        spec.not_before_ms = None;
        spec.labels
            .insert(REQUEUED_FROM_LABEL.to_owned(), job_id.to_string());
        let job = NewJob {
            id: JobId::new(),
            spec,
            created_ms: now_ms(),
        };
        self.create_jobs(std::slice::from_ref(&job)).await?;
        let envelope = JobEnvelope::first_attempt(job.id, job.spec.clone(), job.created_ms, None);
        if let Err(error) = publish(envelope).await {
            if let Err(delete) = self.delete_jobs(std::slice::from_ref(&job)).await {
                tracing::error!(job_id = %job.id, error = %delete, "cannot delete a requeued job whose publish failed");
            }
            return Err(RequeueError::Publish(error));
        }
        // The dead job's history: HSET keeps its TTL (a terminal record still expires).
        let mut conn = self.conn();
        let _: redis::RedisResult<i64> = conn
            .hset(self.keys.job(job_id), "requeued_as", job.id.to_string())
            .await;
        self.remove_dead(id).await?;
        Ok(Requeued {
            id: job.id,
            state: JobState::Queued,
            requeued_from: job_id,
        })
    }
}
