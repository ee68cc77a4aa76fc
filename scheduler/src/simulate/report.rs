//! `warren simulate`'s output: a table of jobs and the figures as text, or one JSON document.

use std::fmt;

use serde::Serialize;

use super::metrics::{JobOutcome, Summary, TenantShare};
use super::run::Outcome;

/// Renders an [`Outcome`].
#[derive(Debug, Clone, Copy)]
pub struct Report<'o> {
    outcome: &'o Outcome,
    with_jobs: bool,
}

#[derive(Serialize)]
struct JobLine<'a> {
    id: &'a str,
    tenant: &'a str,
    arrival_ms: u64,
    start_ms: u64,
    completion_ms: u64,
    response_ms: u64,
    worker: &'a str,
}

#[derive(Serialize)]
struct Document<'a> {
    policy: String,
    backfill: bool,
    jobs: Vec<JobLine<'a>>,
    summary: &'a Summary,
    tenants: &'a [TenantShare],
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

impl<'o> Report<'o> {
    /// Reports `outcome`, with one line per job when `with_jobs`.
    pub fn new(outcome: &'o Outcome, with_jobs: bool) -> Self {
        Self { outcome, with_jobs }
    }

    /// The JSON document: `{policy, backfill, jobs: [{id, tenant, arrival_ms, start_ms,
    /// completion_ms, response_ms, worker}], summary, tenants}`.
    ///
    /// # Errors
    /// Fails only if serialisation fails (it does not for these types).
    pub fn json(&self) -> Result<String, serde_json::Error> {
        let jobs = if self.with_jobs {
            self.outcome.jobs.iter().map(job_line).collect()
        } else {
            Vec::new()
        };
        serde_json::to_string_pretty(&Document {
            policy: self.outcome.policy.preset.to_string(),
            backfill: self.outcome.policy.backfill,
            jobs,
            summary: &self.outcome.summary,
            tenants: &self.outcome.tenants,
        })
    }
}

fn job_line(job: &JobOutcome) -> JobLine<'_> {
    JobLine {
        id: &job.id,
        tenant: &job.tenant,
        arrival_ms: job.arrival_ms,
        start_ms: job.start_ms,
        completion_ms: job.completion_ms,
        response_ms: job.response_ms(),
        worker: &job.worker,
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = self.outcome;
        let s = &outcome.summary;
        if self.with_jobs {
            writeln!(
                f,
                "{:<16} {:<12} {:>10} {:>10} {:>11} {:>10}",
                "JOB", "TENANT", "ARRIVAL s", "START s", "COMPLETE s", "RESPONSE s"
            )?;
            for job in &outcome.jobs {
                writeln!(
                    f,
                    "{:<16} {:<12} {:>10} {:>10} {:>11} {:>10}",
                    job.id,
                    job.tenant,
                    seconds(job.arrival_ms),
                    seconds(job.start_ms),
                    seconds(job.completion_ms),
                    seconds(job.response_ms())
                )?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "policy {}{}: {} jobs",
            outcome.policy.preset,
            if outcome.policy.backfill {
                ""
            } else {
                " (no backfill)"
            },
            s.jobs
        )?;
        writeln!(
            f,
            "response  mean {:.3} s  p95 {} s    wait mean {:.3} s  max {} s",
            s.mean_response_ms / 1000.0,
            seconds(s.p95_response_ms),
            s.mean_wait_ms / 1000.0,
            seconds(s.max_wait_ms)
        )?;
        writeln!(
            f,
            "makespan  {} s    utilisation {:.1} %",
            seconds(s.makespan_ms),
            s.utilisation * 100.0
        )?;
        if s.contended_ms == 0 {
            writeln!(
                f,
                "fairness  tenants never had jobs waiting at the same time"
            )?;
        } else {
            writeln!(
                f,
                "fairness  Jain {:.4} over {} s with two or more tenants waiting ({} s all of them)",
                s.jain,
                seconds(s.contended_ms),
                seconds(s.saturated_ms)
            )?;
        }
        writeln!(
            f,
            "{:<12} {:>7} {:>8} {:>6} {:>12} {:>10} {:>10} {:>12}",
            "TENANT",
            "WEIGHT",
            "W-SHARE",
            "JOBS",
            "RESOURCE-S",
            "SAT-SHARE",
            "FAIR-RATIO",
            "MEAN RESP s"
        )?;
        for t in &outcome.tenants {
            // A share of the saturated period means nothing when there was none.
            let share = if s.saturated_ms == 0 {
                "–".to_owned()
            } else {
                format!("{:.1}%", t.share * 100.0)
            };
            writeln!(
                f,
                "{:<12} {:>7} {:>7.1}% {:>6} {:>12.1} {:>10} {:>10.3} {:>12.3}",
                t.tenant,
                t.weight,
                t.weight_share * 100.0,
                t.jobs,
                t.resource_s,
                share,
                t.fair_ratio,
                t.mean_response_ms / 1000.0
            )?;
        }
        Ok(())
    }
}
