#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests of the dashboard's API against the real Redis and RabbitMQ on loopback.
//! Each test has its own namespace; jobs are made through `warren-store` as the services
//! would make them, and the router is driven with `oneshot` (streams are read frame by frame).

mod actions;
mod auth;
mod big_history;
mod dead;
mod live;
mod reads;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;
use warren_dashboard::{AppState, DashboardArgs, app, build_state};
use warren_kit::args::{AmqpArgs, CommonArgs, RedisArgs};
use warren_kit::auth::AuthArgs;
use warren_kit::testkit::{TestNamespace, amqp_url, redis_url};
use warren_protocol::{JobId, JobSpec, JobState, now_ms};
use warren_store::{NewJob, Store, StoreOptions, Transition};
use warren_topology::lapin::Channel;
use warren_topology::{Topology, TopologyOptions, connect_pool, declare_core};

/// Every Redis, broker or HTTP await is bounded by this.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("a Redis, broker or HTTP call timed out")
}

/// One dashboard on a test namespace, with the store and a declared core topology.
pub(crate) struct Harness {
    pub(crate) ns: TestNamespace,
    pub(crate) store: Store,
    pub(crate) state: AppState,
    channel: Channel,
    topology: Topology,
}

impl Harness {
    pub(crate) async fn start(name: &str) -> Self {
        Self::start_with(TestNamespace::new(name), AuthArgs::off()).await
    }

    /// A dashboard that takes the tokens of [`auth::TOKENS`].
    pub(crate) async fn start_with_tokens(name: &str) -> Self {
        let ns = TestNamespace::new(name);
        let path = std::env::temp_dir().join(format!("{}-tokens.json", ns.ns().as_str()));
        std::fs::write(&path, auth::tokens_file().to_string()).unwrap();
        let h = Self::start_with(ns, AuthArgs::tokens(&path)).await;
        // The file is read once, at start.
        std::fs::remove_file(path).unwrap();
        h
    }

    async fn start_with(ns: TestNamespace, auth: AuthArgs) -> Self {
        let args = DashboardArgs {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            request_timeout: Duration::from_secs(10),
            auth,
            common: CommonArgs {
                amqp: AmqpArgs::new(amqp_url()),
                redis: RedisArgs::new(redis_url()),
                namespace: ns.ns().clone(),
                result_ttl: Duration::from_secs(600),
                signing: Default::default(),
            },
        };
        let state = within(build_state(&args))
            .await
            .expect("Redis and RabbitMQ reachable (WARREN_TEST_REDIS_URL, WARREN_TEST_AMQP_URL)");
        let options = StoreOptions {
            result_ttl: Duration::from_secs(600),
            ..StoreOptions::default()
        };
        let store = within(Store::connect(&redis_url(), ns.ns(), options))
            .await
            .unwrap();
        // Retried jobs are published to intake: it must exist (and expire after the test).
        let topology = Topology::new(
            ns.ns().clone(),
            TopologyOptions {
                queue_expires: Some(Duration::from_secs(60)),
                ..TopologyOptions::default()
            },
        );
        let pool = within(connect_pool(&amqp_url(), "dashboard-test", 1))
            .await
            .unwrap();
        let channel = within(Topology::channel(&pool)).await.unwrap();
        within(declare_core(&channel, &topology)).await.unwrap();
        Self {
            ns,
            store,
            state,
            channel,
            topology,
        }
    }

    pub(crate) fn app(&self) -> Router {
        app(self.state.clone())
    }

    /// Sends one request; answers the status and the body as JSON (or a JSON string).
    pub(crate) async fn call(&self, method: &str, uri: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.call_as(method, uri, None, None).await;
        (status, body)
    }

    /// Sends one request with a JSON body.
    pub(crate) async fn send(&self, method: &str, uri: &str, body: &Value) -> (StatusCode, Value) {
        let (status, _, body) = self.call_as(method, uri, None, Some(body)).await;
        (status, body)
    }

    /// Sends one request with `token` (as a bearer token) and an optional JSON body;
    /// answers the status, the headers and the body as JSON (or a JSON string).
    pub(crate) async fn call_as(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .unwrap();
        let response = within(self.app().oneshot(request)).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = within(axum::body::to_bytes(response.into_body(), 1 << 24))
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, body)
    }

    pub(crate) async fn get(&self, uri: &str) -> Value {
        let (status, body) = self.call("GET", uri).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
        body
    }

    /// Creates a job the way the submitter does, and moves it along `path` of states the
    /// way the scheduler and a worker would.
    pub(crate) async fn job(&self, tenant: &str, queue: &str, path: &[JobState]) -> JobId {
        let mut spec = JobSpec::new("noop", Value::Null);
        spec.tenant = tenant.to_owned();
        spec.queue = queue.to_owned();
        let job = NewJob {
            id: JobId::new(),
            spec,
            created_ms: now_ms(),
        };
        let id = job.id;
        within(self.store.create_jobs(&[job])).await.unwrap();
        for state in path {
            within(self.store.transition(&Transition::new(id, *state)))
                .await
                .unwrap();
        }
        id
    }

    pub(crate) async fn finish(self) {
        within(self.state_drain()).await;
        self.ns.cleanup().await;
        // Queues expire by themselves (x-expires); exchanges do not.
        let _ = within(warren_topology::teardown(
            &self.channel,
            &self.topology,
            &[],
        ))
        .await;
    }

    async fn state_drain(&self) {
        // Serving on a socket proves a clean shutdown: the background tasks and open streams
        // end when the token is cancelled.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let token = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(warren_dashboard::serve(
            listener,
            self.state.clone(),
            token.clone(),
        ));
        token.cancel();
        server.await.unwrap().unwrap();
    }
}
