use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::naming::check_identifier;
use crate::retry::{RetryBackoff, RetryOn};
use crate::tags::ResourceTag;
use crate::task::Task;

/// Highest job priority; higher runs first.
pub const MAX_PRIORITY: u8 = 9;
/// Priority of a job that does not ask for one.
pub const DEFAULT_PRIORITY: u8 = 4;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Longest timeout a job may ask for: one week.
pub const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;
/// Longest a job may be delayed: 30 days.
pub const MAX_DELAY_S: u64 = 30 * 24 * 3600;
/// Longest a job may ask to wait for placement: 30 days.
pub const MAX_SCHEDULE_TIMEOUT_S: u64 = 30 * 24 * 3600;
/// Most labels a job may carry.
pub const MAX_LABELS: usize = 32;
/// Most tags a job may require. Every distinct tag set is a class the scheduler keeps and
/// matches against every pool; no real worker offers more than a handful.
pub const MAX_REQUIRED_TAGS: usize = 16;
/// Most bytes of a job's `args` as JSON. With every other field bounded, this bounds the
/// whole spec (a little over this), which Redis stores and every listing returns.
pub const MAX_ARGS_BYTES: usize = 256 * 1024;

/// A job spec that failed validation: which field, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Dotted path of the offending field (`requires.tags`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ValidationError {
    /// Creates an error for `field`.
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// What a job needs from the worker that runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Tags the worker's pool must have (all of them).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<ResourceTag>,
    /// CPU cores the job needs on one worker.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub cpu: u32,
    /// Memory, in MiB, the job needs on one worker.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub mem_mb: u64,
    /// GPUs the job needs on one worker.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub gpus: u32,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn default_queue() -> String {
    "default".to_owned()
}

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

fn default_attempts() -> u32 {
    1
}

/// A job as a client submits it (`POST /v1/jobs`).
///
/// Unknown fields are refused rather than ignored: a typo such as `"priorty"` must not silently
/// run the job with the default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// `command`, a built-in (`noop`, `sleep`, `echo`, `fail`, `sha256`) or a registered task.
    pub task: String,
    /// The task's arguments. An object inside must not repeat a key.
    #[serde(
        default,
        skip_serializing_if = "Value::is_null",
        deserialize_with = "crate::unique::unique_value"
    )]
    pub args: Value,
    /// Logical queue, for listing and round-robin; not a broker queue.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Who the job belongs to, for fair share and listing.
    #[serde(default = "default_queue")]
    pub tenant: String,
    /// 0 (lowest) to 9 (highest).
    #[serde(default = "default_priority")]
    #[cfg_attr(feature = "utoipa", schema(maximum = 9))]
    pub priority: u8,
    /// Tags and resources the job needs.
    #[serde(default)]
    pub requires: Requirements,
    /// The client's guess of the run time, used by shortest-job-first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_runtime_ms: Option<u64>,
    /// Wall-clock limit of one attempt; the worker's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// Run no sooner than this many seconds after submission (held in the delay ladder, not
    /// in any worker's memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<u64>,
    /// Run no sooner than this time (ms since the epoch); the alternative to `delay_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
    /// How long the job may wait to be placed before it fails with `schedule_timeout`
    /// (no worker could run it, or none had room); no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_s: Option<u64>,
    /// How many times the job may run before it fails for good (1 = no retries).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The wait between attempts; the worker's default (`WARREN_RETRY_*`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<RetryBackoff>,
    /// Which failures of a `command` are retried (`exit_code`, `signal`, `oom`); all of them
    /// when absent. An exit with code 75 is always retried and one with code 65 never is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<BTreeSet<RetryOn>>,
    /// Free-form key/value labels, returned as given; a key may not repeat.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::unique::unique_map"
    )]
    pub labels: BTreeMap<String, String>,
}

impl JobSpec {
    /// When the job may first run (ms since the epoch), if it asked to be delayed.
    pub fn due_ms(&self, created_ms: u64) -> Option<u64> {
        self.delay_s
            .map(|s| created_ms.saturating_add(s.saturating_mul(1000)))
            .or(self.not_before_ms)
    }

    /// Creates a spec for `task` with every other field at its default.
    pub fn new(task: impl Into<String>, args: Value) -> Self {
        Self {
            task: task.into(),
            args,
            queue: default_queue(),
            tenant: default_queue(),
            priority: DEFAULT_PRIORITY,
            requires: Requirements::default(),
            estimated_runtime_ms: None,
            timeout_s: None,
            delay_s: None,
            not_before_ms: None,
            schedule_timeout_s: None,
            max_attempts: 1,
            retry_backoff: None,
            retry_on: None,
            labels: BTreeMap::new(),
        }
    }

    /// Checks every field and parses the task.
    ///
    /// # Errors
    /// Returns the first [`ValidationError`] found, naming the field and what to fix.
    pub fn validate(&self) -> Result<Task, ValidationError> {
        if !self.args.is_null() {
            let bytes = serde_json::to_vec(&self.args).map_or(0, |json| json.len());
            if bytes > MAX_ARGS_BYTES {
                return Err(ValidationError::new(
                    "args",
                    format!("at most {MAX_ARGS_BYTES} bytes as JSON, got {bytes}"),
                ));
            }
        }
        let task = Task::parse(&self.task, &self.args)?;
        check_identifier("queue", &self.queue).map_err(|e| ValidationError::new("queue", e.why))?;
        check_identifier("tenant", &self.tenant)
            .map_err(|e| ValidationError::new("tenant", e.why))?;
        if self.priority > MAX_PRIORITY {
            return Err(ValidationError::new(
                "priority",
                format!("must be 0 to {MAX_PRIORITY}, got {}", self.priority),
            ));
        }
        if let Some(timeout) = self.timeout_s
            && !(1..=MAX_TIMEOUT_S).contains(&timeout)
        {
            return Err(ValidationError::new(
                "timeout_s",
                format!("must be 1 to {MAX_TIMEOUT_S} seconds, got {timeout}"),
            ));
        }
        if self.delay_s.is_some() && self.not_before_ms.is_some() {
            return Err(ValidationError::new(
                "delay_s",
                "give delay_s or not_before_ms, not both",
            ));
        }
        if let Some(delay) = self.delay_s
            && !(1..=MAX_DELAY_S).contains(&delay)
        {
            return Err(ValidationError::new(
                "delay_s",
                format!("must be 1 to {MAX_DELAY_S} seconds, got {delay}"),
            ));
        }
        if let Some(timeout) = self.schedule_timeout_s
            && !(1..=MAX_SCHEDULE_TIMEOUT_S).contains(&timeout)
        {
            return Err(ValidationError::new(
                "schedule_timeout_s",
                format!("must be 1 to {MAX_SCHEDULE_TIMEOUT_S} seconds, got {timeout}"),
            ));
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(ValidationError::new(
                "max_attempts",
                format!("must be 1 to {MAX_ATTEMPTS}, got {}", self.max_attempts),
            ));
        }
        if self.requires.tags.len() > MAX_REQUIRED_TAGS {
            return Err(ValidationError::new(
                "requires.tags",
                format!(
                    "at most {MAX_REQUIRED_TAGS} tags, got {}",
                    self.requires.tags.len()
                ),
            ));
        }
        if let Some(backoff) = &self.retry_backoff {
            backoff.validate()?;
        }
        if self.labels.len() > MAX_LABELS {
            return Err(ValidationError::new(
                "labels",
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        if let Some((key, _)) = self
            .labels
            .iter()
            .find(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 256)
        {
            return Err(ValidationError::new(
                "labels",
                format!("label {key:?}: keys must be 1 to 64 characters, values at most 256"),
            ));
        }
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> Result<JobSpec, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn defaults_fill_in() {
        let s = spec(json!({"task": "noop"})).unwrap();
        assert_eq!(s.queue, "default");
        assert_eq!(s.tenant, "default");
        assert_eq!(s.priority, DEFAULT_PRIORITY);
        assert_eq!(s.max_attempts, 1);
        assert_eq!(s.validate().unwrap(), Task::Noop);
    }

    #[test]
    fn unknown_fields_and_bad_tags_are_refused_by_the_parser() {
        let err = spec(json!({"task": "noop", "priorty": 3})).unwrap_err();
        assert!(err.to_string().contains("unknown field `priorty`"), "{err}");
        let err = spec(json!({"task": "noop", "requires": {"tags": ["GPU"]}})).unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
        let err = spec(json!({"task": "noop", "requires": {"tags": [""]}})).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = spec(json!({"task": "noop", "requires": {"disk": 1}})).unwrap_err();
        assert!(err.to_string().contains("unknown field `disk`"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (json!({"task": "noop", "priority": 10}), "priority"),
            (json!({"task": "noop", "timeout_s": 0}), "timeout_s"),
            (
                json!({"task": "noop", "schedule_timeout_s": 0}),
                "schedule_timeout_s",
            ),
            (json!({"task": "noop", "delay_s": 0}), "delay_s"),
            (
                json!({"task": "noop", "delay_s": 5, "not_before_ms": 1}),
                "delay_s",
            ),
            (json!({"task": "noop", "max_attempts": 0}), "max_attempts"),
            (
                json!({"task": "noop", "retry_backoff": {"strategy": "fixed", "initial_s": 0}}),
                "retry_backoff.initial_s",
            ),
            (json!({"task": "noop", "queue": ""}), "queue"),
            (json!({"task": "noop", "tenant": "a b"}), "tenant"),
            (json!({"task": "sleep"}), "args"),
            (json!({"task": "no such"}), "task"),
            (
                json!({"task": "noop", "requires": {"tags": (0..17).map(|i| format!("t{i}")).collect::<Vec<_>>()}}),
                "requires.tags",
            ),
            (
                json!({"task": "echo", "args": "x".repeat(MAX_ARGS_BYTES)}),
                "args",
            ),
            (
                json!({"task": "command", "args": {"argv": vec!["a"; 1025]}}),
                "args.argv",
            ),
        ];
        for (value, field) in cases {
            let err = spec(value.clone()).unwrap().validate().unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
    }

    #[test]
    fn repeated_keys_in_args_labels_and_env_are_refused() {
        for body in [
            r#"{"task": "command", "args": {"argv": ["ls"], "argv": ["rm", "-rf", "/"]}}"#,
            r#"{"task": "command", "args": {"argv": ["ls"], "env": {"A": "1", "A": "2"}}}"#,
            r#"{"task": "noop", "labels": {"team": "a", "team": "b"}}"#,
        ] {
            let err = serde_json::from_str::<JobSpec>(body).unwrap_err();
            assert!(err.to_string().contains("duplicate key"), "{body}: {err}");
        }
        let ok = r#"{"task": "command", "args": {"argv": ["ls"], "env": {"A": "1", "B": "2"}}}"#;
        serde_json::from_str::<JobSpec>(ok)
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn specs_round_trip() {
        let s = spec(json!({
            "task": "command",
            "args": {"argv": ["echo", "hi"]},
            "queue": "render",
            "tenant": "team-a",
            "priority": 7,
            "requires": {"tags": ["gpu", "cuda12"], "cpu": 2, "mem_mb": 1024, "gpus": 1},
            "estimated_runtime_ms": 1000,
            "timeout_s": 60,
            "max_attempts": 3,
            "retry_backoff": {"strategy": "exponential", "initial_s": 2, "max_s": 60, "jitter": true},
            "retry_on": ["exit_code", "oom"],
            "labels": {"k": "v"}
        }))
        .unwrap();
        let again: JobSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(again, s);
        s.validate().unwrap();
    }
}
