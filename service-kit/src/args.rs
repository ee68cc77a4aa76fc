//! Argument groups that several binaries `#[command(flatten)]`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use warren_protocol::Namespace;

/// Where RabbitMQ is.
#[derive(Clone, Args)]
pub struct AmqpArgs {
    /// RabbitMQ URL (amqp://user:password@host:port/vhost), or the URLs of a cluster's
    /// nodes separated by commas: each connection goes to a live node, tried in a shuffled
    /// order.
    #[arg(
        id = "amqp_url",
        long = "amqp-url",
        env = "WARREN_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub url: String,
    /// PEM file of the CA(s) that signed RabbitMQ's certificate (amqps://), trusted instead
    /// of the system's roots.
    #[arg(
        id = "amqp_ca_file",
        long = "amqp-ca-file",
        env = "WARREN_AMQP_CA_FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// `classic` or `quorum`: the type of every durable queue Warren declares (quorum
    /// queues replicate over a cluster's nodes; docs/scaling.md says when to choose which).
    #[arg(
        id = "queue_type",
        long = "queue-type",
        env = "WARREN_QUEUE_TYPE",
        default_value = "classic",
        value_parser = ["classic", "quorum"]
    )]
    pub queue_type: String,
}

impl AmqpArgs {
    /// A plain `url`, with no CA file, and classic queues.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_file: None,
            queue_type: "classic".to_owned(),
        }
    }

    /// The CA file's PEM text, when one is given.
    ///
    /// # Errors
    /// Fails when the file cannot be read; the message names it.
    pub fn ca_pem(&self) -> anyhow::Result<Option<String>> {
        self.ca_file
            .as_deref()
            .map(|path| {
                std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("reading WARREN_AMQP_CA_FILE {}: {e}", path.display())
                })
            })
            .transpose()
    }
}

/// Where Redis is.
#[derive(Clone, Args)]
pub struct RedisArgs {
    /// Redis URL (redis://[:password@]host:port[/db], or rediss:// for TLS).
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "WARREN_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,
    /// TLS files for a rediss:// URL.
    #[command(flatten)]
    pub tls: RedisTlsArgs,
    /// Redis Sentinels (host:port, separated by commas) that name the primary, in place of
    /// --redis-url: the services follow a failover by themselves.
    #[arg(
        id = "redis_sentinels",
        long = "redis-sentinels",
        env = "WARREN_REDIS_SENTINELS",
        requires = "redis_master"
    )]
    pub sentinels: Option<String>,
    /// The name the Sentinels monitor the primary under (`sentinel monitor NAME …`).
    #[arg(
        id = "redis_master",
        long = "redis-master",
        env = "WARREN_REDIS_MASTER",
        requires = "redis_sentinels"
    )]
    pub master: Option<String>,
}

impl RedisArgs {
    /// A plain `url`, with no TLS files and no Sentinels.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls: RedisTlsArgs::default(),
            sentinels: None,
            master: None,
        }
    }

    /// The Sentinels' `host:port`s and the primary's name, when Sentinel is configured.
    pub fn sentinel(&self) -> Option<(Vec<String>, String)> {
        let sentinels: Vec<String> = self
            .sentinels
            .as_deref()?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let master = self.master.clone()?;
        (!sentinels.is_empty()).then_some((sentinels, master))
    }

    /// Where Redis is, for messages: the URL without its password, or the Sentinels.
    pub fn describe(&self) -> String {
        match self.sentinel() {
            Some((sentinels, master)) => {
                format!("primary {master} of sentinels {}", sentinels.join(","))
            }
            None => safe_url(&self.url),
        }
    }
}

/// TLS files for `rediss://`: a private CA, and a client certificate when Redis asks for one
/// (`tls-auth-clients yes`). Without a CA file the system's roots are trusted.
#[derive(Debug, Clone, Default, Args)]
pub struct RedisTlsArgs {
    /// PEM file of the CA(s) that signed Redis' certificate, trusted instead of the system's
    /// roots.
    #[arg(
        id = "redis_ca_file",
        long = "redis-ca-file",
        env = "WARREN_REDIS_CA_FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate to present to Redis (with --redis-client-key-file).
    #[arg(
        id = "redis_client_cert_file",
        long = "redis-client-cert-file",
        env = "WARREN_REDIS_CLIENT_CERT_FILE",
        requires = "redis_client_key_file"
    )]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of --redis-client-cert-file.
    #[arg(
        id = "redis_client_key_file",
        long = "redis-client-key-file",
        env = "WARREN_REDIS_CLIENT_KEY_FILE",
        requires = "redis_client_cert_file"
    )]
    pub client_key_file: Option<PathBuf>,
}

/// Connection settings every service needs.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// RabbitMQ connection.
    #[command(flatten)]
    pub amqp: AmqpArgs,
    /// Redis connection.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Prefix of every queue, exchange and Redis key this deployment uses.
    #[arg(long, env = "WARREN_NAMESPACE", default_value = "warren")]
    pub namespace: Namespace,
    /// How long finished jobs, their results and logs are kept (e.g. 7d).
    #[arg(long, env = "WARREN_RESULT_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub result_ttl: Duration,
    /// Keys that sign and check job messages.
    #[command(flatten)]
    pub signing: SigningArgs,
}

/// The HMAC keys job messages are signed with (see docs/confinement.md). Without any, messages
/// are not signed and anyone who can publish to RabbitMQ can run jobs.
#[derive(Clone, Default, Args)]
pub struct SigningArgs {
    /// Signing keys, separated by commas: the first signs, all verify (for rotation).
    #[arg(
        id = "signing_key",
        long = "signing-key",
        env = "WARREN_SIGNING_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
    /// A file holding the signing keys, one a line (the first signs).
    #[arg(
        id = "signing_key_file",
        long = "signing-key-file",
        env = "WARREN_SIGNING_KEY_FILE",
        conflicts_with = "signing_key"
    )]
    pub key_file: Option<std::path::PathBuf>,
}

impl SigningArgs {
    /// The configured key text, read from the file if one is named; `None` if neither is set.
    ///
    /// # Errors
    /// When the key file cannot be read.
    pub fn key_text(&self) -> anyhow::Result<Option<String>> {
        match (&self.key, &self.key_file) {
            (_, Some(path)) => std::fs::read_to_string(path).map(Some).map_err(|e| {
                anyhow::anyhow!("reading WARREN_SIGNING_KEY_FILE {}: {e}", path.display())
            }),
            (Some(key), None) => Ok(Some(key.clone())),
            (None, None) => Ok(None),
        }
    }
}

impl fmt::Debug for SigningArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningArgs")
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// Redacts the passwords of a URL, or of every URL of a comma-separated list (the nodes of
/// a RabbitMQ cluster), so URLs can be logged and shown in errors.
pub fn safe_url(url: &str) -> String {
    url.split(',')
        .map(safe_one_url)
        .collect::<Vec<_>>()
        .join(",")
}

fn safe_one_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The last `@`: a password may hold one.
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl fmt::Debug for AmqpArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpArgs")
            .field("url", &safe_url(&self.url))
            .field("ca_file", &self.ca_file)
            .field("queue_type", &self.queue_type)
            .finish()
    }
}

impl fmt::Debug for RedisArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisArgs")
            .field("url", &safe_url(&self.url))
            .field("tls", &self.tls)
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .finish()
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Coloured, multi-field lines for a terminal.
    Pretty,
    /// One JSON object a line, for compose and log shippers.
    Json,
}

/// Logging settings. `RUST_LOG` overrides the default filter.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "WARREN_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
}

/// How long a stopping service may take to finish its work.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// Grace period for in-flight work on SIGTERM (e.g. 30s).
    #[arg(long, env = "WARREN_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        telemetry: TelemetryArgs,
        #[command(flatten)]
        shutdown: ShutdownArgs,
    }

    #[test]
    fn arg_groups_fit_together() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["x", "--amqp-url", "amqp://a", "--redis-url", "redis://b"])
            .unwrap();
        assert_eq!(cli.common.amqp.url, "amqp://a");
        assert_eq!(cli.common.redis.url, "redis://b");
        assert_eq!(cli.common.amqp.queue_type, "classic");
        let cli = Cli::try_parse_from(["x", "--queue-type", "quorum"]).unwrap();
        assert_eq!(cli.common.amqp.queue_type, "quorum");
        assert!(Cli::try_parse_from(["x", "--queue-type", "mirrored"]).is_err());
        assert!(Cli::try_parse_from(["x", "--namespace", "bad name"]).is_err());
    }

    #[test]
    fn signing_keys_come_from_the_flag_or_a_file_not_both() {
        let cli = Cli::try_parse_from(["x", "--signing-key", "k1,k2"]).unwrap();
        assert_eq!(
            cli.common.signing.key_text().unwrap().as_deref(),
            Some("k1,k2")
        );
        assert!(!format!("{:?}", cli.common.signing).contains("k1"));
        let file = std::env::temp_dir().join(format!("warren-keys-{}", std::process::id()));
        std::fs::write(&file, "k3\nk4\n").unwrap();
        let cli = Cli::try_parse_from(["x", "--signing-key-file", file.to_str().unwrap()]).unwrap();
        assert_eq!(
            cli.common.signing.key_text().unwrap().as_deref(),
            Some("k3\nk4\n")
        );
        std::fs::remove_file(&file).unwrap();
        let err = cli.common.signing.key_text().unwrap_err().to_string();
        assert!(err.contains("WARREN_SIGNING_KEY_FILE"), "{err}");
        assert!(
            Cli::try_parse_from(["x", "--signing-key", "a", "--signing-key-file", "b"]).is_err()
        );
    }

    #[test]
    fn tls_files_parse_and_pair() {
        let cli = Cli::try_parse_from([
            "x",
            "--amqp-ca-file",
            "amqp-ca.pem",
            "--redis-ca-file",
            "redis-ca.pem",
            "--redis-client-cert-file",
            "c.pem",
            "--redis-client-key-file",
            "k.pem",
        ])
        .unwrap();
        let path = |p: &str| Some(PathBuf::from(p));
        assert_eq!(cli.common.amqp.ca_file, path("amqp-ca.pem"));
        assert_eq!(cli.common.redis.tls.ca_file, path("redis-ca.pem"));
        assert_eq!(cli.common.redis.tls.client_cert_file, path("c.pem"));
        assert_eq!(cli.common.redis.tls.client_key_file, path("k.pem"));
        // A client certificate without its key (or the reverse) is refused.
        assert!(Cli::try_parse_from(["x", "--redis-client-cert-file", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["x", "--redis-client-key-file", "k.pem"]).is_err());
        let missing = AmqpArgs {
            ca_file: path("/nonexistent/ca.pem"),
            ..AmqpArgs::new("amqps://h")
        };
        let err = missing.ca_pem().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert_eq!(AmqpArgs::new("amqp://h").ca_pem().unwrap(), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            safe_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(safe_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(safe_url("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(safe_url("amqp://u:p@ss@h:1/v"), "amqp://u:***@h:1/v");
    }

    #[test]
    fn sentinels_replace_the_url_and_come_with_a_master() {
        let cli = Cli::try_parse_from([
            "x",
            "--redis-sentinels",
            "a:26379, b:26379,",
            "--redis-master",
            "warren",
        ])
        .unwrap();
        let (sentinels, master) = cli.common.redis.sentinel().unwrap();
        assert_eq!(sentinels, ["a:26379", "b:26379"]);
        assert_eq!(master, "warren");
        assert_eq!(
            cli.common.redis.describe(),
            "primary warren of sentinels a:26379,b:26379"
        );
        assert!(Cli::try_parse_from(["x", "--redis-sentinels", "a:1"]).is_err());
        assert!(Cli::try_parse_from(["x", "--redis-master", "m"]).is_err());
        assert_eq!(
            RedisArgs::new("redis://:pw@h:1").describe(),
            "redis://:***@h:1"
        );
    }

    #[test]
    fn every_password_of_a_node_list_is_redacted() {
        let list = "amqp://guest:sekrit1@a:5672/%2f, amqp://guest:sekrit2@b:5672/%2f,amqp://c:5672";
        let safe = safe_url(list);
        assert_eq!(
            safe,
            "amqp://guest:***@a:5672/%2f, amqp://guest:***@b:5672/%2f,amqp://c:5672"
        );
        let debug = format!("{:?}", AmqpArgs::new(list));
        assert!(!debug.contains("sekrit"), "{debug}");
    }
}
