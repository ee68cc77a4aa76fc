//! A RabbitMQ node of a test's own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

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
        let config = dir.join("rabbitmq.conf");
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
        std::fs::write(&config, text).expect("writing the node's config");
        let plugins = dir.join("enabled_plugins");
        std::fs::write(&plugins, "").expect("writing the plugins file");
        let log = std::fs::File::create(dir.join("server.out")).expect("server log");
        let child = Command::new(tool("rabbitmq-server"))
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_CONFIG_FILE", &config)
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("rabbitmq-server installed");
        let rabbit = Self {
            node,
            port,
            tls_port,
            dir,
            child: Some(child),
        };
        let pid_file = rabbit.dir.join("pid");
        let pid_file = pid_file.to_string_lossy().into_owned();
        rabbit.ctl(&["wait", &pid_file, "--timeout", "90"]).await;
        rabbit
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
        let _ = std::process::Command::new(tool("rabbitmqctl"))
            .args(["-n", &self.node, "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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
