//! The real server on a socket: it answers, and shutdown drains long-polls promptly.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use warren_kit::testkit::wait_until;
use warren_submitter::serve;

use crate::support::{Harness, TIMEOUT};

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
