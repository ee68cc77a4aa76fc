//! Runs `command` jobs: a program from the allow-list without a shell, in a clean environment
//! and a directory of its own, in its own process group (guarded, so the group dies with the
//! worker), under a timeout, with its output streamed to the job's log.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warren_protocol::{CommandArgs, PERMANENT_EXIT_CODE, RetryOn, TEMPFAIL_EXIT_CODE};
use warren_store::{LogStream, Store};

use crate::confine::{Confinement, JobIdentity};
use crate::group_guard::GroupGuard;
use crate::joblog;
use crate::limits;
use crate::output::spawn_reader;
use crate::task::{JobError, TaskResult};

/// Lines buffered between the pipe readers and the log shipper (each at most
/// [`crate::output::MAX_LINE_BYTES`]): the bound on a job's output in the worker's memory.
const LINE_CHANNEL: usize = 256;
/// How long output may still be read once the main process has exited and its group was
/// killed: only a process that left the group can hold a pipe open that long.
const READ_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Why the process was stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Cancelled,
}

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunLimits {
    pub(crate) timeout: Duration,
    pub(crate) kill_grace: Duration,
}

/// Everything a run needs from the worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunEnv<'a> {
    pub(crate) limits: RunLimits,
    pub(crate) confinement: &'a Confinement,
    pub(crate) store: &'a Store,
    /// The job's `requires.mem_mb` (0: not limited).
    pub(crate) mem_mb: u64,
}

/// Runs the program and reports `{exit_code, signal, stdout, stderr, duration_ms,
/// log_truncated, log_cap_bytes}`.
pub(crate) async fn run(
    who: &JobIdentity,
    args: &CommandArgs,
    env: RunEnv<'_>,
    cancel: CancellationToken,
) -> TaskResult {
    // Checked again here, not only before the claim: what runs is the path that was admitted.
    let program = env
        .confinement
        .admit(args.program())
        .map_err(JobError::permanent)?;
    let (workdir, fresh) = match &args.cwd {
        Some(cwd) => (
            env.confinement
                .check_cwd(cwd)
                .map_err(JobError::permanent)?,
            false,
        ),
        None => {
            let dir = env.confinement.make_job_dir(who).map_err(|e| {
                JobError::retryable(format!("could not make the job's directory: {e}"))
            })?;
            (dir, true)
        }
    };
    let result = run_in(who, args, &program, &workdir, fresh, env, cancel).await;
    if fresh {
        let dir = workdir.clone();
        // Removing a big tree blocks: not on the runtime's threads.
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!(job_id = %who.job_id, dir = %workdir.display(), "could not remove the job's directory");
        }
    }
    result
}

async fn run_in(
    who: &JobIdentity,
    args: &CommandArgs,
    program: &Path,
    workdir: &Path,
    fresh: bool,
    env: RunEnv<'_>,
    cancel: CancellationToken,
) -> TaskResult {
    let started = Instant::now();
    let mut guard = GroupGuard::spawn()
        .map_err(|e| JobError::retryable(format!("could not start the process guard: {e}")))?;
    let cgroup = env.confinement.job_cgroup(who, env.mem_mb);
    // Armed before the spawn, with the group the job will join: a worker killed at any
    // moment from here on leaves no job process behind.
    if let Err(error) = guard
        .arm(fresh.then_some(workdir), cgroup.as_ref().map(|c| c.dir()))
        .await
    {
        guard.release().await;
        if let Some(cgroup) = cgroup {
            cgroup.kill_and_remove().await;
        }
        return Err(JobError::retryable(format!(
            "could not arm the process guard: {error}"
        )));
    }
    let pgid = guard.pgid();
    let mut cmd = Command::new(program);
    cmd.arg0(args.program())
        .args(&args.argv[1..])
        .current_dir(workdir)
        .stdin(if args.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The guard's process group: a timeout, a cancel or the guard kills the whole tree,
        // not just the leader.
        .process_group(pgid.as_raw())
        .kill_on_drop(true);
    env.confinement
        .apply_env(&mut cmd, &args.env, who, workdir, fresh);
    env.confinement.apply_user(&mut cmd);
    let plan = env.confinement.plan(env.mem_mb);
    plan.install(&mut cmd, cgroup.as_ref());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            guard.release().await;
            if let Some(cgroup) = cgroup {
                cgroup.kill_and_remove().await;
            }
            // Not executable, gone since the worker started: running it again will not help.
            return Err(JobError::permanent(format!(
                "could not start {}: {e}",
                program.display()
            )));
        }
    };

    if let (Some(input), Some(mut stdin)) = (args.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            // A program that exits without reading its input is not an error of ours.
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }

    let (tx, rx) = mpsc::channel::<(LogStream, String)>(LINE_CHANNEL);
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| spawn_reader(s, LogStream::Stdout, tx.clone())),
        child
            .stderr
            .take()
            .map(|s| spawn_reader(s, LogStream::Stderr, tx.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    drop(tx);
    let shipper = tokio::spawn(joblog::ship(who.job_id, env.store.clone(), rx));

    let stop = tokio::select! {
        status = child.wait() => Ok(status),
        () = tokio::time::sleep(env.limits.timeout) => Err(Stop::TimedOut),
        () = cancel.cancelled() => Err(Stop::Cancelled),
    };
    let (status, stopped) = match stop {
        Ok(status) => {
            // The job is its main process: whatever it left running in its group goes too,
            // or a background child holding stdout would keep the job `running` for ever.
            // (The guard, in the same group, goes with it: the worker is alive to clean up.)
            let _ = killpg(pgid, Signal::SIGKILL);
            (status, None)
        }
        Err(why) => {
            terminate(pgid, &mut child, env.limits.kill_grace).await;
            (child.wait().await, Some(why))
        }
    };
    // The cgroup also holds what left the group (`setsid`): it goes now too.
    let oom_by_cgroup = cgroup.as_ref().is_some_and(limits::JobCgroup::oom_killed);
    let has_cgroup = cgroup.is_some();
    if let Some(cgroup) = cgroup.as_ref() {
        cgroup.kill();
    }
    guard.release().await;
    if let Some(cgroup) = cgroup {
        cgroup.kill_and_remove().await;
    }
    finish_readers(readers).await;
    let shipped = shipper.await.unwrap_or_default();
    let exit_code = status
        .as_ref()
        .ok()
        .and_then(std::process::ExitStatus::code);
    let signal = status
        .as_ref()
        .ok()
        .and_then(std::os::unix::process::ExitStatusExt::signal);
    let exit_signal = signal.map(signal_name);
    // Warren sends SIGKILL only on a timeout or a cancel (`stopped`); a SIGKILL nobody here
    // sent is, on a Linux host without a memory cgroup of the job's own, the OOM killer's
    // mark (the best evidence there is; see docs/reliability.md, "Signals and OOM").
    let oom_killed = oom_by_cgroup || (stopped.is_none() && signal == Some(Signal::SIGKILL as i32));
    let result = json!({
        "exit_code": exit_code,
        "signal": signal,
        "exit_signal": exit_signal,
        "oom_killed": oom_killed,
        "stdout": shipped.stdout_tail,
        "stderr": shipped.stderr_tail,
        "duration_ms": started.elapsed().as_millis() as u64,
        "log_truncated": shipped.truncated,
        "log_cap_bytes": env.store.options().log_max_bytes,
        "limits": {
            "data_bytes": plan.data_bytes,
            "nofile": plan.nofile,
            "nproc": plan.nproc,
            "cgroup": has_cgroup,
            // The cgroup's own count: certain, where the job has a cgroup with memory.
            "oom_killed": oom_by_cgroup,
        },
    });
    match (stopped, exit_code) {
        (Some(Stop::TimedOut), _) => Err(JobError::TimedOut {
            result: Some(result),
        }),
        (Some(Stop::Cancelled), _) => Err(JobError::Cancelled),
        (None, Some(0)) => Ok(result),
        (None, Some(code)) if code == PERMANENT_EXIT_CODE => Err(JobError::Permanent {
            message: format!("exited with code {code} (failed for good: no retry)"),
            result: Some(result),
        }),
        (None, Some(code)) => Err(JobError::Retryable {
            message: format!("exited with code {code}"),
            after: None,
            result: Some(result),
        }),
        (None, _) if oom_by_cgroup => Err(JobError::Retryable {
            message: format!(
                "killed: out of memory (requires.mem_mb = {}, limit {} MiB with headroom)",
                env.mem_mb,
                env.mem_mb + limits::MEM_HEADROOM_MB
            ),
            after: None,
            result: Some(result),
        }),
        (None, None) if oom_killed => Err(JobError::Retryable {
            message: "killed by SIGKILL, not sent by Warren: most likely the OOM killer".into(),
            after: None,
            result: Some(result),
        }),
        (None, None) => Err(JobError::Retryable {
            message: format!(
                "killed by signal {}",
                exit_signal.unwrap_or_else(|| "?".into())
            ),
            after: None,
            result: Some(result),
        }),
    }
}

/// `SIGKILL` for 9; the number for a signal nix does not name.
fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.as_str().to_owned())
}

/// Turns a retryable failure of a `command` into a permanent one when the job's `retry_on`
/// does not name its kind (exit code, signal, OOM kill). An exit with
/// [`TEMPFAIL_EXIT_CODE`] stays retryable: the program asked for it.
pub(crate) fn apply_retry_on(
    outcome: TaskResult,
    retry_on: Option<&std::collections::BTreeSet<RetryOn>>,
) -> TaskResult {
    let Some(retry_on) = retry_on else {
        return outcome;
    };
    let Err(JobError::Retryable {
        message,
        after,
        result,
    }) = outcome
    else {
        return outcome;
    };
    let field = |name: &str| result.as_ref().and_then(|r| r.get(name).cloned());
    let code = field("exit_code").and_then(|v| v.as_i64());
    let kind = if field("oom_killed").and_then(|v| v.as_bool()) == Some(true) {
        Some(RetryOn::Oom)
    } else if field("exit_signal").is_some_and(|v| !v.is_null()) {
        Some(RetryOn::Signal)
    } else if code.is_some() {
        Some(RetryOn::ExitCode)
    } else {
        // Not a process outcome (the job's directory could not be made…): retry as before.
        None
    };
    let retry = code == Some(i64::from(TEMPFAIL_EXIT_CODE))
        || kind.is_none_or(|kind| retry_on.contains(&kind));
    if retry {
        Err(JobError::Retryable {
            message,
            after,
            result,
        })
    } else {
        Err(JobError::Permanent {
            message: format!("{message} (not retried: retry_on does not include it)"),
            result,
        })
    }
}

/// Waits for the pipe readers, but not for ever: a process that left the job's group (its
/// own `setsid`) may hold a pipe open; its output after [`READ_AFTER_EXIT`] is dropped.
async fn finish_readers(readers: Vec<tokio::task::JoinHandle<()>>) {
    let deadline = tokio::time::Instant::now() + READ_AFTER_EXIT;
    for reader in readers {
        let abort = reader.abort_handle();
        if tokio::time::timeout_at(deadline, reader).await.is_err() {
            abort.abort();
        }
    }
}

/// SIGTERM to the process group (the guard ignores it), then SIGKILL after the grace period.
async fn terminate(pgid: Pid, child: &mut tokio::process::Child, grace: Duration) {
    let _ = killpg(pgid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_ok() {
        // The leader is gone; make sure no member of its group outlives it.
        let _ = killpg(pgid, Signal::SIGKILL);
        return;
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.start_kill();
}
