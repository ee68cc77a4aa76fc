#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests of `warren-topology` against the real RabbitMQ on loopback
//! (`WARREN_TEST_AMQP_URL`). Every test declares its own namespaced topology, with
//! `x-expires` on its queues so an aborted test leaves nothing behind, and tears it down.

mod declare;
mod delay;
mod publish;

use std::future::Future;
use std::time::Duration;

use warren_kit::testkit::{TestNamespace, amqp_url};
use warren_protocol::{JobEnvelope, JobId, JobSpec, PoolName, now_ms};
use warren_topology::lapin::message::BasicGetMessage;
use warren_topology::lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use warren_topology::lapin::types::FieldTable;
use warren_topology::lapin::{Channel, ExchangeKind};
use warren_topology::{
    AmqpPool, Publisher, Topology, TopologyOptions, connect_pool, declare_core, teardown,
};

/// Fails the test instead of hanging when RabbitMQ does not answer.
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// The test topology of `ns`: queues expire a minute after their last use.
pub(crate) fn topology(ns: &TestNamespace) -> Topology {
    Topology::new(
        ns.ns().clone(),
        TopologyOptions {
            queue_expires: Some(Duration::from_secs(60)),
            ..TopologyOptions::default()
        },
    )
}

/// One test's connection to RabbitMQ: a pool, a plain channel (declare, get, tear down) and a
/// confirmed publisher on a channel of its own.
pub(crate) struct Broker {
    pub(crate) pool: AmqpPool,
    pub(crate) topology: Topology,
    pub(crate) channel: Channel,
    pub(crate) publisher: Publisher,
}

impl Broker {
    /// Connects and declares the core topology of `ns`.
    pub(crate) async fn start(ns: &TestNamespace) -> Self {
        Self::start_with(topology(ns)).await
    }

    /// Connects and declares `topology`'s core.
    pub(crate) async fn start_with(topology: Topology) -> Self {
        let pool = within(
            "connect",
            connect_pool(&amqp_url(), "warren-topology-it", 2),
        )
        .await
        .expect("RabbitMQ reachable at WARREN_TEST_AMQP_URL");
        let channel = within("channel", Topology::channel(&pool)).await.unwrap();
        within("declare_core", declare_core(&channel, &topology))
            .await
            .unwrap();
        let publisher = within("publisher", Publisher::open(&pool, &topology))
            .await
            .unwrap();
        Self {
            pool,
            topology,
            channel,
            publisher,
        }
    }

    /// Takes one message off `queue` and acks it.
    pub(crate) async fn get(&self, queue: &str) -> Option<BasicGetMessage> {
        let message = within(
            "basic_get",
            self.channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: false }),
        )
        .await
        .unwrap()?;
        within("ack", message.ack(BasicAckOptions::default()))
            .await
            .unwrap();
        Some(message)
    }

    /// Deletes the namespace's queues (the core ones and `pools`) and exchanges.
    pub(crate) async fn teardown(self, pools: &[PoolName]) {
        within("teardown", teardown(&self.channel, &self.topology, pools))
            .await
            .unwrap();
    }
}

/// Tells whether a queue exists, by a passive declare on a throwaway channel (a 404 closes it).
pub(crate) async fn queue_exists(pool: &AmqpPool, name: &str) -> bool {
    let channel = within("channel", Topology::channel(pool)).await.unwrap();
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    within(
        "passive queue declare",
        channel.queue_declare(name.into(), options, FieldTable::default()),
    )
    .await
    .is_ok()
}

/// Tells whether an exchange exists (passive declare, like [`queue_exists`]).
pub(crate) async fn exchange_exists(pool: &AmqpPool, name: &str) -> bool {
    let channel = within("channel", Topology::channel(pool)).await.unwrap();
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    within(
        "passive exchange declare",
        channel.exchange_declare(
            name.into(),
            ExchangeKind::Direct,
            options,
            FieldTable::default(),
        ),
    )
    .await
    .is_ok()
}

/// How many messages wait in `queue`.
pub(crate) async fn depth(pool: &AmqpPool, name: &str) -> u32 {
    let channel = within("channel", Topology::channel(pool)).await.unwrap();
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    within(
        "passive queue declare",
        channel.queue_declare(name.into(), options, FieldTable::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("queue {name} exists: {e}"))
    .message_count()
}

/// A first-attempt envelope of a fresh job with `priority`.
pub(crate) fn envelope(priority: u8) -> JobEnvelope {
    let mut spec = JobSpec::new("echo", serde_json::json!({ "text": "hi" }));
    spec.priority = priority;
    spec.tenant = "team-a".into();
    spec.queue = "renders".into();
    JobEnvelope::first_attempt(JobId::new(), spec, now_ms(), Some("corr-1".into()))
}

/// A pool name.
pub(crate) fn pool_name(tags: &str) -> PoolName {
    PoolName::parse_list(tags).unwrap()
}
