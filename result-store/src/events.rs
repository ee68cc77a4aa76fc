use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use warren_protocol::JobState;

use crate::{Store, StoreError};

/// One job state change, as published by the transition scripts on `{ns}:events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The job id (text).
    pub id: String,
    /// The new state.
    pub state: JobState,
    /// The state it left.
    pub from: JobState,
    /// When (ms since the epoch).
    pub at: u64,
    /// Its pool, if it has one yet.
    #[serde(default)]
    pub pool: String,
    /// Its worker, if it has one yet.
    #[serde(default)]
    pub worker: String,
    /// Its attempt.
    #[serde(default)]
    pub attempt: u32,
    /// Its tenant.
    #[serde(default)]
    pub tenant: String,
}

impl Store {
    /// Subscribes to job events. Pub/sub is at-most-once: a reader that needs certainty
    /// (waiters, the scheduler's credit) reads the job record as well.
    ///
    /// # Errors
    /// Returns [`StoreError`] when the subscription cannot be made.
    pub async fn subscribe_events(
        &self,
    ) -> Result<impl Stream<Item = JobEvent> + Send + 'static, StoreError> {
        let mut pubsub = self
            .client()
            .get_async_pubsub()
            .await
            .map_err(|e| StoreError::redis("subscribing to events", e))?;
        pubsub
            .subscribe(self.keys.events_channel())
            .await
            .map_err(|e| StoreError::redis("subscribing to events", e))?;
        Ok(pubsub.into_on_message().filter_map(|msg| async move {
            let payload: String = msg.get_payload().ok()?;
            serde_json::from_str(&payload).ok()
        }))
    }

    /// Subscribes to the news that submissions were confirmed (see
    /// [`Store::confirm_submitted`]): each item says that some jobs were unmarked. At most
    /// once, like every pub/sub message: a reader also looks now and then by itself.
    ///
    /// # Errors
    /// Returns [`StoreError`] when the subscription cannot be made.
    pub async fn subscribe_submitted(
        &self,
    ) -> Result<impl Stream<Item = ()> + Send + 'static, StoreError> {
        let mut pubsub = self
            .client()
            .get_async_pubsub()
            .await
            .map_err(|e| StoreError::redis("subscribing to confirmed submissions", e))?;
        pubsub
            .subscribe(self.keys.submitted_channel())
            .await
            .map_err(|e| StoreError::redis("subscribing to confirmed submissions", e))?;
        Ok(pubsub.into_on_message().map(|_| ()))
    }
}
