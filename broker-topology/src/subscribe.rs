use deadpool_lapin::lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use deadpool_lapin::lapin::types::FieldTable;
use deadpool_lapin::lapin::{Channel, Consumer};

use crate::connect::{AmqpPool, open_channel};
use crate::error::TopologyError;

/// A private, transient subscription to an exchange: a server-named, exclusive, auto-deleted
/// queue bound with `keys`, consumed without acks. For advisory traffic (heartbeats, control
/// commands) where a message missed while disconnected is superseded by the next one.
#[derive(Debug)]
pub struct Subscription {
    /// Keep the channel: the consumer lives only as long as it.
    pub channel: Channel,
    /// The deliveries.
    pub consumer: Consumer,
}

/// Subscribes to `exchange` with routing `keys`.
///
/// # Errors
/// Returns [`TopologyError::Declare`] or [`TopologyError::Channel`] when the broker refuses.
pub async fn subscribe(
    pool: &AmqpPool,
    exchange: &str,
    keys: &[String],
    consumer_tag: &str,
) -> Result<Subscription, TopologyError> {
    let channel = open_channel(pool).await?;
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
        .await
        .map_err(|source| TopologyError::Declare {
            name: format!("subscription queue on {exchange}"),
            source,
        })?;
    for key in keys {
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| TopologyError::Declare {
                name: format!("binding {exchange} -> {} ({key})", queue.name()),
                source,
            })?;
    }
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            consumer_tag.into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|source| TopologyError::Channel {
            what: "consuming a subscription",
            source,
        })?;
    Ok(Subscription { channel, consumer })
}
