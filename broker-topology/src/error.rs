use deadpool_lapin::lapin;

/// What failed while talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// No connection could be had from the pool.
    #[error("connecting to rabbitmq: {message}")]
    Connect {
        /// What the pool said.
        message: String,
    },
    /// A channel could not be opened.
    #[error("opening a channel")]
    OpenChannel(#[source] lapin::Error),
    /// Declaring an exchange, queue or binding failed (often: it exists with other arguments).
    #[error("declaring {name}")]
    Declare {
        /// Name of the exchange or queue.
        name: String,
        /// The broker's answer.
        #[source]
        source: lapin::Error,
    },
    /// A queue exists with another type than `WARREN_QUEUE_TYPE` asks for: RabbitMQ cannot
    /// change a queue's type in place.
    #[error(
        "queue {name} already exists with another type or arguments than WARREN_QUEUE_TYPE={wanted} \
         declares; a queue's type cannot be changed in place: keep the old WARREN_QUEUE_TYPE, or \
         drain and delete the namespace's queues (or use a new WARREN_NAMESPACE) before \
         switching (docs/scaling.md, \"Moving a classic deployment to quorum queues\")"
    )]
    QueueType {
        /// The queue.
        name: String,
        /// `classic` or `quorum`.
        wanted: &'static str,
        /// The broker's answer.
        #[source]
        source: lapin::Error,
    },
    /// A publish could not be sent.
    #[error("publishing to {exchange}/{routing_key}")]
    Publish {
        /// Exchange.
        exchange: String,
        /// Routing key.
        routing_key: String,
        /// The broker's answer.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused to take responsibility for a message (confirm nack).
    #[error("rabbitmq nacked the publish to {routing_key}")]
    Nacked {
        /// Routing key.
        routing_key: String,
    },
    /// The message reached no queue (`mandatory` return): a topology bug, not a success.
    #[error("message to {routing_key} was unroutable: {reply}")]
    Unroutable {
        /// Routing key.
        routing_key: String,
        /// The broker's reply text.
        reply: String,
    },
    /// Any other channel operation (qos, consume, ack) failed.
    #[error("{what}")]
    Channel {
        /// What was being done.
        what: &'static str,
        /// The broker's answer.
        #[source]
        source: lapin::Error,
    },
}

impl TopologyError {
    /// Tells whether trying again later may succeed (the broker or the network is down),
    /// as opposed to a refusal that will repeat (bad arguments, unroutable message).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Self::Unroutable { .. } | Self::Declare { .. } | Self::QueueType { .. }
        )
    }
}
