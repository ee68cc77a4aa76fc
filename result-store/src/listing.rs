//! Listing: newest-first pages over the score-0 indexes, and counts by state.

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
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
    /// Only jobs of this task.
    pub task: Option<String>,
    /// Only jobs that require this resource tag.
    pub tag: Option<String>,
    /// Only jobs with this label (`key`, `value`).
    pub label: Option<(String, String)>,
    /// Only jobs created at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Only jobs created at or before this time (ms since the epoch).
    pub until_ms: Option<u64>,
}

/// The start of the ids of jobs created at `ms`: a UUIDv7 begins with its 48-bit
/// millisecond timestamp in hex, so a time range is a range of ids, read from any index.
fn id_prefix(ms: u64) -> String {
    let ms = ms.min((1 << 48) - 1);
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff)
}

/// A listing's filters as a query string gives them (every value optional; an empty one is
/// no filter), checked by [`FilterParams::parse`]. The dashboard and the submitter's
/// `GET /v1/jobs` both take these, so they filter alike.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterParams {
    /// A job state.
    pub state: Option<String>,
    /// A tenant.
    pub tenant: Option<String>,
    /// A queue.
    pub queue: Option<String>,
    /// A task name.
    pub task: Option<String>,
    /// A resource tag the jobs require.
    pub tag: Option<String>,
    /// A label, `key=value`.
    pub label: Option<String>,
    /// Created at or after: ms since the epoch, or RFC 3339 (`2026-12-01T10:00:00Z`).
    pub since: Option<String>,
    /// Created at or before: ms since the epoch, or RFC 3339.
    pub until: Option<String>,
}

/// A filter parameter that does not parse: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// The parameter's name.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl FilterParams {
    /// Checks the parameters and makes the filter.
    ///
    /// # Errors
    /// Names the first parameter that is malformed or too long.
    pub fn parse(self) -> Result<JobFilter, FilterError> {
        let fail = |field: &'static str, message: String| FilterError { field, message };
        let name = |field: &'static str, raw: Option<String>, max: usize| match raw
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
        {
            Some(r) if r.len() > max => Err(fail(
                field,
                format!("{field} must be at most {max} characters"),
            )),
            other => Ok(other),
        };
        let state = name("state", self.state, 64)?
            .map(|raw| raw.parse::<JobState>())
            .transpose()
            .map_err(|e| fail("state", e.to_string()))?;
        let label = name("label", self.label, 64 + 1 + 256)?
            .map(|raw| JobFilter::parse_label(&raw))
            .transpose()
            .map_err(|message| fail("label", message))?;
        let time = |field: &'static str, raw: Option<String>| {
            name(field, raw, 64)?
                .map(|raw| {
                    parse_time(&raw).ok_or_else(|| {
                    fail(
                        field,
                        format!(
                            "{field} must be ms since the epoch or an RFC 3339 time, got {raw:?}"
                        ),
                    )
                })
                })
                .transpose()
        };
        Ok(JobFilter {
            state,
            tenant: name("tenant", self.tenant, 64)?,
            queue: name("queue", self.queue, 64)?,
            task: name("task", self.task, 128)?,
            tag: name("tag", self.tag, 64)?,
            label,
            since_ms: time("since", self.since)?,
            until_ms: time("until", self.until)?,
        })
    }
}

/// Milliseconds since the epoch, from a number of them or an RFC 3339 time.
fn parse_time(raw: &str) -> Option<u64> {
    if let Ok(ms) = raw.parse::<u64>() {
        return Some(ms);
    }
    let at = humantime::parse_rfc3339_weak(raw).ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
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
        if limit == 0 {
            // Asked for nothing: without this the page never fills and everything is listed.
            return Ok(Page {
                jobs: Vec::new(),
                next_cursor: None,
            });
        }
        let index = self.narrowest_index(filter).await?;
        let mut conn = self.conn();
        let batch = limit.saturating_mul(2).clamp(10, 500);
        let mut jobs = Vec::with_capacity(limit.min(batch));
        // Exclusive upper bounds: the cursor, and the first id after `until_ms`; the
        // smaller one wins (ids are lowercase hex, so they compare as strings).
        let upper = [
            cursor.map(|c| c.to_string()),
            filter.until_ms.map(|ms| id_prefix(ms.saturating_add(1))),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut from = upper.map_or_else(|| "+".to_owned(), |u| format!("({u}"));
        let to = filter
            .since_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("[{}", id_prefix(ms)));
        loop {
            let ids: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                .arg(&index)
                .arg(&from)
                .arg(&to)
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

    /// The index to read for `filter`: of the indexes its filters name, the one with the
    /// fewest entries (one `ZCARD` each, in one round trip); all jobs without a filter.
    async fn narrowest_index(&self, filter: &JobFilter) -> Result<String, StoreError> {
        let mut candidates = Vec::new();
        if let Some(state) = filter.state {
            candidates.push(self.keys.index_state(state));
        }
        if let Some(tenant) = &filter.tenant {
            candidates.push(self.keys.index_tenant(tenant));
        }
        if let Some(queue) = &filter.queue {
            candidates.push(self.keys.index_queue(queue));
        }
        if let Some(task) = &filter.task {
            candidates.push(self.keys.index_task(task));
        }
        if let Some(tag) = &filter.tag {
            candidates.push(self.keys.index_tag(tag));
        }
        if let Some((key, value)) = &filter.label {
            candidates.push(self.keys.index_label(key, value));
        }
        if candidates.len() < 2 {
            return Ok(candidates.pop().unwrap_or_else(|| self.keys.index_all()));
        }
        let mut pipe = redis::pipe();
        for key in &candidates {
            pipe.zcard(key);
        }
        let sizes: Vec<u64> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| StoreError::redis("sizing indexes", e))?;
        let smallest = sizes
            .iter()
            .enumerate()
            .min_by_key(|(_, size)| **size)
            .map_or(0, |(i, _)| i);
        Ok(candidates.swap_remove(smallest))
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
            && self.task.as_ref().is_none_or(|t| *t == record.spec.task)
            && self
                .tag
                .as_ref()
                .is_none_or(|t| record.spec.requires.tags.iter().any(|r| r.as_str() == t))
            && self
                .label
                .as_ref()
                .is_none_or(|(k, v)| record.spec.labels.get(k) == Some(v))
    }

    /// Parses a label search, `key=value` (split at the first `=`; the value may be empty).
    ///
    /// # Errors
    /// Says what is wrong when there is no `=` or the key is empty.
    pub fn parse_label(raw: &str) -> Result<(String, String), String> {
        match raw.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(format!("label must be key=value, got {raw:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_prefixes_bound_uuid_v7_ids() {
        let id = JobId::new().to_string();
        let ms = warren_protocol::now_ms();
        assert!(id_prefix(ms.saturating_sub(1000)).as_str() <= id.as_str());
        assert!(id_prefix(ms + 1000).as_str() > id.as_str());
        assert_eq!(id_prefix(0x0123_4567_89ab), "01234567-89ab");
    }

    #[test]
    fn labels_parse_at_the_first_equals_sign() {
        assert_eq!(
            JobFilter::parse_label("env=prod=1"),
            Ok(("env".into(), "prod=1".into()))
        );
        assert_eq!(
            JobFilter::parse_label("k="),
            Ok(("k".into(), String::new()))
        );
        assert!(JobFilter::parse_label("=v").is_err());
        assert!(JobFilter::parse_label("nokey").is_err());
    }

    #[test]
    fn params_parse_or_name_the_field() {
        let filter = FilterParams {
            state: Some("queued".into()),
            task: Some(" sleep ".into()),
            label: Some("env=prod".into()),
            since: Some("2026-12-01T10:00:00Z".into()),
            until: Some("1796119200000".into()),
            tenant: Some(String::new()),
            ..FilterParams::default()
        }
        .parse()
        .unwrap();
        assert_eq!(filter.state, Some(JobState::Queued));
        assert_eq!(filter.task.as_deref(), Some("sleep"));
        assert_eq!(filter.tenant, None);
        assert_eq!(filter.since_ms, Some(1_796_119_200_000));
        assert_eq!(filter.until_ms, Some(1_796_119_200_000));
        let bad = |params: FilterParams| params.parse().unwrap_err().field;
        let since = FilterParams {
            since: Some("yesterday".into()),
            ..FilterParams::default()
        };
        assert_eq!(bad(since), "since");
        let label = FilterParams {
            label: Some("env".into()),
            ..FilterParams::default()
        };
        assert_eq!(bad(label), "label");
        let state = FilterParams {
            state: Some("sleeping".into()),
            ..FilterParams::default()
        };
        assert_eq!(bad(state), "state");
    }
}
