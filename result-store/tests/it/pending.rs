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
/// own: under fifo, priority and sjf that is the order they start in.
#[tokio::test]
async fn jobs_ahead_counts_smaller_keys_across_classes() {
    let ns = TestNamespace::new("pending_ahead");
    let store = store(&ns).await;
    assert_eq!(within("empty", store.pending_ahead(100)).await.unwrap(), 0);
    let classes = [
        ("a".to_owned(), r#"{"tenant":"a"}"#.to_owned()),
        ("b".to_owned(), r#"{"tenant":"b"}"#.to_owned()),
    ];
    let entries = [
        entry("a", 10),
        entry("a", 30),
        entry("a", 50),
        entry("b", 20),
        entry("b", 40),
    ];
    within("adding", store.pending_add(&classes, &entries))
        .await
        .unwrap();
    let ahead = |score| store.pending_ahead(score);
    assert_eq!(within("first", ahead(10)).await.unwrap(), 0);
    assert_eq!(within("b's first", ahead(20)).await.unwrap(), 1);
    assert_eq!(within("a's third", ahead(50)).await.unwrap(), 4);
    let place = within("position", store.pending_position(entries[4].job))
        .await
        .unwrap()
        .expect("indexed");
    assert_eq!(place.rank, Some(1), "second of its class");
    assert_eq!(
        within("b's second", ahead(place.score.unwrap()))
            .await
            .unwrap(),
        3
    );
    ns.cleanup().await;
}
