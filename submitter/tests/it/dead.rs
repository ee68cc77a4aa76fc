//! `GET /v1/dead` and `POST /v1/dead/{id}/requeue`: tenant scoping, the admin role, what
//! cannot be requeued; and the 422 of a bad `retry_backoff`.

use axum::http::StatusCode;
use serde_json::json;
use warren_protocol::{JobId, JobState, now_ms};
use warren_store::{DeadLetter, Transition};

use crate::auth::{harness_with_tokens, request};
use crate::support::{Harness, post_json};

const ADMIN: &str = "token-admin";
const A_READ: &str = "token-a-read";
const B_BOTH: &str = "token-b-both";

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_per_tenant_and_requeued_by_admins() {
    let h = harness_with_tokens("submit_dead", |_| {}).await;
    // A job of team-a whose attempts ran out, as the scheduler indexes it.
    let spec =
        json!({"task": "echo", "args": {"text": "hi"}, "tenant": "team-a", "max_attempts": 3});
    let reply = h
        .send(request("POST", "/v1/jobs", Some(ADMIN), Some(&spec)))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
    let id: JobId = reply.body["id"].as_str().unwrap().parse().unwrap();
    let fail = Transition::new(id, JobState::Failed).set("error", "boom");
    h.store.transition(&fail).await.unwrap();
    let dead = DeadLetter {
        id: id.to_string(),
        job_id: Some(id),
        reason: "attempts exhausted (3 of 3): boom".into(),
        dead_ms: now_ms(),
        tenant: Some("team-a".into()),
        task: Some("echo".into()),
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
    h.store.record_dead(&dead).await.unwrap();
    h.store.record_dead(&malformed).await.unwrap();

    let all = h
        .send(request("GET", "/v1/dead?limit=1", Some(ADMIN), None))
        .await;
    assert_eq!(all.status, StatusCode::OK, "{all:#?}");
    assert_eq!(
        all.body["dead"][0]["id"],
        malformed.id.as_str(),
        "newest first"
    );
    let cursor = all.body["next_cursor"].as_str().unwrap().to_owned();
    let next = h
        .send(request(
            "GET",
            &format!("/v1/dead?limit=1&cursor={}", cursor.replace('|', "%7C")),
            Some(ADMIN),
            None,
        ))
        .await;
    assert_eq!(next.body["dead"][0]["id"], dead.id.as_str(), "{next:#?}");
    assert_eq!(next.body["next_cursor"], json!(null));
    let own = h.send(request("GET", "/v1/dead", Some(A_READ), None)).await;
    assert_eq!(own.body["dead"].as_array().unwrap().len(), 1, "{own:#?}");
    assert_eq!(own.body["dead"][0]["reason"], dead.reason.as_str());
    let other = h.send(request("GET", "/v1/dead", Some(B_BOTH), None)).await;
    assert_eq!(other.body["dead"], json!([]), "{other:#?}");
    h.send(request("GET", "/v1/dead?cursor=nope", Some(ADMIN), None))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");

    let path = format!("/v1/dead/{id}/requeue");
    h.send(request("POST", &path, Some(A_READ), None))
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    h.send(request("POST", &path, Some(B_BOTH), None))
        .await
        .problem(StatusCode::NOT_FOUND, "dead_letter_not_found");
    let refused = h
        .send(request(
            "POST",
            &format!("/v1/dead/{}/requeue", malformed.id),
            Some(ADMIN),
            None,
        ))
        .await;
    refused.problem(StatusCode::CONFLICT, "not_requeueable");
    assert!(refused.detail().contains("names no job"), "{refused:#?}");

    let requeued = h.send(request("POST", &path, Some(ADMIN), None)).await;
    assert_eq!(requeued.status, StatusCode::ACCEPTED, "{requeued:#?}");
    assert_eq!(requeued.body["requeued_from"], id.to_string());
    let new: JobId = requeued.body["id"].as_str().unwrap().parse().unwrap();
    let record = h.store.get(new).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempt), (JobState::Queued, 1));
    assert_eq!(record.spec.labels["requeued_from"], id.to_string());
    assert_eq!(
        h.store.get(id).await.unwrap().unwrap().requeued_as,
        Some(new)
    );
    // Its message is in intake (the first one there is the original job's).
    let mut seen = Vec::new();
    while let Some((envelope, _)) = h.intake_message().await {
        seen.push(envelope.job_id);
    }
    assert_eq!(seen, [id, new]);
    h.send(request("POST", &path, Some(ADMIN), None))
        .await
        .problem(StatusCode::NOT_FOUND, "dead_letter_not_found");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_retry_backoff_is_a_422_naming_the_field() {
    let h = Harness::new("submit_backoff").await;
    for (backoff, field) in [
        (
            json!({"strategy": "fixed", "initial_s": 0}),
            "retry_backoff.initial_s",
        ),
        (
            json!({"strategy": "exponential", "initial_s": 10, "max_s": 5}),
            "retry_backoff.max_s",
        ),
    ] {
        let spec = json!({"task": "noop", "max_attempts": 3, "retry_backoff": backoff});
        let reply = h.send(post_json("/v1/jobs", &spec)).await;
        let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(body["field"], field, "{reply:#?}");
    }
    let spec = json!({"task": "noop", "retry_backoff": {"strategy": "linear", "initial_s": 1}});
    let reply = h.send(post_json("/v1/jobs", &spec)).await;
    assert!(reply.status.is_client_error(), "{reply:#?}");
    assert!(reply.detail().contains("unknown variant"), "{reply:#?}");
    let ok = json!({"task": "noop", "max_attempts": 3,
        "retry_backoff": {"strategy": "exponential", "initial_s": 2, "max_s": 60},
        "retry_on": ["exit_code", "oom"]});
    h.submit(&ok).await;
    h.finish().await;
}
