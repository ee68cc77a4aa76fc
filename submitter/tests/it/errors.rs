//! Every client error is problem+json with a status, a code and a detail that says what to fix.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use warren_protocol::JobState;

use crate::support::{Harness, get, post_json};

fn raw_post(content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post("/v1/jobs");
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(body.into()).unwrap()
}

#[tokio::test]
async fn invalid_specs_are_refused_with_the_field_to_fix() {
    let h = Harness::new("errors_specs").await;
    // (spec, code, field, a word the detail must contain)
    let cases: Vec<(Value, &str, Option<&str>, &str)> = vec![
        (
            json!({"task": "noop", "priorty": 3}),
            "invalid_field",
            Some("priorty"),
            "unknown field",
        ),
        (
            json!({"task": "noop", "priority": 10}),
            "invalid_field",
            Some("priority"),
            "0 to 9",
        ),
        (
            json!({"task": "noop", "priority": 300}),
            "invalid_field",
            Some("priority"),
            "u8",
        ),
        (
            json!({"task": "noop", "priority": "high"}),
            "invalid_field",
            Some("priority"),
            "string",
        ),
        (
            json!({"task": "noop", "requires": {"tags": [""]}}),
            "invalid_field",
            Some("requires.tags[0]"),
            "empty",
        ),
        (
            json!({"task": "noop", "requires": {"tags": ["gpu", "GPU"]}}),
            "invalid_field",
            Some("requires.tags[1]"),
            "malformed",
        ),
        (
            json!({"task": "noop", "requires": {"disk": 1}}),
            "invalid_field",
            Some("requires.disk"),
            "unknown field",
        ),
        (
            json!({"task": "sleep"}),
            "invalid_field",
            Some("args"),
            "ms",
        ),
        (
            json!({"task": "sleep", "args": {"seconds": 1}}),
            "invalid_field",
            Some("args"),
            "seconds",
        ),
        (
            json!({"task": "command", "args": {"argv": []}}),
            "invalid_field",
            Some("args.argv"),
            "program",
        ),
        (
            json!({"task": "noop", "timeout_s": 0}),
            "invalid_field",
            Some("timeout_s"),
            "seconds",
        ),
        (
            json!({"task": "noop", "tenant": "a b"}),
            "invalid_field",
            Some("tenant"),
            "letters",
        ),
        (
            json!({"task": "bad name"}),
            "invalid_field",
            Some("task"),
            "characters",
        ),
        (
            json!({"task": "no-such-task"}),
            "unknown_task",
            Some("task"),
            "no-such-task",
        ),
        (json!({"args": {}}), "invalid_body", None, "task"),
        (json!([1, 2]), "invalid_body", None, "JSON object"),
        (json!("noop"), "invalid_body", None, "JSON object"),
    ];
    for (spec, code, field, word) in cases {
        let reply = h.send(post_json("/v1/jobs", &spec)).await;
        let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, code);
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{spec}: {reply:#?}");
        }
        assert!(
            reply.detail().contains(word),
            "{spec}: detail should mention {word:?}: {reply:#?}"
        );
    }
    assert_eq!(h.count(JobState::Queued).await, 0, "nothing was accepted");
    assert!(h.intake_message().await.is_none(), "nothing was published");
    h.finish().await;
}

#[tokio::test]
async fn unknown_fields_are_named_in_the_detail() {
    let h = Harness::new("errors_unknown_field").await;
    let reply = h
        .send(post_json(
            "/v1/jobs",
            &json!({"task": "noop", "priorty": 3}),
        ))
        .await;
    reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert!(
        reply.detail().contains("unknown field `priorty`"),
        "{reply:#?}"
    );
    assert!(
        reply.detail().contains("priority"),
        "it lists the valid names: {reply:#?}"
    );
    h.finish().await;
}

#[tokio::test]
async fn broken_bodies_and_content_types() {
    let h = Harness::new("errors_bodies").await;
    let reply = h
        .send(raw_post(Some("application/json"), "{\"task\": "))
        .await;
    reply.problem(StatusCode::BAD_REQUEST, "malformed_json");
    let reply = h
        .send(raw_post(Some("application/json"), "{\"task\": 'noop'}"))
        .await;
    reply.problem(StatusCode::BAD_REQUEST, "malformed_json");
    assert!(reply.detail().contains("line 1"), "{reply:#?}");
    let reply = h.send(raw_post(Some("application/json"), "")).await;
    reply.problem(StatusCode::BAD_REQUEST, "malformed_json");

    let reply = h.send(raw_post(None, "{\"task\": \"noop\"}")).await;
    reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(reply.detail().contains("application/json"), "{reply:#?}");
    let reply = h
        .send(raw_post(Some("text/plain"), "{\"task\": \"noop\"}"))
        .await;
    reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let reply = h
        .send(raw_post(
            Some("application/json; charset=utf-8"),
            "{\"task\": \"noop\"}",
        ))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
    h.finish().await;
}

#[tokio::test]
async fn too_deep_bodies_are_json_too_deep_and_say_the_limit() {
    let h = Harness::new("errors_too_deep").await;
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    // 64 levels of arrays and objects are read; the 65th is refused.
    let spec = format!(r#"{{"task": "noop", "args": {{"x": {}}}}}"#, deep(62));
    let reply = h.send(raw_post(Some("application/json"), spec)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
    assert!(h.intake_message().await.is_some());
    let bodies = [
        (
            "/v1/jobs",
            format!(r#"{{"task": "noop", "args": {{"x": {}}}}}"#, deep(126)),
        ),
        ("/v1/jobs", deep(200_000)),
        (
            "/v1/jobs/batch",
            format!(r#"{{"jobs": [{{"task": "noop", "args": {}}}]}}"#, deep(500)),
        ),
    ];
    for (path, body) in bodies {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let reply = h.send(request).await;
        reply.problem(StatusCode::BAD_REQUEST, "json_too_deep");
        assert!(
            reply.detail().contains("deeper than 64 levels"),
            "{reply:#?}"
        );
    }
    assert!(
        h.intake_message().await.is_none(),
        "a refused body was published"
    );
    h.finish().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let h = Harness::new("errors_too_large").await;
    let big = json!({"task": "echo", "args": {"blob": "x".repeat(1024 * 1024 + 1)}}).to_string();
    // Streamed without a length: the extractor notices while reading.
    let reply = h
        .send(raw_post(Some("application/json"), big.clone()))
        .await;
    reply.problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert!(reply.detail().contains("1048576"), "{reply:#?}");
    // Declared up front: refused before reading, still as a problem.
    let request = Request::post("/v1/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big))
        .unwrap();
    h.send(request)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    h.finish().await;
}

#[tokio::test]
async fn routes_methods_ids_and_headers() {
    let h = Harness::new("errors_routes").await;
    h.send(get("/v2/nothing"))
        .await
        .problem(StatusCode::NOT_FOUND, "route_not_found");
    let reply = h
        .send(Request::delete("/v1/jobs").body(Body::empty()).unwrap())
        .await;
    reply.problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert!(reply.header("allow").contains("POST"), "{reply:#?}");
    assert!(reply.header("allow").contains("GET"), "{reply:#?}");

    let reply = h.send(get("/v1/jobs/not-a-uuid")).await;
    let body = reply.problem(StatusCode::BAD_REQUEST, "invalid_job_id");
    assert_eq!(body["field"], "id");
    let missing = uuid::Uuid::now_v7();
    let reply = h.send(get(&format!("/v1/jobs/{missing}"))).await;
    reply.problem(StatusCode::NOT_FOUND, "job_not_found");
    assert!(reply.detail().contains(&missing.to_string()));

    let mut request = post_json("/v1/jobs", &json!({"task": "noop"}));
    request
        .headers_mut()
        .insert("x-correlation-id", "has space".parse().unwrap());
    h.send(request)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_header");
    h.finish().await;
}
