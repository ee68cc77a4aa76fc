//! The Queues view: how many messages wait in intake, in each live pool's queue, in the delay
//! ladder and in the dead-letter queue, and who consumes them, from passive declares (which
//! need no management plugin). It degrades gracefully: a queue that does not exist (yet) is
//! shown as missing, and when RabbitMQ cannot be reached the endpoint says so and the other
//! views go on working, since they need only Redis.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use warren_protocol::PoolName;
use warren_topology::lapin::Channel;
use warren_topology::lapin::options::QueueDeclareOptions;
use warren_topology::lapin::types::{FieldTable, ShortString};
use warren_topology::{AmqpPool, DELAY_RUNGS, Topology};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use warren_kit::auth::Role;

/// How long the whole round of declares may take.
const QUEUES_TIMEOUT: Duration = Duration::from_secs(5);

/// One row of the Queues view.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QueueView {
    /// The queue's name (for the delay ladder: its first rung's, `…delay.*`).
    name: String,
    /// `intake`, `pool`, `delay` or `dead`.
    role: &'static str,
    /// Ready messages (not those delivered and unacked); absent when the queue is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<u32>,
    /// Consumers attached; absent when the queue is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    consumers: Option<u32>,
}

/// `GET /api/queues`.
pub(crate) async fn get_queues(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<QueueView>>, ApiError> {
    // Depths over every tenant's jobs.
    caller.require(Role::Admin)?;
    let pools: BTreeSet<PoolName> = state
        .store()
        .live_workers()
        .await?
        .into_iter()
        .map(|h| h.pool)
        .collect();
    let read = inspect(state.amqp(), state.topology(), &pools);
    match tokio::time::timeout(QUEUES_TIMEOUT, read).await {
        Ok(Ok(views)) => Ok(Json(views)),
        Ok(Err(error)) => Err(ApiError::unavailable("cannot inspect queues", &error)),
        Err(_) => Err(ApiError::timeout(QUEUES_TIMEOUT)),
    }
}

async fn inspect(
    amqp: &AmqpPool,
    topology: &Topology,
    pools: &BTreeSet<PoolName>,
) -> Result<Vec<QueueView>, warren_topology::TopologyError> {
    let mut probe = Probe {
        amqp,
        channel: None,
    };
    let mut views = Vec::new();
    views.push(probe.view(topology.intake_queue(), "intake").await?);
    for pool in pools {
        views.push(probe.view(topology.pool_queue(pool), "pool").await?);
    }
    // The ladder as one row: how many retries and delayed jobs wait, whatever the rung.
    let mut delayed = QueueView {
        name: topology.delay_queue(0).replace(".delay.0", ".delay.*"),
        role: "delay",
        messages: None,
        consumers: None,
    };
    for rung in 0..DELAY_RUNGS {
        let (messages, consumers) = probe.count(topology.delay_queue(rung)).await?;
        if let Some(messages) = messages {
            delayed.messages = Some(delayed.messages.unwrap_or(0) + messages);
            delayed.consumers = Some(delayed.consumers.unwrap_or(0) + consumers.unwrap_or(0));
        }
    }
    views.push(delayed);
    views.push(probe.view(topology.dead_queue(), "dead").await?);
    probe.close().await;
    Ok(views)
}

/// Passive declares on one channel. RabbitMQ closes the channel when the queue is missing,
/// so a new one is opened after each miss.
struct Probe<'a> {
    amqp: &'a AmqpPool,
    channel: Option<Channel>,
}

impl Probe<'_> {
    async fn view(
        &mut self,
        name: String,
        role: &'static str,
    ) -> Result<QueueView, warren_topology::TopologyError> {
        let (messages, consumers) = self.count(name.clone()).await?;
        Ok(QueueView {
            name,
            role,
            messages,
            consumers,
        })
    }

    async fn count(
        &mut self,
        name: String,
    ) -> Result<(Option<u32>, Option<u32>), warren_topology::TopologyError> {
        let channel = match self.channel.take() {
            Some(channel) if channel.status().connected() => channel,
            _ => Topology::channel(self.amqp).await?,
        };
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(ShortString::from(name), options, FieldTable::default())
            .await;
        match declared {
            Ok(queue) => {
                self.channel = Some(channel);
                Ok((Some(queue.message_count()), Some(queue.consumer_count())))
            }
            // Missing (404): the broker closed this channel; the next count opens another.
            Err(_) => Ok((None, None)),
        }
    }

    async fn close(self) {
        if let Some(channel) = self.channel {
            let _ = channel.close(200, ShortString::from("done")).await;
        }
    }
}
