//! Warren's RabbitMQ side: every exchange, queue and binding name and argument, their
//! idempotent declaration, the connection pool, the confirmed publisher and the delay ladder.
//!
//! Nothing else in the workspace spells an AMQP name or sets a queue argument. This crate does
//! not know about Redis or job states; it moves envelopes between the submitter (intake), the
//! scheduler (pool queues, delay ladder) and the workers (pool queues, control), and carries
//! heartbeats on the events exchange.

mod confirms;
mod connect;
mod declare;
pub mod delay;
mod error;
mod headers;
mod names;
mod publisher;
pub mod signing;
mod subscribe;

pub use connect::{
    AmqpManager, AmqpPool, connect_pool, connect_pool_tls, current_node, node_label, node_urls,
};
pub use deadpool_lapin::lapin;
pub use declare::{
    POISON_DELIVERY_LIMIT, WORKER_QUEUE_EXPIRES, declare_core, declare_pool, declare_worker_queue,
    teardown,
};
pub use error::TopologyError;
pub use headers::{DUE_HEADER, REASON_HEADER, header_str, header_u64, job_properties};
pub use names::{CANCEL_ROUTING_KEY, DELAY_RUNGS, QueueType, Topology, TopologyOptions};
pub use publisher::{Pending, Publisher};
pub use signing::{Destination, SigningKeys};
pub use subscribe::{Subscription, subscribe};
