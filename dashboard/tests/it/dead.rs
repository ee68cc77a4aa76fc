//! The dead-letter view's API: a page at a time, per tenant, and the requeue (admin only,
//! recorded in the dead job's timeline).

use axum::http::StatusCode;
use serde_json::json;
use warren_protocol::JobState::Failed;
use warren_protocol::{JobId, now_ms};
use warren_store::DeadLetter;

use crate::auth::{A_READ, A_SUBMIT, ADMIN, B_BOTH, assert_problem};
use crate::{Harness, within};

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_per_tenant_and_requeued_by_admins() {
    let h = Harness::start_with_tokens("dash_dead").await;
    // A team-a job whose attempts ran out, indexed as the scheduler indexes it, and a
    // malformed message that names no job.
    let id = h.job("team-a", "q", &[Failed]).await;
    let dead = DeadLetter {
        id: id.to_string(),
        job_id: Some(id),
        reason: "attempts exhausted (3 of 3): boom".into(),
        dead_ms: now_ms(),
        tenant: Some("team-a".into()),
        task: Some("noop".into()),
        attempt: Some(3),
        requeueable: true,
    };
    let malformed = DeadLetter {
        id: JobId::new().to_string(),
        job_id: None,
        reason: "malformed job message: expected value".into(),
        dead_ms: now_ms() + 1,
        tenant: None,
        task: None,
        attempt: None,
        requeueable: false,
    };
    within(h.store.record_dead(&dead)).await.unwrap();
    within(h.store.record_dead(&malformed)).await.unwrap();

    let (status, _, first) = h
        .call_as("GET", "/api/dead?limit=1", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        first["dead"][0]["id"],
        malformed.id.as_str(),
        "newest first"
    );
    let cursor = first["next_cursor"].as_str().unwrap().replace('|', "%7C");
    let (_, _, next) = h
        .call_as(
            "GET",
            &format!("/api/dead?limit=1&cursor={cursor}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(next["dead"][0]["reason"], dead.reason.as_str(), "{next}");
    assert_eq!(next["next_cursor"], json!(null));
    let reply = h
        .call_as("GET", "/api/dead?cursor=nope", Some(ADMIN), None)
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_query");
    let reply = h
        .call_as("GET", "/api/dead?limit=0", Some(ADMIN), None)
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_query");
    let (_, _, own) = h.call_as("GET", "/api/dead", Some(A_READ), None).await;
    assert_eq!(own["dead"].as_array().unwrap().len(), 1, "{own}");
    let (_, _, other) = h.call_as("GET", "/api/dead", Some(B_BOTH), None).await;
    assert_eq!(other["dead"], json!([]), "{other}");

    let requeue = format!("/api/dead/{id}/requeue");
    let reply = h.call_as("POST", &requeue, Some(B_BOTH), None).await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "dead_letter_not_found");
    let reply = h.call_as("POST", &requeue, Some(A_SUBMIT), None).await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = h
        .call_as(
            "POST",
            &format!("/api/dead/{}/requeue", malformed.id),
            Some(ADMIN),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "not_requeueable");

    let (status, _, body) = h.call_as("POST", &requeue, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["requeued_from"], id.to_string());
    let new_id: JobId = body["id"].as_str().unwrap().parse().unwrap();
    let new = within(h.store.get(new_id)).await.unwrap().unwrap();
    assert_eq!(new.spec.labels["requeued_from"], id.to_string());
    let old = within(h.store.get(id)).await.unwrap().unwrap();
    let action = old.actions.last().unwrap();
    assert_eq!(
        (
            action.action.as_str(),
            action.by.as_str(),
            action.via.as_str()
        ),
        ("requeue", "admin", "dashboard")
    );
    assert_eq!(action.detail, Some(format!("as {new_id}")));
    let (_, _, left) = h.call_as("GET", "/api/dead", Some(ADMIN), None).await;
    assert_eq!(
        left["dead"].as_array().unwrap().len(),
        1,
        "the requeued one left: {left}"
    );
    let reply = h.call_as("POST", &requeue, Some(ADMIN), None).await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "dead_letter_not_found");
    h.finish().await;
}
