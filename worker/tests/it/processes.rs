//! A job is its main process: what it leaves behind is killed when it exits, and when its
//! worker dies, even by `kill -9`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use warren_kit::testkit::{TestNamespace, amqp_url, redis_url, wait_until};
use warren_protocol::{JobId, JobState};
use warren_worker::Worker;

use crate::support::{Harness, args, spec};

/// Live (not zombie) processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields follow the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is the state, fields[2] the process group.
        if fields.get(2).and_then(|g| g.parse().ok()) == Some(pgid) && fields[0] != "Z" {
            members.push(pid);
        }
    }
    members
}

/// What a job prints first to give its process group (the fifth field of its `stat`).
const PRINT_PGID: &str = "echo pgid=$(cut -d' ' -f5 /proc/$$/stat) pid=$$";

/// The process group the job printed with [`PRINT_PGID`].
async fn job_pgid(h: &Harness, id: JobId) -> i32 {
    let store = h.store.clone();
    wait_until("the job to log its group", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let log = store.read_log(id, None, 10).await.ok()?;
            log.iter().find_map(|l| {
                l.line
                    .strip_prefix("pgid=")?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
        }
    })
    .await
}

async fn wait_group_gone(pgid: i32) {
    wait_until(
        &format!("process group {pgid} to be gone"),
        Duration::from_secs(5),
        || async move { group_members(pgid).is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_background_child_holding_stdout_does_not_keep_the_job_running() {
    let ns = TestNamespace::new("worker_bg_child");
    let mut a = args(&ns);
    a.allow_commands = vec!["sh".into()];
    let h = Harness::start(ns.clone(), Worker::builder().build(a)).await;
    // The background sleep inherits stdout: the pipe stays open after `sh` exits.
    let script = format!("{PRINT_PGID}; sleep 300 & echo started");
    let id = h
        .dispatch(spec("command", json!({"argv": ["sh", "-c", script]})))
        .await;
    let job = h.wait_terminal(id).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let stdout = job.result.unwrap()["stdout"].as_str().unwrap().to_owned();
    assert!(
        stdout.starts_with(&format!("pgid={} ", job_pgid(&h, id).await))
            && stdout.ends_with("\nstarted\n"),
        "{stdout:?}"
    );
    wait_group_gone(job_pgid(&h, id).await).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn output_is_read_for_a_bounded_time_after_the_main_process_exits() {
    let ns = TestNamespace::new("worker_escaped_child");
    let mut a = args(&ns);
    a.allow_commands = vec!["sh".into()];
    let h = Harness::start(ns.clone(), Worker::builder().build(a)).await;
    // `setsid` takes the sleep out of the job's group, so killing the group misses it, and
    // it holds stdout open for 30 s.
    let script = "setsid sleep 30 & echo child=$!";
    let started = std::time::Instant::now();
    let id = h
        .dispatch(spec("command", json!({"argv": ["sh", "-c", script]})))
        .await;
    let job = h.wait_terminal(id).await;
    let took = started.elapsed();
    let stdout = job.result.clone().unwrap()["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    if let Some(pid) = stdout
        .trim()
        .strip_prefix("child=")
        .and_then(|p| p.parse().ok())
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert!(stdout.starts_with("child="), "{stdout:?}");
    assert!(took < Duration::from_secs(15), "the job took {took:?}");
    h.stop().await;
}

/// The worker binary, killed with SIGKILL when dropped (a failed test leaves nothing behind).
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_dies_with_its_worker_even_on_kill_9() {
    job_dies_with_its_worker("auto").await;
}

/// Without a cgroup, the guard's process group is all there is to find the job by.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_without_a_cgroup_dies_with_its_worker_even_on_kill_9() {
    job_dies_with_its_worker("off").await;
}

async fn job_dies_with_its_worker(cgroup: &str) {
    let ns = TestNamespace::new(&format!("worker_kill9_job_{cgroup}"));
    let mut h = Harness::connect(ns.clone()).await;
    let child = Command::new(env!("CARGO_BIN_EXE_warren-worker"))
        .env_clear()
        .env("WARREN_AMQP_URL", amqp_url())
        .env("WARREN_REDIS_URL", redis_url())
        .env("WARREN_NAMESPACE", ns.ns().to_string())
        .env("WARREN_TAGS", "cpu")
        .env("WARREN_ALLOW_COMMANDS", "sh")
        .env("WARREN_CGROUP", cgroup)
        .env("WARREN_HEARTBEAT_INTERVAL", "200ms")
        .env("WARREN_LEASE_TTL", "2s")
        .env("WARREN_RESULT_TTL", "10m")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the worker binary starts");
    let mut worker = WorkerProcess(child);
    h.wait_for_worker().await;

    let script = format!("{PRINT_PGID}; echo dir=$PWD; sleep 300 & sleep 300");
    let id = h
        .dispatch(spec("command", json!({"argv": ["sh", "-c", script]})))
        .await;
    let pgid = job_pgid(&h, id).await;
    let log = h.store.read_log(id, None, 10).await.unwrap();
    // The job joined its guard's group, which existed (and was armed) before the job did: the
    // group's leader is the guard, not the job, so no moment of the job's life is unguarded.
    let job_pid = log
        .iter()
        .find_map(|l| l.line.split_once(" pid=")?.1.parse::<i32>().ok())
        .expect("the job logs its pid");
    assert_ne!(
        job_pid, pgid,
        "the job leads its own group: it was spawned unguarded"
    );
    let dir = log
        .iter()
        .find_map(|l| l.line.strip_prefix("dir="))
        .expect("the job logs its directory")
        .to_owned();
    assert!(std::path::Path::new(&dir).is_dir());
    assert!(
        group_members(pgid).len() >= 2,
        "the job runs: sh and its sleeps"
    );

    worker.0.kill().unwrap(); // SIGKILL: no drain, no cleanup of its own
    worker.0.wait().unwrap();
    wait_group_gone(pgid).await;
    // The guard also removes the job's directory, which the dead worker could not.
    wait_until(
        "the job's directory to be removed",
        Duration::from_secs(5),
        || {
            let gone = !std::path::Path::new(&dir).exists();
            async move { gone.then_some(()) }
        },
    )
    .await;
    h.stop().await;
}
