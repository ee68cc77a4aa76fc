//! Golden files: the wire format of each message kind, byte for byte. A change here is a
//! change of the protocol that every deployed service must understand; make it on purpose
//! (bump `ENVELOPE_SCHEMA_VERSION` when old readers cannot read it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use warren_protocol::{
    Heartbeat, JobEnvelope, JobId, JobSpec, PoolName, WorkerId, WorkerResources,
};

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn envelope() -> JobEnvelope {
    let mut spec: JobSpec = serde_json::from_value(json!({
        "task": "command",
        "args": {"argv": ["echo", "hi"], "env": {"A": "1"}},
        "queue": "render",
        "tenant": "team-a",
        "priority": 7,
        "requires": {"tags": ["gpu", "cuda12"], "cpu": 2, "mem_mb": 1024, "gpus": 1},
        "estimated_runtime_ms": 1500,
        "timeout_s": 60,
        "max_attempts": 3
    }))
    .unwrap();
    spec.labels = BTreeMap::from([("run".to_owned(), "42".to_owned())]);
    let mut envelope = JobEnvelope::first_attempt(
        "01a1fe06-68a1-76d1-ab35-fa52e3e648a4"
            .parse::<JobId>()
            .unwrap(),
        spec,
        1_795_263_195_297,
        Some("c-1".to_owned()),
    );
    envelope.attempt = 2;
    envelope.not_before_ms = Some(1_795_263_196_297);
    envelope
}

#[test]
fn envelope_v1_is_stable() {
    let written: Value = serde_json::from_slice(&envelope().to_bytes()).unwrap();
    assert_eq!(written, golden("envelope_v1.json"));
    let read = JobEnvelope::from_bytes(
        serde_json::to_string(&golden("envelope_v1.json"))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(read, envelope());
}

#[test]
fn heartbeat_v1_is_stable() {
    let heartbeat = Heartbeat {
        worker_id: WorkerId::from_raw("host-1a2b3c4d"),
        pool: PoolName::parse_list("gpu,cuda12").unwrap(),
        hostname: "host".into(),
        slots: 4,
        busy: 1,
        running: vec!["01a1fe06-68a1-76d1-ab35-fa52e3e648a4".parse().unwrap()],
        resources: WorkerResources {
            cpu: 8,
            mem_mb: 32_000,
            gpus: 1,
        },
        allowed_commands: vec!["python3".into()],
        tasks: vec!["render".into()],
        load1: 0.5,
        interval_ms: 2000,
        started_at_ms: 1_795_263_000_000,
        sent_at_ms: 1_795_263_195_297,
        draining: false,
    };
    assert_eq!(
        serde_json::to_value(&heartbeat).unwrap(),
        golden("heartbeat_v1.json")
    );
    let read: Heartbeat = serde_json::from_value(golden("heartbeat_v1.json")).unwrap();
    assert_eq!(read, heartbeat);
}
