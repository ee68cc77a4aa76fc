//! Warren's Redis side: the key schema, atomic job state transitions (Lua), results, logs,
//! listing indexes, worker registry, known tasks and the job event channel.
//!
//! Only this crate knows key names. Every state change goes through one Lua script that checks
//! the current state against `warren-protocol`'s transition table (invariant I1), and the same
//! script publishes the change on `{ns}:events`, so an event exists exactly when a transition
//! happened. The store does not talk to RabbitMQ.

mod actions;
mod dead;
mod error;
mod events;
mod expiry;
mod jobs;
mod keys;
mod link;
mod listing;
mod logs;
mod observe;
mod pending;
mod purge;
mod record;
mod scripts;
mod submit_ops;
mod workers;

pub use actions::{JobAction, MAX_ACTIONS, RETRY_OF_LABEL};
pub use dead::{DeadLetter, DeadPage, REQUEUED_FROM_LABEL, RequeueError, Requeued, is_dead_cursor};
pub use error::StoreError;
pub use events::JobEvent;
pub use jobs::{ClaimOutcome, LeaseRenewal, NewJob, SubmitKey, Transition, TransitionOutcome};
pub use keys::Keys;
pub use link::REPLICA_WAIT;
pub use listing::{FilterError, FilterParams, JobFilter, Page};
pub use logs::{LogLine, LogStream};
pub use observe::{CounterSample, Resolution, SchedulerInfo, WorkerEntry};
pub use pending::{PendingEntry, PendingPosition};
pub use record::JobRecord;

use std::time::Duration;

use redis::aio::ConnectionManager;
use warren_protocol::Namespace;

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a finished job (and its log) is kept.
    pub result_ttl: Duration,
    /// Most lines kept in one job's log stream (the oldest go first).
    pub log_max_lines: u64,
    /// Most bytes of lines one job's log takes in, newlines counted; later lines are dropped
    /// and the job record says `log_truncated` (see [`Store::append_log`]).
    pub log_max_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            result_ttl: Duration::from_secs(7 * 24 * 3600),
            log_max_lines: 10_000,
            log_max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// A handle on Redis for one namespace. Cheap to clone: the connection manager multiplexes
/// and reconnects by itself.
#[derive(Clone)]
pub struct Store {
    link: std::sync::Arc<link::Link>,
    keys: Keys,
    options: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("namespace", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

/// TLS material for a `rediss://` URL beyond the system's roots, as PEM bytes.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// The CA(s) that signed Redis' certificate, trusted instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and its key, for `tls-auth-clients yes`.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.client_pem.is_some())
            .finish()
    }
}

impl RedisTls {
    /// Reads the files that are given.
    ///
    /// # Errors
    /// Fails when a file cannot be read; the message names it.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        client_cert: Option<&std::path::Path>,
        client_key: Option<&std::path::Path>,
    ) -> std::io::Result<Self> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))
            })
        };
        let ca_pem = ca.map(read).transpose()?;
        let client_pem = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        Ok(Self { ca_pem, client_pem })
    }

    /// Reads the files `args` names.
    ///
    /// # Errors
    /// Fails when a file cannot be read; the message names it.
    pub fn from_args(args: &warren_kit::RedisTlsArgs) -> std::io::Result<Self> {
        Self::from_files(
            args.ca_file.as_deref(),
            args.client_cert_file.as_deref(),
            args.client_key_file.as_deref(),
        )
    }

    fn is_empty(&self) -> bool {
        self.ca_pem.is_none() && self.client_pem.is_none()
    }
}

impl Store {
    /// Connects to Redis and checks that it answers.
    ///
    /// # Errors
    /// Returns [`StoreError::Connect`] when the URL is invalid or Redis does not answer.
    pub async fn connect(
        url: &str,
        ns: &Namespace,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        Self::connect_tls(url, ns, options, &RedisTls::default()).await
    }

    /// Like [`Store::connect`], with a private CA or a client certificate for a `rediss://`
    /// URL (rustls; without them a `rediss://` URL trusts the system's roots).
    ///
    /// # Errors
    /// Returns [`StoreError::Connect`] when the URL is invalid, the TLS material does not
    /// parse, or Redis does not answer.
    pub async fn connect_tls(
        url: &str,
        ns: &Namespace,
        options: StoreOptions,
        tls: &RedisTls,
    ) -> Result<Self, StoreError> {
        let client = if tls.is_empty() {
            redis::Client::open(url)
        } else {
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: tls.client_pem.clone().map(|(client_cert, client_key)| {
                        redis::ClientTlsConfig {
                            client_cert,
                            client_key,
                        }
                    }),
                    root_cert: tls.ca_pem.clone(),
                },
            )
        }
        .map_err(StoreError::Connect)?;
        let store = Self {
            link: link::fixed(client).await?,
            keys: Keys::new(ns),
            options,
        };
        store.ping().await?;
        Ok(store)
    }

    /// Connects to what `args` names: `WARREN_REDIS_SENTINELS` and `WARREN_REDIS_MASTER`
    /// when set (the store then follows a failover by itself), else `WARREN_REDIS_URL` with
    /// `tls`.
    ///
    /// # Errors
    /// See [`Store::connect_tls`]; also when no Sentinel names a primary.
    pub async fn connect_args(
        args: &warren_kit::RedisArgs,
        ns: &Namespace,
        options: StoreOptions,
        tls: &RedisTls,
    ) -> Result<Self, StoreError> {
        let Some((sentinels, master)) = args.sentinel() else {
            return Self::connect_tls(&args.url, ns, options, tls).await;
        };
        if !tls.is_empty() {
            return Err(StoreError::Connect(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "WARREN_REDIS_SENTINELS does not support TLS files yet: unset WARREN_REDIS_CA_FILE \
                 and the client certificate, or use WARREN_REDIS_URL",
            ))));
        }
        let store = Self {
            link: link::sentinel(&sentinels, &master).await?,
            keys: Keys::new(ns),
            options,
        };
        store.ping().await?;
        Ok(store)
    }

    /// With Sentinel and replicas: waits (at most [`REPLICA_WAIT`]) until a replica has
    /// every write made so far on this store's connection, so that a failover right after
    /// cannot roll a 202'd job back. A no-op on a lone Redis. Returns how many replicas
    /// acknowledged (`None` when there are none to wait for).
    ///
    /// # Errors
    /// Returns [`StoreError::Redis`] when Redis fails.
    pub async fn wait_replicated(&self) -> Result<Option<u32>, StoreError> {
        if !self.link.replicated() {
            return Ok(None);
        }
        let mut conn = self.conn();
        let acked: u32 = redis::cmd("WAIT")
            .arg(1)
            .arg(u64::try_from(REPLICA_WAIT.as_millis()).unwrap_or(u64::MAX))
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("waiting for a replica", e))?;
        if acked == 0 {
            tracing::warn!(
                wait = ?REPLICA_WAIT,
                "no Redis replica acknowledged in time: answering anyway"
            );
        }
        Ok(Some(acked))
    }

    /// Returns the key schema.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Returns the store's options.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    /// Returns [`StoreError::Redis`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError::redis("ping", e))?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.link.manager()
    }

    pub(crate) fn client(&self) -> redis::Client {
        self.link.current().client
    }
}
