//! Control messages for this worker: `job.cancel` stops a job that runs here.

use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warren_protocol::JobId;
use warren_topology::lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use warren_topology::lapin::types::FieldTable;
use warren_topology::{AmqpPool, Topology};

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
    let channel = Topology::channel(pool).await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let exchange = rt.topology.control_exchange();
    for key in ["job.cancel".to_owned(), format!("worker.{}.#", rt.id)] {
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            format!("{}-control", rt.id).into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = consumer.next() => {
                let Some(delivery) = next else { return Ok(()) };
                let delivery = delivery?;
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
