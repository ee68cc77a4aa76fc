//! Integration tests of the worker library against the real RabbitMQ and Redis: a worker
//! runs in-process; jobs are written to Redis and published to its pool queue directly, so
//! these tests need no scheduler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker_outage;
mod confinement;
mod lifecycle;
mod limits;
mod outages;
mod processes;
mod signing;
mod support;
mod tasks;
