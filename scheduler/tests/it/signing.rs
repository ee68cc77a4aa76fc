//! With a signing key, intake takes only signed messages: one published straight to RabbitMQ
//! is dead-lettered with the reason, and its job is neither placed nor failed.

use std::time::Duration;

use warren_kit::testkit::{amqp_url, wait_until};
use warren_protocol::{JobEnvelope, JobId, JobSpec, JobState, now_ms};
use warren_store::NewJob;
use warren_topology::{Publisher, SigningKeys};

use crate::support::Harness;

const KEY: &str = "scheduler-test-key-0123456789abcdef";

#[tokio::test(flavor = "multi_thread")]
async fn intake_dead_letters_unsigned_and_forged_messages_and_places_signed_ones() {
    let mut h = Harness::start_signed("sched_signing", KEY).await;
    h.worker("w1", "cpu", 2, 0).await;
    let amqp = warren_topology::connect_pool(&amqp_url(), "sched-signing-it", 1)
        .await
        .unwrap();
    let unsigned = Publisher::open(&amqp, &h.topology.clone().with_signing(None))
        .await
        .unwrap();
    let forger = Publisher::open(
        &amqp,
        &h.topology.clone().with_signing(Some(
            SigningKeys::parse("not-the-deployment-key-0123456789").unwrap(),
        )),
    )
    .await
    .unwrap();

    for (publisher, expected) in [
        (&unsigned, "unsigned job message"),
        (&forger, "bad signature"),
    ] {
        let id = JobId::new();
        let spec = JobSpec::new("noop", serde_json::Value::Null);
        h.store
            .create_jobs(&[NewJob {
                id,
                spec: spec.clone(),
                created_ms: now_ms(),
            }])
            .await
            .unwrap();
        let envelope = JobEnvelope::first_attempt(id, spec, now_ms(), None);
        publisher
            .send_intake(&envelope)
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
        // The scheduler indexes what reaches `{ns}.dead` (and acks it): the index says why.
        let store = h.store.clone();
        let dead = wait_until("a dead letter", Duration::from_secs(10), || {
            let store = store.clone();
            async move { store.dead_letter(&id.to_string()).await.ok()? }
        })
        .await;
        assert_eq!(dead.job_id, Some(id));
        assert!(dead.reason.contains(expected), "{}", dead.reason);
        let job = h.store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued, "left alone: {:?}", job.error);
    }
    assert_eq!(h.depth("w1").await, 0, "nothing forged was placed");

    // Signed by the harness, as the submitter would: placed on the worker.
    let id = h
        .submit(JobSpec::new("noop", serde_json::Value::Null))
        .await;
    assert_eq!(h.take("w1").await.job_id, id);
    amqp.close();
    h.stop().await;
}
