use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use warren_protocol::{JobId, JobSpec, JobState};

use crate::StoreError;

/// A job as Redis knows it: what `GET /v1/jobs/{id}` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct JobRecord {
    /// The job id.
    pub id: JobId,
    /// Current state.
    pub state: JobState,
    /// The submitted spec.
    pub spec: JobSpec,
    /// Current attempt, from 1.
    pub attempt: u32,
    /// When it was accepted (ms since the epoch).
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
    /// When it entered each state it has been in (last time for repeated states).
    pub timestamps: BTreeMap<String, u64>,
    /// The pool it was released to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The worker that runs or ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Why it is still waiting, while queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// What it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed (last attempt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Exit code of a `command` job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The signal that ended a `command` job's process (`SIGKILL`, `SIGSEGV`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<String>,
    /// Set when the process was most likely killed by the kernel's OOM killer (see
    /// docs/reliability.md, "Signals and OOM").
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// Why the job went to the dead letters (`GET /v1/dead`), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_reason: Option<String>,
    /// The job that runs this one again, once it was requeued from the dead letters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeued_as: Option<JobId>,
    /// When the next attempt is due, while retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
    /// How often another worker took it over after its worker died.
    pub takeovers: u32,
    /// Set when output was dropped from the log because it reached `log_cap_bytes`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub log_truncated: bool,
    /// The byte cap of the log, once anything was logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_cap_bytes: Option<u64>,
    /// What people did to it (cancel, retry…), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<crate::JobAction>,
}

impl JobRecord {
    pub(crate) fn from_hash(
        key: &str,
        mut hash: HashMap<String, String>,
    ) -> Result<Self, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            key: key.to_owned(),
            message,
        };
        let mut take = |field: &str| hash.remove(field);
        let id = take("id")
            .ok_or_else(|| corrupt("no id".into()))?
            .parse()
            .map_err(|e| corrupt(format!("id: {e}")))?;
        let state = take("state")
            .ok_or_else(|| corrupt("no state".into()))?
            .parse()
            .map_err(|e| corrupt(format!("{e}")))?;
        let spec = serde_json::from_str(&take("spec").ok_or_else(|| corrupt("no spec".into()))?)
            .map_err(|e| corrupt(format!("spec: {e}")))?;
        let number = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok());
        let attempt = number(take("attempt")).unwrap_or(1) as u32;
        let created_ms = number(take("created_ms")).unwrap_or(0);
        let updated_ms = number(take("updated_ms")).unwrap_or(created_ms);
        let pool = take("pool").filter(|s| !s.is_empty());
        let worker = take("worker").filter(|s| !s.is_empty());
        let pending_reason = take("pending_reason").filter(|s| !s.is_empty());
        let result = take("result").and_then(|s| serde_json::from_str(&s).ok());
        let error = take("error").filter(|s| !s.is_empty());
        let exit_code = take("exit_code").and_then(|s| s.parse().ok());
        let next_attempt_ms = number(take("next_attempt_ms"));
        let exit_signal = take("exit_signal").filter(|s| !s.is_empty());
        let oom_killed = take("oom_killed").is_some_and(|v| v == "1" || v == "true");
        let requeued_as = take("requeued_as").and_then(|s| s.parse().ok());
        let dead_reason = take("dead_reason").filter(|s| !s.is_empty());
        let takeovers = number(take("takeovers")).unwrap_or(0) as u32;
        let log_truncated = take("log_truncated").is_some_and(|v| v == "1");
        let log_cap_bytes = number(take("log_cap_bytes"));
        // A history that does not parse is shown as none rather than failing the read.
        let actions = take("actions")
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let timestamps = JobState::ALL
            .iter()
            .filter_map(|s| {
                let ms = number(hash.remove(&format!("{s}_ms")))?;
                Some((s.as_str().to_owned(), ms))
            })
            .collect();
        Ok(Self {
            id,
            state,
            spec,
            attempt,
            created_ms,
            updated_ms,
            timestamps,
            pool,
            worker,
            pending_reason,
            result,
            error,
            exit_code,
            exit_signal,
            oom_killed,
            dead_reason,
            requeued_as,
            next_attempt_ms,
            takeovers,
            log_truncated,
            log_cap_bytes,
            actions,
        })
    }
}
