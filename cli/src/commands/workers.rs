//! `warren workers`: the live workers, what each runs now (from the job records), its tasks
//! and its allow-list.

use clap::Args;
use serde::Deserialize;
use serde_json::Value;
use warren_protocol::now_ms;

use crate::client::Api;

/// List live workers.
#[derive(Debug, Args)]
pub(crate) struct WorkersArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The fields of `GET /v1/workers` the table shows. Read leniently (defaults everywhere),
/// so that a newer submitter's heartbeat does not break an older CLI.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkerRow {
    worker_id: String,
    pool: String,
    slots: u32,
    /// The heartbeat's count: a fallback for a submitter that does not send `running_jobs`.
    busy: u32,
    running_jobs: Option<Vec<String>>,
    resources: Resources,
    allowed_commands: Vec<String>,
    tasks: Vec<String>,
    load1: f64,
    sent_at_ms: u64,
    draining: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Resources {
    cpu: u32,
    mem_mb: u64,
    gpus: u32,
}

impl WorkerRow {
    /// Jobs it runs now: from the job records when the API gives them (current), else from
    /// the last heartbeat (up to an interval old).
    fn busy(&self) -> usize {
        self.running_jobs
            .as_ref()
            .map_or(self.busy as usize, Vec::len)
    }

    fn tasks(&self) -> String {
        if self.tasks.is_empty() {
            "built-ins".to_owned()
        } else {
            format!("built-ins,{}", self.tasks.join(","))
        }
    }

    fn allowed(&self) -> String {
        if self.allowed_commands.is_empty() {
            "(none)".to_owned()
        } else {
            self.allowed_commands.join(",")
        }
    }
}

pub(crate) async fn run(api: &Api, args: WorkersArgs) -> anyhow::Result<bool> {
    let body: Value = api.get("/v1/workers").await?;
    let list = body.get("workers").cloned().unwrap_or(body);
    if args.json {
        println!("{list}");
        return Ok(true);
    }
    let workers: Vec<WorkerRow> = serde_json::from_value(list)?;
    print!("{}", table(&workers, now_ms()));
    Ok(true)
}

fn table(workers: &[WorkerRow], now: u64) -> String {
    let mut out = format!(
        "{:<32}  {:<16}  {:>9}  {:>5}  {:>4}  {:>6}  {:>5}  {:>8}  {:<20}  ALLOWED COMMANDS\n",
        "WORKER", "POOL", "BUSY", "CPU", "GPU", "MEM", "LOAD", "SEEN", "TASKS"
    );
    for w in workers {
        let busy = format!("{}/{}", w.busy(), w.slots);
        let seen = format!("{}s ago", now.saturating_sub(w.sent_at_ms) / 1000);
        let name = if w.draining {
            format!("{} (draining)", w.worker_id)
        } else {
            w.worker_id.clone()
        };
        out.push_str(&format!(
            "{name:<32}  {:<16}  {busy:>9}  {:>5}  {:>4}  {:>6}  {:>5.2}  {seen:>8}  {:<20}  {}\n",
            w.pool,
            w.resources.cpu,
            w.resources.gpus,
            w.resources.mem_mb,
            w.load1,
            w.tasks(),
            w.allowed(),
        ));
    }
    if workers.is_empty() {
        out.push_str("(no live workers)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn busy_comes_from_the_records_and_tasks_and_allow_lists_show() {
        let rows: Vec<WorkerRow> = serde_json::from_value(json!([{
            "worker_id": "w1", "pool": "cpu", "slots": 4, "busy": 0,
            "running_jobs": ["a", "b"],
            "resources": {"cpu": 1, "mem_mb": 1024, "gpus": 0},
            "allowed_commands": ["echo", "sleep"], "tasks": ["word_count"],
            "sent_at_ms": 1_000
        }]))
        .unwrap();
        let table = table(&rows, 3_000);
        assert!(table.contains("2/4"), "{table}");
        assert!(table.contains("built-ins,word_count"), "{table}");
        assert!(table.contains("echo,sleep"), "{table}");
        assert!(table.contains("2s ago"), "{table}");
    }

    #[test]
    fn an_older_api_falls_back_to_the_heartbeat() {
        let row: WorkerRow = serde_json::from_value(json!({"busy": 3, "slots": 4})).unwrap();
        assert_eq!(row.busy(), 3);
        assert_eq!(row.allowed(), "(none)");
    }
}
