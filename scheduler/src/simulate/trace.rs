//! The workload: one JSON object a line, `{"id", "arrival_ms", "runtime_ms"}` plus optional
//! `estimated_runtime_ms` (default: the runtime), `tenant` (default `default`), `priority`
//! (0–9, default 4), `queue` (default `default`) and `requires` (`{cpu, mem_mb, gpus, tags}`).

use std::collections::HashSet;
use std::io::BufRead;

use serde::{Deserialize, Serialize};
use warren_protocol::{DEFAULT_PRIORITY, Requirements};

use super::SimError;

/// One job of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceJob {
    /// Its name in the output (a string, or a number written as one).
    #[serde(deserialize_with = "id_from_string_or_number")]
    pub id: String,
    /// When it is submitted (ms from the start of the trace).
    pub arrival_ms: u64,
    /// How long it really runs (ms).
    pub runtime_ms: u64,
    /// What the scheduler is told it will run (ms); the runtime when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_runtime_ms: Option<u64>,
    /// Whose job it is.
    #[serde(default = "default_name")]
    pub tenant: String,
    /// 0–9, higher first.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Its queue (a label for round-robin across queues and queue limits).
    #[serde(default = "default_name")]
    pub queue: String,
    /// Tags and resources it needs.
    #[serde(default)]
    pub requires: Requirements,
}

impl TraceJob {
    /// Builds a job of tenant `default`, priority 4, needing nothing in particular.
    pub fn new(id: impl Into<String>, arrival_ms: u64, runtime_ms: u64) -> Self {
        Self {
            id: id.into(),
            arrival_ms,
            runtime_ms,
            estimated_runtime_ms: None,
            tenant: default_name(),
            priority: DEFAULT_PRIORITY,
            queue: default_name(),
            requires: Requirements::default(),
        }
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the cores it needs.
    pub fn cpu(mut self, cpu: u32) -> Self {
        self.requires.cpu = cpu;
        self
    }

    /// The runtime the scheduler is told.
    pub fn estimate_ms(&self) -> u64 {
        self.estimated_runtime_ms.unwrap_or(self.runtime_ms)
    }
}

fn default_name() -> String {
    "default".to_owned()
}

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

fn id_from_string_or_number<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(de)? {
        Id::Text(text) => text,
        Id::Number(n) => n.to_string(),
    })
}

/// Reads a trace: one job a line; blank lines and lines starting with `#` are skipped.
///
/// # Errors
/// Names the first line that is not a valid job (bad JSON, priority above 9, an id seen
/// before), or says the input could not be read.
pub fn read_trace(input: impl BufRead) -> Result<Vec<TraceJob>, SimError> {
    let mut jobs = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(SimError::ReadTrace)?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let job: TraceJob = serde_json::from_str(line).map_err(|e| SimError::TraceLine {
            line: n + 1,
            message: e.to_string(),
        })?;
        if job.priority > 9 {
            return Err(SimError::TraceLine {
                line: n + 1,
                message: format!("priority {} is above 9", job.priority),
            });
        }
        if !seen.insert(job.id.clone()) {
            return Err(SimError::DuplicateId(job.id));
        }
        jobs.push(job);
    }
    Ok(jobs)
}
