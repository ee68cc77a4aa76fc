use axum::http::StatusCode;
use serde_json::{Value, json};
use warren_protocol::{Heartbeat, PoolName, WorkerId, WorkerResources, now_ms};
use warren_store::LogStream;

use crate::support::{Harness, get};

#[tokio::test]
async fn get_returns_the_record() {
    let h = Harness::new("reads_get").await;
    let id = h.submit(&json!({"task": "noop", "tenant": "team-a"})).await;
    let reply = h.send(get(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.body["id"], id);
    assert_eq!(reply.body["state"], "queued");
    assert_eq!(reply.body["spec"]["task"], "noop");
    assert_eq!(reply.body["spec"]["tenant"], "team-a");
    assert_eq!(reply.body["attempt"], 1);
    h.finish().await;
}

#[tokio::test]
async fn lists_page_newest_first_with_a_cursor() {
    let h = Harness::new("reads_list").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let tenant = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(h.submit(&json!({"task": "noop", "tenant": tenant})).await);
    }
    ids.reverse(); // newest first

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=2&cursor={c}"),
            None => "/v1/jobs?limit=2".to_owned(),
        };
        let reply = h.send(get(&path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
        let page = reply.body["jobs"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match &reply.body["next_cursor"] {
            Value::Null => break,
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("next_cursor must be a string or null, got {other}"),
        }
    }
    assert_eq!(seen, ids, "every job once, newest first");

    let reply = h.send(get("/v1/jobs?state=queued&tenant=odd")).await;
    let odd: Vec<&str> = reply.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(odd, [ids[1].as_str(), ids[3].as_str()]);
    assert_eq!(reply.body["next_cursor"], Value::Null);
    let reply = h.send(get("/v1/jobs?state=running")).await;
    assert_eq!(reply.body["jobs"], json!([]));

    // The dashboard's filters: task, label, creation time.
    let labelled = h
        .submit(&json!({"task": "echo", "args": {"text": "x"}, "labels": {"env": "prod"}}))
        .await;
    for query in ["task=echo", "label=env=prod", "task=echo&label=env%3Dprod"] {
        let reply = h.send(get(&format!("/v1/jobs?{query}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
        assert_eq!(reply.body["jobs"].as_array().unwrap().len(), 1, "{query}");
        assert_eq!(reply.body["jobs"][0]["id"], labelled, "{query}");
    }
    let later = now_ms() + 60_000;
    let reply = h.send(get(&format!("/v1/jobs?since={later}"))).await;
    assert_eq!(reply.body["jobs"], json!([]), "{reply:#?}");
    let reply = h
        .send(get(&format!("/v1/jobs?until={later}&task=noop")))
        .await;
    assert_eq!(
        reply.body["jobs"].as_array().unwrap().len(),
        5,
        "{reply:#?}"
    );
    h.finish().await;
}

#[tokio::test]
async fn bad_list_queries_are_400() {
    let h = Harness::new("reads_bad_list").await;
    let reply = h.send(get("/v1/jobs?state=done")).await;
    let body = reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(body["field"], "state");
    assert!(
        reply.detail().contains("queued"),
        "it lists the states: {reply:#?}"
    );
    for limit in ["0", "1001", "ten", "-1"] {
        let reply = h.send(get(&format!("/v1/jobs?limit={limit}"))).await;
        let body = reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
        assert_eq!(body["field"], "limit", "{limit}");
    }
    let reply = h.send(get("/v1/jobs?cursor=nope")).await;
    assert_eq!(
        reply.problem(StatusCode::BAD_REQUEST, "invalid_query")["field"],
        "cursor"
    );
    let reply = h.send(get("/v1/jobs?label=env")).await;
    assert_eq!(
        reply.problem(StatusCode::BAD_REQUEST, "invalid_query")["field"],
        "label"
    );
    let reply = h.send(get("/v1/jobs?since=tomorrow")).await;
    assert_eq!(
        reply.problem(StatusCode::BAD_REQUEST, "invalid_query")["field"],
        "since"
    );
    let reply = h.send(get("/v1/jobs?stat=queued")).await;
    reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert!(reply.detail().contains("stat"), "{reply:#?}");
    h.finish().await;
}

#[tokio::test]
async fn logs_page_through_lines() {
    let h = Harness::new("reads_logs").await;
    let id = h.submit(&json!({"task": "noop"})).await;
    let lines: Vec<String> = ["one", "two", "three"].map(String::from).into();
    h.store
        .append_log(id.parse().unwrap(), LogStream::Stdout, &lines)
        .await
        .unwrap();

    let reply = h.send(get(&format!("/v1/jobs/{id}/logs"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.body["lines"].as_array().unwrap().len(), 3);

    let reply = h.send(get(&format!("/v1/jobs/{id}/logs?limit=2"))).await;
    let page = reply.body["lines"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["line"], "one");
    assert_eq!(page[0]["stream"], "stdout");
    let next = reply.body["next"].as_str().unwrap().to_owned();
    assert_eq!(page[1]["id"], next.as_str());

    let reply = h
        .send(get(&format!("/v1/jobs/{id}/logs?after={next}")))
        .await;
    let page = reply.body["lines"].as_array().unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["line"], "three");
    let last = reply.body["next"].as_str().unwrap().to_owned();
    let reply = h
        .send(get(&format!("/v1/jobs/{id}/logs?after={last}")))
        .await;
    assert_eq!(reply.body["lines"], json!([]));
    assert_eq!(
        reply.body["next"],
        last.as_str(),
        "polling resumes from the same place"
    );

    let reply = h
        .send(get(&format!("/v1/jobs/{id}/logs?after=yesterday")))
        .await;
    assert_eq!(
        reply.problem(StatusCode::BAD_REQUEST, "invalid_query")["field"],
        "after"
    );
    let missing = uuid::Uuid::now_v7();
    h.send(get(&format!("/v1/jobs/{missing}/logs")))
        .await
        .problem(StatusCode::NOT_FOUND, "job_not_found");
    h.finish().await;
}

#[tokio::test]
async fn workers_tasks_and_stats() {
    let h = Harness::new("reads_misc").await;
    let worker = WorkerId::generate("it-host");
    let heartbeat = Heartbeat {
        worker_id: worker.clone(),
        pool: PoolName::parse_list("cpu").unwrap(),
        hostname: "it-host".into(),
        slots: 2,
        busy: 0,
        running: vec![],
        resources: WorkerResources::default(),
        allowed_commands: vec![],
        tasks: vec![],
        load1: 0.0,
        interval_ms: 60_000,
        started_at_ms: now_ms(),
        sent_at_ms: now_ms(),
        draining: false,
    };
    h.store.record_heartbeat(&heartbeat).await.unwrap();
    let reply = h.send(get("/v1/workers")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.body["workers"][0]["worker_id"], worker.as_str());

    h.store
        .register_tasks(&["it.task".to_owned()])
        .await
        .unwrap();
    let reply = h.send(get("/v1/tasks")).await;
    let tasks = reply.body["tasks"].as_array().unwrap();
    assert!(tasks.contains(&json!("noop")));
    assert!(tasks.contains(&json!("it.task")));

    h.submit(&json!({"task": "noop"})).await;
    h.submit(&json!({"task": "noop"})).await;
    let reply = h.send(get("/v1/stats")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.body["by_state"]["queued"], 2);
    assert_eq!(reply.body["by_state"]["running"], 0);
    assert_eq!(reply.body["total"], 2);
    h.finish().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let h = Harness::new("reads_health").await;
    let reply = h.send(get("/healthz")).await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::OK, &json!({"status": "ok"}))
    );
    let reply = h.send(get("/readyz")).await;
    assert_eq!(
        (reply.status, &reply.body),
        (
            StatusCode::OK,
            &json!({
                "status": "ready",
                "scheduler": "missing",
                "rabbitmq_node": crate::ready::amqp_parts().1,
            })
        )
    );
    h.finish().await;
}
