//! Control messages for this worker: `job.cancel` stops a job that runs here.

use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warren_protocol::JobId;
use warren_topology::signing::check_message;
use warren_topology::{AmqpPool, Destination};

use crate::runtime::Runtime;

#[derive(Deserialize)]
struct CancelCommand {
    job_id: JobId,
}

/// Consumes an exclusive, auto-deleted queue bound to the control exchange until `stop`.
pub(crate) async fn run(rt: Arc<Runtime>, pool: AmqpPool, stop: CancellationToken) {
    if let Err(error) = consume(&rt, &pool, &stop).await {
        warn!(error = format!("{error:#}"), "control consumer stopped");
    }
}

async fn consume(rt: &Runtime, pool: &AmqpPool, stop: &CancellationToken) -> anyhow::Result<()> {
    let keys = [
        warren_topology::CANCEL_ROUTING_KEY.to_owned(),
        format!("worker.{}.#", rt.id),
    ];
    let mut subscription = warren_topology::subscribe(
        pool,
        &rt.topology.control_exchange(),
        &keys,
        &format!("{}-control", rt.id),
    )
    .await?;
    let consumer = &mut subscription.consumer;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = consumer.next() => {
                let Some(delivery) = next else { return Ok(()) };
                let delivery = delivery?;
                if let Err(reason) = check_message(
                    rt.topology.signing(),
                    &delivery.properties,
                    &delivery.data,
                    &[Destination::Cancel],
                ) {
                    warn!(reason, "ignoring a control message");
                    continue;
                }
                match serde_json::from_slice::<CancelCommand>(&delivery.data) {
                    Ok(cmd) => {
                        if rt.cancel_job(cmd.job_id) {
                            info!(job_id = %cmd.job_id, "cancelling running job");
                        }
                    }
                    Err(error) => warn!(%error, "ignoring malformed control message"),
                }
            }
        }
    }
}
