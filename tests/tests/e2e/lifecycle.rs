//! A submitter killed in the middle of a batch leaves no phantom jobs: the jobs it wrote but
//! never confirmed are removed by the scheduler's reaper, never run, and the client's retry
//! with the same `Idempotency-Key` makes the batch afresh.

use std::time::Duration;

use serde_json::{Value, json};
use warren_kit::testkit::{redis_url, wait_until};
use warren_store::{Store, StoreOptions};

use crate::harness::{System, WorkerSpec};

#[tokio::test(flavor = "multi_thread")]
async fn a_submitter_killed_mid_batch_leaves_no_phantom_jobs() {
    let mut sys = System::start_with(
        "submit_crash",
        &[],
        &[("WARREN_SUBMIT_REAP_AFTER", "2s".to_owned())],
    )
    .await;
    let store = Store::connect(&redis_url(), sys.ns.ns(), StoreOptions::default())
        .await
        .unwrap();
    let jobs: Vec<Value> = (0..1000).map(|_| json!({"task": "noop"})).collect();
    let body = json!({ "jobs": jobs });
    let request = sys
        .http
        .post(format!("{}/v1/jobs/batch", sys.base))
        .header("Idempotency-Key", "crash-batch")
        .json(&body)
        .send();
    let in_flight = tokio::spawn(request);
    // Kill it once the records are written and before the confirms are all in.
    let marked = wait_until("the batch to be written", Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            let n = store.submissions_in_flight().await.ok()?;
            (n > 0).then_some(n)
        }
    })
    .await;
    sys.kill_submitter().await;
    let left = store.submissions_in_flight().await.unwrap();
    assert!(
        left > 0,
        "the kill came after the batch was confirmed; nothing was shown"
    );
    let answer = in_flight.await.unwrap();
    assert!(answer.is_err(), "the client got an answer: {answer:?}");
    eprintln!("killed with {marked} jobs marked, {left} still marked after the kill");

    // The reaper (every 10 s, for marks older than 2 s) removes every one of them.
    wait_until(
        "the reaper to remove the phantoms",
        Duration::from_secs(40),
        || {
            let store = store.clone();
            async move {
                let marked = store.submissions_in_flight().await.ok()?;
                let listed = store
                    .list(&Default::default(), 10, None)
                    .await
                    .ok()?
                    .jobs
                    .len();
                (marked == 0 && listed == 0).then_some(())
            }
        },
    )
    .await;

    // The client retries with the same key: the key was freed with the phantoms.
    sys.restart_submitter().await;
    let replay = sys
        .http
        .post(format!("{}/v1/jobs/batch", sys.base))
        .header("Idempotency-Key", "crash-batch")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 202);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["jobs"].as_array().unwrap().len(), 1000, "{replay}");
    let listed = store.list(&Default::default(), 1000, None).await.unwrap();
    assert_eq!(listed.jobs.len(), 1000);
    sys.stop().await;
}

/// A batch refused after most of its messages were confirmed into intake (here its last job,
/// a delayed one, cannot be routed) runs none of its jobs: the scheduler holds each job back
/// until its whole submission is confirmed, and the submitter withdraws the refused ones.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_refused_half_way_runs_none_of_its_jobs() {
    let sys = System::start(
        "refused_batch",
        &[WorkerSpec {
            slots: 8,
            ..WorkerSpec::default()
        }],
    )
    .await;
    let store = Store::connect(&redis_url(), sys.ns.ns(), StoreOptions::default())
        .await
        .unwrap();
    let ledger = std::env::temp_dir().join(format!("{}-ledger", sys.ns.ns()));
    let append = |line: &str| json!({"task": "command", "args": {"argv": ["sh", "-c", format!("echo {line} >> {}", ledger.display())]}});
    sys.delete_delay_ladder().await;
    let mut jobs: Vec<Value> = (0..300).map(|_| append("refused")).collect();
    jobs.push(json!({"task": "noop", "delay_s": 60}));
    let refused = sys
        .http
        .post(format!("{}/v1/jobs/batch", sys.base))
        .json(&json!({ "jobs": jobs }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "{:?}", refused.text().await);

    // A job submitted after them runs; by then every refused job was admitted before it
    // (intake is FIFO) and is gone for good: its record was withdrawn.
    let after = sys.submit(append("after")).await;
    sys.wait_state(&after, "succeeded", Duration::from_secs(30))
        .await;
    let ran = std::fs::read_to_string(&ledger).unwrap();
    let _ = std::fs::remove_file(&ledger);
    assert_eq!(ran.trim(), "after", "refused jobs ran: {ran:?}");
    let listed = store.list(&Default::default(), 1000, None).await.unwrap();
    assert_eq!(
        listed
            .jobs
            .iter()
            .map(|j| j.id.to_string())
            .collect::<Vec<_>>(),
        vec![after],
        "refused jobs left records"
    );
    assert_eq!(store.submissions_in_flight().await.unwrap(), 0);
    sys.stop().await;
}
