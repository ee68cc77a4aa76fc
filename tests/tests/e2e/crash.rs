//! Invariants I3 and I4 with real processes: kill -9 and duplicate deliveries.

use std::time::Duration;

use serde_json::json;
use warren_kit::testkit::wait_until;

use crate::harness::{System, WorkerSpec, spec};

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_worker_is_killed_runs_again_elsewhere_and_ends_once() {
    let one_slot = WorkerSpec {
        slots: 1,
        ..WorkerSpec::default()
    };
    let mut sys = System::start("kill9", std::slice::from_ref(&one_slot)).await;
    let id = sys.submit(spec("sleep", json!({"ms": 2500}))).await;
    let running = sys
        .wait_state(&id, "running", Duration::from_secs(20))
        .await;
    let first_worker = running["worker"].as_str().unwrap().to_owned();

    sys.add_worker(&one_slot).await;
    sys.kill_worker(0);

    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_ne!(job["worker"], first_worker.as_str(), "{job}");
    assert_eq!(job["takeovers"], 1, "{job}");
    assert_eq!(job["attempt"], 1, "a takeover is not a new attempt: {job}");
    // Exactly one terminal state, and it stays.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = sys.job(&id).await;
    assert_eq!(later["state"], "succeeded");
    assert_eq!(later["timestamps"], job["timestamps"]);
    sys.workers.remove(0);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_of_finished_or_held_jobs_are_dropped_not_run() {
    // Two workers of one slot each: while one runs the held job, its copy can only go to
    // the other, which must see the live lease and drop it (not run it, not wait forever).
    let one_slot = WorkerSpec {
        slots: 1,
        ..WorkerSpec::default()
    };
    let sys = System::start("duplicates", &[one_slot.clone(), one_slot]).await;

    // A duplicate of a finished job.
    let done_id = sys.submit(spec("echo", json!({"n": 1}))).await;
    let done = sys.wait_done(&done_id).await;
    let done_on = done["worker"].as_str().unwrap().to_owned();
    sys.publish_duplicate(&done_on, &done).await;

    // A duplicate of a job a live worker holds.
    // Longer than the other worker's wait for the lease (2 × 2 s lease + 1 s).
    let held_id = sys.submit(spec("sleep", json!({"ms": 8000}))).await;
    let held = sys
        .wait_state(&held_id, "running", Duration::from_secs(20))
        .await;
    // The copy goes to the other worker, as a redelivery after a reconnect could.
    let holder = held["worker"].as_str().unwrap().to_owned();
    let other = sys
        .worker_ids()
        .await
        .into_iter()
        .find(|w| *w != holder)
        .expect("a second worker");
    sys.publish_duplicate(&other, &held).await;

    // Both copies are consumed...
    wait_until(
        "the duplicates to be consumed",
        Duration::from_secs(20),
        || async {
            (sys.worker_queue_depth(&done_on).await == 0
                && sys.worker_queue_depth(&other).await == 0)
                .then_some(())
        },
    )
    .await;
    // ...and neither job ran twice.
    let held_done = sys.wait_done(&held_id).await;
    assert_eq!(held_done["state"], "succeeded");
    assert_eq!(held_done["takeovers"], 0, "{held_done}");
    assert_eq!(held_done["worker"], held["worker"]);
    assert!(
        sys.worker_logs_contain("held by a live worker; dropping the duplicate"),
        "the copy of the held job must have met the lease on the other worker"
    );
    let again = sys.job(&done_id).await;
    assert_eq!(
        again["timestamps"], done["timestamps"],
        "finished job was touched"
    );
    assert_eq!(again["state"], "succeeded");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_scheduler_hands_its_pending_index_to_the_standby() {
    let mut sys = System::start("failover", &[]).await;
    sys.add_standby_scheduler();
    // No workers yet: the jobs wait in the pending index in Redis.
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(sys.submit(spec("echo", json!({ "n": n }))).await);
    }
    sys.wait_reason(&ids[19]).await;
    sys.kill_scheduler().await;
    sys.add_worker(&WorkerSpec::default()).await;
    for (n, id) in ids.iter().enumerate() {
        let job = sys.wait_done(id).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["result"]["n"], n, "{job}");
    }
    sys.stop().await;
}
