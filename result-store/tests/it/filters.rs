//! Filters by task, tag, label and creation time, each read from an index; and the action
//! history kept on a job's record.

use std::time::Duration;

use warren_kit::testkit::{TestNamespace, redis_url, wait_until};
use warren_protocol::{JobId, JobState, ResourceTag, now_ms};
use warren_store::{JobAction, JobFilter, MAX_ACTIONS, Store, StoreOptions, Transition};

use crate::{cmd, create, get, indexed, raw, spec, store, transition, within};

async fn listed(store: &Store, filter: &JobFilter) -> Vec<JobId> {
    within("list", store.list(filter, 100, None))
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id)
        .collect()
}

#[tokio::test]
async fn task_tag_label_and_time_filters_use_their_indexes() {
    let ns = TestNamespace::new("filters_task_tag_label_time");
    let store = store(&ns).await;
    let mut gpu = spec("team-a", "default");
    gpu.task = "noop".into();
    gpu.requires.tags.insert(ResourceTag::new("gpu").unwrap());
    gpu.labels.insert("env".into(), "prod".into());
    let g = create(&store, gpu).await;
    let mut labelled = spec("team-b", "default");
    labelled.labels.insert("env".into(), "dev".into());
    let l = create(&store, labelled).await;
    let plain = create(&store, spec("team-a", "default")).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    assert!(indexed(&mut conn, &keys.index_task("noop"), g).await);
    assert!(indexed(&mut conn, &keys.index_tag("gpu"), g).await);
    assert!(indexed(&mut conn, &keys.index_label("env", "prod"), g).await);
    assert!(!indexed(&mut conn, &keys.index_task("noop"), plain).await);

    let by = |f: fn(&mut JobFilter)| {
        let mut filter = JobFilter::default();
        f(&mut filter);
        filter
    };
    assert_eq!(
        listed(&store, &by(|f| f.task = Some("echo".into()))).await,
        vec![plain, l]
    );
    assert_eq!(
        listed(&store, &by(|f| f.tag = Some("gpu".into()))).await,
        vec![g]
    );
    assert_eq!(
        listed(
            &store,
            &by(|f| f.label = Some(("env".into(), "dev".into())))
        )
        .await,
        vec![l]
    );
    // Several filters: the smallest index is read and the others are checked on the records.
    let both = by(|f| {
        f.tenant = Some("team-a".into());
        f.task = Some("echo".into());
    });
    assert_eq!(listed(&store, &both).await, vec![plain]);
    assert!(
        listed(&store, &by(|f| f.tag = Some("fpga".into())))
            .await
            .is_empty()
    );

    // A time range is a range of ids (UUIDv7 starts with its creation time).
    let created = get(&store, g).await.created_ms;
    let mut future = JobFilter {
        since_ms: Some(now_ms() + 60_000),
        ..JobFilter::default()
    };
    assert!(listed(&store, &future).await.is_empty());
    future.since_ms = Some(created.saturating_sub(60_000));
    assert_eq!(listed(&store, &future).await, vec![plain, l, g]);
    let past = JobFilter {
        until_ms: Some(created.saturating_sub(60_000)),
        task: Some("noop".into()),
        ..JobFilter::default()
    };
    assert!(listed(&store, &past).await.is_empty());
    let upto = JobFilter {
        until_ms: Some(now_ms() + 1000),
        tag: Some("gpu".into()),
        ..JobFilter::default()
    };
    assert_eq!(listed(&store, &upto).await, vec![g]);
    ns.cleanup().await;
}

#[tokio::test]
async fn task_tag_and_label_indexes_are_pruned_with_the_job() {
    let ns = TestNamespace::new("filters_pruned");
    let options = StoreOptions {
        result_ttl: Duration::from_secs(1),
        ..StoreOptions::default()
    };
    let store = within("connect", Store::connect(&redis_url(), ns.ns(), options))
        .await
        .unwrap();
    let mut s = spec("team-a", "default");
    s.requires.tags.insert(ResourceTag::new("gpu").unwrap());
    s.labels.insert("env".into(), "prod".into());
    let id = create(&store, s).await;
    transition(&store, Transition::new(id, JobState::Cancelled)).await;
    wait_until("the record to expire", Duration::from_secs(5), || {
        let store = store.clone();
        async move { store.get(id).await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert_eq!(within("prune", store.prune_expired(100)).await.unwrap(), 1);
    let keys = store.keys().clone();
    let mut conn = raw().await;
    for key in [
        keys.index_task("echo"),
        keys.index_tag("gpu"),
        keys.index_label("env", "prod"),
    ] {
        let size: i64 = cmd(&mut conn, "ZCARD", &[&key]).await;
        assert_eq!(size, 0, "{key} still holds the expired job");
    }
    ns.cleanup().await;
}

#[tokio::test]
async fn actions_are_kept_on_the_record_newest_last_and_bounded() {
    let ns = TestNamespace::new("filters_actions");
    let store = store(&ns).await;
    let id = create(&store, spec("team-a", "default")).await;
    let cancel = JobAction::now("cancel", "alice", "dashboard").with_detail("bulk");
    assert!(
        within("record", store.record_action(id, &cancel))
            .await
            .unwrap()
    );
    let record = get(&store, id).await;
    assert_eq!(record.actions, vec![cancel.clone()]);
    for i in 0..MAX_ACTIONS {
        let action = JobAction::now("retry", &format!("n{i}"), "api");
        within("record", store.record_action(id, &action))
            .await
            .unwrap();
    }
    let record = get(&store, id).await;
    assert_eq!(record.actions.len(), MAX_ACTIONS);
    assert_eq!(record.actions[0].by, "n0", "the oldest entry went first");
    assert_eq!(
        record.actions.last().map(|a| a.by.as_str()),
        Some(format!("n{}", MAX_ACTIONS - 1).as_str())
    );
    // No record, no history: an action on a missing job creates nothing.
    let missing = JobId::new();
    assert!(
        !within("record", store.record_action(missing, &cancel))
            .await
            .unwrap()
    );
    assert!(within("get", store.get(missing)).await.unwrap().is_none());
    ns.cleanup().await;
}
