//! The numbers of the Overview page and of the Workers page, built from Redis alone: index
//! sizes, the terminal counters and the worker registry. Nothing here scans jobs, so the cost
//! does not grow with history.

use std::collections::BTreeMap;

use serde::Serialize;
use warren_protocol::{Heartbeat, JobState, now_ms};
use warren_store::{CounterSample, Resolution, Store, StoreError, WorkerEntry};

use crate::latency::{self, Latency};
use crate::series::{Point, rates};

/// How long a worker that went silent stays on the page as `lost`. The registry keeps it for
/// an hour; after this it is only history.
const LOST_SHOWN_MS: u64 = 15 * 60 * 1000;

/// What the Overview page shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Overview {
    /// When it was read (ms since the epoch).
    pub(crate) at_ms: u64,
    /// Jobs in each state now (every state is present).
    pub(crate) counts: BTreeMap<&'static str, u64>,
    /// Jobs that ever reached each terminal state (the charts' counters).
    pub(crate) finished: CounterSample,
    /// Workers and their slots.
    pub(crate) workers: WorkerSummary,
    /// Capacity per pool.
    pub(crate) pools: Vec<PoolSummary>,
    /// Wait and run-time percentiles of recently succeeded jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) latency: Option<Latency>,
    /// Jobs finished in the last complete second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_second: Option<Point>,
}

/// Workers by status, and their slots.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct WorkerSummary {
    pub(crate) live: u32,
    pub(crate) draining: u32,
    pub(crate) lost: u32,
    pub(crate) slots: u32,
    pub(crate) busy: u32,
    pub(crate) free: u32,
}

/// The live workers of one pool.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PoolSummary {
    pub(crate) pool: String,
    pub(crate) workers: u32,
    pub(crate) slots: u32,
    pub(crate) busy: u32,
}

/// One row of the Workers page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerView {
    pub(crate) id: String,
    /// `live`, `draining` or `lost`.
    pub(crate) status: &'static str,
    pub(crate) last_seen_ms: u64,
    /// How long ago its last heartbeat was sent.
    pub(crate) heartbeat_age_ms: u64,
    /// Its last heartbeat; absent once the worker is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) heartbeat: Option<Heartbeat>,
}

/// Reads the overview, with fresh latency percentiles.
pub(crate) async fn overview(store: &Store) -> Result<Overview, StoreError> {
    let latency = latency::recent(store).await?;
    Ok(snapshot(store, Some(latency)).await?.0)
}

/// Reads the overview and the workers it was computed from (the live ticker sends both),
/// with latency percentiles the caller read (the ticker rereads them only now and then).
pub(crate) async fn snapshot(
    store: &Store,
    latency: Option<Latency>,
) -> Result<(Overview, Vec<WorkerView>), StoreError> {
    let counts = store
        .count_by_state()
        .await?
        .into_iter()
        .map(|(state, n)| (JobState::as_str(state), n))
        .collect();
    let finished = store.terminal_counters().await?;
    let workers = workers(store).await?;
    let now_s = now_ms() / 1000;
    // The sample of the current second is still moving: rate the last complete one.
    let recent = store
        .read_samples(Resolution::Second, now_s.saturating_sub(3))
        .await?;
    let complete: Vec<CounterSample> = recent.into_iter().filter(|s| s.at < now_s).collect();
    let last_second = rates(&complete, 1000).pop();
    let overview = Overview {
        at_ms: now_ms(),
        counts,
        finished,
        workers: summarise(&workers),
        pools: pools(&workers),
        latency,
        last_second,
    };
    Ok((overview, workers))
}

/// Reads the Workers page: live and draining workers, then the lost ones of the last
/// [`LOST_SHOWN_MS`], each group newest heartbeat first.
pub(crate) async fn workers(store: &Store) -> Result<Vec<WorkerView>, StoreError> {
    let now = now_ms();
    let mut views: Vec<WorkerView> = store
        .worker_registry()
        .await?
        .into_iter()
        .filter_map(|entry| view(entry, now))
        .collect();
    views.sort_by_key(|v| (v.status == "lost", std::cmp::Reverse(v.last_seen_ms)));
    Ok(views)
}

fn view(entry: WorkerEntry, now: u64) -> Option<WorkerView> {
    let age = now.saturating_sub(entry.last_seen_ms);
    let status = match &entry.heartbeat {
        Some(h) if h.draining => "draining",
        Some(_) => "live",
        None if age <= LOST_SHOWN_MS => "lost",
        None => return None,
    };
    Some(WorkerView {
        id: entry.id,
        status,
        last_seen_ms: entry.last_seen_ms,
        heartbeat_age_ms: age,
        heartbeat: entry.heartbeat,
    })
}

fn summarise(workers: &[WorkerView]) -> WorkerSummary {
    let mut summary = WorkerSummary::default();
    for worker in workers {
        match worker.status {
            "live" => summary.live += 1,
            "draining" => summary.draining += 1,
            _ => summary.lost += 1,
        }
        if let Some(h) = &worker.heartbeat {
            summary.slots += h.slots;
            summary.busy += h.busy.min(h.slots);
        }
    }
    summary.free = summary.slots - summary.busy;
    summary
}

fn pools(workers: &[WorkerView]) -> Vec<PoolSummary> {
    let mut pools: BTreeMap<String, PoolSummary> = BTreeMap::new();
    for h in workers.iter().filter_map(|w| w.heartbeat.as_ref()) {
        let pool = pools
            .entry(h.pool.to_string())
            .or_insert_with(|| PoolSummary {
                pool: h.pool.to_string(),
                workers: 0,
                slots: 0,
                busy: 0,
            });
        pool.workers += 1;
        pool.slots += h.slots;
        pool.busy += h.busy.min(h.slots);
    }
    pools.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_workers_are_lost_for_a_while_then_dropped() {
        let entry = |last_seen_ms| WorkerEntry {
            id: "w".into(),
            last_seen_ms,
            heartbeat: None,
        };
        let now = 10 * LOST_SHOWN_MS;
        assert_eq!(view(entry(now - 1000), now).map(|v| v.status), Some("lost"));
        assert!(view(entry(now - LOST_SHOWN_MS - 1), now).is_none());
    }
}
