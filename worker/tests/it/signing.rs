//! Signed job messages: with a key, the worker runs only messages signed for its own queue,
//! dead-letters the rest with a reason, and always runs the stored spec, not the message's.

use std::time::Duration;

use serde_json::json;
use warren_kit::testkit::{TestNamespace, amqp_url, wait_until};
use warren_protocol::{JobEnvelope, JobId, JobState};
use warren_topology::{Publisher, REASON_HEADER, SigningKeys, header_str};
use warren_worker::Worker;

use crate::support::{Harness, args, spec};

const KEY: &str = "test-signing-key-0123456789abcdef";

fn signed_worker(ns: &TestNamespace) -> Worker {
    let mut a = args(ns);
    // Rotation: the worker verifies with both; the harness signs with the second.
    a.common.signing.key = Some(format!("new-key-not-yet-used-0123456789,{KEY}"));
    Worker::builder().build(a)
}

/// A publisher that signs with `key`.
async fn publisher_with(h: &Harness, key: &str) -> Publisher {
    let amqp = warren_topology::connect_pool(&amqp_url(), "signing-it", 1)
        .await
        .unwrap();
    let topology = h
        .publisher
        .topology()
        .clone()
        .with_signing(Some(SigningKeys::parse(key).unwrap()));
    Publisher::open(&amqp, &topology).await.unwrap()
}

async fn send(publisher: &Publisher, h: &Harness, envelope: &JobEnvelope) {
    publisher
        .send_worker(h.worker(), envelope)
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
}

/// The reason of the next dead letter.
async fn next_dead_reason(h: &Harness) -> (JobId, String) {
    let channel = h.publisher.channel().clone();
    let queue = h.publisher.topology().dead_queue();
    let dead = wait_until("a dead letter", Duration::from_secs(10), || {
        let (channel, queue) = (channel.clone(), queue.clone());
        async move {
            channel
                .basic_get(queue.as_str().into(), Default::default())
                .await
                .ok()?
        }
    })
    .await;
    let envelope = JobEnvelope::from_bytes(&dead.delivery.data).unwrap();
    let reason = header_str(&dead.delivery.properties, REASON_HEADER)
        .unwrap()
        .to_owned();
    (envelope.job_id, reason)
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_and_forged_messages_are_dead_lettered_and_signed_ones_run() {
    let ns = TestNamespace::new("worker_signing");
    let h = Harness::start(ns.clone(), signed_worker(&ns)).await;
    let echo = |word: &str| spec("command", json!({"argv": ["echo", word]}));

    // Unsigned: straight to RabbitMQ, as anyone with broker access could.
    let unsigned = h.record(echo("unsigned")).await;
    h.publish(&unsigned).await;
    let (id, reason) = next_dead_reason(&h).await;
    assert_eq!(id, unsigned.job_id);
    assert!(reason.contains("unsigned job message"), "{reason}");

    // Signed with a key the worker does not have.
    let wrong = publisher_with(&h, "some-other-key-0123456789abcdef").await;
    let forged = h.record(echo("forged")).await;
    send(&wrong, &h, &forged).await;
    let (id, reason) = next_dead_reason(&h).await;
    assert_eq!(id, forged.job_id);
    assert!(reason.contains("bad signature"), "{reason}");

    // Signed for intake, replayed to the worker.
    let right = publisher_with(&h, KEY).await;
    let replayed = h.record(echo("replayed")).await;
    let body = replayed.to_bytes();
    let properties = right.topology().signing().unwrap().sign_properties(
        warren_topology::job_properties(&replayed),
        &replayed.job_id.to_string(),
        &warren_topology::Destination::Intake,
        &body,
    );
    let topology = h.publisher.topology().clone();
    h.publisher
        .send(
            &topology.work_exchange(),
            &topology.worker_routing_key(h.worker()),
            &body,
            properties,
        )
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let (id, reason) = next_dead_reason(&h).await;
    assert_eq!(id, replayed.job_id);
    assert!(reason.contains("signed for \"intake\""), "{reason}");

    // None of them ran, and their records were left alone.
    for envelope in [&unsigned, &forged, &replayed] {
        let job = h.store.get(envelope.job_id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued, "{:?}", job.error);
    }

    // Signed with the right key: runs.
    let good = h.record(echo("signed")).await;
    send(&right, &h, &good).await;
    let job = h.wait_terminal(good.job_id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(job.result.unwrap()["stdout"], "signed\n");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stored_spec_runs_not_the_messages_copy() {
    let ns = TestNamespace::new("worker_stored_spec");
    let h = Harness::start(ns.clone(), Worker::builder().build(args(&ns))).await;
    let mut envelope = h
        .record(spec("command", json!({"argv": ["echo", "stored"]})))
        .await;
    envelope.spec = spec("command", json!({"argv": ["echo", "from the message"]}));
    h.publish(&envelope).await;
    let job = h.wait_terminal(envelope.job_id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(job.result.unwrap()["stdout"], "stored\n");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_cancel_is_ignored_and_a_signed_one_stops_the_job() {
    let ns = TestNamespace::new("worker_signed_cancel");
    let h = Harness::start(ns.clone(), signed_worker(&ns)).await;
    let right = publisher_with(&h, KEY).await;
    let wrong = publisher_with(&h, "some-other-key-0123456789abcdef").await;
    let sleeper = |ms: u64| spec("sleep", json!({ "ms": ms }));

    // Forged and unsigned cancels reach the worker but stop nothing: the job runs to its end.
    let survives = h.record(sleeper(1500)).await;
    send(&right, &h, &survives).await;
    wait_until("the job to run", Duration::from_secs(10), || {
        let store = h.store.clone();
        async move {
            let job = store.get(survives.job_id).await.ok()??;
            (job.state == JobState::Running).then_some(())
        }
    })
    .await;
    wrong.broadcast_cancel(survives.job_id).await.unwrap();
    h.publisher.broadcast_cancel(survives.job_id).await.unwrap();
    let job = h.wait_terminal(survives.job_id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);

    // A signed cancel stops it.
    let stopped = h.record(sleeper(60_000)).await;
    send(&right, &h, &stopped).await;
    wait_until("the job to run", Duration::from_secs(10), || {
        let store = h.store.clone();
        async move {
            let job = store.get(stopped.job_id).await.ok()??;
            (job.state == JobState::Running).then_some(())
        }
    })
    .await;
    right.broadcast_cancel(stopped.job_id).await.unwrap();
    let job = h.wait_terminal(stopped.job_id).await;
    assert_eq!(job.state, JobState::Cancelled, "{:?}", job.error);
    h.stop().await;
}
