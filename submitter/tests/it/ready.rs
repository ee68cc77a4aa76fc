//! `/readyz` says whether a submission would succeed now (issue 6, item 7): a broker that
//! stops confirming publishes, or no active scheduler, is not ready.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use warren_kit::testkit::{self, TestNamespace, wait_until};

use crate::support::{Harness, Proxy, args, get};

/// The test RabbitMQ's URL split around its `host:port`.
pub(crate) fn amqp_parts() -> (String, String, String) {
    let url = testkit::amqp_url();
    let (scheme, rest) = url
        .split_once("://")
        .expect("WARREN_TEST_AMQP_URL has a scheme");
    let (auth, rest) = rest
        .rsplit_once('@')
        .map_or((String::new(), rest), |(a, r)| (format!("{a}@"), r));
    let (host_port, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5672")
    };
    (format!("{scheme}://{auth}"), host_port, format!("/{path}"))
}

#[tokio::test]
async fn readiness_needs_an_active_scheduler() {
    let ns = TestNamespace::new("ready_scheduler");
    let mut args = args(&ns, testkit::redis_url());
    args.ready_requires_scheduler = true;
    let h = Harness::with_args(ns, args).await;

    let reply = h.send(get("/readyz")).await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert!(
        reply.detail().contains("scheduler: missing"),
        "{}",
        reply.detail()
    );

    // An active scheduler rewrites its status every 0.5 s with a 10 s TTL.
    h.store
        .set_scheduler_status("{}", Duration::from_millis(1500))
        .await
        .unwrap();
    let reply = h.send(get("/readyz")).await;
    assert_eq!(
        (reply.status, &reply.body),
        (
            StatusCode::OK,
            &json!({
                "status": "ready",
                "scheduler": "active",
                "rabbitmq_node": amqp_parts().1,
            })
        )
    );

    // It stops: its status expires, and so does readiness.
    let app = h.app.clone();
    wait_until(
        "readiness to see the scheduler gone",
        Duration::from_secs(10),
        || {
            let app = app.clone();
            async move {
                let reply = crate::support::call(&app, get("/readyz")).await;
                (reply.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
            }
        },
    )
    .await;
    h.finish().await;
}

/// A connection the broker stops answering (as a memory alarm blocks publishers): the
/// channel still looks open, but no publish is confirmed, so submissions would hang.
/// Before the fix `/readyz` stayed 200 here.
#[tokio::test]
async fn a_broker_that_does_not_confirm_publishes_is_not_ready() {
    let ns = TestNamespace::new("ready_blocked_broker");
    let (head, broker, path) = amqp_parts();
    let proxy = Proxy::start(broker).await;
    let mut args = args(&ns, testkit::redis_url());
    args.common.amqp.url = format!("{head}{}{path}", proxy.addr);
    let h = Harness::with_args(ns, args).await;

    let reply = h.send(get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");

    proxy.freeze();
    let reply = h.send(get("/readyz")).await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert!(reply.detail().contains("rabbitmq"), "{}", reply.detail());
    proxy.kill().await;
    h.finish().await;
}

/// `WARREN_AMQP_URL` as a list of cluster nodes (two proxies in front of the test broker
/// stand for two nodes): `/readyz` names the node in use, and when that node goes away the
/// submitter moves to the other by itself. A password in the list never shows.
#[tokio::test]
async fn a_node_list_moves_to_a_live_node() {
    let ns = TestNamespace::new("ready_node_list");
    let (head, broker, path) = amqp_parts();
    let first = Proxy::start(broker.clone()).await;
    let second = Proxy::start(broker).await;
    let mut args = args(&ns, testkit::redis_url());
    args.common.amqp.url = format!("{head}{}{path},{head}{}{path}", first.addr, second.addr);
    let h = Harness::with_args(ns, args).await;

    let node = |reply: &crate::support::Reply| {
        reply.body["rabbitmq_node"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let reply = h.send(get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    let in_use = node(&reply);
    let (dead, live) = if in_use == first.addr.to_string() {
        (first, second)
    } else {
        assert_eq!(in_use, second.addr.to_string(), "{reply:#?}");
        (second, first)
    };
    let live_addr = live.addr.to_string();
    dead.kill().await;
    let app = h.app.clone();
    wait_until(
        "the submitter to move to the live node",
        Duration::from_secs(20),
        || {
            let app = app.clone();
            let live_addr = live_addr.clone();
            async move {
                let reply = crate::support::call(&app, get("/readyz")).await;
                (reply.status == StatusCode::OK && node(&reply) == live_addr).then_some(())
            }
        },
    )
    .await;
    live.kill().await;
    h.finish().await;
}
