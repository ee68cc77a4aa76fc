//! End-to-end tests: the real `warren-submitter`, `warren-scheduler` and `warren-worker`
//! binaries as processes, against the real RabbitMQ and Redis, driven over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod commands;
mod crash;
mod flow;
mod harness;
mod lifecycle;
mod metrics;
mod policies;
mod routing;
