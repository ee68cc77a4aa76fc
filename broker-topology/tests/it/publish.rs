//! The confirmed publisher: "sent" means a queue has it.

use warren_kit::testkit::TestNamespace;
use warren_protocol::JobEnvelope;
use warren_topology::lapin::BasicProperties;
use warren_topology::lapin::options::BasicNackOptions;
use warren_topology::lapin::types::{AMQPValue, FieldTable};
use warren_topology::{
    DUE_HEADER, REASON_HEADER, TopologyError, declare_pool, header_str, header_u64,
};

use crate::{Broker, depth, envelope, pool_name, within};

#[tokio::test]
async fn an_intake_message_carries_id_priority_and_headers() {
    let ns = TestNamespace::new("intake_message_properties");
    let broker = Broker::start(&ns).await;
    let mut sent = envelope(7);
    sent.not_before_ms = Some(1_700_000_000_000);
    let confirm = within("send_intake", broker.publisher.send_intake(&sent))
        .await
        .unwrap();
    within("confirm", confirm.confirmed()).await.unwrap();

    let got = broker
        .get(&broker.topology.intake_queue())
        .await
        .expect("the message waits in intake");
    let props = &got.delivery.properties;
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some(sent.job_id.to_string().as_str())
    );
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert_eq!(*props.priority(), Some(7));
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        props.correlation_id().as_ref().map(|s| s.as_str()),
        Some("corr-1")
    );
    assert_eq!(header_str(props, "x-warren-tenant"), Some("team-a"));
    assert_eq!(header_str(props, "x-warren-queue"), Some("renders"));
    assert_eq!(header_u64(props, "x-warren-attempt"), Some(1));
    assert_eq!(header_u64(props, DUE_HEADER), Some(1_700_000_000_000));
    assert_eq!(header_str(props, "x-warren-missing"), None);
    assert_eq!(
        header_u64(props, "x-warren-tenant"),
        None,
        "a string is no number"
    );
    assert_eq!(
        JobEnvelope::from_bytes(&got.delivery.data).unwrap(),
        sent,
        "the body is the envelope"
    );
    assert!(broker.get(&broker.topology.intake_queue()).await.is_none());
    broker.teardown(&[]).await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_publish_nobody_can_receive_is_an_error() {
    let ns = TestNamespace::new("unroutable_is_error");
    let broker = Broker::start(&ns).await;
    let nowhere = pool_name("gpu");

    let confirm = within(
        "send_pool",
        broker.publisher.send_pool(&nowhere, &envelope(5)),
    )
    .await
    .unwrap();
    let err = within("confirm", confirm.confirmed())
        .await
        .expect_err("a returned message is not sent");
    assert!(
        matches!(&err, TopologyError::Unroutable { routing_key, .. } if routing_key == "gpu"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(broker.publisher.is_connected(), "the channel survives");

    // Once a worker has declared the pool, the same publish goes through.
    within(
        "declare_pool",
        declare_pool(&broker.channel, &broker.topology, &nowhere),
    )
    .await
    .unwrap();
    let sent = envelope(5);
    let confirm = within("send_pool", broker.publisher.send_pool(&nowhere, &sent))
        .await
        .unwrap();
    within("confirm", confirm.confirmed()).await.unwrap();
    let got = broker
        .get(&broker.topology.pool_queue(&nowhere))
        .await
        .expect("the message waits in the pool queue");
    assert_eq!(JobEnvelope::from_bytes(&got.delivery.data).unwrap(), sent);

    broker.teardown(&[nowhere]).await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_each_get_their_own_verdict() {
    let ns = TestNamespace::new("concurrent_publish_verdicts");
    let broker = Broker::start(&ns).await;
    let cpu = pool_name("cpu");
    let nowhere = pool_name("gpu");
    within(
        "declare_pool",
        declare_pool(&broker.channel, &broker.topology, &cpu),
    )
    .await
    .unwrap();

    // Many publishes in flight on one channel, so the broker confirms several at once.
    let rounds = 10;
    let per_round = 40;
    let mut delivered = 0;
    for _ in 0..rounds {
        let mut tasks = Vec::new();
        for i in 0..per_round {
            let publisher = broker.publisher.clone();
            let routable = i % 4 != 0;
            let pool = if routable {
                cpu.clone()
            } else {
                nowhere.clone()
            };
            tasks.push(tokio::spawn(async move {
                let env = envelope(5);
                let verdict = match publisher.send_pool(&pool, &env).await {
                    Ok(pending) => pending.confirmed().await,
                    Err(e) => Err(e),
                };
                (routable, env.job_id, verdict)
            }));
        }
        for task in tasks {
            let (routable, id, verdict) = within("publish task", task).await.unwrap();
            match (routable, verdict) {
                (true, Ok(())) => delivered += 1,
                (false, Err(TopologyError::Unroutable { .. })) => {}
                (routable, verdict) => {
                    panic!("job {id} (routable: {routable}) got the wrong verdict: {verdict:?}")
                }
            }
        }
    }
    assert_eq!(delivered, rounds * per_round * 3 / 4);
    assert_eq!(
        depth(&broker.pool, &broker.topology.pool_queue(&cpu)).await,
        delivered as u32
    );
    broker.teardown(&[cpu]).await;
    ns.cleanup().await;
}

#[tokio::test]
async fn send_dead_keeps_the_message_and_says_why() {
    let ns = TestNamespace::new("send_dead_says_why");
    let broker = Broker::start(&ns).await;
    let mut headers = FieldTable::default();
    headers.insert(
        "x-warren-tenant".into(),
        AMQPValue::LongString("team-a".into()),
    );
    let props = BasicProperties::default()
        .with_message_id("not-a-job".into())
        .with_headers(headers);
    let confirm = within(
        "send_dead",
        broker
            .publisher
            .send_dead(b"{garbage", props, "malformed envelope"),
    )
    .await
    .unwrap();
    within("confirm", confirm.confirmed()).await.unwrap();

    let got = broker
        .get(&broker.topology.dead_queue())
        .await
        .expect("the message waits in the dead queue");
    let props = &got.delivery.properties;
    assert_eq!(got.delivery.data, b"{garbage");
    assert_eq!(header_str(props, REASON_HEADER), Some("malformed envelope"));
    assert_eq!(
        header_str(props, "x-warren-tenant"),
        Some("team-a"),
        "headers kept"
    );
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some("not-a-job")
    );
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    broker.teardown(&[]).await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_rejected_pool_message_is_dead_lettered() {
    let ns = TestNamespace::new("rejected_dead_lettered");
    let broker = Broker::start(&ns).await;
    let cpu = pool_name("cpu");
    within(
        "declare_pool",
        declare_pool(&broker.channel, &broker.topology, &cpu),
    )
    .await
    .unwrap();
    let sent = envelope(3);
    let confirm = within("send_pool", broker.publisher.send_pool(&cpu, &sent))
        .await
        .unwrap();
    within("confirm", confirm.confirmed()).await.unwrap();

    let got = within(
        "basic_get",
        broker.channel.basic_get(
            broker.topology.pool_queue(&cpu).as_str().into(),
            Default::default(),
        ),
    )
    .await
    .unwrap()
    .expect("the message waits in the pool queue");
    within(
        "nack",
        got.nack(BasicNackOptions {
            requeue: false,
            ..Default::default()
        }),
    )
    .await
    .unwrap();

    let dead = warren_kit::testkit::wait_until(
        "the rejected message in the dead queue",
        std::time::Duration::from_secs(5),
        || async { broker.get(&broker.topology.dead_queue()).await },
    )
    .await;
    assert_eq!(
        dead.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some(sent.job_id.to_string().as_str())
    );
    assert_eq!(JobEnvelope::from_bytes(&dead.delivery.data).unwrap(), sent);
    broker.teardown(&[cpu]).await;
    ns.cleanup().await;
}

#[tokio::test]
async fn higher_priorities_leave_intake_first() {
    let ns = TestNamespace::new("priorities_leave_first");
    let broker = Broker::start(&ns).await;
    let mut sent = Vec::new();
    for priority in [1, 9, 0, 5, 9, 3] {
        let env = envelope(priority);
        let confirm = within("send_intake", broker.publisher.send_intake(&env))
            .await
            .unwrap();
        within("confirm", confirm.confirmed()).await.unwrap();
        sent.push(env);
    }
    assert_eq!(
        depth(&broker.pool, &broker.topology.intake_queue()).await,
        6
    );

    let mut order = Vec::new();
    while let Some(got) = broker.get(&broker.topology.intake_queue()).await {
        let env = JobEnvelope::from_bytes(&got.delivery.data).unwrap();
        assert_eq!(*got.delivery.properties.priority(), Some(env.spec.priority));
        order.push(env);
    }
    let priorities: Vec<u8> = order.iter().map(|e| e.spec.priority).collect();
    assert_eq!(priorities, vec![9, 9, 5, 3, 1, 0]);
    // Equal priorities keep their publish order.
    let nines: Vec<_> = sent.iter().filter(|e| e.spec.priority == 9).collect();
    assert_eq!(order[0].job_id, nines[0].job_id);
    assert_eq!(order[1].job_id, nines[1].job_id);
    broker.teardown(&[]).await;
    ns.cleanup().await;
}
