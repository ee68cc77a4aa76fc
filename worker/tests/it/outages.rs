//! Redis outages seen by a running job (issue 6, item 2), against a redis-server of the
//! test's own, so the shared one is never touched.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::JobState;
use warren_worker::Worker;

use crate::support::{Harness, args, spec};

/// A redis-server on a free port, with no persistence; killed (after a SIGCONT, should it
/// be stopped) when dropped, also when the test panics.
struct PrivateRedis {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl PrivateRedis {
    async fn start(name: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("warren-{name}-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let redis = Self { child, port, dir };
        let url = redis.url();
        wait_until("the private redis-server", Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let client = redis::Client::open(url).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
        })
        .await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Redis frozen (SIGSTOP, so its data survives) for longer than the lease: the lease key
/// has expired when it comes back, yet nobody took the job over. The worker takes its lease
/// again and the job ends `succeeded`. Before the fix the renewal read the missing key as a
/// takeover and the job ended `cancelled`.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_longer_than_the_lease_does_not_cancel_running_jobs() {
    let ns = TestNamespace::new("worker_redis_outage");
    let redis = PrivateRedis::start("worker-redis-outage").await;
    let mut worker_args = args(&ns);
    worker_args.common.redis.url = redis.url();
    let lease = worker_args.lease_ttl;
    let h = Harness::start_with_redis(ns, Worker::builder().build(worker_args), &redis.url()).await;

    let id = h.dispatch(spec("sleep", json!({"ms": 7000}))).await;
    let store = h.store.clone();
    wait_until("the job to run", Duration::from_secs(10), || {
        let store = store.clone();
        async move { (store.lease_holder(id).await.ok()??.as_str() != "").then_some(()) }
    })
    .await;

    redis.signal("-STOP");
    // The outage itself is what the test is about: it must outlast the lease.
    tokio::time::sleep(lease + Duration::from_millis(1500)).await;
    redis.signal("-CONT");

    let job = h.wait_terminal(id).await;
    assert_eq!(
        job.state,
        JobState::Succeeded,
        "the outage cancelled the job: {job:?}"
    );
    assert_eq!(job.takeovers, 0);
    h.stop().await;
    drop(redis);
}

/// The sweeper returned a job to the pending index while its worker was cut off from Redis
/// (the worker's heartbeat and lease had both lapsed). When the worker sees that, it stops
/// the job and leaves the record to the job's new owner. Before the fix it recorded the
/// stop as `cancelled`, though no client had cancelled anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_taken_from_its_worker_is_not_marked_cancelled() {
    let ns = TestNamespace::new("worker_taken_not_cancelled");
    let h = Harness::start(ns.clone(), Worker::builder().build(args(&ns))).await;
    let id = h.dispatch(spec("sleep", json!({"ms": 20_000}))).await;
    let store = h.store.clone();
    wait_until("the job to run", Duration::from_secs(10), || {
        let store = store.clone();
        async move { store.lease_holder(id).await.ok()?.map(|_| ()) }
    })
    .await;

    // What the sweeper does to a job whose worker looks dead.
    let back = warren_store::Transition::new(id, JobState::Queued)
        .at_attempt(1)
        .releasing_lease();
    h.store.transition(&back).await.unwrap();

    let worker = h.worker().clone();
    let beat = |after_ms: u64| {
        let (store, worker) = (store.clone(), worker.clone());
        async move {
            let workers = store.live_workers().await.ok()?;
            let beat = workers.into_iter().find(|w| w.worker_id == worker)?;
            (beat.running.is_empty() && beat.sent_at_ms > after_ms).then_some(beat.sent_at_ms)
        }
    };
    let stopped_at = wait_until(
        "the worker to stop the job",
        Duration::from_secs(10),
        || beat(0),
    )
    .await;
    // The stop is recorded (or not) right after the job leaves the running set; a heartbeat
    // sent well after that one proves the worker has moved on.
    wait_until("a later heartbeat", Duration::from_secs(10), || {
        beat(stopped_at + 500)
    })
    .await;
    let job = h.store.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued, "{job:?}");
    assert_eq!(job.error, None);
    h.stop().await;
}
