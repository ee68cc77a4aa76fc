use std::time::Duration;

use redis::AsyncCommands;
use warren_protocol::{BUILTIN_TASKS, Heartbeat, WorkerId, now_ms};

use crate::{Store, StoreError};

impl Store {
    /// Records a worker's heartbeat; it expires after three missed intervals, so a dead
    /// worker drops out of the registry by itself.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn record_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), StoreError> {
        let ttl = Duration::from_millis(heartbeat.interval_ms.saturating_mul(3).max(1000));
        let body = serde_json::to_string(heartbeat).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.worker(&heartbeat.worker_id))
            .arg(body)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .ignore();
        pipe.zadd(
            self.keys.workers(),
            heartbeat.worker_id.as_str(),
            heartbeat.sent_at_ms,
        )
        .ignore();
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError::redis("recording a heartbeat", e))
    }

    /// Removes a worker that shut down cleanly.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn remove_worker(&self, id: &WorkerId) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.del(self.keys.worker(id)).ignore();
        pipe.zrem(self.keys.workers(), id.as_str()).ignore();
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError::redis("removing a worker", e))
    }

    /// Tells whether a worker is alive (its heartbeat key has not expired).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn worker_alive(&self, id: &WorkerId) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.exists(self.keys.worker(id))
            .await
            .map_err(|e| StoreError::redis("checking a worker", e))
    }

    /// Returns the last heartbeat of every live worker, pruning the dead from the index.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn live_workers(&self) -> Result<Vec<Heartbeat>, StoreError> {
        let mut conn = self.conn();
        // Anything silent for an hour is long dead; keep the index small.
        let _: i64 = conn
            .zrembyscore(self.keys.workers(), 0, now_ms().saturating_sub(3_600_000))
            .await
            .map_err(|e| StoreError::redis("pruning workers", e))?;
        let ids: Vec<String> = conn
            .zrange(self.keys.workers(), 0, -1)
            .await
            .map_err(|e| StoreError::redis("listing workers", e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.keys.worker(&WorkerId::from_raw(id.clone())))
            .collect();
        let bodies: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reading workers", e))?;
        Ok(bodies
            .into_iter()
            .flatten()
            .filter_map(|b| serde_json::from_str(&b).ok())
            .collect())
    }

    /// Adds task names to the set of tasks some worker has registered.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn register_tasks(&self, names: &[String]) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        conn.sadd(self.keys.tasks(), names)
            .await
            .map_err(|e| StoreError::redis("registering tasks", e))
    }

    /// Returns every task a job may name: the built-ins plus every registered one, sorted.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn known_tasks(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let mut names: Vec<String> = conn
            .smembers(self.keys.tasks())
            .await
            .map_err(|e| StoreError::redis("reading tasks", e))?;
        names.extend(BUILTIN_TASKS.iter().map(|s| (*s).to_owned()));
        names.sort();
        names.dedup();
        Ok(names)
    }
}
