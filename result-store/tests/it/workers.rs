//! The worker registry and the set of known tasks.

use std::time::Duration;

use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::{BUILTIN_TASKS, Heartbeat, PoolName, WorkerId, WorkerResources, now_ms};

use crate::{store, within};

fn heartbeat(worker: &WorkerId, interval_ms: u64) -> Heartbeat {
    Heartbeat {
        worker_id: worker.clone(),
        pool: PoolName::parse_list("cpu").unwrap(),
        hostname: "host".into(),
        slots: 4,
        busy: 1,
        running: Vec::new(),
        resources: WorkerResources {
            cpu: 4,
            mem_mb: 8192,
            gpus: 0,
        },
        allowed_commands: vec!["echo".into()],
        tasks: vec!["resize".into()],
        load1: 0.5,
        interval_ms,
        started_at_ms: now_ms(),
        sent_at_ms: now_ms(),
        draining: false,
    }
}

#[tokio::test]
async fn heartbeats_make_workers_live_until_they_stop() {
    let ns = TestNamespace::new("heartbeats_live_workers");
    let store = store(&ns).await;
    let steady = WorkerId::generate("host");
    let leaving = WorkerId::generate("host");
    let silent = WorkerId::generate("host");
    let never = WorkerId::generate("host");

    assert!(
        within("live_workers", store.live_workers())
            .await
            .unwrap()
            .is_empty()
    );
    let steady_beat = heartbeat(&steady, 60_000);
    for beat in [
        steady_beat.clone(),
        heartbeat(&leaving, 60_000),
        // Three missed 100 ms intervals, but never less than a second.
        heartbeat(&silent, 100),
    ] {
        within("record_heartbeat", store.record_heartbeat(&beat))
            .await
            .unwrap();
    }
    for worker in [&steady, &leaving, &silent] {
        assert!(
            within("alive", store.worker_alive(worker)).await.unwrap(),
            "{worker}"
        );
    }
    assert!(!within("alive", store.worker_alive(&never)).await.unwrap());
    let mut live: Vec<WorkerId> = within("live_workers", store.live_workers())
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.worker_id)
        .collect();
    live.sort();
    let mut expected = vec![steady.clone(), leaving.clone(), silent.clone()];
    expected.sort();
    assert_eq!(live, expected);

    within("remove_worker", store.remove_worker(&leaving))
        .await
        .unwrap();
    assert!(!within("alive", store.worker_alive(&leaving)).await.unwrap());

    wait_until(
        "the silent worker's heartbeat to expire",
        Duration::from_secs(5),
        || {
            let store = store.clone();
            let silent = silent.clone();
            async move { (!store.worker_alive(&silent).await.unwrap()).then_some(()) }
        },
    )
    .await;
    let live = within("live_workers", store.live_workers()).await.unwrap();
    assert_eq!(live, vec![steady_beat], "the full heartbeat round-trips");
    ns.cleanup().await;
}

#[tokio::test]
async fn known_tasks_are_the_builtins_plus_registered_ones() {
    let ns = TestNamespace::new("known_tasks_builtins");
    let store = store(&ns).await;
    let builtins: Vec<String> = {
        let mut names: Vec<String> = BUILTIN_TASKS.iter().map(|s| (*s).to_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(
        within("known_tasks", store.known_tasks()).await.unwrap(),
        builtins
    );

    within("register", store.register_tasks(&[])).await.unwrap();
    within(
        "register",
        store.register_tasks(&["resize".into(), "thumbnail".into(), "echo".into()]),
    )
    .await
    .unwrap();
    within("register", store.register_tasks(&["resize".into()]))
        .await
        .unwrap();
    let known = within("known_tasks", store.known_tasks()).await.unwrap();
    let mut expected = builtins.clone();
    expected.extend(["resize".to_owned(), "thumbnail".to_owned()]);
    expected.sort();
    assert_eq!(known, expected, "sorted, each name once");
    ns.cleanup().await;
}
