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

/// A set of disjoint time intervals, `[from, to)` in ms, sorted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Window {
    /// The intervals.
    pub intervals: Vec<(u64, u64)>,
}

impl Window {
    /// Total length (ms).
    pub fn span_ms(&self) -> u64 {
        self.intervals.iter().map(|(a, b)| b - a).sum()
    }

    /// Resource-time (unit-ms) of `job` that falls inside the window.
    fn overlap(&self, job: &JobOutcome) -> f64 {
        let first = self
            .intervals
            .partition_point(|(_, to)| *to <= job.start_ms);
        let inside: u64 = self.intervals[first..]
            .iter()
            .take_while(|(from, _)| *from < job.completion_ms)
            .map(|(from, to)| to.min(&job.completion_ms) - from.max(&job.start_ms))
            .sum();
        inside as f64 * job.units
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
    /// Jain's index over tenants of (share of resource-time ÷ share of weight), measured
    /// over [`Summary::fairness_window`]: 1 is perfectly weighted-fair, 1/n is one tenant
    /// taking everything.
    pub jain: f64,
    /// When every tenant had a job waiting (all of them competing): the period shares and
    /// Jain's index are measured over. The whole run when there was no such moment.
    pub fairness_window: Window,
    /// Whether the fairness window is the whole run because tenants never all competed.
    pub fairness_over_whole_run: bool,
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
    /// Its fraction of the resource-time used inside the fairness window.
    pub share: f64,
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
    let contended = contended_window(jobs);
    let fairness_over_whole_run = contended.span_ms() == 0;
    let fairness_window = if fairness_over_whole_run {
        Window {
            intervals: vec![(first, last.max(first + 1))],
        }
    } else {
        contended
    };
    let tenants = shares(jobs, &fairness_window, policy);
    let ratios: Vec<f64> = tenants.iter().map(|t| t.share / t.weight_share).collect();
    let summary = Summary {
        jobs: jobs.len(),
        mean_response_ms: mean(responses.iter().map(|r| *r as f64)),
        p95_response_ms: percentile(&responses, 0.95),
        mean_wait_ms: mean(jobs.iter().map(|j| j.wait_ms() as f64)),
        max_wait_ms: jobs.iter().map(JobOutcome::wait_ms).max().unwrap_or(0),
        makespan_ms,
        utilisation: if offered > 0.0 { used / offered } else { 0.0 },
        jain: jain(&ratios),
        fairness_window,
        fairness_over_whole_run,
    };
    (summary, tenants)
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

/// The times at which every tenant of the trace had at least one job waiting (arrived, not
/// started). Only then do the tenants compete, so only then is a share a policy's doing
/// rather than a tenant's lack of work.
fn contended_window(jobs: &[JobOutcome]) -> Window {
    let mut tenant_ids: BTreeMap<&str, usize> = BTreeMap::new();
    for job in jobs {
        let next = tenant_ids.len();
        tenant_ids.entry(&job.tenant).or_insert(next);
    }
    let tenants = tenant_ids.len();
    if tenants < 2 {
        return Window::default();
    }
    // (time, tenant, +1 when a job starts waiting, −1 when it stops).
    let mut events: Vec<(u64, usize, i64)> = jobs
        .iter()
        .filter(|j| j.start_ms > j.arrival_ms)
        .flat_map(|j| {
            let t = tenant_ids[j.tenant.as_str()];
            [(j.arrival_ms, t, 1), (j.start_ms, t, -1)]
        })
        .collect();
    events.sort_unstable();
    let mut waiting = vec![0i64; tenants];
    let mut backlogged = 0usize;
    let mut intervals: Vec<(u64, u64)> = Vec::new();
    let mut open: Option<u64> = None;
    let mut i = 0;
    while i < events.len() {
        let now = events[i].0;
        while i < events.len() && events[i].0 == now {
            let (_, t, delta) = events[i];
            let before = waiting[t] > 0;
            waiting[t] += delta;
            match (before, waiting[t] > 0) {
                (false, true) => backlogged += 1,
                (true, false) => backlogged -= 1,
                _ => {}
            }
            i += 1;
        }
        match (open, backlogged == tenants) {
            (None, true) => open = Some(now),
            (Some(from), false) => {
                if now > from {
                    intervals.push((from, now));
                }
                open = None;
            }
            _ => {}
        }
    }
    Window { intervals }
}

fn shares(jobs: &[JobOutcome], window: &Window, policy: &PolicyConfig) -> Vec<TenantShare> {
    #[derive(Default)]
    struct Acc {
        jobs: usize,
        unit_ms: f64,
        in_window: f64,
        response_ms: f64,
    }
    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    for job in jobs {
        let a = acc.entry(&job.tenant).or_default();
        a.jobs += 1;
        a.unit_ms += (job.completion_ms - job.start_ms) as f64 * job.units;
        a.in_window += window.overlap(job);
        a.response_ms += job.response_ms() as f64;
    }
    let total_weight: f64 = acc.keys().map(|t| policy.tenant_weight(t)).sum();
    let total_in_window: f64 = acc.values().map(|a| a.in_window).sum();
    acc.into_iter()
        .map(|(tenant, a)| {
            let weight = policy.tenant_weight(tenant);
            TenantShare {
                tenant: tenant.to_owned(),
                weight,
                weight_share: weight / total_weight,
                jobs: a.jobs,
                resource_s: a.unit_ms / 1000.0,
                share: if total_in_window > 0.0 {
                    a.in_window / total_in_window
                } else {
                    0.0
                },
                mean_response_ms: a.response_ms / a.jobs as f64,
            }
        })
        .collect()
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
    fn the_window_is_when_every_tenant_waits() {
        // a waits over [0, 10), b over [5, 20): both wait over [5, 10).
        let jobs = [
            job("a", 0, 10, 12),
            job("b", 5, 20, 21),
            job("a", 30, 30, 31),
        ];
        let window = contended_window(&jobs);
        assert_eq!(window.intervals, vec![(5, 10)]);
        assert_eq!(window.overlap(&job("x", 0, 0, 7)), 2.0);
    }
}
