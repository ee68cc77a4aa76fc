//! The event loop. Events are arrivals (from the trace) and completions (a started job ends
//! `runtime_ms` later); at each event time the simulator applies every event of that instant,
//! then asks the policy core for one round (`decide(now)`) and starts what it dispatched.
//! Jobs are never preempted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use warren_protocol::JobId;

use super::SimError;
use super::cluster::WorkerSpec;
use super::metrics::{self, JobOutcome, Summary, TenantShare};
use super::trace::TraceJob;
use crate::policy::class::usage_units;
use crate::policy::{JobClass, PendingJob, PolicyConfig, Scheduler, TaskNeed};

/// What a simulation produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The policy it ran (with `slack` 0).
    pub policy: PolicyConfig,
    /// Every job, in trace order.
    pub jobs: Vec<JobOutcome>,
    /// The figures.
    pub summary: Summary,
    /// Per-tenant use against weight.
    pub tenants: Vec<TenantShare>,
}

/// Ids the policy core sees: the trace position, so ties in key break by trace order and
/// every run of the same trace is identical.
fn job_id(index: usize) -> Result<JobId, SimError> {
    format!("{:032x}", index + 1)
        .parse::<JobId>()
        .map_err(|e| SimError::Policy(format!("job id: {e}")))
}

/// Runs `trace` on `workers` under `policy` and measures the result.
///
/// `policy.slack` is set to 0: a job the scheduler sends beyond a worker's free slots waits
/// at the worker without running, and the simulator models execution, not the queue in
/// front of it.
///
/// # Errors
/// Fails when there are no workers, the policy does not check, a worker spec is malformed,
/// or some job can never run (then it names one and why).
pub fn simulate(
    policy: &PolicyConfig,
    workers: &[WorkerSpec],
    trace: &[TraceJob],
) -> Result<Outcome, SimError> {
    if workers.is_empty() {
        return Err(SimError::NoWorkers);
    }
    let mut policy = policy.clone();
    policy.slack = 0;
    policy.check().map_err(SimError::Policy)?;
    let mut scheduler = Scheduler::new(policy.clone());
    for (n, spec) in workers.iter().enumerate() {
        for heartbeat in spec.heartbeats(&format!("w{n}"))? {
            scheduler.upsert_worker(heartbeat);
        }
    }
    let ids = (0..trace.len())
        .map(job_id)
        .collect::<Result<Vec<_>, _>>()?;
    let index: HashMap<JobId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut arrivals: Vec<usize> = (0..trace.len()).collect();
    arrivals.sort_by_key(|&i| (trace[i].arrival_ms, i));
    let mut next_arrival = 0;
    let mut starts: Vec<Option<(u64, String)>> = vec![None; trace.len()];
    let mut completions: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    // A rate-limited job needs a decision when its token comes, even with no event then.
    let mut wake_ms: Option<u64> = None;
    let mut last_waiting = Vec::new();
    loop {
        let arrival = arrivals.get(next_arrival).map(|&i| trace[i].arrival_ms);
        let completion = completions.peek().map(|Reverse((t, _))| *t);
        let Some(now) = [arrival, completion, wake_ms].into_iter().flatten().min() else {
            break;
        };
        while let Some(Reverse((t, i))) = completions.peek().copied()
            && t == now
        {
            completions.pop();
            scheduler.finished(ids[i], now);
        }
        while let Some(&i) = arrivals.get(next_arrival)
            && trace[i].arrival_ms == now
        {
            next_arrival += 1;
            scheduler.add(&class_of(&trace[i]), pending_of(&trace[i], ids[i]));
        }
        let round = scheduler.decide(now);
        for dispatch in &round.dispatches {
            let Some(&i) = index.get(&dispatch.job) else {
                continue;
            };
            starts[i] = Some((now, dispatch.worker.to_string()));
            completions.push(Reverse((now.saturating_add(trace[i].runtime_ms), i)));
        }
        wake_ms = match scheduler.pending_count() {
            0 => None,
            _ => scheduler.next_token_ms().map(|ms| now + ms.max(1)),
        };
        if !round.waiting.is_empty() {
            last_waiting = round.waiting;
        }
    }
    let mut jobs = Vec::with_capacity(trace.len());
    for (i, job) in trace.iter().enumerate() {
        let Some((start_ms, worker)) = starts[i].clone() else {
            let reason = last_waiting
                .iter()
                .find(|(id, _, _)| {
                    index
                        .get(id)
                        .is_some_and(|&w| trace[w].tenant == job.tenant)
                })
                .or(last_waiting.first())
                .map_or_else(|| "never dispatched".to_owned(), |(_, _, r)| r.to_string());
            return Err(SimError::Stuck {
                pending: starts.iter().filter(|s| s.is_none()).count(),
                example: job.id.clone(),
                reason,
            });
        };
        jobs.push(JobOutcome {
            id: job.id.clone(),
            tenant: job.tenant.clone(),
            priority: job.priority,
            arrival_ms: job.arrival_ms,
            start_ms,
            completion_ms: start_ms.saturating_add(job.runtime_ms),
            units: usage_units(&job.requires),
            worker,
        });
    }
    let capacity: f64 = workers.iter().map(WorkerSpec::capacity_units).sum();
    let (summary, tenants) = metrics::measure(&jobs, capacity, &policy);
    Ok(Outcome {
        policy,
        jobs,
        summary,
        tenants,
    })
}

/// The simulated job's class: tenant, queue and needs; every worker offers its task.
fn class_of(job: &TraceJob) -> JobClass {
    JobClass {
        tenant: job.tenant.clone(),
        queue: job.queue.clone(),
        requires: job.requires.clone(),
        task: TaskNeed::Builtin("simulated".to_owned()),
    }
}

fn pending_of(job: &TraceJob, id: JobId) -> PendingJob {
    PendingJob {
        id,
        arrival_ms: job.arrival_ms,
        priority: job.priority,
        est_ms: job.estimate_ms(),
    }
}
