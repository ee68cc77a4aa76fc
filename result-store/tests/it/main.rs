#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests of `warren-store` against the real Redis on loopback
//! (`WARREN_TEST_REDIS_URL`). Every test works in its own [`TestNamespace`] and deletes its
//! keys at the end, so the tests run in parallel with each other and with other crates'.

mod claims;
mod events;
mod filters;
mod lifecycle;
mod listing;
mod logs;
mod observe;
mod pending;
mod purge;
mod transitions;
mod workers;

use std::future::Future;
use std::time::Duration;

use warren_kit::testkit::{TestNamespace, redis_url};
use warren_protocol::{JobId, JobSpec, JobState, WorkerId, now_ms};
use warren_store::{ClaimOutcome, NewJob, Store, StoreOptions, Transition, TransitionOutcome};

/// How long finished jobs are kept in these tests: long enough never to expire mid-test,
/// short enough to tell apart from the provisional TTL of a new record.
pub(crate) const RESULT_TTL: Duration = Duration::from_secs(600);

/// A lease no test outlives unless it means to.
pub(crate) const LEASE: Duration = Duration::from_secs(60);

/// Fails the test instead of hanging when Redis does not answer.
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Connects a store to the test's namespace.
pub(crate) async fn store(ns: &TestNamespace) -> Store {
    let options = StoreOptions {
        result_ttl: RESULT_TTL,
        log_max_lines: 1_000,
        ..StoreOptions::default()
    };
    within("connecting", Store::connect(&redis_url(), ns.ns(), options))
        .await
        .expect("Redis reachable at WARREN_TEST_REDIS_URL")
}

/// A plain connection, to look at keys the way an operator would (TTL, ZSCORE, EXISTS).
pub(crate) async fn raw() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).expect("WARREN_TEST_REDIS_URL is valid");
    within("raw connection", client.get_multiplexed_async_connection())
        .await
        .expect("Redis reachable at WARREN_TEST_REDIS_URL")
}

/// Runs one raw command.
pub(crate) async fn cmd<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    name: &str,
    args: &[&str],
) -> T {
    let mut command = redis::cmd(name);
    for arg in args {
        command.arg(*arg);
    }
    within(name, command.query_async(conn))
        .await
        .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"))
}

/// A spec with a given tenant and queue.
pub(crate) fn spec(tenant: &str, queue: &str) -> JobSpec {
    let mut spec = JobSpec::new("echo", serde_json::json!({ "text": "hi" }));
    spec.tenant = tenant.to_owned();
    spec.queue = queue.to_owned();
    spec
}

/// A fresh job with `spec`, accepted now.
pub(crate) fn new_job(spec: JobSpec) -> NewJob {
    NewJob {
        id: JobId::new(),
        spec,
        created_ms: now_ms(),
    }
}

/// Creates one queued job and returns its id.
pub(crate) async fn create(store: &Store, spec: JobSpec) -> JobId {
    let job = new_job(spec);
    within("create_jobs", store.create_jobs(std::slice::from_ref(&job)))
        .await
        .unwrap();
    job.id
}

/// Applies a transition.
pub(crate) async fn transition(store: &Store, t: Transition) -> TransitionOutcome {
    within("transition", store.transition(&t)).await.unwrap()
}

/// Claims a job at attempt 1 for the `cpu` pool.
pub(crate) async fn claim(
    store: &Store,
    id: JobId,
    worker: &WorkerId,
    lease: Duration,
) -> ClaimOutcome {
    within("claim", store.claim(id, worker, 1, "cpu", lease))
        .await
        .unwrap()
}

/// Creates a job, schedules it and lets `worker` claim it: a running job.
pub(crate) async fn running_job(store: &Store, worker: &WorkerId) -> JobId {
    let id = create(store, spec("team-a", "default")).await;
    assert_eq!(
        transition(
            store,
            Transition::new(id, JobState::Scheduled).set("pool", "cpu")
        )
        .await,
        TransitionOutcome::Done(JobState::Queued)
    );
    assert_eq!(
        claim(store, id, worker, LEASE).await,
        ClaimOutcome::Claimed(JobState::Scheduled)
    );
    id
}

/// Reads a job that must exist.
pub(crate) async fn get(store: &Store, id: JobId) -> warren_store::JobRecord {
    within("get", store.get(id))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {id} exists"))
}

/// Tells whether `id` is a member of the sorted set `key`.
pub(crate) async fn indexed(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    id: JobId,
) -> bool {
    let score: Option<f64> = cmd(conn, "ZSCORE", &[key, &id.to_string()]).await;
    score.is_some()
}
