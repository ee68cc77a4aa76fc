//! What every Warren service shares that is not domain: command-line/environment argument
//! groups, bearer tokens and roles (`auth`, for the submitter and the dashboard), telemetry
//! set-up, Prometheus metrics and the shutdown signal. With the `testkit` feature it also
//! holds the helpers tests use to get an isolated namespace and to wait without sleeping.
//!
//! Domain types live in `warren-protocol`; broker and Redis code in `warren-topology` and
//! `warren-store`. Nothing here knows what a job is.

pub mod args;
pub mod auth;
pub mod backoff;
pub mod cli;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use args::{AmqpArgs, CommonArgs, RedisArgs, RedisTlsArgs, ShutdownArgs, TelemetryArgs};
pub use backoff::Backoff;
pub use metrics::MetricsArgs;
