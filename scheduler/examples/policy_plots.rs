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

use anyhow::{Context as _, anyhow};
use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;
use plotters::style::FontStyle;
use warren_scheduler::policy::{PolicyConfig, Preset};
use warren_scheduler::simulate::{Outcome, TraceJob, WorkerSpec, simulate, traces};

const POLICIES: [Preset; 5] = [
    Preset::Fifo,
    Preset::Priority,
    Preset::Sjf,
    Preset::Fair,
    Preset::RoundRobin,
];

const COLOURS: [RGBColor; 5] = [
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
            shares_plot(&path, &[&outcomes[0], &outcomes[3], &all[5]])?;
            println!("![cores in use per tenant](img/sched-bursty-shares.png)\n");
        }
        if workload.file == "uniform" {
            let path = dir.join("sched-priority-wait.png");
            priority_plot(&path, &outcomes)?;
            priority_table(&outcomes);
            println!("![mean wait by priority](img/sched-priority-wait.png)\n");
        }
        let path = dir.join(format!("sched-{}-response.png", workload.file));
        cdf_plot(&path, workload.name, &outcomes)?;
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
fn label(outcome: &Outcome) -> String {
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

/// Cumulative distribution of response times, one line per policy, log time axis.
fn cdf_plot(path: &Path, name: &str, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut all: Vec<Vec<f64>> = outcomes
        .iter()
        .map(|o| {
            o.jobs
                .iter()
                .map(|j| (j.response_ms().max(1)) as f64 / 1000.0)
                .collect()
        })
        .collect();
    let max = all.iter().flatten().copied().fold(1.0f64, f64::max);
    let min = all.iter().flatten().copied().fold(max, f64::min).max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Response time, {name} trace"), ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((min..max * 1.2).log_scale(), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("response time (s, log scale)")
        .y_desc("fraction of jobs")
        .label_style(("sans-serif", 15))
        .draw()?;
    let one_tenant = outcomes.first().is_some_and(|o| o.tenants.len() == 1);
    for ((values, outcome), colour) in all.iter_mut().zip(outcomes).zip(COLOURS) {
        // With one tenant `fair` orders as `priority` and `round-robin` as `fifo`: their
        // lines would hide the others.
        if one_tenant && matches!(outcome.policy.preset, Preset::Fair | Preset::RoundRobin) {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len() as f64;
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (*v, (i + 1) as f64 / n))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(outcome.policy.preset.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| anyhow!("drawing the legend: {e}"))?;
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

/// Mean wait per priority level under each policy.
fn priority_plot(path: &Path, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let waits: Vec<Vec<(f64, f64)>> = outcomes
        .iter()
        .map(|o| {
            waits_by_priority(o)
                .into_iter()
                .enumerate()
                .map(|(p, w)| (p as f64, w / 1000.0))
                .collect()
        })
        .collect();
    let top = waits
        .iter()
        .flatten()
        .map(|(_, w)| *w)
        .fold(0.1f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Mean wait by priority, uniform trace", ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..9f64, 0f64..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("job priority (0–9)")
        .y_desc("mean wait (s)")
        .label_style(("sans-serif", 15))
        .draw()?;
    for ((points, outcome), colour) in waits.into_iter().zip(outcomes).zip(COLOURS) {
        if matches!(outcome.policy.preset, Preset::Fair | Preset::RoundRobin) {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(outcome.policy.preset.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// Width of the bins of the shares plot (s).
const BIN_S: u64 = 5;

/// Cores in use per tenant over time, one panel per outcome.
fn shares_plot(path: &Path, outcomes: &[&Outcome]) -> anyhow::Result<()> {
    let panels = u32::try_from(outcomes.len())?;
    let root = BitMapBackend::new(path, (600 * panels, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, outcome) in root
        .split_evenly((1, outcomes.len()))
        .into_iter()
        .zip(outcomes)
    {
        let end_s = outcome.summary.makespan_ms / 1000 + 1;
        // The pool has 8 cores: the most any tenant can hold.
        let top = 8.0;
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("Cores per tenant: {}", label(outcome).replace('`', "")),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..end_s as f64, 0f64..top + 0.5)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("cores")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (tenant, colour) in outcome.tenants.iter().zip(COLOURS) {
            // Mean cores in use over 5 s bins: the per-instant count flickers too fast to read.
            let points: Vec<(f64, f64)> = (0..end_s.div_ceil(BIN_S))
                .map(|bin| {
                    let (from, to) = (bin * BIN_S * 1000, (bin + 1) * BIN_S * 1000);
                    let unit_ms: f64 = outcome
                        .jobs
                        .iter()
                        .filter(|j| j.tenant == tenant.tenant)
                        .map(|j| {
                            let overlap =
                                j.completion_ms.min(to).saturating_sub(j.start_ms.max(from));
                            overlap as f64 * j.units
                        })
                        .sum();
                    ((from + to) as f64 / 2000.0, unit_ms / (to - from) as f64)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(tenant.tenant.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
