//! A RabbitMQ node of a test's own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<T: Send + 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("a node start panicked"));
    }
    out
}

/// The node's own scripts, not the `/usr/sbin` wrappers (which switch to the `rabbitmq`
/// user, who cannot write the test's directories).
const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";

fn tool(name: &str) -> PathBuf {
    let own = Path::new(RABBIT_BIN).join(name);
    if own.exists() {
        own
    } else {
        PathBuf::from(name)
    }
}

/// A RabbitMQ node with its own name, ports, data and log directories and no plugins,
/// controlled with `rabbitmqctl -n NODE`: a test may close its connections, stop it, raise
/// a memory alarm or change its settings without touching the shared broker. Stopped and
/// removed when dropped (also when the test panics).
#[derive(Debug)]
pub struct PrivateRabbit {
    node: String,
    port: u16,
    /// The `amqps` port, when the node has a TLS listener.
    tls_port: Option<u16>,
    dir: PathBuf,
    child: Option<Child>,
    /// Killed with `kill -9`: nothing left to stop.
    killed: bool,
}

/// PEM files for a node's TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct RabbitTls<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

impl PrivateRabbit {
    /// A node with a plain AMQP listener.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, None).await
    }

    /// A node with a plain AMQP listener and an `amqps` one that presents `tls.cert`
    /// (clients are not asked for certificates).
    pub async fn start_tls(name: &str, tls: RabbitTls<'_>) -> Self {
        Self::start_with(name, Some(tls)).await
    }

    async fn start_with(name: &str, tls: Option<RabbitTls<'_>>) -> Self {
        let port = crate::free_port();
        let dist = crate::free_port();
        let dir = crate::scratch_dir(&format!("rabbit-{name}"));
        let node = format!("warren-{name}-{port}@localhost");
        let mut text = format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n");
        let tls_port = tls.map(|tls| {
            let tls_port = crate::free_port();
            text.push_str(&format!(
                "listeners.ssl.local = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                tls.ca.display(),
                tls.cert.display(),
                tls.key.display()
            ));
            tls_port
        });
        std::fs::write(dir.join("rabbitmq.conf"), text).expect("writing the node's config");
        std::fs::write(dir.join("enabled_plugins"), "").expect("writing the plugins file");
        std::fs::write(dir.join("dist_port"), dist.to_string()).expect("writing the dist port");
        let mut rabbit = Self {
            node,
            port,
            tls_port,
            dir,
            child: None,
            killed: false,
        };
        rabbit.spawn().await;
        rabbit
    }

    /// Starts the node's VM on its name, ports and data, and waits until it runs.
    async fn spawn(&mut self) {
        let dir = &self.dir;
        let dist = std::fs::read_to_string(dir.join("dist_port")).expect("the dist port");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.out"))
            .expect("server log");
        let child = Command::new(tool("rabbitmq-server"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_DIST_PORT", dist.trim())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("rabbitmq-server installed");
        self.child = Some(child);
        self.killed = false;
        let pid_file = self.dir.join("pid");
        let pid_file = pid_file.to_string_lossy().into_owned();
        self.ctl(&["wait", &pid_file, "--timeout", "90"]).await;
    }

    /// Starts the node again after [`PrivateRabbit::kill9`]: it rejoins its cluster.
    pub async fn restart(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("pid"));
        self.spawn().await;
    }

    /// `n` nodes joined into one cluster (the first is the one the others join). The nodes
    /// share the Erlang cookie of `$HOME/.erlang.cookie`, as every node this user starts.
    pub async fn cluster(name: &str, n: usize) -> Vec<Self> {
        let starts = (0..n).map(|i| Self::start_owned(format!("{name}{i}")));
        let nodes: Vec<Self> = futures_join_all(starts).await;
        let first = nodes[0].node.clone();
        for node in &nodes[1..] {
            node.ctl(&["stop_app"]).await;
            node.ctl(&["join_cluster", &first]).await;
            node.ctl(&["start_app"]).await;
        }
        nodes[0]
            .ctl(&["await_online_nodes", &n.to_string(), "--timeout", "60"])
            .await;
        nodes
    }

    async fn start_owned(name: String) -> Self {
        Self::start(&name).await
    }

    /// The node a queue's leader is on, from this node's view (`rabbitmqctl list_queues`).
    pub async fn queue_leader(&self, queue: &str) -> Option<String> {
        let out = self
            .ctl(&[
                "list_queues",
                "name",
                "leader",
                "--no-table-headers",
                "--quiet",
            ])
            .await;
        out.lines().find_map(|line| {
            let mut cols = line.split('\t');
            (cols.next()? == queue).then(|| cols.next().unwrap_or_default().trim().to_owned())
        })
    }

    /// `kill -9` of the node's VM: no shutdown, no goodbye to the cluster.
    pub async fn kill9(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill")
                .args(["-9", pid.trim()])
                .stderr(Stdio::null())
                .status()
                .await;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        self.killed = true;
    }

    /// `amqp://` URL of the node's default vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `amqps://` URL of the node's default vhost, by the name its certificate has.
    ///
    /// # Panics
    /// When the node was started without TLS.
    pub fn amqps_url(&self) -> String {
        let port = self.tls_port.expect("a node started with start_tls");
        format!("amqps://guest:guest@localhost:{port}/%2f")
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Runs `rabbitmqctl -n NODE args…` and returns its stdout; panics if it fails.
    pub async fn ctl(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            Command::new(tool("rabbitmqctl"))
                .args(["-n", &self.node])
                .args(args)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("rabbitmqctl {args:?} hung"))
        .expect("running rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}{} (node log: {})",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.dir.join("log").display()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        // `rabbitmq-server` is a script: the VM is its child, so stop the node by name, then
        // make sure through the pid file.
        let _ = (!self.killed).then(|| {
            std::process::Command::new(tool("rabbitmqctl"))
                .args(["-n", &self.node, "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        });
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = std::process::Command::new("kill")
                .args(["-9", pid.trim()])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
