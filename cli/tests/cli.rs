//! The `warren` binary as a user runs it: `warren up` in one process (real RabbitMQ and Redis),
//! and the client commands against it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use warren_kit::testkit::{TestNamespace, amqp_url, redis_url};
use warren_protocol::PoolName;
use warren_topology::{Topology, TopologyOptions};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");

struct Up {
    ns: TestNamespace,
    child: Child,
    url: String,
}

impl Up {
    async fn start(name: &str) -> Self {
        let ns = TestNamespace::new(name);
        let mut child = Command::new(WARREN)
            .args([
                "up",
                "--http-addr",
                "127.0.0.1:0",
                "--dashboard-addr",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--slots",
                "2",
            ])
            .args(["--allow-command", "echo", "--heartbeat-interval", "300ms"])
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
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("warren up announces its address in time")
            .unwrap()
            .expect("a line on stdout");
        let url = line
            .strip_prefix("warren up: api ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        Self { ns, child, url }
    }

    async fn warren(&self, args: &[&str]) -> (i32, String, String) {
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            Command::new(WARREN)
                .arg("--url")
                .arg(&self.url)
                .args(args)
                .stdin(Stdio::null())
                .output(),
        )
        .await
        .expect("warren finishes in time")
        .expect("running warren");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("warren up stops on SIGTERM")
            .unwrap();
        assert!(status.success(), "warren up exited with {status}");
        self.ns.cleanup().await;
        let pool = warren_topology::connect_pool(&amqp_url(), "cli-test", 1)
            .await
            .unwrap();
        let topology = Topology::new(self.ns.ns().clone(), TopologyOptions::default());
        let channel = Topology::channel(&pool).await.unwrap();
        warren_topology::teardown(&channel, &topology, &[PoolName::parse_list("cpu").unwrap()])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn warren_up_runs_jobs_submitted_with_the_cli() {
    let up = Up::start("cli_up").await;

    let (code, out, err) = up
        .warren(&["submit", "command", "--wait", "--", "echo", "hi there"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("state:    succeeded"), "{out}");
    assert!(out.contains(r#""stdout":"hi there\n""#), "{out}");

    let (code, out, _) = up.warren(&["submit", "fail", "--wait"]).await;
    assert_eq!(code, 1, "a failed job fails the command: {out}");
    assert!(out.contains("state:    failed"), "{out}");

    let (code, _, err) = up.warren(&["submit", "noop", "--priority", "12"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("priority"), "{err}");

    let (code, out, err) = up
        .warren(&["submit", "sleep", "--args", r#"{"ms": 10}"#])
        .await;
    assert_eq!(code, 0, "{err}");
    let id = out.trim().to_owned();
    let (code, out, _) = up.warren(&["wait", &id]).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("{id} succeeded"));

    let (code, out, _) = up.warren(&["status", &id, "--json"]).await;
    assert_eq!(code, 0);
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["spec"]["args"]["ms"], 10);

    let (code, out, _) = up.warren(&["ls", "--json", "--limit", "2"]).await;
    assert_eq!(code, 0);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["jobs"][0]["id"], id.as_str(), "newest first");

    let (code, out, _) = up.warren(&["workers", "--json"]).await;
    assert_eq!(code, 0);
    let workers: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(workers.as_array().unwrap().len(), 1, "{workers}");

    let (code, out, err) = up
        .warren(&[
            "bench",
            "--jobs",
            "300",
            "--batch",
            "100",
            "--latency-jobs",
            "20",
            "--json",
        ])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let figures: Value = serde_json::from_str(&out).unwrap();
    assert!(figures["throughput"]["jobs_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(figures["latency"]["jobs"], 20);
    assert!(figures["latency"]["p50_ms"].as_f64().unwrap() > 0.0);

    up.stop().await;
}

#[tokio::test]
async fn client_commands_say_when_the_api_is_unreachable() {
    let output = Command::new(WARREN)
        .args([
            "--url",
            "http://127.0.0.1:9",
            "status",
            "0197a5d0-0000-7000-8000-000000000000",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("cannot reach the Warren API"), "{err}");
    assert!(err.contains("WARREN_URL"), "{err}");
}
