//! `AppState`: what every handler shares, and how it is built from [`DashboardArgs`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warren_kit::args::safe_url;
use warren_kit::auth::Auth;
use warren_store::{Store, StoreOptions};
use warren_topology::{AmqpPool, Publisher, Topology, TopologyError, connect_pool_tls};

use crate::args::DashboardArgs;
use crate::live::LiveMessage;
use crate::metrics::Metrics;

/// Messages the live stream holds for its slowest reader. A reader further behind skips
/// ahead (and is told to refetch), so a slow browser never holds up the fan-out.
pub(crate) const LIVE_BUFFER: usize = 256;
/// How long opening a publisher channel may take before an action gives up with 503.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// Who may look and act (`auth`).
    auth: Auth,
    store: Store,
    topology: Topology,
    amqp: AmqpPool,
    /// The channel actions publish on, reopened when it dies. A tokio mutex because opening
    /// awaits; it is held only to check or replace the channel, never while publishing.
    publisher: Mutex<Option<Publisher>>,
    live: broadcast::Sender<LiveMessage>,
    metrics: Metrics,
    request_timeout: Duration,
    /// Tracks the background tasks (event pump, sampler), so shutdown waits for them.
    tracker: TaskTracker,
    /// Cancelled at shutdown: stops the background tasks and ends live streams.
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("namespace", self.inner.topology.namespace())
            .field("live_readers", &self.inner.live.receiver_count())
            .finish_non_exhaustive()
    }
}

/// Connects to Redis and RabbitMQ and starts the background tasks (event pump, sampler).
pub(crate) async fn build(args: &DashboardArgs) -> anyhow::Result<AppState> {
    // First: a dashboard with neither tokens nor WARREN_NO_AUTH must not start at all.
    let auth = args.auth.load()?;
    match &auth {
        Auth::Tokens(table) => tracing::info!(tokens = table.len(), "dashboard authentication on"),
        Auth::Off => tracing::warn!(
            "AUTHENTICATION IS OFF (--no-auth): anyone who can reach the dashboard may see \
             every tenant's jobs and cancel, retry and requeue them; set WARREN_TOKENS_FILE \
             for anything but local use"
        ),
    }
    let common = &args.common;
    let ns = common.namespace.clone();
    let options = StoreOptions {
        result_ttl: common.result_ttl,
        ..StoreOptions::default()
    };
    let redis_tls = warren_store::RedisTls::from_args(&common.redis.tls)?;
    let store = Store::connect_args(&common.redis, &ns, options, &redis_tls)
        .await
        .with_context(|| format!("connecting to redis at {}", common.redis.describe()))?;
    // RabbitMQ is needed only by actions (a retried job goes to intake, a cancel tells the
    // workers); reading never touches it.
    let amqp = connect_pool_tls(
        &common.amqp.url,
        "warren-dashboard",
        1,
        common.amqp.ca_pem()?,
    )
    .await
    .with_context(|| format!("connecting to rabbitmq at {}", safe_url(&common.amqp.url)))?;
    let topology = Topology::configured(
        ns,
        &common.amqp.queue_type,
        common.signing.key_text()?.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let (live, _) = broadcast::channel(LIVE_BUFFER);
    let state = AppState {
        inner: Arc::new(Inner {
            auth,
            store,
            topology,
            amqp,
            publisher: Mutex::new(None),
            live,
            metrics: Metrics::install(),
            request_timeout: args.request_timeout,
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
        }),
    };
    crate::live::spawn_pump(&state);
    crate::series::spawn_sampler(&state);
    Ok(state)
}

impl AppState {
    pub(crate) fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub(crate) fn amqp(&self) -> &AmqpPool {
        &self.inner.amqp
    }

    pub(crate) fn live(&self) -> &broadcast::Sender<LiveMessage> {
        &self.inner.live
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// The token cancelled at shutdown.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.inner.stop
    }

    /// Returns a connected publisher, opening a channel when there is none or it died.
    pub(crate) async fn publisher(&self) -> Result<Publisher, TopologyError> {
        let mut current = self.inner.publisher.lock().await;
        if let Some(publisher) = current.as_ref()
            && publisher.is_connected()
        {
            return Ok(publisher.clone());
        }
        let opened = tokio::time::timeout(
            OPEN_TIMEOUT,
            Publisher::open(&self.inner.amqp, &self.inner.topology),
        )
        .await
        .map_err(|_| TopologyError::Connect {
            message: format!("opening a publisher channel took longer than {OPEN_TIMEOUT:?}"),
        })??;
        *current = Some(opened.clone());
        Ok(opened)
    }

    /// Stops the background tasks and waits for them.
    pub(crate) async fn drain(&self) {
        self.inner.stop.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}
