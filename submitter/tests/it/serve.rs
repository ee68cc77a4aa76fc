//! The real server on a socket: it answers, and shutdown drains long-polls promptly.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use warren_kit::testkit::wait_until;
use warren_submitter::serve;

use crate::support::{Harness, TIMEOUT, args};
use crate::tls::https_get;

/// Sends one HTTP/1.1 request and returns the raw response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn serves_on_a_socket_and_drains_long_polls_on_shutdown() {
    let h = Harness::new("serve_socket").await;
    let id = h.submit(&json!({"task": "noop"})).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, h.state.clone(), shutdown.child_token()));

    let health = tokio::time::timeout(TIMEOUT, http_get(addr, "/healthz"))
        .await
        .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let path = format!("/v1/jobs/{id}/wait?timeout_s=300");
    let long_poll = tokio::spawn(async move { http_get(addr, &path).await });
    wait_until("the long-poll to park", TIMEOUT, || async {
        (h.state.waiting() == 1).then_some(())
    })
    .await;

    shutdown.cancel();
    // The five-minute long-poll must not hold the shutdown up.
    let served = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns promptly after shutdown")
        .unwrap();
    served.unwrap();
    let response = tokio::time::timeout(TIMEOUT, long_poll)
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("x-warren-wait: timeout"),
        "{response}"
    );
    assert_eq!(h.state.waiting(), 0);
    h.finish().await;
}

/// The status and problem+json body of a raw answer, failing when it is not problem+json.
fn problem_of(response: &str) -> (u16, Value) {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head: {response:.300}"));
    let status = head[9..12].parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{e}: the body is not JSON: {body:?} (head: {head})"));
    assert_eq!(body["status"], status, "{body}");
    (status, body)
}

/// Over the router's cap (8 KiB) and over hyper's own fixed limit (64 KiB), a long URI is a
/// 414 with a problem+json body, served plain and over HTTPS.
#[tokio::test]
async fn long_uris_get_a_problem_json_414_plain_and_over_https() {
    let pki = warren_kit::testkit::TestPki::new("uri");
    let ns = warren_kit::testkit::TestNamespace::new("serve_uri");
    let mut https_args = args(&ns, warren_kit::testkit::redis_url());
    https_args.security.tls_cert_file = Some(pki.cert.clone());
    https_args.security.tls_key_file = Some(pki.key.clone());
    let https = Harness::with_args(ns, https_args).await;
    let plain = Harness::new("serve_uri_plain").await;
    let shutdown = CancellationToken::new();
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for state in [plain.state.clone(), https.state.clone()] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port());
        servers.push(tokio::spawn(serve(listener, state, shutdown.child_token())));
    }
    let get = |tls: bool, path: String| {
        let (port, ca) = (ports[usize::from(tls)], pki.ca_der.clone());
        async move {
            if tls {
                https_get(port, &ca, &path).await
            } else {
                http_get(([127, 0, 0, 1], port).into(), &path).await
            }
        }
    };

    for tls in [false, true] {
        for len in [9_000, 70_000] {
            let path = format!("/v1/jobs?state={}", "q".repeat(len));
            let answer = tokio::time::timeout(TIMEOUT, get(tls, path)).await.unwrap();
            let (status, body) = problem_of(&answer);
            assert_eq!(status, 414, "tls {tls}, {len} bytes: {body}");
            assert_eq!(body["code"], "uri_too_long", "{body}");
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains("8192 bytes"), "{detail}");
        }
        // Ordinary answers pass through untouched.
        let health = tokio::time::timeout(TIMEOUT, get(tls, "/healthz".into()))
            .await
            .unwrap();
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let missing = tokio::time::timeout(TIMEOUT, get(tls, "/nowhere".into()))
            .await
            .unwrap();
        assert_eq!(problem_of(&missing).1["code"], "route_not_found");
    }

    shutdown.cancel();
    for server in servers {
        tokio::time::timeout(TIMEOUT, server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    plain.finish().await;
    https.finish().await;
}
