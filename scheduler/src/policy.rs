//! The pure core of scheduling: which pools may run a job, which of them to pick, and in what
//! order the pending jobs are considered. No I/O, so every rule is a table-driven unit test.

use std::collections::BTreeMap;

use warren_protocol::{Heartbeat, PoolName, Requirements, Task};

/// The live workers of one pool, and how many more jobs it may be sent now.
#[derive(Debug, Clone)]
pub struct PoolView {
    /// The pool.
    pub pool: PoolName,
    /// Its live, non-draining workers' last heartbeats.
    pub workers: Vec<Heartbeat>,
    /// Jobs it may still be sent (free slots plus slack minus jobs in flight).
    pub credit: i64,
}

/// What the scheduler needs to know of a job to place it.
#[derive(Debug, Clone, Copy)]
pub struct JobNeeds<'a> {
    /// Tags and resources.
    pub requires: &'a Requirements,
    /// The task (for allow-lists and registered tasks).
    pub task: &'a Task,
}

/// Why no pool can take a job (the job's pending reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatch(pub String);

/// Tells whether `pool` can run the job: its tags cover the required ones and *every* live
/// worker in it has the resources and admits the task (any of them may get the message).
pub fn can_host(pool: &PoolView, job: JobNeeds<'_>) -> bool {
    !pool.workers.is_empty()
        && pool.pool.covers(&job.requires.tags)
        && pool
            .workers
            .iter()
            .all(|w| w.resources.covers(job.requires) && w.can_run(job.task))
}

/// Picks the pool for a job among those with credit: the best fit (fewest tags the job does
/// not need, so GPU machines stay free for GPU work), then the most credit, then by name so
/// the choice is deterministic. `Err` says why no pool *could ever* take it as things stand;
/// `Ok(None)` means pools could, but none has credit now.
pub fn choose<'p>(
    pools: &'p [PoolView],
    job: JobNeeds<'_>,
) -> Result<Option<&'p PoolView>, NoMatch> {
    let mut eligible = pools.iter().filter(|p| can_host(p, job)).peekable();
    if eligible.peek().is_none() {
        return Err(explain(pools, job));
    }
    Ok(eligible.filter(|p| p.credit > 0).min_by(|a, b| {
        let waste = |p: &PoolView| p.pool.unneeded_tags(&job.requires.tags);
        waste(a)
            .cmp(&waste(b))
            .then(b.credit.cmp(&a.credit))
            .then(a.pool.cmp(&b.pool))
    }))
}

/// Builds the pending reason for a job no pool can host.
pub fn explain(pools: &[PoolView], job: JobNeeds<'_>) -> NoMatch {
    let live: Vec<&PoolView> = pools.iter().filter(|p| !p.workers.is_empty()).collect();
    if live.is_empty() {
        return NoMatch("no_matching_pool: no live workers".to_owned());
    }
    let tagged: Vec<&&PoolView> = live
        .iter()
        .filter(|p| p.pool.covers(&job.requires.tags))
        .collect();
    if tagged.is_empty() {
        let wanted: Vec<&str> = job.requires.tags.iter().map(|t| t.as_str()).collect();
        return NoMatch(format!(
            "no_matching_pool: no live pool has tags [{}]",
            wanted.join(", ")
        ));
    }
    let resourced: Vec<&&&PoolView> = tagged
        .iter()
        .filter(|p| p.workers.iter().all(|w| w.resources.covers(job.requires)))
        .collect();
    if resourced.is_empty() {
        let r = job.requires;
        return NoMatch(format!(
            "no_matching_pool: no pool with those tags offers cpu={} mem_mb={} gpus={} per job",
            r.cpu, r.mem_mb, r.gpus
        ));
    }
    match job.task {
        Task::Command(args) => NoMatch(format!(
            "no_matching_pool: no pool with those tags admits program {:?} (worker --allow-command)",
            args.program()
        )),
        Task::Custom { name, .. } => NoMatch(format!(
            "no_matching_pool: no pool with those tags has task {name:?} registered"
        )),
        _ => NoMatch("no_matching_pool".to_owned()),
    }
}

/// Groups heartbeats into pool views with zero credit (the caller adds credit).
pub fn group(workers: impl IntoIterator<Item = Heartbeat>) -> BTreeMap<PoolName, PoolView> {
    let mut pools: BTreeMap<PoolName, PoolView> = BTreeMap::new();
    for hb in workers {
        pools
            .entry(hb.pool.clone())
            .or_insert_with(|| PoolView {
                pool: hb.pool.clone(),
                workers: Vec::new(),
                credit: 0,
            })
            .workers
            .push(hb);
    }
    pools
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;
    use warren_protocol::{ResourceTag, WorkerId, WorkerResources};

    use super::*;

    fn worker(pool: &str, cpu: u32, gpus: u32, allow: &[&str]) -> Heartbeat {
        Heartbeat {
            worker_id: WorkerId::from_raw(format!("w-{pool}")),
            pool: PoolName::parse_list(pool).unwrap(),
            hostname: "h".into(),
            slots: 2,
            busy: 0,
            running: vec![],
            resources: WorkerResources {
                cpu,
                mem_mb: 4096,
                gpus,
            },
            allowed_commands: allow.iter().map(|s| s.to_string()).collect(),
            tasks: vec!["render".into()],
            load1: 0.0,
            interval_ms: 2000,
            started_at_ms: 0,
            sent_at_ms: 0,
            draining: false,
        }
    }

    fn pool(name: &str, credit: i64, workers: Vec<Heartbeat>) -> PoolView {
        PoolView {
            pool: PoolName::parse_list(name).unwrap(),
            workers,
            credit,
        }
    }

    fn requires(tags: &[&str], cpu: u32, gpus: u32) -> Requirements {
        Requirements {
            tags: tags
                .iter()
                .map(|t| ResourceTag::new(*t).unwrap())
                .collect::<BTreeSet<_>>(),
            cpu,
            mem_mb: 0,
            gpus,
        }
    }

    fn cluster() -> Vec<PoolView> {
        vec![
            pool("cpu", 2, vec![worker("cpu", 4, 0, &["echo"])]),
            pool("cpu+gpu", 2, vec![worker("cpu+gpu", 8, 1, &["*"])]),
        ]
    }

    #[test]
    fn placement_table() {
        let echo = Task::parse("command", &json!({"argv": ["echo"]})).unwrap();
        let python = Task::parse("command", &json!({"argv": ["python3"]})).unwrap();
        let unknown = Task::Custom {
            name: "other".into(),
            args: json!(null),
        };
        type Case<'a> = (Requirements, &'a Task, Result<Option<&'a str>, &'a str>);
        let cases: Vec<Case<'_>> = vec![
            // Best fit: a CPU job goes to the CPU pool, not the GPU one.
            (requires(&[], 0, 0), &Task::Noop, Ok(Some("cpu"))),
            (requires(&["cpu"], 0, 0), &Task::Noop, Ok(Some("cpu"))),
            (requires(&["gpu"], 0, 0), &Task::Noop, Ok(Some("cpu+gpu"))),
            (requires(&[], 0, 1), &Task::Noop, Ok(Some("cpu+gpu"))),
            (requires(&[], 6, 0), &Task::Noop, Ok(Some("cpu+gpu"))),
            (requires(&[], 0, 0), &echo, Ok(Some("cpu"))),
            (requires(&[], 0, 0), &python, Ok(Some("cpu+gpu"))),
            (
                requires(&["tpu"], 0, 0),
                &Task::Noop,
                Err("no live pool has tags [tpu]"),
            ),
            (requires(&["gpu"], 0, 2), &Task::Noop, Err("gpus=2")),
            (requires(&["cpu"], 0, 0), &unknown, Err("task \"other\"")),
        ];
        let pools = cluster();
        for (req, task, want) in cases {
            let got = choose(
                &pools,
                JobNeeds {
                    requires: &req,
                    task,
                },
            );
            match (got, want) {
                (Ok(Some(p)), Ok(Some(name))) => assert_eq!(p.pool.to_string(), name, "{req:?}"),
                (Err(NoMatch(reason)), Err(fragment)) => {
                    assert!(reason.contains(fragment), "{reason} lacks {fragment}")
                }
                (got, want) => panic!("{req:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_full_best_fit_pool_spills_over_to_a_bigger_one() {
        let mut pools = cluster();
        pools[0].credit = 0;
        let req = requires(&[], 0, 0);
        let job = JobNeeds {
            requires: &req,
            task: &Task::Noop,
        };
        assert_eq!(
            choose(&pools, job).unwrap().unwrap().pool.to_string(),
            "cpu+gpu"
        );
        pools[1].credit = 0;
        assert!(choose(&pools, job).unwrap().is_none());
    }

    #[test]
    fn every_worker_of_a_pool_must_admit_the_program() {
        let pools = vec![pool(
            "cpu",
            4,
            vec![worker("cpu", 4, 0, &["echo"]), worker("cpu", 4, 0, &["*"])],
        )];
        let python = Task::parse("command", &json!({"argv": ["python3"]})).unwrap();
        let req = requires(&[], 0, 0);
        let err = choose(
            &pools,
            JobNeeds {
                requires: &req,
                task: &python,
            },
        )
        .unwrap_err();
        assert!(err.0.contains("python3"), "{}", err.0);
    }

    #[test]
    fn no_workers_at_all_says_so() {
        let req = requires(&[], 0, 0);
        let err = choose(
            &[],
            JobNeeds {
                requires: &req,
                task: &Task::Noop,
            },
        )
        .unwrap_err();
        assert_eq!(err.0, "no_matching_pool: no live workers");
    }

    #[test]
    fn heartbeats_group_into_pools() {
        let pools = group(vec![
            worker("cpu", 1, 0, &[]),
            worker("cpu", 1, 0, &[]),
            worker("gpu", 1, 1, &[]),
        ]);
        assert_eq!(pools.len(), 2);
        assert_eq!(
            pools[&PoolName::parse_list("cpu").unwrap()].workers.len(),
            2
        );
    }
}
