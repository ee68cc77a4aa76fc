//! `warren simulate` as a user runs it: a trace file in, the seed documents' completion
//! times out. No RabbitMQ or Redis needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const WARREN: &str = env!("CARGO_BIN_EXE_warren");

/// Writes a trace of (arrival, runtime) pairs in seconds to a file of its own.
fn trace_file(name: &str, jobs: &[(u64, u64)]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("warren-{name}-{}.jsonl", std::process::id()));
    let lines: Vec<String> = jobs
        .iter()
        .enumerate()
        .map(|(n, (arrival, runtime))| {
            format!(
                r#"{{"id": "J{}", "arrival_ms": {}, "runtime_ms": {}}}"#,
                n + 1,
                arrival * 1000,
                runtime * 1000
            )
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn completions(policy: &str, path: &PathBuf) -> Vec<u64> {
    let output = Command::new(WARREN)
        .args(["simulate", "--policy", policy, "--slots", "1", "--json"])
        .arg(path)
        .output()
        .expect("running warren simulate");
    assert!(output.status.success(), "{output:?}");
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["completion_ms"].as_u64().unwrap())
        .collect()
}

#[test]
fn simulate_reproduces_the_seed_examples() {
    let fcfs = trace_file("sim-fcfs", &[(0, 3), (1, 6), (3, 2)]);
    assert_eq!(completions("fifo", &fcfs), [3000, 9000, 11000]);
    let sjf = trace_file("sim-sjf", &[(0, 6), (1, 2), (3, 3)]);
    assert_eq!(completions("sjf", &sjf), [6000, 8000, 11000]);

    let text = Command::new(WARREN)
        .args(["simulate", "--policy", "sjf", "--slots", "1"])
        .arg(&sjf)
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("mean 7.000 s"), "{text}");
    assert!(text.contains("makespan  11.000 s"), "{text}");

    let no_workers = Command::new(WARREN)
        .args(["simulate"])
        .arg(&sjf)
        .output()
        .unwrap();
    assert!(!no_workers.status.success());
    assert!(String::from_utf8_lossy(&no_workers.stderr).contains("--slots"));
    for path in [fcfs, sjf] {
        std::fs::remove_file(path).unwrap();
    }
}
