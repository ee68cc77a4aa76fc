//! `warren submit`: build a job spec from flags (or a JSON file) and send it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use warren_protocol::JobSpec;

use crate::client::Api;
use crate::commands::wait::{self, EXIT_CODES_HELP};

/// Submit a job.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub(crate) struct SubmitArgs {
    /// Task to run: `command`, `noop`, `sleep`, `echo`, `fail`, `sha256` or a registered task.
    /// With `command`, the program and its arguments follow `--`.
    task: Option<String>,
    /// Program and arguments of a `command` job (after `--`).
    #[arg(last = true)]
    argv: Vec<String>,
    /// Read the whole job spec (JSON, as for POST /v1/jobs) from this file (`-` = stdin).
    /// Flags given as well override its fields.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Task arguments as JSON, e.g. '{"ms": 500}'.
    #[arg(long)]
    args: Option<String>,
    /// Logical queue.
    #[arg(long)]
    queue: Option<String>,
    /// Tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Priority, 0 (lowest) to 9.
    #[arg(long, short = 'p')]
    priority: Option<u8>,
    /// Required tag (repeat for several): the job runs only on pools with all of them.
    #[arg(long = "tag", short = 't')]
    tags: Vec<String>,
    /// CPU cores needed.
    #[arg(long)]
    cpu: Option<u32>,
    /// Memory needed (MiB).
    #[arg(long)]
    mem_mb: Option<u64>,
    /// GPUs needed.
    #[arg(long)]
    gpus: Option<u32>,
    /// Timeout of one attempt, in seconds.
    #[arg(long)]
    timeout_s: Option<u64>,
    /// Run no sooner than this many seconds from now (held durably in the delay ladder).
    #[arg(long)]
    delay_s: Option<u64>,
    /// Fail the job if it is not placed within this many seconds (no worker can run it, or
    /// none has room).
    #[arg(long)]
    schedule_timeout_s: Option<u64>,
    /// Attempts before the job fails for good.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Estimated run time in milliseconds (for shortest-job-first).
    #[arg(long)]
    estimated_runtime_ms: Option<u64>,
    /// Label KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Environment variable KEY=VALUE for a `command` job (repeatable).
    #[arg(long = "env", value_parser = parse_label)]
    env: Vec<(String, String)>,
    /// Wait until the job has finished, with a spinner that shows why it still waits; then
    /// print a `command` job's output (the record for other tasks) and exit with the job's
    /// status (see below).
    #[arg(long, short = 'w')]
    wait: bool,
    /// Print JSON instead of text (with --wait: the whole job record).
    #[arg(long)]
    json: bool,
}

fn parse_label(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {raw:?}"))
}

impl SubmitArgs {
    /// Tells whether the command waits for the job (and so passes its exit code through).
    pub(crate) fn waits(&self) -> bool {
        self.wait
    }

    /// Builds the JSON spec; the API validates it (one source of truth for the rules).
    fn spec(&self) -> anyhow::Result<Value> {
        let mut spec = match &self.file {
            Some(path) => read_spec(path)?,
            None => json!({}),
        };
        let Some(obj) = spec.as_object_mut() else {
            bail!("the job file must hold a JSON object");
        };
        if let Some(task) = &self.task {
            obj.insert("task".into(), json!(task));
        }
        if !obj.contains_key("task") {
            bail!(
                "name a task: `warren submit noop`, `warren submit command -- echo hi`, or --file spec.json"
            );
        }
        if let Some(raw) = &self.args {
            let args: Value = serde_json::from_str(raw)
                .with_context(|| format!("--args is not valid JSON: {raw}"))?;
            obj.insert("args".into(), args);
        }
        if !self.argv.is_empty() || !self.env.is_empty() {
            let args = obj.entry("args").or_insert_with(|| json!({}));
            let Some(args) = args.as_object_mut() else {
                bail!("--args must be an object when a command line or --env is given");
            };
            if !self.argv.is_empty() {
                args.insert("argv".into(), json!(self.argv));
            }
            if !self.env.is_empty() {
                let env: BTreeMap<_, _> = self.env.iter().cloned().collect();
                args.insert("env".into(), json!(env));
            }
        }
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                obj.insert(key.to_owned(), value);
            }
        };
        set("queue", self.queue.as_ref().map(|v| json!(v)));
        set("tenant", self.tenant.as_ref().map(|v| json!(v)));
        set("priority", self.priority.map(|v| json!(v)));
        set("timeout_s", self.timeout_s.map(|v| json!(v)));
        set("delay_s", self.delay_s.map(|v| json!(v)));
        set(
            "schedule_timeout_s",
            self.schedule_timeout_s.map(|v| json!(v)),
        );
        set("max_attempts", self.max_attempts.map(|v| json!(v)));
        set(
            "estimated_runtime_ms",
            self.estimated_runtime_ms.map(|v| json!(v)),
        );
        if !self.labels.is_empty() {
            let labels: BTreeMap<_, _> = self.labels.iter().cloned().collect();
            set("labels", Some(json!(labels)));
        }
        if !self.tags.is_empty()
            || self.cpu.is_some()
            || self.mem_mb.is_some()
            || self.gpus.is_some()
        {
            let requires = obj.entry("requires").or_insert_with(|| json!({}));
            if let Some(req) = requires.as_object_mut() {
                if !self.tags.is_empty() {
                    req.insert("tags".into(), json!(self.tags));
                }
                for (key, value) in [
                    ("cpu", self.cpu.map(u64::from)),
                    ("mem_mb", self.mem_mb),
                    ("gpus", self.gpus.map(u64::from)),
                ] {
                    if let Some(value) = value {
                        req.insert(key.into(), json!(value));
                    }
                }
            }
        }
        Ok(spec)
    }
}

fn read_spec(path: &PathBuf) -> anyhow::Result<Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the job spec from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the job spec {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

pub(crate) async fn run(api: &Api, args: SubmitArgs) -> anyhow::Result<u8> {
    let spec = args.spec()?;
    // Catch typos locally with the same rules the API applies, for a faster, clearer message.
    if let Ok(parsed) = serde_json::from_value::<JobSpec>(spec.clone())
        && let Err(error) = parsed.validate()
        && warren_protocol::BUILTIN_TASKS.contains(&parsed.task.as_str())
    {
        bail!("invalid job: {error}");
    }
    let accepted: Value = api.post("/v1/jobs", &spec).await?;
    let id = accepted
        .get("id")
        .and_then(Value::as_str)
        .context("the API answered without a job id")?
        .to_owned();
    // A warning (no live worker could run it now) goes to stderr: stdout stays the id.
    for warning in accepted
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(message) = warning.get("message").and_then(Value::as_str) {
            eprintln!("warning: {message}");
        }
    }
    if !args.wait {
        if args.json {
            println!("{accepted}");
        } else {
            println!("{id}");
        }
        return Ok(0);
    }
    let job = wait::wait_with_spinner(api, &id).await?;
    wait::print_finished(api, &job, args.json).await?;
    Ok(wait::exit_code(&job))
}
