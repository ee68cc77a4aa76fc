//! Reads for observers: the registry with lost workers, counters, samples, scheduler status.

use std::time::Duration;

use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::{Heartbeat, JobState, PoolName, WorkerId, WorkerResources, now_ms};
use warren_store::{CounterSample, Resolution, Transition};

use crate::{cmd, create, raw, spec, store, transition, within};

fn heartbeat(worker: &WorkerId, interval_ms: u64) -> Heartbeat {
    Heartbeat {
        worker_id: worker.clone(),
        pool: PoolName::parse_list("cpu").unwrap(),
        hostname: "host".into(),
        slots: 2,
        busy: 0,
        running: Vec::new(),
        resources: WorkerResources::default(),
        allowed_commands: Vec::new(),
        tasks: Vec::new(),
        load1: 0.0,
        interval_ms,
        started_at_ms: now_ms(),
        sent_at_ms: now_ms(),
        draining: false,
    }
}

#[tokio::test]
async fn the_registry_keeps_workers_that_went_silent() {
    let ns = TestNamespace::new("observe_registry");
    let store = store(&ns).await;
    let live = WorkerId::generate("host");
    let silent = WorkerId::generate("host");
    within("hb", store.record_heartbeat(&heartbeat(&live, 60_000)))
        .await
        .unwrap();
    within("hb", store.record_heartbeat(&heartbeat(&silent, 300)))
        .await
        .unwrap();
    let registry = wait_until(
        "the silent worker's heartbeat expires",
        Duration::from_secs(10),
        || async {
            let registry = store.worker_registry().await.ok()?;
            let lost = registry
                .iter()
                .any(|w| w.id == silent.as_str() && w.heartbeat.is_none());
            lost.then_some(registry)
        },
    )
    .await;
    assert_eq!(registry.len(), 2);
    let entry = registry.iter().find(|w| w.id == live.as_str()).unwrap();
    assert_eq!(entry.heartbeat.as_ref().unwrap().slots, 2);
    ns.cleanup().await;
}

#[tokio::test]
async fn counters_and_samples() {
    let ns = TestNamespace::new("observe_counters");
    let store = store(&ns).await;
    let id = create(&store, spec("t", "q")).await;
    transition(&store, Transition::new(id, JobState::Failed)).await;
    let counters = within("counters", store.terminal_counters()).await.unwrap();
    assert_eq!((counters.failed, counters.succeeded), (1, 0));

    // Writing the same moment twice keeps one sample, the last one.
    for failed in [1, 2] {
        let sample = CounterSample {
            at: 100,
            failed,
            ..CounterSample::default()
        };
        within("sample", store.record_sample(Resolution::Second, &sample))
            .await
            .unwrap();
    }
    let samples = within("read", store.read_samples(Resolution::Second, 0))
        .await
        .unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].failed, 2);
    ns.cleanup().await;
}

#[tokio::test]
async fn scheduler_info_reads_hashes_only() {
    let ns = TestNamespace::new("observe_scheduler");
    let store = store(&ns).await;
    let mut conn = raw().await;
    let keys = store.keys().clone();
    let _: () = cmd(&mut conn, "SET", &[&keys.scheduler(), "not a hash"]).await;
    let _: () = cmd(
        &mut conn,
        "SET",
        &[&keys.scheduler_status(), r#"{"policy":"fifo"}"#],
    )
    .await;
    let info = within("info", store.scheduler_info()).await.unwrap();
    assert!(info.fields.is_empty());
    assert_eq!(info.status.unwrap()["policy"], "fifo");
    ns.cleanup().await;
}
