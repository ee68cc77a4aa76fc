//! Listing, pagination, expiry pruning, deletion and counts.

use std::collections::HashSet;
use std::time::Duration;

use warren_kit::testkit::redis_url;
use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::{JobId, JobState, WorkerId};
use warren_store::{JobFilter, Page, Store, StoreOptions, Transition, TransitionOutcome};

use crate::{cmd, create, indexed, new_job, raw, running_job, spec, store, transition, within};

async fn list(store: &Store, filter: &JobFilter, limit: usize, cursor: Option<&str>) -> Page {
    let cursor = cursor.map(|c| c.parse::<JobId>().expect("a cursor is a job id"));
    within("list", store.list(filter, limit, cursor))
        .await
        .unwrap()
}

fn ids(page: &Page) -> Vec<JobId> {
    page.jobs.iter().map(|j| j.id).collect()
}

#[tokio::test]
async fn list_is_newest_first_and_filters() {
    let ns = TestNamespace::new("list_newest_first_filters");
    let store = store(&ns).await;
    let a1 = create(&store, spec("team-a", "renders")).await;
    let b1 = create(&store, spec("team-b", "renders")).await;
    let a2 = create(&store, spec("team-a", "default")).await;
    let b2 = create(&store, spec("team-b", "default")).await;
    let a3 = create(&store, spec("team-a", "renders")).await;
    assert_eq!(
        transition(&store, Transition::new(a2, JobState::Scheduled)).await,
        TransitionOutcome::Done(JobState::Queued)
    );
    assert_eq!(
        transition(&store, Transition::new(b1, JobState::Cancelled)).await,
        TransitionOutcome::Done(JobState::Queued)
    );

    let all = list(&store, &JobFilter::default(), 100, None).await;
    assert_eq!(ids(&all), vec![a3, b2, a2, b1, a1]);
    assert_eq!(all.next_cursor, None);

    let by_tenant = JobFilter {
        tenant: Some("team-a".into()),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(&list(&store, &by_tenant, 100, None).await),
        vec![a3, a2, a1]
    );
    let by_queue = JobFilter {
        queue: Some("renders".into()),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(&list(&store, &by_queue, 100, None).await),
        vec![a3, b1, a1]
    );
    let queued = JobFilter {
        state: Some(JobState::Queued),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(&list(&store, &queued, 100, None).await),
        vec![a3, b2, a1]
    );
    let combined = JobFilter {
        state: Some(JobState::Queued),
        tenant: Some("team-a".into()),
        queue: Some("renders".into()),
        ..JobFilter::default()
    };
    assert_eq!(ids(&list(&store, &combined, 100, None).await), vec![a3, a1]);
    let cancelled_b = JobFilter {
        state: Some(JobState::Cancelled),
        tenant: Some("team-b".into()),
        ..JobFilter::default()
    };
    let page = list(&store, &cancelled_b, 100, None).await;
    assert_eq!(ids(&page), vec![b1]);
    assert_eq!(page.jobs[0].state, JobState::Cancelled);
    let nobody = JobFilter {
        tenant: Some("team-z".into()),
        ..JobFilter::default()
    };
    let page = list(&store, &nobody, 100, None).await;
    assert!(page.jobs.is_empty());
    assert_eq!(page.next_cursor, None);

    // Asking for nothing returns nothing, rather than everything.
    let page = list(&store, &JobFilter::default(), 0, None).await;
    assert!(page.jobs.is_empty(), "limit 0 listed {:?}", ids(&page));
    ns.cleanup().await;
}

#[tokio::test]
async fn pages_return_every_job_exactly_once() {
    let ns = TestNamespace::new("pages_every_job_once");
    let store = store(&ns).await;
    // One batch: ids minted in the same millisecond must still order.
    let jobs: Vec<_> = (0..23)
        .map(|i| new_job(spec(if i % 2 == 0 { "even" } else { "odd" }, "default")))
        .collect();
    within("create_jobs", store.create_jobs(&jobs))
        .await
        .unwrap();
    let newest_first: Vec<JobId> = jobs.iter().rev().map(|j| j.id).collect();

    for (filter, expected) in [
        (JobFilter::default(), newest_first.clone()),
        (
            JobFilter {
                tenant: Some("even".into()),
                ..JobFilter::default()
            },
            newest_first
                .iter()
                .copied()
                .filter(|id| jobs.iter().any(|j| j.id == *id && j.spec.tenant == "even"))
                .collect(),
        ),
    ] {
        for limit in [1, 5, 7, 23, 50] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let page = list(&store, &filter, limit, cursor.as_deref()).await;
                assert!(page.jobs.len() <= limit);
                seen.extend(ids(&page));
                pages += 1;
                assert!(pages <= expected.len() + 2, "pagination does not end");
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            assert_eq!(seen, expected, "limit {limit}, filter {filter:?}");
            let unique: HashSet<_> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len());
        }
    }
    ns.cleanup().await;
}

#[tokio::test]
async fn expired_records_are_skipped_and_pruned() {
    let ns = TestNamespace::new("expired_records_skipped");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let old = create(&store, spec("team-a", "default")).await;
    let expiring = create(&store, spec("team-a", "default")).await;
    let young = create(&store, spec("team-a", "default")).await;

    let _: i64 = cmd(&mut conn, "PEXPIRE", &[&keys.job(expiring), "1"]).await;
    wait_until("the record to expire", Duration::from_secs(5), || {
        let store = store.clone();
        async move { store.get(expiring).await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert!(indexed(&mut conn, &keys.index_all(), expiring).await);

    // A page of two must still hold two live jobs.
    let page = list(&store, &JobFilter::default(), 2, None).await;
    assert_eq!(ids(&page), vec![young, old]);
    assert!(!indexed(&mut conn, &keys.index_all(), expiring).await);
    let tenant = JobFilter {
        tenant: Some("team-a".into()),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(&list(&store, &tenant, 10, None).await),
        vec![young, old]
    );
    assert!(!indexed(&mut conn, &keys.index_tenant("team-a"), expiring).await);
    ns.cleanup().await;
}

#[tokio::test]
async fn delete_jobs_removes_records_and_index_entries() {
    let ns = TestNamespace::new("delete_jobs_removes");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let gone = vec![
        new_job(spec("team-a", "renders")),
        new_job(spec("team-b", "default")),
    ];
    let kept = new_job(spec("team-a", "renders"));
    within("create_jobs", store.create_jobs(&gone))
        .await
        .unwrap();
    within(
        "create_jobs",
        store.create_jobs(std::slice::from_ref(&kept)),
    )
    .await
    .unwrap();

    within("delete_jobs", store.delete_jobs(&gone))
        .await
        .unwrap();
    for job in &gone {
        assert_eq!(within("get", store.get(job.id)).await.unwrap(), None);
        let exists: i64 = cmd(&mut conn, "EXISTS", &[&keys.job(job.id)]).await;
        assert_eq!(exists, 0);
        for key in [
            keys.index_all(),
            keys.index_state(JobState::Queued),
            keys.index_tenant(&job.spec.tenant),
            keys.index_queue(&job.spec.queue),
        ] {
            assert!(!indexed(&mut conn, &key, job.id).await, "{key}");
        }
    }
    assert_eq!(
        ids(&list(&store, &JobFilter::default(), 10, None).await),
        vec![kept.id]
    );
    assert!(indexed(&mut conn, &keys.index_tenant("team-a"), kept.id).await);
    ns.cleanup().await;
}

#[tokio::test]
async fn count_by_state_follows_transitions() {
    let ns = TestNamespace::new("count_by_state");
    let store = store(&ns).await;
    let worker = WorkerId::generate("host");
    for _ in 0..3 {
        create(&store, spec("team-a", "default")).await;
    }
    running_job(&store, &worker).await;
    let done = running_job(&store, &worker).await;
    assert_eq!(
        transition(&store, Transition::new(done, JobState::Succeeded)).await,
        TransitionOutcome::Done(JobState::Running)
    );
    let counts = within("count_by_state", store.count_by_state())
        .await
        .unwrap();
    assert_eq!(
        counts.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        JobState::ALL.to_vec()
    );
    let count = |state: JobState| {
        counts
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, n)| *n)
            .unwrap()
    };
    assert_eq!(count(JobState::Queued), 3);
    assert_eq!(count(JobState::Running), 1);
    assert_eq!(count(JobState::Succeeded), 1);
    assert_eq!(count(JobState::Scheduled), 0);
    assert_eq!(count(JobState::Failed), 0);
    ns.cleanup().await;
}

#[tokio::test]
async fn finished_jobs_leave_the_indexes_and_counts_when_they_expire() {
    let ns = TestNamespace::new("finished_jobs_leave_indexes");
    let options = StoreOptions {
        result_ttl: Duration::from_secs(1),
        log_max_lines: 100,
        ..StoreOptions::default()
    };
    let store = within("connect", Store::connect(&redis_url(), ns.ns(), options))
        .await
        .expect("Redis reachable at WARREN_TEST_REDIS_URL");
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");
    let waiting = create(&store, spec("team-a", "renders")).await;
    let finished = running_job(&store, &worker).await;
    let finished_spec = crate::get(&store, finished).await.spec;
    assert_eq!(
        transition(&store, Transition::new(finished, JobState::Succeeded)).await,
        TransitionOutcome::Done(JobState::Running)
    );
    assert_eq!(within("prune", store.prune_expired(100)).await.unwrap(), 0);

    wait_until(
        "the finished record to expire",
        Duration::from_secs(5),
        || {
            let store = store.clone();
            async move { store.get(finished).await.unwrap().is_none().then_some(()) }
        },
    )
    .await;
    let counts = within("count_by_state", store.count_by_state())
        .await
        .unwrap();
    for (state, count) in counts {
        let expected = u64::from(state == JobState::Queued);
        assert_eq!(count, expected, "{state}: the expired job is not counted");
    }
    for key in [
        keys.index_all(),
        keys.index_state(JobState::Succeeded),
        keys.index_tenant(&finished_spec.tenant),
        keys.index_queue(&finished_spec.queue),
        keys.index_task(&finished_spec.task),
    ] {
        assert!(!indexed(&mut conn, &key, finished).await, "{key}");
    }
    let expiring: i64 = cmd(&mut conn, "ZCARD", &[&keys.index_expiring()]).await;
    assert_eq!(expiring, 0);
    assert!(indexed(&mut conn, &keys.index_all(), waiting).await);
    assert_eq!(within("prune", store.prune_expired(100)).await.unwrap(), 0);
    ns.cleanup().await;
}
