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

/// `POST /v1/jobs/{id}/retry` runs a cancelled (or failed, timed-out) job again with its
/// spec, as a new job through the same path as a submit; the old job keeps its outcome.
#[tokio::test]
async fn a_cancelled_job_is_retried_as_a_new_job_with_its_spec() {
    let h = Harness::new("retry_cancelled").await;
    let retry = |id: &str| {
        Request::post(format!("/v1/jobs/{id}/retry"))
            .body(Body::empty())
            .unwrap()
    };
    let id = h
        .submit(&json!({"task": "echo", "args": {"n": 7}, "labels": {"batch": "b1"}}))
        .await;
    // Not finished yet: nothing to retry.
    h.send(retry(&id))
        .await
        .problem(StatusCode::CONFLICT, "not_retryable");
    let (first, _) = h.intake_message().await.expect("the job's intake message");
    assert_eq!(first.job_id.to_string(), id);
    assert_eq!(h.send(cancel(&id)).await.status, StatusCode::OK);

    let reply = h.send(retry(&id)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
    assert_eq!(reply.body["retry_of"], id);
    let new_id = reply.body["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    // Published like a submit, with the stored spec and a label naming the old job.
    let (again, _) = h
        .intake_message()
        .await
        .expect("the retry's intake message");
    assert_eq!(again.job_id.to_string(), new_id);
    assert_eq!(again.spec.args, json!({"n": 7}));
    assert_eq!(
        again.spec.labels.get("batch").map(String::as_str),
        Some("b1")
    );
    assert_eq!(
        again.spec.labels.get("retry_of").map(String::as_str),
        Some(id.as_str())
    );
    let old = h.send(crate::support::get(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(
        old.body["state"], "cancelled",
        "the old job keeps its outcome"
    );
    let action = &old.body["actions"][1];
    assert_eq!(
        (&action["action"], &action["detail"]),
        (&json!("retry"), &json!(format!("as {new_id}"))),
        "{old:#?}"
    );
    assert_eq!(h.count(JobState::Queued).await, 1, "only the new job waits");

    let missing = uuid::Uuid::now_v7().to_string();
    h.send(retry(&missing))
        .await
        .problem(StatusCode::NOT_FOUND, "job_not_found");
    h.finish().await;
}
