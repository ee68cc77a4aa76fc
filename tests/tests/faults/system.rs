//! One Warren system per scenario: the real binaries as processes, against the shared broker
//! and Redis or a test's own, in a namespace of its own, with a ledger the jobs write.

use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Where the services of a scenario connect.
#[derive(Debug, Clone)]
pub(crate) struct Infra {
    pub(crate) amqp: String,
    pub(crate) redis: String,
    /// The CA that an `amqps://` broker's certificate is checked against
    /// (`WARREN_AMQP_CA_FILE`).
    pub(crate) amqp_ca: Option<PathBuf>,
    /// More settings every service gets (quorum queues, Redis Sentinel).
    pub(crate) env: Vec<(&'static str, String)>,
}

impl Infra {
    pub(crate) fn shared() -> Self {
        Self::new(amqp_url(), redis_url())
    }

    pub(crate) fn new(amqp: String, redis: String) -> Self {
        Self {
            amqp,
            redis,
            amqp_ca: None,
            env: Vec::new(),
        }
    }

    /// Connects to the scenario's broker as the services do (with the CA file, if any).
    pub(crate) async fn connect(
        &self,
        name: &str,
    ) -> Result<warren_topology::AmqpPool, warren_topology::TopologyError> {
        let ca_pem = self
            .amqp_ca
            .as_ref()
            .map(|ca| std::fs::read_to_string(ca).expect("reading the CA file"));
        warren_topology::connect_pool_tls(&self.amqp, name, 1, ca_pem).await
    }
}

/// Settings of one worker process.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub(crate) slots: u32,
    pub(crate) grace: &'static str,
    /// The broker URL when not the system's (a worker behind a proxy).
    pub(crate) amqp: Option<String>,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            slots: 2,
            grace: "10s",
            amqp: None,
        }
    }
}

/// Which process.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Proc {
    Submitter,
    Scheduler(usize),
    Worker(usize),
}

/// What became of one submission.
#[derive(Debug, Clone)]
pub(crate) struct Submitted {
    /// The client's own name for it, written to the ledger by the job.
    pub(crate) tag: String,
    pub(crate) outcome: Answer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 202, with the job's id.
    Accepted(String),
    /// 503 (or 429): the job must never run.
    Refused(u16),
    /// No answer (the connection broke, or the client gave up): either may be true.
    Unknown(String),
}

/// One running Warren system.
pub(crate) struct System {
    pub(crate) name: String,
    pub(crate) ns: TestNamespace,
    pub(crate) infra: Infra,
    pub(crate) base: String,
    port: u16,
    pub(crate) http: reqwest::Client,
    submitter: Option<Child>,
    submitter_env: Vec<(&'static str, String)>,
    schedulers: Vec<Option<Child>>,
    workers: Vec<Option<Child>>,
    /// Each worker's id, once registered.
    registered: Vec<Option<String>>,
    pub(crate) dir: PathBuf,
    pub(crate) ledger: PathBuf,
    stopped: bool,
    next_tag: usize,
}

impl Drop for System {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        eprintln!(
            "[{}] service logs of the failed scenario: {}",
            self.name,
            self.dir.display()
        );
        let (ns, infra) = (self.ns.clone(), self.infra.clone());
        block_on_cleanup(async move {
            ns.cleanup().await;
            teardown(&infra, ns.ns()).await;
        });
    }
}

impl System {
    /// Starts a submitter, `schedulers` schedulers (the first is the active one) and the
    /// workers, and waits until the API is ready and every worker is registered.
    pub(crate) async fn start(
        name: &str,
        infra: Infra,
        schedulers: usize,
        workers: &[WorkerSpec],
        submitter_env: &[(&'static str, String)],
    ) -> Self {
        let ns = TestNamespace::new(&format!("faults_{name}"));
        let dir = bin_dir().join("faults-logs").join(ns.ns().as_str());
        std::fs::create_dir_all(&dir).expect("scenario dir");
        let ledger = dir.join("ledger");
        std::fs::write(&ledger, "").expect("ledger");
        let port = warren_e2e::free_port();
        let mut sys = Self {
            name: name.to_owned(),
            ns,
            infra,
            base: format!("http://127.0.0.1:{port}"),
            port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            submitter: None,
            submitter_env: submitter_env.to_vec(),
            schedulers: Vec::new(),
            workers: Vec::new(),
            registered: Vec::new(),
            dir,
            ledger,
            stopped: false,
            next_tag: 0,
        };
        sys.start_submitter().await;
        for _ in 0..schedulers {
            sys.add_scheduler();
        }
        if schedulers > 0 {
            sys.wait_ready().await;
        }
        for spec in workers {
            sys.add_worker(spec).await;
        }
        sys
    }

    fn spawn(&self, binary: &str, env: &[(&str, String)], log_name: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{log_name}.log")))
            .expect("log file");
        let mut cmd = Command::new(bin_dir().join(binary));
        cmd.env("WARREN_AMQP_URL", &self.infra.amqp)
            .env("WARREN_REDIS_URL", &self.infra.redis)
            .env("WARREN_NAMESPACE", self.ns.ns().as_str())
            .env("WARREN_RESULT_TTL", "10m")
            .env(
                "RUST_LOG",
                "info,warren_worker=debug,warren_scheduler=debug,lapin=warn",
            )
            .env("WARREN_LOG_FORMAT", "pretty")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(ca) = &self.infra.amqp_ca {
            cmd.env("WARREN_AMQP_CA_FILE", ca);
        }
        for (key, value) in self.infra.env.iter().chain(env) {
            cmd.env(key, value);
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"))
    }

    /// Starts the submitter (again, after a kill) on the same port.
    pub(crate) async fn start_submitter(&mut self) {
        let mut env = vec![
            ("WARREN_HTTP_ADDR", format!("127.0.0.1:{}", self.port)),
            ("WARREN_NO_AUTH", "true".to_owned()),
        ];
        env.extend(self.submitter_env.iter().cloned());
        self.submitter = Some(self.spawn("warren-submitter", &env, "submitter"));
        let url = format!("{}/healthz", self.base);
        let http = self.http.clone();
        wait_until("the submitter to listen", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let response = http.get(&url).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
    }

    /// Starts one more scheduler (the first one takes the lead; later ones stand by).
    pub(crate) fn add_scheduler(&mut self) -> usize {
        let index = self.schedulers.len();
        let child = self.spawn(
            "warren-scheduler",
            // A poison job fails after two lost workers rather than five: the poison
            // scenario kills a worker per run, and each takes a lease to notice.
            &[
                ("WARREN_LEADER_TTL", "2s".to_owned()),
                ("WARREN_MAX_TAKEOVERS", "2".to_owned()),
            ],
            &format!("scheduler-{index}"),
        );
        self.schedulers.push(Some(child));
        index
    }

    /// Waits until `/readyz` is 200 (Redis, RabbitMQ and an active scheduler).
    pub(crate) async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.base);
        let http = self.http.clone();
        wait_until("the system to be ready", Duration::from_secs(60), || {
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
        let before: HashSet<String> = self.worker_ids().await.into_iter().collect();
        let index = self.start_worker(spec);
        let this = &*self;
        let id = wait_until("the worker to register", Duration::from_secs(30), || {
            let before = &before;
            async move {
                this.worker_ids()
                    .await
                    .into_iter()
                    .find(|id| !before.contains(id))
            }
        })
        .await;
        self.registered[index] = Some(id);
        index
    }

    /// Starts one more worker without waiting for it.
    pub(crate) fn start_worker(&mut self, spec: &WorkerSpec) -> usize {
        let index = self.workers.len();
        let mut env = vec![
            ("WARREN_TAGS", "cpu".to_owned()),
            ("WARREN_CPU", "8".to_owned()),
            ("WARREN_SLOTS", spec.slots.to_string()),
            ("WARREN_ALLOW_COMMANDS", "sh".to_owned()),
            ("WARREN_HEARTBEAT_INTERVAL", "300ms".to_owned()),
            ("WARREN_LEASE_TTL", "2s".to_owned()),
            ("WARREN_SHUTDOWN_GRACE", spec.grace.to_owned()),
            ("WARREN_KILL_GRACE", "1s".to_owned()),
            ("WARREN_RETRY_BASE", "200ms".to_owned()),
        ];
        if let Some(amqp) = &spec.amqp {
            env.push(("WARREN_AMQP_URL", amqp.clone()));
        }
        let child = self.spawn("warren-worker", &env, &format!("worker-{index}"));
        self.workers.push(Some(child));
        self.registered.push(None);
        index
    }

    /// The id of worker `index` (started with `add_worker`).
    pub(crate) fn worker_id(&self, index: usize) -> String {
        self.registered[index].clone().expect("a registered worker")
    }

    fn child(&mut self, which: Proc) -> &mut Option<Child> {
        match which {
            Proc::Submitter => &mut self.submitter,
            Proc::Scheduler(i) => &mut self.schedulers[i],
            Proc::Worker(i) => &mut self.workers[i],
        }
    }

    /// `kill -9`, and waits for the process to be gone.
    pub(crate) async fn kill(&mut self, which: Proc) {
        if let Some(mut child) = self.child(which).take() {
            signal(&child, Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }

    /// SIGTERM, and waits (up to a minute) for the process to exit; returns its exit code.
    pub(crate) async fn terminate(&mut self, which: Proc) -> Option<i32> {
        let mut child = self.child(which).take()?;
        signal(&child, Signal::SIGTERM);
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait");
        status.code()
    }

    /// Whether the process has exited by itself (e.g. killed by a job).
    pub(crate) fn exited(&mut self, which: Proc) -> bool {
        match self.child(which) {
            Some(child) => child.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// How many workers were started (dead ones included).
    pub(crate) fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// True (once) when worker `index` has died by itself: its handle is dropped.
    pub(crate) fn reap_worker(&mut self, index: usize) -> bool {
        let dead = self.workers[index]
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_some());
        if dead {
            self.workers[index] = None;
        }
        dead
    }

    /// Ids of the live workers.
    pub(crate) async fn worker_ids(&self) -> Vec<String> {
        self.workers_json()
            .await
            .iter()
            .filter_map(|w| w["worker_id"].as_str().map(str::to_owned))
            .collect()
    }

    async fn workers_json(&self) -> Vec<Value> {
        let Ok(body) = self.get_json("/v1/workers").await else {
            return Vec::new();
        };
        let list = body.get("workers").cloned().unwrap_or(body);
        list.as_array().cloned().unwrap_or_default()
    }

    pub(crate) async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    fn tag(&mut self) -> String {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// A job that writes `ID ATTEMPT TAG start` to the ledger, sleeps `secs`, and writes
    /// `… end`. Each line is one `O_APPEND` write shorter than `PIPE_BUF`, so lines from
    /// concurrent jobs never interleave.
    pub(crate) fn ledger_job(&mut self, secs: f64) -> (String, Value) {
        let tag = self.tag();
        let script = "echo \"$WARREN_JOB_ID $WARREN_ATTEMPT $2 start\" >> \"$1\"; sleep \"$3\"; \
                      echo \"$WARREN_JOB_ID $WARREN_ATTEMPT $2 end\" >> \"$1\"";
        let spec = json!({"task": "command", "args": {"argv": [
            "sh", "-c", script, "sh", self.ledger.to_string_lossy(), tag, secs.to_string()
        ]}});
        (tag, spec)
    }

    /// A job that writes its `start` line and then kills its worker (`kill -9` of its
    /// parent): a poison job.
    pub(crate) fn poison_job(&mut self) -> (String, Value) {
        let tag = self.tag();
        let script =
            "echo \"$WARREN_JOB_ID $WARREN_ATTEMPT $2 start\" >> \"$1\"; kill -9 $PPID; sleep 5";
        let spec = json!({"task": "command", "args": {"argv": [
            "sh", "-c", script, "sh", self.ledger.to_string_lossy(), tag
        ]}});
        (tag, spec)
    }

    /// Submits `jobs` as one batch.
    pub(crate) async fn submit_batch(&self, jobs: Vec<(String, Value)>) -> Vec<Submitted> {
        let (tags, specs): (Vec<String>, Vec<Value>) = jobs.into_iter().unzip();
        let answer = self
            .http
            .post(format!("{}/v1/jobs/batch", self.base))
            .json(&json!({ "jobs": specs }))
            .send()
            .await;
        let outcomes: Vec<Answer> = match answer {
            Err(error) => vec![Answer::Unknown(error.to_string()); tags.len()],
            Ok(response) => {
                let status = response.status().as_u16();
                match (status, response.json::<Value>().await) {
                    (202, Ok(body)) => body["jobs"]
                        .as_array()
                        .expect("jobs in a 202")
                        .iter()
                        .map(|j| Answer::Accepted(j["id"].as_str().expect("id").to_owned()))
                        .collect(),
                    (202, Err(error)) => vec![Answer::Unknown(error.to_string()); tags.len()],
                    (429 | 503, _) => vec![Answer::Refused(status); tags.len()],
                    (_, body) => panic!("batch answered {status}: {body:?}"),
                }
            }
        };
        tags.into_iter()
            .zip(outcomes)
            .map(|(tag, outcome)| Submitted { tag, outcome })
            .collect()
    }

    /// Submits one job.
    pub(crate) async fn submit_one(&self, job: (String, Value)) -> Submitted {
        let (tag, spec) = job;
        let outcome = match self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .json(&spec)
            .send()
            .await
        {
            Err(error) => Answer::Unknown(error.to_string()),
            Ok(response) => {
                let status = response.status().as_u16();
                match (status, response.json::<Value>().await) {
                    (202, Ok(body)) => {
                        Answer::Accepted(body["id"].as_str().expect("id").to_owned())
                    }
                    (202, Err(error)) => Answer::Unknown(error.to_string()),
                    (429 | 503, _) => Answer::Refused(status),
                    (_, body) => panic!("submit answered {status}: {body:?}"),
                }
            }
        };
        Submitted { tag, outcome }
    }

    /// Submits `n` ledger jobs of `secs` each in one batch that must be accepted.
    pub(crate) async fn submit_accepted(&mut self, n: usize, secs: f64) -> Vec<Submitted> {
        let jobs = (0..n).map(|_| self.ledger_job(secs)).collect();
        let submitted = self.submit_batch(jobs).await;
        for s in &submitted {
            assert!(
                matches!(s.outcome, Answer::Accepted(_)),
                "[{}] a batch before the fault was not accepted: {s:?}",
                self.name
            );
        }
        submitted
    }

    /// Reads a job.
    pub(crate) async fn job(&self, id: &str) -> Option<Value> {
        self.get_json(&format!("/v1/jobs/{id}")).await.ok()
    }

    /// Waits until at least `n` of the accepted jobs are in one of `states`.
    pub(crate) async fn wait_states(&self, submitted: &[Submitted], states: &[&str], n: usize) {
        let ids: Vec<&String> = accepted(submitted).map(|(_, id)| id).collect();
        wait_until(
            &format!("[{}] {n} jobs to be {states:?}", self.name),
            Duration::from_secs(60),
            || async {
                let mut count = 0;
                for id in &ids {
                    if let Some(job) = self.job(id).await
                        && states.iter().any(|s| job["state"] == *s)
                    {
                        count += 1;
                    }
                }
                (count >= n).then_some(())
            },
        )
        .await;
    }

    /// Waits until every accepted job is terminal and no worker runs anything: the system
    /// is quiet. Returns the records.
    pub(crate) async fn wait_quiet(
        &self,
        submitted: &[Submitted],
        timeout: Duration,
    ) -> Vec<Value> {
        let ids: Vec<&String> = accepted(submitted).map(|(_, id)| id).collect();
        let records = wait_until(
            &format!("[{}] every accepted job to end", self.name),
            timeout,
            || async {
                let mut records = Vec::new();
                for id in &ids {
                    let job = self.job(id).await?;
                    let state = job["state"].as_str().unwrap_or("");
                    if !TERMINAL.contains(&state) {
                        return None;
                    }
                    records.push(job);
                }
                Some(records)
            },
        )
        .await;
        wait_until(
            &format!("[{}] the workers to be idle", self.name),
            Duration::from_secs(30),
            || async {
                let workers = self.workers_json().await;
                workers
                    .iter()
                    .all(|w| w["busy"].as_u64() == Some(0))
                    .then_some(())
            },
        )
        .await;
        records
    }

    /// Reads the ledger.
    pub(crate) fn read_ledger(&self) -> Ledger {
        let text = std::fs::read_to_string(&self.ledger).unwrap_or_default();
        let mut ledger = Ledger::default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [id, attempt, tag, what] = fields[..] else {
                panic!("[{}] a torn ledger line: {line:?}", self.name);
            };
            let entry = ledger.runs.entry(tag.to_owned()).or_default();
            entry.id = id.to_owned();
            let attempt: u32 = attempt.parse().expect("attempt");
            match what {
                "start" => entry.starts.push(attempt),
                "end" => entry.ends.push(attempt),
                other => panic!("ledger line {other:?}"),
            }
        }
        ledger
    }

    /// Lists every record in the namespace (for jobs nobody was told about).
    pub(crate) async fn all_records(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/v1/jobs?limit=500".to_owned();
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(c);
            }
            let Ok(page) = self.get_json(&path).await else {
                break;
            };
            out.extend(page["jobs"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        out
    }

    /// Publishes a copy of a job's envelope straight to a worker's queue (a duplicate
    /// delivery, as a redelivery after a reconnect or a crash between publish and record
    /// would make).
    pub(crate) async fn publish_duplicate(&self, worker: &str, job: &Value) {
        let spec: warren_protocol::JobSpec =
            serde_json::from_value(job["spec"].clone()).expect("spec");
        let mut envelope = warren_protocol::JobEnvelope::first_attempt(
            job["id"].as_str().expect("id").parse().expect("job id"),
            spec,
            job["created_ms"].as_u64().unwrap_or(0),
            None,
        );
        envelope.attempt = u32::try_from(job["attempt"].as_u64().unwrap_or(1)).expect("attempt");
        let pools = self.infra.connect("faults").await.expect("broker");
        let topology = Topology::new(self.ns.ns().clone(), TopologyOptions::default());
        let publisher = warren_topology::Publisher::open(&pools, &topology)
            .await
            .expect("publisher");
        tokio::time::timeout(Duration::from_secs(10), async {
            publisher
                .send_worker(&WorkerId::from_raw(worker), &envelope)
                .await?
                .confirmed()
                .await
        })
        .await
        .expect("publish in time")
        .expect("duplicate published");
        pools.close();
    }

    /// Publishes a copy of a job's envelope to intake, as a submitter that repeats a
    /// publish would.
    pub(crate) async fn publish_intake_duplicate(&self, job: &Value) {
        let spec: warren_protocol::JobSpec =
            serde_json::from_value(job["spec"].clone()).expect("spec");
        let envelope = warren_protocol::JobEnvelope::first_attempt(
            job["id"].as_str().expect("id").parse().expect("job id"),
            spec,
            job["created_ms"].as_u64().unwrap_or(0),
            None,
        );
        let pools = self.infra.connect("faults").await.expect("broker");
        let topology = Topology::new(self.ns.ns().clone(), TopologyOptions::default());
        let publisher = warren_topology::Publisher::open(&pools, &topology)
            .await
            .expect("publisher");
        tokio::time::timeout(Duration::from_secs(10), async {
            publisher.send_intake(&envelope).await?.confirmed().await
        })
        .await
        .expect("publish in time")
        .expect("duplicate published");
        pools.close();
    }

    /// Counts the messages waiting in a worker's queue.
    pub(crate) async fn worker_queue_depth(&self, worker: &str) -> u32 {
        let pools = self.infra.connect("faults").await.expect("broker");
        let topology = Topology::new(self.ns.ns().clone(), TopologyOptions::default());
        let channel = Topology::channel(&pools).await.expect("channel");
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
            .expect("the worker's queue");
        let count = queue.message_count();
        pools.close();
        count
    }

    /// Stops every process (SIGTERM) and removes the namespace. Exit codes are reported,
    /// not judged: the ledger is the judge.
    pub(crate) async fn stop(mut self) {
        let mut which = vec![Proc::Submitter];
        which.extend((0..self.schedulers.len()).map(Proc::Scheduler));
        which.extend((0..self.workers.len()).map(Proc::Worker));
        let mut codes = Vec::new();
        for w in which {
            if self.child(w).is_some() && !self.exited(w) {
                codes.push(format!("{w:?}={:?}", self.terminate(w).await));
            }
        }
        eprintln!(
            "[{}] exit codes after SIGTERM: {}",
            self.name,
            codes.join(" ")
        );
        self.ns.cleanup().await;
        teardown(&self.infra, self.ns.ns()).await;
        let _ = std::fs::remove_dir_all(&self.dir);
        self.stopped = true;
    }
}

/// Terminal states.
pub(crate) const TERMINAL: [&str; 4] = ["succeeded", "failed", "timed_out", "cancelled"];

/// The accepted submissions: (tag, id).
pub(crate) fn accepted(submitted: &[Submitted]) -> impl Iterator<Item = (&String, &String)> {
    submitted.iter().filter_map(|s| match &s.outcome {
        Answer::Accepted(id) => Some((&s.tag, id)),
        _ => None,
    })
}

/// What the jobs wrote, by tag.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) runs: HashMap<String, Runs>,
}

#[derive(Debug, Default)]
pub(crate) struct Runs {
    pub(crate) id: String,
    /// The attempt number of each start.
    pub(crate) starts: Vec<u32>,
    /// The attempt number of each completed run.
    pub(crate) ends: Vec<u32>,
}

/// What a scenario allows beyond the invariants.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Allow {
    /// Runs cut short by the fault (a killed worker, a poison job) and started again:
    /// unavoidable once a process dies mid-job.
    pub(crate) restarts: bool,
    /// Jobs run to their end twice, with the reason the fault makes that unavoidable
    /// (counted and reported either way; with `None` one fails the scenario).
    pub(crate) double_runs: Option<&'static str>,
}

/// The counts of one scenario, printed for `docs/reliability.md`.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) accepted: usize,
    pub(crate) refused: usize,
    pub(crate) unknown: usize,
    pub(crate) states: BTreeMap<String, usize>,
    /// Starts beyond the first, over all accepted jobs.
    pub(crate) extra_starts: usize,
    /// Jobs whose command ran to its end more than once.
    pub(crate) double_runs: usize,
    /// Submissions without an answer that ran.
    pub(crate) unknown_ran: usize,
    pub(crate) takeovers: u64,
}

impl System {
    /// Checks the invariants against the ledger and the records, prints the counts, and
    /// returns them for the scenario's own checks.
    pub(crate) fn judge(
        &self,
        submitted: &[Submitted],
        records: &[Value],
        allow: Allow,
    ) -> Verdict {
        let ledger = self.read_ledger();
        let mut v = Verdict::default();
        let mut problems = Vec::new();
        let by_id: HashMap<&str, &Value> = records
            .iter()
            .filter_map(|r| Some((r["id"].as_str()?, r)))
            .collect();
        let mut seen_ids = HashSet::new();
        for s in submitted {
            let runs = ledger.runs.get(&s.tag);
            match &s.outcome {
                Answer::Refused(_) => {
                    v.refused += 1;
                    if runs.is_some() {
                        problems.push(format!("refused job {} ran", s.tag));
                    }
                }
                Answer::Unknown(_) => {
                    v.unknown += 1;
                    if runs.is_some() {
                        v.unknown_ran += 1;
                    }
                }
                Answer::Accepted(id) => {
                    v.accepted += 1;
                    assert!(seen_ids.insert(id.clone()), "two submissions got id {id}");
                    let Some(record) = by_id.get(id.as_str()) else {
                        problems.push(format!("accepted job {id} has no record"));
                        continue;
                    };
                    let state = record["state"].as_str().unwrap_or("?").to_owned();
                    // Exactly one terminal state: the record never entered two.
                    let terminal_stamps = TERMINAL
                        .iter()
                        .filter(|t| record["timestamps"].get(**t).is_some())
                        .count();
                    if terminal_stamps != 1 {
                        problems.push(format!(
                            "job {id} entered {terminal_stamps} terminal states: {record}"
                        ));
                    }
                    v.takeovers += record["takeovers"].as_u64().unwrap_or(0);
                    let starts = runs.map_or(0, |r| r.starts.len());
                    let ends = runs.map_or(0, |r| r.ends.len());
                    if let Some(r) = runs
                        && r.id != *id
                    {
                        problems.push(format!(
                            "tag {} ran as {} but was accepted as {id}",
                            s.tag, r.id
                        ));
                    }
                    if state == "succeeded" && ends == 0 {
                        problems.push(format!("job {id} succeeded but never ran to its end"));
                    }
                    if state == "cancelled" && starts > 0 {
                        problems.push(format!("job {id} is cancelled but started"));
                    }
                    v.extra_starts += starts.saturating_sub(1);
                    if starts > ends.max(1) && !allow.restarts {
                        problems.push(format!("job {id} started {starts} times, ended {ends}"));
                    }
                    if ends > 1 {
                        v.double_runs += 1;
                        if allow.double_runs.is_none() {
                            problems.push(format!("job {id} ran to its end {ends} times"));
                        }
                    }
                    *v.states.entry(state).or_default() += 1;
                }
            }
        }
        eprintln!(
            "FAULTS-REPORT {}: accepted {} refused {} unanswered {} (ran {}) states {:?} \
             extra-starts {} double-runs {}{} takeovers {}",
            self.name,
            v.accepted,
            v.refused,
            v.unknown,
            v.unknown_ran,
            v.states,
            v.extra_starts,
            v.double_runs,
            allow
                .double_runs
                .map(|why| format!(" (allowed: {why})"))
                .unwrap_or_default(),
            v.takeovers
        );
        assert!(
            problems.is_empty(),
            "[{}] invariants broken:\n{}",
            self.name,
            problems.join("\n")
        );
        v
    }
}

/// Deletes the namespace's queues and exchanges.
async fn teardown(infra: &Infra, ns: &warren_protocol::Namespace) {
    let connect = infra.connect("faults-teardown");
    let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
        return;
    };
    let topology = Topology::new(ns.clone(), TopologyOptions::default());
    if let Ok(channel) = Topology::channel(&conn).await {
        let pool = PoolName::parse_list("cpu").expect("pool");
        let _ = warren_topology::teardown(&channel, &topology, &[pool]).await;
    }
    conn.close();
}

fn signal(child: &Child, signal: Signal) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(i32::try_from(pid).expect("pid")), signal);
    }
}

/// The broker URL to give a service behind `proxy`, and the broker's `host:port` for the
/// proxy to forward to.
pub(crate) fn via_proxy(url: &str, proxy: std::net::SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a scheme");
    let (auth, rest) = rest
        .rsplit_once('@')
        .map_or((String::new(), rest), |(a, r)| (format!("{a}@"), r));
    let (host_port, path) = rest.split_once('/').unwrap_or((rest, ""));
    let target = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5672")
    };
    (format!("{scheme}://{auth}{proxy}/{path}"), target)
}
