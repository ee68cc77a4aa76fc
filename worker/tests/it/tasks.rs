use std::time::Duration;

use serde_json::{Value, json};
use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::{JobEnvelope, JobState};
use warren_store::Transition;
use warren_worker::{JobError, Worker};

use crate::support::{Harness, args, spec};

fn worker(ns: &TestNamespace) -> Worker {
    Worker::builder()
        .task("double", |ctx| async move {
            let n = ctx.args["n"]
                .as_i64()
                .ok_or_else(|| JobError::permanent("n must be a number"))?;
            ctx.log(&[format!("doubling {n}")]).await;
            Ok(json!(n * 2))
        })
        .task("flaky", |ctx| async move {
            if ctx.attempt < 2 {
                Err(JobError::retryable("first attempt always fails"))
            } else {
                Ok(json!({"attempt": ctx.attempt}))
            }
        })
        .build(args(ns))
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_tasks_run_and_are_advertised() {
    let ns = TestNamespace::new("worker_registered");
    let h = Harness::start(ns.clone(), worker(&ns)).await;

    let known = h.store.known_tasks().await.unwrap();
    assert!(known.contains(&"double".to_owned()), "{known:?}");
    let workers = h.store.live_workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(
        workers[0].tasks,
        vec!["double".to_owned(), "flaky".to_owned()]
    );
    assert_eq!(workers[0].allowed_commands, vec!["echo".to_owned()]);
    assert_eq!(workers[0].slots, 2);

    let id = h.dispatch(spec("double", json!({"n": 21}))).await;
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result, Some(json!(42)));
    let log = h.store.read_log(id, None, 10).await.unwrap();
    assert_eq!(log[0].line, "doubling 21");

    // A permanent error fails at once, even with attempts left.
    let mut bad = spec("double", json!({"n": "x"}));
    bad.max_attempts = 3;
    let id = h.dispatch(bad).await;
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.error.as_deref(), Some("n must be a number"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retryable_errors_go_to_the_delay_ladder_with_the_next_attempt() {
    let ns = TestNamespace::new("worker_retry");
    let h = Harness::start(ns.clone(), worker(&ns)).await;
    let mut flaky = spec("flaky", Value::Null);
    flaky.max_attempts = 2;
    let id = h.dispatch(flaky).await;
    let store = h.store.clone();
    let job = wait_until("the job to be retrying", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let job = store.get(id).await.ok()??;
            (job.state == JobState::Retrying).then_some(job)
        }
    })
    .await;
    assert_eq!(job.attempt, 2, "the record carries the next attempt");
    assert_eq!(job.error.as_deref(), Some("first attempt always fails"));
    assert!(job.next_attempt_ms.is_some());
    // No scheduler runs here: the ladder copy waits in the expired queue, and a stale copy of
    // attempt 1 is dropped rather than run.
    let stale =
        warren_protocol::JobEnvelope::first_attempt(id, spec("flaky", Value::Null), 0, None);
    h.publish(&stale).await;
    // Attempt 2, as the scheduler would send it after the backoff.
    let mut second = stale.clone();
    second.attempt = 2;
    let queued = warren_store::Transition::new(id, JobState::Queued).at_attempt(2);
    h.store.transition(&queued).await.unwrap();
    h.publish(&second).await;
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result, Some(json!({"attempt": 2})));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_outside_the_allow_list_are_handed_back_not_run() {
    let ns = TestNamespace::new("worker_bounce");
    let h = Harness::start(ns.clone(), worker(&ns)).await;
    let id = h
        .dispatch(spec(
            "command",
            json!({"argv": ["rm", "-rf", "/tmp/nothing"]}),
        ))
        .await;
    let store = h.store.clone();
    let job = wait_until("the job to be handed back", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let job = store.get(id).await.ok()??;
            job.pending_reason.is_some().then_some(job)
        }
    })
    .await;
    assert_eq!(job.state, JobState::Queued);
    assert!(job.pending_reason.unwrap().contains("allow-list"));
    assert!(
        !job.timestamps.contains_key("running"),
        "it must never have run"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_are_dead_lettered_with_a_reason() {
    let ns = TestNamespace::new("worker_poison");
    let h = Harness::start(ns.clone(), worker(&ns)).await;
    let topology = h.publisher.topology().clone();
    h.publisher
        .send(
            &topology.work_exchange(),
            &topology.worker_routing_key(h.worker()),
            b"{not json",
            Default::default(),
        )
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let channel = h.publisher.channel().clone();
    let dead = wait_until(
        "the poison message in the dead queue",
        Duration::from_secs(10),
        || {
            let (channel, queue) = (channel.clone(), topology.dead_queue());
            async move {
                channel
                    .basic_get(queue.as_str().into(), Default::default())
                    .await
                    .ok()?
            }
        },
    )
    .await;
    assert_eq!(dead.delivery.data, b"{not json");
    let reason =
        warren_topology::header_str(&dead.delivery.properties, warren_topology::REASON_HEADER)
            .unwrap()
            .to_owned();
    assert!(reason.contains("malformed job message"), "{reason}");
    h.stop().await;
}

/// Built-ins without side effects start while their claim is in flight (so a short job's slot
/// does not wait for it); a run the claim refuses must leave no trace: not for a job
/// cancelled before its message arrived, nor for a copy of a finished one.
#[tokio::test(flavor = "multi_thread")]
async fn a_builtin_started_before_its_claim_leaves_no_trace_when_the_claim_refuses() {
    let ns = TestNamespace::new("worker_early_start");
    let mut a = args(&ns);
    // One slot: deliveries are handled one after the other, in order.
    a.slots = 1;
    let h = Harness::start(ns.clone(), Worker::builder().build(a)).await;

    let cancelled = h.record(spec("sleep", json!({"ms": 1}))).await;
    h.store
        .transition(&Transition::new(cancelled.job_id, JobState::Cancelled))
        .await
        .unwrap();
    h.publish(&cancelled).await;

    let done = h.dispatch(spec("echo", json!({"n": 1}))).await;
    let finished = h.wait_terminal(done).await;
    assert_eq!(finished.state, JobState::Succeeded);
    let copy = h.store.get(done).await.unwrap().unwrap();
    h.publish(&JobEnvelope::first_attempt(
        done,
        copy.spec.clone(),
        copy.created_ms,
        None,
    ))
    .await;

    // Handled after both, in the one slot.
    let last = h.dispatch(spec("noop", Value::Null)).await;
    assert_eq!(h.wait_terminal(last).await.state, JobState::Succeeded);

    let job = h.store.get(cancelled.job_id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.result.is_none(), "{job:?}");
    assert!(
        !job.timestamps.contains_key("running"),
        "a refused run left a start: {job:?}"
    );
    let again = h.store.get(done).await.unwrap().unwrap();
    assert_eq!(again, copy, "the copy of a finished job changed its record");
    h.stop().await;
}
