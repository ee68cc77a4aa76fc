//! A retry while RabbitMQ is out of reach (issue 6, item 4): the worker talks to the shared
//! broker through a TCP proxy of the test's own, which the test cuts and restores.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use warren_kit::testkit::{TestNamespace, amqp_url, wait_until};
use warren_protocol::JobState;
use warren_worker::{JobError, Worker};

use crate::support::{Harness, args, spec};

/// Forwards to the broker while up; when cut, drops every connection and refuses new ones.
struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, up_rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            // Dropped (aborting every connection) when the proxy task is aborted.
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !*up_rx.borrow() {
                    continue;
                }
                let target = target.clone();
                let mut up = up_rx.clone();
                connections.spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up, task }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The test broker's URL split around its `host:port`.
fn amqp_parts() -> (String, String, String) {
    let url = amqp_url();
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

/// The first attempt fails (retryably) while the broker is cut off: the retry cannot be
/// published then. Before the fix the job ended `failed` ("retry could not be scheduled");
/// now the worker keeps trying until the broker is back, and the job is `retrying` at
/// attempt 2 with its next attempt in the delay ladder.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_is_not_lost_while_rabbitmq_is_down() {
    let ns = TestNamespace::new("worker_retry_broker_down");
    let (head, broker, path) = amqp_parts();
    let proxy = Proxy::start(broker).await;
    let mut worker_args = args(&ns);
    worker_args.common.amqp.url = format!("{head}{}{path}", proxy.addr);
    let gate = Arc::new(Notify::new());
    let task_gate = gate.clone();
    let worker = Worker::builder()
        .task("fail_when_told", move |_ctx| {
            let gate = task_gate.clone();
            async move {
                gate.notified().await;
                Err::<Value, _>(JobError::retryable("told to fail"))
            }
        })
        .build(worker_args);
    let h = Harness::start(ns, worker).await;

    let mut job = spec("fail_when_told", Value::Null);
    job.max_attempts = 3;
    let id = h.dispatch(job).await;
    let store = h.store.clone();
    wait_until("the job to run", Duration::from_secs(10), || {
        let store = store.clone();
        async move { (store.get(id).await.ok()??.state == JobState::Running).then_some(()) }
    })
    .await;

    proxy.cut();
    gate.notify_one();
    // The outage is the scenario: it lasts long enough for the retry's publish to fail.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        during.state,
        JobState::Running,
        "the job must wait for the broker, not fail: {during:?}"
    );
    proxy.restore();

    let job = wait_until("the retry to be scheduled", Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            let job = store.get(id).await.ok()??;
            (job.state != JobState::Running).then_some(job)
        }
    })
    .await;
    assert_eq!(job.state, JobState::Retrying, "{job:?}");
    assert_eq!(job.attempt, 2);
    assert!(job.next_attempt_ms.is_some());
    h.stop().await;
    drop(proxy);
}
