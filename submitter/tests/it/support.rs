//! A harness per test: its own namespace, a submitter state built against the real RabbitMQ
//! and Redis, the router driven with `oneshot`, and a channel to look into queues.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use warren_kit::testkit::{self, TestNamespace};
use warren_kit::{AmqpArgs, CommonArgs, RedisArgs};
use warren_protocol::{JobEnvelope, JobState};
use warren_store::{Store, StoreOptions};
use warren_submitter::{AppState, SecurityArgs, SubmitterArgs, app, build_state_with};
use warren_topology::lapin::Channel;
use warren_topology::lapin::options::BasicGetOptions;
use warren_topology::{AmqpPool, Topology, TopologyOptions, connect_pool};

/// Every broker or HTTP await in tests is bounded by this.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// Test topologies delete their queues a minute after the test is gone.
pub(crate) fn topology_options() -> TopologyOptions {
    TopologyOptions {
        queue_expires: Some(Duration::from_secs(60)),
        ..TopologyOptions::default()
    }
}

/// Awaits `future`, failing the test if it takes longer than [`TIMEOUT`].
pub(crate) async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("a broker or Redis call timed out")
}

/// Submitter settings for `ns`, talking to Redis at `redis_url`.
pub(crate) fn args(ns: &TestNamespace, redis_url: String) -> SubmitterArgs {
    SubmitterArgs {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: 1024 * 1024,
        request_timeout: Duration::from_secs(30),
        // These tests run no scheduler; `readiness` turns this on where it matters.
        ready_requires_scheduler: false,
        security: SecurityArgs::no_auth(),
        common: CommonArgs {
            amqp: AmqpArgs::new(testkit::amqp_url()),
            redis: RedisArgs::new(redis_url),
            namespace: ns.ns().clone(),
            result_ttl: Duration::from_secs(3600),
            signing: Default::default(),
        },
    }
}

/// One answer, with the body parsed as JSON (or kept as a string when it is not).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// Checks that this is a problem+json answer with `status` and `code`; returns it.
    pub(crate) fn problem(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "{self:#?}");
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{self:#?}"
        );
        assert_eq!(self.body["status"], status.as_u16(), "{self:#?}");
        assert_eq!(self.body["code"], code, "{self:#?}");
        assert!(self.body["title"].is_string(), "{self:#?}");
        assert!(self.body["type"].is_string(), "{self:#?}");
        assert!(
            !self.detail().is_empty(),
            "a problem must say what is wrong: {self:#?}"
        );
        &self.body
    }

    pub(crate) fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
}

/// Sends a request through the router without a socket.
pub(crate) async fn call(app: &Router, request: Request<Body>) -> Reply {
    let response = tokio::time::timeout(TIMEOUT, app.clone().oneshot(request))
        .await
        .expect("request timed out")
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

pub(crate) fn post_json(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub(crate) fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// A test's world: namespace, submitter state, router, store and a channel into the broker.
pub(crate) struct Harness {
    pub(crate) ns: TestNamespace,
    pub(crate) state: AppState,
    pub(crate) app: Router,
    pub(crate) store: Store,
    pub(crate) topology: Topology,
    pub(crate) channel: Channel,
    _pool: AmqpPool,
}

impl Harness {
    pub(crate) async fn new(name: &str) -> Self {
        let ns = TestNamespace::new(name);
        Self::with_redis(ns, testkit::redis_url()).await
    }

    pub(crate) async fn with_redis(ns: TestNamespace, redis_url: String) -> Self {
        let args = args(&ns, redis_url);
        Self::with_args(ns, args).await
    }

    pub(crate) async fn with_args(ns: TestNamespace, args: SubmitterArgs) -> Self {
        let state = tokio::time::timeout(TIMEOUT, build_state_with(&args, topology_options()))
            .await
            .expect("building the state timed out")
            .expect("RabbitMQ at WARREN_TEST_AMQP_URL and Redis at WARREN_TEST_REDIS_URL");
        let store = within(Store::connect(
            &testkit::redis_url(),
            ns.ns(),
            StoreOptions::default(),
        ))
        .await
        .expect("Redis at WARREN_TEST_REDIS_URL");
        let pool = within(connect_pool(&testkit::amqp_url(), "submitter-test", 1))
            .await
            .expect("RabbitMQ at WARREN_TEST_AMQP_URL");
        let channel = within(Topology::channel(&pool)).await.unwrap();
        Self {
            topology: Topology::new(ns.ns().clone(), topology_options()),
            app: app(state.clone()),
            ns,
            state,
            store,
            channel,
            _pool: pool,
        }
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Reply {
        call(&self.app, request).await
    }

    /// Submits one spec and expects 202; returns the job id.
    pub(crate) async fn submit(&self, spec: &Value) -> String {
        let reply = self.send(post_json("/v1/jobs", spec)).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:#?}");
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Takes the next message from the intake queue, if any.
    pub(crate) async fn intake_message(&self) -> Option<(JobEnvelope, String)> {
        let got = tokio::time::timeout(
            TIMEOUT,
            self.channel.basic_get(
                self.topology.intake_queue().as_str().into(),
                BasicGetOptions { no_ack: true },
            ),
        )
        .await
        .expect("basic_get timed out")
        .unwrap()?;
        let message_id = got
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        let envelope = JobEnvelope::from_bytes(&got.delivery.data).unwrap();
        Some((envelope, message_id))
    }

    /// Counts the jobs this namespace has in `state`.
    pub(crate) async fn count(&self, state: JobState) -> u64 {
        let counts = self.store.count_by_state().await.unwrap();
        counts
            .into_iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| n)
    }

    pub(crate) async fn finish(self) {
        self.ns.cleanup().await;
        // Queues expire by themselves (x-expires); exchanges do not.
        let _ = within(warren_topology::teardown(
            &self.channel,
            &self.topology,
            &[],
        ))
        .await;
    }
}

/// A TCP proxy in front of Redis that a test can pull the plug on.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    stop: CancellationToken,
    frozen: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let (frozen, frozen_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            // Dropping the set when the proxy stops aborts every open connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        let target = target.clone();
                        let mut frozen = frozen_rx.clone();
                        connections.spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(&target).await else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                // Frozen: keep both sockets open and forward nothing.
                                () = async { drop(frozen.wait_for(|f| *f).await) } => {
                                    std::future::pending::<()>().await;
                                }
                            }
                        });
                    }
                }
            }
        });
        Self {
            addr,
            stop,
            frozen,
            task,
        }
    }

    /// Keeps every connection open but forwards nothing: Redis calls hang.
    pub(crate) fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Stops listening and cuts every connection: Redis is "down" from then on.
    pub(crate) async fn kill(self) {
        self.stop.cancel();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// `host:port` of the test Redis.
pub(crate) fn redis_host_port() -> String {
    let url = testkit::redis_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap().to_owned()
}
