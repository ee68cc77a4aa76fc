//! The Overview and the first page of jobs stay fast with a big history: nothing on a page
//! load scans jobs. Ignored by default (it writes 1,000,000 index entries, about 250 MB of
//! Redis memory for a minute); run it with
//! `cargo test --release -p warren-dashboard --test it -- --ignored big_history --nocapture`.
//! The figures go to docs/benchmarks.md.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use warren_kit::testkit::redis_url;
use warren_protocol::JobId;

use crate::{Harness, within};

const HISTORY: usize = 1_000_000;
const BATCH: usize = 10_000;
/// The bound for the first render.
const BUDGET: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "writes 1,000,000 jobs' index entries; run by hand for docs/benchmarks.md"]
async fn big_history() {
    let h = Harness::start("dash_big_history").await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = within(client.get_multiplexed_async_connection())
        .await
        .unwrap();
    let keys = h.store.keys().clone();
    let indexes = [
        keys.index_all(),
        keys.index_state(warren_protocol::JobState::Succeeded),
    ];
    // Old jobs: index entries only (their records are not read by a first page), written
    // in batches so Redis is never blocked for long.
    let started = Instant::now();
    for _ in 0..HISTORY / BATCH {
        let ids: Vec<String> = (0..BATCH).map(|_| JobId::new().to_string()).collect();
        let mut pipe = redis::pipe();
        for index in &indexes {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(index);
            for id in &ids {
                zadd.arg(0).arg(id);
            }
            pipe.add_command(zadd).ignore();
        }
        let _: () = within(pipe.query_async(&mut conn)).await.unwrap();
    }
    eprintln!("wrote {HISTORY} index entries in {:?}", started.elapsed());
    // The newest jobs are real records, as the first page reads them.
    for _ in 0..50 {
        h.job("bench", "q", &[]).await;
    }

    for (what, uri) in [
        ("overview", "/api/overview"),
        ("first page of jobs", "/api/jobs?limit=25"),
    ] {
        let mut times = Vec::new();
        for _ in 0..21 {
            let started = Instant::now();
            let (status, body) = h.call("GET", uri).await;
            times.push(started.elapsed());
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        times.sort();
        let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
        eprintln!(
            "{what}: median {median:?}, worst {worst:?} over {} requests",
            times.len()
        );
        assert!(median < BUDGET, "{what} took {median:?}");
    }
    let overview = h.get("/api/overview").await;
    assert!(overview["counts"]["succeeded"].as_u64().unwrap() >= HISTORY as u64);

    // UNLINK frees the big sets in the background instead of blocking Redis.
    let _: () = within(redis::cmd("UNLINK").arg(&indexes).query_async(&mut conn))
        .await
        .unwrap();
    h.finish().await;
}
