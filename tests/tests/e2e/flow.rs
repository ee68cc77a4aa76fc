use std::time::Duration;

use serde_json::json;

use crate::harness::{System, WorkerSpec, spec};

#[tokio::test(flavor = "multi_thread")]
async fn jobs_flow_from_http_to_a_result_in_redis() {
    let sys = System::start("flow", &[WorkerSpec::default()]).await;

    let id = sys.submit(spec("echo", json!({"hello": "world"}))).await;
    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"], json!({"hello": "world"}));
    assert_eq!(job["pool"], "cpu");
    assert!(job["worker"].as_str().is_some_and(|w| !w.is_empty()));
    for state in ["queued", "running", "succeeded"] {
        assert!(
            job["timestamps"][state].as_u64().is_some(),
            "no {state} time: {job}"
        );
    }

    // A batch keeps its order and every job finishes.
    let response = sys
        .http
        .post(format!("{}/v1/jobs/batch", sys.base))
        .json(&json!({"jobs": [spec("noop", json!(null)), spec("sleep", json!({"ms": 10})), spec("sha256", json!({"bytes": 1000}))]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let ids: Vec<String> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert_eq!(sys.wait_done(id).await["state"], "succeeded");
    }
    let sha = sys.job(&ids[2]).await;
    assert_eq!(sha["result"]["bytes"], 1000);
    assert_eq!(sha["result"]["sha256"].as_str().unwrap().len(), 64);

    // Bad input never reaches the queue.
    let bad = sys
        .http
        .post(format!("{}/v1/jobs", sys.base))
        .json(&json!({"task": "noop", "priority": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    assert_eq!(
        bad.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_attempts_retry_through_the_delay_ladder() {
    let sys = System::start("retry", &[WorkerSpec::default()]).await;
    let id = sys
        .submit(json!({"task": "fail", "args": {"message": "boom"}, "max_attempts": 2}))
        .await;
    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["error"], "boom");
    assert!(
        job["timestamps"]["retrying"].as_u64().is_some(),
        "never went through retrying: {job}"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_worker_finishes_its_job_then_exits_cleanly() {
    let mut sys = System::start("drain", &[WorkerSpec::default()]).await;
    let id = sys.submit(spec("sleep", json!({"ms": 1500}))).await;
    sys.wait_state(&id, "running", Duration::from_secs(20))
        .await;
    let code = sys.stop_worker(0).await;
    assert_eq!(code, Some(0));
    let job = sys.job(&id).await;
    assert_eq!(
        job["state"], "succeeded",
        "the drain must let the job finish: {job}"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_outlasting_the_drain_grace_is_requeued_and_runs_elsewhere() {
    let short_grace = WorkerSpec {
        slots: 1,
        grace: "500ms",
        ..WorkerSpec::default()
    };
    let mut sys = System::start("requeue", std::slice::from_ref(&short_grace)).await;
    let id = sys.submit(spec("sleep", json!({"ms": 3000}))).await;
    let running = sys
        .wait_state(&id, "running", Duration::from_secs(20))
        .await;
    sys.add_worker(&WorkerSpec::default()).await;
    assert_eq!(
        sys.stop_worker(0).await,
        Some(0),
        "a drain that requeues still exits 0"
    );
    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_ne!(
        job["worker"], running["worker"],
        "it must have run on the other worker"
    );
    assert_eq!(
        job["attempt"], 1,
        "a requeue on shutdown is not a failed attempt"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_running_command_kills_it() {
    let sys = System::start("cancel", &[WorkerSpec::default()]).await;
    let id = sys
        .submit(json!({"task": "command", "args": {"argv": ["sleep", "30"]}}))
        .await;
    sys.wait_state(&id, "running", Duration::from_secs(20))
        .await;
    let response = sys
        .http
        .post(format!("{}/v1/jobs/{id}/cancel", sys.base))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "cancelled");
    // The worker is free again: a new job runs at once.
    let next = sys.submit(spec("noop", json!(null))).await;
    assert_eq!(sys.wait_done(&next).await["state"], "succeeded");
    sys.stop().await;
}
