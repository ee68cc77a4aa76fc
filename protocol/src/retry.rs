//! Retry policy of a job: how long to wait between attempts (`retry_backoff`) and which
//! failures of a `command` are worth another attempt (`retry_on`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::ValidationError;

/// Longest wait between two attempts a job may ask for: one day.
pub const MAX_BACKOFF_S: u64 = 24 * 3600;
/// Exit code with which a `command` asks to be retried whatever its `retry_on` says
/// (`EX_TEMPFAIL` of sysexits.h: "temporary failure, try again later").
pub const TEMPFAIL_EXIT_CODE: i32 = 75;
/// Exit code with which a `command` says that it failed for good: no retry, even with
/// attempts left (`EX_DATAERR` of sysexits.h: "the input data was incorrect").
pub const PERMANENT_EXIT_CODE: i32 = 65;

/// How the wait between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BackoffStrategy {
    /// `initial_s` before every retry.
    Fixed,
    /// `initial_s × 2^(attempt − 1)`, at most `max_s`.
    Exponential,
}

/// The wait between attempts (`"retry_backoff"` of a job spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetryBackoff {
    /// `fixed` or `exponential`.
    pub strategy: BackoffStrategy,
    /// Wait before the first retry, in seconds (1 to 86400).
    pub initial_s: u64,
    /// Longest wait, in seconds (at least `initial_s`, at most 86400); `initial_s` when
    /// absent for `fixed`, 3600 for `exponential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_s: Option<u64>,
    /// Spread the waits of jobs that failed together: each wait is drawn between half of
    /// it and all of it ("equal jitter"). Defaults to on for `exponential`, off for `fixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

impl RetryBackoff {
    /// Checks the fields.
    ///
    /// # Errors
    /// Names the field (`retry_backoff.initial_s`) and what to fix.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=MAX_BACKOFF_S).contains(&self.initial_s) {
            return Err(ValidationError::new(
                "retry_backoff.initial_s",
                format!(
                    "must be 1 to {MAX_BACKOFF_S} seconds, got {}",
                    self.initial_s
                ),
            ));
        }
        if let Some(max) = self.max_s
            && !(self.initial_s..=MAX_BACKOFF_S).contains(&max)
        {
            return Err(ValidationError::new(
                "retry_backoff.max_s",
                format!(
                    "must be at least initial_s ({}) and at most {MAX_BACKOFF_S} seconds, got {max}",
                    self.initial_s
                ),
            ));
        }
        Ok(())
    }

    /// The wait before the attempt after `attempt` (which just failed, from 1). `unit` is a
    /// random number in `[0, 1)`, used only with jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let initial = Duration::from_secs(self.initial_s);
        let max = Duration::from_secs(self.max_s.unwrap_or(match self.strategy {
            BackoffStrategy::Fixed => self.initial_s,
            BackoffStrategy::Exponential => 3600,
        }));
        let jitter = self
            .jitter
            .unwrap_or(self.strategy == BackoffStrategy::Exponential);
        backoff(self.strategy, initial, max, jitter, attempt, unit)
    }
}

/// The wait before the attempt after `attempt` under `strategy`, from `initial` up to `max`,
/// with "equal jitter" (between half of the wait and all of it) when `jitter` is set.
/// `unit` is a random number in `[0, 1)`.
pub fn backoff(
    strategy: BackoffStrategy,
    initial: Duration,
    max: Duration,
    jitter: bool,
    attempt: u32,
    unit: f64,
) -> Duration {
    let base = match strategy {
        BackoffStrategy::Fixed => initial,
        BackoffStrategy::Exponential => {
            let exponent = attempt.saturating_sub(1).min(30);
            initial.saturating_mul(1 << exponent)
        }
    }
    .min(max);
    if !jitter {
        return base;
    }
    let half = base / 2;
    half + (base - half).mul_f64(unit.clamp(0.0, 1.0))
}

/// A kind of `command` failure that `retry_on` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// The program exited with a code other than 0 (and other than the two reserved codes).
    ExitCode,
    /// The program was ended by a signal Warren did not send (a crash: `SIGSEGV`, `SIGABRT`,
    /// a `SIGKILL` from someone else), not counting the OOM killer.
    Signal,
    /// The program was most likely killed by the kernel's OOM killer.
    Oom,
}

/// What `retry_on` means when a job does not give it: every kind of failure is retried.
pub fn retry_on_default() -> BTreeSet<RetryOn> {
    [RetryOn::ExitCode, RetryOn::Signal, RetryOn::Oom]
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: serde_json::Value) -> RetryBackoff {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn exponential_doubles_up_to_the_cap() {
        let b = parse(
            serde_json::json!({"strategy": "exponential", "initial_s": 2, "max_s": 10, "jitter": false}),
        );
        let waits: Vec<u64> = (1..=5).map(|a| b.delay(a, 0.5).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 10, 10]);
    }

    #[test]
    fn fixed_stays_and_jitter_stays_between_half_and_all() {
        let b = parse(serde_json::json!({"strategy": "fixed", "initial_s": 8}));
        assert_eq!(b.delay(1, 0.9), Duration::from_secs(8));
        assert_eq!(b.delay(7, 0.1), Duration::from_secs(8));
        let j = parse(serde_json::json!({"strategy": "exponential", "initial_s": 8}));
        assert_eq!(j.delay(1, 0.0), Duration::from_secs(4));
        assert_eq!(j.delay(1, 0.999).as_secs(), 7);
        assert_eq!(j.delay(2, 0.0), Duration::from_secs(8));
    }

    #[test]
    fn validation_names_the_field() {
        let zero = parse(serde_json::json!({"strategy": "fixed", "initial_s": 0}));
        assert_eq!(
            zero.validate().unwrap_err().field,
            "retry_backoff.initial_s"
        );
        let below =
            parse(serde_json::json!({"strategy": "exponential", "initial_s": 5, "max_s": 2}));
        assert_eq!(below.validate().unwrap_err().field, "retry_backoff.max_s");
        let huge = parse(serde_json::json!({"strategy": "fixed", "initial_s": 90000}));
        assert!(huge.validate().is_err());
        let err = serde_json::from_value::<RetryBackoff>(
            serde_json::json!({"strategy": "linear", "initial_s": 1}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
