//! Shared informers (client-go's `SharedInformerFactory`, kube-runtime's shared reflectors):
//! each resource the controllers read is listed and watched once per master, into one cache
//! that every controller reads, with one stream of changed objects per subscriber.
//!
//! A controller asks for what it needs before the informers start ([`Informer::subscribe`]
//! for a stream of changed objects, [`Informer::reader`] for the cache); [`Informers::run`]
//! then drives one watch per resource that anyone asked for, with kube-runtime's back-off on
//! errors and a relist when the watch expires. Subscribers must keep polling their streams: a
//! full buffer holds the watch back until they do (backpressure, not loss).
//!
//! kube-runtime's own shared reflectors (`store_shared`) are not used: they pass on created
//! and updated objects only, so a deleted pod would never wake its ReplicaSet. Here a deleted
//! object is passed on too (it is no longer in the cache when it arrives), and so is every
//! object that vanished while the watch was being re-established.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{SinkExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tracing::debug;

/// How often [`synced`] looks whether a cache has its first list.
const SYNC_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Changed objects buffered per subscriber before the watch waits for it.
const BUFFER: usize = 1024;

/// The namespace of node heartbeats (Leases).
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// One resource's cache and the watch that fills it.
pub struct Informer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    api: Api<K>,
    reader: Store<K>,
    writer: reflector::store::Writer<K>,
    subscribers: Vec<mpsc::Sender<Arc<K>>>,
    wanted: bool,
}

impl<K> Informer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    fn new(api: Api<K>) -> Self {
        let writer = reflector::store::Writer::default();
        Self {
            api,
            reader: writer.as_reader(),
            writer,
            subscribers: Vec::new(),
            wanted: false,
        }
    }

    /// The cache (empty until the first list arrives; [`synced`] waits for it).
    pub fn reader(&mut self) -> Store<K> {
        self.wanted = true;
        self.reader.clone()
    }

    /// A stream of the objects that change (created, updated, or deleted: a deleted object
    /// is no longer in the cache when it arrives), from the time the informers start.
    pub fn subscribe(&mut self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.wanted = true;
        let (tx, rx) = mpsc::channel(BUFFER);
        self.subscribers.push(tx);
        rx
    }

    /// The watch that fills the cache and tells the subscribers, if anyone asked for it.
    fn into_task(self) -> Option<BoxFuture<'static, ()>> {
        let Self {
            api,
            reader,
            mut writer,
            mut subscribers,
            wanted,
        } = self;
        if !wanted {
            return None;
        }
        let kind = K::kind(&());
        Some(Box::pin(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            // What the cache held when a relist began: whatever is not listed again was
            // deleted meanwhile, and its subscribers must hear of it.
            let mut before: Vec<Arc<K>> = Vec::new();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        debug!(%kind, error = %err, "informer watch failed; retrying with back-off");
                        continue;
                    }
                };
                let touched = apply(&mut writer, &reader, &mut before, event);
                for object in touched {
                    for subscriber in &mut subscribers {
                        // A subscriber that is gone (its controller stopped) is skipped.
                        let _ = subscriber.send(object.clone()).await;
                    }
                }
            }
        }))
    }
}

/// Applies one watch event to the cache and returns the objects subscribers hear of: the
/// created, updated or deleted object, and after a relist every listed object and every one
/// that vanished since the relist began (`before`, taken at its start).
fn apply<K>(
    writer: &mut reflector::store::Writer<K>,
    reader: &Store<K>,
    before: &mut Vec<Arc<K>>,
    event: watcher::Event<K>,
) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    if matches!(event, watcher::Event::Init) {
        *before = reader.state();
    }
    writer.apply_watcher_event(&event);
    match event {
        watcher::Event::Apply(object) => {
            let key = ObjectRef::from_obj(&object);
            vec![reader.get(&key).unwrap_or_else(|| Arc::new(object))]
        }
        watcher::Event::Delete(object) => vec![Arc::new(object)],
        watcher::Event::InitDone => {
            let now = reader.state();
            let listed: HashSet<ObjectRef<K>> =
                now.iter().map(|o| ObjectRef::from_obj(&**o)).collect();
            let gone = std::mem::take(before)
                .into_iter()
                .filter(|o| !listed.contains(&ObjectRef::from_obj(&**o)));
            now.iter().cloned().chain(gone).collect()
        }
        watcher::Event::Init | watcher::Event::InitApply(_) => Vec::new(),
    }
}

/// Waits until `cache` holds its first complete list; false if its informer is gone.
///
/// Polls instead of awaiting `Store::wait_until_ready`: in kube-runtime 2.0.1 that future
/// keeps one waker for all waiters (a oneshot receiver behind a mutex), so of two tasks
/// waiting on one shared cache only the last to poll is ever woken.
pub async fn synced<K>(cache: &Store<K>) -> bool
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    loop {
        if let Some(ready) = futures::FutureExt::now_or_never(cache.wait_until_ready()) {
            return ready.is_ok();
        }
        tokio::time::sleep(SYNC_POLL).await;
    }
}

/// The informers of one master.
pub struct Informers {
    /// Every Pod.
    pub pods: Informer<Pod>,
    /// Every Node.
    pub nodes: Informer<Node>,
    /// Every ReplicaSet.
    pub replica_sets: Informer<ReplicaSet>,
    /// Every Deployment.
    pub deployments: Informer<Deployment>,
    /// Every Service.
    pub services: Informer<Service>,
    /// The node heartbeats in `kube-node-lease`.
    pub node_leases: Informer<Lease>,
}

impl Informers {
    /// Informers on `client`; nothing is listed until [`Informers::run`].
    pub fn new(client: &kube::Client) -> Self {
        Self {
            pods: Informer::new(Api::all(client.clone())),
            nodes: Informer::new(Api::all(client.clone())),
            replica_sets: Informer::new(Api::all(client.clone())),
            deployments: Informer::new(Api::all(client.clone())),
            services: Informer::new(Api::all(client.clone())),
            node_leases: Informer::new(Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE)),
        }
    }

    /// Lists and watches every resource that a controller asked for, until `shutdown`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let tasks: Vec<BoxFuture<'static, ()>> = [
            self.pods.into_task(),
            self.nodes.into_task(),
            self.replica_sets.into_task(),
            self.deployments.into_task(),
            self.services.into_task(),
            self.node_leases.into_task(),
        ]
        .into_iter()
        .flatten()
        .collect();
        tokio::select! {
            _ = futures::future::join_all(tasks) => {}
            () = shutdown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("default".into());
        pod
    }

    fn names(objects: &[Arc<Pod>]) -> Vec<String> {
        let mut names: Vec<String> = objects
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn every_waiter_sees_the_cache_synced() {
        let mut writer = reflector::store::Writer::<Pod>::default();
        let reader = writer.as_reader();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let reader = reader.clone();
                tokio::spawn(async move { synced(&reader).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            let synced = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("every waiter is woken")
                .expect("joined");
            assert!(synced);
        }
    }

    #[test]
    fn subscribers_hear_of_changes_deletions_and_what_a_relist_lost() {
        let mut writer = reflector::store::Writer::<Pod>::default();
        let reader = writer.as_reader();
        let mut before = Vec::new();
        let mut apply = |event| apply(&mut writer, &reader, &mut before, event);

        // The first list: every listed pod once it is complete.
        assert!(apply(watcher::Event::Init).is_empty());
        assert!(apply(watcher::Event::InitApply(pod("a"))).is_empty());
        assert!(apply(watcher::Event::InitApply(pod("b"))).is_empty());
        assert_eq!(names(&apply(watcher::Event::InitDone)), ["a", "b"]);

        assert_eq!(names(&apply(watcher::Event::Apply(pod("c")))), ["c"]);
        // A deletion is told, and the cache no longer has the pod.
        assert_eq!(names(&apply(watcher::Event::Delete(pod("a")))), ["a"]);
        assert!(reader.get(&ObjectRef::new("a").within("default")).is_none());

        // A relist that no longer finds "b": it was deleted while nobody watched.
        apply(watcher::Event::Init);
        apply(watcher::Event::InitApply(pod("c")));
        apply(watcher::Event::InitApply(pod("d")));
        assert_eq!(names(&apply(watcher::Event::InitDone)), ["b", "c", "d"]);
        assert!(reader.get(&ObjectRef::new("b").within("default")).is_none());
    }
}
