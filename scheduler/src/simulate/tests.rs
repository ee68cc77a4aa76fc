//! The simulator's test vectors: the seed documents' worked examples, and the properties
//! each policy promises (SJF's mean response, weighted fair share, aging, backfill).

use super::*;
use crate::policy::{PolicyConfig, Preset};

fn seconds(pairs: &[(u64, u64)]) -> Vec<TraceJob> {
    pairs
        .iter()
        .enumerate()
        .map(|(n, (arrival, runtime))| {
            TraceJob::new(format!("J{}", n + 1), arrival * 1000, runtime * 1000)
        })
        .collect()
}

fn run(preset: Preset, slots: u32, trace: &[TraceJob]) -> Outcome {
    simulate(
        &PolicyConfig::preset(preset),
        &[WorkerSpec::slots(slots)],
        trace,
    )
    .unwrap()
}

fn completions_s(outcome: &Outcome) -> Vec<u64> {
    outcome
        .jobs
        .iter()
        .map(|j| j.completion_ms / 1000)
        .collect()
}

#[test]
fn seed_fcfs_example() {
    let outcome = run(Preset::Fifo, 1, &seconds(&[(0, 3), (1, 6), (3, 2)]));
    assert_eq!(completions_s(&outcome), [3, 9, 11]);
    assert_eq!(outcome.summary.makespan_ms, 11_000);
    assert_eq!(outcome.summary.utilisation, 1.0);
}

#[test]
fn seed_sjf_example() {
    let outcome = run(Preset::Sjf, 1, &seconds(&[(0, 6), (1, 2), (3, 3)]));
    assert_eq!(completions_s(&outcome), [6, 8, 11]);
    // Responses 6, 7, 8.
    assert_eq!(outcome.summary.mean_response_ms, 7000.0);
}

#[test]
fn sjf_beats_fifo_on_a_heavy_tailed_trace() {
    let trace = traces::heavy_tailed(7, 3000, 4, 0.9);
    let fifo = run(Preset::Fifo, 4, &trace);
    let sjf = run(Preset::Sjf, 4, &trace);
    eprintln!(
        "heavy-tailed mean response: fifo {:.0} ms, sjf {:.0} ms",
        fifo.summary.mean_response_ms, sjf.summary.mean_response_ms
    );
    assert!(sjf.summary.mean_response_ms < fifo.summary.mean_response_ms);
}

fn fair(weights: &[(&str, f64)]) -> PolicyConfig {
    let mut config = PolicyConfig::preset(Preset::Fair);
    for (tenant, weight) in weights {
        config.tenant_weights.insert((*tenant).to_owned(), *weight);
    }
    config
}

#[test]
fn weighted_fair_share_follows_the_weights() {
    let trace = traces::saturating(&["a", "b", "c"], 700, 1000);
    let config = fair(&[("a", 1.0), ("b", 2.0), ("c", 4.0)]);
    let outcome = simulate(&config, &[WorkerSpec::slots(8)], &trace).unwrap();
    // Saturated until the heaviest tenant's last job started: 700 s of its work at 4/7 of
    // 8 slots, about 153 s.
    assert!(
        outcome.summary.saturated_ms > 150_000,
        "{:?}",
        outcome.summary
    );
    for t in &outcome.tenants {
        eprintln!(
            "{}: share {:.4}, weight share {:.4}, fair ratio {:.4}",
            t.tenant, t.share, t.weight_share, t.fair_ratio
        );
        let off = (t.share - t.weight_share).abs() / t.weight_share;
        assert!(
            off <= 0.05,
            "{} is {:.1} % off its weight's share",
            t.tenant,
            off * 100.0
        );
        assert!((t.fair_ratio - 1.0).abs() <= 0.05, "{}", t.fair_ratio);
    }
    assert!(outcome.summary.jain > 0.99, "{}", outcome.summary.jain);
}

#[test]
fn equal_weights_share_equally() {
    let trace = traces::saturating(&["a", "b", "c", "d"], 300, 700);
    let outcome = run(Preset::Fair, 6, &trace);
    eprintln!("equal weights: Jain {:.4}", outcome.summary.jain);
    assert!(outcome.summary.jain >= 0.98);
}

/// The aging bound. Under `priority` a job's key is `arrival − priority × W` (W =
/// `priority_weight_ms`), and jobs run in key order. A job J (arrival a, priority p) can be
/// overtaken only by jobs whose key is smaller, and since priorities are at most 9 those
/// arrived before `T = a + (9 − p)·W`: after T nothing new gets ahead of J. From T on, while
/// J waits, every one of the S slots is busy (the pool is work-conserving and J fits any
/// slot) with a job that was running at T (at most `r_max` left) or a job ranked ahead of
/// J that started at or after T. So
///
/// `wait(J) ≤ (9 − p)·W + r_max + Q / S`, Q = the runtime of jobs ranked ahead of J that
/// started at or after T: the bound the configuration implies, whatever arrives later.
#[test]
fn aging_bounds_every_wait() {
    const W: u64 = 1000;
    // Priority-9 jobs arrive at twice what one slot can run; a few priority-0 jobs among them.
    let mut trace: Vec<TraceJob> = (0..600)
        .map(|n| TraceJob::new(format!("hi{n}"), n * 50, 100).priority(9))
        .collect();
    trace.extend((0..6).map(|n| TraceJob::new(format!("lo{n}"), 500 + n * 5000, 100).priority(0)));
    trace.sort_by_key(|j| j.arrival_ms);
    let mut config = PolicyConfig::preset(Preset::Priority);
    config.priority_weight_ms = W;
    let outcome = simulate(&config, &[WorkerSpec::slots(1)], &trace).unwrap();
    assert_aging_bound(
        &outcome,
        1,
        |j| j.arrival_ms as i64 - i64::from(j.priority) * W as i64,
        |j| (9 - u64::from(j.priority)) * W,
    );
    // Without aging (one level worth more than the whole trace), the same low-priority
    // jobs wait for the whole stream of high-priority ones.
    let lo_wait = |o: &Outcome| {
        o.jobs
            .iter()
            .filter(|j| j.priority == 0)
            .map(JobOutcome::wait_ms)
            .max()
            .unwrap()
    };
    config.priority_weight_ms = 1_000_000_000;
    let starved = simulate(&config, &[WorkerSpec::slots(1)], &trace).unwrap();
    eprintln!(
        "max low-priority wait: aging {} ms, none {} ms",
        lo_wait(&outcome),
        lo_wait(&starved)
    );
    // Without aging a low-priority job runs only once the overload is over (the stream
    // ends at 30 s and its backlog drains at 60 s); with aging the first one is served
    // about (9 − 0)·W after it arrived, plus what was ahead of it.
    assert!(lo_wait(&starved) > lo_wait(&outcome));
    let first_lo = |o: &Outcome| o.jobs.iter().find(|j| j.id == "lo0").unwrap().wait_ms();
    assert!(first_lo(&starved) > 50_000, "{}", first_lo(&starved));
    assert!(first_lo(&outcome) < 20_000, "{}", first_lo(&outcome));
}

/// Checks `wait(J) ≤ horizon(J) + r_max + Q_J / S` for every job (see
/// `aging_bounds_every_wait`): `key` is the policy's key of a job and `horizon` how long
/// after its arrival a job can still be overtaken by jobs arriving later.
fn assert_aging_bound(
    outcome: &Outcome,
    slots: u64,
    key: impl Fn(&JobOutcome) -> i64,
    horizon: impl Fn(&JobOutcome) -> u64,
) {
    let r_max = outcome
        .jobs
        .iter()
        .map(|j| j.completion_ms - j.start_ms)
        .max()
        .unwrap();
    for (n, job) in outcome.jobs.iter().enumerate() {
        let t = job.arrival_ms + horizon(job);
        let ahead: u64 = outcome
            .jobs
            .iter()
            .enumerate()
            .filter(|(m, other)| (key(other), *m) < (key(job), n) && other.start_ms >= t)
            .map(|(_, other)| other.completion_ms - other.start_ms)
            .sum();
        let bound = horizon(job) + r_max + ahead / slots;
        assert!(
            job.wait_ms() <= bound,
            "{} waited {} ms > {bound}",
            job.id,
            job.wait_ms()
        );
    }
}

/// SJF ages too: a job's key is `arrival + estimate`, so jobs arriving more than its own
/// estimate after it never overtake it, and the same bound holds with the estimate as the
/// horizon. A heavy-tailed trace slightly overloading one slot for a while.
#[test]
fn sjf_aging_bounds_every_wait() {
    let trace = traces::heavy_tailed(5, 1500, 1, 1.05);
    let outcome = run(Preset::Sjf, 1, &trace);
    let estimates: std::collections::HashMap<&str, u64> = trace
        .iter()
        .map(|j| (j.id.as_str(), j.estimate_ms()))
        .collect();
    let est = |j: &JobOutcome| estimates[j.id.as_str()];
    assert_aging_bound(&outcome, 1, |j| (j.arrival_ms + est(j)) as i64, est);
}

/// A 4-core worker, a 1-core job running 10 s, a whole-worker job arriving at 1 s, and
/// (optionally) a stream of 1-core 1 s jobs.
fn backfill_trace(with_small: bool) -> Vec<TraceJob> {
    let mut trace = vec![
        TraceJob::new("long", 0, 10_000).cpu(1),
        TraceJob::new("big", 1000, 5000).cpu(4),
    ];
    if with_small {
        trace.extend((0..80).map(|n| TraceJob::new(format!("s{n}"), n * 250, 1000).cpu(1)));
    }
    trace.sort_by_key(|j| j.arrival_ms);
    trace
}

#[test]
fn backfill_runs_small_jobs_without_delaying_the_big_one() {
    let worker: WorkerSpec = "cpu=4,slots=4".parse().unwrap();
    let start_of_big = |o: &Outcome| o.jobs.iter().find(|j| j.id == "big").unwrap().start_ms;
    let fifo = PolicyConfig::preset(Preset::Fifo);
    let alone = simulate(&fifo, std::slice::from_ref(&worker), &backfill_trace(false)).unwrap();
    let with = simulate(&fifo, std::slice::from_ref(&worker), &backfill_trace(true)).unwrap();
    let no_backfill = PolicyConfig {
        backfill: false,
        ..fifo
    };
    let without = simulate(&no_backfill, &[worker], &backfill_trace(true)).unwrap();
    eprintln!(
        "big starts: alone {} ms, backfill {} ms, none {} ms; utilisation {:.3} vs {:.3}",
        start_of_big(&alone),
        start_of_big(&with),
        start_of_big(&without),
        with.summary.utilisation,
        without.summary.utilisation
    );
    assert!(start_of_big(&with) <= start_of_big(&alone));
    assert!(with.summary.utilisation > without.summary.utilisation);
}

#[test]
fn traces_parse_and_reports_render() {
    let text = r#"
        # a comment
        {"id": 1, "arrival_ms": 0, "runtime_ms": 3000, "tenant": "a"}
        {"id": "two", "arrival_ms": 1000, "runtime_ms": 6000, "estimated_runtime_ms": 10, "requires": {"cpu": 1}}
    "#;
    let trace = read_trace(text.as_bytes()).unwrap();
    assert_eq!(trace[0].id, "1");
    assert_eq!(trace[1].estimate_ms(), 10);
    assert_eq!(trace[1].priority, 4);
    let bad = read_trace(r#"{"id": 1, "arrival_ms": 0}"#.as_bytes()).unwrap_err();
    assert!(bad.to_string().starts_with("trace line 1"), "{bad}");
    let twice = "{\"id\":1,\"arrival_ms\":0,\"runtime_ms\":1}\n".repeat(2);
    assert!(matches!(
        read_trace(twice.as_bytes()),
        Err(SimError::DuplicateId(_))
    ));
    let outcome = run(Preset::Fifo, 1, &trace);
    let json: serde_json::Value =
        serde_json::from_str(&Report::new(&outcome, true).json().unwrap()).unwrap();
    assert_eq!(json["jobs"][1]["completion_ms"], 9000);
    assert!(json["summary"]["jain"].is_number());
    let text = Report::new(&outcome, true).to_string();
    assert!(text.contains("makespan  9.000 s"), "{text}");
}

#[test]
fn a_job_no_worker_can_run_is_reported() {
    let trace = vec![TraceJob::new("huge", 0, 10).cpu(64)];
    let err = simulate(&PolicyConfig::default(), &[WorkerSpec::slots(2)], &trace).unwrap_err();
    assert!(err.to_string().contains("huge"), "{err}");
    assert!(matches!(
        simulate(&PolicyConfig::default(), &[], &trace),
        Err(SimError::NoWorkers)
    ));
}

#[test]
fn rate_limited_jobs_start_when_their_token_comes() {
    // Three jobs at once, a start rate of 1/s for the simulated task: no event is due when
    // the second and third tokens come, so the simulator must wake itself.
    let trace: Vec<TraceJob> = (0..3)
        .map(|n| TraceJob::new(format!("r{n}"), 0, 10))
        .collect();
    let mut config = PolicyConfig::preset(Preset::Fifo);
    config.limits.task_rate.insert(
        "simulated".into(),
        crate::policy::Rate {
            per_s: 1.0,
            burst: 1,
        },
    );
    let outcome = simulate(&config, &[WorkerSpec::slots(4)], &trace).unwrap();
    let starts: Vec<u64> = outcome.jobs.iter().map(|j| j.start_ms).collect();
    assert_eq!(starts, [0, 1000, 2000]);
}

/// Random jobs needing cores, memory and GPUs on three workers of two kinds, under every
/// policy: every job runs, GPU jobs only where there are GPUs, and no worker ever holds more
/// cores, memory, GPUs or jobs than it has.
#[test]
fn no_worker_ever_runs_more_than_it_has() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use warren_protocol::ResourceTag;

    let mut rng = StdRng::seed_from_u64(11);
    let gpu = ResourceTag::new("gpu").unwrap();
    let trace: Vec<TraceJob> = (0..400)
        .map(|n| {
            let mut job = TraceJob::new(format!("j{n}"), n * 100, rng.random_range(100..3000))
                .tenant(["a", "b", "c"][n as usize % 3])
                .priority(rng.random_range(0..=9))
                .cpu(rng.random_range(0..=4));
            job.requires.mem_mb = rng.random_range(0..=8000);
            if rng.random_range(0..5) == 0 {
                job.requires.gpus = 1;
                job.requires.tags.insert(gpu.clone());
            }
            job
        })
        .collect();
    let specs: Vec<WorkerSpec> = [
        "cpu=8,mem_mb=16000,slots=4,count=2",
        "cpu=4,mem_mb=32000,gpus=1,slots=4,tags=cpu+gpu",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    for preset in [
        Preset::Fifo,
        Preset::Priority,
        Preset::Sjf,
        Preset::Fair,
        Preset::RoundRobin,
    ] {
        let outcome = simulate(&PolicyConfig::preset(preset), &specs, &trace).unwrap();
        for (n, spec) in specs.iter().enumerate() {
            for k in 0..spec.count {
                let name = format!("w{n}-{k}");
                let here: Vec<(&JobOutcome, &TraceJob)> = outcome
                    .jobs
                    .iter()
                    .zip(&trace)
                    .filter(|(o, _)| o.worker == name)
                    .collect();
                for (started, _) in &here {
                    let t = started.start_ms;
                    let running: Vec<&TraceJob> = here
                        .iter()
                        .filter(|(o, _)| o.start_ms <= t && t < o.completion_ms)
                        .map(|(_, j)| *j)
                        .collect();
                    let cpu: u32 = running.iter().map(|j| j.requires.cpu).sum();
                    let mem: u64 = running.iter().map(|j| j.requires.mem_mb).sum();
                    let gpus: u32 = running.iter().map(|j| j.requires.gpus).sum();
                    assert!(
                        running.len() <= spec.slots as usize,
                        "{preset} {name} at {t}: jobs"
                    );
                    assert!(
                        cpu <= spec.cpu && mem <= spec.mem_mb && gpus <= spec.gpus,
                        "{preset} {name} at {t}"
                    );
                }
                if spec.gpus == 0 {
                    assert!(here.iter().all(|(_, j)| j.requires.gpus == 0));
                }
            }
        }
    }
}
