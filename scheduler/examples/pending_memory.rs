//! The policy core's memory with 1,000,000 pending jobs across 1,000 tenants: resident set
//! size (VmRSS, Linux) before and after adding them, and the time that took.
//!
//! `cargo run --release --example pending_memory -p warren-scheduler [-- JOBS]`
#![expect(clippy::print_stdout, reason = "an example prints its measurement")]

use std::time::Instant;

use anyhow::Context as _;
use warren_protocol::{JobId, Requirements};
use warren_scheduler::policy::{JobClass, PendingJob, PolicyConfig, Preset, Scheduler, TaskNeed};

/// Resident set size in KiB, from /proc/self/status.
fn rss_kib() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    line.split_whitespace()
        .nth(1)
        .context("VmRSS has no value")?
        .parse()
        .context("VmRSS is not a number")
}

fn main() -> anyhow::Result<()> {
    let jobs: usize = match std::env::args().nth(1) {
        Some(raw) => raw.parse().context("JOBS must be a whole number")?,
        None => 1_000_000,
    };
    let tenants = 1_000;
    let classes: Vec<JobClass> = (0..tenants)
        .map(|t| JobClass {
            tenant: format!("tenant-{t}"),
            queue: "default".into(),
            requires: Requirements::default(),
            task: TaskNeed::Builtin("noop".into()),
        })
        .collect();
    let before = rss_kib()?;
    let started = Instant::now();
    let mut scheduler = Scheduler::new(PolicyConfig::preset(Preset::Fair));
    for n in 0..jobs {
        let job = PendingJob {
            id: JobId::new(),
            arrival_ms: n as u64,
            priority: (n % 10) as u8,
            est_ms: 1000 + (n % 7919) as u64,
        };
        scheduler.add(&classes[n % tenants], job);
    }
    let elapsed = started.elapsed();
    let after = rss_kib()?;
    let grown = after.saturating_sub(before);
    println!(
        "{} pending jobs across {tenants} tenants: VmRSS {:.1} MiB before, {:.1} MiB after (+{:.1} MiB, {:.0} bytes a job); added in {:.2} s ({:.0} jobs/s)",
        scheduler.pending_count(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        grown as f64 / 1024.0,
        grown as f64 * 1024.0 / jobs.max(1) as f64,
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
