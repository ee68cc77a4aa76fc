//! The scheduler's policies with real processes: the scheduler, not the broker, decides the
//! order; fair share follows the weights; GPUs and caps are capacity; a worker that has a
//! task runs it whatever its neighbours have.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use warren_kit::testkit::wait_until;

use crate::harness::{System, WorkerSpec, spec};

fn sleep_job(tenant: &str, priority: u8, ms: u64) -> Value {
    json!({
        "task": "sleep",
        "args": { "ms": ms },
        "tenant": tenant,
        "priority": priority,
        "estimated_runtime_ms": ms,
    })
}

/// When each job started and ended (ms), from its record.
async fn interval(sys: &System, id: &str) -> (u64, u64) {
    let job = sys.wait_done(id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let start = job["timestamps"]["running"].as_u64().expect("running time");
    let end = job["timestamps"]["succeeded"].as_u64().expect("end time");
    (start, end)
}

#[tokio::test(flavor = "multi_thread")]
async fn priority_overtakes_a_saturated_backlog() {
    let one_slot = WorkerSpec {
        slots: 1,
        ..WorkerSpec::default()
    };
    let env = [
        ("WARREN_POLICY", "priority".to_owned()),
        ("WARREN_CREDIT_SLACK", "0".to_owned()),
    ];
    let sys = System::start_with("e2e_priority", &[one_slot], &env).await;
    let backlog = sys
        .submit_batch((0..30).map(|_| sleep_job("a", 1, 100)).collect())
        .await;
    // The last of the backlog knows how many go before it (it waits about 3 s).
    let last = wait_until("the backlog admitted", Duration::from_secs(10), || async {
        let job = sys.job(&backlog[29]).await;
        (job["state"] != "queued" || job["scheduling"].is_object()).then_some(job)
    })
    .await;
    let standing = &last["scheduling"];
    let in_class = standing["position_in_class"].as_u64();
    let ahead = standing["jobs_ahead"].as_u64();
    assert!(
        last["state"] != "queued"
            || matches!((in_class, ahead), (Some(c), Some(a)) if c >= 20 && a <= c && a + 2 >= c),
        "one class waiting: jobs ahead is its place in the class: {last}"
    );
    let urgent = sys.submit(sleep_job("b", 9, 100)).await;
    let (urgent_start, _) = interval(&sys, &urgent).await;
    let mut after = 0;
    for id in &backlog {
        let (start, _) = interval(&sys, id).await;
        after += usize::from(start > urgent_start);
    }
    // At most the job running when it arrived (and one being dispatched) goes before it.
    assert!(
        after >= 28,
        "only {after} of 30 earlier jobs ran after the priority-9 one"
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fair_share_among_three_tenants_follows_the_weights() {
    let workers = [
        WorkerSpec {
            slots: 4,
            ..WorkerSpec::default()
        },
        WorkerSpec {
            slots: 4,
            ..WorkerSpec::default()
        },
    ];
    let env = [
        ("WARREN_POLICY", "fair".to_owned()),
        ("WARREN_TENANT_WEIGHTS", "a=1,b=2,c=4".to_owned()),
    ];
    let sys = System::start_with("e2e_fair", &workers, &env).await;
    // Twice each tenant's share of 980 starts, so all three still wait at the 980th.
    let counts = [("a", 150), ("b", 300), ("c", 600)];
    let mut jobs = Vec::new();
    let mut tenant_of = Vec::new();
    for (tenant, n) in counts {
        jobs.extend((0..n).map(|_| sleep_job(tenant, 4, 50)));
        tenant_of.extend(std::iter::repeat_n(tenant, n));
    }
    let mut ids = Vec::new();
    for chunk in jobs.chunks(1000) {
        ids.extend(sys.submit_batch(chunk.to_vec()).await);
    }
    let mut starts = Vec::new();
    for (id, tenant) in ids.iter().zip(&tenant_of) {
        let job = sys
            .wait_state(id, "succeeded", Duration::from_secs(180))
            .await;
        starts.push((job["timestamps"]["running"].as_u64().unwrap(), *tenant));
    }
    starts.sort();
    // Tenant a's jobs, submitted first, fill the slots before b's and c's are admitted; fair
    // share then pays that head start back, so what converges is each tenant's share of all
    // the work done while every tenant had jobs waiting: here the first 980 starts.
    let head_start = starts.iter().take_while(|(_, t)| *t == "a").count();
    let window = &starts[..980];
    let mut count: HashMap<&str, f64> = HashMap::new();
    for (_, tenant) in window {
        *count.entry(tenant).or_default() += 1.0;
    }
    for (tenant, weight) in [("a", 1.0), ("b", 2.0), ("c", 4.0)] {
        let share = count.get(tenant).copied().unwrap_or(0.0) / window.len() as f64;
        let want = weight / 7.0;
        assert!(
            (share - want).abs() <= 0.1 * want,
            "tenant {tenant}: {share:.3} of the starts, want {want:.3} ± 10 % ({count:?}); \
             a's head start: {head_start} jobs"
        );
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_gpu_runs_one_gpu_job_at_a_time_and_caps_hold() {
    let gpu_worker = WorkerSpec {
        tags: "cpu,gpu",
        slots: 4,
        gpus: 1,
        cpu: 4,
        ..WorkerSpec::default()
    };
    let env = [("WARREN_TENANT_LIMITS", "capped=1".to_owned())];
    let sys = System::start_with("e2e_gpu", &[gpu_worker], &env).await;
    let gpu = |n: u64| {
        json!({
            "task": "sleep", "args": {"ms": 300}, "tenant": format!("g{n}"),
            "requires": {"tags": ["gpu"], "gpus": 1},
        })
    };
    let gpu_ids = sys.submit_batch((0..3).map(gpu).collect()).await;
    let capped = sys
        .submit_batch((0..3).map(|_| sleep_job("capped", 4, 300)).collect())
        .await;
    for group in [&gpu_ids, &capped] {
        let mut spans = Vec::new();
        for id in group {
            spans.push(interval(&sys, id).await);
        }
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "two of them ran at once: {spans:?} (one GPU, and a cap of 1)"
            );
        }
    }
    // A job asking for more than the worker has waits and says why.
    let too_big = sys
        .submit(json!({"task": "noop", "requires": {"gpus": 2}}))
        .await;
    let job = sys.wait_reason(&too_big).await;
    let reason = job["pending_reason"].as_str().unwrap();
    assert!(reason.contains("gpus=2"), "{reason}");
    // Jobs behind it in its class have no reason of their own; listings give them the
    // class's, so `warren ls` says why every one waits.
    let behind = sys
        .submit_batch(vec![json!({"task": "noop", "requires": {"gpus": 2}}); 3])
        .await;
    let reasons = wait_until(
        "the listed jobs to say why they wait",
        Duration::from_secs(15),
        || async {
            let listed = sys.get_json("/v1/jobs?state=queued").await.ok()?;
            let reasons: Vec<String> = listed["jobs"]
                .as_array()?
                .iter()
                .filter(|j| behind.iter().any(|id| j["id"] == id.as_str()))
                .filter_map(|j| j["pending_reason"].as_str().map(str::to_owned))
                .collect();
            (reasons.len() == 3).then_some(reasons)
        },
    )
    .await;
    assert!(reasons.iter().all(|r| r.contains("gpus=2")), "{reasons:?}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_with_a_task_runs_it_beside_workers_without_it() {
    // The `warren up` situation of issue 10: two plain workers and the custom-task example,
    // all tagged `cpu`. Only one worker has `word_count`; it must still get the job.
    let plain = WorkerSpec::default();
    let custom = WorkerSpec {
        binary: "examples/custom_task",
        ..WorkerSpec::default()
    };
    let sys = System::start("e2e_custom", &[plain.clone(), plain, custom]).await;
    let id = sys
        .submit(spec("word_count", json!({"text": "to be or not to be"})))
        .await;
    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["words"], 6, "{job}");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_job_waits_in_the_ladder_and_starts_on_time() {
    let sys = System::start("e2e_delay", &[WorkerSpec::default()]).await;
    let delayed = sys.submit(json!({"task": "noop", "delay_s": 3})).await;
    let cancelled = sys.submit(json!({"task": "noop", "delay_s": 2})).await;
    let waiting = sys.job(&delayed).await;
    assert_eq!(waiting["state"], "queued", "{waiting}");
    let reason = waiting["pending_reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("delayed_until "), "{waiting}");
    let created = waiting["created_ms"].as_u64().unwrap();
    let answer = sys
        .http
        .post(format!("{}/v1/jobs/{cancelled}/cancel", sys.base))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "cancel: {}", answer.status());
    let done = sys.wait_done(&delayed).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let started = done["timestamps"]["running"].as_u64().unwrap();
    assert!(
        started >= created + 3000,
        "started {} ms early",
        created + 3000 - started
    );
    assert!(
        started <= created + 4500,
        "started {} ms late",
        started - created - 3000
    );
    // The cancelled one never ran, though its delay has passed by now.
    let gone = sys.job(&cancelled).await;
    assert_eq!(gone["state"], "cancelled", "{gone}");
    assert!(gone["timestamps"]["running"].is_null(), "{gone}");
    sys.stop().await;
}
