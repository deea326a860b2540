//! The watch cache (kube-apiserver's "cacher", `k8s.io/apiserver/pkg/storage/cacher`): one
//! store watch for the whole API server, every watcher and most lists served from memory.
//!
//! As in Kubernetes:
//! - the cache lists the store once and then follows one watch from that revision, so a
//!   thousand `kubectl get -w` or kubelets cost one etcd watch, not a thousand;
//! - each resource keeps its current objects and a ring of its recent events; a watch from a
//!   resourceVersion replays the ring after it, and one older than the ring gets `410 Gone`
//!   ("too old resource version"), after which clients list again;
//! - each event is encoded once, however many watchers receive it (KEP-1152's
//!   `cachingObject`): the labels and selectable fields that label and field selectors read
//!   (the cacher's `GetAttrs`) and the protobuf form are made on first use and shared; the
//!   whole parsed object is kept only for the few readers that ask for it (authorizers and
//!   admission reading roles, namespaces, service accounts). The JSON is the stored bytes
//!   themselves (shared with the store), with the resourceVersion spliced in as each answer is
//!   written: a second copy of every object, kept for as long as the object lives, cost more
//!   memory (a million pods) than the splice costs time;
//! - a watcher with a selector is told ADDED, MODIFIED or DELETED from whether the object's
//!   previous and new versions match, so the cache keeps no per-watcher state;
//! - consistent lists (KEP-2340) wait until the cache has seen the store's current revision
//!   and are then served from memory.
//!
//! It differs from Kubernetes in two ways: there is one store watch for every resource (one
//! ordered stream tells the cache how far it is for all of them, which is what a consistent
//! read needs; etcd needs progress notifications for that), and the ring is bounded by count
//! only, not also by age.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use skiff_api::selectors::LabelList;
use tokio::sync::watch;
use tracing::{info, warn};

use super::resources::{RESOURCES, Resource};
use super::{objects, protobuf};
use crate::store::{EventKind, KeyValue, Revision, Store, StoreError, WatchStream};

/// Where every object lives in the store.
const REGISTRY: &str = "/registry/";
/// Events kept per resource for watches that resume from a resourceVersion: the upper bound
/// of kube-apiserver's dynamically sized watch cache (`DefaultUpperBoundCapacity`), so a
/// watcher may lag that far behind a burst (50,000 pods created and bound are 100,000 events)
/// before it must list again.
const RING_CAPACITY: usize = 100 * 1024;
/// The longest pause between attempts to list and watch the store again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One version of an object, with what watchers and lists make of it made once.
#[derive(Debug)]
pub struct CachedObject {
    /// As stored (no resourceVersion in the bytes; `mod_revision` is it).
    pub kv: KeyValue,
    parsed: OnceLock<Option<Value>>,
    attrs: OnceLock<Option<Attrs>>,
    protobuf: OnceLock<Result<Bytes, String>>,
}

/// What label and field selectors read of an object: its labels and the values of its
/// kind's selectable fields (`metadata.name`, `metadata.namespace` and the resource's own)
/// that are set, a few hundred bytes instead of the parsed object's many kilobytes. Each is a
/// boxed slice: a busy cache keeps one per version of every object (a million pods), where a
/// map would cost a half-kilobyte node and a vector its spare room.
#[derive(Debug)]
pub struct Attrs {
    /// `metadata.labels`, sorted by key.
    pub labels: LabelList,
    fields: Box<[(&'static str, Box<str>)]>,
}

impl Attrs {
    /// The attributes of `object` for selectors on `resource`.
    pub fn of(object: &Value, resource: &Resource) -> Attrs {
        let fields = ["metadata.name", "metadata.namespace"]
            .iter()
            .chain(resource.field_selectors)
            .filter_map(|field| Some((*field, objects::field_value(object, field)?.into())))
            .collect();
        Attrs {
            labels: LabelList::from(&objects::labels(object)),
            fields,
        }
    }

    /// The attributes of the object in `json` (None when it is not a JSON object), parsing
    /// only what selectors read: the labels and the selectable fields, not a pod's
    /// containers or managedFields.
    pub fn parse(json: &[u8], resource: &Resource) -> Option<Attrs> {
        let fields = ["metadata.name", "metadata.namespace"]
            .iter()
            .chain(resource.field_selectors);
        let mut paths = vec!["metadata.labels"];
        paths.extend(fields.flat_map(objects::field_sources).copied());
        Some(Attrs::of(&objects::parse_paths(json, &paths)?, resource))
    }

    /// The value of a selectable field (None when unset or not selectable).
    pub fn field(&self, field: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.to_string())
    }
}

impl CachedObject {
    /// A version not (yet) in the cache, e.g. read from the store for a later page.
    pub fn new(kv: KeyValue) -> Arc<Self> {
        Arc::new(Self {
            kv,
            parsed: OnceLock::new(),
            attrs: OnceLock::new(),
            protobuf: OnceLock::new(),
        })
    }

    /// The object's JSON with its resourceVersion, appended to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        objects::splice_resource_version_into(out, &self.kv.value, self.kv.mod_revision);
    }

    /// The object's protobuf message (no envelope) with its resourceVersion, made once for
    /// every reader; the error says why the object has no protobuf form.
    pub fn protobuf(&self) -> Result<&Bytes, &str> {
        self.protobuf
            .get_or_init(|| {
                let mut object = self
                    .decode()
                    .ok_or_else(|| format!("stored object {} is not valid JSON", self.kv.key))?;
                objects::set_resource_version(&mut object, self.kv.mod_revision);
                protobuf::encode::message(&object)
                    .map(Bytes::from)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// The object parsed now, not kept (None when the stored bytes are not JSON): for
    /// readers of objects of the busy kinds (pods, events), whose parsed forms would cost the
    /// cache more memory than their JSON.
    pub fn decode(&self) -> Option<Value> {
        self.parsed
            .get()
            .cloned()
            .unwrap_or_else(|| serde_json::from_slice(&self.kv.value).ok())
    }

    /// The object's labels and selectable fields as `resource` defines them, made once (None
    /// when the stored bytes are not JSON).
    pub fn attrs(&self, resource: &Resource) -> Option<&Attrs> {
        self.attrs
            .get_or_init(|| Attrs::parse(&self.kv.value, resource))
            .as_ref()
    }

    /// The object parsed (None when the stored bytes are not JSON), made once and kept: for
    /// the few readers of small, rarely changing kinds (roles, namespaces, service accounts).
    pub fn parsed(&self) -> Option<&Value> {
        self.parsed
            .get_or_init(|| serde_json::from_slice(&self.kv.value).ok())
            .as_ref()
    }
}

/// One change of one object.
#[derive(Debug)]
pub struct CachedEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The new version (put), or the last one with the deleting revision (delete).
    pub object: Arc<CachedObject>,
    /// The version before this change, if the object existed.
    pub prev: Option<Arc<CachedObject>>,
}

impl CachedEvent {
    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        self.object.kv.mod_revision
    }
}

/// Why the cache cannot serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The resourceVersion is older than the oldest event the cache keeps.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The resourceVersion asked for.
        requested: Revision,
        /// Events after this revision are kept.
        oldest: Revision,
    },
    /// The cache did not reach the revision in time.
    #[error("the watch cache is not yet at revision {0}")]
    NotFresh(Revision),
    /// The resource is not cached.
    #[error("resource {0} is not cached")]
    Unknown(String),
}

/// One resource's objects and recent events.
#[derive(Default)]
struct ResourceState {
    objects: BTreeMap<String, Arc<CachedObject>>,
    ring: VecDeque<Arc<CachedEvent>>,
    /// The ring holds every event after this revision.
    oldest: Revision,
}

#[derive(Default)]
struct State {
    /// The store revision the cache is current to.
    revision: Revision,
    /// Resource plural -> its state.
    resources: HashMap<&'static str, ResourceState>,
}

/// The API server's watch cache; cheap to clone.
#[derive(Clone)]
pub struct WatchCache {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    /// The revision the cache is current to, for consistent reads.
    progress: watch::Sender<Revision>,
    /// Per resource: the revision of its newest event, which wakes its watchers.
    changed: HashMap<&'static str, watch::Sender<Revision>>,
}

impl WatchCache {
    /// Lists the store, then follows it from a task on the current runtime until the last
    /// clone of the cache is dropped.
    pub async fn start(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let listed = store.list(REGISTRY).await?;
        let revision = listed.revision;
        let changed = RESOURCES
            .iter()
            .map(|r| (r.plural, watch::channel(revision).0))
            .collect();
        let cache = Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                progress: watch::channel(revision).0,
                changed,
            }),
        };
        cache.reset(listed.items, revision);
        let events = store.watch(REGISTRY, revision).await?;
        let weak = Arc::downgrade(&cache.inner);
        tokio::spawn(follow(weak, store, events, revision));
        Ok(cache)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces everything with a fresh list at `revision`; earlier rings are gone, so every
    /// watcher behind `revision` gets 410 and lists again.
    fn reset(&self, items: Vec<KeyValue>, revision: Revision) {
        let mut resources: HashMap<&'static str, ResourceState> = RESOURCES
            .iter()
            .map(|r| {
                let state = ResourceState {
                    oldest: revision,
                    ..Default::default()
                };
                (r.plural, state)
            })
            .collect();
        for kv in items {
            if let Some(resource) = plural_of(&kv.key).and_then(|p| resources.get_mut(p)) {
                resource
                    .objects
                    .insert(kv.key.clone(), CachedObject::new(kv));
            }
        }
        {
            let mut state = self.write();
            state.revision = revision;
            state.resources = resources;
        }
        for changed in self.inner.changed.values() {
            changed.send_replace(revision);
        }
        self.inner.progress.send_replace(revision);
    }

    /// Applies a batch of store events in order.
    fn apply(&self, events: Vec<crate::store::WatchEvent>) {
        let mut woken: Vec<(&'static str, Revision)> = Vec::new();
        let revision = {
            let mut state = self.write();
            for event in events {
                let revision = event.kv.mod_revision;
                state.revision = state.revision.max(revision);
                let Some(plural) = plural_of(&event.kv.key) else {
                    continue;
                };
                let Some(resource) = state.resources.get_mut(plural) else {
                    continue;
                };
                let object = CachedObject::new(event.kv);
                let prev = match event.kind {
                    EventKind::Put => resource
                        .objects
                        .insert(object.kv.key.clone(), object.clone()),
                    EventKind::Delete => resource.objects.remove(&object.kv.key),
                };
                if resource.ring.len() >= RING_CAPACITY
                    && let Some(dropped) = resource.ring.pop_front()
                {
                    resource.oldest = dropped.revision();
                }
                resource.ring.push_back(Arc::new(CachedEvent {
                    kind: event.kind,
                    object,
                    prev,
                }));
                match woken.last_mut() {
                    Some((p, rev)) if *p == plural => *rev = revision,
                    _ => woken.push((plural, revision)),
                }
            }
            state.revision
        };
        for (plural, revision) in woken {
            if let Some(changed) = self.inner.changed.get(plural) {
                changed.send_replace(revision);
            }
        }
        self.inner.progress.send_replace(revision);
    }

    /// The revision the cache is current to.
    pub fn revision(&self) -> Revision {
        *self.inner.progress.borrow()
    }

    /// Waits until the cache has seen every change up to `revision`, for at most `timeout`.
    pub async fn wait_until(
        &self,
        revision: Revision,
        timeout: Duration,
    ) -> Result<(), CacheError> {
        let mut progress = self.inner.progress.subscribe();
        let reached = progress.wait_for(|current| *current >= revision);
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CacheError::NotFresh(revision)),
        }
    }

    /// The current objects of `plural` whose keys start with `prefix`, in key order, and the
    /// revision they are current at.
    pub fn list(
        &self,
        plural: &str,
        prefix: &str,
    ) -> Result<(Vec<Arc<CachedObject>>, Revision), CacheError> {
        let state = self.read();
        let resource = state
            .resources
            .get(plural)
            .ok_or_else(|| CacheError::Unknown(plural.to_owned()))?;
        let items = resource
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, object)| object.clone())
            .collect();
        Ok((items, state.revision))
    }

    /// The objects of `plural` under `prefix` with keys after `after`, in key order, as they
    /// were at `revision` (the current objects with the later events of the ring undone):
    /// what a later page of a paged list shows, a snapshot at the first page's revision.
    /// 410 when the ring no longer reaches back to `revision`.
    pub fn list_at(
        &self,
        plural: &str,
        prefix: &str,
        after: &str,
        revision: Revision,
    ) -> Result<Vec<Arc<CachedObject>>, CacheError> {
        let state = self.read();
        let resource = state
            .resources
            .get(plural)
            .ok_or_else(|| CacheError::Unknown(plural.to_owned()))?;
        if revision < resource.oldest {
            return Err(CacheError::Expired {
                requested: revision,
                oldest: resource.oldest,
            });
        }
        if revision > state.revision {
            return Err(CacheError::NotFresh(revision));
        }
        let in_range = |key: &str| key.starts_with(prefix) && key > after;
        // Each key changed since `revision` had, then, what its first later event replaced.
        let mut then: BTreeMap<&str, Option<&Arc<CachedObject>>> = BTreeMap::new();
        let first_later = resource.ring.partition_point(|e| e.revision() <= revision);
        for event in resource.ring.range(first_later..) {
            let key = event.object.kv.key.as_str();
            if in_range(key) {
                then.entry(key).or_insert(event.prev.as_ref());
            }
        }
        let lower = if after < prefix { prefix } else { after };
        let now = resource
            .objects
            .range::<str, _>((std::ops::Bound::Included(lower), std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(key, _)| key.as_str() > after && !then.contains_key(key.as_str()))
            .map(|(key, object)| (key.as_str(), object));
        let restored = then
            .iter()
            .filter_map(|(key, object)| object.map(|object| (*key, object)));
        let mut merged: Vec<(&str, &Arc<CachedObject>)> = now.chain(restored).collect();
        merged.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Ok(merged
            .into_iter()
            .map(|(_, object)| object.clone())
            .collect())
    }

    /// The current object of `plural` at `key`, if any.
    pub fn get(&self, plural: &str, key: &str) -> Result<Option<Arc<CachedObject>>, CacheError> {
        let state = self.read();
        let resource = state
            .resources
            .get(plural)
            .ok_or_else(|| CacheError::Unknown(plural.to_owned()))?;
        Ok(resource.objects.get(key).cloned())
    }

    /// Up to `max` events of `plural` after revision `after`, oldest first, and the revision
    /// the cache was at when they were read (with no events, every change of `plural` up to
    /// it has been seen: what a bookmark may tell); 410 when the ring no longer reaches back
    /// to `after`.
    pub fn events_after(
        &self,
        plural: &str,
        after: Revision,
        max: usize,
    ) -> Result<(Vec<Arc<CachedEvent>>, Revision), CacheError> {
        let state = self.read();
        let resource = state
            .resources
            .get(plural)
            .ok_or_else(|| CacheError::Unknown(plural.to_owned()))?;
        if after < resource.oldest {
            return Err(CacheError::Expired {
                requested: after,
                oldest: resource.oldest,
            });
        }
        let start = resource.ring.partition_point(|e| e.revision() <= after);
        let events = resource.ring.range(start..).take(max).cloned().collect();
        Ok((events, state.revision))
    }

    /// A receiver that changes when `plural` gets an event (or the cache is reset).
    pub fn subscribe(&self, plural: &str) -> Result<watch::Receiver<Revision>, CacheError> {
        self.inner
            .changed
            .get(plural)
            .map(watch::Sender::subscribe)
            .ok_or_else(|| CacheError::Unknown(plural.to_owned()))
    }
}

/// The plural of the resource a store key belongs to (`/registry/pods/ns/name` -> `pods`).
fn plural_of(key: &str) -> Option<&'static str> {
    let rest = key.strip_prefix(REGISTRY)?;
    let plural = rest.split('/').next()?;
    RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .map(|r| r.plural)
}

/// Follows the store until the cache is gone; lists and watches again when the watch fails.
async fn follow(
    cache: std::sync::Weak<Inner>,
    store: Arc<dyn Store>,
    mut events: WatchStream,
    mut revision: Revision,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        // Events of one commit arrive together: apply every ready one under one lock.
        let mut batch = Vec::new();
        let mut failed = None;
        match events.next().await {
            Some(Ok(event)) => batch.push(event),
            Some(Err(err)) => failed = Some(err),
            None => failed = Some(StoreError::Backend("the store watch ended".into())),
        }
        while failed.is_none() && batch.len() < 1024 {
            match events.next().now_or_never() {
                Some(Some(Ok(event))) => batch.push(event),
                Some(Some(Err(err))) => failed = Some(err),
                Some(None) => failed = Some(StoreError::Backend("the store watch ended".into())),
                None => break,
            }
        }
        let Some(inner) = cache.upgrade() else {
            return;
        };
        let cache = WatchCache { inner };
        if let Some(last) = batch.last() {
            revision = last.kv.mod_revision;
        }
        if !batch.is_empty() {
            cache.apply(batch);
        }
        let Some(err) = failed else {
            backoff = Duration::from_millis(100);
            continue;
        };
        warn!(error = %err, revision, "the watch cache lost its store watch; listing again");
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            let resumed = match &err {
                // Nothing was missed: watch again from where the cache is.
                StoreError::Backend(_) | StoreError::Timeout(_) => {
                    store.watch(REGISTRY, revision).await
                }
                _ => Err(err.clone()),
            };
            match resumed {
                Ok(stream) => {
                    events = stream;
                    break;
                }
                Err(_) => match store.list(REGISTRY).await {
                    Ok(listed) => match store.watch(REGISTRY, listed.revision).await {
                        Ok(stream) => {
                            revision = listed.revision;
                            cache.reset(listed.items, listed.revision);
                            info!(revision, "the watch cache listed the store again");
                            events = stream;
                            break;
                        }
                        Err(e) => warn!(error = %e, "watching the store"),
                    },
                    Err(e) => warn!(error = %e, "listing the store"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;
    use skiff_api::selectors::LabelSelector;

    fn pod(name: &str, node: &str) -> Bytes {
        Bytes::from(
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node}})
            .to_string(),
        )
    }

    #[test]
    fn attrs_keep_the_labels_and_the_selectable_fields_that_are_set() {
        let pods = super::super::resources::find("", "v1", "pods").expect("pods");
        let pod = serde_json::json!({
            "kind": "Pod",
            "metadata": {
                "name": "web-1", "namespace": "shop", "labels": {"tier": "front", "app": "web"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {
                "nodeName": "node-a", "hostNetwork": true,
                "containers": [{"name": "app", "image": "nginx", "env": [{"name": "A", "value": "b"}]}],
            },
            "status": {"podIPs": [{"ip": "10.0.0.7"}], "conditions": [{"type": "Ready", "status": "True"}]},
        });
        // From the parsed object, and from its JSON parsing only what selectors read.
        let parsed = Attrs::parse(pod.to_string().as_bytes(), pods).expect("attrs");
        for attrs in [Attrs::of(&pod, pods), parsed] {
            assert_eq!(attrs.labels.get("app"), Some("web"));
            assert_eq!(attrs.labels.get("tier"), Some("front"));
            assert_eq!(attrs.labels.get("zone"), None);
            assert_eq!(attrs.field("metadata.name").as_deref(), Some("web-1"));
            assert_eq!(attrs.field("metadata.namespace").as_deref(), Some("shop"));
            assert_eq!(attrs.field("spec.nodeName").as_deref(), Some("node-a"));
            assert_eq!(attrs.field("spec.hostNetwork").as_deref(), Some("true"));
            assert_eq!(attrs.field("status.podIP").as_deref(), Some("10.0.0.7"));
            // Defaulted as Go's zero value or the API's default, as kube-apiserver's GetAttrs.
            assert_eq!(attrs.field("status.phase").as_deref(), Some("Pending"));
            assert_eq!(attrs.field("status.nominatedNodeName"), None);
            assert_eq!(attrs.field("spec.noSuchField"), None);
            let selector: LabelSelector = "app=web,tier in (front)".parse().expect("selector");
            assert!(selector.matches(&attrs.labels));
            let selector: LabelSelector = "app=web,!zone,tier!=front".parse().expect("selector");
            assert!(!selector.matches(&attrs.labels));
        }
        // Fields read from other fields: a Job's `status.successful`, an Event's `source`.
        let jobs = super::super::resources::find("batch", "v1", "jobs").expect("jobs");
        let job = br#"{"kind":"Job","metadata":{"name":"j"},"status":{"succeeded":3}}"#;
        let attrs = Attrs::parse(job, jobs).expect("attrs");
        assert_eq!(attrs.field("status.successful").as_deref(), Some("3"));
        let events = super::super::resources::find("", "v1", "events").expect("events");
        let event = br#"{"kind":"Event","metadata":{"name":"e"},"reportingComponent":"kubelet","involvedObject":{"kind":"Pod","name":"p"}}"#;
        let attrs = Attrs::parse(event, events).expect("attrs");
        assert_eq!(attrs.field("source").as_deref(), Some("kubelet"));
        assert_eq!(attrs.field("involvedObject.name").as_deref(), Some("p"));
        // Not an object, or not JSON.
        assert!(Attrs::parse(b"[1, 2]", pods).is_none());
        assert!(Attrs::parse(b"{\"kind\": \"Pod\"", pods).is_none());
    }

    #[tokio::test]
    async fn a_later_page_shows_the_objects_as_they_were_at_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        for name in ["a", "b", "c", "d"] {
            store
                .create(&format!("/registry/pods/default/{name}"), pod(name, "n1"))
                .await
                .expect("create");
        }
        let cache = WatchCache::start(store.clone()).await.expect("cache");
        let first_page = cache.revision();
        // After the first page (a): b moves, c goes, e comes, and an `a2` lands before b.
        let b = store
            .get("/registry/pods/default/b")
            .await
            .expect("get")
            .expect("b");
        store
            .update(
                "/registry/pods/default/b",
                pod("b", "n2"),
                Some(b.mod_revision),
            )
            .await
            .expect("update");
        store
            .delete("/registry/pods/default/c", None)
            .await
            .expect("delete");
        for name in ["e", "a2"] {
            store
                .create(&format!("/registry/pods/default/{name}"), pod(name, "n3"))
                .await
                .expect("create");
        }
        let end = store.revision().await.expect("revision");
        cache
            .wait_until(end, Duration::from_secs(5))
            .await
            .expect("the cache catches up");
        let page = cache
            .list_at(
                "pods",
                "/registry/pods/",
                "/registry/pods/default/a",
                first_page,
            )
            .expect("a later page");
        let seen: Vec<(&str, Value)> = page
            .iter()
            .map(|o| {
                (
                    o.kv.key.as_str(),
                    o.parsed().expect("json")["spec"]["nodeName"].clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("/registry/pods/default/b", Value::from("n1")),
                ("/registry/pods/default/c", Value::from("n1")),
                ("/registry/pods/default/d", Value::from("n1")),
            ]
        );
        // At the current revision: what is there now.
        let now = cache
            .list_at("pods", "/registry/pods/", "/registry/pods/default/a", end)
            .expect("now");
        let keys: Vec<&str> = now.iter().map(|o| o.kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "/registry/pods/default/a2",
                "/registry/pods/default/b",
                "/registry/pods/default/d",
                "/registry/pods/default/e"
            ]
        );
        assert!(matches!(
            cache.list_at("pods", "/registry/pods/", "", end + 10),
            Err(CacheError::NotFresh(_))
        ));
    }

    #[tokio::test]
    async fn lists_and_replays_what_the_store_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        store
            .create("/registry/pods/default/a", pod("a", "n1"))
            .await
            .expect("create");
        let cache = WatchCache::start(store.clone()).await.expect("cache");
        let start = cache.revision();
        let (items, _) = cache.list("pods", "/registry/pods/").expect("list");
        assert_eq!(items.len(), 1);

        let b = store
            .create("/registry/pods/default/b", pod("b", "n1"))
            .await
            .expect("create");
        store
            .update(
                "/registry/pods/default/b",
                pod("b", "n2"),
                Some(b.mod_revision),
            )
            .await
            .expect("update");
        store
            .delete("/registry/pods/default/a", None)
            .await
            .expect("delete");
        let end = store.revision().await.expect("revision");
        cache
            .wait_until(end, Duration::from_secs(5))
            .await
            .expect("the cache catches up");

        let (events, _) = cache.events_after("pods", start, 100).expect("events");
        let kinds: Vec<(EventKind, &str, bool)> = events
            .iter()
            .map(|e| (e.kind, e.object.kv.key.as_str(), e.prev.is_some()))
            .collect();
        assert_eq!(
            kinds,
            [
                (EventKind::Put, "/registry/pods/default/b", false),
                (EventKind::Put, "/registry/pods/default/b", true),
                (EventKind::Delete, "/registry/pods/default/a", true),
            ]
        );
        // The update's previous version is the one the create stored.
        assert_eq!(
            events[1]
                .prev
                .as_ref()
                .expect("prev")
                .parsed()
                .expect("json")["spec"]["nodeName"],
            "n1"
        );
        // The JSON carries the resourceVersion.
        let mut json = Vec::new();
        events[1].object.write_json(&mut json);
        let parsed: Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(
            parsed["metadata"]["resourceVersion"],
            events[1].revision().to_string()
        );

        // From the middle: only what came after.
        let (later, _) = cache
            .events_after("pods", events[0].revision(), 100)
            .expect("events");
        assert_eq!(later.len(), 2);
        let (items, revision) = cache.list("pods", "/registry/pods/default/").expect("list");
        assert_eq!(revision, end);
        assert_eq!(
            items.iter().map(|o| o.kv.key.as_str()).collect::<Vec<_>>(),
            ["/registry/pods/default/b"]
        );
        assert!(
            cache
                .list("pods", "/registry/pods/other/")
                .expect("list")
                .0
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_resource_version_older_than_the_ring_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let cache = WatchCache::start(store.clone()).await.expect("cache");
        let start = cache.revision();
        let (events, at) = cache.events_after("pods", start, 10).expect("empty");
        assert!(events.is_empty());
        assert_eq!(at, start, "nothing unread up to the cache's revision");
        assert_eq!(
            cache
                .events_after("pods", start - 1, 10)
                .map(|(e, _)| e.len()),
            Err(CacheError::Expired {
                requested: start - 1,
                oldest: start
            })
        );
        assert!(matches!(
            cache.events_after("widgets", start, 10),
            Err(CacheError::Unknown(_))
        ));
        // A revision the cache has not reached is not waited for forever.
        assert_eq!(
            cache
                .wait_until(start + 1000, Duration::from_millis(50))
                .await,
            Err(CacheError::NotFresh(start + 1000))
        );
    }

    #[tokio::test]
    async fn watchers_are_woken_per_resource() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let cache = WatchCache::start(store.clone()).await.expect("cache");
        let mut pods = cache.subscribe("pods").expect("pods");
        let mut nodes = cache.subscribe("nodes").expect("nodes");
        pods.borrow_and_update();
        nodes.borrow_and_update();
        let created = store
            .create("/registry/pods/default/a", pod("a", "n1"))
            .await
            .expect("create");
        tokio::time::timeout(Duration::from_secs(5), pods.changed())
            .await
            .expect("woken")
            .expect("open");
        assert_eq!(*pods.borrow(), created.mod_revision);
        assert!(
            !nodes.has_changed().expect("open"),
            "nodes' watchers sleep on"
        );
        // Keys that are no resource (allocations) still move the cache's revision.
        let allocated = store
            .create("/registry/serviceips/10.96.0.5", Bytes::new())
            .await
            .expect("create");
        cache
            .wait_until(allocated.mod_revision, Duration::from_secs(5))
            .await
            .expect("progress");
    }
}
