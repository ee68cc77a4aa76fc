//! Claims and leases: at-least-once delivery, effectively-once execution (invariant I3).

use std::time::Duration;

use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::{JobId, JobState, WorkerId};
use warren_store::{ClaimOutcome, LeaseRenewal, Transition, TransitionOutcome};

use crate::{
    LEASE, claim, cmd, create, get, indexed, raw, running_job, spec, store, transition, within,
};

#[tokio::test]
async fn claims_take_queued_and_scheduled_jobs() {
    let ns = TestNamespace::new("claims_queued_scheduled");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");

    let queued = create(&store, spec("team-a", "default")).await;
    assert_eq!(
        within("claim", store.claim(queued, &worker, 1, "gpu", LEASE))
            .await
            .unwrap(),
        ClaimOutcome::Claimed(JobState::Queued)
    );
    let record = get(&store, queued).await;
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.worker.as_deref(), Some(worker.as_str()));
    assert_eq!(record.pool.as_deref(), Some("gpu"));
    assert!(record.timestamps.contains_key("running"));
    assert_eq!(record.takeovers, 0);
    assert!(indexed(&mut conn, &keys.index_state(JobState::Running), queued).await);
    assert!(!indexed(&mut conn, &keys.index_state(JobState::Queued), queued).await);
    let ttl: i64 = cmd(&mut conn, "TTL", &[&keys.job(queued)]).await;
    assert_eq!(
        ttl, -1,
        "a claimed job is real and loses its provisional TTL"
    );
    let lease_ttl: i64 = cmd(&mut conn, "PTTL", &[&keys.lease(queued)]).await;
    assert!(lease_ttl > 0 && lease_ttl <= LEASE.as_millis() as i64);

    let scheduled = running_job(&store, &worker).await;
    assert_eq!(
        within("lease_holder", store.lease_holder(scheduled))
            .await
            .unwrap(),
        Some(worker.clone())
    );

    assert_eq!(
        claim(&store, JobId::new(), &worker, LEASE).await,
        ClaimOutcome::Missing
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn a_finished_job_is_never_claimed_again() {
    let ns = TestNamespace::new("finished_job_not_claimed");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");
    let late = WorkerId::generate("host");
    let id = running_job(&store, &worker).await;
    assert_eq!(
        transition(
            &store,
            Transition::new(id, JobState::Succeeded).by_worker(&worker)
        )
        .await,
        TransitionOutcome::Done(JobState::Running)
    );

    for claimer in [&worker, &late] {
        assert_eq!(
            claim(&store, id, claimer, LEASE).await,
            ClaimOutcome::Terminal(JobState::Succeeded)
        );
    }
    let lease: i64 = cmd(&mut conn, "EXISTS", &[&keys.lease(id)]).await;
    assert_eq!(lease, 0, "a refused claim takes no lease");
    let record = get(&store, id).await;
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.worker.as_deref(), Some(worker.as_str()));
    ns.cleanup().await;
}

#[tokio::test]
async fn a_live_lease_holds_off_every_other_claim() {
    let ns = TestNamespace::new("live_lease_holds");
    let store = store(&ns).await;
    let holder = WorkerId::generate("host");
    let other = WorkerId::generate("host");
    let id = running_job(&store, &holder).await;

    assert_eq!(
        claim(&store, id, &other, LEASE).await,
        ClaimOutcome::Held(holder.clone())
    );
    // A duplicate of the message reaching the holder itself (the scheduler re-published
    // after a crash) must not start a second run of the job either.
    assert_eq!(
        claim(&store, id, &holder, LEASE).await,
        ClaimOutcome::Held(holder.clone())
    );
    let record = get(&store, id).await;
    assert_eq!(record.worker.as_deref(), Some(holder.as_str()));
    assert_eq!(record.takeovers, 0);
    assert_eq!(
        within("lease_holder", store.lease_holder(id))
            .await
            .unwrap(),
        Some(holder)
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn stale_messages_are_refused() {
    let ns = TestNamespace::new("stale_claims_refused");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");

    // A message of another attempt.
    let id = create(&store, spec("team-a", "default")).await;
    for attempt in [0, 2] {
        assert_eq!(
            within("claim", store.claim(id, &worker, attempt, "cpu", LEASE))
                .await
                .unwrap(),
            ClaimOutcome::Stale(JobState::Queued),
            "attempt {attempt}"
        );
    }
    assert_eq!(get(&store, id).await.state, JobState::Queued);

    // A copy of a failed attempt while the job waits out its backoff, even for the right
    // attempt number and after the lease is gone.
    let id = running_job(&store, &worker).await;
    let retry = Transition::new(id, JobState::Retrying)
        .by_worker(&worker)
        .releasing_lease()
        .set("attempt", 2);
    assert_eq!(
        transition(&store, retry).await,
        TransitionOutcome::Done(JobState::Running)
    );
    for attempt in [1, 2] {
        assert_eq!(
            within("claim", store.claim(id, &worker, attempt, "cpu", LEASE))
                .await
                .unwrap(),
            ClaimOutcome::Stale(JobState::Retrying),
            "attempt {attempt}"
        );
    }
    let lease: i64 = cmd(&mut conn, "EXISTS", &[&keys.lease(id)]).await;
    assert_eq!(lease, 0);
    assert_eq!(get(&store, id).await.state, JobState::Retrying);
    ns.cleanup().await;
}

#[tokio::test]
async fn a_dead_workers_job_is_taken_over_once_its_lease_expires() {
    let ns = TestNamespace::new("takeover_after_lease_expiry");
    let store = store(&ns).await;
    let dead = WorkerId::generate("host");
    let heir = WorkerId::generate("host");
    let id = create(&store, spec("team-a", "default")).await;
    assert_eq!(
        claim(&store, id, &dead, Duration::from_millis(200)).await,
        ClaimOutcome::Claimed(JobState::Queued)
    );
    assert_eq!(
        claim(&store, id, &heir, LEASE).await,
        ClaimOutcome::Held(dead.clone())
    );

    let outcome = wait_until(
        "the dead worker's lease to expire",
        Duration::from_secs(5),
        || {
            let store = store.clone();
            let heir = heir.clone();
            async move {
                match store.claim(id, &heir, 1, "cpu", LEASE).await.unwrap() {
                    ClaimOutcome::Held(_) => None,
                    other => Some(other),
                }
            }
        },
    )
    .await;
    assert_eq!(outcome, ClaimOutcome::Claimed(JobState::Running));

    let record = get(&store, id).await;
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.worker.as_deref(), Some(heir.as_str()));
    assert_eq!(record.takeovers, 1);
    assert_eq!(
        within("lease_holder", store.lease_holder(id))
            .await
            .unwrap(),
        Some(heir.clone())
    );

    // The dead worker, should it come back, no longer owns anything.
    assert_eq!(
        within("renew", store.renew_lease(id, &dead, 1, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Lost
    );
    assert_eq!(
        transition(
            &store,
            Transition::new(id, JobState::Succeeded).by_worker(&dead)
        )
        .await,
        TransitionOutcome::NotOwner(JobState::Running)
    );
    assert_eq!(
        transition(
            &store,
            Transition::new(id, JobState::Succeeded).by_worker(&heir)
        )
        .await,
        TransitionOutcome::Done(JobState::Running)
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn only_the_holder_renews_a_lease() {
    let ns = TestNamespace::new("only_holder_renews");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let holder = WorkerId::generate("host");
    let other = WorkerId::generate("host");
    let id = create(&store, spec("team-a", "default")).await;
    assert_eq!(
        claim(&store, id, &holder, Duration::from_secs(5)).await,
        ClaimOutcome::Claimed(JobState::Queued)
    );

    assert_eq!(
        within("renew", store.renew_lease(id, &other, 1, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Lost
    );
    let pttl: i64 = cmd(&mut conn, "PTTL", &[&keys.lease(id)]).await;
    assert!(pttl <= 5_000, "another worker did not extend it: {pttl} ms");
    assert_eq!(
        within("lease_holder", store.lease_holder(id))
            .await
            .unwrap(),
        Some(holder.clone())
    );

    assert_eq!(
        within("renew", store.renew_lease(id, &holder, 1, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Renewed
    );
    let pttl: i64 = cmd(&mut conn, "PTTL", &[&keys.lease(id)]).await;
    assert!(pttl > 5_000, "the holder extended it: {pttl} ms");

    // No lease at all: nothing to renew, and nothing is created.
    let unclaimed = create(&store, spec("team-a", "default")).await;
    assert_eq!(
        within("renew", store.renew_lease(unclaimed, &holder, 1, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Lost
    );
    assert_eq!(
        within("lease_holder", store.lease_holder(unclaimed))
            .await
            .unwrap(),
        None
    );
    ns.cleanup().await;
}

/// Issue 6, item 2: a lease that lapsed while Redis was out of reach is not a takeover. The
/// holder takes it again while the record still names it; another holder or a job that
/// moved on is a loss.
#[tokio::test]
async fn a_lapsed_lease_is_taken_again_only_while_nobody_else_has_the_job() {
    let ns = TestNamespace::new("lapsed_lease_retaken");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let holder = WorkerId::generate("host");
    let other = WorkerId::generate("host");
    let id = running_job(&store, &holder).await;

    // The key expired during the outage: the holder gets it back.
    let _: i64 = cmd(&mut conn, "DEL", &[&keys.lease(id)]).await;
    assert_eq!(
        within("renew", store.renew_lease(id, &holder, 1, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Retaken
    );
    assert_eq!(
        within("lease_holder", store.lease_holder(id))
            .await
            .unwrap(),
        Some(holder.clone())
    );
    assert_eq!(
        within("renew", store.renew_lease(id, &holder, 1, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Renewed
    );

    // Another worker is not named by the record: it cannot take a lapsed lease this way.
    let _: i64 = cmd(&mut conn, "DEL", &[&keys.lease(id)]).await;
    assert_eq!(
        within("renew", store.renew_lease(id, &other, 1, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Lost
    );
    // Nor the holder for another attempt.
    assert_eq!(
        within("renew", store.renew_lease(id, &holder, 2, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Lost
    );

    // Once another worker has claimed the job, the old holder has lost it for good.
    assert_eq!(
        claim(&store, id, &other, LEASE).await,
        ClaimOutcome::Claimed(JobState::Running)
    );
    assert_eq!(
        within("renew", store.renew_lease(id, &holder, 1, LEASE))
            .await
            .unwrap(),
        LeaseRenewal::Lost
    );
    ns.cleanup().await;
}
