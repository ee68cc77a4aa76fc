use deadpool_lapin::lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use deadpool_lapin::lapin::types::{AMQPValue, FieldTable};
use deadpool_lapin::lapin::{Channel, ExchangeKind};
use warren_protocol::{PoolName, WorkerId};

use crate::delay::rung_ttl;
use crate::error::TopologyError;
use crate::names::{DELAY_RUNGS, QueueType, Topology};

/// Deliveries of one message a pool or worker queue allows (quorum queues only) before
/// RabbitMQ dead-letters it (`delivery_limit`, and the scheduler fails the job with that
/// reason). A backstop behind the scheduler's own poison limit (WARREN_MAX_TAKEOVERS, 5):
/// only a message whose every consumer dies with it, and that the scheduler cannot see,
/// comes this far. 20 is RabbitMQ 4's own default.
pub const POISON_DELIVERY_LIMIT: i64 = 20;

/// The delivery limit of the queues the scheduler requeues to while Redis is down (intake,
/// delay.expired, dead): an outage must never dead-letter a job, and RabbitMQ 4 would
/// otherwise apply its default of 20.
const UNLIMITED_DELIVERIES: i64 = i32::MAX as i64;

fn long(value: u128) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(value).unwrap_or(i64::MAX))
}

/// How redeliveries are bounded on a quorum queue.
#[derive(Clone, Copy)]
enum Redeliveries {
    Unlimited,
    Poison,
}

fn queue_args(
    topology: &Topology,
    dead_letter: Option<&str>,
    redeliveries: Redeliveries,
) -> FieldTable {
    let mut args = FieldTable::default();
    if let Some(exchange) = dead_letter {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(exchange.into()),
        );
    }
    if let Some(expires) = topology.options().queue_expires {
        args.insert("x-expires".into(), long(expires.as_millis()));
    }
    if topology.options().queue_type == QueueType::Quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(QueueType::Quorum.as_str().into()),
        );
        let limit = match redeliveries {
            Redeliveries::Unlimited => UNLIMITED_DELIVERIES,
            Redeliveries::Poison => POISON_DELIVERY_LIMIT,
        };
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(limit));
        // Dead-lettering stays at most once: `at-least-once` needs `x-overflow:
        // reject-publish`, and with it RabbitMQ 3.10 kept nacking every publish to intake
        // for minutes after its leader node was killed (the cluster test saw it).
    }
    args
}

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> Result<(), TopologyError> {
    channel
        .exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|source| TopologyError::Declare {
            name: name.to_owned(),
            source,
        })
}

/// RabbitMQ's reply code for a declaration that contradicts an existing queue.
const PRECONDITION_FAILED: u16 = 406;

/// The arguments that differ between a classic and a quorum declaration: a conflict on any
/// of them (the broker names the first it finds) means the queue has the other type.
const TYPE_ARGUMENTS: [&str; 5] = [
    "x-queue-type",
    "x-max-priority",
    "x-delivery-limit",
    "x-dead-letter-strategy",
    "x-overflow",
];

async fn queue(
    channel: &Channel,
    topology: &Topology,
    name: &str,
    args: FieldTable,
) -> Result<(), TopologyError> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(drop)
        .map_err(|source| {
            let name = name.to_owned();
            let refused = match source.kind() {
                deadpool_lapin::lapin::ErrorKind::ProtocolError(e) => {
                    let message = e.get_message().as_str();
                    e.get_id() == PRECONDITION_FAILED
                        && TYPE_ARGUMENTS.iter().any(|arg| message.contains(arg))
                }
                _ => false,
            };
            if refused {
                TopologyError::QueueType {
                    name,
                    wanted: topology.options().queue_type.as_str(),
                    source,
                }
            } else {
                TopologyError::Declare { name, source }
            }
        })
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), TopologyError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| TopologyError::Declare {
            name: format!("binding {exchange} -> {queue} ({key})"),
            source,
        })
}

/// Declares everything but the pool queues: intake, work, delay ladder, dead letters, events
/// and control. Idempotent: every service calls it at startup, so none depends on another
/// having started first.
///
/// # Errors
/// Returns [`TopologyError::Declare`] naming the object the broker refused, typically because
/// it already exists with different arguments.
pub async fn declare_core(channel: &Channel, topology: &Topology) -> Result<(), TopologyError> {
    let dead = topology.dead_exchange();
    exchange(channel, &dead, ExchangeKind::Fanout).await?;
    queue(
        channel,
        topology,
        &topology.dead_queue(),
        queue_args(topology, None, Redeliveries::Unlimited),
    )
    .await?;
    bind(channel, &topology.dead_queue(), &dead, "").await?;

    // Intake: a single active consumer makes a second scheduler a hot standby that takes
    // over by itself. On classic queues, priorities order what waits beyond the scheduler's
    // window; quorum queues (before RabbitMQ 4) refuse `x-max-priority`, and the scheduler
    // orders by priority itself once it has read a job, so they go without.
    let intake = topology.intake_exchange();
    exchange(channel, &intake, ExchangeKind::Direct).await?;
    let mut intake_args = queue_args(topology, Some(&dead), Redeliveries::Unlimited);
    if topology.options().queue_type == QueueType::Classic {
        intake_args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(10));
    }
    intake_args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    queue(channel, topology, &topology.intake_queue(), intake_args).await?;
    bind(
        channel,
        &topology.intake_queue(),
        &intake,
        topology.intake_routing_key(),
    )
    .await?;

    exchange(channel, &topology.work_exchange(), ExchangeKind::Direct).await?;
    exchange(channel, &topology.events_exchange(), ExchangeKind::Topic).await?;
    exchange(channel, &topology.control_exchange(), ExchangeKind::Topic).await?;

    let expired = topology.delay_expired_exchange();
    exchange(channel, &expired, ExchangeKind::Fanout).await?;
    let mut expired_args = queue_args(topology, Some(&dead), Redeliveries::Unlimited);
    expired_args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    queue(
        channel,
        topology,
        &topology.delay_expired_queue(),
        expired_args,
    )
    .await?;
    bind(channel, &topology.delay_expired_queue(), &expired, "").await?;
    for rung in 0..DELAY_RUNGS {
        let mut args = queue_args(topology, Some(&expired), Redeliveries::Unlimited);
        args.insert("x-message-ttl".into(), long(rung_ttl(rung).as_millis()));
        // Without an explicit key, dead-lettering keeps the rung's own routing key; that is
        // fine because the expired exchange is a fanout.
        queue(channel, topology, &topology.delay_queue(rung), args).await?;
    }
    Ok(())
}

/// Declares the queue of one pool and binds it to the work exchange. Workers call it before
/// consuming; the scheduler calls it before its first release to a pool it has just learnt.
///
/// # Errors
/// Returns [`TopologyError::Declare`] when the broker refuses.
pub async fn declare_pool(
    channel: &Channel,
    topology: &Topology,
    pool: &PoolName,
) -> Result<(), TopologyError> {
    let name = topology.pool_queue(pool);
    queue(
        channel,
        topology,
        &name,
        queue_args(
            topology,
            Some(&topology.dead_exchange()),
            Redeliveries::Poison,
        ),
    )
    .await?;
    bind(channel, &name, &topology.work_exchange(), &pool.to_string()).await
}

/// How long a worker's queue outlives its last consumer. A durable queue, not an exclusive
/// one, so that it can be a quorum queue (which cannot be exclusive) and its jobs survive the
/// loss of the node it lives on while the worker reconnects to another. Its jobs do not
/// depend on it: the
/// scheduler re-dispatches the jobs of a worker that stopped sending heartbeats, so this
/// only bounds how long a dead worker's queue lingers.
pub const WORKER_QUEUE_EXPIRES: std::time::Duration = std::time::Duration::from_secs(600);

/// Declares one worker's queue and binds it to the work exchange. The worker calls it before
/// consuming; the scheduler before its first dispatch to a worker it has just learnt.
///
/// # Errors
/// Returns [`TopologyError::Declare`] when the broker refuses.
pub async fn declare_worker_queue(
    channel: &Channel,
    topology: &Topology,
    worker: &WorkerId,
) -> Result<(), TopologyError> {
    let name = topology.worker_queue(worker);
    let mut args = queue_args(
        topology,
        Some(&topology.dead_exchange()),
        Redeliveries::Poison,
    );
    let expires = topology
        .options()
        .queue_expires
        .map_or(WORKER_QUEUE_EXPIRES, |e| e.min(WORKER_QUEUE_EXPIRES));
    args.insert("x-expires".into(), long(expires.as_millis()));
    queue(channel, topology, &name, args).await?;
    bind(
        channel,
        &name,
        &topology.work_exchange(),
        &topology.worker_routing_key(worker),
    )
    .await
}

/// Deletes every queue and exchange of a namespace (tests, `warren topology --delete`).
///
/// # Errors
/// Returns the first refusal; deleting what does not exist is not an error.
pub async fn teardown(
    channel: &Channel,
    topology: &Topology,
    pools: &[PoolName],
) -> Result<(), TopologyError> {
    let mut queues = vec![
        topology.intake_queue(),
        topology.dead_queue(),
        topology.delay_expired_queue(),
    ];
    queues.extend((0..DELAY_RUNGS).map(|k| topology.delay_queue(k)));
    queues.extend(pools.iter().map(|p| topology.pool_queue(p)));
    for name in queues {
        channel
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(|source| TopologyError::Declare { name, source })?;
    }
    for name in [
        topology.intake_exchange(),
        topology.work_exchange(),
        topology.dead_exchange(),
        topology.delay_expired_exchange(),
        topology.events_exchange(),
        topology.control_exchange(),
    ] {
        channel
            .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .map_err(|source| TopologyError::Declare { name, source })?;
    }
    Ok(())
}
