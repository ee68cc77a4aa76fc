//! The read API: overview, jobs (filters, pages), job detail, workers, scheduler, series,
//! metrics, assets.

use std::time::Duration;

use axum::http::StatusCode;
use redis::AsyncCommands as _;
use warren_kit::testkit::{redis_url, wait_until};
use warren_protocol::JobState::{Cancelled, Failed, Running, Scheduled, Succeeded};
use warren_protocol::{Heartbeat, PoolName, WorkerId, WorkerResources, now_ms};
use warren_store::{CounterSample, Resolution};

use crate::{Harness, within};

pub(crate) fn heartbeat(id: &str, interval_ms: u64, busy: u32) -> Heartbeat {
    Heartbeat {
        worker_id: WorkerId::from_raw(id),
        pool: PoolName::parse_list("cpu").unwrap(),
        hostname: "host".into(),
        slots: 4,
        busy,
        running: Vec::new(),
        resources: WorkerResources {
            cpu: 2,
            mem_mb: 512,
            gpus: 0,
        },
        allowed_commands: Vec::new(),
        tasks: Vec::new(),
        load1: 0.5,
        interval_ms,
        started_at_ms: now_ms(),
        sent_at_ms: now_ms(),
        draining: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn overview_counts_match_redis() {
    let h = Harness::start("dash_overview").await;
    h.job("a", "q", &[]).await;
    h.job("a", "q", &[Scheduled, Running]).await;
    h.job("b", "q", &[Scheduled, Running, Succeeded]).await;
    h.job("b", "q", &[Failed]).await;
    within(h.store.record_heartbeat(&heartbeat("w-live", 60_000, 3)))
        .await
        .unwrap();

    let overview = h.get("/api/overview").await;
    for (state, count) in within(h.store.count_by_state()).await.unwrap() {
        assert_eq!(
            overview["counts"][state.as_str()].as_u64(),
            Some(count),
            "{state}: {overview}"
        );
    }
    assert_eq!(overview["counts"]["running"], 1);
    assert_eq!(overview["finished"]["succeeded"], 1);
    assert_eq!(overview["finished"]["failed"], 1);
    assert_eq!(overview["workers"]["live"], 1);
    assert_eq!(overview["workers"]["busy"], 3);
    assert_eq!(overview["workers"]["free"], 1);
    assert_eq!(overview["pools"][0]["pool"], "cpu");
    // Percentiles over the one succeeded job.
    assert_eq!(overview["latency"]["jobs"], 1, "{overview}");
    assert!(overview["latency"]["run_p95_ms"].is_u64(), "{overview}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_listed_filtered_and_paged() {
    let h = Harness::start("dash_jobs").await;
    let mut alice = Vec::new();
    for _ in 0..5 {
        alice.push(h.job("alice", "q1", &[]).await);
    }
    let bob = h.job("bob", "q2", &[Cancelled]).await;

    let all = h.get("/api/jobs").await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 6);
    // Newest first.
    assert_eq!(all["jobs"][0]["id"], bob.to_string());

    let cancelled = h.get("/api/jobs?state=cancelled").await;
    assert_eq!(cancelled["jobs"].as_array().unwrap().len(), 1);
    let by_queue = h.get("/api/jobs?queue=q2").await;
    assert_eq!(by_queue["jobs"][0]["id"], bob.to_string());

    let first = h.get("/api/jobs?tenant=alice&limit=3").await;
    let ids: Vec<&str> = first["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = h
        .get(&format!("/api/jobs?tenant=alice&limit=3&cursor={cursor}"))
        .await;
    assert_eq!(second["jobs"].as_array().unwrap().len(), 2);
    assert!(second.get("next_cursor").is_none(), "{second}");
    assert_eq!(second["jobs"][1]["id"], alice[0].to_string());

    // Task, label and time filters (each read from an index).
    let count = |v: &serde_json::Value| v["jobs"].as_array().unwrap().len();
    assert_eq!(count(&h.get("/api/jobs?task=noop").await), 6);
    assert_eq!(count(&h.get("/api/jobs?task=echo&tenant=alice").await), 0);
    let later = warren_protocol::now_ms() + 60_000;
    assert_eq!(count(&h.get(&format!("/api/jobs?since={later}")).await), 0);
    assert_eq!(
        count(&h.get(&format!("/api/jobs?until={later}&tenant=bob")).await),
        1
    );
    assert_eq!(
        count(&h.get("/api/jobs?since=2020-01-01T00:00:00Z").await),
        6
    );
    assert_eq!(count(&h.get("/api/jobs?label=env%3Dprod").await), 0);
    for bad in ["label=env", "since=soon", "tag=%20"] {
        let (status, body) = h.call("GET", &format!("/api/jobs?{bad}")).await;
        let expected = if bad == "tag=%20" {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, expected, "{bad}: {body}");
    }

    let (status, body) = h.call("GET", "/api/jobs?state=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_query");
    let (status, _) = h.call("GET", "/api/jobs?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A malformed query string answers in the API's shape too.
    let (status, body) = h.call("GET", "/api/jobs?state=a&state=b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_query", "{body}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn job_detail_has_spec_timestamps_and_reason() {
    let h = Harness::start("dash_job").await;
    let id = h.job("t", "q", &[]).await;
    within(h.store.set_pending_reason(id, "no_matching_pool"))
        .await
        .unwrap();
    let job = h.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["state"], "queued");
    assert_eq!(job["spec"]["task"], "noop");
    assert_eq!(job["pending_reason"], "no_matching_pool");
    assert!(job["timestamps"]["queued"].as_u64().is_some(), "{job}");

    let (status, body) = h.call("GET", "/api/jobs/not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_job_id");
    let missing = warren_protocol::JobId::new();
    let (status, body) = h.call("GET", &format!("/api/jobs/{missing}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "job_not_found");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_worker_is_shown_as_lost() {
    let h = Harness::start("dash_workers").await;
    within(h.store.record_heartbeat(&heartbeat("w-live", 60_000, 1)))
        .await
        .unwrap();
    // Its heartbeat key expires after three intervals (at least a second).
    within(h.store.record_heartbeat(&heartbeat("w-gone", 300, 0)))
        .await
        .unwrap();
    let workers = wait_until("w-gone is lost", Duration::from_secs(10), || async {
        let workers = h.get("/api/workers").await;
        let lost = workers
            .as_array()?
            .iter()
            .any(|w| w["id"] == "w-gone" && w["status"] == "lost");
        lost.then_some(workers)
    })
    .await;
    assert_eq!(workers[0]["id"], "w-live");
    assert_eq!(workers[0]["status"], "live");
    assert_eq!(workers[0]["heartbeat"]["resources"]["cpu"], 2);
    assert!(workers[1].get("heartbeat").is_none(), "{workers}");
    let overview = h.get("/api/overview").await;
    assert_eq!(overview["workers"]["lost"], 1);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduler_status_is_rendered_as_stored() {
    let h = Harness::start("dash_scheduler").await;
    let empty = h.get("/api/scheduler").await;
    assert!(empty.get("status").is_none(), "{empty}");
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = within(client.get_multiplexed_async_connection())
        .await
        .unwrap();
    let _: () = within(conn.set(
        h.store.keys().scheduler_status(),
        r#"{"policy":"fair","weights":{"alice":2,"bob":1}}"#,
    ))
    .await
    .unwrap();
    let _: () = within(conn.hset(h.store.keys().scheduler(), "active", "sched-1"))
        .await
        .unwrap();
    let info = h.get("/api/scheduler").await;
    assert_eq!(info["status"]["policy"], "fair");
    assert_eq!(info["status"]["weights"]["alice"], 2);
    assert_eq!(info["fields"]["active"], "sched-1");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn series_turn_counter_samples_into_rates() {
    let h = Harness::start("dash_series").await;
    let now = now_ms() / 1000;
    for (at, succeeded) in [(now - 3, 10), (now - 2, 14), (now - 1, 15)] {
        let sample = CounterSample {
            at,
            succeeded,
            ..CounterSample::default()
        };
        within(h.store.record_sample(Resolution::Second, &sample))
            .await
            .unwrap();
    }
    // The sampler may add a sample for this second too; the points for the past ones stay.
    let series = h.get("/api/series?resolution=1s").await;
    let points = series["points"].as_array().unwrap();
    let at = |s: u64| points.iter().find(|p| p["at_ms"] == s * 1000);
    assert_eq!(at(now - 2).unwrap()["succeeded"], 4.0);
    assert_eq!(at(now - 1).unwrap()["succeeded"], 1.0);
    let (status, _) = h.call("GET", "/api/series?resolution=1h").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_prometheus_text() {
    let h = Harness::start("dash_metrics").await;
    h.job("a", "q", &[]).await;
    h.get("/api/overview").await;
    let (status, body) = h.call("GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    // Every sample line is `name{labels} value` with a number for a value.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
    }
    assert!(text.contains("warren_jobs{state=\"queued\"}"), "{text}");
    assert!(text.contains("warren_jobs_succeeded_total"), "{text}");
    assert!(
        text.contains("warren_dashboard_http_requests_total"),
        "{text}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_assets_are_served() {
    let h = Harness::start("dash_assets").await;
    let (status, page) = h.call("GET", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("/assets/uPlot.iife.min.js"));
    for asset in ["app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css"] {
        let (status, _) = h.call("GET", &format!("/assets/{asset}")).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }
    let (status, body) = h.call("GET", "/assets/nope.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queues_come_from_passive_declares() {
    let h = Harness::start("dash_queues").await;
    within(h.store.record_heartbeat(&heartbeat("w-1", 60_000, 0)))
        .await
        .unwrap();
    let queues = h.get("/api/queues").await;
    let row = |role: &str| {
        queues
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["role"] == role)
            .unwrap_or_else(|| panic!("no {role} row: {queues}"))
            .clone()
    };
    assert_eq!(row("intake")["messages"], 0, "{queues}");
    // Nobody declared the cpu pool's queue in this namespace: shown as missing.
    assert!(row("pool").get("messages").is_none(), "{queues}");
    assert!(row("dead")["messages"].is_u64(), "{queues}");
    h.finish().await;
}
