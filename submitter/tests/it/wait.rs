use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use warren_kit::testkit::wait_until;
use warren_protocol::{JobId, JobState, WorkerId};
use warren_store::{ClaimOutcome, Store, Transition, TransitionOutcome};

use crate::support::{Harness, TIMEOUT, call, get};

/// Drives a queued job to `succeeded` the way the scheduler and a worker would.
pub(crate) async fn run_to_success(store: &Store, id: JobId) {
    let worker = WorkerId::generate("it-worker");
    let scheduled = store
        .transition(&Transition::new(id, JobState::Scheduled))
        .await
        .unwrap();
    assert_eq!(scheduled, TransitionOutcome::Done(JobState::Queued));
    start(store, id, &worker).await;
    let done = store
        .transition(
            &Transition::new(id, JobState::Succeeded)
                .by_worker(&worker)
                .set("result", "42"),
        )
        .await
        .unwrap();
    assert_eq!(done, TransitionOutcome::Done(JobState::Running));
}

/// Claims a scheduled job for `worker` (it is `running` afterwards).
pub(crate) async fn start(store: &Store, id: JobId, worker: &WorkerId) {
    let claimed = store
        .claim(id, worker, 1, "cpu", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed, ClaimOutcome::Claimed(JobState::Scheduled));
}

#[tokio::test]
async fn wait_returns_when_the_job_finishes() {
    let h = Harness::new("wait_finish").await;
    let id = h.submit(&json!({"task": "noop"})).await;
    let app = h.app.clone();
    let path = format!("/v1/jobs/{id}/wait?timeout_s=60");
    let waiting = tokio::spawn(async move { call(&app, get(&path)).await });
    // Only finish the job once the request is parked, so the event path is what wakes it.
    wait_until("the wait to register", TIMEOUT, || async {
        (h.state.waiting() == 1).then_some(())
    })
    .await;

    let finished_at = Instant::now();
    run_to_success(&h.store, id.parse().unwrap()).await;
    let reply = tokio::time::timeout(TIMEOUT, waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(
        finished_at.elapsed() < Duration::from_secs(3),
        "woken by the event, not by a periodic re-read: {:?}",
        finished_at.elapsed()
    );
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.header("x-warren-wait"), "terminal");
    assert_eq!(reply.body["state"], "succeeded");
    assert_eq!(reply.body["result"], 42);
    assert_eq!(h.state.waiting(), 0, "the waiter unregistered");

    // A finished job answers at once.
    let reply = h.send(get(&format!("/v1/jobs/{id}/wait"))).await;
    assert_eq!(reply.header("x-warren-wait"), "terminal");
    h.finish().await;
}

#[tokio::test]
async fn wait_times_out_with_the_current_record() {
    let h = Harness::new("wait_timeout").await;
    let id = h.submit(&json!({"task": "noop"})).await;
    let started = Instant::now();
    let reply = h
        .send(get(&format!("/v1/jobs/{id}/wait?timeout_s=1")))
        .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.header("x-warren-wait"), "timeout");
    assert_eq!(reply.body["state"], "queued");
    assert_eq!(h.state.waiting(), 0);

    let reply = h
        .send(get(&format!("/v1/jobs/{id}/wait?timeout_s=0")))
        .await;
    assert_eq!(reply.header("x-warren-wait"), "timeout");
    h.finish().await;
}

#[tokio::test]
async fn abandoned_waits_leave_nothing_behind() {
    let h = Harness::new("wait_abandoned").await;
    let id = h.submit(&json!({"task": "noop"})).await;
    let app = h.app.clone();
    let path = format!("/v1/jobs/{id}/wait?timeout_s=300");
    let waiting = tokio::spawn(async move { call(&app, get(&path)).await });
    wait_until("the wait to register", TIMEOUT, || async {
        (h.state.waiting() == 1).then_some(())
    })
    .await;
    // The client goes away: hyper drops the handler's future.
    waiting.abort();
    wait_until("the waiter to unregister", TIMEOUT, || async {
        (h.state.waiting() == 0).then_some(())
    })
    .await;
    h.finish().await;
}

#[tokio::test]
async fn bad_waits_are_refused() {
    let h = Harness::new("wait_bad").await;
    let missing = uuid::Uuid::now_v7();
    h.send(get(&format!("/v1/jobs/{missing}/wait?timeout_s=1")))
        .await
        .problem(StatusCode::NOT_FOUND, "job_not_found");
    let id = h.submit(&json!({"task": "noop"})).await;
    let reply = h
        .send(get(&format!("/v1/jobs/{id}/wait?timeout_s=301")))
        .await;
    assert_eq!(
        reply.problem(StatusCode::BAD_REQUEST, "invalid_query")["field"],
        "timeout_s"
    );
    assert_eq!(h.state.waiting(), 0);
    h.finish().await;
}
