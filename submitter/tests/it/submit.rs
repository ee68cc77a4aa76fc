use axum::http::{StatusCode, header};
use serde_json::json;
use warren_protocol::JobState;

use crate::support::{Harness, post_json};

#[tokio::test]
async fn accepted_jobs_are_in_redis_and_in_intake() {
    let h = Harness::new("submit_accepted").await;
    let mut request = post_json(
        "/v1/jobs",
        &json!({"task": "sleep", "args": {"ms": 5}, "priority": 7}),
    );
    request
        .headers_mut()
        .insert("x-correlation-id", "it-corr-1".parse().unwrap());
    let reply = h.send(request).await;

    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["state"], "queued");
    // No worker runs in this namespace: accepted, with a warning saying so.
    assert_eq!(
        reply.body["warnings"][0]["code"], "no_live_worker",
        "{reply:#?}"
    );
    assert_eq!(reply.header("location"), format!("/v1/jobs/{id}"));
    assert_eq!(reply.header("x-correlation-id"), "it-corr-1");
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");

    let record = h.store.get(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Queued);
    assert_eq!(record.spec.task, "sleep");
    assert_eq!(record.spec.priority, 7);

    let (envelope, message_id) = h.intake_message().await.expect("the job is in intake");
    assert_eq!(envelope.job_id.to_string(), id);
    assert_eq!(message_id, id);
    assert_eq!(envelope.attempt, 1);
    assert_eq!(envelope.correlation_id.as_deref(), Some("it-corr-1"));
    assert_eq!(envelope.spec, record.spec);
    assert!(h.intake_message().await.is_none(), "exactly one message");
    h.finish().await;
}

#[tokio::test]
async fn generated_correlation_ids_travel_with_the_job() {
    let h = Harness::new("submit_correlation").await;
    let reply = h
        .send(post_json("/v1/jobs", &json!({"task": "noop"})))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let generated = reply.header("x-correlation-id").to_owned();
    assert!(!generated.is_empty());
    let (envelope, _) = h.intake_message().await.unwrap();
    assert_eq!(envelope.correlation_id.as_deref(), Some(generated.as_str()));
    h.finish().await;
}

#[tokio::test]
async fn idempotency_keys_return_the_same_job() {
    let h = Harness::new("submit_idempotent").await;
    let spec = json!({"task": "echo", "args": {"n": 1}});
    let with_key = |spec: &serde_json::Value, key: &'static str| {
        let mut request = post_json("/v1/jobs", spec);
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        request
    };

    let first = h.send(with_key(&spec, "order-42")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:#?}");
    let again = h.send(with_key(&spec, "order-42")).await;
    assert_eq!(again.status, StatusCode::OK, "{again:#?}");
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["state"], "queued");
    assert_eq!(again.header("location"), first.header("location"));
    assert!(h.intake_message().await.is_some());
    assert!(
        h.intake_message().await.is_none(),
        "the replay published nothing"
    );
    assert_eq!(h.count(JobState::Queued).await, 1);

    let other = h
        .send(with_key(
            &json!({"task": "echo", "args": {"n": 2}}),
            "order-42",
        ))
        .await;
    other.problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    assert_eq!(other.body["field"], "Idempotency-Key");

    let bad = h.send(with_key(&spec, "has space")).await;
    bad.problem(StatusCode::BAD_REQUEST, "invalid_header");

    // Once accepted, the key is kept for the result TTL (an hour here), not the short
    // pending TTL it was reserved with.
    let client = redis::Client::open(warren_kit::testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(h.store.keys().idempotency("order-42"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl_ms > 600_000, "kept for long: {ttl_ms} ms");

    // A key held by a submission still in flight: come back shortly.
    let in_flight = warren_protocol::JobId::new();
    let holder = h
        .store
        .reserve_idempotency_key("busy", in_flight, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(holder, None);
    let busy = h.send(with_key(&spec, "busy")).await;
    busy.problem(StatusCode::CONFLICT, "idempotency_key_in_use");
    assert_eq!(busy.header("retry-after"), "2");

    // Another key is another job.
    let fresh = h.send(with_key(&spec, "order-43")).await;
    assert_eq!(fresh.status, StatusCode::ACCEPTED);
    assert_ne!(fresh.body["id"], first.body["id"]);
    h.finish().await;
}

#[tokio::test]
async fn registered_tasks_are_accepted_and_unknown_ones_refused() {
    let h = Harness::new("submit_tasks").await;
    h.store
        .register_tasks(&["reports.render".to_owned()])
        .await
        .unwrap();
    h.submit(&json!({"task": "reports.render", "args": {"page": 1}}))
        .await;

    let reply = h
        .send(post_json("/v1/jobs", &json!({"task": "reports.nope"})))
        .await;
    let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_task");
    assert_eq!(body["field"], "task");
    assert!(reply.detail().contains("reports.nope"), "{reply:#?}");
    h.finish().await;
}
