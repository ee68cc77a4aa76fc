//! Redis faults, on a `redis-server` each scenario starts for itself.

use std::time::Duration;

use warren_e2e::PrivateRedis;
use warren_kit::testkit::amqp_url;

use crate::system::{Allow, Infra, System, WorkerSpec};

const QUIET: Duration = Duration::from_secs(120);

fn infra(redis: &PrivateRedis) -> Infra {
    Infra::new(amqp_url(), redis.url())
}

fn two_workers() -> Vec<WorkerSpec> {
    vec![WorkerSpec::default(), WorkerSpec::default()]
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_connections_killed() {
    let redis = PrivateRedis::start("client-kill", false).await;
    let mut sys = System::start("redis_kill", infra(&redis), 1, &two_workers(), &[]).await;
    let submitted = sys.submit_accepted(12, 1.5).await;
    sys.wait_states(&submitted, &["running"], 2).await;
    let mut killed = 0;
    for _ in 0..3 {
        let answer = redis.cli(&["CLIENT", "KILL", "TYPE", "normal"]).await;
        killed += answer.and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
        // Between kills the services reconnect; the gap is part of the fault.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    eprintln!("FAULTS-REPORT redis_kill: {killed} connections killed");
    assert!(killed > 0);
    assert_eq!(v.states.get("succeeded"), Some(&12), "{v:?}");
    sys.stop().await;
    drop(redis);
}

/// `CLIENT PAUSE` for twice the lease (2 s) while jobs run.
#[tokio::test(flavor = "multi_thread")]
async fn redis_paused_longer_than_the_lease() {
    let redis = PrivateRedis::start("client-pause", false).await;
    let mut sys = System::start("redis_pause", infra(&redis), 1, &two_workers(), &[]).await;
    let submitted = sys.submit_accepted(8, 5.0).await;
    sys.wait_states(&submitted, &["running"], 3).await;
    assert_eq!(
        redis
            .cli(&["CLIENT", "PAUSE", "4000", "ALL"])
            .await
            .as_deref(),
        Some("OK")
    );
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert_eq!(v.states.get("succeeded"), Some(&8), "{v:?}");
    sys.stop().await;
    drop(redis);
}

/// Redis killed (`kill -9`) and started again on its append-only file (every write
/// fsynced), while jobs run.
#[tokio::test(flavor = "multi_thread")]
async fn redis_restart_with_aof() {
    let mut redis = PrivateRedis::start("restart-aof", true).await;
    let mut sys = System::start("redis_restart", infra(&redis), 1, &two_workers(), &[]).await;
    let submitted = sys.submit_accepted(12, 2.0).await;
    sys.wait_states(&submitted, &["running"], 2).await;
    redis.kill().await;
    // The outage is the fault: long enough for every service to notice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await;
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert_eq!(v.states.get("succeeded"), Some(&12), "{v:?}");
    sys.stop().await;
    drop(redis);
}
