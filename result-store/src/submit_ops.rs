//! Idempotency keys for the submitter: `idem:{key}` → job id, `idem-batch:{key}` → a
//! batch's job ids.
//!
//! The key is reserved *before* the job is written or published, so two concurrent
//! submissions with one key agree on one job id. It is reserved for a short time only and
//! kept for long once the job is accepted ([`Store::keep_idempotency_key`]); a submission
//! that fails releases it, so a retry with the same key gets a fresh chance, and a key whose
//! release failed too frees itself soon.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use warren_protocol::JobId;

use crate::{Store, StoreError};

/// Sets the key to the job id unless it is already set, and returns the holder if it was.
/// A script rather than `SET NX GET`, which needs Redis 7.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
",
    )
});

/// Sets a new TTL on the key only while it still names the given job.
static KEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
",
    )
});

/// Deletes the key (`KEYS[1]`) only while it still names the given job, so a late release
/// cannot drop a key that a later submission has taken since, and only while none of its
/// jobs (`KEYS[2..]`) exists: a refused submission whose job got out and runs keeps its key,
/// so the client's retry finds that job instead of making a second one.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
return redis.call('DEL', KEYS[1])
",
    )
});

/// Joins a batch's ids as its idempotency key stores them.
fn batch_value(ids: &[JobId]) -> String {
    ids.iter()
        .map(JobId::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Store {
    /// Reserves idempotency key `key` for job `id` for `ttl`.
    ///
    /// Returns `None` when the key is now this job's, or `Some(holder)` when an earlier
    /// submission holds it (the caller answers with that job instead of creating one).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails; nothing is reserved then.
    pub async fn reserve_idempotency_key(
        &self,
        key: &str,
        id: JobId,
        ttl: Duration,
    ) -> Result<Option<JobId>, StoreError> {
        let mut conn = self.conn();
        let holder: Option<String> = RESERVE
            .key(self.keys.idempotency(key))
            .arg(id.to_string())
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reserving an idempotency key", e))?;
        holder
            .map(|raw| {
                raw.parse().map_err(|e| StoreError::Corrupt {
                    key: self.keys.idempotency(key),
                    message: format!("not a job id: {e}"),
                })
            })
            .transpose()
    }

    /// Keeps idempotency key `key` for `ttl` from now, if it still names job `id` (its job
    /// was accepted: replays within `ttl` get that job).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn keep_idempotency_key(
        &self,
        key: &str,
        id: JobId,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: i64 = KEEP
            .key(self.keys.idempotency(key))
            .arg(id.to_string())
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("keeping an idempotency key", e))?;
        Ok(())
    }

    /// Releases idempotency key `key` if it still names job `id` and that job does not exist
    /// (its submission failed before writing it, or was withdrawn).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn release_idempotency_key(&self, key: &str, id: JobId) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: i64 = RELEASE
            .key(self.keys.idempotency(key))
            .key(self.keys.job(id))
            .arg(id.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("releasing an idempotency key", e))?;
        Ok(())
    }

    /// Reserves batch idempotency key `key` for the jobs `ids` (in order) for `ttl`.
    ///
    /// Returns `None` when the key is now this batch's, or `Some(ids)` with the jobs of the
    /// earlier batch that holds it.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails; nothing is reserved then.
    pub async fn reserve_batch_idempotency_key(
        &self,
        key: &str,
        ids: &[JobId],
        ttl: Duration,
    ) -> Result<Option<Vec<JobId>>, StoreError> {
        let redis_key = self.keys.idempotency_batch(key);
        let mut conn = self.conn();
        let holder: Option<String> = RESERVE
            .key(&redis_key)
            .arg(batch_value(ids))
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reserving a batch idempotency key", e))?;
        let Some(raw) = holder else {
            return Ok(None);
        };
        raw.split(',')
            .map(|id| {
                id.parse().map_err(|e| StoreError::Corrupt {
                    key: redis_key.clone(),
                    message: format!("not a job id: {e}"),
                })
            })
            .collect::<Result<Vec<JobId>, _>>()
            .map(Some)
    }

    /// Keeps batch idempotency key `key` for `ttl` from now, if it still names the batch
    /// `ids` (it was accepted).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn keep_batch_idempotency_key(
        &self,
        key: &str,
        ids: &[JobId],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: i64 = KEEP
            .key(self.keys.idempotency_batch(key))
            .arg(batch_value(ids))
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("keeping a batch idempotency key", e))?;
        Ok(())
    }

    /// Releases batch idempotency key `key` if it still names the batch `ids` and none of
    /// them exists (its submission failed before writing them, or was withdrawn).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn release_batch_idempotency_key(
        &self,
        key: &str,
        ids: &[JobId],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(self.keys.idempotency_batch(key));
        for id in ids {
            invocation.key(self.keys.job(*id));
        }
        let _: i64 = invocation
            .arg(batch_value(ids))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("releasing a batch idempotency key", e))?;
        Ok(())
    }
}
