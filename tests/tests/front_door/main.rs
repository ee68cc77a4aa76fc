//! The front door: what a new user runs first, run as processes. `warren up` in a namespace
//! of its own, then the README's quick start (its commands, read from the README) and the
//! Python client's test suite against it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod python_client;
mod quick_start;
mod up;
