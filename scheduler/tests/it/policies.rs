//! The policies on the live service: the scheduler, not the broker, decides the order, and
//! capacity, limits, lost workers and a standby behave as documented.

use std::time::Duration;

use serde_json::{Value, json};
use warren_kit::testkit::wait_until;
use warren_protocol::{JobEnvelope, JobId, JobSpec, JobState, WorkerId};
use warren_scheduler::PolicyArgs;
use warren_scheduler::policy::Preset;
use warren_store::Transition;

use crate::support::Harness;

/// Plays `worker` finishing a job: claim, then succeed.
async fn finish_on(h: &Harness, worker: &str, envelope: &JobEnvelope) {
    let worker = WorkerId::from_raw(worker);
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

async fn reason_of(h: &Harness, id: JobId) -> String {
    let store = h.store.clone();
    wait_until("a pending reason", Duration::from_secs(10), || {
        let store = store.clone();
        async move { store.get(id).await.ok()??.pending_reason }
    })
    .await
}

fn spec(tenant: &str, priority: u8) -> JobSpec {
    let mut spec = JobSpec::new("noop", Value::Null);
    spec.tenant = tenant.into();
    spec.priority = priority;
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn priority_order_holds_on_a_saturated_worker() {
    let mut h = Harness::start_with_preset("sched_priority", Preset::Priority, 0).await;
    h.worker("w1", "cpu", 1, 0).await;
    let mut low = Vec::new();
    for _ in 0..20 {
        low.push(h.submit(spec("a", 1)).await);
    }
    let first = h.take("w1").await;
    assert_eq!(first.job_id, low[0]);
    // Submitted last, behind 19 waiting jobs: it runs next all the same.
    let urgent = h.submit(spec("b", 9)).await;
    let store = h.store.clone();
    wait_until(
        "the urgent job to be pending",
        Duration::from_secs(10),
        || {
            let store = store.clone();
            async move { store.get(urgent).await.ok()??.pending_reason.map(|_| ()) }
        },
    )
    .await;
    finish_on(&h, "w1", &first).await;
    assert_eq!(
        h.take("w1").await.job_id,
        urgent,
        "priority 9 overtakes the backlog"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gpu_worker_runs_one_gpu_job_at_a_time_beside_cpu_jobs() {
    let mut h = Harness::start("sched_gpu", 2).await;
    h.worker_with("w-gpu", "cpu,gpu", 4, 4, 1).await;
    let mut gpu = JobSpec::new("noop", Value::Null);
    gpu.requires = serde_json::from_value(json!({"tags": ["gpu"], "gpus": 1})).unwrap();
    let gpu_jobs = [h.submit(gpu.clone()).await, h.submit(gpu.clone()).await];
    let mut cpu = JobSpec::new("noop", Value::Null);
    cpu.requires = serde_json::from_value(json!({"cpu": 1})).unwrap();
    let cpu_job = h.submit(cpu).await;

    let first = h.take("w-gpu").await;
    assert_eq!(first.job_id, gpu_jobs[0]);
    // The CPU job fits beside it; the second GPU job does not.
    assert_eq!(h.take("w-gpu").await.job_id, cpu_job);
    assert_eq!(reason_of(&h, gpu_jobs[1]).await, "waiting_for_capacity");
    assert_eq!(h.depth("w-gpu").await, 0);
    finish_on(&h, "w-gpu", &first).await;
    assert_eq!(h.take("w-gpu").await.job_id, gpu_jobs[1]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_concurrency_cap_holds_and_says_so() {
    let policy = PolicyArgs {
        tenant_limits: [("a".to_owned(), 1)].into(),
        ..PolicyArgs::default()
    };
    let mut h = Harness::start_with("sched_cap", policy).await;
    h.worker("w1", "cpu", 4, 0).await;
    let a1 = h.submit(spec("a", 4)).await;
    let a2 = h.submit(spec("a", 4)).await;
    let b1 = h.submit(spec("b", 4)).await;
    let first = h.take("w1").await;
    assert_eq!(first.job_id, a1);
    assert_eq!(
        h.take("w1").await.job_id,
        b1,
        "tenant b is not held by a's cap"
    );
    assert_eq!(reason_of(&h, a2).await, "concurrency_limit tenant:a");
    finish_on(&h, "w1", &first).await;
    assert_eq!(h.take("w1").await.job_id, a2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_of_a_lost_worker_is_dispatched_again() {
    let mut h = Harness::start("sched_sweep", 0).await;
    h.worker("w-dead", "cpu", 1, 0).await;
    let id = h.submit(JobSpec::new("noop", Value::Null)).await;
    let envelope = h.take("w-dead").await;
    // The worker claims it with a short lease, then dies: no heartbeats, no renewal. Its
    // message is gone (taken), so only the sweeper can bring the job back.
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
    h.silence("w-dead");
    h.worker("w-live", "cpu", 1, 0).await;
    // Forgotten after 10 s of silence, swept within 5 s more.
    let again = h.take_within("w-live", Duration::from_secs(30)).await;
    assert_eq!(again.job_id, id);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_takes_over_with_the_pending_index_intact() {
    let mut h = Harness::start("sched_standby", 0).await;
    h.start_standby();
    let ids = [
        h.submit(spec("a", 4)).await,
        h.submit(spec("a", 4)).await,
        h.submit(spec("a", 4)).await,
    ];
    // No worker yet: all three wait in the pending index, in order, and say why.
    assert_eq!(
        reason_of(&h, ids[0]).await,
        "no_matching_pool: no live workers"
    );
    for (rank, id) in ids.iter().enumerate() {
        let store = h.store.clone();
        let place = wait_until(
            "the job's place in the index",
            Duration::from_secs(10),
            || {
                let store = store.clone();
                async move {
                    let place = store.pending_position(*id).await.ok()??;
                    place.class_reason.is_some().then_some(place)
                }
            },
        )
        .await;
        assert_eq!(place.rank, Some(rank as u64));
        assert_eq!(place.class_pending, 3);
        assert_eq!(
            place.class_rank,
            Some(0),
            "the only class waiting is next in line"
        );
        assert_eq!(
            place.class_reason.as_deref(),
            Some("no_matching_pool: no live workers")
        );
    }
    h.kill_active().await;
    h.worker("w1", "cpu", 3, 0).await;
    let mut got: Vec<JobId> = Vec::new();
    for _ in 0..3 {
        got.push(h.take("w1").await.job_id);
    }
    assert_eq!(got, ids, "every pending job, in order, from the standby");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_nobody_can_place_fails_after_its_schedule_timeout() {
    let mut h = Harness::start("sched_deadline", 0).await;
    h.worker("w1", "cpu", 1, 0).await;
    let mut gpu = JobSpec::new("noop", Value::Null);
    gpu.requires = serde_json::from_value(json!({"tags": ["gpu"]})).unwrap();
    gpu.schedule_timeout_s = Some(1);
    let stuck = h.submit(gpu).await;
    let mut patient = JobSpec::new("noop", Value::Null);
    patient.schedule_timeout_s = Some(60);
    let placed = h.submit(patient).await;
    let store = h.store.clone();
    let failed = wait_until("the schedule timeout", Duration::from_secs(15), || {
        let store = store.clone();
        async move {
            let job = store.get(stuck).await.ok()??;
            (job.state == JobState::Failed).then_some(job)
        }
    })
    .await;
    let error = failed.error.unwrap_or_default();
    assert!(error.starts_with("schedule_timeout"), "{error}");
    assert!(error.contains("no live worker has tags [gpu]"), "{error}");
    // A job placed in time is not touched by its deadline.
    let envelope = h.take("w1").await;
    assert_eq!(envelope.job_id, placed);
    assert_ne!(h.store.state(placed).await.unwrap(), Some(JobState::Failed));
    h.stop().await;
}
