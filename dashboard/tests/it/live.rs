//! The live stream and the log tail, read as server-sent events.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt as _;
use tower::ServiceExt as _;
use warren_kit::testkit::{redis_url, wait_until};
use warren_protocol::JobState::{Running, Scheduled, Succeeded};
use warren_store::LogStream;

use crate::{Harness, within};

/// Reads an event stream until `done` says the text so far is enough.
async fn read_until(
    h: &Harness,
    uri: &str,
    done: impl Fn(&str) -> bool,
    act: impl AsyncFnOnce(),
) -> String {
    read_until_as(h, uri, None, done, act).await
}

/// [`read_until`] with a bearer token.
pub(crate) async fn read_until_as(
    h: &Harness,
    uri: &str,
    token: Option<&str>,
    done: impl Fn(&str) -> bool,
    act: impl AsyncFnOnce(),
) -> String {
    let mut request = Request::builder().uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Body::empty()).unwrap();
    let response = within(h.app().oneshot(request)).await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{uri}"
    );
    let mut body = response.into_body().into_data_stream();
    act().await;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !done(&text) {
            let chunk = body.next().await.expect("the stream stays open").unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{uri} did not deliver in time; got:\n{text}"));
    text
}

/// Waits until the dashboard's event pump has subscribed to the job events.
pub(crate) async fn pump_subscribed(h: &Harness) {
    wait_until("the pump subscribes", Duration::from_secs(10), || async {
        let client = redis::Client::open(redis_url()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let (_, subscribers): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(h.store.keys().events_channel())
            .query_async(&mut conn)
            .await
            .ok()?;
        (subscribers > 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn job_events_and_ticks_reach_the_live_stream() {
    let h = Harness::start("dash_live").await;
    let id = h.job("t", "q", &[]).await;
    let text = read_until(
        &h,
        "/api/live",
        |text| text.contains("\"type\":\"job\"") && text.contains("\"type\":\"tick\""),
        async || {
            // Once the pump has subscribed it sees this transition (ticks come by themselves).
            pump_subscribed(&h).await;
            h.store
                .transition(&warren_store::Transition::new(id, Scheduled))
                .await
                .unwrap();
        },
    )
    .await;
    assert!(text.contains(&id.to_string()), "{text}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_tail_streams_lines_then_ends() {
    let h = Harness::start("dash_tail").await;
    let id = h.job("t", "q", &[Scheduled, Running]).await;
    within(h.store.append_log(id, LogStream::Stdout, &["first".into()]))
        .await
        .unwrap();
    let uri = format!("/api/jobs/{id}/logs/live");
    let text = read_until(
        &h,
        &uri,
        |text| text.contains("event: end"),
        async || {
            h.store
                .append_log(id, LogStream::Stderr, &["second".into()])
                .await
                .unwrap();
            h.store
                .transition(&warren_store::Transition::new(id, Succeeded))
                .await
                .unwrap();
        },
    )
    .await;
    let first = text.find("first").expect("first line");
    let second = text.find("second").expect("second line");
    let end = text.find("event: end").unwrap();
    assert!(first < second && second < end, "{text}");
    assert!(text.contains("data: succeeded"), "{text}");
    h.finish().await;
}
