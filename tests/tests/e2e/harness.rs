//! Starts the real binaries as processes against the real RabbitMQ and Redis, each system in
//! its own namespace, and drives them over HTTP.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use warren_kit::testkit::{TestNamespace, amqp_url, block_on_cleanup, redis_url, wait_until};
use warren_protocol::{PoolName, WorkerId};
use warren_topology::{Topology, TopologyOptions};

fn bin_dir() -> &'static std::path::Path {
    warren_e2e::service_bin_dir()
}

fn log_dir(ns: &str) -> PathBuf {
    let dir = bin_dir().join("e2e-logs").join(ns);
    std::fs::create_dir_all(&dir).expect("creating the log dir");
    dir
}

/// Settings of one worker process.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub(crate) tags: &'static str,
    pub(crate) slots: u32,
    pub(crate) allow: &'static str,
    pub(crate) gpus: u32,
    /// `WARREN_SHUTDOWN_GRACE` of this worker.
    pub(crate) grace: &'static str,
    /// The binary, relative to the target dir (`examples/custom_task` for the example).
    pub(crate) binary: &'static str,
    /// Cores it offers (`WARREN_CPU`; default 8).
    pub(crate) cpu: u32,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            tags: "cpu",
            slots: 2,
            allow: "echo,sleep,sh,false",
            gpus: 0,
            grace: "10s",
            binary: "warren-worker",
            cpu: 8,
        }
    }
}

/// One running Warren system.
pub(crate) struct System {
    pub(crate) ns: TestNamespace,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    submitter: Child,
    scheduler: Child,
    standby_schedulers: Vec<Child>,
    pub(crate) workers: Vec<Child>,
    /// Where the scheduler serves `/metrics` (`http://127.0.0.1:port`).
    pub(crate) scheduler_metrics: String,
    /// Where each worker serves `/metrics`, by index.
    pub(crate) worker_metrics: Vec<String>,
    pools: Vec<PoolName>,
    logs: PathBuf,
    stopped: bool,
}

impl Drop for System {
    /// A test that panicked never reached `stop`: its processes die with their handles
    /// (`kill_on_drop`), and its keys and queues are removed here so a failure leaves nothing
    /// behind either. The logs stay, for the post-mortem.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let (ns, pools) = (self.ns.clone(), self.pools.clone());
        eprintln!("service logs of the failed test: {}", self.logs.display());
        block_on_cleanup(async move {
            ns.cleanup().await;
            teardown(ns.ns(), &pools).await;
        });
    }
}

impl System {
    /// Starts a submitter, a scheduler and the given workers, and waits until the API is
    /// ready and the workers are registered.
    pub(crate) async fn start(name: &str, workers: &[WorkerSpec]) -> Self {
        Self::start_with(name, workers, &[]).await
    }

    /// Starts the system with extra settings for the scheduler (`WARREN_POLICY`, …).
    pub(crate) async fn start_with(
        name: &str,
        workers: &[WorkerSpec],
        scheduler_env: &[(&str, String)],
    ) -> Self {
        let ns = TestNamespace::new(name);
        let logs = log_dir(ns.ns().as_str());
        let port = warren_e2e::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let submitter = spawn(
            &ns,
            &logs,
            "warren-submitter",
            &[
                ("WARREN_HTTP_ADDR", format!("127.0.0.1:{port}")),
                // The tests drive the API without tokens; auth has its own tests.
                ("WARREN_NO_AUTH", "true".to_owned()),
            ],
            "submitter",
        );
        let metrics_port = warren_e2e::free_port();
        let mut env = scheduler_env.to_vec();
        env.push(("WARREN_METRICS_ADDR", format!("127.0.0.1:{metrics_port}")));
        let scheduler = spawn(&ns, &logs, "warren-scheduler", &env, "scheduler");
        let mut system = Self {
            ns,
            base,
            http: reqwest::Client::new(),
            submitter,
            scheduler,
            standby_schedulers: Vec::new(),
            workers: Vec::new(),
            scheduler_metrics: format!("http://127.0.0.1:{metrics_port}"),
            worker_metrics: Vec::new(),
            pools: Vec::new(),
            logs,
            stopped: false,
        };
        system.wait_ready().await;
        for spec in workers {
            system.add_worker(spec).await;
        }
        system
    }

    async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.base);
        let http = self.http.clone();
        wait_until("the submitter to be ready", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let response = http.get(&url).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// Starts one more worker and waits until it is registered. Returns its index.
    pub(crate) async fn add_worker(&mut self, spec: &WorkerSpec) -> usize {
        let before = self.worker_ids().await.len();
        let index = self.workers.len();
        let metrics_port = warren_e2e::free_port();
        let child = spawn(
            &self.ns,
            &self.logs,
            spec.binary,
            &[
                ("WARREN_TAGS", spec.tags.to_owned()),
                ("WARREN_CPU", spec.cpu.to_string()),
                ("WARREN_SLOTS", spec.slots.to_string()),
                ("WARREN_ALLOW_COMMANDS", spec.allow.to_owned()),
                ("WARREN_GPUS", spec.gpus.to_string()),
                ("WARREN_HEARTBEAT_INTERVAL", "300ms".to_owned()),
                ("WARREN_LEASE_TTL", "2s".to_owned()),
                ("WARREN_SHUTDOWN_GRACE", spec.grace.to_owned()),
                ("WARREN_KILL_GRACE", "1s".to_owned()),
                ("WARREN_RETRY_BASE", "200ms".to_owned()),
                ("WARREN_METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
            ],
            &format!("worker-{index}"),
        );
        self.workers.push(child);
        self.worker_metrics
            .push(format!("http://127.0.0.1:{metrics_port}"));
        self.pools
            .push(PoolName::parse_list(spec.tags).expect("valid tags"));
        let this = &*self;
        wait_until(
            "the worker to register",
            Duration::from_secs(30),
            || async move { (this.worker_ids().await.len() > before).then_some(()) },
        )
        .await;
        index
    }

    /// Ids of the live workers.
    pub(crate) async fn worker_ids(&self) -> Vec<String> {
        let Ok(body) = self.get_json("/v1/workers").await else {
            return Vec::new();
        };
        let list = body.get("workers").cloned().unwrap_or(body);
        list.as_array()
            .map(|workers| {
                workers
                    .iter()
                    .filter_map(|w| w["worker_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        Ok(response.json().await?)
    }

    /// Submits a job and returns its id.
    pub(crate) async fn submit(&self, spec: Value) -> String {
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .json(&spec)
            .send()
            .await
            .expect("POST /v1/jobs");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON answer");
        assert_eq!(status.as_u16(), 202, "submit answered {status}: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Reads a job.
    pub(crate) async fn job(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/jobs/{id}"))
            .await
            .expect("GET /v1/jobs/{id}")
    }

    /// Submits jobs in one batch request; returns their ids in order.
    pub(crate) async fn submit_batch(&self, jobs: Vec<Value>) -> Vec<String> {
        let response = self
            .http
            .post(format!("{}/v1/jobs/batch", self.base))
            .json(&json!({ "jobs": jobs }))
            .send()
            .await
            .expect("POST /v1/jobs/batch");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON answer");
        assert_eq!(status.as_u16(), 202, "batch answered {status}: {body}");
        body["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// Waits until a job is in `state` (panics after `timeout`).
    pub(crate) async fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        wait_until(&format!("job {id} to be {state}"), timeout, || async {
            let job = self.job(id).await;
            (job["state"] == state).then_some(job)
        })
        .await
    }

    /// Long-polls until the job is terminal.
    pub(crate) async fn wait_done(&self, id: &str) -> Value {
        let job: Value = self
            .http
            .get(format!("{}/v1/jobs/{id}/wait?timeout_s=60", self.base))
            .send()
            .await
            .expect("wait")
            .json()
            .await
            .expect("JSON");
        let state = job["state"].as_str().unwrap_or("");
        assert!(
            matches!(state, "succeeded" | "failed" | "timed_out" | "cancelled"),
            "job not finished after the long-poll: {job}"
        );
        job
    }

    /// Starts a second scheduler: a hot standby, since intake has a single active consumer.
    pub(crate) fn add_standby_scheduler(&mut self) {
        let index = self.standby_schedulers.len();
        let child = spawn(
            &self.ns,
            &self.logs,
            "warren-scheduler",
            &[],
            &format!("scheduler-standby-{index}"),
        );
        self.standby_schedulers.push(child);
    }

    /// Sends SIGKILL to the first (active) scheduler.
    pub(crate) async fn kill_scheduler(&mut self) {
        signal(&self.scheduler, Signal::SIGKILL);
        let _ = self.scheduler.wait().await;
    }

    /// Sends SIGKILL to the submitter, whatever it is doing.
    pub(crate) async fn kill_submitter(&mut self) {
        signal(&self.submitter, Signal::SIGKILL);
        let _ = self.submitter.wait().await;
    }

    /// Starts a new submitter on the same address (after [`System::kill_submitter`]).
    pub(crate) async fn restart_submitter(&mut self) {
        let addr = self.base.trim_start_matches("http://").to_owned();
        self.submitter = spawn(
            &self.ns,
            &self.logs,
            "warren-submitter",
            &[
                ("WARREN_HTTP_ADDR", addr),
                ("WARREN_NO_AUTH", "true".to_owned()),
            ],
            "submitter-restarted",
        );
        self.wait_ready().await;
    }

    /// Sends SIGKILL to a worker (no drain, no goodbye).
    pub(crate) fn kill_worker(&mut self, index: usize) {
        signal(&self.workers[index], Signal::SIGKILL);
    }

    /// Sends SIGTERM to a worker and waits for it to exit; returns its exit code.
    pub(crate) async fn stop_worker(&mut self, index: usize) -> Option<i32> {
        signal(&self.workers[index], Signal::SIGTERM);
        let status = tokio::time::timeout(Duration::from_secs(30), self.workers[index].wait())
            .await
            .expect("worker exits after SIGTERM")
            .expect("wait");
        status.code()
    }

    /// Stops every process (SIGTERM, checking that each exits cleanly) and deletes the
    /// namespace's keys and queues.
    pub(crate) async fn stop(mut self) {
        let mut children: Vec<(&str, &mut Child)> = vec![];
        children.push(("submitter", &mut self.submitter));
        children.push(("scheduler", &mut self.scheduler));
        for standby in &mut self.standby_schedulers {
            children.push(("standby scheduler", standby));
        }
        for worker in &mut self.workers {
            children.push(("worker", worker));
        }
        let mut codes = HashMap::new();
        for (name, child) in children {
            if child.try_wait().ok().flatten().is_some() {
                continue;
            }
            signal(child, Signal::SIGTERM);
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .unwrap_or_else(|_| panic!("{name} did not stop on SIGTERM"))
                .expect("wait");
            codes.insert(name, status.code());
        }
        for (name, code) in codes {
            assert_eq!(code, Some(0), "{name} exited with {code:?} after SIGTERM");
        }
        self.ns.cleanup().await;
        teardown(self.ns.ns(), &self.pools).await;
        let _ = std::fs::remove_dir_all(&self.logs);
        self.stopped = true;
    }

    /// Publishes a raw copy of a job's envelope to a worker's queue (a duplicate delivery).
    pub(crate) async fn publish_duplicate(&self, worker: &str, job: &Value) {
        let spec: warren_protocol::JobSpec =
            serde_json::from_value(job["spec"].clone()).expect("spec");
        let mut envelope = warren_protocol::JobEnvelope::first_attempt(
            job["id"].as_str().unwrap().parse().unwrap(),
            spec,
            job["created_ms"].as_u64().unwrap_or(0),
            None,
        );
        envelope.attempt = u32::try_from(job["attempt"].as_u64().unwrap_or(1)).unwrap();
        let pools = warren_topology::connect_pool(&amqp_url(), "e2e", 1)
            .await
            .unwrap();
        let topology = Topology::new(self.ns.ns().clone(), TopologyOptions::default())
            .with_signing(Some(
                warren_topology::SigningKeys::parse(SIGNING_KEY).unwrap(),
            ));
        let publisher = warren_topology::Publisher::open(&pools, &topology)
            .await
            .unwrap();
        let worker = WorkerId::from_raw(worker);
        tokio::time::timeout(Duration::from_secs(10), async {
            publisher
                .send_worker(&worker, &envelope)
                .await?
                .confirmed()
                .await
        })
        .await
        .expect("publish in time")
        .expect("duplicate published");
        pools.close();
    }

    /// Deletes every rung of the delay ladder, so that publishing a delayed job fails as
    /// unroutable: a way to make a submission fail after its other messages were confirmed.
    pub(crate) async fn delete_delay_ladder(&self) {
        let pools = warren_topology::connect_pool(&amqp_url(), "e2e", 1)
            .await
            .unwrap();
        let topology = Topology::new(self.ns.ns().clone(), TopologyOptions::default());
        let channel = Topology::channel(&pools).await.unwrap();
        for rung in 0..warren_topology::DELAY_RUNGS {
            channel
                .queue_delete(topology.delay_queue(rung).into(), Default::default())
                .await
                .unwrap();
        }
        pools.close();
    }

    /// Counts messages waiting in a worker's queue.
    pub(crate) async fn worker_queue_depth(&self, worker: &str) -> u32 {
        let pools = warren_topology::connect_pool(&amqp_url(), "e2e", 1)
            .await
            .unwrap();
        let topology = Topology::new(self.ns.ns().clone(), TopologyOptions::default());
        let channel = Topology::channel(&pools).await.unwrap();
        let queue = channel
            .queue_declare(
                topology.worker_queue(&WorkerId::from_raw(worker)).into(),
                warren_topology::lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        let count = queue.message_count();
        pools.close();
        count
    }

    /// Tells whether any worker's log has a line with `text` (the logs are written as the
    /// services run, so this sees what happened so far).
    pub(crate) fn worker_logs_contain(&self, text: &str) -> bool {
        (0..self.workers.len()).any(|i| {
            std::fs::read_to_string(self.logs.join(format!("worker-{i}.log")))
                .is_ok_and(|log| log.contains(text))
        })
    }

    /// Reads a job's log lines.
    pub(crate) async fn log_lines(&self, id: &str) -> Vec<String> {
        let body = self
            .get_json(&format!("/v1/jobs/{id}/logs"))
            .await
            .expect("logs");
        body["lines"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|l| l["line"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Deletes the namespace's queues and exchanges.
async fn teardown(ns: &warren_protocol::Namespace, pools: &[PoolName]) {
    let Ok(conn) = warren_topology::connect_pool(&amqp_url(), "e2e-teardown", 1).await else {
        return;
    };
    let topology = Topology::new(ns.clone(), TopologyOptions::default());
    if let Ok(channel) = Topology::channel(&conn).await {
        let _ = warren_topology::teardown(&channel, &topology, pools).await;
    }
    conn.close();
}

/// Every service of the system signs and checks job messages, as in compose: the whole flow
/// (intake, placement, retries through the delay ladder, cancels) runs signed.
const SIGNING_KEY: &str = "e2e-signing-key-0123456789abcdef";

fn spawn(
    ns: &TestNamespace,
    logs: &std::path::Path,
    binary: &str,
    env: &[(&str, String)],
    log_name: &str,
) -> Child {
    let log = std::fs::File::create(logs.join(format!("{log_name}.log"))).expect("log file");
    let mut cmd = Command::new(bin_dir().join(binary));
    cmd.env("WARREN_AMQP_URL", amqp_url())
        .env("WARREN_REDIS_URL", redis_url())
        .env("WARREN_NAMESPACE", ns.ns().as_str())
        .env("WARREN_RESULT_TTL", "10m")
        .env("WARREN_SIGNING_KEY", SIGNING_KEY)
        .env(
            "RUST_LOG",
            "info,warren_worker=debug,warren_scheduler=debug,lapin=warn",
        )
        .env("WARREN_LOG_FORMAT", "pretty")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("starting {binary}: {e}"))
}

fn signal(child: &Child, signal: Signal) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal);
    }
}

/// A noop-ish spec helper.
pub(crate) fn spec(task: &str, args: Value) -> Value {
    json!({ "task": task, "args": args })
}
