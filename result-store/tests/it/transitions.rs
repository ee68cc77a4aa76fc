//! Creating jobs and moving them through their states (invariant I1).

use std::collections::BTreeMap;
use std::sync::Arc;

use warren_kit::testkit::TestNamespace;
use warren_protocol::{JobId, JobState, WorkerId};
use warren_store::{Transition, TransitionOutcome};

use crate::{
    LEASE, RESULT_TTL, claim, cmd, create, get, indexed, new_job, raw, running_job, spec, store,
    transition, within,
};

#[tokio::test]
async fn create_jobs_writes_records_and_indexes() {
    let ns = TestNamespace::new("create_jobs_writes_records");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;

    let mut rich = spec("team-a", "renders");
    rich.priority = 7;
    rich.max_attempts = 3;
    rich.timeout_s = Some(30);
    rich.labels = BTreeMap::from([("project".to_owned(), "apollo".to_owned())]);
    let jobs = vec![new_job(rich), new_job(spec("team-b", "default"))];
    within("create_jobs", store.create_jobs(&jobs))
        .await
        .unwrap();

    for job in &jobs {
        let record = crate::get(&store, job.id).await;
        assert_eq!(record.id, job.id);
        assert_eq!(record.spec, job.spec, "the spec round-trips");
        assert_eq!(record.state, JobState::Queued);
        assert_eq!(record.attempt, 1);
        assert_eq!(record.created_ms, job.created_ms);
        assert_eq!(record.updated_ms, job.created_ms);
        assert_eq!(
            record.timestamps,
            BTreeMap::from([("queued".to_owned(), job.created_ms)])
        );
        assert_eq!(record.worker, None);
        assert_eq!(record.pool, None);
        assert_eq!(record.takeovers, 0);

        assert!(indexed(&mut conn, &keys.index_all(), job.id).await);
        assert!(indexed(&mut conn, &keys.index_state(JobState::Queued), job.id).await);
        assert!(indexed(&mut conn, &keys.index_tenant(&job.spec.tenant), job.id).await);
        assert!(indexed(&mut conn, &keys.index_queue(&job.spec.queue), job.id).await);
        for state in JobState::ALL.into_iter().filter(|s| *s != JobState::Queued) {
            assert!(!indexed(&mut conn, &keys.index_state(state), job.id).await);
        }
        // A record whose publish never happened must not live forever.
        let ttl: i64 = cmd(&mut conn, "TTL", &[&keys.job(job.id)]).await;
        assert!(ttl > 0, "a new record carries a provisional TTL, got {ttl}");
    }
    assert!(!indexed(&mut conn, &keys.index_tenant("team-a"), jobs[1].id).await);

    let missing = JobId::new();
    assert_eq!(within("get", store.get(missing)).await.unwrap(), None);
    assert_eq!(
        within("state", store.state(jobs[0].id)).await.unwrap(),
        Some(JobState::Queued)
    );
    assert_eq!(
        within("states", store.states(&[jobs[1].id, missing]))
            .await
            .unwrap(),
        vec![Some(JobState::Queued), None]
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn the_legal_path_records_a_timestamp_per_state() {
    let ns = TestNamespace::new("legal_path_timestamps");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");
    let id = create(&store, spec("team-a", "default")).await;

    let scheduled = Transition::new(id, JobState::Scheduled).set("pool", "cpu");
    assert_eq!(
        transition(&store, scheduled).await,
        TransitionOutcome::Done(JobState::Queued)
    );
    let record = get(&store, id).await;
    assert_eq!(record.state, JobState::Scheduled);
    assert_eq!(record.pool.as_deref(), Some("cpu"));
    // The scheduler has seen it: the record is real now and loses its provisional TTL.
    let ttl: i64 = cmd(&mut conn, "TTL", &[&keys.job(id)]).await;
    assert_eq!(ttl, -1);

    assert_eq!(
        claim(&store, id, &worker, LEASE).await,
        warren_store::ClaimOutcome::Claimed(JobState::Scheduled)
    );
    let record = get(&store, id).await;
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.worker.as_deref(), Some(worker.as_str()));
    assert_eq!(
        within("lease_holder", store.lease_holder(id))
            .await
            .unwrap(),
        Some(worker.clone())
    );

    let done = Transition::new(id, JobState::Succeeded)
        .by_worker(&worker)
        .at_attempt(1)
        .set("result", r#"{"answer":42}"#);
    assert_eq!(
        transition(&store, done).await,
        TransitionOutcome::Done(JobState::Running)
    );
    let record = get(&store, id).await;
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.result, Some(serde_json::json!({ "answer": 42 })));
    let stamps = &record.timestamps;
    let order = ["queued", "scheduled", "running", "succeeded"];
    assert_eq!(
        stamps.keys().map(String::as_str).collect::<Vec<_>>().len(),
        order.len(),
        "one timestamp per state visited: {stamps:?}"
    );
    for pair in order.windows(2) {
        assert!(
            stamps[pair[0]] <= stamps[pair[1]],
            "{} before {}: {stamps:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(record.updated_ms, stamps["succeeded"]);

    for state in JobState::ALL {
        let member = indexed(&mut conn, &keys.index_state(state), id).await;
        assert_eq!(member, state == JobState::Succeeded, "index of {state}");
    }
    let succeeded: i64 = cmd(&mut conn, "GET", &[&keys.stat(JobState::Succeeded)]).await;
    assert_eq!(succeeded, 1);
    ns.cleanup().await;
}

#[tokio::test]
async fn a_terminal_record_expires_and_drops_its_lease() {
    let ns = TestNamespace::new("terminal_ttl_and_lease");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");
    let id = running_job(&store, &worker).await;
    within(
        "append_log",
        store.append_log(id, warren_store::LogStream::Stdout, &["out".to_owned()]),
    )
    .await
    .unwrap();
    let lease_ttl: i64 = cmd(&mut conn, "PTTL", &[&keys.lease(id)]).await;
    assert!(lease_ttl > 0 && lease_ttl <= LEASE.as_millis() as i64);

    let failed = Transition::new(id, JobState::Failed)
        .by_worker(&worker)
        .set("error", "exit status 3")
        .set("exit_code", 3);
    assert_eq!(
        transition(&store, failed).await,
        TransitionOutcome::Done(JobState::Running)
    );

    let ttl_ms = RESULT_TTL.as_millis() as i64;
    let job_ttl: i64 = cmd(&mut conn, "PTTL", &[&keys.job(id)]).await;
    assert!(
        job_ttl > ttl_ms - 60_000 && job_ttl <= ttl_ms,
        "job TTL {job_ttl} ms"
    );
    let log_ttl: i64 = cmd(&mut conn, "PTTL", &[&keys.job_log(id)]).await;
    assert!(
        log_ttl > ttl_ms - 60_000 && log_ttl <= ttl_ms,
        "log TTL {log_ttl} ms"
    );
    let lease: i64 = cmd(&mut conn, "EXISTS", &[&keys.lease(id)]).await;
    assert_eq!(lease, 0, "the lease is deleted with the terminal move");
    assert_eq!(
        within("lease_holder", store.lease_holder(id))
            .await
            .unwrap(),
        None
    );

    let record = get(&store, id).await;
    assert_eq!(record.error.as_deref(), Some("exit status 3"));
    assert_eq!(record.exit_code, Some(3));
    let failed: i64 = cmd(&mut conn, "GET", &[&keys.stat(JobState::Failed)]).await;
    assert_eq!(failed, 1);
    ns.cleanup().await;
}

#[tokio::test]
async fn illegal_moves_are_refused_and_change_nothing() {
    let ns = TestNamespace::new("illegal_moves_refused");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let id = create(&store, spec("team-a", "default")).await;
    let before = get(&store, id).await;

    for to in [
        JobState::Succeeded,
        JobState::TimedOut,
        JobState::Retrying,
        JobState::Queued,
    ] {
        assert_eq!(
            transition(&store, Transition::new(id, to).set("result", "1")).await,
            TransitionOutcome::Illegal(JobState::Queued),
            "queued -> {to}"
        );
    }
    assert_eq!(
        get(&store, id).await,
        before,
        "a refused move writes nothing"
    );
    assert!(!indexed(&mut conn, &keys.index_state(JobState::Succeeded), id).await);

    // A terminal state is never left, not even by another terminal state.
    assert_eq!(
        transition(&store, Transition::new(id, JobState::Cancelled)).await,
        TransitionOutcome::Done(JobState::Queued)
    );
    for to in JobState::ALL {
        assert_eq!(
            transition(&store, Transition::new(id, to)).await,
            TransitionOutcome::Illegal(JobState::Cancelled),
            "cancelled -> {to}"
        );
    }
    assert_eq!(get(&store, id).await.state, JobState::Cancelled);

    assert_eq!(
        transition(&store, Transition::new(JobId::new(), JobState::Scheduled)).await,
        TransitionOutcome::Missing
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_terminal_state_under_contention() {
    let ns = TestNamespace::new("one_terminal_under_contention");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");
    let id = running_job(&store, &worker).await;

    let targets = [JobState::Succeeded, JobState::Failed, JobState::Cancelled];
    // One connection per racer, so that the calls really meet in Redis rather than queue
    // up behind each other on one multiplexed connection.
    let mut stores = Vec::new();
    for _ in 0..20 {
        stores.push(crate::store(&ns).await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let racers: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let start = Arc::clone(&start);
            let to = targets[i % targets.len()];
            tokio::spawn(async move {
                start.wait().await;
                let t = Transition::new(id, to).set("error", format!("racer {i}"));
                (to, i, store.transition(&t).await.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = 0;
    for racer in racers {
        let (to, i, outcome) = within("racer", racer).await.unwrap();
        match outcome {
            TransitionOutcome::Done(JobState::Running) => winners.push((to, i)),
            TransitionOutcome::Illegal(now) => {
                assert!(now.is_terminal(), "refused because already {now}");
                losers += 1;
            }
            other => panic!("racer {i} ({to}): unexpected {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one terminal move wins: {winners:?}"
    );
    assert_eq!(losers, 19);

    let (winner, i) = winners[0];
    let record = get(&store, id).await;
    assert_eq!(record.state, winner);
    assert_eq!(
        record.error,
        Some(format!("racer {i}")),
        "no loser wrote a field"
    );
    let mut terminal_indexes = 0;
    for state in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
        if indexed(&mut conn, &keys.index_state(state), id).await {
            terminal_indexes += 1;
        }
        let count: Option<i64> = cmd(&mut conn, "GET", &[&keys.stat(state)]).await;
        let expected = if state == winner { Some(1) } else { None };
        assert_eq!(count, expected, "stat of {state}");
    }
    assert_eq!(terminal_indexes, 1);
    ns.cleanup().await;
}

#[tokio::test]
async fn worker_and_attempt_conditions_guard_transitions() {
    let ns = TestNamespace::new("worker_attempt_guards");
    let store = store(&ns).await;
    let owner = WorkerId::generate("host");
    let other = WorkerId::generate("host");
    let id = running_job(&store, &owner).await;

    assert_eq!(
        transition(
            &store,
            Transition::new(id, JobState::Succeeded).by_worker(&other)
        )
        .await,
        TransitionOutcome::NotOwner(JobState::Running)
    );
    assert_eq!(
        transition(
            &store,
            Transition::new(id, JobState::Succeeded)
                .by_worker(&owner)
                .at_attempt(2)
        )
        .await,
        TransitionOutcome::Stale(JobState::Running)
    );
    assert_eq!(get(&store, id).await.state, JobState::Running);

    // A queued job has no worker yet: nobody may finish it as its worker.
    let queued = create(&store, spec("team-a", "default")).await;
    assert_eq!(
        transition(
            &store,
            Transition::new(queued, JobState::Failed).by_worker(&owner)
        )
        .await,
        TransitionOutcome::NotOwner(JobState::Queued)
    );

    assert_eq!(
        transition(
            &store,
            Transition::new(id, JobState::Succeeded)
                .by_worker(&owner)
                .at_attempt(1)
        )
        .await,
        TransitionOutcome::Done(JobState::Running)
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn a_retry_releases_the_lease_and_comes_back_queued() {
    let ns = TestNamespace::new("retry_releases_lease");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");
    let id = running_job(&store, &worker).await;

    let retry = Transition::new(id, JobState::Retrying)
        .by_worker(&worker)
        .at_attempt(1)
        .releasing_lease()
        .set("attempt", 2)
        .set("next_attempt_ms", 123)
        .set("error", "flaky");
    assert_eq!(
        transition(&store, retry).await,
        TransitionOutcome::Done(JobState::Running)
    );
    let lease: i64 = cmd(&mut conn, "EXISTS", &[&keys.lease(id)]).await;
    assert_eq!(lease, 0);
    let ttl: i64 = cmd(&mut conn, "TTL", &[&keys.job(id)]).await;
    assert_eq!(
        ttl, -1,
        "a retrying job is not finished and must not expire"
    );
    let record = get(&store, id).await;
    assert_eq!(record.state, JobState::Retrying);
    assert_eq!(record.attempt, 2);
    assert_eq!(record.next_attempt_ms, Some(123));

    assert_eq!(
        transition(&store, Transition::new(id, JobState::Queued).at_attempt(2)).await,
        TransitionOutcome::Done(JobState::Retrying)
    );
    let record = get(&store, id).await;
    assert_eq!(record.state, JobState::Queued);
    assert!(record.timestamps.contains_key("retrying"));
    assert!(indexed(&mut conn, &keys.index_state(JobState::Queued), id).await);
    assert!(!indexed(&mut conn, &keys.index_state(JobState::Retrying), id).await);
    ns.cleanup().await;
}

#[tokio::test]
async fn a_pending_reason_lives_only_while_queued() {
    let ns = TestNamespace::new("pending_reason_only_queued");
    let store = store(&ns).await;
    let worker = WorkerId::generate("host");
    let reason = "no_matching_pool: gpu";

    // Cleared by a transition.
    let id = create(&store, spec("team-a", "default")).await;
    within("set_pending_reason", store.set_pending_reason(id, reason))
        .await
        .unwrap();
    assert_eq!(
        get(&store, id).await.pending_reason.as_deref(),
        Some(reason)
    );
    assert_eq!(
        transition(&store, Transition::new(id, JobState::Scheduled)).await,
        TransitionOutcome::Done(JobState::Queued)
    );
    assert_eq!(get(&store, id).await.pending_reason, None);
    // A no-op once the job has left `queued`.
    within("set_pending_reason", store.set_pending_reason(id, reason))
        .await
        .unwrap();
    assert_eq!(get(&store, id).await.pending_reason, None);

    // Cleared by a claim straight from `queued`.
    let id = create(&store, spec("team-a", "default")).await;
    within("set_pending_reason", store.set_pending_reason(id, reason))
        .await
        .unwrap();
    assert_eq!(
        claim(&store, id, &worker, LEASE).await,
        warren_store::ClaimOutcome::Claimed(JobState::Queued)
    );
    assert_eq!(get(&store, id).await.pending_reason, None);

    // Setting a reason on a job that does not exist creates nothing.
    let missing = JobId::new();
    within(
        "set_pending_reason",
        store.set_pending_reason(missing, reason),
    )
    .await
    .unwrap();
    assert_eq!(within("get", store.get(missing)).await.unwrap(), None);
    ns.cleanup().await;
}
