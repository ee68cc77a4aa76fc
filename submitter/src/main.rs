//! `warren-submitter`: Warren's HTTP API as a process.

use clap::Parser;
use tokio_util::sync::CancellationToken;
use warren_kit::TelemetryArgs;
use warren_submitter::SubmitterArgs;

/// Warren's HTTP API: accepts jobs and answers questions about them.
#[derive(Debug, Parser)]
#[command(name = "warren-submitter", version, about)]
struct Cli {
    #[command(flatten)]
    submitter: SubmitterArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A bad value from an environment variable names the variable, not only the flag.
    let cli: Cli = warren_kit::cli::parse().unwrap_or_else(|error| error.exit());
    warren_kit::telemetry::init(&cli.telemetry);
    let shutdown = CancellationToken::new();
    warren_kit::shutdown::spawn_signal_listener(shutdown.clone())?;
    warren_submitter::run(cli.submitter, shutdown).await
}
