//! `AppState`: what every handler shares (store, publisher, waiters, limits), and how it is
//! built from [`SubmitterArgs`].

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use warren_kit::args::safe_url;
use warren_protocol::{JobSpec, Task};
use warren_store::{RedisTls, Store, StoreError, StoreOptions};
use warren_topology::{Publisher, Topology, TopologyOptions, connect_pool_tls, declare_core};

use crate::args::SubmitterArgs;
use crate::auth::Auth;
use crate::placement::{Warning, WorkerCache};
use crate::problem::ApiError;
use crate::publisher::PublisherSlot;
use crate::rate::TenantLimiter;
use crate::server::Limits;
use crate::waiters::Waiters;

/// How long the list of known tasks is trusted before it is read again.
const TASKS_TTL: Duration = Duration::from_secs(2);
/// AMQP connections kept by the pool; the submitter publishes on one channel.
const AMQP_POOL_SIZE: usize = 2;

/// What the HTTP handlers share. Cheap to clone.
///
/// Built by [`build_state`](crate::build_state); it owns one background task (the job event
/// subscription behind long-polls), which stops when [`serve`](crate::serve) returns or when
/// the last clone is dropped.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    publisher: PublisherSlot,
    topology: Topology,
    tasks: TaskCache,
    workers: WorkerCache,
    waiters: Waiters,
    max_body_bytes: usize,
    request_timeout: Duration,
    idempotency_ttl: Duration,
    ready_requires_scheduler: bool,
    auth: Auth,
    submit_limit: Option<TenantLimiter>,
    limits: Limits,
    /// Tracks the event listener and every accept task, so shutdown can wait for them.
    tracker: TaskTracker,
    /// Cancelled at shutdown: stops the listener and ends long-polls early.
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
            .field("waiters", &self.inner.waiters.len())
            .finish_non_exhaustive()
    }
}

/// Connects to Redis and RabbitMQ, declares the core topology (idempotent) and starts the
/// job event subscription, with `options` for the declared queues (tests set `x-expires`).
pub(crate) async fn build(
    args: &SubmitterArgs,
    options: TopologyOptions,
) -> anyhow::Result<AppState> {
    // WARREN_QUEUE_TYPE decides the queue type; `options` only adds what tests set.
    let options = TopologyOptions {
        queue_type: args
            .common
            .amqp
            .queue_type
            .parse()
            .map_err(anyhow::Error::msg)?,
        ..options
    };
    args.check()?;
    // Before anything is counted: series recorded with no recorder installed are lost.
    warren_kit::metrics::install();
    let security = &args.security;
    let auth = Auth::load(security.tokens_file.as_deref(), security.no_auth)?;
    match &auth {
        Auth::Tokens(table) => {
            let path = security
                .tokens_file
                .as_deref()
                .unwrap_or(std::path::Path::new(""));
            tracing::info!(tokens = table.len(), path = %path.display(), "authentication on");
        }
        Auth::Off => {
            tracing::warn!(
                "AUTHENTICATION IS OFF (--no-auth): anyone who can reach this API may read, \
                 submit and cancel every tenant's jobs and change the scheduler policy; \
                 set WARREN_TOKENS_FILE for anything but local use"
            );
        }
    }
    let tls = match (&security.tls_cert_file, &security.tls_key_file) {
        (Some(cert), Some(key)) => Some(crate::server::tls_acceptor(cert, key)?),
        _ => None,
    };
    let common = &args.common;
    let ns = common.namespace.clone();
    let store_options = StoreOptions {
        result_ttl: common.result_ttl,
        ..StoreOptions::default()
    };
    let redis_tls = RedisTls::from_args(&common.redis.tls)?;
    let store = Store::connect_args(&common.redis, &ns, store_options, &redis_tls)
        .await
        .with_context(|| format!("connecting to redis at {}", common.redis.describe()))?;
    let pool = connect_pool_tls(
        &common.amqp.url,
        "warren-submitter",
        AMQP_POOL_SIZE,
        common.amqp.ca_pem()?,
    )
    .await
    .with_context(|| format!("connecting to rabbitmq at {}", safe_url(&common.amqp.url)))?;
    let topology = Topology::new(ns, options).with_signing(
        warren_topology::signing::from_config(common.signing.key_text()?.as_deref())
            .map_err(anyhow::Error::msg)?,
    );
    let publisher = Publisher::open(&pool, &topology)
        .await
        .context("opening the publisher channel")?;
    declare_core(publisher.channel(), &topology)
        .await
        .context("declaring the core topology")?;

    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let waiters = Waiters::default();
    waiters.spawn_listener(store.clone(), &tracker, stop.clone());
    Ok(AppState {
        inner: Arc::new(Inner {
            store,
            publisher: PublisherSlot::new(pool, topology.clone(), publisher),
            topology,
            tasks: TaskCache::default(),
            workers: WorkerCache::default(),
            waiters,
            max_body_bytes: args.max_body_bytes,
            request_timeout: args.request_timeout,
            idempotency_ttl: common.result_ttl.max(Duration::from_secs(60)),
            ready_requires_scheduler: args.ready_requires_scheduler,
            auth,
            submit_limit: security.tenant_submit_rate.map(TenantLimiter::new),
            limits: Limits {
                idle_timeout: security.idle_timeout,
                max_connections: security.max_connections,
                tls,
            },
            tracker,
            stop,
        }),
    })
}

impl AppState {
    /// Counts the requests waiting in a long-poll right now (each one unregisters when it
    /// returns or its client goes away).
    pub fn waiting(&self) -> usize {
        self.inner.waiters.len()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn publisher(&self) -> &PublisherSlot {
        &self.inner.publisher
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub(crate) fn waiters(&self) -> &Waiters {
        &self.inner.waiters
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Whether readiness needs an active scheduler.
    pub(crate) fn ready_requires_scheduler(&self) -> bool {
        self.inner.ready_requires_scheduler
    }

    pub(crate) fn idempotency_ttl(&self) -> Duration {
        self.inner.idempotency_ttl
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    pub(crate) fn limits(&self) -> Limits {
        self.inner.limits.clone()
    }

    /// Takes `jobs` submissions from `tenant`'s allowance; 429 with `Retry-After` when it
    /// is spent.
    pub(crate) fn charge_submissions(&self, tenant: &str, jobs: usize) -> Result<(), ApiError> {
        let Some(limiter) = &self.inner.submit_limit else {
            return Ok(());
        };
        limiter.take(tenant, jobs, Instant::now()).map_err(|wait| {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::rate_limited(
                seconds,
                format!(
                    "tenant {tenant:?} submits faster than this server allows; retry after {seconds} s"
                ),
            )
        })
    }

    /// The token cancelled at shutdown.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.inner.stop
    }

    /// Runs `work` as a tracked task that finishes even if the request is abandoned, so a
    /// client that hangs up between the Redis write and the publish cannot leave half a job.
    /// It keeps the request's span, so its logs carry the correlation id.
    pub(crate) fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.tracker.spawn(work.in_current_span())
    }

    /// Tells whether some worker (or the built-ins) can run task `name`, from a list cached
    /// for a couple of seconds.
    pub(crate) async fn knows_task(&self, name: &str) -> Result<bool, StoreError> {
        if let Some(known) = self.inner.tasks.fresh() {
            return Ok(known.binary_search_by(|t| t.as_str().cmp(name)).is_ok());
        }
        let known = Arc::new(self.inner.store.known_tasks().await?);
        self.inner.tasks.put(Arc::clone(&known));
        Ok(known.binary_search_by(|t| t.as_str().cmp(name)).is_ok())
    }

    /// Says why no live worker could run this job right now (nothing if one can; see
    /// [`WorkerCache::warnings`]). A registry that cannot be read gives no warning: the
    /// warning is advice, and the job is accepted either way.
    pub(crate) async fn placement_warnings(&self, spec: &JobSpec, task: &Task) -> Vec<Warning> {
        match self
            .inner
            .workers
            .warnings(&self.inner.store, spec, task)
            .await
        {
            Ok(warnings) => warnings,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the worker registry for placement warnings");
                Vec::new()
            }
        }
    }

    /// Stops the background work and waits for accept tasks still running.
    pub(crate) async fn drain(&self) {
        self.inner.stop.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

/// The sorted list of known task names, with the time it was read.
#[derive(Default)]
struct TaskCache {
    // A std mutex: held only to copy an `Arc` in or out.
    cached: Mutex<Option<(Instant, Arc<Vec<String>>)>>,
}

impl TaskCache {
    fn fresh(&self) -> Option<Arc<Vec<String>>> {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_at, known) = cached.as_ref()?;
        (read_at.elapsed() < TASKS_TTL).then(|| Arc::clone(known))
    }

    fn put(&self, known: Arc<Vec<String>>) {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        *cached = Some((Instant::now(), known));
    }
}
