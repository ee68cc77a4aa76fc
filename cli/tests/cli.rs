//! The `warren` binary as a user runs it: `warren up` in one process (real RabbitMQ and Redis),
//! and the client commands against it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use warren_kit::testkit::{TestNamespace, amqp_url, redis_url, wait_until};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");

struct Up {
    ns: TestNamespace,
    child: Child,
    url: String,
}

impl Up {
    async fn start(name: &str) -> Self {
        Self::start_with(TestNamespace::new(name), &[]).await
    }

    async fn start_with(ns: TestNamespace, extra: &[&str]) -> Self {
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
            .args([
                "--allow-command",
                "echo,sh",
                "--heartbeat-interval",
                "300ms",
            ])
            // Flags of the global kind work after the subcommand.
            .args(["--log-format", "json"])
            .args(extra)
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
        // The dashboard's line follows: read it too before the pipe is dropped, or `warren up`
        // can die printing it (broken pipe) when it comes a moment after the first.
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("warren up announces its dashboard in time")
            .unwrap()
            .expect("a second line on stdout");
        assert!(line.starts_with("warren up: dashboard "), "{line}");
        Self { ns, child, url }
    }

    async fn warren(&self, args: &[&str]) -> (i32, String, String) {
        run(Command::new(WARREN).arg("--url").arg(&self.url).args(args)).await
    }

    /// `warren admin purge` of this namespace, with `args`.
    async fn purge(&self, args: &[&str]) -> (i32, String, String) {
        run(Command::new(WARREN)
            .args(["admin", "purge", "--namespace", self.ns.ns().as_str()])
            .args(["--amqp-url", &amqp_url(), "--redis-url", &redis_url()])
            .args(args))
        .await
    }

    /// Stops `warren up` and purges what it left with `warren admin purge`.
    async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("warren up stops on SIGTERM")
            .unwrap();
        assert!(status.success(), "warren up exited with {status}");
        // Without --yes it asks; no answer (stdin is empty) deletes nothing.
        let (code, out, err) = self.purge(&[]).await;
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("delete all of this"), "{err}");
        assert!(out.contains("nothing deleted"), "{out}");
        let (code, out, err) = self.purge(&["--yes"]).await;
        self.ns.cleanup().await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            !out.contains(".worker."),
            "stopped workers delete their own queues: {out}"
        );
        assert!(out.contains(".intake"), "{out}");
        assert!(out.contains("deleted"), "{out}");
        let (code, out, err) = self.purge(&["--dry-run"]).await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("left nothing"), "{out}");
    }
}

async fn run(command: &mut Command) -> (i32, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        command.stdin(Stdio::null()).output(),
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

#[tokio::test(flavor = "multi_thread")]
async fn warren_up_runs_jobs_submitted_with_the_cli() {
    let up = Up::start("cli_up").await;

    let (code, out, err) = up
        .warren(&["submit", "command", "--wait", "--", "echo", "hi there"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "hi there\n", "a command's stdout is printed as is");

    let (code, out, _) = up
        .warren(&["submit", "command", "--wait", "--json", "--", "echo", "hi"])
        .await;
    assert_eq!(code, 0);
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["result"]["stdout"], "hi\n", "--json prints the record");

    let (code, out, err) = up
        .warren(&[
            "submit",
            "command",
            "--wait",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .await;
    assert_eq!(
        code, 3,
        "the command's own exit code passes through: {out}{err}"
    );
    assert_eq!(out, "out\n");
    assert!(err.contains("err\n"), "{err}");
    assert!(err.contains("exited with code 3"), "{err}");

    let (code, out, _) = up.warren(&["submit", "fail", "--wait"]).await;
    assert_eq!(code, 1, "a failed job (not a command) exits 1: {out}");
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
    let (code, out, _) = up.warren(&["workers"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("echo,sh"), "the allow-list shows: {out}");
    assert!(out.contains("built-ins"), "the tasks show: {out}");

    // A job nobody can run: accepted with a warning; `wait --timeout` and `status` say why
    // it waits; `admin purge` refuses while the namespace is in use.
    let (code, out, err) = up.warren(&["submit", "noop", "--tag", "gpu"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: no live worker offers the tags gpu"),
        "{err}"
    );
    let stuck = out.trim().to_owned();
    let (code, out, _) = up.warren(&["wait", "--timeout", "1s", &stuck]).await;
    assert_eq!(code, 75, "unfinished at the timeout: {out}");
    assert!(
        out.starts_with(&format!("{stuck} queued: waiting")),
        "{out}"
    );
    let (code, out, _) = up.warren(&["status", &stuck]).await;
    assert_eq!(code, 0);
    assert!(out.contains("waiting:  "), "{out}");
    // Once the scheduler has looked at it, `status` and `wait` show its reason.
    wait_until(
        "the scheduler's pending reason to show",
        Duration::from_secs(60),
        || async {
            let (_, out, _) = up.warren(&["status", &stuck]).await;
            out.lines()
                .any(|l| l.starts_with("waiting:") && l.contains("gpu"))
                .then_some(())
        },
    )
    .await;
    let (code, out, _) = up.warren(&["wait", "--timeout", "1s", &stuck]).await;
    assert_eq!(code, 75);
    assert!(out.contains("waiting: ") && out.contains("gpu"), "{out}");
    let (code, _, err) = up.purge(&["--dry-run"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("in use"), "{err}");
    let (code, _, _) = up.warren(&["cancel", &stuck]).await;
    assert_eq!(code, 0);
    let (code, out, _) = up.warren(&["wait", &stuck]).await;
    assert_eq!(code, 126, "a cancelled job: {out}");

    // Busy comes from the job records, at once.
    let (code, out, _) = up
        .warren(&["submit", "sleep", "--args", r#"{"ms": 120000}"#])
        .await;
    assert_eq!(code, 0);
    let sleeper = out.trim().to_owned();
    wait_until(
        "the sleep job shows on its worker",
        Duration::from_secs(60),
        || async {
            let (_, out, _) = up.warren(&["workers", "--json"]).await;
            let workers: Value = serde_json::from_str(&out).ok()?;
            let running = workers[0]["running_jobs"].as_array()?.clone();
            running
                .iter()
                .any(|id| id == sleeper.as_str())
                .then_some(())
        },
    )
    .await;
    let (code, out, _) = up.warren(&["workers"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("1/2"), "{out}");
    let (code, _, _) = up.warren(&["cancel", &sleeper]).await;
    assert_eq!(code, 0);

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

/// A submission rate below what the benchmark asks for: its 429s are waited out (by their
/// `Retry-After`), not the end of the run.
#[tokio::test(flavor = "multi_thread")]
async fn warren_bench_waits_out_the_tenant_submission_rate() {
    let up = Up::start_with(
        TestNamespace::new("cli_bench_429"),
        &["--tenant-submit-rate", "100/s"],
    )
    .await;
    let started = std::time::Instant::now();
    let (code, out, err) = up
        .warren(&[
            "bench",
            "--jobs",
            "400",
            "--batch",
            "100",
            "--concurrency",
            "4",
            "--latency-jobs",
            "5",
            "--json",
        ])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let figures: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(figures["throughput"]["jobs"], 400, "{figures}");
    // 400 jobs at 100 a second (the first 100 at once): throttled, not refused.
    let submit = figures["throughput"]["submit_seconds"].as_f64().unwrap();
    assert!(submit >= 2.5, "the rate was not applied: {figures}");
    assert!(started.elapsed() < Duration::from_secs(50));
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warren_dead_lists_a_job_whose_attempts_ran_out_and_requeues_it() {
    let up = Up::start("cli_dead").await;
    let (code, id, err) = up
        .warren(&[
            "submit",
            "command",
            "--max-attempts",
            "2",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .await;
    assert_eq!(code, 0, "{id}{err}");
    let id = id.trim().to_owned();
    // Attempt 1 fails, the retry waits a second in the ladder, attempt 2 fails for good.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let (code, out, err) = up.warren(&["dead", "ls"]).await;
        assert_eq!(code, 0, "{out}{err}");
        if out.contains(&id) {
            break out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never listed: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        listed.contains("attempts exhausted (2 of 2): exited with code 3"),
        "{listed}"
    );
    let (code, out, err) = up.warren(&["dead", "requeue", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("(requeued from {id})")), "{out}");
    // The new job runs (and fails, twice, the same way) before `warren up` stops.
    let new = out.split_whitespace().next().unwrap().to_owned();
    assert_ne!(new, id);
    let (code, out, err) = up.warren(&["wait", &new, "--timeout", "30s"]).await;
    assert_eq!(code, 3, "the command's own exit code: {out}{err}");
    let (code, out, err) = up.warren(&["dead", "requeue", &id]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("dead_letter_not_found") || err.contains("no dead letter"),
        "{err}"
    );
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

#[tokio::test]
async fn a_bad_environment_value_names_the_variable() {
    let (code, _, err) = run(Command::new(WARREN)
        .args(["up", "--http-addr", "127.0.0.1:0"])
        .env("WARREN_LEASE_TTL", "abc"))
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("environment variable WARREN_LEASE_TTL"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn warren_up_with_a_tokens_file_wants_the_token() {
    let (code, hash, err) = run(Command::new(WARREN).args(["admin", "hash-token", "s3cret"])).await;
    assert_eq!(code, 0, "{err}");
    let hash = hash.trim();
    assert_eq!(hash.len(), 64, "{hash}");
    let ns = TestNamespace::new("cli_tokens");
    let path = std::env::temp_dir().join(format!("{}-tokens.json", ns.ns().as_str()));
    let tokens = serde_json::json!({"tokens": [
        {"name": "me", "sha256": hash, "roles": ["submit", "read"], "tenant": "team-a"},
    ]});
    std::fs::write(&path, tokens.to_string()).unwrap();
    let up = Up::start_with(ns, &["--tokens-file", path.to_str().unwrap()]).await;
    std::fs::remove_file(&path).unwrap();

    let (code, out, err) = up.warren(&["ls"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--token or WARREN_TOKEN"), "{err}");
    let (code, out, err) = up.warren(&["--token", "s3cret", "submit", "noop"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let id = out.trim().to_owned();
    let (code, out, err) = up
        .warren(&["status", &id, "--json", "--token", "s3cret"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        job["spec"]["tenant"], "team-a",
        "the token's tenant is filled in"
    );
    up.stop().await;
}
