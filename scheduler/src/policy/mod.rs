//! The pure core of scheduling: which job goes next and to which worker. No I/O, no clock
//! of its own (callers pass `now`), so the same code runs in the scheduler service and in
//! the discrete-event simulator, and every rule is a unit test.
//!
//! - [`config`]: policies, weights, limits.
//! - [`class`]: a pending job's class and key.
//! - [`workers`]: workers as capacity.
//! - [`engine`]: the ordered index and the dispatch rounds.
//! - [`reason`]: why a job waits.

pub mod class;
/// Policies, weights and limits (they live in the protocol crate, which the API shares).
pub mod config {
    pub use warren_protocol::policy::*;
}
pub mod engine;
mod limits;
pub mod reason;
pub mod status;
pub mod workers;

#[cfg(test)]
mod tests;

pub use class::{JobClass, PendingJob, TaskNeed};
pub use config::{Limits, Mode, PolicyConfig, Preset, Rate};
pub use engine::{Dispatch, Reservation, Round, Scheduler, Standing};
pub use reason::Reason;
pub use status::Status;
