//! How a command's end is recorded and retried: signals, the OOM heuristic, `retry_on`, the
//! reserved exit codes, `retry_backoff`, and the dead letter of a job whose attempts ran out.

use std::time::Duration;

use serde_json::json;
use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::{JobEnvelope, JobId, JobSpec, JobState, now_ms};
use warren_store::{JobRecord, Transition};
use warren_topology::lapin::options::BasicGetOptions;
use warren_topology::{REASON_HEADER, header_str};
use warren_worker::Worker;

use crate::support::{Harness, args, spec};

fn sh(script: &str, attempts: u32, retry_on: Option<serde_json::Value>) -> JobSpec {
    let mut s = spec("command", json!({"argv": ["sh", "-c", script]}));
    s.max_attempts = attempts;
    s.retry_on = retry_on.map(|v| serde_json::from_value(v).unwrap());
    s
}

async fn wait_state(h: &Harness, id: JobId, state: JobState) -> JobRecord {
    let store = h.store.clone();
    wait_until(
        &format!("job {id} to be {state}"),
        Duration::from_secs(20),
        || {
            let store = store.clone();
            async move {
                let job = store.get(id).await.ok()??;
                (job.state == state).then_some(job)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_oom_kills_and_exit_codes_are_recorded_and_retried_by_policy() {
    let ns = TestNamespace::new("worker_signals");
    let mut a = args(&ns);
    a.allow_commands = vec!["sh".into()];
    let h = Harness::start(ns.clone(), Worker::builder().build(a)).await;

    // SIGKILL that Warren did not send: taken for the OOM killer; `oom` is not in retry_on.
    let oom = h
        .dispatch(sh("kill -9 $$", 3, Some(json!(["exit_code", "signal"]))))
        .await;
    // A crash by signal; `signal` is not in retry_on.
    let segv = h
        .dispatch(sh("kill -SEGV $$", 3, Some(json!(["exit_code", "oom"]))))
        .await;
    // 65: failed for good, whatever the attempts left.
    let permanent = h.dispatch(sh("exit 65", 3, None)).await;
    // A plain exit code with only `signal` retried.
    let code = h.dispatch(sh("exit 3", 3, Some(json!(["signal"])))).await;
    // 75: retried even though retry_on names nothing, after its own fixed backoff.
    let mut tempfail = sh("exit 75", 3, Some(json!([])));
    tempfail.retry_backoff =
        Some(serde_json::from_value(json!({"strategy": "fixed", "initial_s": 7})).unwrap());
    let before = now_ms();
    let tempfail = h.dispatch(tempfail).await;

    let job = h.wait_terminal(oom).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        (job.attempt, job.exit_signal.as_deref(), job.oom_killed),
        (1, Some("SIGKILL"), true)
    );
    assert!(
        job.error.as_deref().unwrap().contains("OOM killer"),
        "{:?}",
        job.error
    );

    let job = h.wait_terminal(segv).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        (job.attempt, job.exit_signal.as_deref(), job.oom_killed),
        (1, Some("SIGSEGV"), false)
    );
    assert!(
        job.error.as_deref().unwrap().contains("not retried"),
        "{:?}",
        job.error
    );

    let job = h.wait_terminal(permanent).await;
    assert_eq!(
        (job.state, job.attempt, job.exit_code),
        (JobState::Failed, 1, Some(65))
    );
    assert_eq!(
        job.dead_reason, None,
        "a permanent failure is not a dead letter"
    );

    let job = h.wait_terminal(code).await;
    assert_eq!(
        (job.state, job.attempt, job.exit_code),
        (JobState::Failed, 1, Some(3))
    );
    assert_eq!(job.exit_signal, None);

    let job = wait_state(&h, tempfail, JobState::Retrying).await;
    assert_eq!(job.attempt, 2);
    let due = job.next_attempt_ms.unwrap();
    assert!(
        (before + 7_000..=now_ms() + 7_000).contains(&due),
        "due {} ms after the submit, want 7 s",
        due - before
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_attempts_ran_out_is_failed_and_dead_lettered() {
    let ns = TestNamespace::new("worker_exhausted");
    let mut a = args(&ns);
    a.allow_commands = vec!["sh".into()];
    let h = Harness::start(ns.clone(), Worker::builder().build(a)).await;
    let job_spec = sh("echo no; exit 3", 2, None);
    let id = h.dispatch(job_spec.clone()).await;
    wait_state(&h, id, JobState::Retrying).await;
    // Attempt 2, as the scheduler would send it after the backoff.
    let mut second = JobEnvelope::first_attempt(id, job_spec, 0, None);
    second.attempt = 2;
    let queued = Transition::new(id, JobState::Queued).at_attempt(2);
    h.store.transition(&queued).await.unwrap();
    h.publish(&second).await;
    let job = h.wait_terminal(id).await;
    assert_eq!((job.state, job.attempt), (JobState::Failed, 2));
    assert_eq!(job.error.as_deref(), Some("exited with code 3"));
    assert_eq!(
        job.dead_reason.as_deref(),
        Some("attempts exhausted (2 of 2): exited with code 3")
    );
    // And a copy in `{ns}.dead`, with the reason, for the scheduler to index.
    let channel = h.publisher.channel().clone();
    let queue = h.publisher.topology().dead_queue();
    let message = wait_until("the dead letter", Duration::from_secs(10), || {
        let (channel, queue) = (channel.clone(), queue.clone());
        async move {
            channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .ok()?
        }
    })
    .await;
    assert_eq!(
        header_str(&message.properties, REASON_HEADER),
        Some("attempts exhausted (2 of 2): exited with code 3")
    );
    assert_eq!(JobEnvelope::from_bytes(&message.data).unwrap().job_id, id);
    h.stop().await;
}
