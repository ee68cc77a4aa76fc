//! The scheduler's durable state: the pending index, its leader lease, its status and the
//! policy an operator asked for. The scheduler acks an intake message only once the pending
//! index holds the job, so every pending job is here, whatever happens to the scheduler.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use warren_protocol::JobId;

use crate::{Store, StoreError};

/// Takes or keeps the lease: succeeds if nobody holds it or `ARGV[1]` already does.
const LEAD: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Gives the lease up if `ARGV[1]` holds it.
const RESIGN: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The replies of `pending_position`'s pipeline: rank, size, score, class JSON, class
/// reason, class rank.
type PositionReply = (
    Option<u64>,
    u64,
    Option<f64>,
    Option<String>,
    Option<String>,
    Option<u64>,
);

/// Jobs sharing a waiting job's key that `pending_ahead` looks at, per class.
pub(crate) const TIES_COUNTED: isize = 10_000;

/// One pending job as the index stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The job.
    pub job: JobId,
    /// Its class (see [`Keys::pending_class`](crate::Keys::pending_class)).
    pub class_id: String,
    /// `id|priority|est_ms|arrival_ms`: the job's ordering factors.
    pub member: String,
    /// Its key under the policy in force (smaller first).
    pub score: i64,
    /// When it fails if still waiting (ms since the epoch), from `schedule_timeout_s`.
    pub deadline_ms: Option<u64>,
}

/// Where a pending job stands in the index, for "why is my job waiting?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPosition {
    /// Its class id.
    pub class_id: String,
    /// Its class, as JSON.
    pub class_json: Option<String>,
    /// Its member (ordering factors).
    pub member: String,
    /// Jobs of its class ahead of it.
    pub rank: Option<u64>,
    /// Jobs of its class pending in all.
    pub class_pending: u64,
    /// Its key under the policy in force.
    pub score: Option<i64>,
    /// Why the first job of its class waits.
    pub class_reason: Option<String>,
    /// Its class's place among the waiting classes (0: its head goes next).
    pub class_rank: Option<u64>,
}

impl Store {
    /// Adds jobs to the pending index (idempotent); `classes` are (id, JSON) of their classes.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pending_add(
        &self,
        classes: &[(String, String)],
        entries: &[PendingEntry],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        if !classes.is_empty() {
            pipe.hset_multiple(self.keys.pending_classes(), classes)
                .ignore();
        }
        for entry in entries {
            pipe.zadd(
                self.keys.pending_class(&entry.class_id),
                &entry.member,
                entry.score,
            )
            .ignore();
            pipe.hset(
                self.keys.pending_where(),
                entry.job.to_string(),
                format!("{}\t{}", entry.class_id, entry.member),
            )
            .ignore();
            if let Some(deadline) = entry.deadline_ms {
                pipe.zadd(
                    self.keys.pending_deadlines(),
                    entry.job.to_string(),
                    deadline,
                )
                .ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| StoreError::redis("adding to the pending index", e))
    }

    /// Removes a job from the pending index.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pending_remove(
        &self,
        job: JobId,
        class_id: &str,
        member: &str,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.zrem(self.keys.pending_class(class_id), member)
            .ignore();
        pipe.hdel(self.keys.pending_where(), job.to_string())
            .ignore();
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| StoreError::redis("removing from the pending index", e))
    }

    /// Returns up to `limit` pending jobs whose placement deadline has passed.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn due_deadlines(&self, now_ms: u64, limit: isize) -> Result<Vec<JobId>, StoreError> {
        let raw: Vec<String> = self
            .conn()
            .zrangebyscore_limit(self.keys.pending_deadlines(), "-inf", now_ms, 0, limit)
            .await
            .map_err(|e| StoreError::redis("reading placement deadlines", e))?;
        Ok(raw.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Forgets a job's placement deadline.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn drop_deadline(&self, job: JobId) -> Result<(), StoreError> {
        self.conn()
            .zrem::<_, _, ()>(self.keys.pending_deadlines(), job.to_string())
            .await
            .map_err(|e| StoreError::redis("dropping a placement deadline", e))
    }

    /// Sets new keys for pending jobs of a class (after a policy change).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pending_rescore(
        &self,
        class_id: &str,
        scores: &[(String, i64)],
    ) -> Result<(), StoreError> {
        if scores.is_empty() {
            return Ok(());
        }
        let items: Vec<(i64, &str)> = scores.iter().map(|(m, s)| (*s, m.as_str())).collect();
        self.conn()
            .zadd_multiple::<_, _, _, ()>(self.keys.pending_class(class_id), &items)
            .await
            .map_err(|e| StoreError::redis("rescoring the pending index", e))
    }

    /// Replaces the classes' places in line (class id → rank).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn set_class_ranks(&self, ranks: &[(String, u64)]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.keys.pending_ranks()).ignore();
        if !ranks.is_empty() {
            pipe.hset_multiple(self.keys.pending_ranks(), ranks)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| StoreError::redis("recording class ranks", e))
    }

    /// Records why the first job of each class waits.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn set_class_reasons(&self, reasons: &[(String, String)]) -> Result<(), StoreError> {
        if reasons.is_empty() {
            return Ok(());
        }
        self.conn()
            .hset_multiple::<_, _, _, ()>(self.keys.pending_reasons(), reasons)
            .await
            .map_err(|e| StoreError::redis("recording class reasons", e))
    }

    /// Tells where a pending job stands; `None` if the index does not hold it.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pending_position(
        &self,
        job: JobId,
    ) -> Result<Option<PendingPosition>, StoreError> {
        let place: Option<String> = self
            .conn()
            .hget(self.keys.pending_where(), job.to_string())
            .await
            .map_err(|e| StoreError::redis("finding a pending job", e))?;
        let Some((class_id, member)) = place.as_deref().and_then(|p| p.split_once('\t')) else {
            return Ok(None);
        };
        let key = self.keys.pending_class(class_id);
        let (rank, class_pending, score, class_json, class_reason, class_rank): PositionReply =
            redis::pipe()
                .zrank(&key, member)
                .zcard(&key)
                .zscore(&key, member)
                .hget(self.keys.pending_classes(), class_id)
                .hget(self.keys.pending_reasons(), class_id)
                .hget(self.keys.pending_ranks(), class_id)
                .query_async(&mut self.conn())
                .await
                .map_err(|e| StoreError::redis("reading a pending job's place", e))?;
        Ok(Some(PendingPosition {
            class_id: class_id.to_owned(),
            class_json,
            member: member.to_owned(),
            rank,
            class_pending,
            score: score.map(|s| s as i64),
            class_reason,
            class_rank,
        }))
    }

    /// Counts the pending jobs, of every class, that come before `place` in key order (ties
    /// broken by job id, as the scheduler breaks them): under a policy that orders by key
    /// alone (fifo, priority, sjf) the jobs that start before it, capacity aside. One
    /// pipelined `ZCOUNT` per other class, and a look at the jobs sharing its key (a batch's
    /// jobs share their arrival), at most [`TIES_COUNTED`] per class.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pending_ahead(&self, place: &PendingPosition) -> Result<Option<u64>, StoreError> {
        let (Some(score), Some(rank)) = (place.score, place.rank) else {
            return Ok(None);
        };
        let classes: Vec<String> = self
            .conn()
            .hkeys(self.keys.pending_classes())
            .await
            .map_err(|e| StoreError::redis("reading the pending classes", e))?;
        let others: Vec<&String> = classes.iter().filter(|c| **c != place.class_id).collect();
        if others.is_empty() {
            return Ok(Some(rank));
        }
        let (mut below, mut ties) = (redis::pipe(), redis::pipe());
        for class_id in &others {
            let key = self.keys.pending_class(class_id);
            below.zcount(&key, "-inf", format!("({score}"));
            ties.zrangebyscore_limit(&key, score, score, 0, TIES_COUNTED);
        }
        let (mut one, mut two) = (self.conn(), self.conn());
        let (below, ties): (Vec<u64>, Vec<Vec<String>>) =
            tokio::try_join!(below.query_async(&mut one), ties.query_async(&mut two),)
                .map_err(|e| StoreError::redis("counting the jobs ahead", e))?;
        // Members start with the job id, whose text sorts as the id does.
        let tied_ahead = ties.iter().flatten().filter(|m| **m < place.member).count() as u64;
        let ahead = rank + below.iter().sum::<u64>() + tied_ahead;
        Ok(Some(ahead))
    }

    /// Returns every class that has (or had) pending jobs: id → class JSON.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pending_classes(&self) -> Result<HashMap<String, String>, StoreError> {
        self.conn()
            .hgetall(self.keys.pending_classes())
            .await
            .map_err(|e| StoreError::redis("reading the pending classes", e))
    }

    /// Reads up to `count` members of a class's pending set from `offset`, in key order.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pending_page(
        &self,
        class_id: &str,
        offset: isize,
        count: isize,
    ) -> Result<Vec<String>, StoreError> {
        self.conn()
            .zrange(
                self.keys.pending_class(class_id),
                offset,
                offset + count - 1,
            )
            .await
            .map_err(|e| StoreError::redis("reading the pending index", e))
    }

    /// Forgets a class whose pending set is empty.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pending_drop_class_if_empty(&self, class_id: &str) -> Result<(), StoreError> {
        let left: u64 = self
            .conn()
            .zcard(self.keys.pending_class(class_id))
            .await
            .map_err(|e| StoreError::redis("counting a pending class", e))?;
        if left == 0 {
            let mut pipe = redis::pipe();
            pipe.hdel(self.keys.pending_classes(), class_id).ignore();
            pipe.hdel(self.keys.pending_reasons(), class_id).ignore();
            pipe.query_async::<()>(&mut self.conn())
                .await
                .map_err(|e| StoreError::redis("dropping a pending class", e))?;
        }
        Ok(())
    }

    /// Takes or renews the active scheduler's lease; `true` if `instance` holds it now.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn lead(&self, instance: &str, ttl: Duration) -> Result<bool, StoreError> {
        let held: i64 = redis::Script::new(LEAD)
            .key(self.keys.scheduler_leader())
            .arg(instance)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| StoreError::redis("taking the scheduler lease", e))?;
        Ok(held == 1)
    }

    /// Gives up the lease, if `instance` holds it, so a standby takes over at once.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn resign(&self, instance: &str) -> Result<(), StoreError> {
        redis::Script::new(RESIGN)
            .key(self.keys.scheduler_leader())
            .arg(instance)
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map_err(|e| StoreError::redis("giving up the scheduler lease", e))?;
        Ok(())
    }

    /// Writes the active scheduler's status document, kept `ttl`.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn set_scheduler_status(&self, json: &str, ttl: Duration) -> Result<(), StoreError> {
        self.conn()
            .pset_ex::<_, _, ()>(self.keys.scheduler_status(), json, ttl.as_millis() as u64)
            .await
            .map_err(|e| StoreError::redis("writing the scheduler status", e))
    }

    /// Reads the active scheduler's status document.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn scheduler_status(&self) -> Result<Option<String>, StoreError> {
        self.conn()
            .get(self.keys.scheduler_status())
            .await
            .map_err(|e| StoreError::redis("reading the scheduler status", e))
    }

    /// Records the policy an operator asked for; the active scheduler applies it.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn set_desired_policy(&self, json: &str) -> Result<(), StoreError> {
        self.conn()
            .set::<_, _, ()>(self.keys.scheduler_policy(), json)
            .await
            .map_err(|e| StoreError::redis("writing the scheduler policy", e))
    }

    /// Reads the policy an operator asked for, if any.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn desired_policy(&self) -> Result<Option<String>, StoreError> {
        self.conn()
            .get(self.keys.scheduler_policy())
            .await
            .map_err(|e| StoreError::redis("reading the scheduler policy", e))
    }

    /// Reads learned runtime estimates (task → ms).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn runtime_estimates(&self) -> Result<HashMap<String, u64>, StoreError> {
        self.conn()
            .hgetall(self.keys.runtime_estimates())
            .await
            .map_err(|e| StoreError::redis("reading runtime estimates", e))
    }

    /// Stores learned runtime estimates (task → ms).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn set_runtime_estimates(
        &self,
        estimates: &[(String, u64)],
    ) -> Result<(), StoreError> {
        if estimates.is_empty() {
            return Ok(());
        }
        self.conn()
            .hset_multiple::<_, _, _, ()>(self.keys.runtime_estimates(), estimates)
            .await
            .map_err(|e| StoreError::redis("writing runtime estimates", e))
    }

    /// Lists the ids of jobs in `state` (at most `limit`).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn ids_in_state(
        &self,
        state: warren_protocol::JobState,
        limit: isize,
    ) -> Result<Vec<warren_protocol::JobId>, StoreError> {
        let raw: Vec<String> = self
            .conn()
            .zrange(self.keys.index_state(state), 0, limit - 1)
            .await
            .map_err(|e| StoreError::redis("listing jobs by state", e))?;
        Ok(raw.iter().filter_map(|id| id.parse().ok()).collect())
    }
}
