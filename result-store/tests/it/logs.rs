//! Job logs: append, read on from a cursor, keep the stream of each line.

use warren_kit::testkit::{TestNamespace, redis_url};
use warren_protocol::{JobId, JobState, WorkerId};
use warren_store::{LogLine, LogStream, Store, StoreOptions, Transition, TransitionOutcome};

use crate::{RESULT_TTL, cmd, create, raw, running_job, spec, store, transition, within};

fn lines(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

fn texts(log: &[LogLine]) -> Vec<(LogStream, &str)> {
    log.iter().map(|l| (l.stream, l.line.as_str())).collect()
}

#[tokio::test]
async fn logs_append_and_read_on_from_a_cursor() {
    let ns = TestNamespace::new("logs_append_read_cursor");
    let store = store(&ns).await;
    let id = create(&store, spec("team-a", "default")).await;

    within(
        "append",
        store.append_log(id, LogStream::Worker, &lines(&["started"])),
    )
    .await
    .unwrap();
    within(
        "append",
        store.append_log(id, LogStream::Stdout, &lines(&["one", "two"])),
    )
    .await
    .unwrap();
    within(
        "append",
        store.append_log(id, LogStream::Stderr, &lines(&["oops", ""])),
    )
    .await
    .unwrap();
    within("append", store.append_log(id, LogStream::Stdout, &[]))
        .await
        .unwrap();

    let all = within("read", store.read_log(id, None, 100)).await.unwrap();
    assert_eq!(
        texts(&all),
        vec![
            (LogStream::Worker, "started"),
            (LogStream::Stdout, "one"),
            (LogStream::Stdout, "two"),
            (LogStream::Stderr, "oops"),
            (LogStream::Stderr, ""),
        ]
    );
    let ids: Vec<&str> = all.iter().map(|l| l.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "entry ids are unique");

    // Read in pages of two, each starting after the last line seen.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = within("read", store.read_log(id, after.as_deref(), 2))
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page);
    }
    assert_eq!(seen, all);

    let tail = within("read", store.read_log(id, Some(&all[2].id), 100))
        .await
        .unwrap();
    assert_eq!(
        texts(&tail),
        vec![(LogStream::Stderr, "oops"), (LogStream::Stderr, "")]
    );
    let nothing_new = within("read", store.read_log(id, Some(&all[4].id), 100))
        .await
        .unwrap();
    assert!(nothing_new.is_empty());

    let empty = within("read", store.read_log(JobId::new(), None, 100))
        .await
        .unwrap();
    assert!(empty.is_empty());
    ns.cleanup().await;
}

#[tokio::test]
async fn a_log_never_outlives_its_finished_job() {
    let ns = TestNamespace::new("log_never_outlives_job");
    let store = store(&ns).await;
    let keys = store.keys().clone();
    let mut conn = raw().await;
    let worker = WorkerId::generate("host");

    // Lines written while the job runs keep no TTL of their own: the job is not finished.
    let id = running_job(&store, &worker).await;
    within(
        "append",
        store.append_log(id, LogStream::Stdout, &lines(&["working"])),
    )
    .await
    .unwrap();
    let pttl: i64 = cmd(&mut conn, "PTTL", &[&keys.job_log(id)]).await;
    assert_eq!(pttl, -1);

    // A job that finished before its first log line (a worker's closing note).
    let quiet = running_job(&store, &worker).await;
    assert_eq!(
        transition(&store, Transition::new(quiet, JobState::TimedOut)).await,
        TransitionOutcome::Done(JobState::Running)
    );
    within(
        "append",
        store.append_log(quiet, LogStream::Worker, &lines(&["killed after 30 s"])),
    )
    .await
    .unwrap();
    let pttl: i64 = cmd(&mut conn, "PTTL", &[&keys.job_log(quiet)]).await;
    let ttl_ms = RESULT_TTL.as_millis() as i64;
    assert!(
        pttl > ttl_ms - 60_000 && pttl <= ttl_ms,
        "log TTL {pttl} ms"
    );

    // Lines for a job that does not exist (any more).
    let gone = JobId::new();
    within(
        "append",
        store.append_log(gone, LogStream::Stderr, &lines(&["late"])),
    )
    .await
    .unwrap();
    let pttl: i64 = cmd(&mut conn, "PTTL", &[&keys.job_log(gone)]).await;
    assert!(pttl > 0 && pttl <= ttl_ms, "orphan log TTL {pttl} ms");
    ns.cleanup().await;
}

#[tokio::test]
async fn a_log_is_capped() {
    let ns = TestNamespace::new("log_is_capped");
    let options = StoreOptions {
        result_ttl: RESULT_TTL,
        log_max_lines: 10,
        ..StoreOptions::default()
    };
    let store = within("connect", Store::connect(&redis_url(), ns.ns(), options))
        .await
        .expect("Redis reachable at WARREN_TEST_REDIS_URL");
    let id = create(&store, spec("team-a", "default")).await;
    let many: Vec<String> = (0..1_000).map(|i| format!("line {i}")).collect();
    for chunk in many.chunks(100) {
        within("append", store.append_log(id, LogStream::Stdout, chunk))
            .await
            .unwrap();
    }
    let mut conn = raw().await;
    let len: i64 = cmd(&mut conn, "XLEN", &[&store.keys().job_log(id)]).await;
    // `MAXLEN ~` trims whole stream nodes (100 entries by default), never below the cap.
    assert!((10..=200).contains(&len), "{len} lines kept");
    let kept = within("read", store.read_log(id, None, 1_000))
        .await
        .unwrap();
    assert_eq!(kept.last().map(|l| l.line.as_str()), Some("line 999"));
    assert_eq!(kept.len() as i64, len);
    ns.cleanup().await;
}

#[tokio::test]
async fn a_log_is_capped_in_bytes_and_the_record_says_so() {
    let ns = TestNamespace::new("log_byte_cap");
    let options = StoreOptions {
        result_ttl: RESULT_TTL,
        log_max_bytes: 1_000,
        ..StoreOptions::default()
    };
    let store = within("connect", Store::connect(&redis_url(), ns.ns(), options))
        .await
        .expect("Redis reachable at WARREN_TEST_REDIS_URL");
    let id = create(&store, spec("team-a", "default")).await;
    // 99 bytes plus a newline: ten fit exactly, the eleventh does not.
    let line = "x".repeat(99);
    let first: Vec<String> = vec![line.clone(); 10];
    let truncated = within("append", store.append_log(id, LogStream::Stdout, &first))
        .await
        .unwrap();
    assert!(!truncated, "exactly at the cap is not truncated");
    let record = crate::get(&store, id).await;
    assert!(!record.log_truncated);
    assert_eq!(record.log_cap_bytes, Some(1_000));
    // One byte more, then a big burst: all dropped, one note.
    for _ in 0..3 {
        let burst: Vec<String> = vec![line.clone(); 100];
        let truncated = within("append", store.append_log(id, LogStream::Stdout, &burst))
            .await
            .unwrap();
        assert!(truncated);
    }
    let kept = within("read", store.read_log(id, None, 1_000))
        .await
        .unwrap();
    assert_eq!(kept.len(), 11, "ten lines and one note");
    let bytes: usize = kept[..10].iter().map(|l| l.line.len() + 1).sum();
    assert_eq!(bytes, 1_000);
    assert_eq!(kept[10].stream, LogStream::Worker);
    assert!(kept[10].line.contains("1000 bytes"), "{}", kept[10].line);
    let record = crate::get(&store, id).await;
    assert!(record.log_truncated);
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["log_truncated"], true);
    assert_eq!(json["log_cap_bytes"], 1_000);
    ns.cleanup().await;
}
