use std::time::Duration;

use serde_json::json;

use crate::harness::{System, WorkerSpec, spec};

#[tokio::test(flavor = "multi_thread")]
async fn jobs_wait_for_a_matching_pool_and_run_when_one_joins() {
    let mut sys = System::start("routing", &[WorkerSpec::default()]).await;

    let gpu_job = sys
        .submit(json!({"task": "noop", "requires": {"tags": ["gpu"], "gpus": 1}}))
        .await;
    let cpu_job = sys.submit(spec("noop", json!(null))).await;
    assert_eq!(sys.wait_done(&cpu_job).await["pool"], "cpu");

    let waiting = sys
        .wait_state(&gpu_job, "queued", Duration::from_secs(5))
        .await;
    let waiting = if waiting["pending_reason"].is_null() {
        crate::harness::System::wait_reason(&sys, &gpu_job).await
    } else {
        waiting
    };
    let reason = waiting["pending_reason"].as_str().unwrap();
    assert!(reason.contains("no_matching_pool"), "{reason}");
    assert!(reason.contains("gpu"), "{reason}");

    sys.add_worker(&WorkerSpec {
        tags: "gpu,cuda12",
        slots: 1,
        allow: "",
        gpus: 1,
        ..WorkerSpec::default()
    })
    .await;
    let done = sys.wait_done(&gpu_job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["pool"], "cuda12+gpu");
    assert!(done["pending_reason"].is_null(), "{done}");

    // Best fit: a plain job still goes to the cpu pool, not the GPU machine.
    let plain = sys.submit(spec("noop", json!(null))).await;
    assert_eq!(sys.wait_done(&plain).await["pool"], "cpu");
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_run_only_where_the_allow_list_admits_them() {
    let mut sys = System::start(
        "allowlist",
        &[WorkerSpec {
            allow: "echo",
            ..WorkerSpec::default()
        }],
    )
    .await;
    let id = sys
        .submit(json!({"task": "command", "args": {"argv": ["sh", "-c", "echo from sh; echo oops >&2; exit 3"]}}))
        .await;
    let waiting = sys.wait_reason(&id).await;
    let reason = waiting["pending_reason"].as_str().unwrap();
    assert!(reason.contains("\"sh\""), "{reason}");

    sys.add_worker(&WorkerSpec {
        tags: "cpu,shell",
        allow: "sh,echo",
        ..WorkerSpec::default()
    })
    .await;
    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["exit_code"], 3);
    assert_eq!(job["pool"], "cpu+shell");
    assert_eq!(job["result"]["stdout"], "from sh\n");
    assert_eq!(job["result"]["stderr"], "oops\n");
    let lines = sys.log_lines(&id).await;
    assert!(lines.contains(&"from sh".to_owned()), "{lines:?}");
    assert!(lines.contains(&"oops".to_owned()), "{lines:?}");
    sys.stop().await;
}

impl System {
    /// Waits until a queued job has a pending reason.
    pub(crate) async fn wait_reason(&self, id: &str) -> serde_json::Value {
        warren_kit::testkit::wait_until(
            &format!("job {id} to get a pending reason"),
            Duration::from_secs(15),
            || async {
                let job = self.job(id).await;
                job["pending_reason"].as_str().is_some().then_some(job)
            },
        )
        .await
    }
}
