//! Warren's Redis side: the key schema, atomic job state transitions (Lua), results, logs,
//! listing indexes, worker registry, known tasks and the job event channel.
//!
//! Only this crate knows key names. Every state change goes through one Lua script that checks
//! the current state against `warren-protocol`'s transition table (invariant I1), and the same
//! script publishes the change on `{ns}:events`, so an event exists exactly when a transition
//! happened. The store does not talk to RabbitMQ.

mod dead;
mod error;
mod events;
mod expiry;
mod jobs;
mod keys;
mod listing;
mod logs;
mod observe;
mod pending;
mod purge;
mod record;
mod scripts;
mod submit_ops;
mod workers;

pub use dead::{DeadLetter, DeadPage, REQUEUED_FROM_LABEL, RequeueError, Requeued};
pub use error::StoreError;
pub use events::JobEvent;
pub use jobs::{ClaimOutcome, LeaseRenewal, NewJob, SubmitKey, Transition, TransitionOutcome};
pub use keys::Keys;
pub use listing::{JobFilter, Page};
pub use logs::{LogLine, LogStream};
pub use observe::{CounterSample, Resolution, SchedulerInfo, WorkerEntry};
pub use pending::{PendingEntry, PendingPosition};
pub use record::JobRecord;

use std::time::Duration;

use redis::aio::ConnectionManager;
use warren_protocol::Namespace;

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a finished job (and its log) is kept.
    pub result_ttl: Duration,
    /// Most lines kept in one job's log stream (the oldest go first).
    pub log_max_lines: u64,
    /// Most bytes of lines one job's log takes in, newlines counted; later lines are dropped
    /// and the job record says `log_truncated` (see [`Store::append_log`]).
    pub log_max_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            result_ttl: Duration::from_secs(7 * 24 * 3600),
            log_max_lines: 10_000,
            log_max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// A handle on Redis for one namespace. Cheap to clone: the connection manager multiplexes
/// and reconnects by itself.
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    options: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("namespace", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to Redis and checks that it answers.
    ///
    /// # Errors
    /// Returns [`StoreError::Connect`] when the URL is invalid or Redis does not answer.
    pub async fn connect(
        url: &str,
        ns: &Namespace,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::Connect)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(StoreError::Connect)?;
        let store = Self {
            client,
            conn,
            keys: Keys::new(ns),
            options,
        };
        store.ping().await?;
        Ok(store)
    }

    /// Returns the key schema.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Returns the store's options.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    /// Returns [`StoreError::Redis`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("ping", e))?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}
