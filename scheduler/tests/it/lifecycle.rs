//! Dead letters reach the Redis index through the scheduler, and a job whose workers keep
//! dying under it ends as a poison job.

use std::time::Duration;

use serde_json::Value;
use warren_kit::testkit::wait_until;
use warren_protocol::{JobSpec, JobState, WorkerId};
use warren_store::{DeadLetter, Transition, TransitionOutcome};
use warren_topology::lapin::BasicProperties;

use crate::support::Harness;

async fn dead_letter_where(
    h: &Harness,
    what: &str,
    matches: impl Fn(&DeadLetter) -> bool + Clone,
) -> DeadLetter {
    let store = h.store.clone();
    wait_until(what, Duration::from_secs(30), || {
        let (store, matches) = (store.clone(), matches.clone());
        async move {
            let page = store.list_dead(None, None, 100).await.ok()?;
            page.dead.into_iter().find(|d| matches(d))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_are_indexed_as_dead_letters_that_cannot_be_requeued() {
    let h = Harness::start("sched_dead_malformed", 0).await;
    h.publisher
        .send(
            &h.topology.intake_exchange(),
            h.topology.intake_routing_key(),
            b"{not json",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let entry = dead_letter_where(&h, "the malformed message in the index", |d| {
        d.reason.starts_with("malformed job message")
    })
    .await;
    assert_eq!((entry.job_id, entry.requeueable), (None, false));
    #[derive(Debug, thiserror::Error)]
    #[error("unused")]
    struct Unused;
    let refused = h
        .store
        .requeue_dead(&entry.id, |_| async { Ok::<(), Unused>(()) })
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("names no job"), "{refused}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_loses_its_worker_too_often_is_a_poison_job() {
    let mut h = Harness::start("sched_poison", 0).await;
    h.worker("w-dead", "cpu", 1, 0).await;
    let id = h.submit(JobSpec::new("noop", Value::Null)).await;
    let envelope = h.take("w-dead").await;
    let dead = WorkerId::from_raw("w-dead");
    h.store
        .claim(
            id,
            &dead,
            envelope.attempt,
            "cpu",
            Duration::from_millis(500),
        )
        .await
        .unwrap();
    // It has lost its worker five times already (WARREN_MAX_TAKEOVERS' default).
    let five = Transition::new(id, JobState::Running).set("takeovers", 5);
    assert!(matches!(
        h.store.transition(&five).await.unwrap(),
        TransitionOutcome::Done(_)
    ));
    h.silence("w-dead");
    h.worker("w-live", "cpu", 1, 0).await;
    let store = h.store.clone();
    let job = wait_until("the poison job to fail", Duration::from_secs(40), || {
        let store = store.clone();
        async move {
            let job = store.get(id).await.ok()??;
            job.state.is_terminal().then_some(job)
        }
    })
    .await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.takeovers, 6);
    let error = job.error.unwrap();
    assert!(
        error.starts_with("poison job: its worker was lost 6 times"),
        "{error}"
    );
    assert_eq!(job.dead_reason.as_deref(), Some(error.as_str()));
    let entry = dead_letter_where(&h, "the poison job in the index", move |d| {
        d.job_id == Some(id)
    })
    .await;
    assert_eq!(entry.reason, error);
    assert!(entry.requeueable);
    assert_eq!(h.depth("w-live").await, 0, "it was not sent anywhere again");
    h.stop().await;
}
