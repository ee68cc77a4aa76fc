//! What a simulation is judged by: response times, makespan, utilisation, and how the
//! resource-time was shared among tenants while they competed for it.
//!
//! Resource-time is counted in the units fair share charges ([`usage_units`]: cores, at
//! least one per job, plus 4 per GPU), so "share" here is what the policy aims at.
//!
//! [`usage_units`]: crate::policy::class::usage_units

use std::collections::BTreeMap;

use serde::Serialize;

use crate::policy::PolicyConfig;

/// One job's fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobOutcome {
    /// Its id in the trace.
    pub id: String,
    /// Whose job.
    pub tenant: String,
    /// Its priority.
    pub priority: u8,
    /// When it arrived (ms).
    pub arrival_ms: u64,
    /// When it started (ms).
    pub start_ms: u64,
    /// When it ended (ms).
    pub completion_ms: u64,
    /// Resource units it held while running.
    pub units: f64,
    /// The worker it ran on (`w{spec}-{n}`: the n-th worker of the spec-th `--worker`).
    pub worker: String,
}

impl JobOutcome {
    /// From arrival to completion.
    pub fn response_ms(&self) -> u64 {
        self.completion_ms - self.arrival_ms
    }

    /// From arrival to start.
    pub fn wait_ms(&self) -> u64 {
        self.start_ms - self.arrival_ms
    }
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Jobs run.
    pub jobs: usize,
    /// Mean of completion − arrival (ms).
    pub mean_response_ms: f64,
    /// 95th percentile (nearest rank) of completion − arrival (ms).
    pub p95_response_ms: u64,
    /// Mean of start − arrival (ms).
    pub mean_wait_ms: f64,
    /// Longest start − arrival (ms).
    pub max_wait_ms: u64,
    /// From the first arrival to the last completion (ms).
    pub makespan_ms: u64,
    /// Resource-time used over resource-time offered across the makespan (0–1).
    pub utilisation: f64,
    /// Jain's index over tenants of received ÷ entitled resource-time while they competed
    /// (see [`TenantShare::fair_ratio`]): 1 is perfectly weighted-fair, 1/n is one tenant
    /// taking everything. 1 when tenants never competed.
    pub jain: f64,
    /// How long at least two tenants had jobs waiting at once (ms): the time fairness is
    /// measured over.
    pub contended_ms: u64,
    /// How long every tenant had jobs waiting at once (ms): the saturated period over which
    /// [`TenantShare::share`] is measured.
    pub saturated_ms: u64,
}

/// One tenant's use against its weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantShare {
    /// The tenant.
    pub tenant: String,
    /// Its configured weight.
    pub weight: f64,
    /// Its weight over the sum of the weights of the trace's tenants.
    pub weight_share: f64,
    /// Its jobs.
    pub jobs: usize,
    /// Resource-seconds it used over the whole run.
    pub resource_s: f64,
    /// Its fraction of the resource-time used while every tenant had jobs waiting (0 when
    /// that never happened).
    pub share: f64,
    /// Resource-time it received while it and at least one other tenant had jobs waiting,
    /// over what its weight entitled it to then: at each moment the tenants with jobs
    /// waiting are entitled to what they hold together, split by their weights. 1 is its
    /// fair share exactly; 1 also when it never competed.
    pub fair_ratio: f64,
    /// Its mean response time (ms).
    pub mean_response_ms: f64,
}

/// Computes the summary and the per-tenant shares. `capacity` is what all workers offer,
/// in resource units.
pub(crate) fn measure(
    jobs: &[JobOutcome],
    capacity: f64,
    policy: &PolicyConfig,
) -> (Summary, Vec<TenantShare>) {
    let mut responses: Vec<u64> = jobs.iter().map(JobOutcome::response_ms).collect();
    responses.sort_unstable();
    let first = jobs.iter().map(|j| j.arrival_ms).min().unwrap_or(0);
    let last = jobs.iter().map(|j| j.completion_ms).max().unwrap_or(0);
    let makespan_ms = last - first;
    let used: f64 = jobs
        .iter()
        .map(|j| (j.completion_ms - j.start_ms) as f64 * j.units)
        .sum();
    let offered = capacity * makespan_ms as f64;
    let competition = compete(jobs, policy);
    let ratios: Vec<f64> = competition.tenants.iter().map(|t| t.fair_ratio).collect();
    let summary = Summary {
        jobs: jobs.len(),
        mean_response_ms: mean(responses.iter().map(|r| *r as f64)),
        p95_response_ms: percentile(&responses, 0.95),
        mean_wait_ms: mean(jobs.iter().map(|j| j.wait_ms() as f64)),
        max_wait_ms: jobs.iter().map(JobOutcome::wait_ms).max().unwrap_or(0),
        makespan_ms,
        utilisation: if offered > 0.0 { used / offered } else { 0.0 },
        jain: jain(&ratios),
        contended_ms: competition.contended_ms,
        saturated_ms: competition.saturated_ms,
    };
    (summary, competition.tenants)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Jain's fairness index: (Σx)² / (n·Σx²); 1 for no values or all zero.
pub fn jain(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || squares == 0.0 {
        return 1.0;
    }
    sum * sum / (values.len() as f64 * squares)
}

struct Competition {
    tenants: Vec<TenantShare>,
    contended_ms: u64,
    saturated_ms: u64,
}

/// Sweeps the run once, tracking per tenant the jobs waiting and the units running. Only
/// while tenants have jobs waiting do they compete, so only then is a share the policy's
/// doing rather than a tenant's lack of work.
fn compete(jobs: &[JobOutcome], policy: &PolicyConfig) -> Competition {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for job in jobs {
        let next = names.len();
        names.entry(&job.tenant).or_insert(next);
    }
    let n = names.len();
    let weights: Vec<f64> = {
        let mut w = vec![1.0; n];
        for (name, &i) in &names {
            w[i] = policy.tenant_weight(name);
        }
        w
    };
    // (time, tenant, change in jobs waiting, change in units running).
    let mut events: Vec<(u64, usize, i64, f64)> = Vec::with_capacity(jobs.len() * 3);
    for job in jobs {
        let t = names[job.tenant.as_str()];
        if job.start_ms > job.arrival_ms {
            events.push((job.arrival_ms, t, 1, 0.0));
            events.push((job.start_ms, t, -1, 0.0));
        }
        if job.completion_ms > job.start_ms {
            events.push((job.start_ms, t, 0, job.units));
            events.push((job.completion_ms, t, 0, -job.units));
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let mut waiting = vec![0i64; n];
    let mut running = vec![0.0f64; n];
    let mut received = vec![0.0f64; n];
    let mut entitled = vec![0.0f64; n];
    let mut saturated = vec![0.0f64; n];
    let (mut contended_ms, mut saturated_ms) = (0u64, 0u64);
    let mut i = 0;
    while i < events.len() {
        let now = events[i].0;
        while i < events.len() && events[i].0 == now {
            let (_, t, dw, du) = events[i];
            waiting[t] += dw;
            running[t] += du;
            i += 1;
        }
        let Some(&(next, ..)) = events.get(i) else {
            break;
        };
        let dt = (next - now) as f64;
        let backlogged: Vec<usize> = (0..n).filter(|&t| waiting[t] > 0).collect();
        if backlogged.len() < 2 {
            continue;
        }
        contended_ms += next - now;
        let held: f64 = backlogged.iter().map(|&t| running[t]).sum();
        let weight: f64 = backlogged.iter().map(|&t| weights[t]).sum();
        for &t in &backlogged {
            received[t] += running[t] * dt;
            entitled[t] += held * weights[t] / weight * dt;
        }
        if backlogged.len() == n {
            saturated_ms += next - now;
            for t in 0..n {
                saturated[t] += running[t] * dt;
            }
        }
    }
    let total_weight: f64 = weights.iter().sum();
    let total_saturated: f64 = saturated.iter().sum();
    let mut count = vec![0usize; n];
    let mut unit_ms = vec![0.0f64; n];
    let mut response_ms = vec![0.0f64; n];
    for job in jobs {
        let t = names[job.tenant.as_str()];
        count[t] += 1;
        unit_ms[t] += (job.completion_ms - job.start_ms) as f64 * job.units;
        response_ms[t] += job.response_ms() as f64;
    }
    let tenants: Vec<TenantShare> = names
        .iter()
        .map(|(name, &t)| TenantShare {
            tenant: (*name).to_owned(),
            weight: weights[t],
            weight_share: weights[t] / total_weight,
            jobs: count[t],
            resource_s: unit_ms[t] / 1000.0,
            share: if total_saturated > 0.0 {
                saturated[t] / total_saturated
            } else {
                0.0
            },
            fair_ratio: if entitled[t] > 0.0 {
                received[t] / entitled[t]
            } else {
                1.0
            },
            mean_response_ms: response_ms[t] / count[t] as f64,
        })
        .collect();
    Competition {
        tenants,
        contended_ms,
        saturated_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tenant: &str, arrival_ms: u64, start_ms: u64, completion_ms: u64) -> JobOutcome {
        JobOutcome {
            id: format!("{tenant}{arrival_ms}"),
            tenant: tenant.into(),
            priority: 4,
            arrival_ms,
            start_ms,
            completion_ms,
            units: 1.0,
            worker: "w0-0".into(),
        }
    }

    #[test]
    fn jain_and_percentiles() {
        assert_eq!(jain(&[1.0, 1.0, 1.0]), 1.0);
        assert!((jain(&[1.0, 0.0, 0.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95), 10);
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5), 5);
    }

    #[test]
    fn fairness_counts_only_while_tenants_compete() {
        // a waits over [0, 10) and b over [5, 20): they compete over [5, 10), while a job
        // of a holds the one unit; b is entitled to half of it then.
        let jobs = [
            job("a", 0, 0, 10),
            job("a", 0, 10, 12),
            job("b", 5, 20, 21),
            job("a", 30, 30, 31),
        ];
        let c = compete(&jobs, &PolicyConfig::default());
        assert_eq!((c.contended_ms, c.saturated_ms), (5, 5));
        assert_eq!(c.tenants[0].fair_ratio, 2.0);
        assert_eq!(c.tenants[1].fair_ratio, 0.0);
        assert_eq!(c.tenants[0].share, 1.0);
    }
}
