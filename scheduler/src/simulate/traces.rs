//! Seeded generators of the standard workloads the policies are compared on. The same seed
//! gives the same trace, so tests and `docs/scheduling.md` can quote exact figures.
//!
//! Every generated job gets a priority drawn uniformly from 0–9, so the `priority` preset
//! has something to act on, and an exact runtime estimate unless said otherwise.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::trace::TraceJob;

/// Draws from an exponential distribution with the given mean.
fn exponential(rng: &mut StdRng, mean: f64) -> f64 {
    // 1 − u is in (0, 1], so the logarithm is finite.
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// Draws from a Pareto distribution (scale `min`, shape `alpha`), capped at `cap`.
fn pareto(rng: &mut StdRng, min: f64, alpha: f64, cap: f64) -> f64 {
    (min / (1.0 - rng.random::<f64>()).powf(1.0 / alpha)).min(cap)
}

/// Poisson arrivals at a rate that keeps `slots` slots `load` busy (on average) with jobs
/// whose mean runtime is `mean_runtime_ms`, each runtime drawn by `runtime`.
fn poisson(
    seed: u64,
    prefix: &str,
    jobs: usize,
    slots: u32,
    load: f64,
    mean_runtime_ms: f64,
    mut runtime: impl FnMut(&mut StdRng) -> f64,
) -> Vec<TraceJob> {
    let mut rng = StdRng::seed_from_u64(seed);
    let gap_ms = mean_runtime_ms / (load * f64::from(slots));
    let mut now = 0.0;
    (0..jobs)
        .map(|n| {
            now += exponential(&mut rng, gap_ms);
            let runtime_ms = runtime(&mut rng).round().max(1.0) as u64;
            let priority = rng.random_range(0..=9u8);
            TraceJob::new(format!("{prefix}{n}"), now as u64, runtime_ms).priority(priority)
        })
        .collect()
}

/// Runtimes uniform in 0.5–1.5 s (mean 1 s), Poisson arrivals at `load` of `slots`.
pub fn uniform(seed: u64, jobs: usize, slots: u32, load: f64) -> Vec<TraceJob> {
    poisson(seed, "u", jobs, slots, load, 1000.0, |rng| {
        rng.random_range(500.0..1500.0)
    })
}

/// Mean of the capped Pareto runtimes of [`heavy_tailed`], for the arrival rate.
const HEAVY_MEAN_MS: f64 = 560.0;

/// Pareto runtimes (shape 1.5, from 0.2 s, capped at 10 min; mean ≈ 0.56 s, most jobs
/// short, a few very long), Poisson arrivals at `load` of `slots`.
pub fn heavy_tailed(seed: u64, jobs: usize, slots: u32, load: f64) -> Vec<TraceJob> {
    poisson(seed, "h", jobs, slots, load, HEAVY_MEAN_MS, |rng| {
        pareto(rng, 200.0, 1.5, 600_000.0)
    })
}

/// Three tenants over `duration_s` seconds on `slots` slots: `steady` submits a Poisson
/// stream of 1 s jobs at half the capacity; `bursty` drops 20 jobs per slot (0.5 s each)
/// at once every minute; `batch` submits 5 jobs per slot of 5 s at 30 s and 150 s. About
/// 85 % load on average, but each burst overloads the pool for a while, and then the
/// policy decides who waits.
pub fn multi_tenant_bursty(seed: u64, slots: u32, duration_s: u64) -> Vec<TraceJob> {
    let mut rng = StdRng::seed_from_u64(seed);
    let end_ms = duration_s * 1000;
    let mut jobs = Vec::new();
    let mut now = 0.0;
    let gap_ms = 1000.0 / (0.5 * f64::from(slots));
    loop {
        now += exponential(&mut rng, gap_ms);
        if now as u64 >= end_ms {
            break;
        }
        let runtime_ms = exponential(&mut rng, 1000.0).round().max(1.0) as u64;
        let priority = rng.random_range(0..=9u8);
        let id = format!("s{}", jobs.len());
        jobs.push(
            TraceJob::new(id, now as u64, runtime_ms)
                .tenant("steady")
                .priority(priority),
        );
    }
    for burst in 0..duration_s.div_ceil(60) {
        for n in 0..20 * slots {
            let at = burst * 60_000 + 5_000 + u64::from(n) * 10;
            let runtime_ms = exponential(&mut rng, 500.0).round().max(1.0) as u64;
            let priority = rng.random_range(0..=9u8);
            let id = format!("b{burst}-{n}");
            jobs.push(
                TraceJob::new(id, at, runtime_ms)
                    .tenant("bursty")
                    .priority(priority),
            );
        }
    }
    for (batch, at) in [30_000u64, 150_000].into_iter().enumerate() {
        if at >= end_ms {
            continue;
        }
        for n in 0..5 * slots {
            let runtime_ms = exponential(&mut rng, 5000.0).round().max(1.0) as u64;
            let priority = rng.random_range(0..=9u8);
            let id = format!("c{batch}-{n}");
            jobs.push(
                TraceJob::new(id, at, runtime_ms)
                    .tenant("batch")
                    .priority(priority),
            );
        }
    }
    jobs.sort_by_key(|j| j.arrival_ms);
    jobs
}

/// `jobs_each` jobs of `runtime_ms` for each tenant, all submitted at time 0 (interleaved
/// in the trace): a pool saturated by every tenant at once.
pub fn saturating(tenants: &[&str], jobs_each: usize, runtime_ms: u64) -> Vec<TraceJob> {
    (0..jobs_each)
        .flat_map(|n| {
            tenants
                .iter()
                .map(move |t| TraceJob::new(format!("{t}{n}"), 0, runtime_ms).tenant(*t))
        })
        .collect()
}
