//! Invariant I2 under failure: 503 with `Retry-After`, and nothing half-made stays.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use warren_kit::testkit::TestNamespace;
use warren_protocol::JobState;
use warren_store::JobFilter;
use warren_submitter::build_state_with;
use warren_topology::lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use warren_topology::{TopologyOptions, declare_core};

use crate::support::{Harness, Proxy, TIMEOUT, args, get, post_json, redis_host_port};

/// Asserts that the namespace holds no job at all.
async fn assert_no_jobs(h: &Harness) {
    let page = h.store.list(&JobFilter::default(), 10, None).await.unwrap();
    assert!(page.jobs.is_empty(), "compensated jobs are gone: {page:?}");
    assert_eq!(h.count(JobState::Queued).await, 0);
}

#[tokio::test]
async fn unroutable_publishes_are_503_and_compensated() {
    let h = Harness::new("fail_unroutable").await;
    // No queue behind the intake exchange: the mandatory publish comes back.
    tokio::time::timeout(
        TIMEOUT,
        h.channel.queue_delete(
            h.topology.intake_queue().as_str().into(),
            QueueDeleteOptions::default(),
        ),
    )
    .await
    .unwrap()
    .unwrap();

    let mut request = post_json("/v1/jobs", &json!({"task": "noop"}));
    request
        .headers_mut()
        .insert("idempotency-key", "retry-me".parse().unwrap());
    let reply = h.send(request).await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(reply.header("retry-after"), "2");
    assert!(
        reply
            .detail()
            .starts_with("RabbitMQ or Redis is unavailable"),
        "{}",
        reply.detail()
    );
    assert_no_jobs(&h).await;

    let batch = json!({"jobs": [{"task": "noop"}, {"task": "noop"}, {"task": "noop"}]});
    let reply = h.send(post_json("/v1/jobs/batch", &batch)).await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_no_jobs(&h).await;

    // Once the topology is back, a retry with the same key is a fresh submission.
    tokio::time::timeout(TIMEOUT, declare_core(&h.channel, &h.topology))
        .await
        .unwrap()
        .unwrap();
    let mut request = post_json("/v1/jobs", &json!({"task": "noop"}));
    request
        .headers_mut()
        .insert("idempotency-key", "retry-me".parse().unwrap());
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
    assert!(h.intake_message().await.is_some());
    h.finish().await;
}

#[tokio::test]
async fn a_dead_publisher_channel_is_reopened() {
    let h = Harness::new("fail_channel").await;
    h.submit(&json!({"task": "noop"})).await;
    // Publishing to a missing exchange makes the broker close the publisher's channel.
    tokio::time::timeout(
        TIMEOUT,
        h.channel.exchange_delete(
            h.topology.intake_exchange().as_str().into(),
            ExchangeDeleteOptions::default(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let reply = h
        .send(post_json("/v1/jobs", &json!({"task": "noop"})))
        .await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(
        h.count(JobState::Queued).await,
        1,
        "only the first job stays"
    );

    tokio::time::timeout(TIMEOUT, declare_core(&h.channel, &h.topology))
        .await
        .unwrap()
        .unwrap();
    // The service heals by itself: no restart, a new channel on the next request.
    h.submit(&json!({"task": "noop"})).await;
    let reply = h.send(get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(h.count(JobState::Queued).await, 2);
    h.finish().await;
}

#[tokio::test]
async fn redis_down_is_503_and_nothing_is_published() {
    let ns = TestNamespace::new("fail_redis");
    let proxy = Proxy::start(redis_host_port()).await;
    let h = Harness::with_redis(ns, format!("redis://{}", proxy.addr)).await;
    h.submit(&json!({"task": "noop"})).await;
    assert!(h.intake_message().await.is_some());

    proxy.kill().await;
    let reply = h
        .send(post_json("/v1/jobs", &json!({"task": "noop"})))
        .await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(reply.header("retry-after"), "2");
    assert!(
        reply
            .detail()
            .starts_with("RabbitMQ or Redis is unavailable"),
        "{}",
        reply.detail()
    );
    assert!(h.intake_message().await.is_none(), "nothing was published");

    let reply = h.send(get("/readyz")).await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    let reply = h.send(get("/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK, "the process itself is fine");
    h.finish().await;
}

#[tokio::test]
async fn slow_requests_are_cut_off_with_503() {
    let ns = TestNamespace::new("fail_slow");
    let proxy = Proxy::start(redis_host_port()).await;
    let mut args = args(&ns, format!("redis://{}", proxy.addr));
    args.request_timeout = Duration::from_millis(500);
    let h = Harness::with_args(ns, args).await;
    let id = h.submit(&json!({"task": "noop"})).await;
    // Long-polls are exempt from the request timeout: they bound themselves.
    let reply = h
        .send(get(&format!("/v1/jobs/{id}/wait?timeout_s=1")))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.header("x-warren-wait"), "timeout");

    proxy.freeze();
    let started = Instant::now();
    let reply = h.send(get("/v1/stats")).await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE, "timeout");
    assert_eq!(reply.header("retry-after"), "2");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off by the request timeout, not Redis's own: {:?}",
        started.elapsed()
    );
    proxy.kill().await;
    h.finish().await;
}

#[tokio::test]
async fn startup_errors_name_the_service_but_no_password() {
    let ns = TestNamespace::new("fail_startup");
    let args = args(&ns, "redis://:hunter2@127.0.0.1:1".to_owned());
    let options = TopologyOptions::default();
    let err = tokio::time::timeout(TIMEOUT, build_state_with(&args, options))
        .await
        .expect("a refused connection fails fast")
        .expect_err("no Redis on port 1");
    let message = format!("{err:#}");
    assert!(
        message.contains("connecting to redis at redis://:***@127.0.0.1:1"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    ns.cleanup().await;
}
