//! Dead letters (index, pages, requeue) and the reaper of interrupted submissions.

use std::time::Duration;

use warren_kit::testkit::TestNamespace;
use warren_protocol::{JobEnvelope, JobId, JobState, now_ms};
use warren_store::{DeadLetter, RequeueError, SubmitKey, Transition, TransitionOutcome};

use crate::{cmd, create, get, new_job, raw, spec, store, transition, within};

fn letter(job: Option<JobId>, tenant: Option<&str>, dead_ms: u64, reason: &str) -> DeadLetter {
    DeadLetter {
        id: job.unwrap_or_default().to_string(),
        job_id: job,
        reason: reason.to_owned(),
        dead_ms,
        tenant: tenant.map(str::to_owned),
        task: job.map(|_| "echo".to_owned()),
        attempt: job.map(|_| 3),
        requeueable: job.is_some(),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("broker said no")]
struct Refused;

#[tokio::test]
async fn dead_letters_page_by_time_per_tenant_and_requeue_from_the_spec() {
    let ns = TestNamespace::new("store_dead");
    let store = store(&ns).await;
    let job = create(&store, spec("team-a", "default")).await;
    let failed = Transition::new(job, JobState::Failed).set("error", "boom");
    assert!(matches!(
        transition(&store, failed).await,
        TransitionOutcome::Done(_)
    ));
    let t0 = now_ms();
    let malformed = letter(None, None, t0, "malformed job message: expected value");
    let other = letter(Some(JobId::new()), Some("team-b"), t0 + 1, "poison job");
    let dead = letter(
        Some(job),
        Some("team-a"),
        t0 + 2,
        "attempts exhausted (3 of 3): boom",
    );
    for entry in [&malformed, &other, &dead] {
        within("record_dead", store.record_dead(entry))
            .await
            .unwrap();
    }
    // Recording again replaces, never duplicates.
    within("record_dead", store.record_dead(&dead))
        .await
        .unwrap();

    let first = store.list_dead(None, None, 2).await.unwrap();
    assert_eq!(
        first.dead.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [dead.id.as_str(), other.id.as_str()],
        "newest first"
    );
    let rest = store
        .list_dead(None, first.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(rest.dead, std::slice::from_ref(&malformed));
    assert_eq!(rest.next_cursor, None);
    let team_a = store.list_dead(Some("team-a"), None, 10).await.unwrap();
    assert_eq!(team_a.dead, std::slice::from_ref(&dead));

    // A message with no job is listed, never requeued.
    let refused = store
        .requeue_dead(&malformed.id, |_| async { Ok::<(), Refused>(()) })
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, RequeueError::NotRequeueable(why) if why.contains("names no job")),
        "{refused}"
    );
    // A publish that fails leaves nothing behind and the letter where it was.
    let before = store
        .list(&Default::default(), 100, None)
        .await
        .unwrap()
        .jobs
        .len();
    let failed_publish = store
        .requeue_dead(&dead.id, |_| async { Err(Refused) })
        .await
        .unwrap_err();
    assert!(matches!(failed_publish, RequeueError::Publish(_)));
    assert_eq!(
        store
            .list(&Default::default(), 100, None)
            .await
            .unwrap()
            .jobs
            .len(),
        before
    );
    assert!(store.dead_letter(&dead.id).await.unwrap().is_some());

    let mut sent: Option<JobEnvelope> = None;
    let requeued = store
        .requeue_dead(&dead.id, |envelope| {
            sent = Some(envelope);
            async { Ok::<(), Refused>(()) }
        })
        .await
        .unwrap();
    let sent = sent.expect("the new job was published");
    assert_eq!(sent.job_id, requeued.id);
    assert_eq!(sent.attempt, 1, "attempts start again");
    let new = get(&store, requeued.id).await;
    assert_eq!(new.state, JobState::Queued);
    assert_eq!(new.spec.labels["requeued_from"], job.to_string());
    assert_eq!(get(&store, job).await.requeued_as, Some(requeued.id));
    assert!(store.dead_letter(&dead.id).await.unwrap().is_none());
    assert!(
        store
            .list_dead(Some("team-a"), None, 10)
            .await
            .unwrap()
            .dead
            .is_empty(),
        "the tenant index forgets it too"
    );
    let again = store
        .requeue_dead(&dead.id, |_| async { Ok::<(), Refused>(()) })
        .await
        .unwrap_err();
    assert!(matches!(again, RequeueError::NotFound(_)));
    ns.cleanup().await;
}

#[tokio::test]
async fn interrupted_submissions_are_reaped_and_free_their_key() {
    let ns = TestNamespace::new("store_reap");
    let store = store(&ns).await;
    let mut conn = raw().await;
    let prefix = store.keys().prefix().to_owned();

    // A batch whose submitter died before the confirm: marked, never confirmed.
    let lost = [new_job(spec("t", "q")), new_job(spec("t", "q"))];
    let lost_ids: Vec<JobId> = lost.iter().map(|j| j.id).collect();
    store
        .reserve_batch_idempotency_key("k1", &lost_ids, Duration::from_secs(300))
        .await
        .unwrap();
    store
        .create_jobs_submitting(&lost, Some(&SubmitKey::Batch("k1".into())))
        .await
        .unwrap();
    // One that was confirmed.
    let done = new_job(spec("t", "q"));
    store
        .create_jobs_submitting(std::slice::from_ref(&done), None)
        .await
        .unwrap();
    store.confirm_submitted(&[done.id]).await.unwrap();
    // One whose message got out and that a worker already holds (its answer was lost).
    let ran = new_job(spec("t", "q"));
    store
        .reserve_idempotency_key("k2", ran.id, Duration::from_secs(300))
        .await
        .unwrap();
    store
        .create_jobs_submitting(
            std::slice::from_ref(&ran),
            Some(&SubmitKey::Single("k2".into())),
        )
        .await
        .unwrap();
    let worker = warren_protocol::WorkerId::from_raw("w1");
    store
        .claim(ran.id, &worker, 1, "cpu", Duration::from_secs(60))
        .await
        .unwrap();

    // Too young to reap.
    let none = store
        .reap_interrupted_submits(now_ms() - 60_000, 100)
        .await
        .unwrap();
    assert!(none.is_empty());
    let mut reaped = store
        .reap_interrupted_submits(now_ms() + 1, 100)
        .await
        .unwrap();
    reaped.sort();
    let mut expected = lost_ids.clone();
    expected.sort();
    assert_eq!(reaped, expected);
    for id in &lost_ids {
        assert!(store.get(*id).await.unwrap().is_none(), "phantom {id} gone");
        let listed: Option<f64> = cmd(
            &mut conn,
            "ZSCORE",
            &[&format!("{prefix}jobs:state:queued"), &id.to_string()],
        )
        .await;
        assert_eq!(listed, None, "and not listed");
    }
    let key: Option<String> = cmd(&mut conn, "GET", &[&format!("{prefix}idem-batch:k1")]).await;
    assert_eq!(key, None, "the batch key is free for the client's retry");
    assert_eq!(get(&store, done.id).await.state, JobState::Queued);
    assert_eq!(get(&store, ran.id).await.state, JobState::Running);
    let ttl: i64 = cmd(&mut conn, "PTTL", &[&format!("{prefix}idem:k2")]).await;
    assert!(
        ttl > 300_000,
        "a job that got out keeps its key like an accepted one: {ttl}"
    );
    let left: u64 = cmd(&mut conn, "ZCARD", &[&format!("{prefix}submitting")]).await;
    assert_eq!(left, 0);
    ns.cleanup().await;
}

#[tokio::test]
async fn a_refused_submission_is_withdrawn_and_admission_sees_marks() {
    let ns = TestNamespace::new("store_withdraw");
    let store = store(&ns).await;
    let mut conn = raw().await;
    let prefix = store.keys().prefix().to_owned();

    // A single job with a key, refused: withdrawn whatever its mark's age, key freed by the
    // release that follows (its job no longer exists).
    let refused = new_job(spec("t", "q"));
    store
        .reserve_idempotency_key("k1", refused.id, Duration::from_secs(300))
        .await
        .unwrap();
    store
        .create_jobs_submitting(
            std::slice::from_ref(&refused),
            Some(&SubmitKey::Single("k1".into())),
        )
        .await
        .unwrap();
    // A confirmed one, and one a worker took after its mark went (then its submission failed).
    let done = new_job(spec("t", "q"));
    let out = new_job(spec("t", "q"));
    store
        .reserve_idempotency_key("k2", out.id, Duration::from_secs(300))
        .await
        .unwrap();
    store
        .create_jobs_submitting(&[done.clone(), out.clone()], None)
        .await
        .unwrap();
    store.confirm_submitted(&[done.id, out.id]).await.unwrap();
    let worker = warren_protocol::WorkerId::from_raw("w1");
    store
        .claim(out.id, &worker, 1, "cpu", Duration::from_secs(60))
        .await
        .unwrap();

    let seen = store
        .admission_states(&[refused.id, done.id, out.id, JobId::new()])
        .await
        .unwrap();
    assert_eq!(
        seen,
        vec![
            (Some(JobState::Queued), true),
            (Some(JobState::Queued), false),
            (Some(JobState::Running), false),
            (None, false),
        ]
    );
    assert_eq!(
        store.submitting_ids().await.unwrap(),
        std::iter::once(refused.id).collect()
    );

    let withdrawn = store
        .withdraw_submission(&[refused.id, out.id])
        .await
        .unwrap();
    assert_eq!(withdrawn, vec![refused.id], "a job that got out stays");
    assert!(store.get(refused.id).await.unwrap().is_none());
    assert_eq!(get(&store, out.id).await.state, JobState::Running);
    store
        .release_idempotency_key("k1", refused.id)
        .await
        .unwrap();
    store.release_idempotency_key("k2", out.id).await.unwrap();
    let k1: Option<String> = cmd(&mut conn, "GET", &[&format!("{prefix}idem:k1")]).await;
    assert_eq!(k1, None, "the refused job's key is free for a retry");
    let k2: Option<String> = cmd(&mut conn, "GET", &[&format!("{prefix}idem:k2")]).await;
    assert_eq!(
        k2,
        Some(out.id.to_string()),
        "a refused job that runs keeps its key, so a retry finds it"
    );
    let left: u64 = cmd(&mut conn, "ZCARD", &[&format!("{prefix}submitting")]).await;
    assert_eq!(left, 0);
    ns.cleanup().await;
}
