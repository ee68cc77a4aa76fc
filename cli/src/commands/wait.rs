//! `warren wait` and the waiting half of `warren submit --wait`: long-poll until jobs finish,
//! show why a job still waits, print a `command` job's output and turn the outcome into the
//! exit status (see [`exit_code`]).

use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::Api;
use crate::commands::jobs::{JobView, LogPage, print_job};

/// The exit statuses of `submit --wait` and `wait`, besides a `command` job's own code.
/// Documented in `--help` ([`EXIT_CODES_HELP`]) and in the README.
pub(crate) mod code {
    /// The job succeeded.
    pub(crate) const SUCCEEDED: u8 = 0;
    /// A job other than a `command` failed (or a command failed without an exit code).
    pub(crate) const FAILED: u8 = 1;
    /// `--timeout` passed and the job has not finished (it is still queued or running);
    /// sysexits' `EX_TEMPFAIL`: try again later.
    pub(crate) const UNFINISHED: u8 = 75;
    /// The job hit its own `timeout_s` (the convention of `timeout(1)`).
    pub(crate) const TIMED_OUT: u8 = 124;
    /// Warren itself failed: the API was unreachable or refused the job (as `docker run`).
    pub(crate) const WARREN_ERROR: u8 = 125;
    /// The job was cancelled.
    pub(crate) const CANCELLED: u8 = 126;
}

/// The exit-status table, for `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit status (as `docker run`, a `command` job's own code passes through):
  0        the job succeeded
  N        a `command` job whose program exited with N (1-255)
  128+S    a `command` job whose program was killed by signal S
  1        any other job failed
  75       --timeout passed before the job finished (it still waits or runs)
  124      the job ran into its own timeout (timeout_s)
  125      Warren failed: the API is unreachable or refused the job
  126      the job was cancelled
With several jobs, the status is the first one (in argument order) that is not 0.";

/// Maps a job as last seen to the exit status of the command that waited for it.
pub(crate) fn exit_code(job: &JobView) -> u8 {
    match job.state.as_str() {
        "succeeded" => code::SUCCEEDED,
        "failed" => command_code(job).unwrap_or(code::FAILED),
        "timed_out" => code::TIMED_OUT,
        "cancelled" => code::CANCELLED,
        _ => code::UNFINISHED,
    }
}

/// The code a failed `command` job's program gave: its exit code, or 128 + the signal that
/// killed it (as a shell reports it).
fn command_code(job: &JobView) -> Option<u8> {
    if !is_command(job) {
        return None;
    }
    let result = job.result.as_ref();
    let exit = job.exit_code.or_else(|| {
        result
            .and_then(|r| r.get("exit_code"))
            .and_then(Value::as_i64)
    });
    if let Some(exit) = exit {
        // A code of 0 on a failed job cannot come from the program; don't report success.
        return u8::try_from(exit).ok().filter(|c| *c != 0);
    }
    let signal = result
        .and_then(|r| r.get("signal"))
        .and_then(Value::as_i64)?;
    u8::try_from(128 + signal).ok()
}

fn is_command(job: &JobView) -> bool {
    job.spec.get("task").and_then(Value::as_str) == Some("command")
}

/// Wait for jobs to finish.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub(crate) struct WaitArgs {
    /// Job ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Give up after this long (e.g. 10m); the job's state and why it waits are printed.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Print the job records as JSON, one a line, instead of a `command` job's output.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn wait(api: &Api, args: WaitArgs) -> anyhow::Result<u8> {
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut status = code::SUCCEEDED;
    for id in &args.ids {
        let job = wait_one(api, id, deadline).await?;
        if args.json {
            println!("{}", job.to_json());
        } else if is_command(&job) && job.is_terminal() {
            print_output(api, &job).await?;
        } else {
            println!("{}", summary(&job));
        }
        if status == code::SUCCEEDED {
            status = exit_code(&job);
        }
    }
    Ok(status)
}

/// One line: `ID STATE`, then why it failed or why it still waits.
fn summary(job: &JobView) -> String {
    let mut line = format!("{} {}", job.id, job.state);
    if let Some(detail) = detail(job) {
        line.push_str(": ");
        line.push_str(&detail);
    }
    line
}

/// Why a job failed, or why it still waits.
fn detail(job: &JobView) -> Option<String> {
    if job.is_terminal() {
        return job.error.clone();
    }
    if let Some(reason) = &job.pending_reason {
        return Some(format!("waiting: {reason}"));
    }
    (job.state == "queued").then(|| "waiting for the scheduler to place it".to_owned())
}

/// Prints what a finished `command` job's program wrote, stdout to stdout and stderr to
/// stderr, from the job's log (the record only keeps the tails); then, unless it succeeded,
/// one line on stderr saying how it ended.
pub(crate) async fn print_output(api: &Api, job: &JobView) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    let mut printed = 0;
    loop {
        let mut query = vec![("limit", "1000".to_owned())];
        if let Some(after) = &after {
            query.push(("after", after.clone()));
        }
        let page: LogPage = api
            .get_query(&format!("/v1/jobs/{}/logs", job.id), &query, None)
            .await?;
        printed += page.lines.len();
        for line in &page.lines {
            if line.stream == "stderr" {
                eprintln!("{}", line.line);
            } else {
                println!("{}", line.line);
            }
        }
        match page.lines.last() {
            Some(last) if page.lines.len() == 1000 => after = Some(last.id.clone()),
            _ => break,
        }
    }
    if printed == 0 {
        // No log (it may have been trimmed or have expired): the tails in the result.
        let tail = |name: &str| {
            let result = job.result.as_ref()?;
            result.get(name).and_then(Value::as_str).map(str::to_owned)
        };
        if let Some(out) = tail("stdout") {
            print!("{out}");
        }
        if let Some(err) = tail("stderr") {
            eprint!("{err}");
        }
    }
    if job.state != "succeeded" {
        eprintln!("warren: {}", summary(job));
    }
    Ok(())
}

/// Long-polls until the job is terminal (or the deadline passes: then returns it as is).
pub(crate) async fn wait_one(
    api: &Api,
    id: &str,
    deadline: Option<Instant>,
) -> anyhow::Result<JobView> {
    wait_observed(api, id, deadline, 30, |_| {}).await
}

/// Like [`wait_one`], with long-polls of at most `poll_s` seconds and `observe` called with
/// the job after each one.
async fn wait_observed(
    api: &Api,
    id: &str,
    deadline: Option<Instant>,
    poll_s: u64,
    mut observe: impl FnMut(&JobView),
) -> anyhow::Result<JobView> {
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let poll = left.map_or(poll_s, |l| l.as_secs().clamp(1, poll_s));
        let job: JobView = api
            .get_query(
                &format!("/v1/jobs/{id}/wait"),
                &[("timeout_s", poll)],
                Some(Duration::from_secs(poll + 10)),
            )
            .await?;
        observe(&job);
        if job.is_terminal() || left.is_some_and(|l| l.is_zero()) {
            return Ok(job);
        }
    }
}

/// Waits with a spinner that shows the job's state and why it still waits; the long-polls
/// are short so that a new pending reason shows within a few seconds.
pub(crate) async fn wait_with_spinner(api: &Api, id: &str) -> anyhow::Result<JobView> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_message(format!("waiting for {id}"));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let job = wait_observed(api, id, None, 3, |job| {
        let message = match detail(job) {
            Some(detail) if !job.is_terminal() => format!("{id} {}: {detail}", job.state),
            _ => format!("{id} {}", job.state),
        };
        spinner.set_message(message);
    })
    .await;
    spinner.finish_and_clear();
    job
}

/// Prints a job `submit --wait` waited for: a `command` job's output (text mode) or the
/// record.
pub(crate) async fn print_finished(api: &Api, job: &JobView, json: bool) -> anyhow::Result<()> {
    if !json && is_command(job) {
        return print_output(api, job).await;
    }
    print_job(job, json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(task: &str, state: &str, extra: Value) -> JobView {
        let mut record = json!({"id": "j", "state": state, "spec": {"task": task}});
        if let (Some(record), Some(extra)) = (record.as_object_mut(), extra.as_object()) {
            record.extend(extra.clone());
        }
        serde_json::from_value(record).unwrap()
    }

    #[test]
    fn exit_codes_follow_the_table() {
        let none = json!({});
        assert_eq!(exit_code(&job("command", "succeeded", none.clone())), 0);
        assert_eq!(
            exit_code(&job("command", "failed", json!({"exit_code": 3}))),
            3
        );
        assert_eq!(
            exit_code(&job(
                "command",
                "failed",
                json!({"result": {"exit_code": null, "signal": 9}})
            )),
            137
        );
        assert_eq!(exit_code(&job("command", "failed", none.clone())), 1);
        assert_eq!(
            exit_code(&job("fail", "failed", json!({"exit_code": 3}))),
            1,
            "only a command's code passes through"
        );
        assert_eq!(exit_code(&job("sleep", "timed_out", none.clone())), 124);
        assert_eq!(exit_code(&job("sleep", "cancelled", none.clone())), 126);
        assert_eq!(exit_code(&job("sleep", "queued", none.clone())), 75);
        assert_eq!(exit_code(&job("sleep", "running", none)), 75);
    }

    #[test]
    fn unfinished_jobs_say_why_they_wait() {
        let waiting = job(
            "noop",
            "queued",
            json!({"pending_reason": "no pool offers tag \"gpu\""}),
        );
        assert_eq!(
            summary(&waiting),
            "j queued: waiting: no pool offers tag \"gpu\""
        );
        let fresh = job("noop", "queued", json!({}));
        assert_eq!(
            summary(&fresh),
            "j queued: waiting for the scheduler to place it"
        );
        let failed = job("fail", "failed", json!({"error": "boom"}));
        assert_eq!(summary(&failed), "j failed: boom");
        assert_eq!(summary(&job("noop", "succeeded", json!({}))), "j succeeded");
    }
}
