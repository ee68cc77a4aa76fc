//! Per-tenant submission rate, idle connections and the connection cap.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use warren_kit::testkit::{self, TestNamespace};
use warren_submitter::serve;

use crate::auth::{harness_with_tokens, request};
use crate::support::{Harness, TIMEOUT, args};

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after() {
    // 2 a minute: a bucket of one job, refilled every 30 s.
    let h = harness_with_tokens("limits_rate", |a| {
        a.security.tenant_submit_rate = Some("2/m".parse().unwrap());
    })
    .await;
    let spec = json!({"task": "noop"});
    let first = h
        .send(request(
            "POST",
            "/v1/jobs",
            Some("token-a-submit"),
            Some(&spec),
        ))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:#?}");
    let second = h
        .send(request(
            "POST",
            "/v1/jobs",
            Some("token-a-submit"),
            Some(&spec),
        ))
        .await;
    second.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = second.header("retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "{second:#?}");
    let batch = json!({"jobs": [spec]});
    let batch = h
        .send(request(
            "POST",
            "/v1/jobs/batch",
            Some("token-a-submit"),
            Some(&batch),
        ))
        .await;
    batch.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another tenant has its own allowance.
    let other = h
        .send(request(
            "POST",
            "/v1/jobs",
            Some("token-b-both"),
            Some(&spec),
        ))
        .await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{other:#?}");
    h.finish().await;
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    // An error (a reset) is a close too.
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed() {
    let ns = TestNamespace::new("limits_idle");
    let mut settings = args(&ns, testkit::redis_url());
    settings.security.idle_timeout = Duration::from_millis(300);
    let h = Harness::with_args(ns, settings).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, h.state.clone(), shutdown.child_token()));

    // Silent from the start.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(TIMEOUT, read_to_close(&mut idle))
        .await
        .expect("an idle connection is closed");
    // Half a request head, then nothing.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t")
        .await
        .unwrap();
    tokio::time::timeout(TIMEOUT, read_to_close(&mut slow))
        .await
        .expect("a connection trickling its headers is closed");
    // Kept alive after a request, then idle.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(TIMEOUT, read_to_close(&mut kept))
        .await
        .expect("a kept-alive connection is closed once idle");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let ns = TestNamespace::new("limits_cap");
    let mut settings = args(&ns, testkit::redis_url());
    settings.security.max_connections = 1;
    let h = Harness::with_args(ns, settings).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, h.state.clone(), shutdown.child_token()));

    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(TIMEOUT, first.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // `first` is kept alive and holds the only slot: the second is not served meanwhile.
    let mut second = tokio::spawn(async move {
        let mut second = TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        read_to_close(&mut second).await
    });
    // A negative check needs some wait; this bounds it, and a served second fails it.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut second).await;
    assert!(
        early.is_err(),
        "a connection beyond the cap was served: {early:?}"
    );
    drop(first);
    let answer = tokio::time::timeout(TIMEOUT, second)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn oversized_specs_get_422_naming_the_field_and_nothing_is_published() {
    let h = Harness::new("limits_spec_caps").await;
    // The attack of issue 7: 80,000 tags in one job (about 700 KB, under the body cap).
    let tags: Vec<String> = (0..80_000).map(|i| format!("t{i}")).collect();
    let many_args: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    let many_env: serde_json::Map<String, serde_json::Value> =
        (0..200).map(|i| (format!("V{i}"), json!("x"))).collect();
    let cases = [
        (
            json!({"task": "noop", "requires": {"tags": tags}}),
            "requires.tags",
        ),
        (
            json!({"task": "command", "args": {"argv": many_args}}),
            "args.argv",
        ),
        (
            json!({"task": "command", "args": {"argv": ["echo", "x".repeat(200_000)]}}),
            "args.argv",
        ),
        (
            json!({"task": "command", "args": {"argv": ["echo"], "env": many_env}}),
            "args.env",
        ),
        (
            json!({"task": "echo", "args": {"blob": "x".repeat(300_000)}}),
            "args",
        ),
    ];
    for (spec, field) in cases {
        let reply = h.send(crate::support::post_json("/v1/jobs", &spec)).await;
        let body = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(body["field"], field, "{reply:#?}");
        assert!(reply.detail().contains("at most"), "{reply:#?}");
    }
    assert!(h.intake_message().await.is_none(), "nothing was published");
    h.finish().await;
}
