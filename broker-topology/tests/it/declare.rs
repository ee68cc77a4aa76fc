//! Declaring the topology: idempotent, refused loudly on a conflict, torn down completely.

use std::time::Duration;

use warren_kit::testkit::TestNamespace;
use warren_topology::lapin::BasicProperties;
use warren_topology::lapin::options::BasicPublishOptions;
use warren_topology::{
    DELAY_RUNGS, Topology, TopologyError, TopologyOptions, declare_core, declare_pool,
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
