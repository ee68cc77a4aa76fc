//! A worker with an application task next to the built-ins.
//!
//! ```sh
//! cargo run -p warren-worker --example custom_task -- --tags cpu
//! warren submit word_count --args '{"text": "to be or not to be"}' --wait
//! ```
use clap::Parser;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warren_kit::TelemetryArgs;
use warren_worker::{JobError, TaskContext, Worker, WorkerArgs};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

/// Counts the words of `args.text`; a missing text is the caller's mistake, so no retry.
async fn word_count(ctx: TaskContext) -> Result<Value, JobError> {
    let Some(text) = ctx.args.get("text").and_then(Value::as_str) else {
        return Err(JobError::permanent("args.text must be a string"));
    };
    ctx.log(&[format!("counting {} bytes", text.len())]).await;
    Ok(json!({ "words": text.split_whitespace().count() }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    warren_kit::telemetry::init(&cli.telemetry);
    let shutdown = CancellationToken::new();
    warren_kit::shutdown::spawn_signal_listener(shutdown.clone())?;
    Worker::builder()
        .task("word_count", word_count)
        .build(cli.worker)
        .run(shutdown)
        .await
}
