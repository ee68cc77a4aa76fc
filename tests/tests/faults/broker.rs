//! RabbitMQ faults, on a node each scenario starts for itself (its own ports and data): the
//! shared broker is never touched.

use std::time::Duration;

use warren_e2e::{PrivateRabbit, RabbitTls};
use warren_kit::testkit::{TestPki, redis_url, wait_until};

use crate::system::{Allow, Infra, Submitted, System, WorkerSpec};

const QUIET: Duration = Duration::from_secs(120);

fn infra(rabbit: &PrivateRabbit) -> Infra {
    Infra::new(rabbit.url(), redis_url())
}

fn two_workers() -> Vec<WorkerSpec> {
    vec![WorkerSpec::default(), WorkerSpec::default()]
}

/// Submits one job at a time, `n` times, whatever the answers.
async fn submit_singles(sys: &mut System, n: usize, secs: f64) -> Vec<Submitted> {
    let mut out = Vec::new();
    for _ in 0..n {
        let job = sys.ledger_job(secs);
        out.push(sys.submit_one(job).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_close_all_connections() {
    let rabbit = PrivateRabbit::start("close-conns").await;
    let mut sys = System::start("close_conns", infra(&rabbit), 1, &two_workers(), &[]).await;
    let mut submitted = sys.submit_accepted(12, 2.0).await;
    sys.wait_states(&submitted, &["running"], 2).await;
    rabbit
        .ctl(&["close_all_connections", "fault injection"])
        .await;
    submitted.extend(submit_singles(&mut sys, 4, 1.0).await);
    sys.wait_ready().await;
    submitted.extend(submit_singles(&mut sys, 4, 1.0).await);
    let records = sys.wait_quiet(&submitted, QUIET).await;
    sys.judge(&submitted, &records, Allow::default());
    sys.stop().await;
    drop(rabbit);
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_stop_app_and_start_app() {
    let rabbit = PrivateRabbit::start("stop-app").await;
    let mut sys = System::start("stop_app", infra(&rabbit), 1, &two_workers(), &[]).await;
    let mut submitted = sys.submit_accepted(12, 2.0).await;
    sys.wait_states(&submitted, &["running"], 2).await;
    rabbit.ctl(&["stop_app"]).await;
    // Submissions while the broker is down: each is refused (no confirm, no 202) or
    // accepted, never lost.
    submitted.extend(submit_singles(&mut sys, 4, 1.0).await);
    rabbit.ctl(&["start_app"]).await;
    sys.wait_ready().await;
    submitted.extend(submit_singles(&mut sys, 4, 1.0).await);
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert!(
        v.refused > 0,
        "a broker that is down refuses submissions: {v:?}"
    );
    sys.stop().await;
    drop(rabbit);
}

/// A memory alarm blocks every publisher while connections stay open: submissions must be
/// refused (503 within the request timeout), `/readyz` must say so, and none of the refused
/// jobs may run once the alarm clears.
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_memory_alarm() {
    let rabbit = PrivateRabbit::start("mem-alarm").await;
    let mut sys = System::start(
        "mem_alarm",
        infra(&rabbit),
        1,
        &two_workers(),
        &[("WARREN_REQUEST_TIMEOUT", "3s".to_owned())],
    )
    .await;
    let mut submitted = sys.submit_accepted(8, 2.0).await;
    sys.wait_states(&submitted, &["running"], 2).await;
    rabbit
        .ctl(&["set_vm_memory_high_watermark", "0.0000001"])
        .await;
    let url = format!("{}/readyz", sys.base);
    wait_until(
        "readyz to see the alarm",
        Duration::from_secs(30),
        || async {
            let response = sys.http.get(&url).send().await.ok()?;
            (response.status().as_u16() == 503).then_some(())
        },
    )
    .await;
    submitted.extend(submit_singles(&mut sys, 3, 1.0).await);
    rabbit.ctl(&["set_vm_memory_high_watermark", "0.4"]).await;
    sys.wait_ready().await;
    submitted.extend(submit_singles(&mut sys, 4, 1.0).await);
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert!(
        v.refused + v.unknown >= 3,
        "the alarm refused submissions: {v:?}"
    );
    sys.stop().await;
    drop(rabbit);
}

/// RabbitMQ closes a channel whose delivery stays unacked past `consumer_timeout`; jobs
/// longer than that must still complete exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_consumer_timeout() {
    let rabbit = PrivateRabbit::start("consumer-timeout").await;
    // The timeout is checked on the channel's tick (a minute by default): tick every second
    // for the channels opened from now on.
    rabbit
        .ctl(&[
            "eval",
            "application:set_env(rabbit, consumer_timeout, 5000), \
             application:set_env(rabbit, channel_tick_interval, 1000).",
        ])
        .await;
    let mut sys = System::start(
        "consumer_timeout",
        infra(&rabbit),
        1,
        &[WorkerSpec::default()],
        &[],
    )
    .await;
    let mut submitted = sys.submit_accepted(2, 9.0).await;
    submitted.extend(sys.submit_accepted(2, 1.0).await);
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert_eq!(v.states.get("succeeded"), Some(&4), "{v:?}");
    let fired = std::fs::read_to_string(sys.dir.join("worker-0.log"))
        .unwrap_or_default()
        .contains("consumer_timeout");
    eprintln!("FAULTS-REPORT consumer_timeout: the worker logged the timeout: {fired}");
    assert!(
        fired,
        "the consumer timeout never fired: the scenario tested nothing"
    );
    sys.stop().await;
    drop(rabbit);
}

/// `amqps://` with `WARREN_AMQP_CA_FILE`: a node with a TLS listener whose certificate a CA
/// made by the test signed. Every service connects over TLS and jobs run end to end; a
/// client that trusts another CA is refused with an error that names the certificate.
#[tokio::test(flavor = "multi_thread")]
async fn amqps_with_a_ca_file() {
    let pki = TestPki::new("amqps");
    let tls = RabbitTls {
        ca: &pki.ca,
        cert: &pki.cert,
        key: &pki.key,
    };
    let rabbit = PrivateRabbit::start_tls("amqps", tls).await;
    let infra = Infra {
        amqp_ca: Some(pki.ca.clone()),
        ..Infra::new(rabbit.amqps_url(), redis_url())
    };

    let other = TestPki::new("amqps-other");
    let wrong = Infra {
        amqp_ca: Some(other.ca.clone()),
        ..infra.clone()
    };
    let refused = tokio::time::timeout(Duration::from_secs(20), wrong.connect("faults-wrong-ca"))
        .await
        .expect("a refused handshake fails promptly");
    let Err(error) = refused else {
        panic!("a broker certificate from another CA was accepted");
    };
    // (`BadSignature` rather than `UnknownIssuer`: both test CAs have the same name.)
    let error = error.to_string();
    assert!(error.contains("invalid peer certificate"), "{error}");

    let mut sys = System::start("amqps", infra, 1, &[WorkerSpec::default()], &[]).await;
    let submitted = sys.submit_accepted(4, 0.1).await;
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert_eq!(v.states.get("succeeded"), Some(&4), "{v:?}");
    // Submitter, scheduler and worker are connected, each only over TLS.
    let connections = rabbit.ctl(&["list_connections", "ssl", "--silent"]).await;
    let ssl: Vec<&str> = connections.split_whitespace().collect();
    assert!(
        ssl.len() >= 3 && ssl.iter().all(|s| *s == "true"),
        "{connections}"
    );
    sys.stop().await;
    drop(rabbit);
}
