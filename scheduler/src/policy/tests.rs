//! Scenario tests of the policy core: order, fairness, capacity, backfill, limits.

use std::collections::BTreeSet;

use warren_protocol::{
    Heartbeat, JobId, PoolName, Requirements, ResourceTag, WorkerId, WorkerResources,
};

use super::*;

pub(crate) fn worker(id: &str, tags: &str, slots: u32, cpu: u32, gpus: u32) -> Heartbeat {
    Heartbeat {
        worker_id: WorkerId::from_raw(id),
        pool: PoolName::parse_list(tags).unwrap(),
        hostname: "h".into(),
        slots,
        busy: 0,
        running: vec![],
        resources: WorkerResources {
            cpu,
            mem_mb: 64_000,
            gpus,
        },
        allowed_commands: vec!["echo".into()],
        tasks: vec![],
        load1: 0.0,
        interval_ms: 1000,
        started_at_ms: 0,
        sent_at_ms: 0,
        draining: false,
    }
}

fn class(tenant: &str, tags: &[&str], cpu: u32, gpus: u32) -> JobClass {
    JobClass {
        tenant: tenant.into(),
        queue: "default".into(),
        requires: Requirements {
            tags: tags
                .iter()
                .map(|t| ResourceTag::new(*t).unwrap())
                .collect::<BTreeSet<_>>(),
            cpu,
            mem_mb: 0,
            gpus,
        },
        task: TaskNeed::Builtin("sleep".into()),
    }
}

fn job(arrival_ms: u64, priority: u8, est_ms: u64) -> PendingJob {
    PendingJob {
        id: JobId::new(),
        arrival_ms,
        priority,
        est_ms,
    }
}

#[test]
fn priority_orders_everything_pending() {
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::Priority));
    s.upsert_worker(worker("w", "cpu", 1, 4, 0));
    let a = class("a", &[], 0, 0);
    for i in 0..1000 {
        s.add(&a, job(i, 4, 10));
    }
    let urgent = job(2000, 9, 10);
    s.add(&class("b", &[], 0, 0), urgent);
    let round = s.decide(3000);
    assert_eq!(
        round.dispatches[0].job, urgent.id,
        "the priority-9 job goes first"
    );
}

#[test]
fn fifo_ignores_priority_and_fair_serves_the_light_tenant() {
    let no_slack = |preset| PolicyConfig {
        slack: 0,
        ..PolicyConfig::preset(preset)
    };
    let mut fifo = Scheduler::new(no_slack(Preset::Fifo));
    let mut fair = Scheduler::new(no_slack(Preset::Fair));
    let late = job(5000, 4, 10);
    for s in [&mut fifo, &mut fair] {
        s.upsert_worker(worker("w", "cpu", 1, 4, 0));
        for i in 0..100 {
            s.add(&class("a", &[], 0, 0), job(i, 4, 10));
        }
        s.add(&class("b", &[], 0, 0), late);
    }
    // Tenant a has used the worker before: under fair share, b goes first.
    let first = fair.decide(6000).dispatches[0].clone();
    assert_eq!(
        first.class.tenant, "a",
        "nobody has usage yet: the oldest goes"
    );
    assert!(fair.finished(first.job, 6010));
    assert_eq!(fair.decide(6020).dispatches[0].job, late.id);
    let first = fifo.decide(6000).dispatches[0].clone();
    assert!(fifo.finished(first.job, 6010));
    assert_ne!(fifo.decide(6020).dispatches[0].job, late.id);
}

#[test]
fn gpus_are_capacity_not_a_filter() {
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::Fifo));
    s.upsert_worker(worker("gpu", "cpu+gpu", 4, 8, 1));
    s.upsert_worker(worker("cpu", "cpu", 4, 4, 0));
    let gpu = class("a", &["gpu"], 1, 1);
    for i in 0..3 {
        s.add(&gpu, job(i, 4, 1000));
    }
    let cpu = class("a", &[], 1, 0);
    for i in 10..14 {
        s.add(&cpu, job(i, 4, 1000));
    }
    let round = s.decide(100);
    let on = |w: &str| {
        round
            .dispatches
            .iter()
            .filter(|d| d.worker.as_str() == w)
            .count()
    };
    let gpu_jobs = round
        .dispatches
        .iter()
        .filter(|d| d.class.requires.gpus == 1)
        .count();
    assert_eq!(gpu_jobs, 1, "one GPU, one GPU job at a time");
    // CPU jobs prefer the CPU worker (best fit), and use the GPU machine's spare cores.
    assert_eq!(on("cpu"), 4);
    assert!(
        round
            .waiting
            .iter()
            .any(|(_, _, r)| *r == Reason::WaitingForCapacity)
    );
}

#[test]
fn an_eight_cpu_job_does_not_share_a_four_cpu_worker() {
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::Fifo));
    s.upsert_worker(worker("w", "cpu", 8, 4, 0));
    s.add(&class("a", &[], 8, 0), job(0, 4, 10));
    let round = s.decide(1);
    assert!(round.dispatches.is_empty());
    assert!(matches!(&round.waiting[0].2, Reason::NoMatchingPool(d) if d.contains("cpu=8")));
}

#[test]
fn backfill_lets_short_jobs_run_only_before_the_reservation() {
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::Fifo));
    s.upsert_worker(worker("w", "cpu", 8, 4, 0));
    // A running 2-cpu job ends at t=1000.
    s.add(&class("a", &[], 2, 0), job(0, 4, 1000));
    assert_eq!(s.decide(0).dispatches.len(), 1);
    // A whole-worker job waits for it; then a short and a long 1-cpu job.
    let big = job(1, 4, 5000);
    s.add(&class("a", &[], 4, 0), big);
    let short = job(2, 4, 500);
    s.add(&class("b", &[], 1, 0), short);
    let long = job(3, 4, 5000);
    s.add(&class("c", &[], 1, 0), long);
    let round = s.decide(10);
    let sent: Vec<JobId> = round.dispatches.iter().map(|d| d.job).collect();
    assert_eq!(
        sent,
        vec![short.id],
        "only the short job ends before the reservation"
    );
    assert_eq!(s.reservation().map(|r| r.job), Some(big.id));
    assert!(
        round
            .waiting
            .iter()
            .any(|(j, _, r)| *j == long.id && *r == Reason::ReservedFor(big.id))
    );
}

#[test]
fn concurrency_and_rate_limits_hold_jobs_and_say_so() {
    let mut config = PolicyConfig::preset(Preset::Fifo);
    config.limits.tenant_concurrency.insert("a".into(), 2);
    config.limits.task_rate.insert(
        "sleep".into(),
        Rate {
            per_s: 1.0,
            burst: 3,
        },
    );
    let mut s = Scheduler::new(config);
    s.upsert_worker(worker("w", "cpu", 16, 16, 0));
    for i in 0..5 {
        s.add(&class("a", &[], 0, 0), job(i, 4, 10));
        s.add(&class("b", &[], 0, 0), job(i, 4, 10));
    }
    let round = s.decide(0);
    let of = |t: &str| {
        round
            .dispatches
            .iter()
            .filter(|d| d.class.tenant == t)
            .count()
    };
    assert_eq!(of("a"), 2);
    assert_eq!(of("a") + of("b"), 3, "the burst of the task's bucket");
    let reasons: Vec<String> = round
        .waiting
        .iter()
        .map(|(_, _, r)| r.to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r == "concurrency_limit tenant:a"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "rate_limit task:sleep"),
        "{reasons:?}"
    );
    assert!(s.next_token_ms().is_some());
    // A second later one more token.
    assert_eq!(s.decide(1000).dispatches.len(), 1);
}

#[test]
fn round_robin_alternates_tenants() {
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::RoundRobin));
    s.upsert_worker(worker("w", "cpu", 6, 6, 0));
    for i in 0..10 {
        s.add(&class("a", &[], 0, 0), job(i, 4, 10));
    }
    for i in 100..103 {
        s.add(&class("b", &[], 0, 0), job(i, 4, 10));
    }
    let mut config = s.config().clone();
    config.slack = 0;
    s.set_config(config);
    let tenants: Vec<String> = s
        .decide(200)
        .dispatches
        .into_iter()
        .map(|d| d.class.tenant)
        .collect();
    assert_eq!(tenants, ["a", "b", "a", "b", "a", "b"]);
}

#[test]
fn a_policy_change_rekeys_waiting_jobs() {
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::Fifo));
    s.upsert_worker(worker("w", "cpu", 1, 1, 0));
    let old = job(0, 0, 10);
    let urgent = job(10, 9, 10);
    let a = class("a", &[], 0, 0);
    s.add(&a, old);
    s.add(&class("a", &[], 0, 0), urgent);
    let mut config = PolicyConfig::preset(Preset::Priority);
    config.slack = 0;
    s.set_config(config);
    assert_eq!(s.decide(20).dispatches[0].job, urgent.id);
    let standing = s.standing(&a, &old).unwrap();
    assert_eq!(standing.ahead_in_class, 0, "the only job left");
    assert!(s.remove(&a, &old));
    assert!(!s.remove(&a, &old));
    assert_eq!(s.pending_count(), 0);
}

#[test]
fn removing_a_worker_frees_its_jobs() {
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::Fifo));
    s.upsert_worker(worker("w", "cpu", 1, 1, 0));
    let j = job(0, 4, 10);
    s.add(&class("a", &[], 0, 0), j);
    assert_eq!(s.decide(0).dispatches.len(), 1);
    assert_eq!(s.remove_worker(&WorkerId::from_raw("w")), vec![j.id]);
    assert_eq!(s.running_count(), 0);
}

#[test]
fn a_silent_worker_gets_no_work_but_keeps_its_placements() {
    let mut s = Scheduler::new(PolicyConfig {
        slack: 0,
        ..PolicyConfig::preset(Preset::Fifo)
    });
    s.upsert_worker(worker("w", "cpu", 2, 2, 0));
    let class = class("a", &[], 1, 0);
    for i in 0..4 {
        s.add(&class, job(i, 4, 10));
    }
    assert_eq!(s.decide(0).dispatches.len(), 2);
    s.suspend_worker(&WorkerId::from_raw("w"));
    assert!(
        s.decide(1).dispatches.is_empty(),
        "no new work while it is silent"
    );
    // It was only slow: back, with its two jobs still counted against its two cores.
    s.upsert_worker(worker("w", "cpu", 2, 2, 0));
    assert!(s.decide(2).dispatches.is_empty(), "still full");
    assert_eq!(s.running_count(), 2);
}

#[test]
fn long_dispatched_jobs_are_listed_for_a_check() {
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::Fifo));
    s.upsert_worker(worker("w", "cpu", 2, 2, 0));
    let j = job(0, 4, 10);
    s.add(&class("a", &[], 0, 0), j);
    assert_eq!(s.decide(1_000).dispatches.len(), 1);
    assert!(s.running_since(5_000, 10_000).is_empty());
    assert_eq!(s.running_since(20_000, 10_000), vec![j.id]);
    assert!(s.finished(j.id, 20_000));
    assert!(s.running_since(30_000, 10_000).is_empty());
}

/// Slack follows the work: short jobs get successors sent ahead, long ones none, so a job
/// that arrives later with a higher priority is not stuck behind jobs parked at a worker.
#[test]
fn slack_adapts_to_runtimes_and_the_dispatch_round_trip() {
    let sent_to = |est_ms: u64, rtt_ms: u64| {
        let mut s = Scheduler::new(PolicyConfig::preset(Preset::Priority));
        s.upsert_worker(worker("w", "cpu", 4, 4, 0));
        for _ in 0..50 {
            s.observe_dispatch_rtt(rtt_ms);
        }
        let a = class("a", &[], 0, 0);
        for i in 0..100 {
            s.add(&a, job(i, 4, est_ms));
        }
        s.decide(1000).dispatches.len()
    };
    let short = sent_to(10, 2);
    assert!(
        (5..=4 + 16).contains(&short),
        "10 ms jobs: the 4 slots and a few ahead, got {short}"
    );
    assert!(
        sent_to(10, 20) > short,
        "a slower round trip sends more ahead"
    );
    assert_eq!(
        sent_to(60_000, 2),
        4,
        "minute-long jobs: nothing waits at the worker"
    );
    assert_eq!(sent_to(1, 50), 4 + 16, "never beyond the cap");

    // What a long job's worker was not sent ahead is still pending when something urgent
    // arrives, and goes first.
    let mut s = Scheduler::new(PolicyConfig::preset(Preset::Priority));
    s.upsert_worker(worker("w", "cpu", 1, 4, 0));
    let a = class("a", &[], 0, 0);
    for i in 0..10 {
        s.add(&a, job(i, 4, 60_000));
    }
    assert_eq!(s.decide(100).dispatches.len(), 1);
    let first = s.running_since(u64::MAX, 0)[0];
    let urgent = job(200, 9, 60_000);
    s.add(&class("b", &[], 0, 0), urgent);
    s.finished(first, 60_100);
    assert_eq!(s.decide(60_100).dispatches[0].job, urgent.id);
}
