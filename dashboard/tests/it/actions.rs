//! Cancel and retry from the dashboard.

use axum::http::StatusCode;
use warren_protocol::JobState::{Failed, Running, Scheduled, Succeeded};

use crate::Harness;

#[tokio::test(flavor = "multi_thread")]
async fn cancel_moves_unfinished_jobs_only() {
    let h = Harness::start("dash_cancel").await;
    let queued = h.job("t", "q", &[]).await;
    let running = h.job("t", "q", &[Scheduled, Running]).await;
    let done = h.job("t", "q", &[Scheduled, Running, Succeeded]).await;

    for id in [queued, running] {
        let (status, body) = h.call("POST", &format!("/api/jobs/{id}/cancel")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "cancelled");
    }
    let (status, body) = h.call("POST", &format!("/api/jobs/{done}/cancel")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "job_finished");
    let missing = warren_protocol::JobId::new();
    let (status, _) = h.call("POST", &format!("/api/jobs/{missing}/cancel")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_submits_a_failed_job_again() {
    let h = Harness::start("dash_retry").await;
    let failed = h.job("t", "q", &[Failed]).await;
    let (status, body) = h.call("POST", &format!("/api/jobs/{failed}/retry")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["retry_of"], failed.to_string());
    let new_id = body["id"].as_str().unwrap();
    let job = h.get(&format!("/api/jobs/{new_id}")).await;
    assert_eq!(job["state"], "queued");
    assert_eq!(job["spec"]["labels"]["retry_of"], failed.to_string());
    // The old job keeps its outcome.
    let old = h.get(&format!("/api/jobs/{failed}")).await;
    assert_eq!(old["state"], "failed");

    let running = h.job("t", "q", &[Scheduled, Running]).await;
    let (status, body) = h.call("POST", &format!("/api/jobs/{running}/retry")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "not_retryable");
    h.finish().await;
}
