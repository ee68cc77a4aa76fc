//! What a `command` job may use: memory from its `requires.mem_mb` (rlimits, and a cgroup when
//! the worker may make one), and which user it runs as (`--run-as`). A job's cgroup finds
//! the processes that left its group, so they die with it.

use std::time::Duration;

use serde_json::{Value, json};
use warren_kit::testkit::{TestNamespace, wait_until};
use warren_protocol::{JobId, JobState};
use warren_worker::{Worker, WorkerArgs};

use crate::support::{Harness, args, spec};

fn sh_worker(ns: &TestNamespace, tweak: impl FnOnce(&mut WorkerArgs)) -> Worker {
    let mut a = args(ns);
    a.allow_commands = vec!["sh".into()];
    tweak(&mut a);
    Worker::builder().build(a)
}

fn sh(script: &str, mem_mb: u64) -> warren_protocol::JobSpec {
    let mut s = spec("command", json!({"argv": ["sh", "-c", script]}));
    s.requires.mem_mb = mem_mb;
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_past_its_mem_mb_fails_and_one_within_it_runs() {
    let ns = TestNamespace::new("worker_mem_limit");
    let h = Harness::start(ns.clone(), sh_worker(&ns, |_| {})).await;
    // The shell holds the whole output of $(...) in memory.
    let hog =
        |mb: u64| format!("x=$(head -c {mb}000000 /dev/zero | tr '\\0' a); echo kept ${{#x}}");

    let within = h.dispatch(sh(&hog(8), 32)).await;
    let job = h.wait_terminal(within).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let result = job.result.unwrap();
    assert_eq!(result["stdout"], "kept 8000000\n");
    assert_eq!(result["limits"]["data_bytes"], (32 + 64) * 1024 * 1024);

    let past = h.dispatch(sh(&hog(300), 32)).await;
    let job = h.wait_terminal(past).await;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let result = job.result.unwrap();
    assert!(
        !result["stdout"].as_str().unwrap().contains("kept"),
        "{result}"
    );
    h.stop().await;
}

fn cgroups_work() -> bool {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return false;
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    own.lines().any(|l| l.starts_with("0::")) && mountinfo.contains(" - cgroup2 ")
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

async fn logged_pid(h: &Harness, id: JobId, prefix: &'static str) -> i32 {
    let store = h.store.clone();
    wait_until("the job to log a pid", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let log = store.read_log(id, None, 10).await.ok()?;
            log.iter()
                .find_map(|l| l.line.strip_prefix(prefix)?.parse::<i32>().ok())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_job_leaves_no_process_behind_even_one_that_called_setsid() {
    if !cgroups_work() {
        eprintln!(
            "skipped: no cgroup v2 here, so a setsid'd process can outlive its job (documented)"
        );
        return;
    }
    let ns = TestNamespace::new("worker_setsid_cancel");
    let h = Harness::start(ns.clone(), sh_worker(&ns, |_| {})).await;
    let script = "setsid sh -c 'echo escaped=$$; exec sleep 300' & sleep 300";
    let id = h.dispatch(sh(script, 0)).await;
    let escaped = logged_pid(&h, id, "escaped=").await;
    assert!(alive(escaped));
    h.publisher.broadcast_cancel(id).await.unwrap();
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Cancelled, "{:?}", job.error);
    // Polled here, not with `wait_until`, so that a failure still kills the process.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(escaped) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive(escaped) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(escaped),
            nix::sys::signal::SIGKILL,
        );
        panic!("process {escaped} outlived its cancelled job");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_run_as_the_run_as_user_without_supplementary_groups() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: --run-as needs the tests to run as root");
        return;
    }
    let ns = TestNamespace::new("worker_run_as");
    let h = Harness::start(
        ns.clone(),
        sh_worker(&ns, |a| a.limits.run_as = Some("nobody".into())),
    )
    .await;
    let script = "echo uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$(stat -c %u \"$HOME\"); touch \"$HOME/x\" && echo wrote";
    let id = h.dispatch(sh(script, 0)).await;
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let result: Value = job.result.unwrap();
    assert_eq!(
        result["stdout"],
        "uid=65534 gid=65534 groups=65534 home=65534\nwrote\n"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_run_as_user_that_does_not_exist_stops_the_worker_at_start() {
    let ns = TestNamespace::new("worker_run_as_missing");
    let mut a = args(&ns);
    a.limits.run_as = Some("no-such-user-warren".into());
    let err = a.check().unwrap_err().to_string();
    assert!(err.contains("no such user"), "{err}");
}

/// Runs the worker binary under `setpriv` with `setpriv_args` and `--run-as daemon`; its exit
/// status and what it printed to stderr. It must stop at its settings, before any connection.
async fn worker_binary_under_setpriv(setpriv_args: &[&str]) -> (std::process::ExitStatus, String) {
    let ns = TestNamespace::new("worker_run_as_refused");
    let run = tokio::process::Command::new("setpriv")
        .args(setpriv_args)
        .arg(env!("CARGO_BIN_EXE_warren-worker"))
        .env_clear()
        .env("WARREN_AMQP_URL", warren_kit::testkit::amqp_url())
        .env("WARREN_REDIS_URL", warren_kit::testkit::redis_url())
        .env("WARREN_NAMESPACE", ns.ns().to_string())
        .env("WARREN_ALLOW_COMMANDS", "sh")
        .env("WARREN_RUN_AS", "daemon")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the worker stops at once")
        .expect("setpriv (util-linux) is on PATH");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn run_as_is_refused_with_the_fix_when_the_worker_cannot_switch_users() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: dropping to another user needs the tests to run as root");
        return;
    }
    // Not root.
    let (status, stderr) =
        worker_binary_under_setpriv(&["--reuid=nobody", "--regid=nogroup", "--clear-groups"]).await;
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("--run-as \"daemon\": the worker runs as uid 65534")
            && stderr.contains("start the worker as root, or drop --run-as"),
        "{stderr}"
    );
    // Root without CAP_SETUID and CAP_SETGID, as in a container that drops them.
    let (status, stderr) =
        worker_binary_under_setpriv(&["--bounding-set=-setuid,-setgid", "--inh-caps=-all"]).await;
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("without the CAP_SETUID and CAP_SETGID capabilities")
            && stderr.contains("--cap-add SETUID"),
        "{stderr}"
    );
}
