//! Store conformance: every behaviour of the `Store` trait is written once, as an async fn over
//! `Arc<dyn Store>`, and run against both backends — the embedded redb store in a temporary
//! directory and a real etcd started on loopback ports. The embedded store's own promises
//! (durability across reopen and kill -9, watchers that fall behind) follow at the end.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use skiff::etcd::Etcd;
use skiff_master::store::embedded::{EmbeddedOptions, EmbeddedStore};
use skiff_master::store::etcd::EtcdStore;
use skiff_master::store::{EventKind, KeyValue, Revision, Store, StoreError, WatchStream};

/// How long a test waits for a watch event that should come.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend under test, with whatever keeps it alive.
struct Backend {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _etcd: Option<Etcd>,
}

async fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open embedded store");
    Backend {
        store: Arc::new(store),
        _dir: Some(dir),
        _etcd: None,
    }
}

async fn etcd() -> Backend {
    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .expect("etcd start task")
        .expect("start etcd");
    let store = EtcdStore::connect(&[etcd.endpoint()])
        .await
        .expect("connect to etcd");
    Backend {
        store: Arc::new(store),
        _dir: None,
        _etcd: Some(etcd),
    }
}

/// Runs each named behaviour against both backends: `embedded::<name>` and `etcd::<name>`.
macro_rules! conformance {
    ($($behaviour:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let backend = super::embedded().await;
                    super::$behaviour(backend.store.clone()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let backend = super::etcd().await;
                    super::$behaviour(backend.store.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    fresh_store_starts_at_revision_1,
    create_get_and_list_by_prefix,
    create_of_existing_key_is_already_exists,
    update_compares_on_mod_revision,
    delete_returns_last_value_and_compares,
    failed_writes_consume_no_revision,
    revisions_are_global_and_strictly_increasing,
    watch_replays_history_then_follows_live,
    watch_filters_by_prefix,
    watch_from_the_middle_skips_older_events,
    watch_from_a_future_revision_waits_for_it,
    watch_below_compaction_point_is_compacted,
    compact_rejects_future_and_already_compacted_revisions,
    concurrent_creates_of_one_key_have_one_winner,
    many_concurrent_writers_are_all_acknowledged_and_visible,
    many_watchers_each_see_every_event,
    slow_watcher_still_sees_every_event,
);

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// The next item of a watch, failing the test if none comes in time.
async fn next_item(watch: &mut WatchStream) -> Result<skiff_master::store::WatchEvent, StoreError> {
    tokio::time::timeout(EVENT_TIMEOUT, watch.next())
        .await
        .expect("no watch event in time")
        .expect("watch stream ended")
}

/// The next `n` events of a watch.
async fn next_events(watch: &mut WatchStream, n: usize) -> Vec<skiff_master::store::WatchEvent> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_item(watch).await.expect("watch event"));
    }
    events
}

/// Event kinds and keys, for compact assertions.
fn summary(events: &[skiff_master::store::WatchEvent]) -> Vec<(EventKind, String)> {
    events.iter().map(|e| (e.kind, e.kv.key.clone())).collect()
}

async fn fresh_store_starts_at_revision_1(store: Arc<dyn Store>) {
    assert_eq!(store.revision().await.unwrap(), 1);
    let list = store.list("/").await.unwrap();
    assert!(list.items.is_empty());
    assert_eq!(list.revision, 1);
    let kv = store.create("/registry/a", value("a")).await.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (2, 2));
    assert_eq!(store.revision().await.unwrap(), 2);
}

async fn create_get_and_list_by_prefix(store: Arc<dyn Store>) {
    let web2 = store
        .create("/registry/pods/default/web-2", value("w2"))
        .await
        .unwrap();
    let web1 = store
        .create("/registry/pods/default/web-1", value("w1"))
        .await
        .unwrap();
    store
        .create("/registry/pods/kube-system/dns", value("dns"))
        .await
        .unwrap();
    store
        .create("/registry/services/default/web", value("svc"))
        .await
        .unwrap();
    // A key that shares the prefix's characters but not its path.
    store
        .create("/registry/pods/defaultx/other", value("x"))
        .await
        .unwrap();

    assert_eq!(web2.key, "/registry/pods/default/web-2");
    assert_eq!(web2.value, value("w2"));
    assert_eq!(web2.create_revision, web2.mod_revision);
    assert_eq!(
        store.get("/registry/pods/default/web-1").await.unwrap(),
        Some(web1.clone())
    );
    assert_eq!(
        store.get("/registry/pods/default/web-3").await.unwrap(),
        None
    );

    let list = store.list("/registry/pods/default/").await.unwrap();
    assert_eq!(list.items, vec![web1, web2], "sorted by key, prefix only");
    assert_eq!(list.revision, store.revision().await.unwrap());

    let pods = store.list("/registry/pods/").await.unwrap();
    let keys: Vec<&str> = pods.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/pods/default/web-1",
            "/registry/pods/default/web-2",
            "/registry/pods/defaultx/other",
            "/registry/pods/kube-system/dns",
        ]
    );
    assert!(
        store
            .list("/registry/nodes/")
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn create_of_existing_key_is_already_exists(store: Arc<dyn Store>) {
    let first = store.create("/k", value("1")).await.unwrap();
    let error = store.create("/k", value("2")).await.unwrap_err();
    assert_eq!(error, StoreError::AlreadyExists("/k".to_owned()));
    assert_eq!(store.get("/k").await.unwrap(), Some(first));
}

async fn update_compares_on_mod_revision(store: Arc<dyn Store>) {
    let created = store.create("/k", value("1")).await.unwrap();

    // Unconditional update.
    let second = store.update("/k", value("2"), None).await.unwrap();
    assert_eq!(second.create_revision, created.create_revision);
    assert!(second.mod_revision > created.mod_revision);
    assert_eq!(second.value, value("2"));

    // Update on the right revision.
    let third = store
        .update("/k", value("3"), Some(second.mod_revision))
        .await
        .unwrap();
    assert_eq!(third.create_revision, created.create_revision);
    assert!(third.mod_revision > second.mod_revision);
    assert_eq!(store.get("/k").await.unwrap(), Some(third.clone()));

    // Update on a stale revision.
    let error = store
        .update("/k", value("4"), Some(second.mod_revision))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StoreError::Conflict {
            key: "/k".to_owned(),
            expected: second.mod_revision,
            actual: third.mod_revision,
        }
    );
    assert_eq!(store.get("/k").await.unwrap(), Some(third));

    // Update of a missing key, with and without a revision.
    assert_eq!(
        store
            .update("/missing", value("x"), None)
            .await
            .unwrap_err(),
        StoreError::NotFound("/missing".to_owned())
    );
    assert_eq!(
        store
            .update("/missing", value("x"), Some(created.mod_revision))
            .await
            .unwrap_err(),
        StoreError::NotFound("/missing".to_owned())
    );
    assert_eq!(store.get("/missing").await.unwrap(), None);
}

async fn delete_returns_last_value_and_compares(store: Arc<dyn Store>) {
    let created = store.create("/k", value("1")).await.unwrap();
    let updated = store.update("/k", value("2"), None).await.unwrap();

    assert_eq!(
        store.delete("/missing", None).await.unwrap_err(),
        StoreError::NotFound("/missing".to_owned())
    );
    assert_eq!(
        store
            .delete("/k", Some(created.mod_revision))
            .await
            .unwrap_err(),
        StoreError::Conflict {
            key: "/k".to_owned(),
            expected: created.mod_revision,
            actual: updated.mod_revision,
        }
    );

    let deleted = store
        .delete("/k", Some(updated.mod_revision))
        .await
        .unwrap();
    let revision = store.revision().await.unwrap();
    assert_eq!(
        deleted,
        KeyValue {
            key: "/k".to_owned(),
            value: value("2"),
            create_revision: created.create_revision,
            mod_revision: revision,
        },
        "the last value, with the deleting revision"
    );
    assert_eq!(store.get("/k").await.unwrap(), None);
    assert!(store.list("/").await.unwrap().items.is_empty());
    assert_eq!(
        store.delete("/k", None).await.unwrap_err(),
        StoreError::NotFound("/k".to_owned())
    );

    // Unconditional delete, then the key can be created again as a new object.
    let again = store.create("/k", value("3")).await.unwrap();
    assert!(again.create_revision > revision);
    let deleted = store.delete("/k", None).await.unwrap();
    assert_eq!(deleted.value, value("3"));
    assert_eq!(deleted.create_revision, again.create_revision);
}

async fn failed_writes_consume_no_revision(store: Arc<dyn Store>) {
    let kv = store.create("/k", value("1")).await.unwrap();
    let before = store.revision().await.unwrap();
    assert!(store.create("/k", value("2")).await.is_err());
    assert!(store.update("/nope", value("2"), None).await.is_err());
    assert!(
        store
            .update("/k", value("2"), Some(kv.mod_revision - 1))
            .await
            .is_err()
    );
    assert!(store.delete("/nope", None).await.is_err());
    assert_eq!(store.revision().await.unwrap(), before);
    let next = store.create("/k2", value("1")).await.unwrap();
    assert_eq!(next.mod_revision, before + 1);
}

async fn revisions_are_global_and_strictly_increasing(store: Arc<dyn Store>) {
    let mut last = store.revision().await.unwrap();
    for i in 0..10 {
        let kv = store
            .create(&format!("/kind-{}/obj-{i}", i % 3), value("v"))
            .await
            .unwrap();
        assert_eq!(kv.mod_revision, last + 1, "one revision per write, any key");
        last = kv.mod_revision;
        let kv = store
            .update(&format!("/kind-{}/obj-{i}", i % 3), value("w"), None)
            .await
            .unwrap();
        assert_eq!(kv.mod_revision, last + 1);
        last = kv.mod_revision;
    }
    let kv = store.delete("/kind-0/obj-0", None).await.unwrap();
    assert_eq!(kv.mod_revision, last + 1);
    assert_eq!(store.revision().await.unwrap(), last + 1);
}

async fn watch_replays_history_then_follows_live(store: Arc<dyn Store>) {
    let start = store.revision().await.unwrap();
    let a = store.create("/w/a", value("a1")).await.unwrap();
    let a2 = store.update("/w/a", value("a2"), None).await.unwrap();
    let b = store.create("/w/b", value("b1")).await.unwrap();
    let deleted = store.delete("/w/a", None).await.unwrap();

    let mut watch = store.watch("/w/", start).await.unwrap();
    let history = next_events(&mut watch, 4).await;
    assert_eq!(
        summary(&history),
        [
            (EventKind::Put, "/w/a".to_owned()),
            (EventKind::Put, "/w/a".to_owned()),
            (EventKind::Put, "/w/b".to_owned()),
            (EventKind::Delete, "/w/a".to_owned()),
        ]
    );
    assert_eq!(history[0].kv, a);
    assert_eq!(history[1].kv, a2);
    assert_eq!(history[2].kv, b);
    assert_eq!(
        history[3].kv, deleted,
        "a delete event carries the last value and the deleting revision"
    );
    assert_eq!(history[3].kv.value, value("a2"));

    // Live events follow, in order, with nothing lost or repeated at the seam.
    let c = store.create("/w/c", value("c1")).await.unwrap();
    let b_deleted = store.delete("/w/b", Some(b.mod_revision)).await.unwrap();
    let live = next_events(&mut watch, 2).await;
    assert_eq!(live[0].kind, EventKind::Put);
    assert_eq!(live[0].kv, c);
    assert_eq!(live[1].kind, EventKind::Delete);
    assert_eq!(live[1].kv, b_deleted);
    assert_eq!(live[1].kv.value, value("b1"));
    assert_eq!(live[1].kv.create_revision, b.create_revision);
}

async fn watch_filters_by_prefix(store: Arc<dyn Store>) {
    let start = store.revision().await.unwrap();
    store.create("/other/x", value("x")).await.unwrap();
    store.create("/w/a", value("a")).await.unwrap();
    store.create("/wx/a", value("no")).await.unwrap();
    let mut watch = store.watch("/w/", start).await.unwrap();
    let mut all = store.watch("/", start).await.unwrap();
    store.create("/other/y", value("y")).await.unwrap();
    store.delete("/other/x", None).await.unwrap();
    store.create("/w/b", value("b")).await.unwrap();

    // Had the other keys leaked through, they would arrive before `/w/b`.
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        summary(&events),
        [
            (EventKind::Put, "/w/a".to_owned()),
            (EventKind::Put, "/w/b".to_owned())
        ]
    );
    let everything = next_events(&mut all, 6).await;
    let keys: Vec<&str> = everything.iter().map(|e| e.kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["/other/x", "/w/a", "/wx/a", "/other/y", "/other/x", "/w/b"]
    );
    let revisions: Vec<Revision> = everything.iter().map(|e| e.kv.mod_revision).collect();
    let expected: Vec<Revision> = (start + 1..=start + 6).collect();
    assert_eq!(revisions, expected);
}

async fn watch_from_the_middle_skips_older_events(store: Arc<dyn Store>) {
    let mut revisions = Vec::new();
    for i in 0..5 {
        let kv = store.create(&format!("/m/{i}"), value("v")).await.unwrap();
        revisions.push(kv.mod_revision);
    }
    let mut watch = store.watch("/m/", revisions[2]).await.unwrap();
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(),
        revisions[3..]
    );
    // Watching from the current revision yields only what comes next.
    let mut watch = store.watch("/m/", revisions[4]).await.unwrap();
    let kv = store.create("/m/5", value("v")).await.unwrap();
    assert_eq!(next_item(&mut watch).await.unwrap().kv, kv);
}

async fn watch_from_a_future_revision_waits_for_it(store: Arc<dyn Store>) {
    let now = store.revision().await.unwrap();
    let mut watch = store.watch("/f/", now + 2).await.unwrap();
    store.create("/f/1", value("1")).await.unwrap();
    store.create("/f/2", value("2")).await.unwrap();
    let third = store.create("/f/3", value("3")).await.unwrap();
    assert_eq!(third.mod_revision, now + 3);
    let event = next_item(&mut watch).await.unwrap();
    assert_eq!(
        event.kv, third,
        "events up to the revision asked for are skipped"
    );
}

/// A watch error may come from `watch` itself or as the stream's first item.
async fn watch_error(store: &Arc<dyn Store>, prefix: &str, after: Revision) -> StoreError {
    match store.watch(prefix, after).await {
        Err(e) => e,
        Ok(mut watch) => match next_item(&mut watch).await {
            Err(e) => e,
            Ok(event) => panic!("expected an error, got {event:?}"),
        },
    }
}

async fn watch_below_compaction_point_is_compacted(store: Arc<dyn Store>) {
    let mut revisions = Vec::new();
    for i in 0..6 {
        let kv = store.create(&format!("/c/{i}"), value("v")).await.unwrap();
        revisions.push(kv.mod_revision);
    }
    let point = revisions[3];
    store.compact(point).await.unwrap();

    for after in [revisions[0] - 1, revisions[2]] {
        match watch_error(&store, "/c/", after).await {
            StoreError::Compacted {
                requested,
                compacted,
            } => {
                assert_eq!(requested, after);
                assert_eq!(compacted, point);
            }
            other => panic!("watch after {after}: expected Compacted, got {other:?}"),
        }
    }

    // At the compaction point and above, history is still there.
    let mut watch = store.watch("/c/", point).await.unwrap();
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(),
        revisions[4..]
    );
    // And the current state is untouched by compaction.
    assert_eq!(store.list("/c/").await.unwrap().items.len(), 6);
}

async fn compact_rejects_future_and_already_compacted_revisions(store: Arc<dyn Store>) {
    for i in 0..3 {
        store.create(&format!("/x/{i}"), value("v")).await.unwrap();
    }
    let now = store.revision().await.unwrap();
    assert!(matches!(
        store.compact(now + 10).await,
        Err(StoreError::FutureRevision { requested, .. }) if requested == now + 10
    ));
    store.compact(now - 1).await.unwrap();
    assert!(matches!(
        store.compact(now - 1).await,
        Err(StoreError::Compacted { requested, .. }) if requested == now - 1
    ));
    assert!(matches!(
        store.compact(now - 2).await,
        Err(StoreError::Compacted { .. })
    ));
    store.compact(now).await.unwrap();
    // Compaction is not a write.
    assert_eq!(store.revision().await.unwrap(), now);
}

async fn concurrent_creates_of_one_key_have_one_winner(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create("/race", value(&i.to_string())).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(kv) => winners.push(kv),
            Err(StoreError::AlreadyExists(key)) => assert_eq!(key, "/race"),
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    assert_eq!(store.get("/race").await.unwrap(), Some(winners.remove(0)));
}

async fn many_concurrent_writers_are_all_acknowledged_and_visible(store: Arc<dyn Store>) {
    const TASKS: usize = 200;
    const PER_TASK: usize = 10;
    let start = store.revision().await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut acked = Vec::with_capacity(PER_TASK);
                for i in 0..PER_TASK {
                    let key = format!("/load/{t:03}/{i:02}");
                    acked.push(store.create(&key, value(&key)).await.unwrap());
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    let total = TASKS * PER_TASK;
    let revisions: HashSet<Revision> = acked.iter().map(|kv| kv.mod_revision).collect();
    assert_eq!(revisions.len(), total, "every write has its own revision");
    assert_eq!(
        store.revision().await.unwrap(),
        start + total as Revision,
        "no revision skipped"
    );
    let list = store.list("/load/").await.unwrap();
    acked.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(list.items, acked);
}

async fn many_watchers_each_see_every_event(store: Arc<dyn Store>) {
    const WATCHERS: usize = 120;
    const EVENTS: usize = 50;
    let start = store.revision().await.unwrap();
    let mut watches = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        watches.push(store.watch("/many/", start).await.unwrap());
    }
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..EVENTS {
                store
                    .create(&format!("/many/{i:03}"), value("v"))
                    .await
                    .unwrap();
            }
        })
    };
    let readers: Vec<_> = watches
        .into_iter()
        .map(|mut watch| tokio::spawn(async move { next_events(&mut watch, EVENTS).await }))
        .collect();
    writer.await.unwrap();
    let expected: Vec<Revision> = (start + 1..=start + EVENTS as Revision).collect();
    for reader in readers {
        let events = reader.await.unwrap();
        let revisions: Vec<Revision> = events.iter().map(|e| e.kv.mod_revision).collect();
        assert_eq!(revisions, expected);
    }
}

async fn slow_watcher_still_sees_every_event(store: Arc<dyn Store>) {
    // The watcher reads nothing while 1,500 separate commits happen (more than the embedded
    // store's live channel holds), then must still get all of them, in order.
    const EVENTS: usize = 1_500;
    let start = store.revision().await.unwrap();
    let mut watch = store.watch("/slow/", start).await.unwrap();
    for i in 0..EVENTS {
        store
            .create(&format!("/slow/{i:04}"), value("v"))
            .await
            .unwrap();
    }
    let events = next_events(&mut watch, EVENTS).await;
    let expected: Vec<Revision> = (start + 1..=start + EVENTS as Revision).collect();
    let revisions: Vec<Revision> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, expected);
}

// ----- The embedded store's own promises -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_reopen_keeps_every_object_and_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (expected, revision) = {
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..20)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..20 {
                        let key = format!("/r/{t:02}/{i:02}");
                        let kv = store.create(&key, value(&key)).await.unwrap();
                        if i % 3 == 0 {
                            store
                                .update(&key, value("updated"), Some(kv.mod_revision))
                                .await
                                .unwrap();
                        }
                        if i % 5 == 0 {
                            store.delete(&key, None).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        store.compact(10).await.unwrap();
        let list = store.list("/").await.unwrap();
        (list.items, list.revision)
        // The store is dropped here: its writer thread stops and the file closes.
    };
    assert_eq!(expected.len(), 20 * 16);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    let list = store.list("/").await.unwrap();
    assert_eq!(list.items, expected);
    assert_eq!(list.revision, revision);
    assert_eq!(store.revision().await.unwrap(), revision);
    // The compaction point was kept too.
    assert!(matches!(
        store.compact(10).await,
        Err(StoreError::Compacted { .. })
    ));

    // History did not survive: older watches must relist; watching from now works.
    assert!(matches!(
        store.watch("/", revision - 1).await.err(),
        Some(StoreError::Compacted { requested, compacted }) if requested == revision - 1
            && compacted == revision
    ));
    let mut watch = store.watch("/r/", revision).await.unwrap();
    let kv = store.create("/r/new", value("new")).await.unwrap();
    assert_eq!(kv.mod_revision, revision + 1, "revisions continue");
    assert_eq!(next_item(&mut watch).await.unwrap().kv, kv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_watcher_behind_the_history_window_ends_with_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        history_events: 20,
        live_batches: 4,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(dir.path(), options).unwrap();
    let start = store.revision().await.unwrap();
    let mut watch = store.watch("/", start).await.unwrap();
    for i in 0..50 {
        store.create(&format!("/{i:02}"), value("v")).await.unwrap();
    }
    // Never silently skipped: the stream says it cannot continue, then ends.
    match next_item(&mut watch).await {
        Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, start),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(watch.next().await.is_none());
    // Within the window, a watch from the past still works.
    let now = store.revision().await.unwrap();
    let mut watch = store.watch("/", now - 20).await.unwrap();
    assert_eq!(next_events(&mut watch, 20).await.len(), 20);
    assert!(store.watch("/", now - 21).await.is_err());
}

/// Environment variable that turns [`kill9_child`] into the writer process.
const KILL9_DIR: &str = "SKIFF_STORE_KILL9_DIR";
/// Acknowledged writes the parent waits for before it kills the child.
const KILL9_AFTER_ACKS: usize = 3_000;

#[test]
fn embedded_acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "kill9_child", "--nocapture"])
        .env(KILL9_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer child");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());

    // key -> acknowledged mod revision
    let mut acked: BTreeMap<String, Revision> = BTreeMap::new();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = stdout.read_until(b'\n', &mut line).unwrap();
        if n == 0 {
            break;
        }
        // A line cut short by the kill has no newline: it was never fully acknowledged.
        if let Some((key, revision)) = parse_ack(&line) {
            acked.insert(key, revision);
        }
        if !killed && (acked.len() >= KILL9_AFTER_ACKS || Instant::now() > deadline) {
            child.kill().expect("kill -9 the child");
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed, "the child stopped on its own: {status}");
    assert!(
        acked.len() >= KILL9_AFTER_ACKS,
        "only {} writes acknowledged in time",
        acked.len()
    );

    let store = EmbeddedStore::open(dir.path()).expect("reopen after kill -9");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let list = runtime.block_on(store.list("/kill9/")).unwrap();
    let present: BTreeMap<&str, &KeyValue> =
        list.items.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    let mut missing = Vec::new();
    for (key, revision) in &acked {
        match present.get(key.as_str()) {
            Some(kv) => {
                assert_eq!(kv.mod_revision, *revision, "{key}");
                assert_eq!(kv.value, value(key), "{key}");
            }
            None => missing.push(key),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    let max = acked.values().max().copied().unwrap_or(0);
    assert!(list.revision >= max);
    eprintln!(
        "kill -9 after {} acknowledged writes; {} keys on disk at revision {}",
        acked.len(),
        list.items.len(),
        list.revision
    );
}

/// `ACK <key> <revision>\n`
fn parse_ack(line: &[u8]) -> Option<(String, Revision)> {
    let line = std::str::from_utf8(line).ok()?.strip_suffix('\n')?;
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let key = parts.next()?.to_owned();
    let revision = parts.next()?.parse().ok()?;
    Some((key, revision))
}

/// The writer process of [`embedded_acknowledged_writes_survive_kill_9`]: 64 tasks create keys
/// as fast as the store takes them and print each acknowledged one, until killed.
#[test]
#[ignore = "child process of embedded_acknowledged_writes_survive_kill_9"]
fn kill9_child() {
    let Some(dir) = std::env::var_os(KILL9_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Arc::new(EmbeddedStore::open(Path::new(&dir)).unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/kill9/{t:02}/{i:06}");
                        let kv = store.create(&key, value(&key)).await.unwrap();
                        // Written straight to the fd (not captured by the test harness), one
                        // line at a time, only after the store acknowledged the write.
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {} {}", kv.key, kv.mod_revision).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn embedded_open_of_a_corrupt_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(
        dir.path()
            .join(skiff_master::store::embedded::DATABASE_FILE),
        garbage,
    )
    .unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Backend(message)) => assert!(message.contains("open"), "{message}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a garbage file opened as a store"),
    }
}
