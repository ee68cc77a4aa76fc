//! The scheduler's Prometheus series (served on `WARREN_METRICS_ADDR`, see
//! `warren_kit::metrics`). Labels stay bounded: pools and tenants, never job ids.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use warren_protocol::now_ms;

use crate::policy::status::Status;

/// A job was sent to a worker of `pool`; `created_ms` is its submission time on a first
/// attempt (a retry's wait is not a dispatch latency).
pub(crate) fn dispatched(pool: &str, created_ms: Option<u64>) {
    metrics::counter!("warren_scheduler_jobs_dispatched_total", "pool" => pool.to_owned())
        .increment(1);
    if let Some(created) = created_ms {
        let waited = now_ms().saturating_sub(created) as f64 / 1000.0;
        metrics::histogram!("warren_scheduler_dispatch_latency_seconds", "pool" => pool.to_owned())
            .record(waited);
    }
}

/// The pending and running jobs the active scheduler holds, by tenant, at each status write.
pub(crate) fn record_status(status: &Status) {
    metrics::gauge!("warren_scheduler_running_jobs").set(status.running as f64);
    // Every tenant ever seen waiting, so a tenant whose backlog drained reads 0 rather than
    // its last value (tenants are few: a bounded label).
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut pending: BTreeMap<String, usize> = BTreeMap::new();
    for class in &status.classes {
        *pending.entry(class.class.tenant.clone()).or_default() += class.pending;
    }
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    seen.extend(pending.keys().cloned());
    for tenant in seen.iter() {
        let jobs = pending.get(tenant).copied().unwrap_or(0);
        metrics::gauge!("warren_scheduler_pending_jobs", "tenant" => tenant.clone())
            .set(jobs as f64);
    }
}

/// The broker session was lost and is being made again.
pub(crate) fn amqp_reconnect() {
    metrics::counter!("warren_amqp_reconnects_total", "service" => "scheduler").increment(1);
}
