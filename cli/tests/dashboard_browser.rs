//! The dashboard in a real browser: `warren up` (submitter, scheduler, a worker and the
//! dashboard in one process, real RabbitMQ and Redis, its own namespace), then
//! `dashboard/e2e/dashboard.test.mjs` in headless Chromium through playwright-core. The script
//! loads every view, submits jobs through the submitter and watches them appear and change
//! state without a reload, cancels one from the UI, tails a job's log, and saves screenshots.
//! Then the numbers the Overview showed are checked against Redis.
//!
//! Needs `node`, Debian's `chromium` and `npm ci` in `dashboard/e2e` (`.ci/run` sees to all
//! three); without them the test fails and says what is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use warren_kit::testkit::{TestNamespace, amqp_url, block_on_cleanup, redis_url};
use warren_protocol::{JobState, PoolName};
use warren_store::{Store, StoreOptions};
use warren_topology::{Topology, TopologyOptions};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");
const CHROMIUM: &str = "/usr/bin/chromium";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the workspace root")
        .join("dashboard/e2e")
}

/// Where the screenshots go: next to the test binary (a test artifact); `docs/img` holds
/// copies of them.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("creating the screenshot dir");
    dir
}

fn check_prerequisites() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install chromium (bash .ci/run does)"
    );
    assert!(
        e2e_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in dashboard/e2e (bash .ci/run does)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_shows_the_system_live_in_a_browser() {
    check_prerequisites();
    let cleanup = Cleanup {
        ns: TestNamespace::new("dashboard_browser"),
        done: false,
    };
    let ns = &cleanup.ns;
    // The API and the dashboard take the same tokens; the browser signs in with this one.
    let token = format!("e2e-{}", ns.ns().as_str());
    let tokens = serde_json::json!({"tokens": [
        {"name": "e2e-admin", "sha256": warren_submitter::hash_token(&token), "roles": ["admin"]},
    ]});
    let tokens_file = std::env::temp_dir().join(format!("{}-tokens.json", ns.ns().as_str()));
    std::fs::write(&tokens_file, tokens.to_string()).unwrap();
    let mut up = Command::new(WARREN)
        .args([
            "up",
            "--tokens-file",
            tokens_file.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
            "--dashboard-addr",
            "127.0.0.1:0",
        ])
        .args([
            "--workers",
            "1",
            "--slots",
            "4",
            "--heartbeat-interval",
            "500ms",
        ])
        .args(["--allow-command", "echo,sleep,sh"])
        .env("WARREN_AMQP_URL", amqp_url())
        .env("WARREN_REDIS_URL", redis_url())
        .env("WARREN_NAMESPACE", ns.ns().as_str())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starting warren up");
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("warren up announces its addresses in time")
            .unwrap()
            .expect("a line on stdout")
    };
    let api = next_line().await;
    let api = api.strip_prefix("warren up: api ").expect("the api line");
    let dashboard = next_line().await;
    let dashboard = dashboard
        .strip_prefix("warren up: dashboard ")
        .expect("the dashboard line");
    // Read once, at start.
    std::fs::remove_file(&tokens_file).unwrap();

    let node = tokio::time::timeout(
        Duration::from_secs(240),
        Command::new("node")
            .arg("dashboard.test.mjs")
            .current_dir(e2e_dir())
            .env("DASHBOARD_URL", dashboard)
            .env("API_URL", api)
            .env("SCREENSHOTS", screenshot_dir())
            .env("CHROMIUM", CHROMIUM)
            .env("TOKEN", &token)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the browser test finishes within 4 minutes")
    .expect("running node (is it installed?)");
    let stdout = String::from_utf8_lossy(&node.stdout);
    let stderr = String::from_utf8_lossy(&node.stderr);
    assert!(
        node.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        node.status
    );
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}"));

    // The numbers on the page are the numbers in Redis.
    let store = Store::connect(&redis_url(), ns.ns(), StoreOptions::default())
        .await
        .unwrap();
    for (state, count) in store.count_by_state().await.unwrap() {
        assert_eq!(
            result["counts"][state.as_str()].as_u64(),
            Some(count),
            "jobs {state} on the page vs in Redis: {result}"
        );
    }
    let finished = store.terminal_counters().await.unwrap();
    assert_eq!(
        result["finished"]["succeeded"].as_u64(),
        Some(finished.succeeded)
    );
    assert_eq!(result["finished"]["failed"].as_u64(), Some(finished.failed));
    let cancelled = result["jobs"]["slow"].as_str().unwrap().parse().unwrap();
    let record = store.get(cancelled).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Cancelled, "cancelled from the UI");
    assert_eq!(record.actions.len(), 1, "the cancel is in its history");
    for id in result["jobs"]["batch"].as_array().unwrap() {
        let record = store
            .get(id.as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.state,
            JobState::Cancelled,
            "bulk-cancelled from the UI"
        );
        let action = &record.actions[0];
        assert_eq!(
            (
                action.action.as_str(),
                action.by.as_str(),
                action.via.as_str(),
                action.detail.as_deref()
            ),
            ("cancel", "e2e-admin", "dashboard", Some("bulk"))
        );
    }
    // Requeued from the dead-letter view: a new job runs its spec, and the dead job says so.
    let dying = result["jobs"]["dying"].as_str().unwrap().parse().unwrap();
    let record = store.get(dying).await.unwrap().unwrap();
    let requeue = record
        .actions
        .last()
        .expect("the requeue is in its history");
    assert_eq!(
        (requeue.action.as_str(), requeue.by.as_str()),
        ("requeue", "e2e-admin")
    );

    stop(up).await;
    cleanup.run().await;
}

/// Removes the namespace's keys, exchanges and queues, also when the test panicked (then in
/// `Drop`, while `kill_on_drop` ends `warren up`).
struct Cleanup {
    ns: TestNamespace,
    done: bool,
}

impl Cleanup {
    async fn run(mut self) {
        self.done = true;
        remove(self.ns.clone()).await;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.done {
            block_on_cleanup(remove(self.ns.clone()));
        }
    }
}

async fn remove(ns: TestNamespace) {
    ns.cleanup().await;
    let Ok(pool) = warren_topology::connect_pool(&amqp_url(), "dashboard-test", 1).await else {
        return;
    };
    let topology = Topology::new(ns.ns().clone(), TopologyOptions::default());
    if let Ok(channel) = Topology::channel(&pool).await {
        let pools = [PoolName::parse_list("cpu").unwrap()];
        let _ = warren_topology::teardown(&channel, &topology, &pools).await;
    }
}

async fn stop(mut up: tokio::process::Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(up.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), up.wait())
        .await
        .expect("warren up stops on SIGTERM (open live streams included)")
        .unwrap();
    assert!(status.success(), "warren up exited with {status}");
}
