//! Cancel and retry from the dashboard.

use axum::http::StatusCode;
use serde_json::{Value, json};
use warren_protocol::JobState::{Cancelled, Failed, Queued, Running, Scheduled, Succeeded};
use warren_protocol::{JobId, JobSpec, now_ms};
use warren_store::NewJob;

use crate::{Harness, within};

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
    assert_eq!(body["code"], "job_finished");
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
    assert_eq!(body["code"], "not_retryable");
    h.finish().await;
}

/// Creates `n` queued jobs of `task` for `tenant`, with `labels`, in one write.
async fn jobs(
    h: &Harness,
    n: usize,
    tenant: &str,
    task: &str,
    labels: &[(&str, &str)],
) -> Vec<JobId> {
    let jobs: Vec<NewJob> = (0..n)
        .map(|_| {
            let mut spec = JobSpec::new(task, serde_json::Value::Null);
            spec.tenant = tenant.to_owned();
            spec.labels = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            NewJob {
                id: JobId::new(),
                spec,
                created_ms: now_ms(),
            }
        })
        .collect();
    within(h.store.create_jobs(&jobs)).await.unwrap();
    jobs.iter().map(|j| j.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_cancel_and_retry_act_on_the_whole_filtered_set_and_are_recorded() {
    let h = Harness::start("dash_bulk").await;
    // More than one batch of the tenant's jobs, some of them running; others to leave alone.
    let queued = jobs(&h, 130, "bulk-a", "noop", &[]).await;
    let running = h.job("bulk-a", "q", &[Scheduled, Running]).await;
    let done = h.job("bulk-a", "q", &[Scheduled, Running, Succeeded]).await;
    let other = jobs(&h, 2, "bulk-b", "noop", &[]).await;

    let ask = |dry_run: bool| json!({"action": "cancel", "filter": {"tenant": "bulk-a"}, "dry_run": dry_run});
    let (status, body) = h.send("POST", "/api/jobs/bulk", &ask(true)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["matched"], 131, "{body}");
    assert_eq!(body["done"], 0);
    let counts = within(h.store.count_by_state()).await.unwrap();
    assert!(
        counts.contains(&(Cancelled, 0)),
        "a dry run changes nothing: {counts:?}"
    );

    let (status, body) = h.send("POST", "/api/jobs/bulk", &ask(false)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["matched"].as_u64(), body["done"].as_u64()),
        (Some(131), Some(131)),
        "{body}"
    );
    assert_eq!(body["truncated"], false);
    let states = within(h.store.states(&queued)).await.unwrap();
    assert!(states.iter().all(|s| *s == Some(Cancelled)), "{states:?}");
    for (id, expected) in [(running, Cancelled), (done, Succeeded), (other[0], Queued)] {
        assert_eq!(
            within(h.store.state(id)).await.unwrap(),
            Some(expected),
            "{id}"
        );
    }
    let record = h.get(&format!("/api/jobs/{running}")).await;
    let action = &record["actions"][0];
    assert_eq!(
        (
            &action["action"],
            &action["by"],
            &action["via"],
            &action["detail"]
        ),
        (
            &json!("cancel"),
            &json!("anonymous"),
            &json!("dashboard"),
            &json!("bulk")
        ),
        "{record}"
    );

    // Retry only what a label picks out.
    let picked = jobs(&h, 2, "bulk-c", "noop", &[("pick", "me")]).await;
    for id in &picked {
        let (status, body) = h.call("POST", &format!("/api/jobs/{id}/cancel")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let retry = json!({"action": "retry", "filter": {"label": "pick=me", "state": "cancelled"}});
    let (status, body) = h.send("POST", "/api/jobs/bulk", &retry).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["matched"].as_u64(), body["done"].as_u64()),
        (Some(2), Some(2)),
        "{body}"
    );
    let record = h.get(&format!("/api/jobs/{}", picked[0])).await;
    let actions = record["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{record}");
    assert_eq!(actions[0]["action"], "cancel");
    assert_eq!(actions[0]["detail"], Value::Null);
    assert_eq!(actions[1]["action"], "retry");
    assert!(
        actions[1]["detail"]
            .as_str()
            .unwrap()
            .starts_with("bulk, as "),
        "{record}"
    );
    let retried = h
        .get(&format!("/api/jobs?label=retry_of={}", picked[0]))
        .await;
    assert_eq!(retried["jobs"].as_array().unwrap().len(), 1, "{retried}");

    let (status, body) = h
        .send(
            "POST",
            "/api/jobs/bulk",
            &json!({"action": "cancel", "filter": {"label": "nokey"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("label"),
        "{body}"
    );
    h.finish().await;
}
