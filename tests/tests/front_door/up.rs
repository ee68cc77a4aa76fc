//! `warren up` as a process in its own namespace, on a free port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use warren_kit::testkit::{TestNamespace, amqp_url, block_on_cleanup, redis_url, wait_until};

/// Builds the `warren` binary once per test run (a no-op when it is up to date), so these
/// tests never run a stale one; returns the directory it is in.
pub(crate) fn bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "--bins", "-p", "warren-cli"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build for the warren binary");
        assert!(status.success(), "building the warren binary failed");
        // target/debug/deps/front_door-<hash> → target/debug
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent()
            .and_then(|deps| deps.parent())
            .expect("target dir")
            .to_path_buf()
    })
}

/// The repository's root.
pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
}

/// A running `warren up`.
pub(crate) struct Up {
    pub(crate) ns: TestNamespace,
    pub(crate) url: String,
    child: Child,
    stopped: bool,
}

impl Drop for Up {
    /// A test that panicked never reached `stop`: the process dies with its handle
    /// (`kill_on_drop`) and what the namespace left is purged here.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let ns = self.ns.clone();
        block_on_cleanup(async move {
            let _ = purge(&ns).await;
            ns.cleanup().await;
        });
    }
}

impl Up {
    /// Starts `warren up` with `args` (plus free ports), in a fresh namespace, and waits
    /// until a worker has registered.
    pub(crate) async fn start(name: &str, args: &[&str]) -> Self {
        let ns = TestNamespace::new(name);
        let log_dir = bin_dir().join("e2e-logs").join(ns.ns().as_str());
        std::fs::create_dir_all(&log_dir).expect("creating the log dir");
        let log = std::fs::File::create(log_dir.join("up.log")).expect("creating the log");
        let mut child = Command::new(bin_dir().join("warren"))
            .arg("up")
            .args(args)
            // Free ports, so tests (and a Warren the developer runs) never collide.
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--dashboard-addr",
                "127.0.0.1:0",
            ])
            .env("WARREN_AMQP_URL", amqp_url())
            .env("WARREN_REDIS_URL", redis_url())
            .env("WARREN_NAMESPACE", ns.ns().as_str())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting warren up");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("warren up announces its address in time")
            .expect("reading warren up's stdout")
            .unwrap_or_else(|| panic!("warren up exited; see {}", log_dir.display()));
        let url = line
            .strip_prefix("warren up: api ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        let up = Self {
            ns,
            url,
            child,
            stopped: false,
        };
        let workers = format!("{}/v1/workers", up.url);
        wait_until("a worker to register", Duration::from_secs(30), || {
            let workers = workers.clone();
            async move {
                let body: Value = reqwest::get(&workers).await.ok()?.json().await.ok()?;
                let any = body["workers"].as_array().is_some_and(|w| !w.is_empty());
                any.then_some(())
            }
        })
        .await;
        up
    }

    /// The API's `host:port`.
    pub(crate) fn authority(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Stops `warren up` with SIGTERM (it must exit 0) and purges what it left.
    pub(crate) async fn stop(mut self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id().expect("running")).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("signalling warren up");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("warren up stops on SIGTERM")
            .expect("waiting for warren up");
        self.stopped = true;
        let purged = purge(&self.ns).await;
        self.ns.cleanup().await;
        assert!(status.success(), "warren up exited with {status}");
        assert!(purged, "warren admin purge failed");
    }
}

/// `warren admin purge --yes` of the namespace; tells whether it succeeded.
async fn purge(ns: &TestNamespace) -> bool {
    let run = Command::new(bin_dir().join("warren"))
        .args(["admin", "purge", "--yes", "--namespace", ns.ns().as_str()])
        .args(["--amqp-url", &amqp_url(), "--redis-url", &redis_url()])
        .stdin(Stdio::null())
        .output();
    matches!(
        tokio::time::timeout(Duration::from_secs(60), run).await,
        Ok(Ok(output)) if output.status.success()
    )
}
