//! Beyond one machine (issue 12): a three-node RabbitMQ cluster with quorum queues and a
//! Redis primary and replica behind three Sentinels, all private to the scenario. While a
//! stream of jobs runs, it `kill -9`s the intake queue's leader node, then (once that node
//! is back) a follower, then the Redis primary; every 202'd job must still end in exactly
//! one terminal state. Each fault's stall (the longest time no job finished) is reported
//! for `docs/reliability.md`.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use warren_e2e::{PrivateRabbit, PrivateRedis, PrivateSentinel};
use warren_kit::testkit::wait_until;
use warren_topology::{Topology, TopologyOptions};

use crate::system::{Allow, Infra, Submitted, System, WorkerSpec, accepted};

/// The name the Sentinels monitor the primary under.
const MASTER: &str = "warren-ha";
/// Jobs submitted over the scenario.
const JOBS: usize = 2000;
/// Jobs made beyond [`JOBS`] to stand in for refused ones.
const SPARE: usize = 1000;
/// Jobs per batch submission.
const BATCH: usize = 50;
/// Jobs that may be submitted before each fault (the last is all of them): the stream
/// is held back so that every fault meets jobs still to be submitted and run.
const PHASES: [usize; 4] = [400, 800, 1400, JOBS];
/// Jobs that must end after a fault before its stall is measured whole.
const AFTER: usize = 150;
const QUIET: Duration = Duration::from_secs(120);

/// A Redis primary, its replica and three Sentinels (quorum two), once the Sentinels know the
/// replica and each other (without that, none could promote it).
async fn redis_ha() -> (PrivateRedis, PrivateRedis, Vec<PrivateSentinel>) {
    let primary = PrivateRedis::start("ha-primary", false).await;
    let replica = PrivateRedis::start_replica("ha-replica", &primary).await;
    let mut sentinels = Vec::new();
    for i in 0..3 {
        sentinels.push(PrivateSentinel::start(&format!("ha{i}"), MASTER, &primary, 2).await);
    }
    wait_until(
        "the sentinels to know the replica and each other",
        Duration::from_secs(60),
        || async {
            for sentinel in &sentinels {
                let (replicas, others) = sentinel.known(MASTER).await?;
                if replicas < 1 || others < 2 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    (primary, replica, sentinels)
}

/// How many jobs have written their `end` line.
fn ends(sys: &System) -> usize {
    std::fs::read_to_string(&sys.ledger)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(" end"))
        .count()
}

/// Waits until `more` further jobs have finished, and returns the longest time in between
/// that no job finished: the stall a fault caused.
async fn stall(sys: &System, what: &str, more: usize) -> Duration {
    let target = ends(sys) + more;
    let (mut last, mut last_change, mut longest) = (ends(sys), Instant::now(), Duration::ZERO);
    let deadline = Instant::now() + QUIET;
    loop {
        let now = ends(sys);
        if now != last {
            longest = longest.max(last_change.elapsed());
            last = now;
            last_change = Instant::now();
        }
        if now >= target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{}] no progress after {what}: {now} of {target} jobs ended",
            sys.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("FAULTS-REPORT ha_cluster: {what}: stall {longest:?}");
    longest
}

/// Submits `jobs` in batches until [`JOBS`] are accepted, never more accepted than
/// `budget` allows at the time. After a refusal (503 while the cluster elects a new
/// leader for the intake queue), single jobs are tried until one is accepted, as a client
/// would retry; every refusal is counted.
async fn submit_stream(
    sys: &System,
    jobs: Vec<(String, serde_json::Value)>,
    mut budget: watch::Receiver<usize>,
    progress: watch::Sender<usize>,
) -> Vec<Submitted> {
    let mut out: Vec<Submitted> = Vec::new();
    let mut jobs = jobs.into_iter();
    while accepted(&out).count() < JOBS {
        let taken = accepted(&out).count();
        let allowed = *tokio::time::timeout(QUIET, budget.wait_for(|b| *b > taken))
            .await
            .expect("the faults to move on")
            .expect("the budget to stay");
        let chunk: Vec<_> = jobs.by_ref().take(BATCH.min(allowed - taken)).collect();
        assert!(
            !chunk.is_empty(),
            "[{}] refused more than {SPARE} jobs",
            sys.name
        );
        // Half as one batch, half as single submissions, all at once: a batch refused after
        // some of its publishes were confirmed must run none of its jobs (the scheduler
        // holds them until the submission ends), which the judge checks.
        let mut chunk = chunk;
        let singles = chunk.split_off(chunk.len() / 2);
        let (mut answers, single_answers) = tokio::join!(
            sys.submit_batch(chunk),
            futures_util::future::join_all(singles.into_iter().map(|j| sys.submit_one(j)))
        );
        answers.extend(single_answers);
        let refused = accepted(&answers).count() < answers.len();
        out.extend(answers);
        progress.send_replace(accepted(&out).count());
        // Retried at wait_until's pace, until accepted or QUIET has passed.
        let deadline = Instant::now() + QUIET;
        while refused && accepted(&out).count() < JOBS {
            let answer = sys.submit_one(jobs.next().expect("a spare job")).await;
            let ok = accepted(std::slice::from_ref(&answer)).count() == 1;
            out.push(answer);
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] intake never came back",
                sys.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    out
}

/// The index of the node named `name`.
fn index_of(rabbits: &[PrivateRabbit], name: &str) -> usize {
    rabbits
        .iter()
        .position(|r| r.node() == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_and_sentinel_lose_nodes_under_load() {
    let setup = Instant::now();
    let (mut rabbits, (mut primary, replica, sentinels)) =
        tokio::join!(PrivateRabbit::cluster("ha", 3), redis_ha());
    eprintln!(
        "ha_cluster: cluster and sentinels up in {:?}",
        setup.elapsed()
    );
    let amqp: Vec<String> = rabbits.iter().map(PrivateRabbit::url).collect();
    let mut infra = Infra::new(amqp.join(","), primary.url());
    let sentinel_addrs: Vec<String> = sentinels.iter().map(PrivateSentinel::addr).collect();
    infra.env = vec![
        ("WARREN_QUEUE_TYPE", "quorum".to_owned()),
        ("WARREN_REDIS_SENTINELS", sentinel_addrs.join(",")),
        ("WARREN_REDIS_MASTER", MASTER.to_owned()),
    ];
    let workers = vec![
        WorkerSpec {
            slots: 8,
            ..WorkerSpec::default()
        };
        3
    ];
    let mut sys = System::start("ha_cluster", infra, 1, &workers, &[]).await;
    let intake = Topology::new(sys.ns.ns().clone(), TopologyOptions::default()).intake_queue();

    // Really quorum queues, with a member on each node.
    let listing = rabbits[0]
        .ctl(&[
            "list_queues",
            "name",
            "type",
            "members",
            "--no-table-headers",
            "--quiet",
        ])
        .await;
    let line = listing
        .lines()
        .find(|l| l.starts_with(&format!("{intake}\t")))
        .unwrap_or_else(|| panic!("no {intake} in {listing}"));
    assert!(line.contains("\tquorum\t"), "{line}");
    assert_eq!(line.matches("@localhost").count(), 3, "{line}");

    let jobs: Vec<_> = (0..JOBS + SPARE).map(|_| sys.ledger_job(0.0)).collect();
    let started = Instant::now();
    let (budget, budget_rx) = watch::channel(PHASES[0]);
    let (progress, progress_rx) = watch::channel(0);
    let faults = async {
        wait_until("the first jobs to end", QUIET, || async {
            (ends(&sys) >= AFTER).then_some(())
        })
        .await;
        // The intake queue's leader node.
        let leader = rabbits[0].queue_leader(&intake).await.expect("a leader");
        let killed = index_of(&rabbits, &leader);
        rabbits[killed].kill9().await;
        budget.send_replace(PHASES[1]);
        let leader_stall = stall(&sys, "kill -9 of the intake leader node", AFTER).await;
        rabbits[killed].restart().await;
        rabbits[killed]
            .ctl(&["await_online_nodes", "3", "--timeout", "60"])
            .await;
        // A follower of the (new) leader.
        let live = (killed + 1) % 3;
        let leader = rabbits[live].queue_leader(&intake).await.expect("a leader");
        let follower = (0..3)
            .find(|&i| rabbits[i].node() != leader)
            .expect("a follower");
        rabbits[follower].kill9().await;
        budget.send_replace(PHASES[2]);
        let follower_stall = stall(&sys, "kill -9 of a follower node", AFTER).await;
        // The Redis primary, while submissions go on; the Sentinels promote the replica.
        // A submission cut by the kill after its publish was confirmed is finished on the
        // new primary (202) or refused with its jobs withdrawn (503): never a 503'd job
        // that runs, which the judge checks.
        budget.send_replace(PHASES[3]);
        let mut progress = progress_rx.clone();
        tokio::time::timeout(QUIET, progress.wait_for(|n| *n >= PHASES[2] + 2 * BATCH))
            .await
            .expect("submissions to go on")
            .expect("the stream to report");
        primary.kill().await;
        let killed_at = Instant::now();
        let promotion = async {
            wait_until("the sentinels to promote the replica", QUIET, || async {
                (sentinels[0].master_port(MASTER).await == Some(replica.port())).then_some(())
            })
            .await;
            let promoted = killed_at.elapsed();
            sys.wait_ready().await;
            promoted
        };
        let (promoted, redis_stall) = tokio::join!(
            promotion,
            stall(&sys, "kill -9 of the Redis primary", AFTER)
        );
        eprintln!("FAULTS-REPORT ha_cluster: redis failover (sentinels agree) after {promoted:?}");
        (leader_stall, follower_stall, redis_stall)
    };
    let (submitted, stalls) = tokio::join!(submit_stream(&sys, jobs, budget_rx, progress), faults);
    let records = sys.wait_quiet(&submitted, QUIET).await;
    let elapsed = started.elapsed();
    let v = sys.judge(
        &submitted,
        &records,
        Allow {
            restarts: true,
            double_runs: Some(
                "a Redis failover may roll back a finished job's record (replication is \
                 asynchronous after the 202); the job then runs again",
            ),
        },
    );
    eprintln!(
        "FAULTS-REPORT ha_cluster: {} jobs through three faults in {elapsed:?} (stalls {stalls:?})",
        v.accepted
    );
    assert_eq!(v.accepted, JOBS, "{v:?}");
    assert_eq!(v.states.get("succeeded"), Some(&v.accepted), "{v:?}");
    sys.stop().await;
    drop(sentinels);
    drop((primary, replica));
    drop(rabbits);
}
