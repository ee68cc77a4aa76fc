//! Every service's `/metrics` parsed as Prometheus parses it: the named series exist, carry
//! bounded labels (never a job id), and move when jobs run.

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use warren_kit::testkit::wait_until;

use crate::harness::{System, WorkerSpec, spec};

async fn scrape(sys: &System, base: &str) -> Option<Scrape> {
    let response = sys.http.get(format!("{base}/metrics")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(kind.starts_with("text/plain"), "content type {kind}");
    let text = response.text().await.ok()?;
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Some(Scrape::parse(lines).expect("Prometheus text that parses"))
}

fn matches(sample: &Sample, name: &str, labels: &[(&str, &str)]) -> bool {
    sample.metric == name && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
}

/// The value of a counter or gauge (summed over the series the labels pick), or how many
/// observations a histogram holds.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let picked: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| matches(s, name, labels))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => f64::NAN,
        })
        .collect();
    (!picked.is_empty()).then(|| picked.iter().sum())
}

/// Scrapes `base` until `check` holds on what it serves.
async fn until(sys: &System, base: &str, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let last = std::sync::Mutex::new(None);
    let found = tokio::time::timeout(
        Duration::from_secs(20),
        wait_until(what, Duration::from_secs(30), || async {
            let scraped = scrape(sys, base).await?;
            if check(&scraped) {
                return Some(scraped);
            }
            *last.lock().unwrap() = Some(scraped.samples);
            None
        }),
    )
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "timed out waiting for {what}; last scrape: {:#?}",
            last.lock().unwrap()
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_serves_prometheus_metrics_that_move_when_jobs_run() {
    let sys = System::start("metrics", &[WorkerSpec::default()]).await;
    let worker = sys.worker_metrics[0].clone();
    let scheduler = sys.scheduler_metrics.clone();

    // Before any job: the slot gauges are there, no job has started.
    let before = until(&sys, &worker, "the worker's slot gauges", |s| {
        value(s, "warren_worker_slots_free", &[]) == Some(2.0)
    })
    .await;
    assert_eq!(value(&before, "warren_worker_slots_busy", &[]), Some(0.0));
    assert_eq!(
        value(&before, "warren_worker_jobs_started_total", &[]),
        None
    );
    until(&sys, &scheduler, "the scheduler's metrics", |_| true).await;

    let ok = sys.submit(spec("echo", json!({"n": 1}))).await;
    let bad = sys
        .submit(json!({"task": "command", "args": {"argv": ["false"]}, "tenant": "team-b"}))
        .await;
    assert_eq!(sys.wait_done(&ok).await["state"], "succeeded");
    assert_eq!(sys.wait_done(&bad).await["state"], "failed");

    let echo = [("task", "echo"), ("tenant", "default"), ("pool", "cpu")];
    let failed = [
        ("task", "command"),
        ("tenant", "team-b"),
        ("pool", "cpu"),
        ("outcome", "failed"),
    ];
    let after = until(&sys, &worker, "the worker to count both jobs", |s| {
        value(s, "warren_worker_jobs_finished_total", &failed) == Some(1.0)
            && value(s, "warren_worker_jobs_finished_total", &echo) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&after, "warren_worker_jobs_started_total", &echo),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "warren_worker_job_run_duration_seconds",
            &[("task", "echo"), ("pool", "cpu"), ("outcome", "succeeded")]
        ),
        Some(1.0),
        "one run-time observation"
    );

    for id in [&ok, &bad] {
        sys.job(id).await;
    }
    let api = until(&sys, &sys.base, "the submitter's counters", |s| {
        value(s, "warren_jobs_submitted_total", &[("task", "echo")]) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(
            &api,
            "warren_jobs_submitted_total",
            &[("task", "command"), ("tenant", "team-b")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &api,
            "warren_submitter_http_requests_total",
            &[("method", "POST"), ("route", "/v1/jobs"), ("status", "202")]
        ),
        Some(2.0)
    );
    // Reads of one job are counted under the route's template, not its path. (Checked on
    // the text: prometheus-parse 0.2 skips sample lines with a `}` inside a label value,
    // which Prometheus itself accepts.)
    let text = sys
        .http
        .get(format!("{}/metrics", sys.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reads = text
        .lines()
        .find(|l| {
            l.starts_with("warren_submitter_http_requests_total{")
                && l.contains(r#"route="/v1/jobs/{id}""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no GET /v1/jobs/{{id}} requests in:\n{text}"));
    let count: f64 = reads.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{reads}");
    assert!(
        !text.contains(&format!("/v1/jobs/{ok}")),
        "a raw path with a job id is never a label"
    );

    let sched = until(&sys, &scheduler, "the scheduler's dispatch counters", |s| {
        value(
            s,
            "warren_scheduler_jobs_dispatched_total",
            &[("pool", "cpu")],
        ) == Some(2.0)
    })
    .await;
    assert_eq!(
        value(
            &sched,
            "warren_scheduler_dispatch_latency_seconds",
            &[("pool", "cpu")]
        ),
        Some(2.0),
        "one dispatch latency per job"
    );
    assert!(
        value(&sched, "warren_scheduler_running_jobs", &[]).is_some(),
        "the active scheduler's running jobs"
    );

    // Bounded labels: no series names a job.
    for (service, scraped) in [
        ("worker", &after),
        ("submitter", &api),
        ("scheduler", &sched),
    ] {
        for sample in &scraped.samples {
            let text = format!("{:?}", sample.labels);
            assert!(
                !text.contains(&ok) && !text.contains(&bad),
                "{service}: {} has a job id in its labels: {text}",
                sample.metric
            );
        }
    }
    sys.stop().await;
}
