//! `warren workers`: the live workers.

use clap::Args;
use serde_json::Value;
use warren_protocol::{Heartbeat, now_ms};

use crate::client::Api;

/// List live workers.
#[derive(Debug, Args)]
pub(crate) struct WorkersArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(api: &Api, args: WorkersArgs) -> anyhow::Result<bool> {
    let body: Value = api.get("/v1/workers").await?;
    let list = body.get("workers").cloned().unwrap_or(body);
    if args.json {
        println!("{list}");
        return Ok(true);
    }
    let workers: Vec<Heartbeat> = serde_json::from_value(list)?;
    println!(
        "{:<32}  {:<16}  {:>9}  {:>5}  {:>4}  {:>6}  {:>5}  SEEN",
        "WORKER", "POOL", "BUSY", "CPU", "GPU", "MEM", "LOAD"
    );
    for w in &workers {
        println!(
            "{:<32}  {:<16}  {:>4}/{:<4}  {:>5}  {:>4}  {:>6}  {:>5.2}  {}s ago",
            w.worker_id.as_str(),
            w.pool.to_string(),
            w.busy,
            w.slots,
            w.resources.cpu,
            w.resources.gpus,
            w.resources.mem_mb,
            w.load1,
            now_ms().saturating_sub(w.sent_at_ms) / 1000
        );
    }
    if workers.is_empty() {
        println!("(no live workers)");
    }
    Ok(true)
}
