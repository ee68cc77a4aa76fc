//! The history of what people did to a job (cancel, retry, requeue…), by whom and from where,
//! kept on the job's record so the timeline shows it and it expires with the job.

use serde::{Deserialize, Serialize};
use warren_protocol::{JobId, now_ms};

use crate::scripts::RECORD_ACTION;
use crate::{Store, StoreError};

/// Most entries one job keeps (the oldest go first): a job cancelled in a loop must not grow
/// its record without bound.
pub const MAX_ACTIONS: usize = 50;

/// The label a retried job's new copy carries: the id of the job it runs again.
pub const RETRY_OF_LABEL: &str = "retry_of";

/// One thing done to a job by a person or a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct JobAction {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// What: `cancel`, `retry`, `requeue`…
    pub action: String,
    /// Who: the token's name, or `anonymous` when the caller had none.
    pub by: String,
    /// From where: `api` (the submitter), `dashboard`, `cli`…
    pub via: String,
    /// More about it, e.g. `bulk` or the id of the job a retry made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl JobAction {
    /// An action done now.
    pub fn now(action: &str, by: &str, via: &str) -> Self {
        Self {
            at_ms: now_ms(),
            action: action.to_owned(),
            by: by.to_owned(),
            via: via.to_owned(),
            detail: None,
        }
    }

    /// Adds a detail.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl Store {
    /// Appends `action` to job `id`'s history; returns `false` when the job does not exist.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn record_action(&self, id: JobId, action: &JobAction) -> Result<bool, StoreError> {
        let entry = serde_json::to_string(action).unwrap_or_default();
        let mut conn = self.conn();
        let done: i64 = RECORD_ACTION
            .key(self.keys.job(id))
            .arg(entry)
            .arg(MAX_ACTIONS)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("recording an action", e))?;
        Ok(done == 1)
    }
}
