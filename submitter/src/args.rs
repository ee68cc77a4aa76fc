//! The submitter's settings, parsed once in `main` (or built directly by tests and `warren up`).

use std::net::SocketAddr;
use std::time::Duration;

use warren_kit::CommonArgs;

/// Settings of the submitter service.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitterArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "WARREN_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "WARREN_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 503 (e.g. 30s). Long-polls
    /// (`/v1/jobs/{id}/wait`) have their own `timeout_s` and are exempt.
    #[arg(
        long,
        env = "WARREN_REQUEST_TIMEOUT",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub request_timeout: Duration,
    /// Whether `/readyz` fails (503) while no scheduler is active. Submissions are still
    /// durable without one, but nothing would run them; turn off for a submitter that is
    /// meant to run alone. The body says `scheduler: active|missing` either way.
    #[arg(
        long,
        env = "WARREN_READY_REQUIRES_SCHEDULER",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub ready_requires_scheduler: bool,
    /// Connections and namespace.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl SubmitterArgs {
    /// Checks what clap cannot: limits that would make the service useless.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_body_bytes >= 1024,
            "WARREN_MAX_BODY_BYTES must be at least 1024, got {}",
            self.max_body_bytes
        );
        anyhow::ensure!(
            self.request_timeout >= Duration::from_millis(100),
            "WARREN_REQUEST_TIMEOUT must be at least 100ms, got {:?}",
            self.request_timeout
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use warren_kit::{AmqpArgs, RedisArgs};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SubmitterArgs,
    }

    fn args() -> SubmitterArgs {
        SubmitterArgs {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            ready_requires_scheduler: true,
            common: CommonArgs {
                amqp: AmqpArgs {
                    url: "amqp://127.0.0.1".into(),
                },
                redis: RedisArgs {
                    url: "redis://127.0.0.1".into(),
                },
                namespace: warren_protocol::Namespace::default(),
                result_ttl: Duration::from_secs(60),
            },
        }
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--http-addr",
            "127.0.0.1:0",
            "--max-body-bytes",
            "2048",
            "--request-timeout",
            "5s",
            "--redis-url",
            "redis://h:1",
        ])
        .unwrap();
        assert_eq!(cli.args.http_addr.port(), 0);
        assert_eq!(cli.args.max_body_bytes, 2048);
        assert_eq!(cli.args.request_timeout, Duration::from_secs(5));
        assert_eq!(cli.args.common.redis.url, "redis://h:1");
        cli.args.check().unwrap();
    }

    #[test]
    fn useless_limits_are_refused() {
        args().check().unwrap();
        let mut tiny_body = args();
        tiny_body.max_body_bytes = 10;
        let err = tiny_body.check().unwrap_err().to_string();
        assert!(err.contains("WARREN_MAX_BODY_BYTES"), "{err}");
        let mut no_time = args();
        no_time.request_timeout = Duration::ZERO;
        let err = no_time.check().unwrap_err().to_string();
        assert!(err.contains("WARREN_REQUEST_TIMEOUT"), "{err}");
    }
}
