//! Helpers for tests that run against the real RabbitMQ and Redis.
//!
//! These helpers run only inside tests, where a broken environment must fail loudly: they
//! panic (with a message naming the variable to fix) rather than return errors.
#![allow(clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use warren_protocol::Namespace;

/// The RabbitMQ URL tests use: `WARREN_TEST_AMQP_URL`, or the local default.
pub fn amqp_url() -> String {
    std::env::var("WARREN_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The Redis URL tests use: `WARREN_TEST_REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("WARREN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

mod pki;

pub use pki::TestPki;

/// Eight random lowercase letters and digits, to keep parallel tests apart.
fn random_suffix() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(8)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// A namespace of one test: `warren-test-<name>-<8 random chars>`, so parallel tests never
/// share a queue or a key.
#[derive(Debug, Clone)]
pub struct TestNamespace {
    ns: Namespace,
}

impl TestNamespace {
    /// Creates a fresh namespace for the test `name`.
    pub fn new(name: &str) -> Self {
        let suffix = random_suffix();
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(30)
            .collect();
        let ns = Namespace::new(format!("wt-{name}-{suffix}")).expect("valid test namespace");
        Self { ns }
    }

    /// Returns the namespace.
    pub fn ns(&self) -> &Namespace {
        &self.ns
    }

    /// Deletes every Redis key of this namespace (`SCAN MATCH` + `DEL`; never `FLUSHDB`).
    /// Queues clean themselves up: test topologies are declared with `x-expires`.
    ///
    /// # Panics
    /// When Redis cannot be reached: a test that cannot clean up must say so.
    pub async fn cleanup(&self) {
        let client = redis::Client::open(redis_url()).expect("WARREN_TEST_REDIS_URL is valid");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis reachable at WARREN_TEST_REDIS_URL");
        let pattern = format!("{}:*", self.ns);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("SCAN");
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .expect("DEL");
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
///
/// # Panics
/// When the condition does not hold in time.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs an async clean-up to completion from synchronous code (a `Drop` of a test harness,
/// when the test panicked before its own clean-up), on a fresh runtime in its own thread so
/// it works inside or outside a runtime.
pub fn block_on_cleanup<F>(cleanup: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let worker = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Runtime::new() {
            runtime.block_on(cleanup);
        }
    });
    let _ = worker.join();
}
