//! The delay ladder: a rung holds a message for its TTL, then dead-letters it to
//! `delay.expired`.

use std::time::{Duration, Instant};

use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::JobEnvelope;
use warren_topology::delay::rung_ttl;
use warren_topology::lapin::types::AMQPValue;
use warren_topology::{DUE_HEADER, header_u64};

use crate::{Broker, envelope, within};

#[tokio::test]
async fn rung_zero_expires_into_the_expired_queue() {
    let ns = TestNamespace::new("rung_zero_expires");
    let broker = Broker::start(&ns).await;
    let topology = &broker.topology;
    let mut sent = envelope(5);
    sent.not_before_ms = Some(sent.created_at_ms + 1_000);
    let confirm = within("send_delay", broker.publisher.send_delay(0, &sent))
        .await
        .unwrap();
    let published = Instant::now();
    within("confirm", confirm.confirmed()).await.unwrap();
    assert!(
        broker.get(&topology.delay_expired_queue()).await.is_none(),
        "not expired yet"
    );

    let got = wait_until(
        "the message to expire into delay.expired",
        Duration::from_secs(3),
        || async { broker.get(&topology.delay_expired_queue()).await },
    )
    .await;
    let waited = published.elapsed();
    // The broker's TTL clock and ours start a few ms apart.
    assert!(
        waited + Duration::from_millis(100) >= rung_ttl(0),
        "held for its TTL, got {waited:?}"
    );
    assert!(broker.get(&topology.delay_queue(0)).await.is_none());

    let props = &got.delivery.properties;
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some(sent.job_id.to_string().as_str())
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    assert_eq!(header_u64(props, DUE_HEADER), sent.not_before_ms);
    assert_eq!(JobEnvelope::from_bytes(&got.delivery.data).unwrap(), sent);
    // RabbitMQ says where the message died and why: the scheduler can tell the rung.
    let death = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-death").cloned())
        .expect("an x-death header");
    let AMQPValue::FieldArray(deaths) = death else {
        panic!("x-death is an array: {death:?}")
    };
    let AMQPValue::FieldTable(first) = &deaths.as_slice()[0] else {
        panic!("x-death holds tables")
    };
    assert_eq!(
        first.inner().get("queue"),
        Some(&AMQPValue::LongString(topology.delay_queue(0).into()))
    );
    assert_eq!(
        first.inner().get("reason"),
        Some(&AMQPValue::LongString("expired".into()))
    );
    broker.teardown(&[]).await;
    ns.cleanup().await;
}
