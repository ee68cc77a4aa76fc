//! Runs `command` jobs: a program without a shell, in its own process group, under a
//! timeout, with its output streamed to the job's log.

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warren_protocol::{CommandArgs, JobId};
use warren_store::{LogStream, Store};

use crate::task::{JobError, TaskResult};

/// Most bytes of stdout/stderr kept in the result (the full output is in the log).
const TAIL_BYTES: usize = 16 * 1024;
/// Log lines are written in batches of at most this many...
const LOG_BATCH: usize = 200;
/// ...or this often.
const LOG_FLUSH: Duration = Duration::from_millis(100);

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

/// Runs the program and reports `{exit_code, stdout, stderr, duration_ms}`.
pub(crate) async fn run(
    job_id: JobId,
    args: &CommandArgs,
    limits: RunLimits,
    cancel: CancellationToken,
    store: &Store,
) -> TaskResult {
    let started = Instant::now();
    let mut cmd = Command::new(args.program());
    cmd.args(&args.argv[1..])
        .envs(&args.env)
        .stdin(if args.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills the whole tree, not just the leader.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &args.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        // Missing program, bad cwd: running it again will not help.
        Err(e) => {
            return Err(JobError::permanent(format!(
                "could not start {:?}: {e}",
                args.program()
            )));
        }
    };
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);

    if let (Some(input), Some(mut stdin)) = (args.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            // A program that exits without reading its input is not an error of ours.
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }

    let (tx, rx) = mpsc::channel::<(LogStream, String)>(1024);
    let readers = [
        child
            .stdout
            .take()
            .map(|s| spawn_reader(s, LogStream::Stdout, tx.clone())),
        child
            .stderr
            .take()
            .map(|s| spawn_reader(s, LogStream::Stderr, tx.clone())),
    ];
    drop(tx);
    let logger = tokio::spawn(ship_logs(job_id, store.clone(), rx));

    let stop = tokio::select! {
        status = child.wait() => Ok(status),
        () = tokio::time::sleep(limits.timeout) => Err(Stop::TimedOut),
        () = cancel.cancelled() => Err(Stop::Cancelled),
    };
    let (status, stopped) = match stop {
        Ok(status) => (status, None),
        Err(why) => {
            terminate(pgid, &mut child, limits.kill_grace).await;
            (child.wait().await, Some(why))
        }
    };
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    let (stdout, stderr) = logger.await.unwrap_or_default();
    let exit_code = status
        .as_ref()
        .ok()
        .and_then(std::process::ExitStatus::code);
    let signal = status
        .as_ref()
        .ok()
        .and_then(std::os::unix::process::ExitStatusExt::signal);
    let result = json!({
        "exit_code": exit_code,
        "signal": signal,
        "stdout": stdout,
        "stderr": stderr,
        "duration_ms": started.elapsed().as_millis() as u64,
    });
    match (stopped, exit_code) {
        (Some(Stop::TimedOut), _) => Err(JobError::TimedOut {
            result: Some(result),
        }),
        (Some(Stop::Cancelled), _) => Err(JobError::Cancelled),
        (None, Some(0)) => Ok(result),
        (None, Some(code)) => Err(JobError::Retryable {
            message: format!("exited with code {code}"),
            after: None,
            result: Some(result),
        }),
        (None, None) => Err(JobError::Retryable {
            message: format!("killed by signal {}", signal.unwrap_or(0)),
            after: None,
            result: Some(result),
        }),
    }
}

/// SIGTERM to the process group, then SIGKILL after the grace period.
async fn terminate(pgid: Option<Pid>, child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            // The leader is gone; make sure no member of its group outlives it.
            let _ = killpg(pgid, Signal::SIGKILL);
            return;
        }
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    let _ = child.start_kill();
}

fn spawn_reader<R>(
    source: R,
    stream: LogStream,
    tx: mpsc::Sender<(LogStream, String)>,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(source).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send((stream, line)).await.is_err() {
                break;
            }
        }
    })
}

/// Writes lines to the job's log in batches; returns the tails of stdout and stderr.
async fn ship_logs(
    job_id: JobId,
    store: Store,
    mut rx: mpsc::Receiver<(LogStream, String)>,
) -> (String, String) {
    let mut tails = (Tail::default(), Tail::default());
    let mut batch: Vec<(LogStream, String)> = Vec::new();
    let mut tick = tokio::time::interval(LOG_FLUSH);
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some((stream, text)) => {
                    match stream {
                        LogStream::Stderr => tails.1.push(&text),
                        _ => tails.0.push(&text),
                    }
                    batch.push((stream, text));
                    if batch.len() >= LOG_BATCH {
                        flush(job_id, &store, &mut batch).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => flush(job_id, &store, &mut batch).await,
        }
    }
    flush(job_id, &store, &mut batch).await;
    (tails.0.text, tails.1.text)
}

async fn flush(job_id: JobId, store: &Store, batch: &mut Vec<(LogStream, String)>) {
    // Keep runs of one stream together so each run is one pipelined call.
    while !batch.is_empty() {
        let stream = batch[0].0;
        let run = batch.iter().take_while(|(s, _)| *s == stream).count();
        let lines: Vec<String> = batch.drain(..run).map(|(_, l)| l).collect();
        if let Err(error) = store.append_log(job_id, stream, &lines).await {
            tracing::warn!(%job_id, %error, "could not write job log lines");
        }
    }
}

/// The last [`TAIL_BYTES`] of an output.
#[derive(Default)]
struct Tail {
    text: String,
}

impl Tail {
    fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > TAIL_BYTES {
            let mut cut = self.text.len() - TAIL_BYTES;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_end() {
        let mut tail = Tail::default();
        for i in 0..10_000 {
            tail.push(&format!("line {i}"));
        }
        assert!(tail.text.len() <= TAIL_BYTES);
        assert!(tail.text.ends_with("line 9999\n"));
    }
}
