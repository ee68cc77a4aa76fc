//! Heartbeats: how the scheduler and the dashboard learn this worker exists and how busy it is.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use warren_protocol::{Heartbeat, now_ms};

use crate::runtime::Runtime;

fn build(rt: &Runtime, draining: bool) -> Heartbeat {
    crate::metrics::slots(rt);
    let running = rt.running_ids();
    Heartbeat {
        worker_id: rt.id.clone(),
        pool: rt.args.tags.clone(),
        hostname: rt.hostname.clone(),
        slots: rt.args.slots,
        busy: u32::try_from(running.len()).unwrap_or(u32::MAX),
        running,
        resources: rt.args.resources(),
        allowed_commands: rt.args.allow_commands.clone(),
        tasks: rt.tasks.keys().cloned().collect(),
        load1: load1(),
        interval_ms: rt.args.heartbeat_interval.as_millis() as u64,
        started_at_ms: rt.started_at_ms,
        sent_at_ms: now_ms(),
        draining,
    }
}

async fn send(rt: &Runtime, routing_key: &str, heartbeat: &Heartbeat) {
    let body = serde_json::to_vec(heartbeat).unwrap_or_default();
    let exchange = rt.topology.events_exchange();
    if let Err(error) = rt.publisher().emit(&exchange, routing_key, &body).await {
        debug!(%error, "could not publish heartbeat");
    }
    if routing_key != "worker.offline" {
        if let Err(error) = rt.store.record_heartbeat(heartbeat).await {
            warn!(%error, "could not record heartbeat");
        }
        // Again with every beat, so a Redis that lost its data (restart without AOF) learns
        // this worker's tasks again without a worker restart.
        if let Err(error) = rt.store.register_tasks(&heartbeat.tasks).await {
            warn!(%error, "could not register tasks");
        }
    }
}

/// Sends `worker.online`, then a heartbeat every interval, then `worker.offline` when
/// `stop` is cancelled (after the drain, so the busy count stays true while draining).
pub(crate) async fn run(rt: Arc<Runtime>, stop: CancellationToken) {
    send(&rt, "worker.online", &build(&rt, false)).await;
    let mut tick = tokio::time::interval(rt.args.heartbeat_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => send(&rt, "worker.heartbeat", &build(&rt, false)).await,
        }
    }
    send(&rt, "worker.offline", &build(&rt, true)).await;
    if let Err(error) = rt.store.remove_worker(&rt.id).await {
        warn!(%error, "could not deregister");
    }
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
