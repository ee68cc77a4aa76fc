//! `warren bench` runs that measure the scheduler rather than raw throughput: how busy short
//! jobs keep the slots, and whether a job can get past another tenant's backlog.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::client::Api;
use crate::commands::bench::{BenchArgs, submit_many, verify};

/// Slots of the live workers, from `GET /v1/workers`.
async fn total_slots(api: &Api) -> anyhow::Result<u64> {
    let body: Value = api.get("/v1/workers").await?;
    let slots: u64 = body["workers"]
        .as_array()
        .context("GET /v1/workers has no workers list")?
        .iter()
        .filter_map(|w| w["slots"].as_u64())
        .sum();
    if slots == 0 {
        bail!("no live workers: start some before the efficiency run");
    }
    Ok(slots)
}

/// Runs `sleep_jobs` jobs of `sleep_ms` and compares the time they took with the ideal
/// (every slot busy all the time).
pub(crate) async fn sleep_efficiency(api: &Api, args: &BenchArgs) -> anyhow::Result<Value> {
    let slots = total_slots(api).await?;
    let spec = json!({
        "task": "sleep", "args": {"ms": args.sleep_ms}, "tenant": args.tenant,
        "queue": "bench-sleep", "estimated_runtime_ms": args.sleep_ms,
    });
    let started = Instant::now();
    let ids = submit_many(api, spec, args.sleep_jobs, args.batch, args.concurrency).await?;
    let failed = verify(api, &ids).await?;
    let elapsed = started.elapsed().as_secs_f64();
    if failed > 0 {
        bail!("{failed} of the efficiency run's jobs did not succeed");
    }
    let ideal = args.sleep_jobs as f64 * args.sleep_ms as f64 / 1000.0 / slots as f64;
    let efficiency = 100.0 * ideal / elapsed;
    if !args.json {
        println!(
            "sleep: {} jobs of {} ms on {slots} slots in {elapsed:.2}s (ideal {ideal:.2}s): {efficiency:.1} % efficiency",
            args.sleep_jobs, args.sleep_ms
        );
    }
    Ok(json!({
        "jobs": args.sleep_jobs,
        "sleep_ms": args.sleep_ms,
        "slots": slots,
        "seconds": elapsed,
        "ideal_seconds": ideal,
        "efficiency_pct": efficiency,
    }))
}

/// Time from a probe's submission until it runs (or has run).
async fn time_to_start(
    api: &Api,
    id: &str,
    submitted: Instant,
    limit: Duration,
) -> anyhow::Result<f64> {
    loop {
        let job: Value = api.get(&format!("/v1/jobs/{id}")).await?;
        let state = job["state"].as_str().unwrap_or("");
        if state != "queued" && state != "scheduled" {
            return Ok(submitted.elapsed().as_secs_f64());
        }
        if submitted.elapsed() > limit {
            bail!(
                "probe {id} still {state} after {limit:?}: {}",
                job["pending_reason"]
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Queues `backlog` jobs of one tenant, then measures how long two probes wait: a job of
/// another tenant (`fair` lets it through at once) and a priority-9 job (`priority` does).
/// Under `fifo` both wait for the whole backlog; the run stops waiting after a minute and
/// says so. The backlog is cancelled afterwards.
pub(crate) async fn backlog_probes(api: &Api, args: &BenchArgs) -> anyhow::Result<Value> {
    let spec = json!({
        "task": "sleep", "args": {"ms": args.backlog_ms}, "tenant": args.tenant,
        "queue": "bench-backlog", "priority": 4, "estimated_runtime_ms": args.backlog_ms,
    });
    let started = Instant::now();
    let backlog = submit_many(api, spec, args.backlog, args.batch, args.concurrency).await?;
    let queued_in = started.elapsed().as_secs_f64();
    let mut report = serde_json::Map::new();
    report.insert("backlog_jobs".into(), json!(args.backlog));
    report.insert("backlog_submit_seconds".into(), json!(queued_in));
    for (name, probe) in [
        (
            "other_tenant",
            json!({"task": "noop", "tenant": format!("{}-probe", args.tenant)}),
        ),
        (
            "priority_9",
            json!({"task": "noop", "tenant": args.tenant, "priority": 9}),
        ),
    ] {
        let submitted = Instant::now();
        let accepted: Value = api.post("/v1/jobs", &probe).await?;
        let id = accepted["id"]
            .as_str()
            .context("no id in the 202")?
            .to_owned();
        let waited = time_to_start(api, &id, submitted, Duration::from_secs(60)).await;
        let figure = match &waited {
            Ok(seconds) => json!(seconds),
            Err(error) => json!(error.to_string()),
        };
        if !args.json {
            match &waited {
                Ok(seconds) => println!(
                    "backlog: {} jobs queued; the {name} probe started after {seconds:.3}s",
                    args.backlog
                ),
                Err(error) => println!("backlog: {} jobs queued; {error}", args.backlog),
            }
        }
        report.insert(format!("{name}_start_seconds"), figure);
    }
    if args.leave_backlog {
        return Ok(Value::Object(report));
    }
    // Leave the system as we found it: cancel what is still waiting (32 at a time).
    futures_util::stream::iter(backlog.iter())
        .for_each_concurrent(32, |id| async move {
            let _ = api
                .post::<Value, _>(&format!("/v1/jobs/{id}/cancel"), &json!({}))
                .await;
        })
        .await;
    Ok(Value::Object(report))
}
