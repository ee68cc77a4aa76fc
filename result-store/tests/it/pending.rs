//! The pending index as "why is my job waiting?" reads it.

use warren_kit::testkit::TestNamespace;
use warren_protocol::JobId;
use warren_store::PendingEntry;

use crate::{store, within};

fn entry(class_id: &str, score: i64) -> PendingEntry {
    let job = JobId::new();
    PendingEntry {
        job,
        class_id: class_id.to_owned(),
        member: format!("{job}|4|10|{score}"),
        score,
        deadline_ms: None,
    }
}

/// A job's rank among all pending jobs counts the smaller keys of every class, not only its
/// own, and jobs sharing its key (a batch) by id: under fifo, priority and sjf that is the
/// order they start in.
#[tokio::test]
async fn jobs_ahead_counts_smaller_keys_across_classes() {
    let ns = TestNamespace::new("pending_ahead");
    let store = store(&ns).await;
    let classes = [
        ("a".to_owned(), r#"{"tenant":"a"}"#.to_owned()),
        ("b".to_owned(), r#"{"tenant":"b"}"#.to_owned()),
    ];
    let entries = [
        entry("a", 10),
        entry("b", 20),
        entry("a", 30),
        entry("b", 30),
        entry("a", 30),
        entry("b", 40),
        entry("a", 50),
    ];
    within("adding", store.pending_add(&classes, &entries))
        .await
        .unwrap();
    // The order the scheduler serves them in: key, then id.
    let mut order: Vec<&PendingEntry> = entries.iter().collect();
    order.sort_by_key(|e| (e.score, e.job.to_string()));
    for (expected, entry) in order.into_iter().enumerate() {
        let place = within("position", store.pending_position(entry.job))
            .await
            .unwrap()
            .expect("indexed");
        let ahead = within("ahead", store.pending_ahead(&place)).await.unwrap();
        assert_eq!(
            ahead,
            Some(expected as u64),
            "entry {expected} (key {})",
            entry.score
        );
    }
    ns.cleanup().await;
}
