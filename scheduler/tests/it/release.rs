use std::time::Duration;

use serde_json::{Value, json};
use warren_kit::testkit::wait_until;
use warren_protocol::{JobEnvelope, JobSpec, JobState, WorkerId, now_ms};
use warren_store::Transition;

use crate::support::Harness;

/// Plays a worker finishing a job: claim, then succeed.
async fn finish(h: &Harness, envelope: &JobEnvelope) {
    let worker = WorkerId::from_raw("w1");
    h.store
        .claim(
            envelope.job_id,
            &worker,
            envelope.attempt,
            "cpu",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let done = Transition::new(envelope.job_id, JobState::Succeeded).by_worker(&worker);
    h.store.transition(&done).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_released_in_order_only_as_fast_as_the_pool_has_slots() {
    let mut h = Harness::start("sched_credit", 0).await;
    h.worker("w1", "cpu", 1, 0).await;
    let ids = [
        h.submit(JobSpec::new("noop", Value::Null)).await,
        h.submit(JobSpec::new("noop", Value::Null)).await,
        h.submit(JobSpec::new("noop", Value::Null)).await,
    ];

    // One slot, no slack: exactly one job is released; the others wait in the pending index.
    let first = h.take("w1").await;
    assert_eq!(first.job_id, ids[0], "FIFO");
    let store = h.store.clone();
    wait_until(
        "the first job to be marked scheduled",
        Duration::from_secs(5),
        || {
            let store = store.clone();
            async move { (store.state(ids[0]).await.ok()?? == JobState::Scheduled).then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.depth("w1").await, 0, "no credit, nothing more released");
    assert_eq!(h.store.state(ids[1]).await.unwrap(), Some(JobState::Queued));

    // Finishing a job gives its credit back: the next one in order is released.
    finish(&h, &first).await;
    let second = h.take("w1").await;
    assert_eq!(second.job_id, ids[1]);
    finish(&h, &second).await;
    let third = h.take("w1").await;
    assert_eq!(third.job_id, ids[2]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_go_to_the_best_fitting_pool_and_unmatched_ones_say_why() {
    let mut h = Harness::start("sched_match", 2).await;
    h.worker("w-cpu", "cpu", 2, 0).await;
    h.worker("w-gpu", "cpu,gpu", 2, 1).await;

    let cpu_job = h.submit(JobSpec::new("noop", Value::Null)).await;
    assert_eq!(h.take("w-cpu").await.job_id, cpu_job);

    let mut gpu = JobSpec::new("noop", Value::Null);
    gpu.requires = serde_json::from_value(json!({"tags": ["gpu"], "gpus": 1})).unwrap();
    let gpu_job = h.submit(gpu).await;
    assert_eq!(h.take("w-gpu").await.job_id, gpu_job);

    let mut tpu = JobSpec::new("noop", Value::Null);
    tpu.requires = serde_json::from_value(json!({"tags": ["tpu"]})).unwrap();
    let tpu_job = h.submit(tpu).await;
    let store = h.store.clone();
    let job = wait_until("a pending reason", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let job = store.get(tpu_job).await.ok()??;
            job.pending_reason.is_some().then_some(job)
        }
    })
    .await;
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(
        job.pending_reason.as_deref(),
        Some("no_matching_pool: no live worker has tags [tpu]")
    );

    // A TPU worker joins: the parked job runs there.
    h.worker("w-tpu", "tpu", 1, 0).await;
    assert_eq!(h.take("w-tpu").await.job_id, tpu_job);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delayed_jobs_come_back_through_the_ladder_when_due() {
    let mut h = Harness::start("sched_delay", 2).await;
    h.worker("w1", "cpu", 2, 0).await;
    let id = h.submit(JobSpec::new("noop", Value::Null)).await;
    let first = h.take("w1").await;
    // Play a worker whose first attempt failed: attempt 2 is due in 1.5 s.
    let worker = WorkerId::from_raw("w1");
    h.store
        .claim(id, &worker, 1, "cpu", Duration::from_secs(5))
        .await
        .unwrap();
    let due = now_ms() + 1500;
    let retrying = Transition::new(id, JobState::Retrying)
        .by_worker(&worker)
        .set("attempt", 2)
        .set("next_attempt_ms", due)
        .releasing_lease();
    h.store.transition(&retrying).await.unwrap();
    let mut next = first.clone();
    next.attempt = 2;
    next.not_before_ms = Some(due);
    h.publisher
        .send_delay(0, &next)
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();

    let again = h.take("w1").await;
    assert_eq!(again.job_id, id);
    assert_eq!(again.attempt, 2);
    assert!(now_ms() + 50 >= due, "released {} ms early", due - now_ms());
    let job = h.store.get(id).await.unwrap().unwrap();
    assert!(
        matches!(job.state, JobState::Queued | JobState::Scheduled),
        "{:?}",
        job.state
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_cancelled_while_it_waits_is_dropped_from_the_pending_index() {
    let mut h = Harness::start("sched_cancel", 0).await;
    let mut gpu = JobSpec::new("noop", Value::Null);
    gpu.requires = serde_json::from_value(json!({"tags": ["gpu"]})).unwrap();
    let waiting = h.submit(gpu).await;
    let store = h.store.clone();
    wait_until(
        "the job to wait for a gpu pool",
        Duration::from_secs(10),
        || {
            let store = store.clone();
            async move { store.get(waiting).await.ok()??.pending_reason.map(|_| ()) }
        },
    )
    .await;
    let cancel = Transition::new(waiting, JobState::Cancelled);
    h.store.transition(&cancel).await.unwrap();
    // A GPU worker joins: the cancelled job must not be released to it...
    h.worker("w-gpu", "gpu", 1, 0).await;
    let next = h.submit(JobSpec::new("noop", Value::Null)).await;
    // ...so the pool's only credit goes to the job behind it.
    assert_eq!(h.take("w-gpu").await.job_id, next);
    assert_eq!(h.depth("w-gpu").await, 0);
    h.stop().await;
}
