#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Static checks of the deployment files: docker-compose.yml, the Dockerfile, the RabbitMQ
//! configuration it mounts, and `.ci/run`. Nothing here needs Docker; it catches the mistakes
//! that would otherwise show only on `docker compose up` (a missing healthcheck, a service
//! that starts before its broker, a worker that cannot be scaled, a lost env var).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

const APP_SERVICES: [&str; 4] = ["submitter", "scheduler", "worker", "dashboard"];
const BINARIES: [&str; 5] = [
    "warren-submitter",
    "warren-scheduler",
    "warren-worker",
    "warren-dashboard",
    "warren",
];
const TEST_COMMAND: &str = "cargo test --workspace --locked";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate sits in the workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The compose file with anchors and `<<` merge keys resolved, as Docker Compose sees it.
/// serde_yaml resolves `*alias` by itself but leaves `<<` keys for `apply_merge`.
fn compose() -> Value {
    let mut doc: Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    doc.apply_merge().unwrap();
    doc
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

/// A service's environment as name → value, from either the map or the `KEY=value` list form.
fn environment(svc: &Value) -> BTreeMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("environment value {other:?} is not a scalar"),
    };
    match svc.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), scalar(v)))
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = item.as_str().unwrap();
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("environment {other:?} is neither a map nor a list"),
    }
}

/// The text of a compose `command`/`test`, whichever form (string or list) it has.
fn words(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("{other:?} is neither a string nor a list"),
    }
}

/// Parses compose/humantime durations of the simple forms used here (`45s`, `2m`, `1h`).
fn duration(text: &str) -> Duration {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("bad duration {text:?}"));
    let secs = match unit {
        "ms" => return Duration::from_millis(n),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => panic!("unsupported duration unit in {text:?}"),
    };
    Duration::from_secs(secs)
}

fn healthcheck_test(svc: &Value, name: &str) -> Vec<String> {
    let test = svc
        .get("healthcheck")
        .and_then(|h| h.get("test"))
        .unwrap_or_else(|| panic!("service {name} has no healthcheck"));
    words(test)
}

#[test]
fn compose_has_every_service() {
    let doc = compose();
    assert!(
        doc.get("version").is_none(),
        "the Compose spec has no `version:` key"
    );
    for name in [
        "rabbitmq",
        "redis",
        "submitter",
        "scheduler",
        "worker",
        "dashboard",
    ] {
        service(&doc, name);
    }
}

#[test]
fn backends_and_submitter_have_healthchecks() {
    let doc = compose();
    let rabbit = healthcheck_test(service(&doc, "rabbitmq"), "rabbitmq");
    assert!(
        rabbit.iter().any(|w| w.contains("rabbitmq-diagnostics")),
        "{rabbit:?}"
    );
    let redis = healthcheck_test(service(&doc, "redis"), "redis");
    assert!(
        redis.iter().any(|w| w.contains("redis-cli")) && redis.iter().any(|w| w == "ping"),
        "{redis:?}"
    );
    let submitter = healthcheck_test(service(&doc, "submitter"), "submitter");
    assert!(
        submitter.iter().any(|w| w.ends_with(":8080/readyz")),
        "the submitter's healthcheck must ask /readyz: {submitter:?}"
    );
}

#[test]
fn app_services_wait_for_healthy_backends() {
    let doc = compose();
    for name in APP_SERVICES {
        let depends = service(&doc, name)
            .get("depends_on")
            .unwrap_or_else(|| panic!("{name} has no depends_on"));
        for backend in ["rabbitmq", "redis"] {
            assert_eq!(
                depends[backend]["condition"].as_str(),
                Some("service_healthy"),
                "{name} must wait for {backend} to be healthy"
            );
        }
        assert_eq!(
            service(&doc, name)["restart"].as_str(),
            Some("unless-stopped"),
            "{name}"
        );
    }
}

#[test]
fn app_services_run_their_binary_with_backend_urls() {
    let doc = compose();
    for (name, binary) in [
        ("submitter", "warren-submitter"),
        ("scheduler", "warren-scheduler"),
        ("worker", "warren-worker"),
        ("dashboard", "warren-dashboard"),
    ] {
        let svc = service(&doc, name);
        let command = words(
            svc.get("command")
                .unwrap_or_else(|| panic!("{name} has no command")),
        );
        assert_eq!(command.first().map(String::as_str), Some(binary), "{name}");
        let env = environment(svc);
        let var = |key: &str| {
            env.get(key)
                .unwrap_or_else(|| panic!("{name} does not set {key}: {env:?}"))
        };
        let amqp = var("WARREN_AMQP_URL");
        assert!(
            amqp.starts_with("amqp://") && amqp.contains("@rabbitmq:"),
            "{name}: WARREN_AMQP_URL must point at the rabbitmq service: {amqp}"
        );
        let redis = var("WARREN_REDIS_URL");
        assert!(
            redis.starts_with("redis://redis:"),
            "{name}: WARREN_REDIS_URL must point at the redis service: {redis}"
        );
        assert_eq!(
            env.get("WARREN_LOG_FORMAT").map(String::as_str),
            Some("json"),
            "{name}"
        );
        assert!(env.contains_key("WARREN_NAMESPACE"), "{name}");
    }
    let submitter = environment(service(&doc, "submitter"));
    assert_eq!(submitter["WARREN_HTTP_ADDR"], "0.0.0.0:8080");
    let dashboard = environment(service(&doc, "dashboard"));
    assert_eq!(dashboard["WARREN_HTTP_ADDR"], "0.0.0.0:8081");
}

#[test]
fn every_service_that_sends_or_takes_jobs_shares_one_signing_key() {
    let doc = compose();
    let keys: Vec<String> = ["submitter", "scheduler", "worker", "dashboard"]
        .iter()
        .map(|name| {
            environment(service(&doc, name))
                .get("WARREN_SIGNING_KEY")
                .unwrap_or_else(|| panic!("{name} does not set WARREN_SIGNING_KEY"))
                .clone()
        })
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    // What the services check at start (warren_topology::signing::MIN_KEY_BYTES).
    assert!(keys[0].len() >= 16, "{}", keys[0]);
}

#[test]
fn dashboard_is_healthchecked_and_published_on_loopback() {
    let doc = compose();
    let dashboard = service(&doc, "dashboard");
    let test = healthcheck_test(dashboard, "dashboard");
    assert!(
        test.iter().any(|w| w.ends_with(":8081/healthz")),
        "the dashboard's healthcheck must ask /healthz: {test:?}"
    );
    let ports = dashboard["ports"]
        .as_sequence()
        .expect("the dashboard publishes its port");
    assert!(
        ports
            .iter()
            .filter_map(Value::as_str)
            .all(|p| p.starts_with("127.0.0.1:")),
        "the dashboard's actions are unauthenticated: publish it on loopback only: {ports:?}"
    );
}

#[test]
fn worker_scales_and_drains() {
    let doc = compose();
    let worker = service(&doc, "worker");
    assert!(
        worker.get("container_name").is_none(),
        "a container_name stops `--scale worker=N`"
    );
    let ports = worker.get("ports").and_then(Value::as_sequence);
    assert!(
        ports.is_none_or(Vec::is_empty),
        "fixed host ports stop `--scale worker=N`: {ports:?}"
    );
    let env = environment(worker);
    assert!(
        !env["WARREN_ALLOW_COMMANDS"].is_empty(),
        "the worker needs an explicit allow-list"
    );
    let grace = duration(&env["WARREN_SHUTDOWN_GRACE"]);
    let stop = duration(
        worker["stop_grace_period"]
            .as_str()
            .expect("worker needs stop_grace_period"),
    );
    assert!(
        stop > grace,
        "stop_grace_period {stop:?} must exceed WARREN_SHUTDOWN_GRACE {grace:?}, or Docker kills draining jobs"
    );
}

#[test]
fn redis_keeps_an_append_only_file() {
    let doc = compose();
    let redis = service(&doc, "redis");
    let command = words(redis.get("command").expect("redis needs a command"));
    let at = command
        .iter()
        .position(|w| w == "--appendonly")
        .expect("redis command must pass --appendonly");
    assert_eq!(command.get(at + 1).map(String::as_str), Some("yes"));
    let volumes = redis["volumes"]
        .as_sequence()
        .expect("redis needs a volume");
    assert!(
        volumes
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v.ends_with(":/data"))),
        "redis data must live on a volume: {volumes:?}"
    );
}

#[test]
fn rabbitmq_config_raises_consumer_timeout() {
    let doc = compose();
    let volumes = service(&doc, "rabbitmq")["volumes"]
        .as_sequence()
        .expect("rabbitmq needs volumes");
    let conf = volumes
        .iter()
        .filter_map(Value::as_str)
        .find(|v| v.contains("/etc/rabbitmq/"))
        .expect("rabbitmq must mount a config file under /etc/rabbitmq/");
    let source = conf.split(':').next().unwrap();
    let source = source.strip_prefix("./").unwrap_or(source);
    let text = read(source);
    let timeout_ms: u64 = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix("consumer_timeout"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .map(|v| {
            v.trim()
                .parse()
                .expect("consumer_timeout is a number of ms")
        })
        .unwrap_or_else(|| panic!("{source} must set consumer_timeout"));
    // Longer than the worker's default job timeout (1h), since a job's message is acked only
    // when the job ends.
    assert!(
        timeout_ms > 3_600_000,
        "consumer_timeout {timeout_ms} ms is not above 1h"
    );
}

#[test]
fn dockerfile_builds_every_binary() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked"));
    for binary in BINARIES {
        assert!(
            dockerfile.contains(&format!("--bin {binary} "))
                || dockerfile.contains(&format!("--bin {binary}\n")),
            "the Dockerfile must build {binary}"
        );
        assert!(
            dockerfile.contains(&format!("/out/{binary}")),
            "the Dockerfile must copy {binary} into the runtime image"
        );
    }
    assert!(dockerfile.contains("/usr/local/bin/"));
    let user = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .next_back()
        .expect("the runtime image must set a USER");
    let name = user.split(':').next().unwrap_or_default().trim();
    assert!(
        name != "root" && name != "0",
        "the runtime user must not be root: {user}"
    );
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}

#[test]
fn ci_script_runs_the_documented_test_command() {
    let path = root().join(".ci/run");
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, ".ci/run must be executable");
    let script = read(".ci/run");
    assert!(script.starts_with("#!"), ".ci/run needs a shebang");
    assert!(script.contains("set -euo pipefail"));
    assert!(
        script.contains(TEST_COMMAND),
        ".ci/run must run `{TEST_COMMAND}`"
    );

    let readme = root().join("README.md");
    if !readme.exists() {
        eprintln!("README.md does not exist yet: not checking that it documents `{TEST_COMMAND}`");
        return;
    }
    assert!(
        read("README.md").contains(TEST_COMMAND),
        "README.md must document the test command `{TEST_COMMAND}`, as .ci/run runs it"
    );
}

#[test]
fn durations_parse() {
    assert_eq!(duration("45s"), Duration::from_secs(45));
    assert_eq!(duration("2m"), Duration::from_secs(120));
    assert_eq!(duration("1h"), Duration::from_secs(3600));
    assert_eq!(duration("500ms"), Duration::from_millis(500));
}

#[test]
fn prometheus_is_optional_and_scrapes_the_dashboard() {
    let doc = compose();
    let prometheus = service(&doc, "prometheus");
    let profiles = words(&prometheus["profiles"]);
    assert_eq!(
        profiles,
        ["metrics"],
        "prometheus runs only under a profile"
    );
    let config = read("deploy/prometheus/prometheus.yml");
    assert!(
        config.contains("dashboard:8081"),
        "prometheus must scrape the dashboard's /metrics"
    );
}

#[test]
fn submitter_requires_tokens_and_the_demo_tokens_are_documented() {
    use sha2::Digest as _;
    let doc = compose();
    // The dashboard takes the same tokens as the API.
    for name in ["submitter", "dashboard"] {
        let svc = service(&doc, name);
        let env = environment(svc);
        let path = env
            .get("WARREN_TOKENS_FILE")
            .unwrap_or_else(|| panic!("auth is on in compose: {name} sets WARREN_TOKENS_FILE"));
        assert!(!env.contains_key("WARREN_NO_AUTH"), "{name}: {env:?}");
        let mounts = words(&svc["volumes"]);
        assert!(
            mounts
                .iter()
                .any(|m| m == &format!("./deploy/tokens.json:{path}:ro")),
            "{name}: the tokens file is mounted read-only at {path}: {mounts:?}"
        );
    }
    let tokens: serde_json::Value = serde_json::from_str(&read("deploy/tokens.json")).unwrap();
    let hashes: Vec<&str> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sha256"].as_str().unwrap())
        .collect();
    let readme = read("deploy/README.md");
    for demo in ["demo-admin-token-change-me", "demo-default-token-change-me"] {
        assert!(readme.contains(demo), "deploy/README.md names {demo}");
        let hash: String = sha2::Sha256::digest(demo.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            hashes.contains(&hash.as_str()),
            "{demo} is in deploy/tokens.json"
        );
    }
}

#[test]
fn every_service_has_a_healthcheck() {
    let doc = compose();
    for name in APP_SERVICES {
        let test = healthcheck_test(service(&doc, name), name);
        assert!(!test.is_empty(), "{name}: empty healthcheck");
    }
    // The scheduler and the worker serve no HTTP: healthy means connected to both backends.
    for name in ["scheduler", "worker"] {
        let test = healthcheck_test(service(&doc, name), name).join(" ");
        assert!(
            test.contains(":1628 01") && test.contains(":18EB 01"),
            "{name}: {test}"
        );
    }
}

#[test]
fn each_service_builds_its_own_target() {
    let doc = compose();
    let dockerfile = read("Dockerfile");
    for name in APP_SERVICES.into_iter().chain(["cli"]) {
        let svc = service(&doc, name);
        assert_eq!(svc["build"]["target"].as_str(), Some(name), "{name}");
        assert_eq!(
            svc["image"].as_str(),
            Some(format!("warren-{name}:local").as_str()),
            "{name}"
        );
        assert!(
            dockerfile.contains(&format!("FROM runtime-base AS {name}\n")),
            "the Dockerfile needs a target {name}"
        );
    }
    assert!(
        dockerfile.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"),
        "the images carry stripped binaries"
    );
}

#[test]
fn readme_run_it_shows_both_compose_front_ends() {
    let readme = read("README.md");
    let run_it = readme
        .split("## Run it")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a Run it section");
    for command in [
        "docker compose up -d --build",
        "DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1 docker-compose up -d --build",
        "--scale worker=3",
    ] {
        assert!(run_it.contains(command), "Run it must show `{command}`");
    }
}

/// docker-compose.ha.yml with anchors and merge keys resolved (on its own: it adds to
/// docker-compose.yml, which compose reads first).
fn compose_ha() -> Value {
    let mut doc: Value = serde_yaml::from_str(&read("docker-compose.ha.yml")).unwrap();
    doc.apply_merge().unwrap();
    doc
}

#[test]
fn ha_file_points_every_service_at_three_nodes_and_the_sentinels() {
    let (main, ha) = (compose(), compose_ha());
    let services = |doc: &Value| -> Vec<String> {
        doc["services"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let known: Vec<String> = services(&main).into_iter().chain(services(&ha)).collect();
    // The node names cluster.conf lists are the RabbitMQ services' hostnames.
    let cluster = read("deploy/rabbitmq/cluster.conf");
    let mut nodes = Vec::new();
    for line in cluster.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, node)) = line.split_once("classic_config.nodes.") {
            let node = node.split_once('=').unwrap().1.trim();
            nodes.push(node.strip_prefix("rabbit@").unwrap().to_owned());
        }
    }
    assert_eq!(nodes.len(), 3, "cluster.conf lists three nodes: {cluster}");
    for node in &nodes {
        let svc = ha["services"]
            .get(node)
            .unwrap_or_else(|| panic!("docker-compose.ha.yml has no node {node}"));
        let hostname = svc
            .get("hostname")
            .or_else(|| service(&main, node).get("hostname"))
            .and_then(Value::as_str);
        assert_eq!(
            hostname,
            Some(node.as_str()),
            "{node}'s hostname names its node"
        );
        let mounts = words(&svc["volumes"]);
        assert!(
            mounts
                .iter()
                .any(|m| m.contains("cluster.conf:/etc/rabbitmq/conf.d/")),
            "{node} must mount cluster.conf: {mounts:?}"
        );
        // A data volume of its own, not the single node's (compose merges volumes by their
        // path in the container): a node of this cluster cannot run alone.
        let data = mounts
            .iter()
            .find(|m| m.ends_with(":/var/lib/rabbitmq"))
            .unwrap_or_else(|| panic!("{node} needs its own data volume: {mounts:?}"));
        assert!(!data.starts_with("rabbitmq-data:"), "{node}: {data}");
        let cookie = &environment(svc)["ERLANG_COOKIE"];
        assert!(!cookie.is_empty(), "{node} shares the Erlang cookie");
    }
    // The name the Sentinels monitor, from the configuration they write.
    let sentinel_script = words(&service(&ha, "sentinel-1")["command"]).join(" ");
    let master = sentinel_script
        .split("sentinel monitor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the sentinels monitor a primary");
    for name in APP_SERVICES {
        let env = environment(service(&ha, name));
        assert_eq!(env["WARREN_QUEUE_TYPE"], "quorum", "{name}");
        let hosts: Vec<&str> = env["WARREN_AMQP_URL"]
            .split(',')
            .map(|url| {
                let host = url.split('@').nth(1).unwrap();
                host.split(':').next().unwrap()
            })
            .collect();
        assert_eq!(hosts, nodes, "{name}: WARREN_AMQP_URL names every node");
        let sentinels: Vec<&str> = env["WARREN_REDIS_SENTINELS"]
            .split(',')
            .map(|s| s.split(':').next().unwrap())
            .collect();
        assert_eq!(sentinels.len(), 3, "{name}");
        for sentinel in &sentinels {
            assert!(known.iter().any(|k| k == sentinel), "{name}: no {sentinel}");
        }
        assert_eq!(env["WARREN_REDIS_MASTER"], master, "{name}");
        let depends = &service(&ha, name)["depends_on"];
        for other in nodes.iter().map(String::as_str).chain(sentinels) {
            let healthy = depends
                .get(other)
                .map(|d| d["condition"].as_str() == Some("service_healthy"));
            // `rabbitmq` comes from docker-compose.yml's depends_on.
            assert!(
                healthy == Some(true) || other == "rabbitmq",
                "{name} must wait for {other}"
            );
        }
    }
}
