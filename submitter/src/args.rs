//! The submitter's settings, parsed once in `main` (or built directly by tests and `warren up`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use warren_kit::CommonArgs;

pub use crate::rate::Rate;

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
    /// Tokens, rate limits and connection limits.
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Connections and namespace.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Who may call the API, how fast, and over how many connections.
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// JSON file of bearer tokens (SHA-256 hashes), their roles and tenants; see the
    /// submitter's README. Required unless --no-auth is given.
    #[arg(long, env = "WARREN_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Serve without authentication: every caller may do everything, for every tenant.
    /// For local use only; a warning is logged at start.
    #[arg(long, env = "WARREN_NO_AUTH")]
    pub no_auth: bool,
    /// Most submissions per tenant (jobs, a batch counts each), e.g. 100/s or 600/m; per
    /// submitter replica. Unlimited when unset.
    #[arg(long, env = "WARREN_TENANT_SUBMIT_RATE")]
    pub tenant_submit_rate: Option<Rate>,
    /// A connection that sends no complete request head for this long (idle between
    /// requests, or trickling its headers) is closed.
    #[arg(
        long,
        env = "WARREN_IDLE_TIMEOUT",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub idle_timeout: Duration,
    /// Most connections open at once; further clients wait to be accepted.
    #[arg(long, env = "WARREN_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// PEM certificate chain to serve HTTPS with (with --tls-key-file); plain HTTP when
    /// unset (e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "WARREN_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "WARREN_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

impl SecurityArgs {
    /// No authentication, no rate limit, default connection limits: for `warren up` and
    /// tests.
    pub fn no_auth() -> Self {
        Self {
            tokens_file: None,
            no_auth: true,
            tenant_submit_rate: None,
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
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
        anyhow::ensure!(
            self.security.idle_timeout >= Duration::from_millis(100),
            "WARREN_IDLE_TIMEOUT must be at least 100ms, got {:?}",
            self.security.idle_timeout
        );
        anyhow::ensure!(
            self.security.max_connections >= 1,
            "WARREN_MAX_CONNECTIONS must be at least 1"
        );
        anyhow::ensure!(
            self.security.tls_cert_file.is_some() == self.security.tls_key_file.is_some(),
            "WARREN_TLS_CERT_FILE and WARREN_TLS_KEY_FILE go together: set both or neither"
        );
        // The same rule, and words, as the dashboard's.
        warren_kit::auth::Auth::check(self.security.tokens_file.as_deref(), self.security.no_auth)
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
            security: SecurityArgs::no_auth(),
            common: CommonArgs {
                amqp: AmqpArgs::new("amqp://127.0.0.1"),
                redis: RedisArgs::new("redis://127.0.0.1"),
                namespace: warren_protocol::Namespace::default(),
                result_ttl: Duration::from_secs(60),
                signing: Default::default(),
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
            "--no-auth",
            "--tenant-submit-rate",
            "10/s",
            "--idle-timeout",
            "5s",
        ])
        .unwrap();
        assert_eq!(cli.args.http_addr.port(), 0);
        assert_eq!(cli.args.max_body_bytes, 2048);
        assert_eq!(cli.args.request_timeout, Duration::from_secs(5));
        assert_eq!(cli.args.common.redis.url, "redis://h:1");
        assert!(cli.args.security.no_auth);
        assert_eq!(cli.args.security.idle_timeout, Duration::from_secs(5));
        assert!(cli.args.security.tenant_submit_rate.is_some());
        cli.args.check().unwrap();
        let both = Cli::try_parse_from(["x", "--no-auth", "--tokens-file", "t.json"]).unwrap();
        let err = both.args.check().unwrap_err().to_string();
        assert!(err.contains("contradict"), "{err}");
    }

    #[test]
    fn auth_must_be_configured_or_explicitly_off() {
        let mut open = args();
        open.security.no_auth = false;
        let err = open.check().unwrap_err().to_string();
        assert!(err.contains("WARREN_TOKENS_FILE"), "{err}");
        open.security.tokens_file = Some("tokens.json".into());
        open.check().unwrap();
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
