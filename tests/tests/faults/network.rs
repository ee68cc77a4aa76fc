//! The link between one worker and RabbitMQ stalls or is cut, through a TCP proxy of the
//! test's own; a second worker reaches the broker directly.

use std::time::Duration;

use warren_e2e::{Link, Proxy};
use warren_kit::testkit::{amqp_url, wait_until};

use crate::system::{Allow, Infra, System, WorkerSpec, accepted, via_proxy};

const QUIET: Duration = Duration::from_secs(120);

async fn scenario(name: &str, link: Link, outage: Duration) {
    let shared = amqp_url();
    // The broker's `host:port` does not depend on the proxy's address.
    let (_, target) = via_proxy(&shared, "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(target).await;
    let (through_proxy, _) = via_proxy(&shared, proxy.addr());
    let behind = WorkerSpec {
        amqp: Some(through_proxy),
        ..WorkerSpec::default()
    };
    let mut sys = System::start(
        name,
        Infra::shared(),
        1,
        &[behind, WorkerSpec::default()],
        &[],
    )
    .await;
    let submitted = sys.submit_accepted(12, 2.0).await;
    let worker = sys.worker_id(0);
    wait_until(
        "the worker behind the proxy to run a job",
        Duration::from_secs(60),
        || async {
            for (_, id) in accepted(&submitted) {
                if let Some(job) = sys.job(id).await
                    && job["state"] == "running"
                    && job["worker"] == worker.as_str()
                {
                    return Some(());
                }
            }
            None
        },
    )
    .await;
    proxy.set(link);
    // The outage is the fault.
    tokio::time::sleep(outage).await;
    proxy.set(Link::Up);
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert_eq!(v.states.get("succeeded"), Some(&12), "{v:?}");
    sys.stop().await;
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread")]
async fn network_stall_between_a_worker_and_rabbitmq() {
    scenario("net_stall", Link::Stalled, Duration::from_secs(12)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn network_cut_between_a_worker_and_rabbitmq() {
    scenario("net_cut", Link::Cut, Duration::from_secs(3)).await;
}
