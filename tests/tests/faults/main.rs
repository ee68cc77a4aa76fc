//! The fault-injection suite (issue 6): each scenario starts a Warren system of its own (the
//! real binaries as processes), submits a batch of jobs that write a ledger, injects one
//! fault, waits until the system is quiet and checks, against the ledger the jobs wrote,
//! that every accepted (202) job has exactly one terminal state, that no refused (503) job
//! ran, and that no job ran twice unless the fault made it unavoidable (counted either way).
//! Faults that break a broker or Redis use a RabbitMQ node or a `redis-server` the scenario
//! starts for itself. Each scenario prints a `FAULTS-REPORT` line with its counts
//! (`cargo test -p warren-e2e --test faults -- --nocapture`); `docs/reliability.md` has the
//! table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod cluster;
mod network;
mod processes;
mod redis;
mod system;
