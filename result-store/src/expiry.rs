use warren_protocol::{JobState, now_ms};

use crate::scripts::PRUNE;
use crate::{Store, StoreError};

/// How many expired jobs one [`Store::count_by_state`] call cleans up before it counts.
pub(crate) const PRUNE_BATCH: usize = 1_000;

impl Store {
    /// Drops the index entries of up to `max` finished jobs whose record has expired, and
    /// returns how many it dropped.
    ///
    /// Redis expires a finished job's record by itself but not its entries in the listing
    /// indexes; without this they would pile up for ever and [`Store::count_by_state`] would
    /// count jobs long gone. [`Store::count_by_state`] calls it; a service that never counts
    /// should call it now and then.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn prune_expired(&self, max: usize) -> Result<usize, StoreError> {
        if max == 0 {
            return Ok(0);
        }
        let mut invocation = PRUNE.prepare_invoke();
        invocation.arg(self.keys.prefix()).arg(now_ms()).arg(max);
        for state in JobState::ALL {
            invocation.arg(state.as_str());
        }
        let mut conn = self.conn();
        let pruned: usize = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("pruning expired jobs", e))?;
        Ok(pruned)
    }
}
