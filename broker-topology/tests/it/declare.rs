//! Declaring the topology: idempotent, refused loudly on a conflict, torn down completely.

use std::time::Duration;

use warren_kit::testkit::TestNamespace;
use warren_topology::lapin::BasicProperties;
use warren_topology::lapin::options::BasicPublishOptions;
use warren_topology::{
    DELAY_RUNGS, QueueType, Topology, TopologyError, TopologyOptions, declare_core, declare_pool,
};

use crate::{Broker, exchange_exists, pool_name, queue_exists, within};

#[tokio::test]
async fn declaring_twice_is_harmless() {
    let ns = TestNamespace::new("declare_twice");
    let broker = Broker::start(&ns).await;
    let (topology, channel) = (&broker.topology, &broker.channel);
    let gpu = pool_name("gpu,cuda12");

    // A second service starting up declares the same things again.
    within("declare_core again", declare_core(channel, topology))
        .await
        .unwrap();
    for _ in 0..2 {
        within("declare_pool", declare_pool(channel, topology, &gpu))
            .await
            .unwrap();
    }

    let mut queues = vec![
        topology.intake_queue(),
        topology.dead_queue(),
        topology.delay_expired_queue(),
        topology.pool_queue(&gpu),
    ];
    queues.extend((0..DELAY_RUNGS).map(|k| topology.delay_queue(k)));
    for queue in &queues {
        assert!(queue_exists(&broker.pool, queue).await, "{queue}");
    }
    for exchange in [
        topology.intake_exchange(),
        topology.work_exchange(),
        topology.dead_exchange(),
        topology.delay_expired_exchange(),
        topology.events_exchange(),
        topology.control_exchange(),
    ] {
        assert!(exchange_exists(&broker.pool, &exchange).await, "{exchange}");
    }
    assert_eq!(
        topology.pool_queue(&gpu),
        format!("{}.pool.cuda12+gpu", ns.ns())
    );

    // The pool is bound by its canonical name, whatever order the tags came in.
    let confirm = within(
        "publish",
        broker
            .publisher
            .send_pool(&pool_name("gpu+cuda12"), &crate::envelope(5)),
    )
    .await
    .unwrap();
    within("confirm", confirm.confirmed()).await.unwrap();
    assert!(broker.get(&topology.pool_queue(&gpu)).await.is_some());

    broker.teardown(&[gpu]).await;
    ns.cleanup().await;
}

#[tokio::test]
async fn conflicting_arguments_are_refused_not_ignored() {
    let ns = TestNamespace::new("declare_conflict");
    let broker = Broker::start(&ns).await;
    // The same names with other queue arguments (here: no x-expires).
    let other = Topology::new(ns.ns().clone(), TopologyOptions::default());
    let channel = within("channel", Topology::channel(&broker.pool))
        .await
        .unwrap();
    let err = within("declare_core", declare_core(&channel, &other))
        .await
        .expect_err("redeclaring with other arguments fails");
    assert!(
        matches!(&err, TopologyError::Declare { name, .. } if name == &other.dead_queue()),
        "{err:?}"
    );
    assert!(!err.is_transient(), "a refusal repeats: {err:?}");
    broker.teardown(&[]).await;
    ns.cleanup().await;
}

#[tokio::test]
async fn teardown_removes_everything() {
    let ns = TestNamespace::new("teardown_removes_all");
    let broker = Broker::start(&ns).await;
    let cpu = pool_name("cpu");
    within(
        "declare_pool",
        declare_pool(&broker.channel, &broker.topology, &cpu),
    )
    .await
    .unwrap();
    let topology = broker.topology.clone();
    let pool = broker.pool.clone();
    let mut queues = vec![
        topology.intake_queue(),
        topology.dead_queue(),
        topology.delay_expired_queue(),
        topology.pool_queue(&cpu),
    ];
    queues.extend((0..DELAY_RUNGS).map(|k| topology.delay_queue(k)));
    let exchanges = [
        topology.intake_exchange(),
        topology.work_exchange(),
        topology.dead_exchange(),
        topology.delay_expired_exchange(),
        topology.events_exchange(),
        topology.control_exchange(),
    ];
    for queue in &queues {
        assert!(queue_exists(&pool, queue).await, "{queue} before teardown");
    }

    let channel = broker.channel.clone();
    broker.teardown(std::slice::from_ref(&cpu)).await;
    for queue in &queues {
        assert!(!queue_exists(&pool, queue).await, "{queue} after teardown");
    }
    for exchange in &exchanges {
        assert!(
            !exchange_exists(&pool, exchange).await,
            "{exchange} after teardown"
        );
    }
    // Tearing down what is already gone is not an error.
    within(
        "teardown again",
        warren_topology::teardown(&channel, &topology, &[cpu]),
    )
    .await
    .unwrap();
    ns.cleanup().await;
}

#[tokio::test]
async fn rungs_hold_messages_and_topics_route() {
    let ns = TestNamespace::new("rungs_hold_topics_route");
    let broker = Broker::start(&ns).await;
    let topology = &broker.topology;
    // A rung holds what it is given for its TTL: rung 5 (32 s) keeps the message for now.
    let confirm = within(
        "publish",
        broker.publisher.send_delay(5, &crate::envelope(1)),
    )
    .await
    .unwrap();
    within("confirm", confirm.confirmed()).await.unwrap();
    assert_eq!(
        crate::depth(&broker.pool, &topology.delay_queue(5)).await,
        1
    );
    assert_eq!(
        crate::depth(&broker.pool, &topology.delay_expired_queue()).await,
        0
    );

    // The events and control exchanges are topics: a binding with a pattern routes.
    let probe = format!("{}.probe", ns.ns());
    let channel = &broker.channel;
    within(
        "declare probe",
        channel.queue_declare(
            probe.as_str().into(),
            warren_topology::lapin::options::QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            Default::default(),
        ),
    )
    .await
    .unwrap();
    within(
        "bind probe",
        channel.queue_bind(
            probe.as_str().into(),
            topology.control_exchange().as_str().into(),
            "worker.*.cancel".into(),
            Default::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    within(
        "publish control",
        channel.basic_publish(
            topology.control_exchange().as_str().into(),
            "worker.w1.cancel".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        ),
    )
    .await
    .unwrap();
    let got =
        warren_kit::testkit::wait_until("the control message", Duration::from_secs(5), || async {
            broker.get(&probe).await
        })
        .await;
    assert_eq!(got.delivery.routing_key.as_str(), "worker.w1.cancel");
    broker.teardown(&[]).await;
    ns.cleanup().await;
}

/// `WARREN_QUEUE_TYPE=quorum`: every durable queue is a quorum queue (a classic declaration
/// of the same names is refused because of its type), a job published to intake is
/// confirmed and can be read back, and a service still on classic queues gets an error
/// that says what to do.
#[tokio::test]
async fn quorum_queues_are_declared_and_a_type_change_is_explained() {
    let ns = TestNamespace::new("declare_quorum");
    let quorum = Topology::new(
        ns.ns().clone(),
        TopologyOptions {
            queue_expires: Some(Duration::from_secs(60)),
            queue_type: QueueType::Quorum,
        },
    );
    let broker = Broker::start_with(quorum).await;
    let (topology, channel) = (&broker.topology, &broker.channel);
    let cpu = pool_name("cpu");
    within("declare_core again", declare_core(channel, topology))
        .await
        .unwrap();
    within("declare_pool", declare_pool(channel, topology, &cpu))
        .await
        .unwrap();
    let worker = warren_protocol::WorkerId::generate("quorum-it");
    within(
        "declare_worker_queue",
        warren_topology::declare_worker_queue(channel, topology, &worker),
    )
    .await
    .unwrap();

    // Confirmed once a majority of the queue's members has it (one member here). Read back
    // from the pool queue: quorum queues refuse basic.get under a single active consumer.
    let confirm = within(
        "publish intake",
        broker.publisher.send_intake(&crate::envelope(5)),
    )
    .await
    .unwrap();
    within("confirm intake", confirm.confirmed()).await.unwrap();
    let confirm = within(
        "publish pool",
        broker.publisher.send_pool(&cpu, &crate::envelope(5)),
    )
    .await
    .unwrap();
    within("confirm pool", confirm.confirmed()).await.unwrap();
    assert!(broker.get(&topology.pool_queue(&cpu)).await.is_some());

    // The same names as classic queues: each queue is refused for its type.
    let classic = Topology::new(
        ns.ns().clone(),
        TopologyOptions {
            queue_expires: Some(Duration::from_secs(60)),
            queue_type: QueueType::Classic,
        },
    );
    let mut queues = vec![
        (topology.dead_queue(), None),
        (topology.pool_queue(&cpu), Some(cpu.clone())),
    ];
    queues.push((topology.worker_queue(&worker), None));
    for (queue, pool) in queues {
        let channel = within("channel", Topology::channel(&broker.pool))
            .await
            .unwrap();
        let result = if let Some(pool) = pool {
            declare_pool(&channel, &classic, &pool).await
        } else if queue == topology.dead_queue() {
            declare_core(&channel, &classic).await
        } else {
            warren_topology::declare_worker_queue(&channel, &classic, &worker).await
        };
        let err = result.expect_err("a classic declaration of a quorum queue fails");
        assert!(
            matches!(&err, TopologyError::QueueType { name, wanted: "classic", .. } if name == &queue),
            "{err:?}"
        );
        let chain = format!("{err}: {:?}", std::error::Error::source(&err));
        assert!(
            chain.contains("quorum"),
            "the broker names the type: {chain}"
        );
        assert!(chain.contains("WARREN_QUEUE_TYPE"), "{chain}");
        assert!(chain.contains("docs/scaling.md"), "{chain}");
        assert!(!err.is_transient());
    }
    let channel = within("channel", Topology::channel(&broker.pool))
        .await
        .unwrap();
    within(
        "teardown worker queue",
        channel.queue_delete(
            topology.worker_queue(&worker).as_str().into(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    broker.teardown(&[cpu]).await;
    ns.cleanup().await;
}
