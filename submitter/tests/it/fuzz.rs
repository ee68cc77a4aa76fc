//! The API fuzzed over HTTP: specs and raw bodies generated from and around the OpenAPI
//! schema of `JobSpec` (valid, boundary and malformed values; wrong types, huge numbers, deep
//! nesting, NUL bytes, duplicate keys, unicode, invalid UTF-8, oversize bodies), sent to a
//! real submitter on a socket against the real RabbitMQ and Redis.
//!
//! Every answer must come within a bound, never be a 5xx, and every 4xx must be a
//! problem+json body with a `code` and a `detail` (and `field` for `invalid_field`). A refused
//! request must leave the namespace's intake queue and Redis keys as they were.
//!
//! `WARREN_TEST_FUZZ_CASES` sets the number of cases (default 300); `WARREN_TEST_FUZZ_SEED` replays a
//! run (the seed is printed when a case fails).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_kit::testkit;
use warren_topology::lapin::options::QueueDeclareOptions;
use warren_topology::lapin::types::FieldTable;

use crate::support::{Harness, args};

/// The largest body the fuzzed submitter accepts; oversize cases go past it.
const MAX_BODY: usize = 64 * 1024;
/// Each answer must come within this (no case should come near it).
const ANSWER_BOUND: Duration = Duration::from_secs(10);

/// One request to send.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9_.-]{1,20}",
        "\\PC{0,40}",
        Just("a\u{0}b".to_owned()),
        Just("ß🙂\u{202e}x".to_owned()),
        Just("GPU".to_owned()),
        Just("x".repeat(300)),
    ]
}

fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..12).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(-1)),
        Just(json!(256)),
        Just(json!(u32::MAX)),
        Just(json!(u64::MAX)),
        Just(json!(1.5)),
        Just(json!(1e300)),
        any::<f64>().prop_map(|f| json!(f)),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_number(),
        any_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value for a field: mostly of its type, sometimes of any type.
fn field(of_type: BoxedStrategy<Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        6 => of_type.prop_map(Some),
        1 => any_json().prop_map(Some),
    ]
}

fn number() -> BoxedStrategy<Value> {
    any_number().boxed()
}

fn string() -> BoxedStrategy<Value> {
    any_string().prop_map(Value::String).boxed()
}

fn tag() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("gpu")),
        Just(json!("linux")),
        "[a-z][a-z0-9-]{0,10}".prop_map(Value::String),
        any_string().prop_map(Value::String),
        any_number(),
    ]
}

/// A job spec shaped by the schema: each field absent, of its type (valid or at a bound),
/// or of another type; sometimes an unknown field.
fn spec() -> impl Strategy<Value = Value> {
    let task = prop_oneof![
        Just(json!("noop")),
        Just(json!("echo")),
        Just(json!("sleep")),
        Just(json!("fail")),
        Just(json!("sha256")),
        Just(json!("command")),
        string(),
        any_json(),
    ];
    let requires = prop_oneof![
        (
            field(
                prop::collection::vec(tag(), 0..4)
                    .prop_map(Value::Array)
                    .boxed()
            ),
            field(number()),
            field(number()),
            field(number()),
        )
            .prop_map(|(tags, cpu, mem, gpus)| {
                let mut m = serde_json::Map::new();
                for (k, v) in [
                    ("tags", tags),
                    ("cpu", cpu),
                    ("mem_mb", mem),
                    ("gpus", gpus),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m)
            }),
        any_json(),
    ];
    let labels = prop::collection::btree_map(any_string(), any_string(), 0..4)
        .prop_map(|m| json!(m))
        .boxed();
    (
        prop_oneof![9 => task.prop_map(Some), 1 => Just(None)],
        field(any_json().boxed()),
        (field(string()), field(string()), field(number())),
        field(requires.boxed()),
        (
            field(number()),
            field(number()),
            field(number()),
            field(number()),
            field(number()),
            field(number()),
        ),
        field(labels),
        prop::option::weighted(0.1, any_string()),
    )
        .prop_map(
            |(task, args, (queue, tenant, priority), requires, numbers, labels, unknown)| {
                let (est, timeout, delay, not_before, sched, attempts) = numbers;
                let mut m = serde_json::Map::new();
                let fields = [
                    ("task", task),
                    ("args", args),
                    ("queue", queue),
                    ("tenant", tenant),
                    ("priority", priority),
                    ("requires", requires),
                    ("estimated_runtime_ms", est),
                    ("timeout_s", timeout),
                    ("delay_s", delay),
                    ("not_before_ms", not_before),
                    ("schedule_timeout_s", sched),
                    ("max_attempts", attempts),
                    ("labels", labels),
                ];
                for (k, v) in fields {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                if let Some(name) = unknown {
                    m.insert(name, json!(1));
                }
                Value::Object(m)
            },
        )
}

/// A spec that should be accepted, so some cases exercise the accepting path too.
fn valid_spec() -> impl Strategy<Value = Value> {
    (0u8..=9, "[a-z]{1,8}", 1u32..5).prop_map(|(priority, queue, attempts)| {
        json!({"task": "noop", "priority": priority, "queue": queue, "max_attempts": attempts})
    })
}

/// Raw bytes around a spec: broken, duplicated keys, NUL bytes, deep nesting, huge
/// numbers, invalid UTF-8, oversize.
fn mangle(body: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = body.len();
    prop_oneof![
        4 => Just(body.clone()),
        1 => (0..=len).prop_map({ let b = body.clone(); move |at| b[..at].to_vec() }),
        1 => (0..=len, any::<u8>()).prop_map({
            let b = body.clone();
            move |(at, byte)| { let mut b = b.clone(); b.insert(at, byte); b }
        }),
        1 => Just(br#"{"task":"noop","task":"echo"}"#.to_vec()),
        1 => Just(br#"{"task":"noop","labels":{"a":"1","a":"2"}}"#.to_vec()),
        1 => Just(br#"{"task":"echo","args":{"x":1,"x":2}}"#.to_vec()),
        1 => Just(b"{\"task\":\"noop\",\"queue\":\"a\\u0000b\"}".to_vec()),
        1 => Just(b"{\"task\":\"noop\",\"queue\":\"\xff\xfe\"}".to_vec()),
        1 => (1usize..200_000).prop_map(|depth| {
            let mut b = b"{\"task\":\"noop\",\"args\":".to_vec();
            b.extend(std::iter::repeat_n(b'[', depth));
            b.extend(std::iter::repeat_n(b']', depth));
            b.push(b'}');
            b
        }),
        1 => Just(format!("{{\"task\":\"noop\",\"priority\":1{}}}", "0".repeat(400)).into_bytes()),
        1 => Just(b"{\"task\":\"noop\",\"timeout_s\":1e999999}".to_vec()),
        1 => Just(format!("{{\"task\":\"noop\",\"args\":\"{}\"}}", "x".repeat(MAX_BODY)).into_bytes()),
        1 => Just(b"".to_vec()),
        1 => Just(b"null".to_vec()),
        1 => Just(b"[{\"task\":\"noop\"}]".to_vec()),
        1 => Just(b"\xef\xbb\xbf{\"task\":\"noop\"}".to_vec()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        8 => Just(Some("application/json")),
        1 => Just(Some("application/json; charset=utf-8")),
        1 => Just(Some("text/plain")),
        1 => Just(None),
    ]
}

fn job_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(uuid::Uuid::nil().to_string()),
        "[0-9a-f-]{0,40}",
        "[a-zA-Z0-9%._~-]{1,60}",
        Just("%00".to_owned()),
        Just("..%2F..".to_owned()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("state"),
        Just("tenant"),
        Just("queue"),
        Just("limit"),
        Just("cursor"),
        Just("after"),
        Just("timeout_s"),
        Just("bogus"),
    ];
    let value = prop_oneof![
        Just("queued".to_owned()),
        Just("0".to_owned()),
        Just("1001".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("%00".to_owned()),
        Just("%FF".to_owned()),
        "[a-zA-Z0-9%-]{0,80}",
    ];
    prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn case() -> impl Strategy<Value = Case> {
    let single = (prop_oneof![4 => spec(), 1 => valid_spec()], content_type()).prop_flat_map(
        |(spec, ct)| {
            mangle(serde_json::to_vec(&spec).unwrap_or_default()).prop_map(move |body| Case {
                method: "POST",
                path: "/v1/jobs".to_owned(),
                content_type: ct,
                body,
            })
        },
    );
    let batch = prop_oneof![
        prop::collection::vec(prop_oneof![spec(), valid_spec()], 0..4)
            .prop_map(|jobs| json!({"jobs": jobs})),
        prop::collection::vec(valid_spec(), 1..4).prop_map(|jobs| json!({"jobs": jobs})),
        any_json().prop_map(|jobs| json!({"jobs": jobs})),
        any_json(),
    ]
    .prop_flat_map(|body| {
        mangle(serde_json::to_vec(&body).unwrap_or_default()).prop_map(|body| Case {
            method: "POST",
            path: "/v1/jobs/batch".to_owned(),
            content_type: Some("application/json"),
            body,
        })
    });
    let policy = prop_oneof![
        Just(json!({"preset": "fifo"})),
        Just(json!({"preset": "nonsense"})),
        any_json(),
    ]
    .prop_map(|body| Case {
        method: "PUT",
        path: "/v1/scheduler/policy".to_owned(),
        content_type: Some("application/json"),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    });
    let read = (
        prop_oneof![
            Just("/v1/jobs".to_owned()),
            job_path().prop_map(|id| format!("/v1/jobs/{id}")),
            job_path().prop_map(|id| format!("/v1/jobs/{id}/logs")),
            job_path().prop_map(|id| format!("/v1/jobs/{id}/wait")),
        ],
        query(),
    )
        .prop_map(|(path, query)| {
            // A wait must not park for its default 30 s.
            let query = if path.ends_with("/wait") {
                format!("timeout_s=0&{query}")
            } else {
                query
            };
            Case {
                method: "GET",
                path: format!("{path}?{query}"),
                content_type: None,
                body: Vec::new(),
            }
        });
    let cancel = job_path().prop_map(|id| Case {
        method: "POST",
        path: format!("/v1/jobs/{id}/cancel"),
        content_type: None,
        body: Vec::new(),
    });
    prop_oneof![10 => single, 4 => batch, 1 => policy, 3 => read, 1 => cancel]
}

/// How much the namespace holds: messages in its intake queue and Redis keys.
async fn footprint(h: &Harness, redis: &mut redis::aio::MultiplexedConnection) -> (u32, usize) {
    let queue = h
        .channel
        .queue_declare(
            h.topology.intake_queue().as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let pattern = format!("{}*", h.store.keys().prefix());
    let mut keys = 0;
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await
            .unwrap();
        keys += batch.len();
        if next == 0 {
            break;
        }
        cursor = next;
    }
    (queue.message_count(), keys)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn fuzzed_requests_get_problems_and_change_nothing_when_refused() {
    let ns = testkit::TestNamespace::new("fuzz");
    let mut submitter = args(&ns, testkit::redis_url());
    submitter.max_body_bytes = MAX_BODY;
    let h = Harness::with_args(ns, submitter).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(warren_submitter::serve(
        listener,
        h.state.clone(),
        shutdown.child_token(),
    ));
    let client = reqwest::Client::builder()
        .timeout(ANSWER_BOUND)
        .build()
        .unwrap();
    let mut redis = redis::Client::open(testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let cases = env_number("WARREN_TEST_FUZZ_CASES", 300);
    let seed = env_number("WARREN_TEST_FUZZ_SEED", rand_seed());
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = case();
    let started = Instant::now();
    let (mut answered_2xx, mut refused) = (0u32, 0u32);
    for n in 0..cases {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let shown = format!(
            "case {n} (WARREN_TEST_FUZZ_SEED={seed}): {} {} {:?} body {:?}",
            case.method,
            case.path,
            case.content_type,
            String::from_utf8_lossy(&case.body[..case.body.len().min(300)]),
        );
        let before = footprint(&h, &mut redis).await;
        let mut request =
            client.request(case.method.parse().unwrap(), format!("{base}{}", case.path));
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        let sent = Instant::now();
        let response = request
            .body(case.body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("no answer within {ANSWER_BOUND:?}: {e}; {shown}"));
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("the body did not come: {e}; {shown}"));
        assert!(sent.elapsed() < ANSWER_BOUND, "slow answer; {shown}");
        assert!(
            !status.is_server_error(),
            "{status}: {}; {shown}",
            String::from_utf8_lossy(&bytes)
        );
        if status.is_success() {
            answered_2xx += 1;
            if status == reqwest::StatusCode::ACCEPTED && case.method == "POST" {
                // The measure works: an accepted submission shows in it.
                let after = footprint(&h, &mut redis).await;
                assert!(
                    after.0 > before.0 && after.1 > before.1,
                    "{before:?} {after:?}; {shown}"
                );
            }
            continue;
        }
        refused += 1;
        assert_eq!(
            content_type, "application/problem+json",
            "{status}; {shown}"
        );
        let problem: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("the problem is not JSON ({e}); {shown}"));
        assert_eq!(problem["status"], status.as_u16(), "{problem}; {shown}");
        let code = problem["code"].as_str().unwrap_or_default();
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(!code.is_empty() && !detail.is_empty(), "{problem}; {shown}");
        if code == "invalid_field" {
            assert!(
                problem["field"].as_str().is_some_and(|f| !f.is_empty()),
                "invalid_field without a field: {problem}; {shown}"
            );
        }
        let after = footprint(&h, &mut redis).await;
        assert_eq!(
            before, after,
            "a refused request ({code}) changed (intake messages, Redis keys); {shown}"
        );
    }
    eprintln!(
        "fuzz: {cases} cases (seed {seed}) in {:?}: {answered_2xx} answered 2xx, {refused} refused",
        started.elapsed()
    );
    assert!(
        cases < 50 || (answered_2xx > 0 && refused > answered_2xx),
        "the generator should produce both kinds: {answered_2xx} answered 2xx, {refused} refused"
    );
    shutdown.cancel();
    tokio::time::timeout(ANSWER_BOUND, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    h.finish().await;
}

/// A fresh seed per run unless one is given, so repeated CI runs cover more ground.
fn rand_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    u64::try_from(nanos % u128::from(u64::MAX)).unwrap_or(0)
}
