//! What a `command` job sees and may run: its output is read in bounded memory whatever its
//! shape, its environment is clean, its program must be the allow-listed file, its
//! directory is its own.

use serde_json::{Value, json};
use warren_kit::testkit::TestNamespace;
use warren_protocol::JobState;
use warren_worker::{Worker, WorkerArgs};

use crate::support::{Harness, args, spec};

/// A worker that may run `sh` (and `echo`).
fn sh_worker(ns: &TestNamespace, tweak: impl FnOnce(&mut WorkerArgs)) -> Worker {
    let mut a = args(ns);
    a.allow_commands = vec!["echo".into(), "sh".into()];
    tweak(&mut a);
    Worker::builder().build(a)
}

fn sh(script: &str) -> Value {
    json!({"argv": ["sh", "-c", script]})
}

/// Peak resident memory of this process (test runner and in-process worker), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn output_of_any_shape_is_read_in_bounded_memory_and_the_log_is_capped_in_bytes() {
    let ns = TestNamespace::new("worker_output_shapes");
    let h = Harness::start(ns.clone(), sh_worker(&ns, |_| {})).await;
    let before = peak_rss_kib();
    // One 100 MB line without a newline, then bytes that are not UTF-8, then a progress bar
    // made of carriage returns, then a last line.
    let script = "head -c 100000000 /dev/zero; printf 'x\\377\\376y\\n'; \
                  i=0; while [ $i -lt 2000 ]; do printf '\\r%d%%' $i; i=$((i+1)); done; \
                  echo; echo done >&2";
    let id = h.dispatch(spec("command", sh(script))).await;
    let job = h.wait_terminal(id).await;
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    // The old reader held the whole line (and more) at once: about 500 MB for this one.
    assert!(grown_mib < 64, "worker memory grew by {grown_mib} MiB");
    let result = job.result.unwrap();
    assert_eq!(result["stderr"], "done\n");
    assert_eq!(result["log_truncated"], true);
    let cap = result["log_cap_bytes"].as_u64().unwrap();
    assert!(job.log_truncated, "the record says the log was cut");
    assert_eq!(job.log_cap_bytes, Some(cap));
    // The tail is the true end of the output, even after the log stopped taking lines.
    let stdout = result["stdout"].as_str().unwrap();
    assert!(stdout.contains("x\u{fffd}\u{fffd}y\n"), "{stdout:?}");
    assert!(
        stdout.ends_with("1999%\n"),
        "{:?}",
        &stdout[stdout.len() - 40..]
    );
    let log = h.store.read_log(id, None, 100_000).await.unwrap();
    let bytes: u64 = log.iter().map(|l| l.line.len() as u64 + 1).sum();
    assert!(bytes <= cap + 200, "{bytes} bytes logged, cap {cap}");
    assert!(log.iter().all(|l| l.line.len() <= 8 * 1024));
    assert!(log.last().unwrap().line.contains("log truncated"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_get_a_clean_environment_that_says_who_they_are() {
    let ns = TestNamespace::new("worker_clean_env");
    // Cargo sets CARGO_PKG_NAME (and other CARGO_* names) for this test process.
    let worker = sh_worker(&ns, |a| a.pass_env = vec!["CARGO_PKG_NAME".into()]);
    let h = Harness::start(ns.clone(), worker).await;
    let mut job = spec(
        "command",
        json!({"argv": ["sh", "-c", "env"], "env": {"GREETING": "hi"}}),
    );
    job.tenant = "team-a".into();
    let id = h.dispatch(job).await;
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let out = job.result.unwrap()["stdout"].as_str().unwrap().to_owned();
    let vars: Vec<&str> = out.lines().collect();
    for expected in [
        "GREETING=hi".to_owned(),
        format!("WARREN_JOB_ID={id}"),
        "WARREN_ATTEMPT=1".to_owned(),
        "WARREN_TENANT=team-a".to_owned(),
        "PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
        "CARGO_PKG_NAME=warren-worker".to_owned(),
        "LANG=C.UTF-8".to_owned(),
    ] {
        assert!(
            vars.contains(&expected.as_str()),
            "{expected} missing from {vars:?}"
        );
    }
    let leaked: Vec<&&str> = vars
        .iter()
        .filter(|v| v.starts_with("CARGO_") && !v.starts_with("CARGO_PKG_NAME="))
        .collect();
    assert!(leaked.is_empty(), "worker variables leaked: {leaked:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_program_named_like_an_entry_elsewhere_is_not_admitted() {
    let ns = TestNamespace::new("worker_allow_exact");
    let h = Harness::start(ns.clone(), sh_worker(&ns, |_| {})).await;
    // A real executable called `echo`, somewhere else than the allow-listed one.
    let dir = std::env::temp_dir().join(format!("{}-bin", ns.ns()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("echo");
    std::fs::copy("/bin/sh", &fake).unwrap();
    let id = h
        .dispatch(spec(
            "command",
            json!({"argv": [fake.to_str().unwrap(), "-c", "echo ran"]}),
        ))
        .await;
    let store = h.store.clone();
    let job = warren_kit::testkit::wait_until(
        "the job to be handed back",
        std::time::Duration::from_secs(10),
        || {
            let store = store.clone();
            async move {
                let job = store.get(id).await.ok()??;
                job.pending_reason.is_some().then_some(job)
            }
        },
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(job.pending_reason.unwrap().contains("allow-list"));
    assert!(
        !job.timestamps.contains_key("running"),
        "it must never have run"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_job_runs_in_a_fresh_directory_unless_the_worker_allows_its_cwd() {
    let ns = TestNamespace::new("worker_cwd");
    let allowed = std::env::temp_dir().join(format!("{}-allowed", ns.ns()));
    std::fs::create_dir_all(&allowed).unwrap();
    let allowed = allowed.canonicalize().unwrap();
    let worker = sh_worker(&ns, |a| a.allow_cwd = vec![allowed.clone()]);
    let h = Harness::start(ns.clone(), worker).await;

    let id = h
        .dispatch(spec("command", sh("pwd; echo $HOME; touch mine")))
        .await;
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let out = job.result.unwrap()["stdout"].as_str().unwrap().to_owned();
    let dir = out.lines().next().unwrap().to_owned();
    assert!(dir.contains(&format!("warren-job-{id}-1-")), "{out}");
    assert_eq!(
        out.lines().nth(1),
        Some(dir.as_str()),
        "HOME is the job's directory"
    );
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} was not removed"
    );

    let inside = json!({"argv": ["sh", "-c", "pwd"], "cwd": allowed.to_str().unwrap()});
    let id = h.dispatch(spec("command", inside)).await;
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(
        job.result.unwrap()["stdout"],
        format!("{}\n", allowed.display())
    );

    for outside in ["/etc", &format!("{}/../..", allowed.display())] {
        let id = h
            .dispatch(spec(
                "command",
                json!({"argv": ["sh", "-c", "pwd"], "cwd": outside}),
            ))
            .await;
        let job = h.wait_terminal(id).await;
        assert_eq!(job.state, JobState::Failed);
        let error = job.error.unwrap();
        assert!(
            error.contains("is not allowed") && error.contains(allowed.to_str().unwrap()),
            "{error}"
        );
    }
    std::fs::remove_dir_all(&allowed).unwrap();
    h.stop().await;
}
