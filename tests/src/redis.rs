//! A `redis-server` of a test's own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A `redis-server` on a free port with its own data directory, killed and removed when
/// dropped (also when the test panics). With `aof`, every write is fsynced to an append-only
/// file before it is answered, so a `kill -9` and a restart lose nothing.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    aof: bool,
    /// The primary's port, for a replica.
    replica_of: Option<u16>,
}

impl PrivateRedis {
    pub async fn start(name: &str, aof: bool) -> Self {
        Self::start_inner(name, aof, None).await
    }

    /// A replica of `primary` (`--replicaof`), without an append-only file.
    pub async fn start_replica(name: &str, primary: &PrivateRedis) -> Self {
        Self::start_inner(name, false, Some(primary.port)).await
    }

    async fn start_inner(name: &str, aof: bool, replica_of: Option<u16>) -> Self {
        let port = crate::free_port();
        let dir = crate::scratch_dir(&format!("redis-{name}"));
        let mut redis = Self {
            child: None,
            port,
            dir,
            aof,
            replica_of,
        };
        redis.spawn().await;
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(primary) = self.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        self.child = Some(cmd.spawn().expect("redis-server on PATH"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cli(&["PING"]).await.as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "the private redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command with `redis-cli`; its trimmed answer, or `None` if Redis did not
    /// answer.
    pub async fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// `kill -9`: no shutdown, nothing saved beyond what the AOF already holds.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port and directory (after `kill`).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Sentinel (`redis-server --sentinel`) on a free port, watching one primary under
/// `master`, with a short `down-after-milliseconds` so that a test's failover takes seconds.
/// Killed and removed when dropped.
#[derive(Debug)]
pub struct PrivateSentinel {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl PrivateSentinel {
    pub async fn start(name: &str, master: &str, primary: &PrivateRedis, quorum: u32) -> Self {
        let port = crate::free_port();
        let dir = crate::scratch_dir(&format!("sentinel-{name}"));
        // Sentinel rewrites its configuration file: it must be one of its own.
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {master} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {master} 1000\n\
                 sentinel failover-timeout {master} 5000\n\
                 sentinel parallel-syncs {master} 1\n",
                dir = dir.display(),
                primary = primary.port,
            ),
        )
        .expect("writing the sentinel's config");
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH");
        let sentinel = Self {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while sentinel.master_port(master).await.is_none() {
            assert!(Instant::now() < deadline, "the sentinel did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sentinel
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli SENTINEL args…` against this Sentinel; its output lines, trimmed.
    async fn sentinel(&self, args: &[&str]) -> Option<Vec<String>> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "SENTINEL"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        Some(text.lines().map(|l| l.trim().to_owned()).collect())
    }

    /// How many replicas of `master`, and how many other Sentinels, this one knows.
    pub async fn known(&self, master: &str) -> Option<(u32, u32)> {
        let lines = self.sentinel(&["master", master]).await?;
        let field = |name: &str| -> Option<u32> {
            let at = lines.iter().position(|l| l == name)?;
            lines.get(at + 1)?.parse().ok()
        };
        Some((field("num-slaves")?, field("num-other-sentinels")?))
    }

    /// The port of the primary this Sentinel names for `master`.
    pub async fn master_port(&self, master: &str) -> Option<u16> {
        let lines = self.sentinel(&["get-master-addr-by-name", master]).await?;
        lines.get(1)?.parse().ok()
    }
}

impl Drop for PrivateSentinel {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
