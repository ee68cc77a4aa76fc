//! What the end-to-end and fault-injection tests (in `tests/`) share: a `redis-server` and a
//! RabbitMQ node of a test's own, which it may stop, pause and reconfigure without touching
//! the shared ones, and a TCP proxy that can stall or cut a service's link to the broker.
// Test support: a failure to start a test's own server is the test's failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy;
mod rabbit;
mod redis;

pub use proxy::{Link, Proxy};
pub use rabbit::{PrivateRabbit, RabbitTls};
pub use redis::{PrivateRedis, PrivateSentinel};

/// Where the service binaries are: `warren-submitter`, `warren-scheduler`, `warren-worker`
/// and the example worker with an application task (`custom_task`), built once per test
/// process (a no-op when they are up to date) so that no suite runs stale binaries. Every
/// suite builds this same set, so one suite's build never undoes another's.
pub fn service_bin_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "--bins",
                "-p",
                "warren-submitter",
                "-p",
                "warren-scheduler",
                "-p",
                "warren-worker",
                "--example",
                "custom_task",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build for the service binaries");
        assert!(status.success(), "building the service binaries failed");
        // target/debug/deps/<test>-<hash> → target/debug
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent()
            .and_then(std::path::Path::parent)
            .expect("target dir")
            .to_path_buf()
    })
}

/// A free TCP port on loopback. Never one RabbitMQ's command-line tools use for their own
/// distribution (35672–35682) or the shared node's (25672), which a private node would
/// otherwise race for.
pub fn free_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local addr").port();
        if !(25_672..=25_682).contains(&port) && !(35_672..=35_682).contains(&port) {
            return port;
        }
    }
}

/// A fresh directory under the system's temp dir, removed by whoever owns it.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "warren-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("creating a scratch dir");
    dir
}
