//! Integration tests of the submitter against the real RabbitMQ and Redis (URLs from
//! `WARREN_TEST_AMQP_URL` / `WARREN_TEST_REDIS_URL`). Each test has its own namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod batch;
mod cancel;
mod dead;
mod errors;
mod failures;
mod fuzz;
mod limits;
mod openapi;
mod reads;
mod ready;
mod serve;
mod submit;
mod support;
mod tls;
mod wait;
mod warnings;
