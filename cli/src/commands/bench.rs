//! `warren bench`: end-to-end throughput and latency of a running system, over its HTTP API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::Api;
use crate::commands::wait::wait_one;

/// Measure end-to-end throughput and latency with `noop` jobs.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Jobs for the throughput run (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Jobs per batch request.
    #[arg(long, default_value_t = 500)]
    pub(crate) batch: usize,
    /// Batch requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub(crate) concurrency: usize,
    /// Sequential jobs for the latency run (0 skips it).
    #[arg(long, default_value_t = 500)]
    latency_jobs: usize,
    /// Give up on the throughput run after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Tenant of the benchmark's jobs.
    #[arg(long, default_value = "bench")]
    pub(crate) tenant: String,
    /// Print the figures as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Sleep jobs for the efficiency run: how close short jobs come to keeping every slot
    /// busy (ideal time ÷ measured time; 0 skips it).
    #[arg(long, default_value_t = 0)]
    pub(crate) sleep_jobs: usize,
    /// How long each job of the efficiency run sleeps.
    #[arg(long, default_value_t = 10)]
    pub(crate) sleep_ms: u64,
    /// Jobs of one tenant queued before two probes (another tenant's job, and a priority-9
    /// job) whose wait is measured: does the policy let them past the backlog? (0 skips it.)
    #[arg(long, default_value_t = 0)]
    pub(crate) backlog: usize,
    /// How long each backlog job sleeps.
    #[arg(long, default_value_t = 1000)]
    pub(crate) backlog_ms: u64,
    /// Leave the backlog queued afterwards (default: cancel it); for a throwaway namespace
    /// that `warren admin purge` removes faster.
    #[arg(long)]
    pub(crate) leave_backlog: bool,
}

#[derive(Deserialize)]
struct Accepted {
    id: String,
}

#[derive(Deserialize)]
struct BatchAccepted {
    jobs: Vec<Accepted>,
}

pub(crate) async fn run(api: &Api, args: BenchArgs) -> anyhow::Result<bool> {
    if args.batch == 0 || args.batch > 1000 {
        bail!("--batch must be 1 to 1000");
    }
    let mut report = serde_json::Map::new();
    if args.jobs > 0 {
        let figures = throughput(api, &args).await?;
        report.insert("throughput".into(), figures);
    }
    if args.latency_jobs > 0 {
        let figures = latency(api, &args).await?;
        report.insert("latency".into(), figures);
    }
    if args.sleep_jobs > 0 {
        let figures = super::bench_sched::sleep_efficiency(api, &args).await?;
        report.insert("sleep".into(), figures);
    }
    if args.backlog > 0 {
        let figures = super::bench_sched::backlog_probes(api, &args).await?;
        report.insert("backlog".into(), figures);
    }
    if args.json {
        println!("{}", Value::Object(report));
    }
    Ok(true)
}

async fn succeeded_count(api: &Api) -> anyhow::Result<u64> {
    let stats: Value = api.get("/v1/stats").await?;
    let count = stats
        .pointer("/by_state/succeeded")
        .or_else(|| stats.pointer("/succeeded"))
        .and_then(Value::as_u64)
        .context("GET /v1/stats has no succeeded count")?;
    Ok(count)
}

async fn throughput(api: &Api, args: &BenchArgs) -> anyhow::Result<Value> {
    let before = succeeded_count(api).await?;
    let spec = json!({"task": "noop", "tenant": args.tenant, "queue": "bench"});
    let started = Instant::now();
    let ids = submit_many(api, spec, args.jobs, args.batch, args.concurrency).await?;
    let submitted = started.elapsed();
    let target = before + args.jobs as u64;
    let deadline = started + args.timeout;
    loop {
        let now = succeeded_count(api).await?;
        if now >= target {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "throughput run timed out: {} of {} jobs succeeded after {:?}",
                now - before,
                args.jobs,
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    // Check outside the timing that every one of *our* jobs succeeded (a sample would hide
    // lost work).
    let failed = verify(api, &ids).await?;
    let rate = args.jobs as f64 / elapsed.as_secs_f64();
    let submit_rate = args.jobs as f64 / submitted.as_secs_f64();
    if !args.json {
        println!(
            "throughput: {} noop jobs submitted in {:.2}s ({submit_rate:.0} jobs/s accepted), all finished in {:.2}s: {rate:.0} jobs/s end to end",
            args.jobs,
            submitted.as_secs_f64(),
            elapsed.as_secs_f64()
        );
    }
    if failed > 0 {
        bail!("{failed} of the benchmark's jobs did not succeed");
    }
    Ok(json!({
        "jobs": args.jobs,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "submit_seconds": submitted.as_secs_f64(),
        "total_seconds": elapsed.as_secs_f64(),
        "accepted_per_second": submit_rate,
        "jobs_per_second": rate,
    }))
}

/// Submits `count` copies of `spec` in batches of `batch`, `concurrency` requests at once;
/// returns the ids in submission order of the batches' completion.
pub(crate) async fn submit_many(
    api: &Api,
    spec: Value,
    count: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = Vec::with_capacity(count);
    let batches: Vec<usize> = (0..count)
        .step_by(batch.max(1))
        .map(|start| batch.min(count - start))
        .collect();
    let body = Arc::new(spec);
    let mut in_flight = FuturesUnordered::new();
    let mut next = batches.into_iter();
    loop {
        while in_flight.len() < concurrency.max(1) {
            let Some(size) = next.next() else { break };
            let (api, body) = (api.clone(), body.clone());
            in_flight.push(async move {
                let jobs: Vec<&Value> = std::iter::repeat_n(body.as_ref(), size).collect();
                api.post_throttled::<BatchAccepted, _>("/v1/jobs/batch", &json!({ "jobs": jobs }))
                    .await
            });
        }
        let Some(done) = in_flight.next().await else {
            break;
        };
        ids.extend(done?.jobs.into_iter().map(|a| a.id));
    }
    Ok(ids)
}

/// Counts the jobs among `ids` that did not succeed.
pub(crate) async fn verify(api: &Api, ids: &[String]) -> anyhow::Result<usize> {
    let mut failed = 0;
    let mut checks = FuturesUnordered::new();
    let mut pending = ids.iter();
    loop {
        while checks.len() < 32 {
            let Some(id) = pending.next() else { break };
            let api = api.clone();
            checks.push(async move {
                wait_one(&api, id, Some(Instant::now() + Duration::from_secs(60))).await
            });
        }
        let Some(job) = checks.next().await else {
            break;
        };
        if job?.state != "succeeded" {
            failed += 1;
        }
    }
    Ok(failed)
}

async fn latency(api: &Api, args: &BenchArgs) -> anyhow::Result<Value> {
    let spec = json!({"task": "noop", "tenant": args.tenant, "queue": "bench-latency"});
    let warmup = 20.min(args.latency_jobs);
    let mut samples: Vec<Duration> = Vec::with_capacity(args.latency_jobs);
    for i in 0..(args.latency_jobs + warmup) {
        let t0 = Instant::now();
        let accepted: Accepted = api.post_throttled("/v1/jobs", &spec).await?;
        let job = wait_one(
            api,
            &accepted.id,
            Some(Instant::now() + Duration::from_secs(30)),
        )
        .await?;
        let took = t0.elapsed();
        if job.state != "succeeded" {
            bail!("latency job {} ended {}", accepted.id, job.state);
        }
        if i >= warmup {
            samples.push(took);
        }
    }
    samples.sort();
    let pct = |p: f64| {
        let idx = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[idx].as_secs_f64() * 1000.0
    };
    let mean =
        samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1000.0;
    let (p50, p95, p99, max) = (pct(0.50), pct(0.95), pct(0.99), pct(1.0));
    if !args.json {
        println!(
            "latency: {} sequential noop jobs, submit → succeeded: p50 {p50:.2} ms, p95 {p95:.2} ms, p99 {p99:.2} ms, max {max:.2} ms, mean {mean:.2} ms",
            samples.len()
        );
    }
    Ok(json!({
        "jobs": samples.len(),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "max_ms": max,
        "mean_ms": mean,
    }))
}
