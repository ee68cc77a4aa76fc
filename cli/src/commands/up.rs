//! `warren up`: the submitter, the scheduler, N workers and the dashboard in one process, for
//! local use and for tests that want the whole system without containers.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use warren_dashboard::DashboardArgs;
use warren_kit::TelemetryArgs;
use warren_scheduler::{PolicyArgs, SchedulerArgs};
use warren_submitter::{Rate, SecurityArgs, SubmitterArgs};
use warren_worker::{Worker, WorkerArgs};

/// Run the whole system in this process.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Worker settings (also the connections, namespace and drain grace of every service).
    #[command(flatten)]
    worker: WorkerArgs,
    /// Logging of every service.
    #[command(flatten)]
    pub(crate) telemetry: TelemetryArgs,
    /// How many workers to run.
    #[arg(long, env = "WARREN_WORKERS", default_value_t = 2)]
    workers: usize,
    /// Address the HTTP API listens on (port 0 picks a free one; the address is printed).
    #[arg(long, env = "WARREN_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Address the dashboard listens on (port 0 picks a free one; the address is printed).
    #[arg(long, env = "WARREN_DASHBOARD_ADDR", default_value = "127.0.0.1:8081")]
    dashboard_addr: SocketAddr,
    /// Bearer tokens of the API and the dashboard (see the submitter's README). Without one,
    /// `warren up` serves without authentication, for local use, and says so loudly at start.
    #[arg(long, env = "WARREN_TOKENS_FILE")]
    tokens_file: Option<std::path::PathBuf>,
    /// Most submissions per tenant, e.g. 100/s (unlimited when unset).
    #[arg(long, env = "WARREN_TENANT_SUBMIT_RATE")]
    tenant_submit_rate: Option<Rate>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "WARREN_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Longest a request may take.
    #[arg(long, env = "WARREN_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Intake messages the scheduler takes at once on their way into the pending index.
    #[arg(long, env = "WARREN_PREFETCH", default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..))]
    prefetch: u16,
    /// Scheduling policy, weights and limits.
    #[command(flatten)]
    policy: PolicyArgs,
}

pub(crate) async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(args.workers <= 256, "--workers must be at most 256");
    let common = args.worker.common.clone();
    let submitter = SubmitterArgs {
        http_addr: args.http_addr,
        max_body_bytes: args.max_body_bytes,
        request_timeout: args.request_timeout,
        // The scheduler runs in this same process.
        ready_requires_scheduler: true,
        // Local use by default: no tokens unless a file is given (the submitter logs a
        // warning when auth is off).
        security: SecurityArgs {
            no_auth: args.tokens_file.is_none(),
            tokens_file: args.tokens_file.clone(),
            tenant_submit_rate: args.tenant_submit_rate,
            ..SecurityArgs::no_auth()
        },
        common: common.clone(),
    };
    let scheduler = SchedulerArgs {
        common: common.clone(),
        prefetch: args.prefetch,
        policy: args.policy.clone(),
        leader_ttl: Duration::from_secs(5),
        // The submitter's /metrics shows every service of this one process.
        metrics: warren_kit::MetricsArgs { metrics_addr: None },
        lifecycle: warren_scheduler::LifecycleArgs::default(),
    };
    let state = warren_submitter::build_state(&submitter).await?;
    let listener = tokio::net::TcpListener::bind(submitter.http_addr)
        .await
        .with_context(|| {
            format!(
                "binding {} (is another Warren running? try --http-addr)",
                submitter.http_addr
            )
        })?;
    let addr = listener.local_addr()?;
    let dashboard = DashboardArgs {
        http_addr: args.dashboard_addr,
        request_timeout: args.request_timeout,
        // The same tokens as the API: a token signs in to both.
        auth: warren_kit::auth::AuthArgs {
            tokens_file: args.tokens_file.clone(),
            no_auth: args.tokens_file.is_none(),
        },
        common: common.clone(),
    };
    let dashboard_state = warren_dashboard::build_state(&dashboard).await?;
    let dashboard_listener = tokio::net::TcpListener::bind(dashboard.http_addr)
        .await
        .with_context(|| {
            format!(
                "binding {} (is another Warren running? try --dashboard-addr)",
                dashboard.http_addr
            )
        })?;
    let dashboard_addr = dashboard_listener.local_addr()?;

    let stop = shutdown.child_token();
    let mut services = JoinSet::new();
    services.spawn(named(
        "submitter",
        warren_submitter::serve(listener, state, stop.clone()),
    ));
    services.spawn(named(
        "dashboard",
        warren_dashboard::serve(dashboard_listener, dashboard_state, stop.clone()),
    ));
    services.spawn(named(
        "scheduler",
        warren_scheduler::run(scheduler, stop.clone()),
    ));
    for i in 0..args.workers {
        let worker = Worker::builder().build(args.worker.clone());
        services.spawn(named_owned(format!("worker {i}"), worker.run(stop.clone())));
    }
    info!(
        api = %format!("http://{addr}"),
        dashboard = %format!("http://{dashboard_addr}"),
        namespace = %common.namespace,
        workers = args.workers,
        pool = %args.worker.tags,
        slots = args.worker.slots,
        "warren is up"
    );
    // Machine-readable line for scripts and tests that start `warren up --http-addr 127.0.0.1:0`.
    println!("warren up: api http://{addr}");
    println!("warren up: dashboard http://{dashboard_addr}");

    let mut failure = None;
    while let Some(done) = services.join_next().await {
        let (name, result) = done.context("a service task panicked")?;
        match result {
            Ok(()) if stop.is_cancelled() => {}
            Ok(()) => {
                failure.get_or_insert_with(|| anyhow::anyhow!("{name} stopped unexpectedly"));
                stop.cancel();
            }
            Err(e) => {
                error!(service = %name, error = format!("{e:#}"), "service failed; stopping the rest");
                failure.get_or_insert(e.context(format!("{name} failed")));
                stop.cancel();
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

async fn named(
    name: &'static str,
    fut: impl Future<Output = anyhow::Result<()>>,
) -> (String, anyhow::Result<()>) {
    (name.to_owned(), fut.await)
}

async fn named_owned(
    name: String,
    fut: impl Future<Output = anyhow::Result<()>>,
) -> (String, anyhow::Result<()>) {
    (name, fut.await)
}
