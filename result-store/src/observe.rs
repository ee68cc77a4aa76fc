//! Reads for observers such as the dashboard: the worker registry with the workers that went
//! silent, the terminal-state counters and their sampled history, and whatever the scheduler
//! publishes about itself.
//!
//! The counters (`stats:{state}`) are written by the transition script, so they count every
//! job exactly once whoever moved it. Charts need rates over time, so an observer samples the
//! counters into one sorted set per [`Resolution`]; a sample is the counters' value at a
//! moment, so writing the same moment twice (two dashboards, a restart) changes nothing.

use std::collections::BTreeMap;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_protocol::{Heartbeat, JobState, WorkerId, now_ms};

use crate::{Store, StoreError};

/// One entry of the worker registry: a worker that sent a heartbeat in the last hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerEntry {
    /// The worker's id.
    pub id: String,
    /// When its last heartbeat was sent (ms since the epoch).
    pub last_seen_ms: u64,
    /// Its last heartbeat, while that has not expired; `None` means the worker is lost (it
    /// stopped sending heartbeats without signing off).
    pub heartbeat: Option<Heartbeat>,
}

/// The terminal-state counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSample {
    /// When, in the unit of the series it belongs to (seconds or minutes since the epoch).
    pub at: u64,
    /// Jobs that ever succeeded.
    pub succeeded: u64,
    /// Jobs that ever failed.
    pub failed: u64,
    /// Jobs that ever timed out.
    pub timed_out: u64,
    /// Jobs that were ever cancelled.
    pub cancelled: u64,
}

/// How fine a series of [`CounterSample`]s is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// One sample a second, kept for 15 minutes.
    Second,
    /// One sample a minute, kept for 48 hours.
    Minute,
}

impl Resolution {
    /// Milliseconds in one unit.
    pub fn unit_ms(self) -> u64 {
        match self {
            Self::Second => 1_000,
            Self::Minute => 60_000,
        }
    }

    /// How many units of history are kept.
    pub fn retention(self) -> u64 {
        match self {
            Self::Second => 15 * 60,
            Self::Minute => 48 * 60,
        }
    }

    fn key_suffix(self) -> &'static str {
        match self {
            Self::Second => "1s",
            Self::Minute => "1m",
        }
    }
}

/// What the scheduler publishes about itself in Redis.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SchedulerInfo {
    /// Every field of `{ns}:scheduler`, as stored.
    pub fields: BTreeMap<String, String>,
    /// The JSON in field `status` of `{ns}:scheduler:status`, when it is there and parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl Store {
    /// Returns every worker heard from in the last hour, newest heartbeat first, with its
    /// last heartbeat while that is live. Unlike [`Store::live_workers`] it keeps the lost.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn worker_registry(&self) -> Result<Vec<WorkerEntry>, StoreError> {
        let mut conn = self.conn();
        let since = now_ms().saturating_sub(3_600_000);
        let ids: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.keys.workers())
            .arg("+inf")
            .arg(since)
            .arg("BYSCORE")
            .arg("REV")
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("listing workers", e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|(id, _)| self.keys.worker(&WorkerId::from_raw(id.clone())))
            .collect();
        let bodies: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reading workers", e))?;
        Ok(ids
            .into_iter()
            .zip(bodies)
            .map(|((id, score), body)| WorkerEntry {
                id,
                last_seen_ms: score as u64,
                heartbeat: body.and_then(|b| serde_json::from_str(&b).ok()),
            })
            .collect())
    }

    /// Reads the terminal-state counters now; `at` is left 0 for the caller to set.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn terminal_counters(&self) -> Result<CounterSample, StoreError> {
        let keys = [
            JobState::Succeeded,
            JobState::Failed,
            JobState::TimedOut,
            JobState::Cancelled,
        ]
        .map(|s| self.keys.stat(s));
        let mut conn = self.conn();
        let values: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reading counters", e))?;
        let value = |i: usize| values.get(i).copied().flatten().unwrap_or(0);
        Ok(CounterSample {
            at: 0,
            succeeded: value(0),
            failed: value(1),
            timed_out: value(2),
            cancelled: value(3),
        })
    }

    /// Records `sample` as the counters' value at `sample.at`, replacing any sample of that
    /// moment, and trims the series to its retention.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn record_sample(
        &self,
        resolution: Resolution,
        sample: &CounterSample,
    ) -> Result<(), StoreError> {
        let key = self.keys.series(resolution.key_suffix());
        let member = serde_json::to_string(sample).unwrap_or_default();
        let oldest = sample.at.saturating_sub(resolution.retention());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrembyscore(&key, sample.at, sample.at)
            .ignore()
            .zadd(&key, member, sample.at)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({oldest}"))
            .ignore();
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError::redis("recording a counter sample", e))
    }

    /// Returns the samples taken at or after `since` (in the resolution's unit), oldest first.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn read_samples(
        &self,
        resolution: Resolution,
        since: u64,
    ) -> Result<Vec<CounterSample>, StoreError> {
        let mut conn = self.conn();
        let members: Vec<String> = conn
            .zrangebyscore(self.keys.series(resolution.key_suffix()), since, "+inf")
            .await
            .map_err(|e| StoreError::redis("reading counter samples", e))?;
        Ok(members
            .iter()
            .filter_map(|m| serde_json::from_str(m).ok())
            .collect())
    }

    /// Reads what the scheduler publishes about itself; empty when it publishes nothing.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn scheduler_info(&self) -> Result<SchedulerInfo, StoreError> {
        let mut conn = self.conn();
        let key = self.keys.scheduler();
        // Only a hash is read: the scheduler may one day keep another type under this name.
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("reading the scheduler hash", e))?;
        let fields: BTreeMap<String, String> = if kind == "hash" {
            conn.hgetall(&key)
                .await
                .map_err(|e| StoreError::redis("reading the scheduler hash", e))?
        } else {
            BTreeMap::new()
        };
        // The active scheduler's status document (see `Store::scheduler_status`).
        let status = self.scheduler_status().await?;
        Ok(SchedulerInfo {
            fields,
            status: status.and_then(|s| serde_json::from_str(&s).ok()),
        })
    }
}
