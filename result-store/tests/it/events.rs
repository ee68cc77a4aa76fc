//! The job event channel: an event exists exactly when a transition happened.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use warren_kit::testkit::TestNamespace;
use warren_protocol::{JobState, WorkerId};
use warren_store::{ClaimOutcome, JobEvent, Transition, TransitionOutcome};

use crate::{LEASE, claim, create, spec, store, transition};

async fn next_event(events: &mut (impl Stream<Item = JobEvent> + Unpin)) -> JobEvent {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .expect("the event stream stays open")
}

#[tokio::test]
async fn transitions_and_claims_publish_events() {
    let ns = TestNamespace::new("transitions_publish_events");
    let store = store(&ns).await;
    let worker = WorkerId::generate("host");
    let id = create(&store, spec("team-a", "default")).await;
    let mut events = Box::pin(
        tokio::time::timeout(Duration::from_secs(5), store.subscribe_events())
            .await
            .expect("subscribing in time")
            .unwrap(),
    );

    assert_eq!(
        transition(
            &store,
            Transition::new(id, JobState::Scheduled).set("pool", "cpu")
        )
        .await,
        TransitionOutcome::Done(JobState::Queued)
    );
    let event = next_event(&mut events).await;
    assert_eq!(event.id, id.to_string());
    assert_eq!(
        (event.from, event.state),
        (JobState::Queued, JobState::Scheduled)
    );
    assert_eq!(event.pool, "cpu");
    assert_eq!(event.worker, "");
    assert_eq!(event.attempt, 1);
    assert_eq!(event.tenant, "team-a");
    let record = crate::get(&store, id).await;
    assert_eq!(event.at, record.timestamps["scheduled"]);

    // A refused move publishes nothing: the next event is the claim's.
    assert_eq!(
        transition(&store, Transition::new(id, JobState::Succeeded)).await,
        TransitionOutcome::Illegal(JobState::Scheduled)
    );
    assert_eq!(
        claim(&store, id, &worker, LEASE).await,
        ClaimOutcome::Claimed(JobState::Scheduled)
    );
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.from, event.state),
        (JobState::Scheduled, JobState::Running)
    );
    assert_eq!(event.worker, worker.as_str());
    assert_eq!(event.pool, "cpu");

    assert_eq!(
        transition(
            &store,
            Transition::new(id, JobState::Succeeded).by_worker(&worker)
        )
        .await,
        TransitionOutcome::Done(JobState::Running)
    );
    let event = next_event(&mut events).await;
    assert_eq!(event.id, id.to_string());
    assert_eq!(
        (event.from, event.state),
        (JobState::Running, JobState::Succeeded)
    );
    assert_eq!(event.worker, worker.as_str());

    // Another namespace's events never arrive here.
    let other_ns = TestNamespace::new("transitions_publish_other");
    let other = crate::store(&other_ns).await;
    let foreign = create(&other, spec("team-a", "default")).await;
    assert_eq!(
        transition(&other, Transition::new(foreign, JobState::Cancelled)).await,
        TransitionOutcome::Done(JobState::Queued)
    );
    let mine = create(&store, spec("team-a", "default")).await;
    assert_eq!(
        transition(&store, Transition::new(mine, JobState::Cancelled)).await,
        TransitionOutcome::Done(JobState::Queued)
    );
    let event = next_event(&mut events).await;
    assert_eq!(event.id, mine.to_string());
    other_ns.cleanup().await;
    ns.cleanup().await;
}
