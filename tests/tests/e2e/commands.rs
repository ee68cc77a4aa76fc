use serde_json::json;

use crate::harness::{System, WorkerSpec};

#[tokio::test(flavor = "multi_thread")]
async fn commands_get_argv_env_stdin_and_a_timeout() {
    let sys = System::start("commands", &[WorkerSpec::default()]).await;
    let id = sys
        .submit(json!({"task": "command", "args": {
            "argv": ["sh", "-c", "read line; echo \"$GREETING $line\""],
            "env": {"GREETING": "hello"},
            "stdin": "warren\n"
        }}))
        .await;
    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["result"]["stdout"], "hello warren\n");
    assert!(job["result"]["duration_ms"].as_u64().is_some());

    // The whole process group dies on timeout, children included.
    let id = sys
        .submit(json!({"task": "command", "timeout_s": 1, "args": {
            "argv": ["sh", "-c", "sleep 30 & sleep 30; echo never"]
        }}))
        .await;
    let job = sys.wait_done(&id).await;
    assert_eq!(job["state"], "timed_out", "{job}");
    let took = job["timestamps"]["timed_out"].as_u64().unwrap()
        - job["timestamps"]["running"].as_u64().unwrap();
    assert!(took < 10_000, "timeout took {took} ms");
    sys.stop().await;
}
