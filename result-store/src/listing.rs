//! Listing: newest-first pages over the score-0 indexes, and counts by state.

use redis::AsyncCommands;
use serde::Serialize;
use warren_protocol::{JobId, JobState};

use crate::record::JobRecord;
use crate::{Store, StoreError};

/// Which jobs to list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only this tenant's jobs.
    pub tenant: Option<String>,
    /// Only this queue's jobs.
    pub queue: Option<String>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The jobs.
    pub jobs: Vec<JobRecord>,
    /// Pass this back as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Store {
    /// Lists jobs newest first. `cursor` is the `next_cursor` of the previous page.
    ///
    /// The most selective index among the filters is scanned and the other filters are
    /// applied to the records; ids whose record has expired are pruned from the index. A
    /// `limit` of 0 returns an empty page.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn list(
        &self,
        filter: &JobFilter,
        limit: usize,
        cursor: Option<JobId>,
    ) -> Result<Page, StoreError> {
        let index = match (&filter.state, &filter.tenant, &filter.queue) {
            (Some(state), _, _) => self.keys.index_state(*state),
            (None, Some(tenant), _) => self.keys.index_tenant(tenant),
            (None, None, Some(queue)) => self.keys.index_queue(queue),
            (None, None, None) => self.keys.index_all(),
        };
        if limit == 0 {
            // Asked for nothing: without this the page never fills and everything is listed.
            return Ok(Page {
                jobs: Vec::new(),
                next_cursor: None,
            });
        }
        let mut conn = self.conn();
        let batch = limit.saturating_mul(2).clamp(10, 500);
        let mut jobs = Vec::with_capacity(limit.min(batch));
        let mut from = cursor.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
        loop {
            let ids: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                .arg(&index)
                .arg(&from)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .query_async(&mut conn)
                .await
                .map_err(|e| StoreError::redis("listing jobs", e))?;
            let exhausted = ids.len() < batch;
            // One round trip for the whole batch, not one per id.
            let parsed: Vec<Option<JobId>> = ids.iter().map(|raw| raw.parse().ok()).collect();
            let wanted: Vec<JobId> = parsed.iter().flatten().copied().collect();
            let mut records = self.get_many(&wanted).await?.into_iter();
            for (raw, id) in ids.iter().zip(parsed) {
                from = format!("({raw}");
                if id.is_none() {
                    continue;
                }
                let Some(record) = records.next().flatten() else {
                    // Expired: the index entry outlived its record.
                    let _: Result<(), _> = conn.zrem(&index, raw).await;
                    continue;
                };
                if filter.matches(&record) {
                    jobs.push(record);
                    if jobs.len() == limit {
                        return Ok(Page {
                            next_cursor: Some(raw.clone()),
                            jobs,
                        });
                    }
                }
            }
            if exhausted {
                return Ok(Page {
                    jobs,
                    next_cursor: None,
                });
            }
        }
    }

    /// Counts the jobs in each state (from the indexes), after pruning the entries of
    /// finished jobs that have expired.
    ///
    /// # Errors
    /// Returns [`StoreError`] when Redis fails.
    pub async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        self.prune_expired(crate::expiry::PRUNE_BATCH).await?;
        let mut pipe = redis::pipe();
        for state in JobState::ALL {
            pipe.zcard(self.keys.index_state(state));
        }
        let mut conn = self.conn();
        let counts: Vec<u64> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("counting jobs", e))?;
        Ok(JobState::ALL.into_iter().zip(counts).collect())
    }
}

impl JobFilter {
    fn matches(&self, record: &JobRecord) -> bool {
        self.state.is_none_or(|s| s == record.state)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| *t == record.spec.tenant)
            && self.queue.as_ref().is_none_or(|q| *q == record.spec.queue)
    }
}
