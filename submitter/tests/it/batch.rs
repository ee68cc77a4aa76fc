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
