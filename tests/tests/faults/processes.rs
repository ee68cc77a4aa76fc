//! Processes dying or stopping: workers, schedulers, the submitter, a job that kills its
//! worker, duplicates, and a cancel while nothing runs.

use std::time::Duration;

use serde_json::json;
use warren_kit::testkit::wait_until;

use crate::system::{Allow, Answer, Infra, Proc, Submitted, System, WorkerSpec, accepted};

const QUIET: Duration = Duration::from_secs(90);

fn two_workers() -> Vec<WorkerSpec> {
    vec![WorkerSpec::default(), WorkerSpec::default()]
}

/// Waits until worker `index` runs at least one of the jobs; returns how many.
async fn running_on(sys: &System, submitted: &[Submitted], index: usize) -> usize {
    let worker = sys.worker_id(index);
    wait_until(
        &format!("[{}] worker {index} to run a job", sys.name),
        Duration::from_secs(60),
        || async {
            let mut n = 0;
            for (_, id) in accepted(submitted) {
                if let Some(job) = sys.job(id).await
                    && job["state"] == "running"
                    && job["worker"] == worker.as_str()
                {
                    n += 1;
                }
            }
            (n > 0).then_some(n)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_kill9_mid_job() {
    let mut sys = System::start("worker_kill9", Infra::shared(), 1, &two_workers(), &[]).await;
    let submitted = sys.submit_accepted(12, 1.5).await;
    let killed = running_on(&sys, &submitted, 0).await;
    sys.kill(Proc::Worker(0)).await;
    let records = sys.wait_quiet(&submitted, QUIET).await;
    // The runs cut short by the kill start again elsewhere (after the lease lapses and the
    // sweeper returns them); none may run to its end twice.
    let v = sys.judge(
        &submitted,
        &records,
        Allow {
            restarts: true,
            double_runs: None,
        },
    );
    assert_eq!(v.states.get("succeeded"), Some(&12), "{v:?}");
    assert!(v.takeovers >= killed as u64, "{killed} killed runs, {v:?}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_sigterm_drains() {
    let mut sys = System::start("worker_sigterm", Infra::shared(), 1, &two_workers(), &[]).await;
    let submitted = sys.submit_accepted(12, 1.5).await;
    running_on(&sys, &submitted, 0).await;
    let code = sys.terminate(Proc::Worker(0)).await;
    assert_eq!(code, Some(0), "a draining worker exits cleanly");
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert_eq!(v.states.get("succeeded"), Some(&12), "{v:?}");
    assert_eq!(v.extra_starts, 0, "a drain lets running jobs finish: {v:?}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduler_kill9_with_standby() {
    let mut sys = System::start("sched_standby", Infra::shared(), 2, &two_workers(), &[]).await;
    let mut submitted = sys.submit_accepted(10, 1.0).await;
    sys.wait_states(&submitted, &["running", "succeeded"], 2)
        .await;
    sys.kill(Proc::Scheduler(0)).await;
    let jobs = (0..10).map(|_| sys.ledger_job(0.5)).collect();
    submitted.extend(sys.submit_batch(jobs).await);
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert_eq!(v.states.get("succeeded"), Some(&v.accepted), "{v:?}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduler_kill9_and_restart() {
    let mut sys = System::start("sched_restart", Infra::shared(), 1, &two_workers(), &[]).await;
    let mut submitted = sys.submit_accepted(10, 1.0).await;
    sys.wait_states(&submitted, &["running", "succeeded"], 2)
        .await;
    sys.kill(Proc::Scheduler(0)).await;
    // Accepted while no scheduler runs: intake holds them.
    let jobs = (0..10).map(|_| sys.ledger_job(0.5)).collect();
    submitted.extend(sys.submit_batch(jobs).await);
    sys.add_scheduler();
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert_eq!(v.accepted, 20, "{v:?}");
    assert_eq!(v.states.get("succeeded"), Some(&20), "{v:?}");
    sys.stop().await;
}

/// Batches in flight when the submitter dies get no answer: the client cannot know whether
/// they were accepted. Those jobs may or may not run (counted), and must not run twice.
/// Records of unanswered jobs that stay `queued` with no message anywhere are counted and
/// reported, not judged: the submit reaper removes them after `WARREN_SUBMIT_REAP_AFTER`
/// (2 min, longer than this scenario runs; the e2e lifecycle test checks the reaping).
#[tokio::test(flavor = "multi_thread")]
async fn submitter_kill9_mid_batch() {
    let mut sys = System::start("submitter_kill9", Infra::shared(), 1, &two_workers(), &[]).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let jobs: Vec<Vec<(String, serde_json::Value)>> = (0..8)
            .map(|_| (0..10).map(|_| sys.ledger_job(0.1)).collect())
            .collect();
        let (http, base) = (sys.http.clone(), sys.base.clone());
        streams.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for batch in jobs {
                let broke = submit_raw(&http, &base, batch, &mut out).await;
                if broke {
                    break;
                }
            }
            out
        }));
    }
    // Kill once a few batches are in: the others are on their way.
    wait_until(
        "a few batches to be accepted",
        Duration::from_secs(30),
        || async { (sys.read_ledger().runs.len() >= 10).then_some(()) },
    )
    .await;
    sys.kill(Proc::Submitter).await;
    let mut submitted = Vec::new();
    for stream in streams {
        submitted.extend(stream.await.unwrap());
    }
    sys.start_submitter().await;
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    assert!(v.accepted > 0, "{v:?}");
    // What became of the unanswered and never-sent jobs.
    let known: std::collections::HashSet<String> =
        accepted(&submitted).map(|(_, id)| id.clone()).collect();
    let mut others = std::collections::BTreeMap::<String, usize>::new();
    for record in sys.all_records().await {
        if !known.contains(record["id"].as_str().unwrap_or("")) {
            *others
                .entry(record["state"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
    }
    let ledger = sys.read_ledger();
    let unanswered_twice = submitted
        .iter()
        .filter(|s| matches!(s.outcome, Answer::Unknown(_)))
        .filter(|s| ledger.runs.get(&s.tag).is_some_and(|r| r.ends.len() > 1))
        .count();
    eprintln!(
        "FAULTS-REPORT submitter_kill9 records of unanswered jobs by state: {others:?} \
         (queued ones await the submit reaper)"
    );
    assert_eq!(unanswered_twice, 0, "an unanswered job ran twice");
    sys.stop().await;
}

/// Posts one batch; records every job's answer; true when the submitter did not answer.
async fn submit_raw(
    http: &reqwest::Client,
    base: &str,
    batch: Vec<(String, serde_json::Value)>,
    out: &mut Vec<Submitted>,
) -> bool {
    let (tags, specs): (Vec<String>, Vec<serde_json::Value>) = batch.into_iter().unzip();
    let answer = http
        .post(format!("{base}/v1/jobs/batch"))
        .json(&json!({ "jobs": specs }))
        .send()
        .await;
    let answers: Vec<Answer> = match answer {
        Ok(response) if response.status().as_u16() == 202 => {
            match response.json::<serde_json::Value>().await {
                Ok(body) => body["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|j| Answer::Accepted(j["id"].as_str().unwrap().to_owned()))
                    .collect(),
                Err(e) => vec![Answer::Unknown(e.to_string()); tags.len()],
            }
        }
        Ok(response) if response.status().as_u16() == 503 => {
            vec![Answer::Refused(503); tags.len()]
        }
        Ok(response) => panic!("batch answered {}", response.status()),
        Err(e) => vec![Answer::Unknown(e.to_string()); tags.len()],
    };
    let broke = matches!(answers.first(), Some(Answer::Unknown(_)));
    out.extend(
        tags.into_iter()
            .zip(answers)
            .map(|(tag, outcome)| Submitted { tag, outcome }),
    );
    broke
}

/// A job that kills its worker every time (`kill -9` of its parent) must not take down
/// worker after worker for ever: after the redelivery limit it ends `failed` with a reason.
/// The test restarts dead workers, as a supervisor would.
#[tokio::test(flavor = "multi_thread")]
async fn poison_job_fails_after_the_redelivery_limit() {
    let one_slot = WorkerSpec {
        slots: 1,
        ..WorkerSpec::default()
    };
    let mut sys = System::start(
        "poison",
        Infra::shared(),
        1,
        &[one_slot.clone(), one_slot.clone()],
        &[],
    )
    .await;
    let poison = sys.poison_job();
    let mut submitted = sys.submit_batch(vec![poison]).await;
    let jobs = (0..4).map(|_| sys.ledger_job(0.5)).collect();
    submitted.extend(sys.submit_batch(jobs).await);
    let Answer::Accepted(poison_id) = submitted[0].outcome.clone() else {
        panic!("poison job not accepted");
    };
    let mut restarts = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = sys.job(&poison_id).await;
        if job.as_ref().is_some_and(|j| j["state"] == "failed") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poison job is still not failed after {restarts} worker restarts: {job:?}"
        );
        for index in 0..sys.worker_count() {
            if sys.reap_worker(index) {
                sys.start_worker(&one_slot);
                restarts += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Keep two workers alive for the rest.
    for index in 0..sys.worker_count() {
        if sys.reap_worker(index) {
            sys.start_worker(&one_slot);
        }
    }
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(
        &submitted,
        &records,
        Allow {
            restarts: true,
            double_runs: None,
        },
    );
    let poisoned = records
        .iter()
        .find(|r| r["id"] == poison_id.as_str())
        .unwrap();
    let error = poisoned["error"].as_str().unwrap_or("");
    assert!(
        error.contains("worker"),
        "the reason names the crashes: {poisoned}"
    );
    let starts = sys.read_ledger().runs[&submitted[0].tag].starts.len();
    eprintln!(
        "FAULTS-REPORT poison: the poison job started {starts} times, killed {restarts} \
         workers, ended failed: {error:?}"
    );
    assert_eq!(v.states.get("succeeded"), Some(&4), "{v:?}");
    sys.stop().await;
}

/// Copies of a job's message (a redelivery after a reconnect, a publish repeated after a
/// crash) reach a worker while the job runs and after it ended, and intake again: none runs.
#[tokio::test(flavor = "multi_thread")]
async fn duplicate_delivery() {
    let one_slot = WorkerSpec {
        slots: 1,
        ..WorkerSpec::default()
    };
    let sys = System::start(
        "duplicates",
        Infra::shared(),
        1,
        &[one_slot.clone(), one_slot],
        &[],
    )
    .await;
    let mut sys = sys;
    let submitted = sys.submit_accepted(4, 3.0).await;
    sys.wait_states(&submitted, &["running"], 2).await;
    let workers = [sys.worker_id(0), sys.worker_id(1)];
    let mut copies = 0;
    for (_, id) in accepted(&submitted) {
        let job = sys.job(id).await.unwrap();
        if job["state"] == "running" {
            // To its own worker and to the other one.
            for worker in &workers {
                sys.publish_duplicate(worker, &job).await;
                copies += 1;
            }
        }
    }
    let records = sys.wait_quiet(&submitted, QUIET).await;
    // Copies of finished jobs, to both workers and to intake.
    for job in &records {
        for worker in &workers {
            sys.publish_duplicate(worker, job).await;
            copies += 1;
        }
        sys.publish_intake_duplicate(job).await;
        copies += 1;
    }
    for worker in &workers {
        wait_until(
            "the copies to be consumed",
            Duration::from_secs(30),
            || async { (sys.worker_queue_depth(worker).await == 0).then_some(()) },
        )
        .await;
    }
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(&submitted, &records, Allow::default());
    eprintln!("FAULTS-REPORT duplicates: {copies} copies published, none ran");
    assert_eq!(v.extra_starts, 0, "{v:?}");
    assert_eq!(v.states.get("succeeded"), Some(&4), "{v:?}");
    for record in &records {
        let again = sys.job(record["id"].as_str().unwrap()).await.unwrap();
        assert_eq!(
            again["timestamps"], record["timestamps"],
            "a copy touched {again}"
        );
    }
    sys.stop().await;
}

/// Jobs cancelled while the scheduler and the worker are dead (one was running, some were
/// dispatched to the dead worker's queue, the rest waited in the pending index) never
/// start once everything is back.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_during_a_restart() {
    let one_slot = WorkerSpec {
        slots: 1,
        ..WorkerSpec::default()
    };
    let mut sys = System::start(
        "cancel_restart",
        Infra::shared(),
        1,
        std::slice::from_ref(&one_slot),
        &[],
    )
    .await;
    let submitted = sys.submit_accepted(8, 2.0).await;
    sys.wait_states(&submitted, &["running"], 1).await;
    sys.kill(Proc::Worker(0)).await;
    sys.kill(Proc::Scheduler(0)).await;
    let ids: Vec<String> = accepted(&submitted).map(|(_, id)| id.clone()).collect();
    let mut states = Vec::new();
    let mut cancelled = Vec::new();
    for id in &ids {
        let job = sys.job(id).await.unwrap();
        let state = job["state"].as_str().unwrap().to_owned();
        // Cancel everything that has not started, except one job to show the rest still runs.
        if state != "running" && state != "succeeded" && cancelled.len() < ids.len() - 2 {
            let response = sys
                .http
                .post(format!("{}/v1/jobs/{id}/cancel", sys.base))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "cancel: {}",
                response.status()
            );
            cancelled.push(id.clone());
        }
        states.push(state);
    }
    sys.add_scheduler();
    sys.add_worker(&one_slot).await;
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let v = sys.judge(
        &submitted,
        &records,
        Allow {
            restarts: true,
            // The worker dies the moment its job is marked `running`, often while it starts
            // the job's process: the guard is armed before the spawn, so no run may outlive
            // it and end beside the re-run.
            double_runs: None,
        },
    );
    eprintln!(
        "FAULTS-REPORT cancel_restart: states when cancelled {states:?}, {} cancelled",
        cancelled.len()
    );
    assert_eq!(v.states.get("cancelled"), Some(&cancelled.len()), "{v:?}");
    sys.stop().await;
}
