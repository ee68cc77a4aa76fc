//! `warren`: submit and watch jobs, run the whole system (`warren up`), benchmark it.
#![expect(
    clippy::print_stdout,
    reason = "a command-line tool prints its answers"
)]

mod client;
mod commands;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use warren_kit::args::LogFormat;

use crate::commands::{admin, bench, dead, jobs, simulate, submit, up, wait, workers};

/// Where the client commands find the API when neither `--url` nor `WARREN_URL` says.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Warren: a job system on RabbitMQ and Redis.
#[derive(Debug, Parser)]
#[command(name = "warren", version)]
struct Cli {
    /// Base URL of the Warren API (the submitter) for the client commands [default:
    /// http://127.0.0.1:8080]. Also accepted after the subcommand.
    #[arg(long, env = "WARREN_URL")]
    url: Option<String>,
    /// Bearer token for the API, when it requires one. Also accepted after the subcommand.
    #[arg(long, env = "WARREN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Log format of `warren up` (kept here for `warren --log-format json up`; prefer
    /// `warren up --log-format`).
    #[arg(long, value_enum, hide = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// The API URL of one client command. Each client command carries its own `--url` (instead of
/// one `global` flag) so that `warren up --help` does not list a flag it ignores.
#[derive(Debug, Args)]
struct ClientArgs {
    /// Base URL of the Warren API (the submitter); overrides `WARREN_URL` [default:
    /// http://127.0.0.1:8080].
    #[arg(long = "url", id = "client_url", value_name = "URL")]
    url: Option<String>,
    /// Bearer token for the API; overrides `WARREN_TOKEN`.
    #[arg(long = "token", id = "client_token", value_name = "TOKEN")]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit a job (with --wait: wait, print its output, exit with its status).
    Submit {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: Box<submit::SubmitArgs>,
    },
    /// Show a job, and why it waits if it does.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: jobs::StatusArgs,
    },
    /// Wait for jobs to finish; a `command` job's output and exit code pass through.
    Wait {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: wait::WaitArgs,
    },
    /// List jobs, newest first.
    Ls {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: jobs::LsArgs,
    },
    /// Show a job's output.
    Logs {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: jobs::LogsArgs,
    },
    /// Cancel a job.
    Cancel {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: jobs::CancelArgs,
    },
    /// List live workers: what each runs now, its tasks and its allow-list.
    Workers {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: workers::WorkersArgs,
    },
    /// Measure end-to-end throughput and latency of a running system.
    Bench {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: bench::BenchArgs,
    },
    /// Run submitter, scheduler and workers in this process.
    Up(Box<up::UpArgs>),
    /// Dead letters: list them, run a dead job again.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Operate on a deployment's RabbitMQ and Redis directly (not through the API).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Run a trace through a scheduling policy on a virtual clock.
    Simulate(simulate::SimulateArgs),
}

#[derive(Debug, Subcommand)]
enum DeadCommand {
    /// List dead letters (jobs whose attempts ran out, poison jobs, malformed messages) with
    /// their reason, newest first.
    Ls {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: dead::DeadLsArgs,
    },
    /// Run a dead job again: a new job with its spec, at attempt 1 (admin).
    Requeue {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: dead::DeadRequeueArgs,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Like `Cli::parse()`, but a bad value from an environment variable names the variable.
    let cli: Cli = match warren_kit::cli::parse() {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    // Commands that pass a job's exit code through report their own failures as 125, like
    // `docker run`, so that they cannot be taken for the job's code 2.
    let error_code = match &cli.command {
        Command::Submit { args, .. } if args.waits() => wait::code::WARREN_ERROR,
        Command::Wait { .. } => wait::code::WARREN_ERROR,
        _ => 2,
    };
    match dispatch(cli).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(error_code)
        }
    }
}

/// Runs the command; returns its exit status.
async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let base = cli.url;
    let base_token = cli.token;
    let api = |client: ClientArgs| {
        let url = client
            .url
            .or(base)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let token = client.token.or(base_token);
        client::Api::new(&url, token.as_deref())
    };
    let ok = |all_right: bool| u8::from(!all_right);
    match cli.command {
        Command::Up(mut args) => {
            if let Some(format) = cli.log_format {
                args.telemetry.log_format = format;
            }
            warren_kit::telemetry::init(&args.telemetry);
            let shutdown = CancellationToken::new();
            warren_kit::shutdown::spawn_signal_listener(shutdown.clone())?;
            up::run(*args, shutdown).await?;
            Ok(0)
        }
        Command::Simulate(args) => {
            // Pure computation, possibly long on a big trace: off the async threads.
            tokio::task::spawn_blocking(move || simulate::run(args))
                .await?
                .map(ok)
        }
        Command::Admin(command) => admin::run(command).await.map(ok),
        Command::Submit { client, args } => submit::run(&api(client)?, *args).await,
        Command::Status { client, args } => jobs::status(&api(client)?, args).await.map(ok),
        Command::Wait { client, args } => wait::wait(&api(client)?, args).await,
        Command::Ls { client, args } => jobs::ls(&api(client)?, args).await.map(ok),
        Command::Logs { client, args } => jobs::logs(&api(client)?, args).await.map(ok),
        Command::Cancel { client, args } => jobs::cancel(&api(client)?, args).await.map(ok),
        Command::Workers { client, args } => workers::run(&api(client)?, args).await.map(ok),
        Command::Dead(DeadCommand::Ls { client, args }) => {
            dead::ls(&api(client)?, args).await.map(ok)
        }
        Command::Dead(DeadCommand::Requeue { client, args }) => {
            dead::requeue(&api(client)?, args).await.map(ok)
        }
        Command::Bench { client, args } => bench::run(&api(client)?, args).await.map(ok),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["warren", "up", "--log-format", "json"]).unwrap();
        let Command::Up(args) = cli.command else {
            panic!("not up")
        };
        assert_eq!(args.telemetry.log_format, warren_kit::args::LogFormat::Json);
        assert!(Cli::try_parse_from(["warren", "--log-format", "json", "up"]).is_ok());
        let cli = Cli::try_parse_from(["warren", "status", "--url", "http://h:1", "x"]).unwrap();
        let Command::Status { client, .. } = cli.command else {
            panic!("not status")
        };
        assert_eq!(client.url.as_deref(), Some("http://h:1"));
        let cli = Cli::try_parse_from(["warren", "ls", "--token", "t0k"]).unwrap();
        let Command::Ls { client, .. } = cli.command else {
            panic!("not ls")
        };
        assert_eq!(client.token.as_deref(), Some("t0k"));
        assert!(Cli::try_parse_from(["warren", "--token", "t", "ls"]).is_ok());
        let cli = Cli::try_parse_from(["warren", "dead", "requeue", "x", "--token", "t"]).unwrap();
        let Command::Dead(super::DeadCommand::Requeue { client, .. }) = cli.command else {
            panic!("not dead requeue")
        };
        assert_eq!(client.token.as_deref(), Some("t"));
    }

    #[test]
    fn up_does_not_offer_the_client_url() {
        let mut command = Cli::command();
        let up = command.find_subcommand_mut("up").unwrap();
        let help = up.render_long_help().to_string();
        assert!(!help.contains("--url"), "{help}");
        assert!(help.contains("--log-format"), "{help}");
    }
}
