use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warren_kit::testkit::{TestNamespace, amqp_url, block_on_cleanup, redis_url, wait_until};
use warren_kit::{AmqpArgs, CommonArgs, RedisArgs, ShutdownArgs};
use warren_protocol::{JobEnvelope, JobId, JobSpec, PoolName, WorkerId, now_ms};
use warren_store::{JobRecord, NewJob, Store, StoreOptions};
use warren_topology::{AmqpPool, Publisher, Topology, TopologyOptions};
use warren_worker::{Worker, WorkerArgs};

pub(crate) struct Harness {
    pub(crate) ns: TestNamespace,
    pub(crate) store: Store,
    pub(crate) publisher: Publisher,
    pub(crate) pool: PoolName,
    /// The worker under test, once it has sent a heartbeat.
    pub(crate) worker_id: Option<WorkerId>,
    amqp: AmqpPool,
    stop: CancellationToken,
    worker: Option<JoinHandle<anyhow::Result<()>>>,
    /// Set by `stop`, which cleans up itself.
    stopped: bool,
}

pub(crate) fn args(ns: &TestNamespace) -> WorkerArgs {
    WorkerArgs {
        common: CommonArgs {
            amqp: AmqpArgs::new(amqp_url()),
            redis: RedisArgs::new(redis_url()),
            namespace: ns.ns().clone(),
            result_ttl: Duration::from_secs(600),
            signing: Default::default(),
        },
        shutdown: ShutdownArgs {
            shutdown_grace: Duration::from_secs(5),
        },
        tags: PoolName::parse_list("cpu").unwrap(),
        slots: 2,
        cpu: 1,
        mem_mb: 1024,
        gpus: 0,
        allow_commands: vec!["echo".into()],
        heartbeat_interval: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(2),
        default_timeout: Duration::from_secs(30),
        kill_grace: Duration::from_secs(1),
        retry_base: Duration::from_millis(100),
        retry_strategy: warren_protocol::BackoffStrategy::Exponential,
        retry_max: Duration::from_secs(3600),
        retry_jitter: false,
        pass_env: vec![],
        exec_path: "/usr/local/bin:/usr/bin:/bin".into(),
        allow_cwd: vec![],
        job_dir_root: std::env::temp_dir(),
        limits: Default::default(),
        confinement: Default::default(),
        metrics: warren_kit::MetricsArgs { metrics_addr: None },
    }
}

impl Drop for Harness {
    /// A test that panicked never reached `stop`: remove what it made anyway.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.stop.cancel();
        let (ns, topology, pool, worker_id) = (
            self.ns.clone(),
            self.publisher.topology().clone(),
            self.pool.clone(),
            self.worker_id.clone(),
        );
        block_on_cleanup(async move {
            ns.cleanup().await;
            if let Ok(amqp) = warren_topology::connect_pool(&amqp_url(), "cleanup", 1).await
                && let Ok(channel) = Topology::channel(&amqp).await
            {
                if let Some(worker_id) = worker_id {
                    let queue = topology.worker_queue(&worker_id);
                    let _ = channel
                        .queue_delete(queue.as_str().into(), Default::default())
                        .await;
                }
                let _ = warren_topology::teardown(&channel, &topology, &[pool]).await;
            }
        });
    }
}

impl Harness {
    /// Starts `worker` in-process and waits for its first heartbeat.
    pub(crate) async fn start(ns: TestNamespace, worker: Worker) -> Self {
        let mut h = Self::connect(ns).await;
        h.worker = Some(tokio::spawn(worker.run(h.stop.child_token())));
        h.wait_for_worker().await;
        h
    }

    /// Starts `worker` against the Redis at `redis` (a test's private one).
    pub(crate) async fn start_with_redis(ns: TestNamespace, worker: Worker, redis: &str) -> Self {
        let mut h = Self::connect_with_redis(ns, redis).await;
        h.worker = Some(tokio::spawn(worker.run(h.stop.child_token())));
        h.wait_for_worker().await;
        h
    }

    /// Declares the topology and connects, with no worker: the test starts its own.
    pub(crate) async fn connect(ns: TestNamespace) -> Self {
        Self::connect_with_redis(ns, &redis_url()).await
    }

    async fn connect_with_redis(ns: TestNamespace, redis: &str) -> Self {
        let store = Store::connect(redis, ns.ns(), StoreOptions::default())
            .await
            .expect("Redis reachable at WARREN_TEST_REDIS_URL");
        let amqp = warren_topology::connect_pool(&amqp_url(), "worker-it", 1)
            .await
            .expect("RabbitMQ reachable at WARREN_TEST_AMQP_URL");
        // Same arguments as the worker declares (no x-expires); `stop` tears it all down.
        let topology = Topology::new(ns.ns().clone(), TopologyOptions::default());
        let publisher = Publisher::open(&amqp, &topology).await.unwrap();
        let pool = PoolName::parse_list("cpu").unwrap();
        warren_topology::declare_core(publisher.channel(), &topology)
            .await
            .unwrap();
        warren_topology::declare_pool(publisher.channel(), &topology, &pool)
            .await
            .unwrap();
        Self {
            ns,
            store,
            publisher,
            pool,
            worker_id: None,
            amqp,
            stop: CancellationToken::new(),
            worker: None,
            stopped: false,
        }
    }

    /// Waits for a worker's first heartbeat, and learns its id (it declares its own queue
    /// before it first beats).
    pub(crate) async fn wait_for_worker(&mut self) {
        let probe = self.store.clone();
        let worker_id = wait_until(
            "the worker's first heartbeat",
            Duration::from_secs(10),
            || {
                let probe = probe.clone();
                async move { Some(probe.live_workers().await.ok()?.first()?.worker_id.clone()) }
            },
        )
        .await;
        self.worker_id = Some(worker_id);
    }

    /// The worker under test (after `wait_for_worker`).
    pub(crate) fn worker(&self) -> &WorkerId {
        self.worker_id
            .as_ref()
            .expect("wait_for_worker ran before anything is sent to the worker")
    }

    /// Writes a job to Redis and publishes it to the worker's queue, as the scheduler would.
    pub(crate) async fn dispatch(&self, spec: JobSpec) -> JobId {
        let envelope = self.record(spec).await;
        self.publish(&envelope).await;
        envelope.job_id
    }

    /// Writes a job to Redis only; returns the message that would send it.
    pub(crate) async fn record(&self, spec: JobSpec) -> JobEnvelope {
        let id = JobId::new();
        let created = now_ms();
        self.store
            .create_jobs(&[NewJob {
                id,
                spec: spec.clone(),
                created_ms: created,
            }])
            .await
            .unwrap();
        JobEnvelope::first_attempt(id, spec, created, None)
    }

    pub(crate) async fn publish(&self, envelope: &JobEnvelope) {
        tokio::time::timeout(Duration::from_secs(10), async {
            self.publisher
                .send_worker(self.worker(), envelope)
                .await?
                .confirmed()
                .await
        })
        .await
        .expect("publish in time")
        .expect("publish confirmed");
    }

    pub(crate) async fn wait_terminal(&self, id: JobId) -> JobRecord {
        let store = self.store.clone();
        wait_until(
            &format!("job {id} to finish"),
            Duration::from_secs(20),
            || {
                let store = store.clone();
                async move {
                    let job = store.get(id).await.ok()??;
                    job.state.is_terminal().then_some(job)
                }
            },
        )
        .await
    }

    /// Stops the worker, proving a clean shutdown, and removes everything the test made.
    pub(crate) async fn stop(mut self) {
        self.stopped = true;
        self.stop.cancel();
        if let Some(handle) = self.worker.take() {
            tokio::time::timeout(Duration::from_secs(20), handle)
                .await
                .expect("worker stops in time")
                .expect("worker task did not panic")
                .expect("worker stopped cleanly");
        }
        let topology = self.publisher.topology().clone();
        if let Some(worker_id) = &self.worker_id {
            let _ = self
                .publisher
                .channel()
                .queue_delete(
                    topology.worker_queue(worker_id).as_str().into(),
                    Default::default(),
                )
                .await;
        }
        let _ =
            warren_topology::teardown(self.publisher.channel(), &topology, &[self.pool.clone()])
                .await;
        self.amqp.close();
        self.ns.cleanup().await;
    }
}

pub(crate) fn spec(task: &str, args: Value) -> JobSpec {
    JobSpec::new(task, args)
}
