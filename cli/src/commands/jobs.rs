//! `warren status | wait | ls | logs | cancel`.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
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
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "succeeded" | "failed" | "timed_out" | "cancelled"
        )
    }

    pub(crate) fn to_json(&self) -> Value {
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
    if !job.is_terminal() {
        match &job.pending_reason {
            Some(reason) => println!("waiting:  {reason}"),
            None if job.state == "queued" => {
                println!("waiting:  for the scheduler to place it");
            }
            None => {}
        }
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
pub(crate) struct LogPage {
    pub(crate) lines: Vec<LogLine>,
}

#[derive(Deserialize)]
pub(crate) struct LogLine {
    pub(crate) id: String,
    pub(crate) stream: String,
    pub(crate) line: String,
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
