use clap::Parser;
use tokio_util::sync::CancellationToken;
use warren_kit::TelemetryArgs;
use warren_scheduler::SchedulerArgs;

/// The Warren scheduler: orders jobs and releases them to worker pools.
#[derive(Debug, Parser)]
#[command(name = "warren-scheduler", version)]
struct Cli {
    #[command(flatten)]
    scheduler: SchedulerArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = warren_kit::cli::parse().unwrap_or_else(|error| error.exit());
    warren_kit::telemetry::init(&cli.telemetry);
    let shutdown = CancellationToken::new();
    warren_kit::shutdown::spawn_signal_listener(shutdown.clone())?;
    warren_scheduler::run(cli.scheduler, shutdown).await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
