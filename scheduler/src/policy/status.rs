//! The scheduler's state as a document: `GET /v1/scheduler`, the dashboard, `warren`.

use serde::Serialize;

use super::class::JobClass;
use super::config::PolicyConfig;
use super::engine::{Reservation, Scheduler};

/// Pending jobs of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassStatus {
    /// The class.
    #[serde(flatten)]
    pub class: JobClass,
    /// Jobs waiting.
    pub pending: usize,
}

/// One tenant's use against its share.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    /// The tenant.
    pub tenant: String,
    /// Decayed resource-seconds.
    pub usage: f64,
    /// Its fraction of all tenants' usage.
    pub usage_share: f64,
    /// Its weight.
    pub weight: f64,
    /// Its weight's fraction of the weights of tenants with usage or work.
    pub weight_share: f64,
    /// Jobs running.
    pub running: u32,
}

/// One worker's capacity and what is free.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    /// The worker.
    pub worker: String,
    /// Its tags.
    pub tags: String,
    /// Slots in all.
    pub slots: u32,
    /// Jobs placed there (running or about to).
    pub placed: usize,
    /// Free cores, memory (MiB) and GPUs.
    pub free_cpu: i64,
    /// Free memory (MiB).
    pub free_mem_mb: i64,
    /// Free GPUs.
    pub free_gpus: i64,
    /// Jobs it may be sent beyond its free slots, as last sized by the dispatch round trip
    /// and the runtimes of what runs there.
    pub slack: u32,
}

/// The whole summary.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Policy, weights and limits.
    pub policy: PolicyConfig,
    /// Pending jobs in all.
    pub pending: usize,
    /// Running jobs in all.
    pub running: usize,
    /// Pending per class.
    pub classes: Vec<ClassStatus>,
    /// Per-tenant usage against share.
    pub tenants: Vec<TenantStatus>,
    /// Running jobs per queue (for queue limits).
    pub queues_running: std::collections::BTreeMap<String, u32>,
    /// Workers and their free capacity.
    pub workers: Vec<WorkerStatus>,
    /// The worker held for a large job (backfill).
    pub reservation: Option<Reservation>,
    /// From a decision to the job running at a free slot (ms, moving average).
    pub dispatch_rtt_ms: f64,
}

impl Status {
    pub(super) fn of(scheduler: &Scheduler) -> Self {
        let (classes, tenants, workers, queues_running) = scheduler.status_parts();
        let total_usage: f64 = tenants.iter().map(|t| t.1).sum();
        let total_weight: f64 = tenants.iter().map(|t| t.3).sum();
        let mut tenants: Vec<TenantStatus> = tenants
            .into_iter()
            .map(|(tenant, usage, running, weight)| TenantStatus {
                tenant: tenant.to_owned(),
                usage,
                usage_share: if total_usage > 0.0 {
                    usage / total_usage
                } else {
                    0.0
                },
                weight,
                weight_share: if total_weight > 0.0 {
                    weight / total_weight
                } else {
                    0.0
                },
                running,
            })
            .collect();
        tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Self {
            policy: scheduler.config().clone(),
            pending: scheduler.pending_count(),
            running: scheduler.running_count(),
            classes: classes
                .into_iter()
                .map(|(class, pending)| ClassStatus {
                    class: class.clone(),
                    pending,
                })
                .collect(),
            tenants,
            queues_running,
            workers: workers
                .values()
                .map(|w| WorkerStatus {
                    worker: w.heartbeat.worker_id.to_string(),
                    tags: w.heartbeat.pool.to_string(),
                    slots: w.heartbeat.slots,
                    placed: w.placed.len(),
                    free_cpu: w.free_cpu(),
                    free_mem_mb: w.free_mem(),
                    free_gpus: w.free_gpus(),
                    slack: w.slack,
                })
                .collect(),
            reservation: scheduler.reservation().cloned(),
            dispatch_rtt_ms: scheduler.dispatch_rtt_ms(),
        }
    }
}
