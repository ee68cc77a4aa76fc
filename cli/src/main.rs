//! `warren`: submit and watch jobs, run the whole system (`warren up`), benchmark it.
#![expect(
    clippy::print_stdout,
    reason = "a command-line tool prints its answers"
)]

mod client;
mod commands;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use warren_kit::TelemetryArgs;

use crate::commands::{bench, jobs, simulate, submit, up, workers};

/// Warren: a job system on RabbitMQ and Redis.
#[derive(Debug, Parser)]
#[command(name = "warren", version)]
struct Cli {
    /// Base URL of the Warren API (the submitter).
    #[arg(
        long,
        global = true,
        env = "WARREN_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit a job.
    Submit(submit::SubmitArgs),
    /// Show a job.
    Status(jobs::StatusArgs),
    /// Wait for jobs to finish (exit status 0 only if all succeeded).
    Wait(jobs::WaitArgs),
    /// List jobs, newest first.
    Ls(jobs::LsArgs),
    /// Show a job's output.
    Logs(jobs::LogsArgs),
    /// Cancel a job.
    Cancel(jobs::CancelArgs),
    /// List live workers.
    Workers(workers::WorkersArgs),
    /// Run submitter, scheduler and workers in this process.
    Up(Box<up::UpArgs>),
    /// Measure end-to-end throughput and latency of a running system.
    Bench(bench::BenchArgs),
    /// Run a trace through a scheduling policy on a virtual clock.
    Simulate(simulate::SimulateArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<bool> {
    if let Command::Up(args) = cli.command {
        warren_kit::telemetry::init(&cli.telemetry);
        let shutdown = CancellationToken::new();
        warren_kit::shutdown::spawn_signal_listener(shutdown.clone())?;
        up::run(*args, shutdown).await?;
        return Ok(true);
    }
    if let Command::Simulate(args) = cli.command {
        // Pure computation, possibly long on a big trace: off the async threads.
        return tokio::task::spawn_blocking(move || simulate::run(args)).await?;
    }
    let api = client::Api::new(&cli.url)?;
    match cli.command {
        Command::Submit(args) => submit::run(&api, args).await,
        Command::Status(args) => jobs::status(&api, args).await,
        Command::Wait(args) => jobs::wait(&api, args).await,
        Command::Ls(args) => jobs::ls(&api, args).await,
        Command::Logs(args) => jobs::logs(&api, args).await,
        Command::Cancel(args) => jobs::cancel(&api, args).await,
        Command::Workers(args) => workers::run(&api, args).await,
        Command::Bench(args) => bench::run(&api, args).await,
        Command::Up(_) | Command::Simulate(_) => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
