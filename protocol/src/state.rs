use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
///
/// `queued → scheduled → running → succeeded | failed | timed_out | cancelled`, plus
/// `retrying` (waiting out a backoff, then `queued` again). The legal moves are
/// [`JobState::legal_sources`]; the result store enforces them atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and waiting for the scheduler to place it.
    Queued,
    /// Released to a pool queue; waiting for a worker to pick it up.
    Scheduled,
    /// A worker holds its lease and runs it.
    Running,
    /// Failed an attempt and waits out its backoff before it is queued again.
    Retrying,
    /// Finished well. Terminal.
    Succeeded,
    /// Finished badly (non-zero exit, task error, attempts exhausted). Terminal.
    Failed,
    /// Killed for running past its timeout. Terminal.
    TimedOut,
    /// Cancelled by a client. Terminal.
    Cancelled,
}

/// A state name that is not one of [`JobState::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown state {0:?}: expected queued, scheduled, running, retrying, succeeded, failed, timed_out or cancelled"
)]
pub struct ParseStateError(pub String);

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [Self; 8] = [
        Self::Queued,
        Self::Scheduled,
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
    ];

    /// Returns the snake_case name used on the wire and in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }

    /// Tells whether the job is finished for good. A terminal state is never left.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimedOut | Self::Cancelled
        )
    }

    /// Returns the states a job may move *into* `self` from.
    ///
    /// This table is the one definition of the lifecycle: the store passes it to its atomic
    /// transition script, so Rust and Lua cannot disagree.
    /// - `running → running` is a takeover: the worker that held the lease died.
    /// - `scheduled|running → queued` sends a job back to the scheduler (its worker could not
    ///   run it after all).
    /// - `queued|scheduled → running`: a worker may claim a job before the scheduler has
    ///   recorded `scheduled` (the scheduler records it after the publish is confirmed).
    pub fn legal_sources(self) -> &'static [Self] {
        use JobState::*;
        match self {
            Queued => &[Retrying, Scheduled, Running],
            Scheduled => &[Queued],
            Running => &[Queued, Scheduled, Running],
            Retrying => &[Running],
            Succeeded | TimedOut => &[Running],
            Failed => &[Queued, Scheduled, Running, Retrying],
            Cancelled => &[Queued, Scheduled, Running, Retrying],
        }
    }

    /// Tells whether moving from `self` to `to` is legal.
    pub fn can_become(self, to: Self) -> bool {
        to.legal_sources().contains(&self)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = ParseStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| ParseStateError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn terminal_states_are_never_left() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobState::ALL {
                assert!(!from.can_become(to), "{from} -> {to} must be illegal");
            }
        }
    }

    #[test]
    fn the_happy_path_is_legal() {
        use JobState::*;
        let path = [
            Queued, Scheduled, Running, Retrying, Queued, Scheduled, Running, Succeeded,
        ];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{} -> {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn shortcuts_that_skip_work_are_illegal() {
        use JobState::*;
        assert!(!Queued.can_become(Succeeded));
        assert!(!Scheduled.can_become(TimedOut));
        assert!(!Retrying.can_become(Running));
        assert!(!Queued.can_become(Queued));
    }
}
