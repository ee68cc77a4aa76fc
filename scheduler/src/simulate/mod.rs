//! A discrete-event simulator that runs the policy core ([`crate::policy`]) on a virtual
//! clock: no RabbitMQ, no Redis, no sleeping. It answers "what would this policy do with
//! this workload on these workers?" exactly and repeatably, which is how the policies are
//! compared (`docs/scheduling.md`) and how the seed documents' worked examples are checked.
//!
//! - [`trace`]: the workload, one JSON object a line.
//! - [`cluster`]: the workers, as `--worker` specs.
//! - [`run`]: the event loop (arrivals and completions; non-preemptive).
//! - [`metrics`]: response times, utilisation, fair shares and Jain's index.
//! - [`report`]: the text and JSON output of `warren simulate`.
//! - [`traces`]: seeded generators of the standard workloads.

pub mod cluster;
pub mod metrics;
pub mod report;
pub mod run;
pub mod trace;
pub mod traces;

#[cfg(test)]
mod tests;

pub use cluster::WorkerSpec;
pub use metrics::{JobOutcome, Summary, TenantShare};
pub use report::Report;
pub use run::{Outcome, simulate};
pub use trace::{TraceJob, read_trace};

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The trace file could not be read.
    #[error("reading the trace")]
    ReadTrace(#[source] std::io::Error),
    /// A trace line is not a valid job.
    #[error("trace line {line}: {message}")]
    TraceLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Two jobs of the trace have the same id.
    #[error("trace: job id {0:?} appears twice")]
    DuplicateId(String),
    /// A `--worker` spec is malformed.
    #[error("worker spec {spec:?}: {message}")]
    WorkerSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
    /// No workers were given.
    #[error("no workers: give --slots N or at least one --worker")]
    NoWorkers,
    /// The policy settings are invalid.
    #[error("policy: {0}")]
    Policy(String),
    /// Jobs were left that no worker can ever run.
    #[error("{pending} job(s) can never run, e.g. {example}: {reason}")]
    Stuck {
        /// How many jobs never started.
        pending: usize,
        /// One of them.
        example: String,
        /// Why the scheduler held it.
        reason: String,
    },
}
