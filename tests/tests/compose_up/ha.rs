//! The HA deployment (docker-compose.ha.yml on top of docker-compose.yml): three clustered
//! RabbitMQ nodes with quorum queues, a Redis primary, its replica and three Sentinels. While
//! jobs run, it kills (SIGKILL, `docker-compose kill`) the node leading the intake queue and
//! then the Redis primary; every accepted job must end `succeeded`, in exactly one terminal
//! state, and every service must be healthy again. The images are the ones the run built.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{
    Api, DOCKER, HA_MASTER, Project, accepted_again, assert_succeeded_once, keep_submitting, run,
    run_ok, sleep_job, stamp,
};

/// How long any wait of this step may take.
const PATIENCE: Duration = Duration::from_secs(180);
/// Jobs that must succeed after a kill before its stall counts as over.
const AFTER: u64 = 100;

pub(super) async fn ha_scenario(project: &Project, t0: Instant) {
    project.compose_ok(&["config", "-q"]);
    if run(Command::new(DOCKER).args(["compose", "version"]))
        .status
        .success()
    {
        let mut v2 = Command::new(DOCKER);
        v2.current_dir(super::root()).arg("compose");
        for file in project.files {
            v2.args(["-f", file]);
        }
        run_ok(v2.args(["config", "-q"]));
    }
    // No --build: the images of this run's `up --build`.
    let up = Instant::now();
    project.compose_ok(&["up", "-d"]);
    let returned = up.elapsed();
    let ready = project.wait_healthy(&[], PATIENCE);
    stamp(
        t0,
        &format!(
            "ha: up -d returned after {:.0} s; every service healthy {:.1} s later",
            returned.as_secs_f64(),
            ready.as_secs_f64()
        ),
    );
    let api = Api::new(project.api_port);
    cluster_formed(project, &api).await;
    stamp(
        t0,
        "ha: the intake queue is a quorum queue on all three nodes; the sentinels know the \
         replica and each other",
    );
    kills_under_load(project, &api).await;
    stamp(
        t0,
        "ha: intake leader node and Redis primary killed under load: every accepted job \
         succeeded once; all healthy again",
    );
}

/// What the services' start does not prove: the nodes formed one cluster (a quorum queue
/// with a member on each), and the Sentinels can fail over (they know the replica and each
/// other; without that none could promote it).
async fn cluster_formed(project: &Project, api: &Api) {
    let line = wait_for("the scheduler to declare the intake queue", || {
        rabbitmqctl(
            project,
            "rabbitmq",
            &["list_queues", "name", "type", "members"],
        )
        .lines()
        .find(|l| l.starts_with("warren.intake\t"))
        .map(str::to_owned)
    })
    .await;
    assert!(line.contains("\tquorum\t"), "not a quorum queue: {line}");
    assert_eq!(
        line.matches("rabbit@").count(),
        3,
        "the intake queue should have a member on each node: {line}"
    );
    for sentinel in ["sentinel-1", "sentinel-2", "sentinel-3"] {
        wait_for("the sentinels to know the replica and each other", || {
            let out = sentinel_cli(project, sentinel, &["sentinel", "master", HA_MASTER])?;
            let lines: Vec<&str> = out.lines().collect();
            let field = |name: &str| -> Option<u32> {
                let at = lines.iter().position(|l| *l == name)?;
                lines.get(at + 1)?.parse().ok()
            };
            (field("num-slaves")? >= 1 && field("num-other-sentinels")? == 2).then_some(())
        })
        .await;
    }
    // The submitter says which node it publishes through: one of the three.
    let (status, ready) = api.get("/readyz").await.unwrap();
    assert_eq!(status, 200, "{ready}");
    let node = ready["rabbitmq_node"].as_str().unwrap_or_default();
    assert!(
        ["rabbitmq:5672", "rabbitmq-2:5672", "rabbitmq-3:5672"].contains(&node),
        "readyz names no node of the cluster: {ready}"
    );
}

async fn kills_under_load(project: &Project, api: &Api) {
    let batch = api
        .submit_batch((0..300).map(|_| sleep_job(100)).collect())
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let submitter = keep_submitting(api, stop.clone());
    let start = succeeded(api).await.unwrap_or(0);
    wait_until_succeeded(api, start + 50).await;

    // The node leading the intake queue: the one the submitter's publishes and the scheduler's
    // consumer depend on.
    let leader = rabbitmqctl(project, "rabbitmq", &["list_queues", "name", "leader"])
        .lines()
        .find_map(|l| l.strip_prefix("warren.intake\t").map(str::to_owned))
        .expect("the intake queue has a leader");
    let node = leader
        .trim()
        .strip_prefix("rabbit@")
        .unwrap_or_else(|| panic!("unexpected leader {leader}"))
        .to_owned();
    let before = succeeded(api).await;
    project.compose_ok(&["kill", &node]);
    let what = format!("kill of {node}, the intake leader");
    let rabbit_stall = stall(api, &what, before, Instant::now()).await;
    let restarted = Instant::now();
    project.compose_ok(&["start", &node]);
    project.wait_healthy(&[], PATIENCE);
    let rabbit_back = restarted.elapsed();
    println!(
        "compose_up: ha: {node} back and every service healthy {:.1} s after `start`",
        rabbit_back.as_secs_f64()
    );

    let primary = primary(project).expect("the sentinels name a primary");
    let before = succeeded(api).await;
    project.compose_ok(&["kill", &primary]);
    let killed = Instant::now();
    let failover = async {
        wait_for("the sentinels to promote the replica", || {
            primary_of(project).filter(|p| *p != primary)
        })
        .await;
        killed.elapsed()
    };
    // In a task of its own: the failover's watch blocks on `docker-compose exec`.
    let watch = {
        let (api, what) = (api.clone(), format!("kill of {primary}, the Redis primary"));
        tokio::spawn(async move { stall(&api, &what, before, killed).await })
    };
    let failover = failover.await;
    let redis_stall = watch.await.unwrap();
    println!(
        "compose_up: ha: the sentinels named a new primary {:.1} s after the kill",
        failover.as_secs_f64()
    );
    // The old primary comes back as a replica of the new one.
    project.compose_ok(&["start", &primary]);
    wait_for("the old primary to turn replica", || {
        let out = run(project
            .compose()
            .args(["exec", "-T", &primary, "redis-cli", "role"]));
        let role = String::from_utf8_lossy(&out.stdout).into_owned();
        (role.lines().next() == Some("slave")).then_some(())
    })
    .await;
    project.wait_healthy(&[], PATIENCE);
    let redis_back = killed.elapsed();

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut ids = submitter.await.unwrap();
    let singles = ids.len();
    ids.push(accepted_again(api, "the kills").await);
    ids.extend(batch);
    let records = api.all_succeed(&ids, PATIENCE).await;
    assert_succeeded_once(&records);
    println!(
        "compose_up: ha: {} jobs accepted ({singles} single submissions during the kills, a \
         batch of 300, one after), all succeeded once; stalls (no job succeeding): {:.1} s \
         after the RabbitMQ kill, {:.1} s after the Redis kill; all healthy {:.1} s after the \
         Redis kill",
        records.len(),
        rabbit_stall.as_secs_f64(),
        redis_stall.as_secs_f64(),
        redis_back.as_secs_f64()
    );
}

/// `rabbitmqctl ARGS --no-table-headers --quiet` on a node's container.
fn rabbitmqctl(project: &Project, node: &str, args: &[&str]) -> String {
    let mut command = vec!["exec", "-T", node, "rabbitmqctl"];
    command.extend(args);
    command.extend(["--no-table-headers", "--quiet"]);
    project.compose_ok(&command)
}

/// `redis-cli -p 26379 ARGS` on a Sentinel's container; `None` when it fails.
fn sentinel_cli(project: &Project, sentinel: &str, args: &[&str]) -> Option<String> {
    let mut command = vec!["exec", "-T", sentinel, "redis-cli", "-p", "26379"];
    command.extend(args);
    let out = run(project.compose().args(&command));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The service the Sentinels name as the primary (they announce compose names).
fn primary_of(project: &Project) -> Option<String> {
    let out = sentinel_cli(
        project,
        "sentinel-1",
        &["sentinel", "get-master-addr-by-name", HA_MASTER],
    )?;
    out.lines().next().map(str::to_owned)
}

fn primary(project: &Project) -> Option<String> {
    let name = primary_of(project)?;
    assert!(
        ["redis", "redis-2"].contains(&name.as_str()),
        "the sentinels should name the primary by its service: {name}"
    );
    Some(name)
}

/// Polls `check` (a blocking `docker-compose exec`, so in a blocking task) every 500 ms
/// until it answers, at most [`PATIENCE`].
async fn wait_for<T, F>(what: &str, check: F) -> T
where
    F: Fn() -> Option<T>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = tokio::task::block_in_place(&check) {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How many jobs have succeeded (`GET /v1/stats`); `None` while the API cannot say.
async fn succeeded(api: &Api) -> Option<u64> {
    match api.get("/v1/stats").await {
        Ok((200, stats)) => stats["by_state"]["succeeded"].as_u64(),
        _ => None,
    }
}

async fn wait_until_succeeded(api: &Api, n: u64) {
    let start = Instant::now();
    while succeeded(api).await.unwrap_or(0) < n {
        assert!(
            start.elapsed() < PATIENCE,
            "fewer than {n} jobs succeeded within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Watches jobs succeed after a kill at `since` (when `from` had succeeded) until [`AFTER`]
/// more have: answers the longest time in between that the count did not grow (as the API
/// shows it, polled every 100 ms), the stall the kill caused.
async fn stall(api: &Api, what: &str, from: Option<u64>, since: Instant) -> Duration {
    let (mut last, mut changed, mut longest) = (from, since, Duration::ZERO);
    let mut target = from.map(|n| n + AFTER);
    loop {
        let now = succeeded(api).await;
        if now.is_some() && now > last {
            longest = longest.max(changed.elapsed());
            changed = Instant::now();
            last = now;
            target = target.or(now.map(|n| n + AFTER));
        }
        if let (Some(now), Some(target)) = (now, target)
            && now >= target
        {
            break;
        }
        assert!(
            since.elapsed() < PATIENCE,
            "no progress within {PATIENCE:?} after the {what}: {now:?} of {target:?} jobs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "compose_up: ha: {what}: stall {:.1} s (the longest no job succeeded, until {AFTER} more \
         had)",
        longest.as_secs_f64()
    );
    longest
}
