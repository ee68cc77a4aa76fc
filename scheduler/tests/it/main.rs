//! Integration tests of the scheduler against the real RabbitMQ and Redis. The scheduler runs
//! in-process; the tests play the workers: they publish heartbeats, read pool queues and make
//! the transitions a worker would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lifecycle;
mod policies;
mod release;
mod signing;
mod support;
