//! `warren admin purge`: list what a namespace left on RabbitMQ and in Redis, and remove it
//! after a confirmation.
//!
//! AMQP 0-9-1 cannot list queues, and the management plugin may not be enabled, so the
//! queues are found by name: the core names of the namespace (from `warren-topology`), the
//! pool queues of every pool its job records name, of live workers and of `--pool`. Each is
//! probed with a passive declare, which creates nothing. Redis keys are found with `SCAN`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio::io::{AsyncBufReadExt, BufReader};
use warren_kit::args::safe_url;
use warren_kit::{AmqpArgs, RedisArgs};
use warren_protocol::{Namespace, PoolName, WorkerId};
use warren_store::{Store, StoreOptions};
use warren_topology::lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use warren_topology::lapin::types::FieldTable;
use warren_topology::lapin::{Channel, ErrorKind, ExchangeKind};
use warren_topology::{AmqpPool, DELAY_RUNGS, Topology, TopologyOptions};

/// Operations on a deployment's RabbitMQ and Redis.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// List the queues, exchanges and Redis keys a namespace left, and delete them after a
    /// confirmation. Refuses while the namespace is in use (live workers, consumers).
    Purge(Box<PurgeArgs>),
    /// Print the SHA-256 of an API token, as the submitter's tokens file stores it (the same
    /// as `printf %s TOKEN | sha256sum`). Reads the token from standard input when it is not
    /// given, so that it stays out of the shell history.
    HashToken {
        /// The token; read from standard input (one line) when absent.
        token: Option<String>,
    },
}

/// What to purge.
#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// The namespace to purge. Deliberately no default and no environment variable: a purge
    /// names what it deletes.
    #[arg(long)]
    namespace: Namespace,
    #[command(flatten)]
    amqp: AmqpArgs,
    #[command(flatten)]
    redis: RedisArgs,
    /// Also look for the queue of this pool (comma-separated tags; repeatable), beyond the
    /// pools named by job records and live workers.
    #[arg(long = "pool", value_parser = PoolName::parse_list)]
    pools: Vec<PoolName>,
    /// Delete without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Only list what is left; delete nothing.
    #[arg(long, conflicts_with = "yes")]
    dry_run: bool,
}

pub(crate) async fn run(command: AdminCommand) -> anyhow::Result<bool> {
    match command {
        AdminCommand::Purge(args) => purge(*args).await,
        AdminCommand::HashToken { token } => hash_token(token).await,
    }
}

async fn hash_token(token: Option<String>) -> anyhow::Result<bool> {
    let token = match token {
        Some(token) => token,
        None => {
            let mut line = String::new();
            BufReader::new(tokio::io::stdin())
                .read_line(&mut line)
                .await
                .context("reading the token from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    anyhow::ensure!(!token.is_empty(), "the token is empty");
    println!("{}", warren_submitter::hash_token(&token));
    Ok(true)
}

/// A queue found on the broker.
struct FoundQueue {
    name: String,
    messages: u32,
    consumers: u32,
}

async fn purge(args: PurgeArgs) -> anyhow::Result<bool> {
    let ns = args.namespace.clone();
    let redis_tls = warren_store::RedisTls::from_args(&args.redis.tls)?;
    let store = Store::connect_args(&args.redis, &ns, StoreOptions::default(), &redis_tls)
        .await
        .with_context(|| format!("connecting to redis at {}", args.redis.describe()))?;
    let pool =
        warren_topology::connect_pool_tls(&args.amqp.url, "warren-admin", 1, args.amqp.ca_pem()?)
            .await
            .with_context(|| format!("connecting to rabbitmq at {}", safe_url(&args.amqp.url)))?;
    let topology = Topology::new(
        ns.clone(),
        TopologyOptions::of_queue_type(&args.amqp.queue_type).map_err(anyhow::Error::msg)?,
    );

    let keys = store.namespace_keys().await?;
    let live = store.live_workers().await?;
    let mut pools: Vec<PoolName> = store
        .pools_of_jobs(&keys)
        .await?
        .iter()
        .filter_map(|p| PoolName::parse_list(p).ok())
        .collect();
    pools.extend(live.iter().map(|w| w.pool.clone()));
    pools.extend(args.pools.iter().cloned());
    // `warren up`'s default pool, which exists even before any job ran.
    pools.extend(PoolName::parse_list("cpu").ok());
    pools.sort_by_key(ToString::to_string);
    pools.dedup();

    let mut workers: Vec<WorkerId> = store
        .workers_of_jobs(&keys)
        .await?
        .into_iter()
        .map(WorkerId::from_raw)
        .collect();
    workers.extend(live.iter().map(|w| w.worker_id.clone()));
    workers.sort();
    workers.dedup();
    let mut names = queue_names(&topology, &pools);
    names.extend(workers.iter().map(|w| topology.worker_queue(w)));
    let queues = find_queues(&pool, &names).await?;
    let exchanges = find_exchanges(&pool, &exchange_names(&topology)).await?;

    if keys.is_empty() && queues.is_empty() && exchanges.is_empty() {
        println!("namespace {ns} left nothing: no queues, exchanges or Redis keys");
        return Ok(true);
    }
    print_listing(&ns, &queues, &exchanges, &keys, store.keys().prefix());

    let consumers: u32 = queues.iter().map(|q| q.consumers).sum();
    if !live.is_empty() || consumers > 0 {
        bail!(
            "namespace {ns} is in use ({} live workers, {consumers} consumers); stop its \
             services before purging it",
            live.len()
        );
    }
    if args.dry_run {
        return Ok(true);
    }
    if !args.yes && !confirm(&ns).await? {
        println!("nothing deleted");
        return Ok(false);
    }
    for queue in &queues {
        let channel = Topology::channel(&pool).await?;
        channel
            .queue_delete(queue.name.as_str().into(), QueueDeleteOptions::default())
            .await
            .with_context(|| format!("deleting queue {}", queue.name))?;
    }
    for name in &exchanges {
        let channel = Topology::channel(&pool).await?;
        channel
            .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .with_context(|| format!("deleting exchange {name}"))?;
    }
    let deleted = store.delete_keys(&keys).await?;
    println!(
        "deleted {} queues, {} exchanges and {deleted} Redis keys of namespace {ns}",
        queues.len(),
        exchanges.len()
    );
    Ok(true)
}

/// Every queue name the namespace may have used.
fn queue_names(topology: &Topology, pools: &[PoolName]) -> Vec<String> {
    let mut names = vec![
        topology.intake_queue(),
        topology.dead_queue(),
        topology.delay_expired_queue(),
    ];
    names.extend((0..DELAY_RUNGS).map(|rung| topology.delay_queue(rung)));
    names.extend(pools.iter().map(|p| topology.pool_queue(p)));
    names
}

fn exchange_names(topology: &Topology) -> Vec<String> {
    vec![
        topology.intake_exchange(),
        topology.work_exchange(),
        topology.dead_exchange(),
        topology.delay_expired_exchange(),
        topology.events_exchange(),
        topology.control_exchange(),
    ]
}

/// Tells whether a broker error is the 404 of a passive declare of something absent.
fn is_not_found(error: &warren_topology::lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e) if e.get_id() == 404)
}

/// Probes each queue with a passive declare. A 404 closes the channel, so each probe gets
/// its own.
async fn find_queues(pool: &AmqpPool, names: &[String]) -> anyhow::Result<Vec<FoundQueue>> {
    let mut found = Vec::new();
    for name in names {
        let channel = Topology::channel(pool).await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(name.as_str().into(), options, FieldTable::default())
            .await
        {
            Ok(queue) => found.push(FoundQueue {
                name: name.clone(),
                messages: queue.message_count(),
                consumers: queue.consumer_count(),
            }),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(error).with_context(|| format!("probing queue {name}")),
        }
        close(channel).await;
    }
    Ok(found)
}

async fn find_exchanges(pool: &AmqpPool, names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for name in names {
        let channel = Topology::channel(pool).await?;
        let options = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        // The broker ignores the kind of a passive declare.
        match channel
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Direct,
                options,
                FieldTable::default(),
            )
            .await
        {
            Ok(()) => found.push(name.clone()),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(error).with_context(|| format!("probing exchange {name}")),
        }
        close(channel).await;
    }
    Ok(found)
}

/// Closes a probe's channel if the probe left it open (a 404 has closed it already).
async fn close(channel: Channel) {
    if channel.status().connected() {
        let _ = channel.close(200, "probe done".into()).await;
    }
}

fn print_listing(
    ns: &Namespace,
    queues: &[FoundQueue],
    exchanges: &[String],
    keys: &[String],
    prefix: &str,
) {
    println!("namespace {ns} left:");
    println!("  RabbitMQ queues ({}):", queues.len());
    for queue in queues {
        println!(
            "    {}  ({} messages, {} consumers)",
            queue.name, queue.messages, queue.consumers
        );
    }
    println!("  RabbitMQ exchanges ({}):", exchanges.len());
    for name in exchanges {
        println!("    {name}");
    }
    println!("  Redis keys ({}):", keys.len());
    for (kind, count) in key_kinds(keys, prefix) {
        println!("    {prefix}{kind}…  {count}");
    }
}

/// Counts keys by their first segment after the prefix (`job:`, `jobs:`, `worker:`, …).
fn key_kinds(keys: &[String], prefix: &str) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for key in keys {
        let rest = key.strip_prefix(prefix).unwrap_or(key);
        let kind = match rest.split_once(':') {
            Some((head, _)) => format!("{head}:"),
            None => rest.to_owned(),
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// Asks on stderr and reads the answer from stdin; only `y` or `yes` deletes.
async fn confirm(ns: &Namespace) -> anyhow::Result<bool> {
    eprint!("delete all of this from namespace {ns}? [y/N] ");
    let mut answer = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut answer)
        .await
        .context("reading the confirmation (pass --yes to skip it)")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_counted_by_kind() {
        let keys: Vec<String> = ["ns:job:1", "ns:job:1:log", "ns:jobs:all", "ns:tasks"]
            .into_iter()
            .map(String::from)
            .collect();
        let kinds = key_kinds(&keys, "ns:");
        assert_eq!(kinds.get("job:"), Some(&2));
        assert_eq!(kinds.get("jobs:"), Some(&1));
        assert_eq!(kinds.get("tasks"), Some(&1));
    }

    #[test]
    fn every_core_name_is_probed() {
        let topology = Topology::new(Namespace::new("n").unwrap(), TopologyOptions::default());
        let pools = [PoolName::parse_list("gpu").unwrap()];
        let names = queue_names(&topology, &pools);
        assert!(names.contains(&"n.intake".to_owned()));
        assert!(names.contains(&"n.pool.gpu".to_owned()));
        assert_eq!(names.len(), 3 + DELAY_RUNGS as usize + 1);
        assert!(
            names
                .iter()
                .chain(&exchange_names(&topology))
                .all(|n| n.starts_with("n."))
        );
    }
}
