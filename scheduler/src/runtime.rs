//! The scheduler's life: hold the leader lease (one active scheduler per namespace), and
//! while holding it run sessions; reconnect with backoff; a standby waits for the lease.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warren_kit::args::safe_url;
use warren_protocol::WorkerId;
use warren_store::{Store, StoreOptions};
use warren_topology::{Topology, connect_pool_tls};

use crate::args::SchedulerArgs;
use crate::session::Session;

pub(crate) async fn run(args: SchedulerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = args.policy.config()?;
    let common = &args.common;
    let store = Store::connect_args(
        &common.redis,
        &common.namespace,
        StoreOptions {
            result_ttl: common.result_ttl,
            ..Default::default()
        },
        &warren_store::RedisTls::from_args(&common.redis.tls)?,
    )
    .await
    .with_context(|| format!("connecting to redis at {}", common.redis.describe()))?;
    let pool = connect_pool_tls(
        &common.amqp.url,
        "warren-scheduler",
        1,
        common.amqp.ca_pem()?,
    )
    .await
    .with_context(|| format!("connecting to rabbitmq at {}", safe_url(&common.amqp.url)))?;
    let topology = Topology::configured(
        common.namespace.clone(),
        &common.amqp.queue_type,
        common.signing.key_text()?.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    warren_kit::metrics::serve_if_set(&args.metrics, &shutdown).await?;
    let instance = WorkerId::generate("scheduler").to_string();
    info!(namespace = %common.namespace, policy = %config.preset, %instance, "scheduler starting");

    let mut backoff = warren_kit::Backoff::default();
    let mut announced_standby = false;
    while !shutdown.is_cancelled() {
        match store.lead(&instance, args.leader_ttl).await {
            Ok(true) => {}
            Ok(false) => {
                if !announced_standby {
                    info!("another scheduler is active; standing by");
                    announced_standby = true;
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(args.leader_ttl / 5) => continue,
                }
            }
            Err(error) => {
                warn!(%error, "cannot reach redis for the leader lease");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        }
        announced_standby = false;
        info!(%instance, "this scheduler is active");
        let started = std::time::Instant::now();
        let result =
            match Session::open(&args, config.clone(), &pool, &topology, &store, &instance).await {
                Ok(mut session) => session.run(&shutdown).await,
                Err(error) => Err(error),
            };
        match result {
            Ok(()) => break,
            Err(error) => {
                if started.elapsed() > Duration::from_secs(30) {
                    backoff.reset();
                }
                warn!(error = format!("{error:#}"), retry_in = ?backoff.peek(), "scheduler lost its session");
                crate::metrics::amqp_reconnect();
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff.next_delay()) => {},
                }
            }
        }
    }
    // Hand over at once rather than after the lease lapses.
    let _ = store.resign(&instance).await;
    pool.close();
    info!("scheduler stopped");
    Ok(())
}
