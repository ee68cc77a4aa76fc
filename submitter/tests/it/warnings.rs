//! A 202 carries `warnings` when no live worker could run the job at the time of submit; it
//! is accepted all the same.

use axum::http::StatusCode;
use serde_json::{Value, json};
use warren_protocol::{Heartbeat, now_ms};

use crate::support::{Harness, post_json};

/// A live `cpu` worker that admits `echo` and has the task `render`.
fn cpu_worker() -> Heartbeat {
    serde_json::from_value(json!({
        "worker_id": "warnings-w1",
        "pool": "cpu",
        "hostname": "h",
        "slots": 2,
        "busy": 0,
        "resources": {"cpu": 2, "mem_mb": 1024, "gpus": 0},
        "allowed_commands": ["echo"],
        "tasks": ["render"],
        "interval_ms": 60_000,
        "started_at_ms": now_ms(),
        "sent_at_ms": now_ms(),
    }))
    .unwrap()
}

async fn warnings_of(h: &Harness, spec: Value) -> Value {
    let reply = h.send(post_json("/v1/jobs", &spec)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
    reply.body.get("warnings").cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn jobs_no_live_worker_can_run_are_accepted_with_a_warning() {
    let h = Harness::new("warnings").await;
    h.store.record_heartbeat(&cpu_worker()).await.unwrap();
    h.store
        .register_tasks(&["render".to_owned()])
        .await
        .unwrap();

    assert_eq!(warnings_of(&h, json!({"task": "noop"})).await, Value::Null);
    assert_eq!(
        warnings_of(
            &h,
            json!({"task": "command", "args": {"argv": ["echo", "hi"]}})
        )
        .await,
        Value::Null
    );
    assert_eq!(
        warnings_of(&h, json!({"task": "render"})).await,
        Value::Null
    );

    let tags = warnings_of(&h, json!({"task": "noop", "requires": {"tags": ["gpu"]}})).await;
    assert_eq!(tags[0]["code"], "no_live_worker");
    assert!(
        tags[0]["message"].as_str().unwrap().contains("gpu"),
        "{tags}"
    );

    let program = warnings_of(
        &h,
        json!({"task": "command", "args": {"argv": ["rm", "-rf", "/tmp/x"]}}),
    )
    .await;
    assert!(
        program[0]["message"].as_str().unwrap().contains("\"rm\""),
        "{program}"
    );

    let batch = h
        .send(post_json(
            "/v1/jobs/batch",
            &json!({"jobs": [{"task": "noop"}, {"task": "noop", "requires": {"gpus": 1}}]}),
        ))
        .await;
    assert_eq!(batch.status, StatusCode::ACCEPTED, "{batch:#?}");
    assert!(
        batch.body["jobs"][0].get("warnings").is_none(),
        "{batch:#?}"
    );
    assert_eq!(
        batch.body["jobs"][1]["warnings"][0]["code"],
        "no_live_worker"
    );
    h.finish().await;
}
