//! Compares the policies in the simulator on the standard traces: prints the Markdown tables
//! of `docs/scheduling.md` and renders its plots to `docs/img/sched-*.png`.
//!
//! `cargo run -p warren-scheduler --example policy_plots --release [-- --write-traces DIR]`
//!
//! With `--write-traces DIR` it also writes the traces as JSONL files (`uniform.jsonl`,
//! `heavy.jsonl`, `bursty.jsonl`) for `warren simulate`.
//!
//! Text is drawn with DejaVu Sans from the `dejavu` crate (plotters' `ab_glyph` backend), so
//! the plots render the same everywhere, without system fonts or fontconfig.
#![expect(clippy::print_stdout, reason = "an example prints its tables")]

use std::path::{Path, PathBuf};

mod plots;

use anyhow::{Context as _, anyhow};
use plotters::style::{FontStyle, RGBColor};
use warren_scheduler::policy::{PolicyConfig, Preset};
use warren_scheduler::simulate::{Outcome, TraceJob, WorkerSpec, simulate, traces};

const POLICIES: [Preset; 5] = [
    Preset::Fifo,
    Preset::Priority,
    Preset::Sjf,
    Preset::Fair,
    Preset::RoundRobin,
];

pub(crate) const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

struct Workload {
    name: &'static str,
    file: &'static str,
    about: &'static str,
    slots: u32,
    trace: Vec<TraceJob>,
}

fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "uniform",
            file: "uniform",
            about: "5,000 jobs, runtimes uniform 0.5–1.5 s, Poisson arrivals at 90 % load, 4 slots, seed 1",
            slots: 4,
            trace: traces::uniform(1, 5000, 4, 0.9),
        },
        Workload {
            name: "heavy-tailed",
            file: "heavy",
            about: "5,000 jobs, Pareto runtimes (shape 1.5, from 0.2 s, cap 10 min), Poisson arrivals at 90 % load, 4 slots, seed 2",
            slots: 4,
            trace: traces::heavy_tailed(2, 5000, 4, 0.9),
        },
        Workload {
            name: "multi-tenant bursty",
            file: "bursty",
            about: "300 s on 8 slots, seed 3: `steady` (Poisson, 1 s jobs, half the pool), `bursty` (160 jobs of 0.5 s at once every minute), `batch` (40 jobs of 5 s at 30 s and 150 s); about 85 % load; equal weights",
            slots: 8,
            trace: traces::multi_tenant_bursty(3, 8, 300),
        },
    ]
}

fn main() -> anyhow::Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow!("the DejaVu font does not load"))?;
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/img"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let args: Vec<String> = std::env::args().collect();
    let traces_dir = args
        .iter()
        .position(|a| a == "--write-traces")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    for workload in workloads() {
        if let Some(traces_dir) = &traces_dir {
            write_trace(
                &traces_dir.join(format!("{}.jsonl", workload.file)),
                &workload.trace,
            )?;
        }
        let outcomes = POLICIES
            .iter()
            .map(|preset| {
                let workers = [WorkerSpec::slots(workload.slots)];
                simulate(&PolicyConfig::preset(*preset), &workers, &workload.trace)
                    .with_context(|| format!("{preset} on {}", workload.name))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        println!("### {}\n\n{}.\n", workload.name, workload.about);
        table(&outcomes);
        if workload.file == "bursty" {
            // Fair share with a short memory, next to the preset's hour: the preset also
            // evens out usage from before the burst.
            let short = PolicyConfig {
                half_life_s: 30,
                ..PolicyConfig::preset(Preset::Fair)
            };
            let workers = [WorkerSpec::slots(workload.slots)];
            let mut all = outcomes.clone();
            all.push(simulate(&short, &workers, &workload.trace)?);
            tenant_table(&all);
            let path = dir.join("sched-bursty-shares.png");
            plots::shares(&path, &[&outcomes[0], &outcomes[3], &all[5]])?;
            println!("![cores in use per tenant](img/sched-bursty-shares.png)\n");
        }
        if workload.file == "uniform" {
            let path = dir.join("sched-priority-wait.png");
            plots::priority(&path, &outcomes)?;
            priority_table(&outcomes);
            println!("![mean wait by priority](img/sched-priority-wait.png)\n");
        }
        let path = dir.join(format!("sched-{}-response.png", workload.file));
        plots::cdf(&path, workload.name, &outcomes)?;
        println!(
            "![response time distribution, {}](img/sched-{}-response.png)\n",
            workload.name, workload.file
        );
    }
    backfill_table()?;
    Ok(())
}

fn write_trace(path: &Path, trace: &[TraceJob]) -> anyhow::Result<()> {
    let mut text = String::new();
    for job in trace {
        text.push_str(&serde_json::to_string(job)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn table(outcomes: &[Outcome]) {
    println!(
        "| policy | mean response | p95 response | mean wait | max wait | makespan | utilisation | Jain |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        let s = &o.summary;
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.1} s | {:.1} s | {:.1} % | {:.3} |",
            label(o),
            s.mean_response_ms / 1000.0,
            s.p95_response_ms as f64 / 1000.0,
            s.mean_wait_ms / 1000.0,
            s.max_wait_ms as f64 / 1000.0,
            s.makespan_ms as f64 / 1000.0,
            s.utilisation * 100.0,
            s.jain
        );
    }
    println!();
}

/// The policy's name, and its half-life when not the preset's.
pub(crate) fn label(outcome: &Outcome) -> String {
    let preset = outcome.policy.preset;
    if outcome.policy.half_life_s == PolicyConfig::preset(preset).half_life_s {
        format!("`{preset}`")
    } else {
        format!("`{preset}`, half-life {} s", outcome.policy.half_life_s)
    }
}

fn tenant_table(outcomes: &[Outcome]) {
    let Some(first) = outcomes.first() else {
        return;
    };
    let names: Vec<&str> = first.tenants.iter().map(|t| t.tenant.as_str()).collect();
    let header: Vec<String> = names
        .iter()
        .map(|n| format!("`{n}` fair ratio / mean response"))
        .collect();
    println!("| policy | {} | Jain |", header.join(" | "));
    println!("|---|{}---|", "---|".repeat(names.len()));
    for o in outcomes {
        let cells: Vec<String> = o
            .tenants
            .iter()
            .map(|t| format!("{:.2} / {:.2} s", t.fair_ratio, t.mean_response_ms / 1000.0))
            .collect();
        println!(
            "| {} | {} | {:.3} |",
            label(o),
            cells.join(" | "),
            o.summary.jain
        );
    }
    println!(
        "\nFair ratio: resource-time a tenant received ÷ what its weight entitled it to, over the moments when two or more tenants had jobs waiting ({:.1} s of the run under `fifo`; the tenants waiting then are entitled to what they hold together, split by weight). Jain's index is over these ratios.\n",
        first.summary.contended_ms as f64 / 1000.0
    );
}

/// The big job of the backfill scenario (see the simulator's tests) with and without
/// backfill, and without the small jobs at all.
fn backfill_table() -> anyhow::Result<()> {
    let worker: WorkerSpec = "cpu=4,slots=4".parse()?;
    let mut small: Vec<TraceJob> = (0..80)
        .map(|n| TraceJob::new(format!("s{n}"), n * 250, 1000).cpu(1))
        .collect();
    let base = vec![
        TraceJob::new("long", 0, 10_000).cpu(1),
        TraceJob::new("big", 1000, 5000).cpu(4),
    ];
    small.extend(base.iter().cloned());
    small.sort_by_key(|j| j.arrival_ms);
    println!(
        "### Backfill\n\nOne worker with 4 cores; a 1-core job runs 0–10 s; a 4-core job (5 s) arrives at 1 s; 80 1-core jobs of 1 s arrive every 0.25 s from 0 s. `fifo`.\n"
    );
    println!("| run | big job starts | utilisation | mean response of the small jobs | makespan |");
    println!("|---|---|---|---|---|");
    for (name, trace, backfill) in [
        ("no small jobs", &base, true),
        ("backfill on", &small, true),
        ("backfill off", &small, false),
    ] {
        let config = PolicyConfig {
            backfill,
            ..PolicyConfig::preset(Preset::Fifo)
        };
        let o = simulate(&config, std::slice::from_ref(&worker), trace)?;
        let big = o.jobs.iter().find(|j| j.id == "big").context("big job")?;
        let smalls: Vec<u64> = o
            .jobs
            .iter()
            .filter(|j| j.id.starts_with('s'))
            .map(|j| j.response_ms())
            .collect();
        let small_mean = if smalls.is_empty() {
            "–".to_owned()
        } else {
            format!(
                "{:.2} s",
                smalls.iter().sum::<u64>() as f64 / smalls.len() as f64 / 1000.0
            )
        };
        println!(
            "| {name} | {:.1} s | {:.1} % | {small_mean} | {:.1} s |",
            big.start_ms as f64 / 1000.0,
            o.summary.utilisation * 100.0,
            o.summary.makespan_ms as f64 / 1000.0
        );
    }
    println!();
    Ok(())
}

/// Mean wait (ms) of the jobs of each priority level.
fn waits_by_priority(outcome: &Outcome) -> Vec<f64> {
    (0..=9u8)
        .map(|p| {
            let of: Vec<u64> = outcome
                .jobs
                .iter()
                .filter(|j| j.priority == p)
                .map(|j| j.wait_ms())
                .collect();
            of.iter().sum::<u64>() as f64 / of.len().max(1) as f64
        })
        .collect()
}

fn priority_table(outcomes: &[Outcome]) {
    println!("| policy | mean wait, priority 0 | 3 | 6 | 9 |");
    println!("|---|---|---|---|---|");
    for o in outcomes.iter().take(3) {
        let w = waits_by_priority(o);
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            label(o),
            w[0] / 1000.0,
            w[3] / 1000.0,
            w[6] / 1000.0,
            w[9] / 1000.0
        );
    }
    println!();
}
