//! The worker's Prometheus series (served on `WARREN_METRICS_ADDR`, see
//! `warren_kit::metrics`). Labels stay bounded: task names (the built-ins, `command` and
//! registered tasks), tenants and the pool, never job ids.

use std::time::Duration;

use warren_protocol::{JobEnvelope, JobState};

use crate::runtime::Runtime;

fn labels(rt: &Runtime, envelope: &JobEnvelope) -> [(&'static str, String); 3] {
    [
        ("task", envelope.spec.task.clone()),
        ("tenant", envelope.spec.tenant.clone()),
        ("pool", rt.args.tags.to_string()),
    ]
}

/// An attempt starts running here.
pub(crate) fn started(rt: &Runtime, envelope: &JobEnvelope) {
    metrics::counter!("warren_worker_jobs_started_total", &labels(rt, envelope)).increment(1);
    slots(rt);
}

/// An attempt ended in `outcome` (`retrying` when another attempt follows) after `took`.
pub(crate) fn finished(rt: &Runtime, envelope: &JobEnvelope, outcome: JobState, took: Duration) {
    let mut with_outcome = labels(rt, envelope).to_vec();
    with_outcome.push(("outcome", outcome.as_str().to_owned()));
    metrics::counter!("warren_worker_jobs_finished_total", &with_outcome).increment(1);
    let timing = [
        ("task", envelope.spec.task.clone()),
        ("pool", rt.args.tags.to_string()),
        ("outcome", outcome.as_str().to_owned()),
    ];
    metrics::histogram!("warren_worker_job_run_duration_seconds", &timing)
        .record(took.as_secs_f64());
}

/// Sets the busy and free slot gauges from the jobs running here (at each start and each
/// heartbeat, so a finished job frees its slot within a heartbeat interval).
pub(crate) fn slots(rt: &Runtime) {
    let total = rt.args.slots as usize;
    let busy = rt.running_ids().len().min(total);
    metrics::gauge!("warren_worker_slots_busy").set(busy as f64);
    metrics::gauge!("warren_worker_slots_free").set((total - busy) as f64);
}

/// The broker session was lost and is being made again.
pub(crate) fn amqp_reconnect() {
    metrics::counter!("warren_amqp_reconnects_total", "service" => "worker").increment(1);
}
