//! Submit→start and run-time percentiles over the most recently succeeded jobs.
//!
//! The services keep no latency histograms in Redis yet, so the dashboard reads the newest
//! [`SAMPLE`] records of the `succeeded` index (one bounded page, the cost of a page of the
//! Jobs view, whatever the history) and takes percentiles of their timestamps.

use serde::Serialize;
use warren_protocol::JobState;
use warren_store::{JobFilter, JobRecord, Store, StoreError};

/// How many recent jobs the percentiles are over.
const SAMPLE: usize = 100;

/// Percentiles in milliseconds; absent when no job qualifies.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Latency {
    /// How many jobs they are over.
    pub(crate) jobs: usize,
    /// From acceptance to the start of the run that succeeded.
    pub(crate) wait_p50_ms: Option<u64>,
    pub(crate) wait_p95_ms: Option<u64>,
    /// Of the run that succeeded.
    pub(crate) run_p50_ms: Option<u64>,
    pub(crate) run_p95_ms: Option<u64>,
}

/// Reads the newest succeeded jobs and summarises them.
pub(crate) async fn recent(store: &Store) -> Result<Latency, StoreError> {
    let filter = JobFilter {
        state: Some(JobState::Succeeded),
        ..JobFilter::default()
    };
    let page = store.list(&filter, SAMPLE, None).await?;
    Ok(summarise(&page.jobs))
}

fn summarise(jobs: &[JobRecord]) -> Latency {
    let at = |job: &JobRecord, state: JobState| job.timestamps.get(state.as_str()).copied();
    let mut waits: Vec<u64> = jobs
        .iter()
        .filter_map(|j| Some(at(j, JobState::Running)?.saturating_sub(j.created_ms)))
        .collect();
    let mut runs: Vec<u64> = jobs
        .iter()
        .filter_map(|j| Some(at(j, JobState::Succeeded)?.saturating_sub(at(j, JobState::Running)?)))
        .collect();
    waits.sort_unstable();
    runs.sort_unstable();
    Latency {
        jobs: jobs.len(),
        wait_p50_ms: percentile(&waits, 50),
        wait_p95_ms: percentile(&waits, 95),
        run_p50_ms: percentile(&runs, 50),
        run_p95_ms: percentile(&runs, 95),
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
