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
