//! What a pending job is to the policy: its class (who may run it, whose it is) and the few
//! numbers that order it.

use serde::{Deserialize, Serialize};
use warren_protocol::{Heartbeat, JobId, Requirements, Task};

use super::config::PolicyConfig;

/// What a worker must offer to run a job, beyond tags and resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskNeed {
    /// A built-in task (named): every worker has it.
    Builtin(String),
    /// A `command` job: the worker's allow-list must admit the program.
    Program(String),
    /// A task registered through the worker library.
    Custom(String),
}

impl TaskNeed {
    /// Derives the need from a validated task and the name it was submitted under.
    pub fn of(name: &str, task: &Task) -> Self {
        match task {
            Task::Command(args) => Self::Program(args.program().to_owned()),
            Task::Custom { name, .. } => Self::Custom(name.clone()),
            _ => Self::Builtin(name.to_owned()),
        }
    }

    /// The task's name, as rate limits name it (`command` for programs).
    pub fn task_name(&self) -> &str {
        match self {
            Self::Builtin(name) | Self::Custom(name) => name,
            Self::Program(_) => "command",
        }
    }

    /// Tells whether the worker that sent `heartbeat` offers it.
    pub fn met_by(&self, heartbeat: &Heartbeat) -> bool {
        match self {
            Self::Builtin(_) => true,
            Self::Program(program) => heartbeat.admits_program(program),
            Self::Custom(name) => heartbeat.tasks.iter().any(|t| t == name),
        }
    }
}

/// Jobs that are interchangeable for placement and belong to one tenant and queue. The
/// scheduler keeps one ordered queue per class, so a class's jobs leave in key order and a
/// blocked head blocks only its own class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobClass {
    /// Whose jobs.
    pub tenant: String,
    /// The job's queue (a label for limits and round-robin, not an AMQP queue).
    pub queue: String,
    /// Tags and resources.
    pub requires: Requirements,
    /// Program or task.
    pub task: TaskNeed,
}

/// The numbers that order a pending job; fixed while it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingJob {
    /// The job.
    pub id: JobId,
    /// When it became pending (ms since the epoch): its first arrival, not a retry's.
    pub arrival_ms: u64,
    /// 0–9, higher first.
    pub priority: u8,
    /// Estimated runtime (given, learned per task, or the default).
    pub est_ms: u64,
}

impl PendingJob {
    /// Returns the job's key under `config`: smaller runs first (see [`PolicyConfig`]).
    pub fn key(&self, config: &PolicyConfig) -> i64 {
        let arrival = i64::try_from(self.arrival_ms).unwrap_or(i64::MAX);
        let boost = i64::from(self.priority)
            .saturating_mul(i64::try_from(config.priority_weight_ms).unwrap_or(i64::MAX));
        let size = (config.size_weight * self.est_ms as f64).min(1e15) as i64;
        arrival.saturating_sub(boost).saturating_add(size)
    }
}

/// Resource units a job is charged for per second, for fair share: its cores (at least
/// one: every job occupies a slot) plus four per GPU.
pub fn usage_units(requires: &Requirements) -> f64 {
    f64::from(requires.cpu.max(1)) + 4.0 * f64::from(requires.gpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::config::Preset;

    fn job(arrival_ms: u64, priority: u8, est_ms: u64) -> PendingJob {
        PendingJob {
            id: JobId::new(),
            arrival_ms,
            priority,
            est_ms,
        }
    }

    #[test]
    fn keys_follow_the_preset() {
        let fifo = PolicyConfig::preset(Preset::Fifo);
        assert!(job(1, 9, 100).key(&fifo) > job(0, 0, 1_000_000).key(&fifo));
        let priority = PolicyConfig::preset(Preset::Priority);
        // A priority-9 job overtakes a priority-0 job that arrived up to 9 levels' worth earlier…
        assert!(job(500_000, 9, 0).key(&priority) < job(0, 0, 0).key(&priority));
        // …but not one that has waited longer than that (aging: no starvation).
        assert!(job(600_000, 9, 0).key(&priority) > job(0, 0, 0).key(&priority));
        let sjf = PolicyConfig::preset(Preset::Sjf);
        assert!(job(10, 4, 5).key(&sjf) < job(0, 4, 100).key(&sjf));
    }
}
