use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warren_kit::testkit::{TestNamespace, amqp_url, block_on_cleanup, redis_url, wait_until};
use warren_kit::{AmqpArgs, CommonArgs, RedisArgs};
use warren_protocol::{
    Heartbeat, JobEnvelope, JobId, JobSpec, PoolName, WorkerId, WorkerResources, now_ms,
};
use warren_scheduler::policy::Preset;
use warren_scheduler::{PolicyArgs, SchedulerArgs};
use warren_store::{NewJob, Store, StoreOptions};
use warren_topology::lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use warren_topology::{AmqpPool, Publisher, Topology, TopologyOptions};

pub(crate) struct Harness {
    pub(crate) ns: TestNamespace,
    pub(crate) store: Store,
    pub(crate) publisher: Publisher,
    pub(crate) topology: Topology,
    amqp: AmqpPool,
    stop: CancellationToken,
    scheduler: Option<JoinHandle<anyhow::Result<()>>>,
    workers: Vec<WorkerId>,
    args: SchedulerArgs,
    beats: std::collections::HashMap<String, CancellationToken>,
    standbys: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Harness {
    /// A test that panicked never reached `stop`: remove what it made anyway.
    fn drop(&mut self) {
        if self.scheduler.is_none() {
            return;
        }
        self.stop.cancel();
        let (ns, topology, workers) =
            (self.ns.clone(), self.topology.clone(), self.workers.clone());
        block_on_cleanup(async move {
            ns.cleanup().await;
            if let Ok(amqp) = warren_topology::connect_pool(&amqp_url(), "cleanup", 1).await
                && let Ok(channel) = Topology::channel(&amqp).await
            {
                teardown(&channel, &topology, &workers).await;
            }
        });
    }
}

impl Harness {
    pub(crate) async fn start(name: &str, credit_slack: u32) -> Self {
        Self::start_with(
            name,
            PolicyArgs {
                credit_slack,
                ..PolicyArgs::default()
            },
        )
        .await
    }

    pub(crate) async fn start_with_preset(name: &str, preset: Preset, credit_slack: u32) -> Self {
        Self::start_with(
            name,
            PolicyArgs {
                policy: preset,
                credit_slack,
                ..PolicyArgs::default()
            },
        )
        .await
    }

    pub(crate) async fn start_with(name: &str, policy: PolicyArgs) -> Self {
        Self::start_full(name, policy, None).await
    }

    /// A scheduler (and a harness publisher) that sign and check job messages with `key`.
    pub(crate) async fn start_signed(name: &str, key: &str) -> Self {
        Self::start_full(name, PolicyArgs::default(), Some(key)).await
    }

    async fn start_full(name: &str, policy: PolicyArgs, key: Option<&str>) -> Self {
        // Logs show with `RUST_LOG=warren_scheduler=debug cargo test -- --nocapture`.
        warren_kit::telemetry::init(&warren_kit::TelemetryArgs {
            log_format: warren_kit::args::LogFormat::Pretty,
        });
        let ns = TestNamespace::new(name);
        let store = Store::connect(&redis_url(), ns.ns(), StoreOptions::default())
            .await
            .expect("Redis reachable at WARREN_TEST_REDIS_URL");
        let amqp = warren_topology::connect_pool(&amqp_url(), "scheduler-it", 1)
            .await
            .expect("RabbitMQ reachable at WARREN_TEST_AMQP_URL");
        let topology = Topology::new(ns.ns().clone(), TopologyOptions::default())
            .with_signing(key.map(|k| warren_topology::SigningKeys::parse(k).unwrap()));
        let publisher = Publisher::open(&amqp, &topology).await.unwrap();
        warren_topology::declare_core(publisher.channel(), &topology)
            .await
            .unwrap();
        let args = SchedulerArgs {
            common: CommonArgs {
                amqp: AmqpArgs::new(amqp_url()),
                redis: RedisArgs::new(redis_url()),
                namespace: ns.ns().clone(),
                result_ttl: Duration::from_secs(600),
                signing: warren_kit::args::SigningArgs {
                    key: key.map(str::to_owned),
                    key_file: None,
                },
            },
            prefetch: 100,
            policy,
            leader_ttl: Duration::from_secs(2),
            metrics: warren_kit::MetricsArgs { metrics_addr: None },
            lifecycle: warren_scheduler::LifecycleArgs::default(),
        };
        let stop = CancellationToken::new();
        let scheduler = tokio::spawn(warren_scheduler::run(args.clone(), stop.child_token()));
        Self {
            ns,
            store,
            publisher,
            topology,
            amqp,
            stop,
            scheduler: Some(scheduler),
            workers: Vec::new(),
            args,
            beats: std::collections::HashMap::new(),
            standbys: Vec::new(),
        }
    }

    /// Announces a worker with `slots` and `gpus` (4 cores) tagged `pool`, as a real worker's
    /// heartbeat would, and declares its queue (a real worker declares it before consuming).
    pub(crate) async fn worker(&mut self, id: &str, pool: &str, slots: u32, gpus: u32) {
        self.worker_with(id, pool, slots, 4, gpus).await;
    }

    pub(crate) async fn worker_with(
        &mut self,
        id: &str,
        pool: &str,
        slots: u32,
        cpu: u32,
        gpus: u32,
    ) {
        let pool = PoolName::parse_list(pool).unwrap();
        let worker_id = WorkerId::from_raw(id);
        warren_topology::declare_worker_queue(self.publisher.channel(), &self.topology, &worker_id)
            .await
            .unwrap();
        self.workers.push(worker_id);
        let heartbeat = Heartbeat {
            worker_id: WorkerId::from_raw(id),
            pool,
            hostname: "test".into(),
            slots,
            busy: 0,
            running: vec![],
            resources: WorkerResources {
                cpu,
                mem_mb: 4096,
                gpus,
            },
            allowed_commands: vec![],
            tasks: vec![],
            load1: 0.0,
            interval_ms: 1_000,
            started_at_ms: now_ms(),
            sent_at_ms: now_ms(),
            draining: false,
        };
        // Like a real worker, keep beating: the scheduler may not be listening yet.
        let stop = self.stop.child_token();
        self.beats.insert(id.to_owned(), stop.clone());
        let (publisher, exchange) = (self.publisher.clone(), self.topology.events_exchange());
        tokio::spawn(async move {
            let body = serde_json::to_vec(&heartbeat).unwrap();
            while !stop.is_cancelled() {
                let _ = publisher.emit(&exchange, "worker.heartbeat", &body).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// Stops a worker's heartbeats, as if it had died.
    pub(crate) fn silence(&mut self, id: &str) {
        if let Some(beat) = self.beats.remove(id) {
            beat.cancel();
        }
    }

    /// Starts a second scheduler on the same namespace: a standby until the lease is free.
    pub(crate) fn start_standby(&mut self) {
        let handle = tokio::spawn(warren_scheduler::run(
            self.args.clone(),
            self.stop.child_token(),
        ));
        self.standbys.push(handle);
    }

    /// Kills the first scheduler without a goodbye (its lease must lapse), like `kill -9`.
    pub(crate) async fn kill_active(&mut self) {
        let handle = self.scheduler.take().unwrap();
        handle.abort();
        let _ = handle.await;
        // `stop` awaits a scheduler: the standby is the one left.
        self.scheduler = self.standbys.pop();
    }

    /// Accepts a job as the submitter would: Redis first, then intake.
    pub(crate) async fn submit(&self, spec: JobSpec) -> JobId {
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
        let envelope = JobEnvelope::first_attempt(id, spec, created, None);
        self.publisher
            .send_intake(&envelope)
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
        id
    }

    /// Messages waiting in a worker's queue.
    pub(crate) async fn depth(&self, worker: &str) -> u32 {
        let queue = self
            .publisher
            .channel()
            .queue_declare(
                self.topology
                    .worker_queue(&WorkerId::from_raw(worker))
                    .into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        queue.message_count()
    }

    /// Takes the next message off a worker's queue, as the worker would (and acks it).
    pub(crate) async fn take(&self, worker: &str) -> JobEnvelope {
        self.take_within(worker, Duration::from_secs(10)).await
    }

    /// [`take`](Self::take), waiting up to `timeout`.
    pub(crate) async fn take_within(&self, worker: &str, timeout: Duration) -> JobEnvelope {
        let queue = self.topology.worker_queue(&WorkerId::from_raw(worker));
        let channel = self.publisher.channel().clone();
        let message = wait_until("a message in the worker's queue", timeout, || {
            let (channel, queue) = (channel.clone(), queue.clone());
            async move {
                channel
                    .basic_get(queue.as_str().into(), BasicGetOptions::default())
                    .await
                    .ok()?
            }
        })
        .await;
        message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        JobEnvelope::from_bytes(&message.delivery.data).unwrap()
    }

    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.scheduler.take().unwrap())
            .await
            .expect("scheduler stops in time")
            .expect("no panic")
            .expect("scheduler stopped cleanly");
        teardown(self.publisher.channel(), &self.topology, &self.workers).await;
        self.amqp.close();
        self.ns.cleanup().await;
    }
}

/// Deletes the namespace's queues and exchanges, workers' queues included.
async fn teardown(
    channel: &warren_topology::lapin::Channel,
    topology: &Topology,
    workers: &[WorkerId],
) {
    for worker in workers {
        let _ = channel
            .queue_delete(
                topology.worker_queue(worker).as_str().into(),
                Default::default(),
            )
            .await;
    }
    let _ = warren_topology::teardown(channel, topology, &[]).await;
}
