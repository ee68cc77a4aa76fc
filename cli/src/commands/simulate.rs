//! `warren simulate`: runs a trace through the scheduler's policy core on a virtual clock
//! (no RabbitMQ, no Redis, no waiting) and reports when each job would start and end.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, stdin};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use warren_scheduler::policy::config::parse_pairs;
use warren_scheduler::policy::{PolicyConfig, Preset};
use warren_scheduler::simulate::{Report, WorkerSpec, read_trace, simulate};

/// Simulate a policy on a trace.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The trace: one JSON object a line, `{"id", "arrival_ms", "runtime_ms"}` and optionally
    /// `estimated_runtime_ms`, `tenant`, `priority`, `queue`, `requires`; `-` reads stdin.
    trace: PathBuf,
    /// The policy.
    #[arg(long, default_value = "fifo")]
    policy: Preset,
    /// One worker with this many slots and a core per slot.
    #[arg(long)]
    slots: Option<u32>,
    /// A worker, e.g. `cpu=8,mem_mb=32000,gpus=1,slots=4,tags=gpu+cuda12,count=2`
    /// (repeatable; cores default to one per slot).
    #[arg(long = "worker", value_name = "SPEC")]
    workers: Vec<WorkerSpec>,
    /// Tenant weights for fair share, e.g. `a=1,b=2` (absent tenants weigh 1).
    #[arg(long, value_name = "TENANT=WEIGHT,...", value_parser = parse_pairs::<f64>)]
    tenant_weight: Option<BTreeMap<String, f64>>,
    /// Milliseconds of waiting one priority level is worth (the preset's when absent).
    #[arg(long)]
    priority_weight_ms: Option<u64>,
    /// Half-life of fair-share usage, in seconds.
    #[arg(long)]
    half_life_s: Option<u64>,
    /// Do not let smaller jobs run ahead of a job that holds a reservation.
    #[arg(long)]
    no_backfill: bool,
    /// Print one JSON document (`jobs`, `summary`, `tenants`).
    #[arg(long)]
    json: bool,
    /// Print only the summary, not a line per job.
    #[arg(long)]
    summary_only: bool,
}

pub(crate) fn run(args: SimulateArgs) -> anyhow::Result<bool> {
    let trace = if args.trace.as_os_str() == "-" {
        read_trace(stdin().lock())
    } else {
        let file =
            File::open(&args.trace).with_context(|| format!("opening {}", args.trace.display()))?;
        read_trace(BufReader::new(file))
    }
    .with_context(|| format!("reading {}", args.trace.display()))?;
    let mut policy = PolicyConfig::preset(args.policy);
    if let Some(weights) = args.tenant_weight {
        policy.tenant_weights = weights;
    }
    if let Some(weight) = args.priority_weight_ms {
        policy.priority_weight_ms = weight;
    }
    if let Some(half_life) = args.half_life_s {
        policy.half_life_s = half_life;
    }
    policy.backfill = !args.no_backfill;
    let mut workers = args.workers;
    if let Some(slots) = args.slots {
        workers.push(WorkerSpec::slots(slots));
    }
    let outcome = simulate(&policy, &workers, &trace)?;
    let report = Report::new(&outcome, !args.summary_only);
    if args.json {
        println!("{}", report.json()?);
    } else {
        print!("{report}");
    }
    Ok(true)
}
