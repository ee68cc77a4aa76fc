//! What a namespace leaves in Redis, for `warren admin purge`: every key under its prefix
//! (found with `SCAN`, never `KEYS`, so a large database is not blocked), and the pools its
//! jobs were released to (so their queues can be found on the broker).

use std::collections::BTreeSet;

use crate::{Store, StoreError};

/// Keys read or deleted per round trip.
const BATCH: usize = 1000;

impl Store {
    /// Returns every key of this namespace, sorted.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn namespace_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let pattern = format!("{}*", self.keys.prefix());
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(BATCH)
                .query_async(&mut conn)
                .await
                .map_err(|e| StoreError::redis("scanning the namespace", e))?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Returns the pools named by the job records among `keys` (as
    /// [`namespace_keys`](Self::namespace_keys) lists them), sorted.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn pools_of_jobs(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        self.field_of_jobs(keys, "pool").await
    }

    /// Returns the workers named by the job records among `keys`, sorted (each had a queue
    /// of its own).
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn workers_of_jobs(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        self.field_of_jobs(keys, "worker").await
    }

    async fn field_of_jobs(&self, keys: &[String], field: &str) -> Result<Vec<String>, StoreError> {
        let job_prefix = format!("{}job:", self.keys.prefix());
        let jobs: Vec<&String> = keys
            .iter()
            .filter(|k| {
                k.strip_prefix(&job_prefix)
                    .is_some_and(|id| !id.contains(':'))
            })
            .collect();
        let mut conn = self.conn();
        let mut pools = BTreeSet::new();
        for chunk in jobs.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.hget(key.as_str(), field);
            }
            let found: Vec<Option<String>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| StoreError::redis("reading the records of jobs", e))?;
            pools.extend(found.into_iter().flatten().filter(|p| !p.is_empty()));
        }
        Ok(pools.into_iter().collect())
    }

    /// Deletes `keys` (`UNLINK`, so large streams are freed in the background); returns how
    /// many existed.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn delete_keys(&self, keys: &[String]) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let mut deleted = 0;
        for chunk in keys.chunks(BATCH) {
            let n: u64 = redis::cmd("UNLINK")
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(|e| StoreError::redis("deleting keys", e))?;
            deleted += n;
        }
        Ok(deleted)
    }
}
