//! Why a job waits: the pending reasons the scheduler records and explains.

use std::fmt;

use serde::{Deserialize, Serialize};
use warren_protocol::JobId;

use super::class::{JobClass, TaskNeed};
use super::workers::WorkerState;

/// Why the head of a class was not dispatched in a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Reason {
    /// No live worker could ever run it (tags, program, task or resources).
    NoMatchingPool(String),
    /// Workers could run it, but none has room now.
    WaitingForCapacity,
    /// The worker it needs is held for a larger job that waits longer.
    ReservedFor(JobId),
    /// A concurrency cap is reached (`tenant:NAME` or `queue:NAME`).
    ConcurrencyLimit(String),
    /// A rate limit has no token left (`task:NAME` or `queue:NAME`).
    RateLimit(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMatchingPool(detail) => write!(f, "no_matching_pool: {detail}"),
            Self::WaitingForCapacity => f.write_str("waiting_for_capacity"),
            Self::ReservedFor(job) => write!(f, "reserved_for {job}"),
            Self::ConcurrencyLimit(name) => write!(f, "concurrency_limit {name}"),
            Self::RateLimit(name) => write!(f, "rate_limit {name}"),
        }
    }
}

/// Says why no live worker can run jobs of `class`, naming the first requirement nobody meets.
pub fn no_match<'w>(workers: impl IntoIterator<Item = &'w WorkerState>, class: &JobClass) -> Reason {
    let workers: Vec<&WorkerState> = workers.into_iter().collect();
    if workers.is_empty() {
        return Reason::NoMatchingPool("no live workers".into());
    }
    let tagged: Vec<&&WorkerState> = workers
        .iter()
        .filter(|w| w.heartbeat.pool.covers(&class.requires.tags))
        .collect();
    if tagged.is_empty() {
        let wanted: Vec<&str> = class.requires.tags.iter().map(|t| t.as_str()).collect();
        return Reason::NoMatchingPool(format!("no live worker has tags [{}]", wanted.join(", ")));
    }
    let admitting: Vec<&&&WorkerState> = tagged
        .iter()
        .filter(|w| class.task.met_by(&w.heartbeat))
        .collect();
    if admitting.is_empty() {
        return Reason::NoMatchingPool(match &class.task {
            TaskNeed::Program(program) => format!(
                "no live worker with those tags admits program {program:?} (worker --allow-command)"
            ),
            TaskNeed::Custom(name) => {
                format!("no live worker with those tags has task {name:?} registered")
            }
            TaskNeed::Builtin(_) => "no live worker with those tags".into(),
        });
    }
    let r = &class.requires;
    Reason::NoMatchingPool(format!(
        "no live worker with those tags has cpu={} mem_mb={} gpus={} in all",
        r.cpu, r.mem_mb, r.gpus
    ))
}
