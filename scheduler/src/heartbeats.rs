//! Worker heartbeats, as the scheduler hears them: a transient subscription to `worker.*` on
//! the events exchange.

use anyhow::Context;
use futures_util::StreamExt;
use tracing::debug;
use warren_protocol::Heartbeat;
use warren_topology::{AmqpPool, Topology};

pub(crate) type HeartbeatStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = anyhow::Result<(Heartbeat, bool)>> + Send>>;

/// Binds an exclusive queue to `worker.*` on the events exchange.
pub(crate) async fn stream(
    pool: &AmqpPool,
    topology: &Topology,
) -> anyhow::Result<HeartbeatStream> {
    let warren_topology::Subscription { channel, consumer } = warren_topology::subscribe(
        pool,
        &topology.events_exchange(),
        &["worker.*".to_owned()],
        "scheduler-heartbeats",
    )
    .await
    .context("subscribing to heartbeats")?;
    // Keep the channel alive as long as the stream.
    let stream = consumer.filter_map(move |delivery| {
        let _channel = &channel;
        let item = match delivery {
            Err(error) => Some(Err(anyhow::Error::new(error))),
            Ok(delivery) => match serde_json::from_slice::<Heartbeat>(&delivery.data) {
                Ok(heartbeat) => {
                    let offline = delivery.routing_key.as_str() == "worker.offline";
                    Some(Ok((heartbeat, offline)))
                }
                Err(error) => {
                    debug!(%error, "ignoring a malformed heartbeat");
                    None
                }
            },
        };
        std::future::ready(item)
    });
    Ok(Box::pin(stream))
}
