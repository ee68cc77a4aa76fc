//! What a namespace left, for `warren admin purge`: its keys, the pools its jobs ran on, and
//! deleting them, without touching another namespace.

use warren_kit::testkit::TestNamespace;
use warren_protocol::WorkerId;

use crate::{create, running_job, spec, store, within};

#[tokio::test]
async fn a_namespace_lists_and_deletes_only_its_own_keys() {
    let ns = TestNamespace::new("purge_keys");
    let other_ns = TestNamespace::new("purge_keys_other");
    let other = store(&other_ns).await;
    let store = store(&ns).await;
    let worker = WorkerId::from_raw("purge-w1");
    running_job(&store, &worker).await;
    create(&store, spec("team-a", "default")).await;
    let bystander = create(&other, spec("team-b", "default")).await;

    let keys = within("scan", store.namespace_keys()).await.unwrap();
    assert!(!keys.is_empty());
    let prefix = store.keys().prefix();
    assert!(keys.iter().all(|k| k.starts_with(prefix)), "{keys:?}");
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates"
    );

    let pools = within("pools", store.pools_of_jobs(&keys)).await.unwrap();
    assert_eq!(pools, vec!["cpu".to_owned()], "the running job's pool");

    let deleted = within("delete", store.delete_keys(&keys)).await.unwrap();
    assert_eq!(deleted, keys.len() as u64);
    assert!(
        within("rescan", store.namespace_keys())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        within("get", other.get(bystander)).await.unwrap().is_some(),
        "another namespace keeps its jobs"
    );
    ns.cleanup().await;
    other_ns.cleanup().await;
}
