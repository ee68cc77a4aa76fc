use clap::Parser;
use tokio_util::sync::CancellationToken;
use warren_kit::TelemetryArgs;
use warren_worker::WorkerArgs;

/// A Warren worker: runs the jobs of one pool.
#[derive(Debug, Parser)]
#[command(name = "warren-worker", version)]
struct Cli {
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = warren_kit::cli::parse().unwrap_or_else(|error| error.exit());
    warren_kit::telemetry::init(&cli.telemetry);
    let shutdown = CancellationToken::new();
    warren_kit::shutdown::spawn_signal_listener(shutdown.clone())?;
    warren_worker::run(cli.worker, shutdown).await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
