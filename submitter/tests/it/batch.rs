use axum::http::StatusCode;
use serde_json::{Value, json};
use warren_protocol::JobState;

use crate::support::{Harness, post_json};

#[tokio::test]
async fn batches_answer_in_order_and_publish_everything() {
    let h = Harness::new("batch_order").await;
    let specs: Vec<Value> = (0..5)
        .map(|i| json!({"task": "echo", "args": {"i": i}, "labels": {"i": i.to_string()}}))
        .collect();
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"jobs": specs})))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
    let jobs = reply.body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 5);
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(job["state"], "queued");
        let id = job["id"].as_str().unwrap().parse().unwrap();
        let record = h.store.get(id).await.unwrap().unwrap();
        assert_eq!(
            record.spec.labels["i"],
            i.to_string(),
            "answers are in order"
        );
    }
    for job in jobs {
        let (envelope, _) = h.intake_message().await.expect("every job is published");
        assert_eq!(envelope.job_id.to_string(), job["id"].as_str().unwrap());
    }
    assert!(h.intake_message().await.is_none());
    h.finish().await;
}

#[tokio::test]
async fn one_bad_spec_refuses_the_whole_batch() {
    let h = Harness::new("batch_invalid").await;
    let jobs = json!([{"task": "noop"}, {"task": "noop"}, {"task": "noop"}, {"task": "noop", "priority": 10}]);
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"jobs": jobs})))
        .await;
    let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(body["field"], "jobs[3].priority");
    assert!(reply.detail().starts_with("jobs[3].priority"), "{reply:#?}");

    let jobs = json!([{"task": "noop"}, {"task": "noop", "requires": {"tags": ["ok", "Bad"]}}]);
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"jobs": jobs})))
        .await;
    let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(body["field"], "jobs[1].requires.tags[1]");

    let jobs = json!([{"task": "noop"}, {"task": "nobody-runs-this"}]);
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"jobs": jobs})))
        .await;
    let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_task");
    assert_eq!(body["field"], "jobs[1].task");

    assert_eq!(h.count(JobState::Queued).await, 0, "nothing was stored");
    assert!(h.intake_message().await.is_none(), "nothing was published");
    h.finish().await;
}

#[tokio::test]
async fn batch_sizes_and_shapes_are_checked() {
    let h = Harness::new("batch_limits").await;
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"jobs": []})))
        .await;
    let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "empty_batch");
    assert_eq!(body["field"], "jobs");

    let many: Vec<Value> = (0..1001).map(|_| json!({"task": "noop"})).collect();
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"jobs": many})))
        .await;
    reply.problem(StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large");
    assert!(reply.detail().contains("1000"), "{reply:#?}");

    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"task": "noop"})))
        .await;
    let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(body["field"], "task");
    assert!(reply.detail().contains("expected `jobs`"), "{reply:#?}");
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!([{"task": "noop"}])))
        .await;
    reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let reply = h
        .send(post_json(
            "/v1/jobs/batch",
            &json!({"jobs": [{"task": "noop"}, "noop"]}),
        ))
        .await;
    let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(body["field"], "jobs[1]");
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"jobs": 5})))
        .await;
    let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(body["field"], "jobs");

    let max: Vec<Value> = (0..1000).map(|_| json!({"task": "noop"})).collect();
    let reply = h
        .send(post_json("/v1/jobs/batch", &json!({"jobs": max})))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::ACCEPTED,
        "1000 is allowed: {reply:#?}"
    );
    assert_eq!(h.count(JobState::Queued).await, 1000);
    h.finish().await;
}

/// Issue 6, item 5: a client whose batch got no answer sends it again with the same
/// `Idempotency-Key` and gets the same jobs, with nothing published twice; other jobs under
/// that key are refused.
#[tokio::test]
async fn batch_idempotency_keys_return_the_same_batch() {
    let h = Harness::new("batch_idempotent").await;
    let with_key = |body: &Value, key: &'static str| {
        let mut request = post_json("/v1/jobs/batch", body);
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        request
    };
    let batch =
        json!({"jobs": [{"task": "echo", "args": {"i": 1}}, {"task": "echo", "args": {"i": 2}}]});

    let first = h.send(with_key(&batch, "batch-7")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:#?}");
    let again = h.send(with_key(&batch, "batch-7")).await;
    assert_eq!(again.status, StatusCode::OK, "{again:#?}");
    let ids = |reply: &crate::support::Reply| -> Vec<String> {
        reply.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&again), ids(&first), "the same jobs, in the same order");
    assert_eq!(again.body["jobs"][0]["state"], "queued");
    assert!(h.intake_message().await.is_some());
    assert!(h.intake_message().await.is_some());
    assert!(
        h.intake_message().await.is_none(),
        "the replay published nothing"
    );
    assert_eq!(h.count(JobState::Queued).await, 2);

    // Other jobs, fewer jobs, or the same jobs in another order: not the same batch.
    let other =
        json!({"jobs": [{"task": "echo", "args": {"i": 1}}, {"task": "echo", "args": {"i": 3}}]});
    let fewer = json!({"jobs": [{"task": "echo", "args": {"i": 1}}]});
    let swapped =
        json!({"jobs": [{"task": "echo", "args": {"i": 2}}, {"task": "echo", "args": {"i": 1}}]});
    for body in [other, fewer, swapped] {
        let reply = h.send(with_key(&body, "batch-7")).await;
        let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
        assert_eq!(problem["field"], "Idempotency-Key");
    }

    // Another key is another batch.
    let fresh = h.send(with_key(&batch, "batch-8")).await;
    assert_eq!(fresh.status, StatusCode::ACCEPTED);
    assert_ne!(ids(&fresh), ids(&first));
    assert_eq!(h.count(JobState::Queued).await, 4);
    h.finish().await;
}
