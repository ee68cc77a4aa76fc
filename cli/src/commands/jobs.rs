//! `warren status | wait | ls | logs | cancel`.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::Value;

use crate::client::Api;

/// The fields of a job record the CLI shows (the API returns more; `--json` prints all).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JobView {
    pub(crate) id: String,
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) attempt: u32,
    #[serde(default)]
    pub(crate) pool: Option<String>,
    #[serde(default)]
    pub(crate) worker: Option<String>,
    #[serde(default)]
    pub(crate) pending_reason: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<String>,
    #[serde(default)]
    pub(crate) exit_code: Option<i64>,
    #[serde(default)]
    pub(crate) result: Option<Value>,
    #[serde(default)]
    pub(crate) created_ms: u64,
    #[serde(default)]
    pub(crate) updated_ms: u64,
    #[serde(default)]
    pub(crate) spec: Value,
    #[serde(flatten)]
    pub(crate) rest: serde_json::Map<String, Value>,
}

impl JobView {
    fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "succeeded" | "failed" | "timed_out" | "cancelled"
        )
    }

    fn to_json(&self) -> Value {
        let mut map = self.rest.clone();
        map.insert("id".into(), Value::from(self.id.clone()));
        map.insert("state".into(), Value::from(self.state.clone()));
        map.insert("attempt".into(), Value::from(self.attempt));
        map.insert("spec".into(), self.spec.clone());
        map.insert("created_ms".into(), Value::from(self.created_ms));
        map.insert("updated_ms".into(), Value::from(self.updated_ms));
        for (key, value) in [
            ("pool", self.pool.clone().map(Value::from)),
            ("worker", self.worker.clone().map(Value::from)),
            (
                "pending_reason",
                self.pending_reason.clone().map(Value::from),
            ),
            ("error", self.error.clone().map(Value::from)),
            ("exit_code", self.exit_code.map(Value::from)),
            ("result", self.result.clone()),
        ] {
            if let Some(value) = value {
                map.insert(key.into(), value);
            }
        }
        Value::Object(map)
    }
}

pub(crate) fn print_job(job: &JobView, json: bool) {
    if json {
        println!("{}", job.to_json());
        return;
    }
    let task = job.spec.get("task").and_then(Value::as_str).unwrap_or("?");
    println!("id:       {}", job.id);
    println!("task:     {task}");
    println!("state:    {}", job.state);
    println!("attempt:  {}", job.attempt);
    if let Some(pool) = &job.pool {
        println!("pool:     {pool}");
    }
    if let Some(worker) = &job.worker {
        println!("worker:   {worker}");
    }
    if let Some(reason) = &job.pending_reason {
        println!("waiting:  {reason}");
    }
    if let Some(code) = job.exit_code {
        println!("exit:     {code}");
    }
    if let Some(error) = &job.error {
        println!("error:    {error}");
    }
    if let Some(result) = &job.result {
        println!("result:   {result}");
    }
}

/// Show one job.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Job id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn status(api: &Api, args: StatusArgs) -> anyhow::Result<bool> {
    let job: JobView = api.get(&format!("/v1/jobs/{}", args.id)).await?;
    print_job(&job, args.json);
    Ok(true)
}

/// Wait for jobs to finish; exits non-zero unless all succeeded.
#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// Job ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Give up after this long (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Print JSON, one job a line.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn wait(api: &Api, args: WaitArgs) -> anyhow::Result<bool> {
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut all_ok = true;
    for id in &args.ids {
        let job = wait_one(api, id, deadline).await?;
        if args.json {
            println!("{}", job.to_json());
        } else {
            let detail = job.error.clone().unwrap_or_default();
            println!("{id} {} {detail}", job.state);
        }
        all_ok &= job.state == "succeeded";
    }
    Ok(all_ok)
}

/// Long-polls until the job is terminal (or the deadline passes: then returns it as is).
pub(crate) async fn wait_one(
    api: &Api,
    id: &str,
    deadline: Option<Instant>,
) -> anyhow::Result<JobView> {
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let poll = left.map_or(30, |l| l.as_secs().clamp(1, 30));
        let job: JobView = api
            .get_query(
                &format!("/v1/jobs/{id}/wait"),
                &[("timeout_s", poll)],
                Some(Duration::from_secs(poll + 10)),
            )
            .await?;
        if job.is_terminal() || left.is_some_and(|l| l.is_zero()) {
            return Ok(job);
        }
    }
}

pub(crate) async fn wait_with_spinner(api: &Api, id: &str) -> anyhow::Result<JobView> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_message(format!("waiting for {id}"));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let job = wait_one(api, id, None).await;
    spinner.finish_and_clear();
    job
}

/// List jobs, newest first.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Only jobs in this state.
    #[arg(long)]
    state: Option<String>,
    /// Only this tenant's jobs.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this queue's jobs.
    #[arg(long)]
    queue: Option<String>,
    /// How many.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct JobPage {
    jobs: Vec<JobView>,
    #[serde(default)]
    next_cursor: Option<String>,
}

pub(crate) async fn ls(api: &Api, args: LsArgs) -> anyhow::Result<bool> {
    let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    for (key, value) in [
        ("state", &args.state),
        ("tenant", &args.tenant),
        ("queue", &args.queue),
        ("cursor", &args.cursor),
    ] {
        if let Some(value) = value {
            query.push((key, value.clone()));
        }
    }
    let page: JobPage = api.get_query("/v1/jobs", &query, None).await?;
    if args.json {
        let jobs: Vec<Value> = page.jobs.iter().map(JobView::to_json).collect();
        println!(
            "{}",
            serde_json::json!({ "jobs": jobs, "next_cursor": page.next_cursor })
        );
        return Ok(true);
    }
    println!(
        "{:<36}  {:<10}  {:<12}  {:<8}  {:<12}  POOL (or why it waits)",
        "ID", "STATE", "TASK", "ATTEMPT", "TENANT"
    );
    for job in &page.jobs {
        let task = job.spec.get("task").and_then(Value::as_str).unwrap_or("?");
        let tenant = job
            .spec
            .get("tenant")
            .and_then(Value::as_str)
            .unwrap_or("?");
        println!(
            "{:<36}  {:<10}  {:<12}  {:<8}  {:<12}  {}",
            job.id,
            job.state,
            task,
            job.attempt,
            tenant,
            job.pool
                .as_deref()
                .or(job.pending_reason.as_deref())
                .unwrap_or("-")
        );
    }
    if let Some(cursor) = page.next_cursor {
        println!("(more: --cursor {cursor})");
    }
    Ok(true)
}

/// Show a job's log.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Job id.
    id: String,
    /// Keep printing new lines until the job finishes.
    #[arg(long, short = 'F')]
    follow: bool,
}

#[derive(Deserialize)]
struct LogPage {
    lines: Vec<LogLine>,
}

#[derive(Deserialize)]
struct LogLine {
    id: String,
    stream: String,
    line: String,
}

pub(crate) async fn logs(api: &Api, args: LogsArgs) -> anyhow::Result<bool> {
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("limit", "1000".to_owned())];
        if let Some(after) = &after {
            query.push(("after", after.clone()));
        }
        let page: LogPage = api
            .get_query(&format!("/v1/jobs/{}/logs", args.id), &query, None)
            .await?;
        for line in &page.lines {
            if line.stream == "stderr" {
                eprintln!("{}", line.line);
            } else {
                println!("{}", line.line);
            }
        }
        let got = page.lines.len();
        if let Some(last) = page.lines.last() {
            after = Some(last.id.clone());
        }
        if got == 1000 {
            continue;
        }
        if !args.follow {
            return Ok(true);
        }
        let job: JobView = api.get(&format!("/v1/jobs/{}", args.id)).await?;
        if job.is_terminal() && got == 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Cancel a job (queued, waiting or running).
#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    /// Job id.
    id: String,
}

pub(crate) async fn cancel(api: &Api, args: CancelArgs) -> anyhow::Result<bool> {
    let job: JobView = api
        .post(
            &format!("/v1/jobs/{}/cancel", args.id),
            &serde_json::json!({}),
        )
        .await
        .with_context(|| format!("cancelling {}", args.id))?;
    println!("{} {}", job.id, job.state);
    Ok(true)
}
