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
