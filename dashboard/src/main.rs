//! `warren-dashboard`: Warren's web dashboard as a process.

use clap::Parser;
use tokio_util::sync::CancellationToken;
use warren_dashboard::DashboardArgs;
use warren_kit::TelemetryArgs;

/// Warren's web dashboard: live jobs, workers and scheduler, and Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "warren-dashboard", version, about)]
struct Cli {
    #[command(flatten)]
    dashboard: DashboardArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = warren_kit::cli::parse().unwrap_or_else(|error| error.exit());
    warren_kit::telemetry::init(&cli.telemetry);
    let shutdown = CancellationToken::new();
    warren_kit::shutdown::spawn_signal_listener(shutdown.clone())?;
    warren_dashboard::run(cli.dashboard, shutdown).await
}
