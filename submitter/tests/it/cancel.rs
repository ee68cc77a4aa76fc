use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use warren_protocol::{JobState, WorkerId};
use warren_store::Transition;
use warren_topology::lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use warren_topology::lapin::types::FieldTable;

use crate::support::{Harness, TIMEOUT, within};
use crate::wait::start;

fn cancel(id: &str) -> Request<Body> {
    Request::post(format!("/v1/jobs/{id}/cancel"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn queued_jobs_cancel_once() {
    let h = Harness::new("cancel_queued").await;
    let id = h.submit(&json!({"task": "noop"})).await;
    let reply = h.send(cancel(&id)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.body["id"], id);
    assert_eq!(reply.body["state"], "cancelled");
    // Recorded in the job's history: who (no tokens here: anonymous) and from where.
    let action = &reply.body["actions"][0];
    assert_eq!(
        (&action["action"], &action["by"], &action["via"]),
        (&json!("cancel"), &json!("anonymous"), &json!("api")),
        "{reply:#?}"
    );
    let stored = h.store.state(id.parse().unwrap()).await.unwrap();
    assert_eq!(stored, Some(JobState::Cancelled));

    let again = h.send(cancel(&id)).await;
    again.problem(StatusCode::CONFLICT, "job_finished");
    assert!(again.detail().contains("cancelled"), "{again:#?}");

    let missing = uuid::Uuid::now_v7().to_string();
    h.send(cancel(&missing))
        .await
        .problem(StatusCode::NOT_FOUND, "job_not_found");
    h.send(cancel("nope"))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_job_id");
    h.finish().await;
}

#[tokio::test]
async fn running_jobs_are_killed_through_the_control_exchange() {
    let h = Harness::new("cancel_running").await;
    // Listen like a worker does.
    let queue = tokio::time::timeout(
        TIMEOUT,
        h.channel.queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::timeout(
        TIMEOUT,
        h.channel.queue_bind(
            queue.name().clone(),
            h.topology.control_exchange().as_str().into(),
            "job.cancel".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap()
    .unwrap();

    let id = h
        .submit(&json!({"task": "sleep", "args": {"ms": 60000}}))
        .await;
    let job = id.parse().unwrap();
    h.store
        .transition(&Transition::new(job, JobState::Scheduled))
        .await
        .unwrap();
    start(&h.store, job, &WorkerId::generate("it-worker")).await;

    let reply = h.send(cancel(&id)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.body["state"], "cancelled");

    let message = warren_kit::testkit::wait_until("the cancel command", TIMEOUT, || async {
        within(
            h.channel
                .basic_get(queue.name().clone(), BasicGetOptions { no_ack: true }),
        )
        .await
        .unwrap()
    })
    .await;
    let body: Value = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(body, json!({"job_id": id}));
    h.finish().await;
}
