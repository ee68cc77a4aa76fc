#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
//! `docker compose up` for real: the README's "Run it" commands against docker-compose.yml,
//! unchanged, on a Docker daemon of the test's own, with local stand-ins for the images the
//! files name (deploy/offline/). Checks health of every service, jobs over HTTP, scaling
//! workers and schedulers, broker and Redis restarts under load, draining, and that job
//! records survive `down` and `up`. docs/compose.md describes it.
//!
//! Heavy (minutes, root, installs Docker with apt), so its own test binary: cargo runs test
//! binaries one after another, so nothing else competes with it for the two cores. It runs
//! when `CI=true` or `WARREN_TEST_COMPOSE=1`; anywhere else it says it skipped and how to run it.
//! In CI it never skips: no root or no Docker is a failure that says what is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// The HA deployment step, in a file of its own.
#[path = "compose_up/ha.rs"]
mod ha;

/// The compose project name: keeps the test's containers, networks and volumes apart.
const PROJECT: &str = "warrenct";
const ADMIN: &str = "demo-admin-token-change-me";
const APP_SERVICES: [&str; 4] = ["submitter", "scheduler", "worker", "dashboard"];
const ALL_SERVICES: [&str; 6] = [
    "rabbitmq",
    "redis",
    "submitter",
    "scheduler",
    "worker",
    "dashboard",
];
/// The HA deployment: docker-compose.ha.yml on top of docker-compose.yml.
const HA_FILES: [&str; 2] = ["docker-compose.yml", "docker-compose.ha.yml"];
const HA_SERVICES: [&str; 12] = [
    "rabbitmq",
    "rabbitmq-2",
    "rabbitmq-3",
    "redis",
    "redis-2",
    "sentinel-1",
    "sentinel-2",
    "sentinel-3",
    "submitter",
    "scheduler",
    "worker",
    "dashboard",
];
/// The name docker-compose.ha.yml's Sentinels monitor the primary under.
const HA_MASTER: &str = "warren";
/// Debian's docker.io client: the `docker` first on PATH may have no buildx, which BuildKit
/// builds need.
const DOCKER: &str = "/usr/bin/docker";
const COMPOSE_V1: &str = "/usr/bin/docker-compose";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn wanted() -> bool {
    in_ci() || std::env::var("WARREN_TEST_COMPOSE").is_ok_and(|v| v == "1")
}

fn stamp(start: Instant, what: &str) {
    println!(
        "compose_up [{:>6.1} s] {what}",
        start.elapsed().as_secs_f64()
    );
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {shown}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs what the test needs with apt when it is missing: Debian's docker.io (dockerd,
/// containerd, runc, the client), docker-compose 1.29 and debootstrap.
fn ensure_tools() {
    let missing: Vec<&str> = [
        ("/usr/sbin/dockerd", "docker.io"),
        (DOCKER, "docker.io"),
        (COMPOSE_V1, "docker-compose"),
        ("/usr/sbin/debootstrap", "debootstrap"),
    ]
    .iter()
    .filter(|(path, _)| !Path::new(path).exists())
    .map(|(_, package)| *package)
    .collect::<BTreeSet<_>>()
    .into_iter()
    .collect();
    if missing.is_empty() {
        return;
    }
    println!("compose_up: installing {missing:?} with apt-get");
    let apt = |args: &[&str]| {
        let out = run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"));
        assert!(
            out.status.success(),
            "compose_up needs {missing:?} and could not install them: apt-get {args:?} failed:\n{}\n\
             Install them by hand (apt-get install docker.io docker-compose debootstrap).",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apt(&["update", "-qq"]);
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install);
}

/// A dockerd of the test's own (deploy/offline/private-dockerd.sh): stopped, with its data
/// removed, when dropped, pass or fail.
struct Daemon {
    dir: PathBuf,
    host: String,
}

impl Daemon {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("warren-ct-{}", std::process::id()));
        let host = run_ok(
            Command::new("bash")
                .arg(root().join("deploy/offline/private-dockerd.sh"))
                .arg("start")
                .arg(&dir),
        )
        .trim()
        .to_owned();
        Self { dir, host }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.dir.as_os_str().is_empty() {
            return;
        }
        let out = run(Command::new("bash")
            .arg(root().join("deploy/offline/private-dockerd.sh"))
            .arg("stop")
            .arg(&self.dir));
        if !out.status.success() {
            eprintln!(
                "compose_up: stopping the private dockerd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The compose project on the private daemon, through docker-compose 1.29 (the front end this
/// machine has; docs/compose.md says why `docker compose` v2 is checked only with `config`).
struct Project {
    host: String,
    api_port: u16,
    dashboard_port: u16,
    ui_port: u16,
    /// The compose files, as `-f` arguments (none: docker-compose.yml, as `up` finds it).
    files: &'static [&'static str],
    /// The services that must all be healthy, one container each unless told otherwise.
    services: &'static [&'static str],
    /// Set once the scenario finished: otherwise Drop prints the services' logs first.
    passed: AtomicBool,
}

impl Project {
    fn new(host: &str, files: &'static [&'static str], services: &'static [&'static str]) -> Self {
        Self {
            host: host.to_owned(),
            api_port: free_port(),
            dashboard_port: free_port(),
            ui_port: free_port(),
            files,
            services,
            passed: AtomicBool::new(false),
        }
    }

    fn compose(&self) -> Command {
        let mut cmd = Command::new(COMPOSE_V1);
        let path = format!(
            "/usr/sbin:/usr/bin:/sbin:/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.current_dir(root())
            .env("DOCKER_HOST", &self.host)
            // What the README's "Run it" says for docker-compose 1.29.
            .env("DOCKER_BUILDKIT", "1")
            .env("COMPOSE_DOCKER_CLI_BUILD", "1")
            // docker-compose runs `docker build`: Debian's client, not one without buildx.
            .env("PATH", path)
            .env("COMPOSE_PROJECT_NAME", PROJECT)
            .env("WARREN_API_PORT", self.api_port.to_string())
            .env("WARREN_DASHBOARD_PORT", self.dashboard_port.to_string())
            .env("WARREN_RABBITMQ_UI_PORT", self.ui_port.to_string())
            .env_remove("WARREN_WORKERS")
            .args(["--ansi", "never"]);
        for file in self.files {
            cmd.args(["-f", file]);
        }
        cmd
    }

    fn docker(&self) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.env("DOCKER_HOST", &self.host);
        cmd
    }

    fn compose_ok(&self, args: &[&str]) -> String {
        run_ok(self.compose().args(args))
    }

    /// The running containers of the project: (service, id, status text).
    fn running(&self) -> Vec<(String, String, String)> {
        let project = format!("label=com.docker.compose.project={PROJECT}");
        run_ok(self.docker().args([
            "ps",
            "--filter",
            &project,
            "--format",
            "{{.Label \"com.docker.compose.service\"}}\t{{.ID}}\t{{.Status}}",
        ]))
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('\t');
            Some((
                cells.next()?.to_owned(),
                cells.next()?.to_owned(),
                cells.next()?.to_owned(),
            ))
        })
        .collect()
    }

    /// Ids of a service's running containers.
    fn containers(&self, service: &str) -> Vec<String> {
        self.running()
            .into_iter()
            .filter(|(s, _, _)| s == service)
            .map(|(_, id, _)| id)
            .collect()
    }

    /// Waits until every service has `counts` containers (default 1), all running and healthy.
    fn wait_healthy(&self, counts: &[(&str, usize)], timeout: Duration) -> Duration {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < timeout {
            let running = self.running();
            let mut all = true;
            let mut seen = Vec::new();
            for &service in self.services {
                let want = counts
                    .iter()
                    .find(|(s, _)| *s == service)
                    .map_or(1, |(_, n)| *n);
                let mine: Vec<_> = running.iter().filter(|(s, _, _)| s == service).collect();
                let healthy = mine
                    .iter()
                    .filter(|(_, _, status)| status.contains("(healthy)"))
                    .count();
                seen.push(format!("{service} {healthy}/{want} of {}", mine.len()));
                all &= healthy == want && mine.len() == want;
            }
            last = seen.join(", ");
            if all {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("services not all healthy within {timeout:?}: {last}");
    }

    fn logs(&self, service: &str) -> String {
        let out = run(self.compose().args(["logs", "--no-color", service]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if !self.passed.load(Ordering::SeqCst) {
            let out = run(self.compose().args(["logs", "--no-color", "--tail", "60"]));
            eprintln!(
                "compose_up failed; the services' last log lines:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let _ = run(self
            .compose()
            .args(["down", "-v", "--remove-orphans", "-t", "5"]));
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The submitter's API as a client sees it, with the demo admin token.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(port: u16) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// POSTs jobs; waits out 429 (the compose file's per-tenant rate) and answers the ids,
    /// or `None` when the submitter refused them (503 during an outage: not accepted).
    async fn post(&self, path: &str, body: &Value) -> Option<Value> {
        loop {
            let response = match self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(ADMIN)
                .json(body)
                .send()
                .await
            {
                Ok(r) => r,
                Err(_) => return None,
            };
            let status = response.status().as_u16();
            if status == 429 {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
                continue;
            }
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            if status == 503 {
                return None;
            }
            assert!(
                status == 202 || status == 200,
                "POST {path} answered {status}: {answer}"
            );
            return Some(answer);
        }
    }

    async fn submit(&self, spec: Value) -> Option<String> {
        self.post("/v1/jobs", &spec)
            .await
            .map(|a| a["id"].as_str().expect("id").to_owned())
    }

    async fn submit_batch(&self, specs: Vec<Value>) -> Vec<String> {
        let answer = self
            .post("/v1/jobs/batch", &json!({ "jobs": specs }))
            .await
            .expect("the batch was refused");
        answer["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Long-polls every job until it is terminal; panics on one that is not `succeeded`.
    /// Answers the records.
    async fn all_succeed(&self, ids: &[String], timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            loop {
                assert!(
                    Instant::now() < deadline,
                    "job {id} not finished within {timeout:?}"
                );
                let Ok((200, job)) = self.get(&format!("/v1/jobs/{id}/wait?timeout_s=20")).await
                else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                match job["state"].as_str().unwrap_or("") {
                    "succeeded" => {
                        records.push(job);
                        break;
                    }
                    "failed" | "timed_out" | "cancelled" => {
                        panic!("job {id} did not succeed: {job}")
                    }
                    _ => {}
                }
            }
        }
        records
    }

    async fn workers(&self) -> Vec<Value> {
        match self.get("/v1/workers").await {
            Ok((200, body)) => body["workers"].as_array().cloned().unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    async fn wait_workers(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let workers = self.workers().await;
            if workers.len() == n {
                return workers;
            }
            assert!(
                start.elapsed() < timeout,
                "expected {n} live workers within {timeout:?}, have {}",
                workers.len()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

fn sleep_job(ms: u64) -> Value {
    json!({"task": "sleep", "args": {"ms": ms}})
}

/// Submits single jobs until stopped, while something breaks; answers the accepted ids.
fn keep_submitting(api: &Api, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<String>> {
    let api = api.clone();
    tokio::spawn(async move {
        let mut accepted = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            if let Some(id) = api.submit(sleep_job(20)).await {
                accepted.push(id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        accepted
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compose_up_for_real() {
    if !wanted() {
        println!(
            "compose_up: SKIPPED (it installs Docker and takes minutes): run it with CI=true or \
             WARREN_TEST_COMPOSE=1, as root"
        );
        return;
    }
    assert!(
        run_ok(Command::new("id").arg("-u")).trim() == "0",
        "compose_up must run as root (it installs Docker with apt and runs its own dockerd); \
         run `cargo test -p warren-e2e --test compose_up` as root, or leave CI and \
         WARREN_TEST_COMPOSE unset to skip it"
    );
    let t0 = Instant::now();
    ensure_tools();
    stamp(t0, "tools present");

    // A daemon of its own, unless told to use one (to rerun the scenario on a warm build
    // cache while working on it; that daemon is left running).
    let daemon = match std::env::var("WARREN_TEST_COMPOSE_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => Daemon {
            dir: PathBuf::new(),
            host,
        },
        _ => Daemon::start(),
    };
    stamp(t0, &format!("private dockerd on {}", daemon.host));

    let standins = Instant::now();
    run_ok(
        Command::new("bash")
            .arg(root().join("deploy/offline/standins.sh"))
            .env("DOCKER_HOST", &daemon.host),
    );
    stamp(
        t0,
        &format!(
            "stand-in images in {:.0} s",
            standins.elapsed().as_secs_f64()
        ),
    );

    let project = Project::new(&daemon.host, &[], &ALL_SERVICES);
    scenario(&project, t0).await;
    project.passed.store(true, Ordering::SeqCst);
    drop(project);
    stamp(t0, "down -v");

    let ha = Project::new(&daemon.host, &HA_FILES, &HA_SERVICES);
    ha::ha_scenario(&ha, t0).await;
    ha.passed.store(true, Ordering::SeqCst);
    drop(ha);
    drop(daemon);
    stamp(t0, "down, private dockerd stopped and removed");
}

async fn scenario(project: &Project, t0: Instant) {
    // Both front ends read the file the same way (v2 only where it is installed).
    project.compose_ok(&["config", "-q"]);
    let v2 = run(Command::new(DOCKER).args(["compose", "version"]));
    if v2.status.success() {
        run_ok(
            Command::new(DOCKER)
                .current_dir(root())
                .args(["compose", "config", "-q"]),
        );
        stamp(t0, "docker compose (v2) accepts the file");
    } else {
        println!(
            "compose_up: docker compose (v2) is not installed here: ran docker-compose 1.29 only"
        );
    }

    // README "Run it": up -d --build.
    let build = Instant::now();
    project.compose_ok(&["up", "-d", "--build"]);
    let built = build.elapsed();
    let ready = project.wait_healthy(&[], Duration::from_secs(300));
    stamp(
        t0,
        &format!(
            "up -d --build returned after {:.0} s; every service healthy {:.1} s later",
            built.as_secs_f64(),
            ready.as_secs_f64()
        ),
    );
    image_checks(project);

    let api = Api::new(project.api_port);
    http_checks(project, &api).await;
    stamp(
        t0,
        "single, command and 1,000-job batch succeeded; auth, dashboard, metrics",
    );

    scale_workers(project, &api).await;
    stamp(t0, "three workers share a batch");

    scheduler_handover(project, &api).await;
    stamp(t0, "standby scheduler took over, no job lost");

    for backend in ["redis", "rabbitmq"] {
        let recovered = restart_under_load(project, &api, backend).await;
        stamp(
            t0,
            &format!(
                "restart {backend} under load: every accepted job succeeded once; all healthy \
                 {:.1} s after the restart returned",
                recovered.as_secs_f64()
            ),
        );
    }

    stop_drains(project, &api).await;
    stamp(t0, "stop worker drained");

    let kept = down_up_keeps_records(project, &api).await;
    stamp(
        t0,
        &format!(
            "down, up: job records kept; up to healthy {:.1} s",
            kept.as_secs_f64()
        ),
    );

    // As the README shows it: within the compose file's 100 jobs/s per tenant.
    let bench = project.compose_ok(&[
        "run",
        "--rm",
        "cli",
        "--token",
        ADMIN,
        "bench",
        "--jobs",
        "100",
        "--batch",
        "50",
        "--concurrency",
        "1",
        "--latency-jobs",
        "0",
    ]);
    println!("compose_up: warren bench through the compose network:\n{bench}");
    assert!(
        bench.contains("jobs/s"),
        "bench printed no throughput: {bench}"
    );
}

/// The images: stripped binaries, one per service image, and a worker that takes its
/// capacity from its cgroup.
fn image_checks(project: &Project) {
    for service in APP_SERVICES {
        let image = format!("warren-{service}:local");
        let listing = run_ok(project.docker().args([
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            &image,
            "-c",
            "ls /usr/local/bin",
        ]));
        assert_eq!(
            listing.split_whitespace().collect::<Vec<_>>(),
            [format!("warren-{service}")],
            "{image} should carry its own binary only"
        );
        let binary = run(project.docker().args([
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            &image,
            &format!("/usr/local/bin/warren-{service}"),
        ]))
        .stdout;
        assert!(
            !has_symbol_table(&binary),
            "{image}'s binary is not stripped ({} bytes)",
            binary.len()
        );
        println!(
            "compose_up: {image}: warren-{service} is stripped, {:.1} MB",
            binary.len() as f64 / 1e6
        );
    }
    // `--help` shows the defaults the worker computed: with a 1-CPU quota and 300 MiB, it
    // offers 1 core and 300 MiB, not the machine's.
    let help = run_ok(project.docker().args([
        "run",
        "--rm",
        "--cpus",
        "1",
        "--memory",
        "300m",
        "warren-worker:local",
        "warren-worker",
        "--help",
    ]));
    let default_of = |flag: &str| {
        let text = help.split(flag).nth(1).unwrap_or("");
        let text = text.split("[default: ").nth(1).unwrap_or("");
        text.split(']').next().unwrap_or("").to_owned()
    };
    assert_eq!(default_of("--cpu <CPU>"), "1", "{help}");
    assert_eq!(default_of("--mem-mb <MEM_MB>"), "300", "{help}");
}

/// Whether an ELF64 little-endian file has a symbol table section (SHT_SYMTAB): what
/// `strip` removes.
fn has_symbol_table(elf: &[u8]) -> bool {
    assert!(
        elf.len() > 64 && elf.starts_with(b"\x7fELF"),
        "not an ELF file"
    );
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let shoff = usize::try_from(u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap())).unwrap();
    let (entsize, count) = (u16_at(0x3A), u16_at(0x3C));
    (0..count).any(|i| {
        let at = shoff + i * entsize + 4;
        elf.get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap()) == 2)
    })
}

async fn http_checks(project: &Project, api: &Api) {
    // Auth is on: no token, no jobs.
    let anonymous = api
        .http
        .get(format!("{}/v1/jobs", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status().as_u16(),
        401,
        "the API must want a token"
    );

    let noop = api.submit(json!({"task": "noop"})).await.expect("noop");
    let command = api
        .submit(json!({"task": "command", "args": {"argv": ["echo", "hi"]}}))
        .await
        .expect("command");
    let records = api
        .all_succeed(&[noop, command], Duration::from_secs(60))
        .await;
    assert_eq!(records[1]["result"]["stdout"], "hi\n", "{}", records[1]);

    // A job that needs every core the worker offers still runs (it used to offer 1).
    let workers = api.wait_workers(1, Duration::from_secs(30)).await;
    let cpu = workers[0]["resources"]["cpu"].as_u64().unwrap();
    let nproc = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(
        cpu, nproc,
        "the worker should offer the container's cores: {}",
        workers[0]
    );
    let big = api
        .submit(json!({"task": "noop", "requires": {"cpu": cpu}}))
        .await
        .unwrap();
    api.all_succeed(&[big], Duration::from_secs(60)).await;

    let batch = api
        .submit_batch(
            (0..1000)
                .map(|n| json!({"task": "echo", "args": {"n": n}}))
                .collect(),
        )
        .await;
    assert_eq!(batch.len(), 1000);
    api.all_succeed(&batch, Duration::from_secs(300)).await;

    // The dashboard answers on its published port, with its page and its metrics.
    let dash = format!("http://127.0.0.1:{}", project.dashboard_port);
    let page = api.http.get(format!("{dash}/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let metrics = api
        .http
        .get(format!("{dash}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("warren_"), "dashboard /metrics: {metrics}");
    // The RabbitMQ management UI, for operators on this host.
    let ui = api
        .http
        .get(format!("http://127.0.0.1:{}/api/overview", project.ui_port))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status().as_u16(), 200, "management API");
}

async fn scale_workers(project: &Project, api: &Api) {
    project.compose_ok(&["up", "-d", "--scale", "worker=3"]);
    let started = Instant::now();
    let workers = api.wait_workers(3, Duration::from_secs(120)).await;
    println!(
        "compose_up: 3 workers registered {:.1} s after up --scale returned",
        started.elapsed().as_secs_f64()
    );
    project.wait_healthy(&[("worker", 3)], Duration::from_secs(120));
    let ids: BTreeSet<String> = workers
        .iter()
        .map(|w| w["worker_id"].as_str().unwrap().to_owned())
        .collect();
    let batch = api
        .submit_batch((0..300).map(|_| sleep_job(50)).collect())
        .await;
    let records = api.all_succeed(&batch, Duration::from_secs(180)).await;
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *per_worker
            .entry(r["worker"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    println!("compose_up: 300 jobs over 3 workers: {per_worker:?}");
    assert_eq!(
        per_worker.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "every worker should take part"
    );
}

/// The container of the scheduler that holds the lease, from its log.
fn active_scheduler(project: &Project) -> Option<String> {
    project.containers("scheduler").into_iter().find(|id| {
        let out = run(project.docker().args(["logs", id]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let active = text.rfind("this scheduler is active");
        let standby = text.rfind("standing by");
        active.is_some() && active > standby
    })
}

async fn scheduler_handover(project: &Project, api: &Api) {
    project.compose_ok(&["up", "-d", "--scale", "worker=3", "--scale", "scheduler=2"]);
    project.wait_healthy(&[("worker", 3), ("scheduler", 2)], Duration::from_secs(120));
    let start = Instant::now();
    let active = loop {
        if let Some(id) = active_scheduler(project) {
            break id;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no scheduler says it is active"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (_, before) = api.get("/v1/scheduler").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let submitter = keep_submitting(api, stop.clone());
    let batch = api
        .submit_batch((0..200).map(|_| sleep_job(50)).collect())
        .await;
    run_ok(project.docker().args(["stop", &active]));
    let handover = Instant::now();
    loop {
        if let Ok((200, now)) = api.get("/v1/scheduler").await
            && now["instance"] != before["instance"]
        {
            break;
        }
        assert!(
            handover.elapsed() < Duration::from_secs(60),
            "the standby scheduler did not take over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "compose_up: standby scheduler active {:.1} s after the active one stopped",
        handover.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut ids = submitter.await.unwrap();
    ids.extend(batch);
    api.all_succeed(&ids, Duration::from_secs(180)).await;
    // Back to one scheduler and three workers for what follows.
    project.compose_ok(&["up", "-d", "--scale", "worker=3", "--scale", "scheduler=1"]);
    project.wait_healthy(&[("worker", 3)], Duration::from_secs(120));
}

/// Restarts RabbitMQ or Redis while jobs run and are submitted. Answers how long after the
/// restart every service was healthy again, by itself.
async fn restart_under_load(project: &Project, api: &Api, backend: &str) -> Duration {
    let batch = api
        .submit_batch((0..300).map(|_| sleep_job(200)).collect())
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let submitter = keep_submitting(api, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    project.compose_ok(&["restart", backend]);
    let recovered = project.wait_healthy(&[("worker", 3)], Duration::from_secs(180));
    // Accepted jobs after recovery, too: the submitter really is back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut ids = submitter.await.unwrap();
    assert!(
        !ids.is_empty(),
        "no job was accepted around the {backend} restart"
    );
    ids.push(accepted_again(api, &format!("the {backend} restart")).await);
    ids.extend(batch);
    let records = api.all_succeed(&ids, Duration::from_secs(300)).await;
    assert_succeeded_once(&records);
    recovered
}

/// The submitter accepts a job again within 30 s after `what`, as a client honouring the
/// 503's Retry-After sees it (the first request after a broker restart may find the old
/// channel dead). Answers the job's id.
async fn accepted_again(api: &Api, what: &str) -> String {
    let asked = Instant::now();
    let mut refused = 0;
    let id = loop {
        if let Some(id) = api.submit(json!({"task": "noop"})).await {
            break id;
        }
        refused += 1;
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "the submitter still refuses jobs 30 s after {what}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    if refused > 0 {
        println!(
            "compose_up: after {what}, {refused} submission(s) got 503 before one was accepted \
             ({:.1} s)",
            asked.elapsed().as_secs_f64()
        );
    }
    id
}

/// Each record entered exactly one terminal state, and that is `succeeded`.
fn assert_succeeded_once(records: &[Value]) {
    for r in records {
        let terminal: Vec<&String> = r["timestamps"]
            .as_object()
            .expect("timestamps")
            .keys()
            .filter(|k| {
                matches!(
                    k.as_str(),
                    "succeeded" | "failed" | "timed_out" | "cancelled"
                )
            })
            .collect();
        assert_eq!(terminal, ["succeeded"], "{r}");
    }
}

async fn stop_drains(project: &Project, api: &Api) {
    let ids: Vec<String> = api
        .submit_batch((0..6).map(|_| sleep_job(3000)).collect())
        .await;
    let start = Instant::now();
    loop {
        let mut running = 0;
        for id in &ids {
            if let Ok((200, job)) = api.get(&format!("/v1/jobs/{id}")).await
                && job["state"] == "running"
            {
                running += 1;
            }
        }
        if running > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no sleep job started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    project.compose_ok(&["stop", "worker"]);
    let logs = project.logs("worker");
    // Drained within the grace period, not killed: each worker logged its clean stop.
    assert!(
        logs.contains("draining running jobs") && logs.matches("worker stopped").count() >= 3,
        "the workers did not drain and stop cleanly:\n{logs}"
    );
    project.compose_ok(&["up", "-d", "--scale", "worker=3"]);
    api.all_succeed(&ids, Duration::from_secs(120)).await;
}

async fn down_up_keeps_records(project: &Project, api: &Api) -> Duration {
    let (_, listing) = api.get("/v1/jobs?limit=100").await.unwrap();
    let before: Vec<String> = listing["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!before.is_empty());
    project.compose_ok(&["down"]);
    let start = Instant::now();
    project.compose_ok(&["up", "-d", "--build"]);
    project.wait_healthy(&[], Duration::from_secs(300));
    let ready = start.elapsed();
    for id in &before {
        let (status, job) = api.get(&format!("/v1/jobs/{id}")).await.unwrap();
        assert_eq!(status, 200, "job {id} lost across down/up: {job}");
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    ready
}

#[test]
fn an_unstripped_binary_has_a_symbol_table() {
    // This test binary is built with symbols: the check that the images' are stripped can fail.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(has_symbol_table(&me));
}
