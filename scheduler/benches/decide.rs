//! Decisions per second of the policy core with 100,000 pending jobs across 1,000 tenants.
//!
//! Steady state: 16 workers × 8 slots are full; each iteration finishes the oldest running
//! job, adds a new pending job (so 100,000 stay pending) and calls `decide`, which picks
//! the best head among the 1,000 tenants' queues and places it. One iteration is one
//! decision. A second group runs the same with one worker of 128 slots, to show what the
//! per-worker scan of a decision costs. `cargo bench -p warren-scheduler --bench decide`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use warren_protocol::{Heartbeat, JobId, PoolName, Requirements, WorkerId, WorkerResources};
use warren_scheduler::policy::{JobClass, PendingJob, PolicyConfig, Preset, Scheduler, TaskNeed};

const PENDING: usize = 100_000;
const TENANTS: usize = 1_000;
/// Worker layouts: (workers, slots each), 128 slots in all.
const SPREAD: (u32, u32) = (16, 8);
const ONE_BIG: (u32, u32) = (1, 128);

fn worker(n: u32, slots: u32, pool: &PoolName) -> Heartbeat {
    Heartbeat {
        worker_id: WorkerId::from_raw(format!("w{n}")),
        pool: pool.clone(),
        hostname: "bench".into(),
        slots,
        busy: 0,
        running: Vec::new(),
        resources: WorkerResources {
            cpu: slots,
            mem_mb: 64_000,
            gpus: 0,
        },
        allowed_commands: Vec::new(),
        tasks: Vec::new(),
        load1: 0.0,
        interval_ms: 1000,
        started_at_ms: 0,
        sent_at_ms: 0,
        draining: false,
    }
}

struct Bench {
    scheduler: Scheduler,
    classes: Vec<JobClass>,
    running: VecDeque<JobId>,
    rng: StdRng,
    now: u64,
}

impl Bench {
    fn job(&mut self) -> PendingJob {
        PendingJob {
            id: JobId::new(),
            arrival_ms: self.now,
            priority: self.rng.random_range(0..=9),
            est_ms: self.rng.random_range(10..100_000),
        }
    }

    fn add(&mut self) {
        let class = self.rng.random_range(0..TENANTS);
        let job = self.job();
        self.scheduler.add(&self.classes[class], job);
    }

    fn new(preset: Preset, (workers, slots): (u32, u32)) -> Self {
        let config = PolicyConfig {
            slack: 0,
            ..PolicyConfig::preset(preset)
        };
        let mut scheduler = Scheduler::new(config);
        let Ok(pool) = PoolName::parse_list("cpu") else {
            unreachable!("cpu is a valid tag");
        };
        for n in 0..workers {
            scheduler.upsert_worker(worker(n, slots, &pool));
        }
        let classes = (0..TENANTS)
            .map(|t| JobClass {
                tenant: format!("tenant-{t}"),
                queue: "default".into(),
                requires: Requirements {
                    cpu: 1,
                    ..Requirements::default()
                },
                task: TaskNeed::Builtin("noop".into()),
            })
            .collect();
        let mut bench = Self {
            scheduler,
            classes,
            running: VecDeque::new(),
            rng: StdRng::seed_from_u64(1),
            now: 1,
        };
        for _ in 0..PENDING + (workers * slots) as usize {
            bench.add();
        }
        let round = bench.scheduler.decide(bench.now);
        bench.running.extend(round.dispatches.iter().map(|d| d.job));
        bench
    }

    /// One decision in steady state.
    fn step(&mut self) -> usize {
        self.now += 1;
        if let Some(done) = self.running.pop_front() {
            self.scheduler.finished(done, self.now);
        }
        self.add();
        let round = self.scheduler.decide(self.now);
        self.running.extend(round.dispatches.iter().map(|d| d.job));
        round.dispatches.len()
    }
}

fn group(c: &mut Criterion, name: &str, layout: (u32, u32), presets: &[Preset]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for preset in presets {
        let mut bench = Bench::new(*preset, layout);
        assert_eq!(bench.scheduler.pending_count(), PENDING);
        group.bench_function(BenchmarkId::from_parameter(preset), |b| {
            b.iter(|| black_box(bench.step()));
        });
        assert_eq!(bench.scheduler.pending_count(), PENDING, "steady state");
    }
    group.finish();
}

fn decide(c: &mut Criterion) {
    let all = [
        Preset::Fifo,
        Preset::Priority,
        Preset::Sjf,
        Preset::Fair,
        Preset::RoundRobin,
    ];
    group(c, "decide_100k_pending_1k_tenants_16_workers", SPREAD, &all);
    group(
        c,
        "decide_100k_pending_1k_tenants_1_worker",
        ONE_BIG,
        &[Preset::Fifo, Preset::Fair],
    );
}

criterion_group!(benches, decide);
criterion_main!(benches);
