//! The monitors that feed the graph (Kubernetes' `graph_builder.go`): the kinds watched,
//! one watch per kind, and each watch event applied to the graph.

use std::collections::HashSet;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, ReplicationController, Secret};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{info, warn};

use super::Collector;
use super::graph::Item;

/// A kind of object the collector can read and write.
#[derive(Clone, Debug)]
pub(super) struct Kind {
    pub(super) resource: ApiResource,
    pub(super) namespaced: bool,
}

impl Kind {
    pub(super) fn of<K>(namespaced: bool) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
    {
        Self {
            resource: ApiResource::erase::<K>(&()),
            namespaced,
        }
    }

    /// Whether an owner reference's `apiVersion` and `kind` name this kind (any version of
    /// its group, as Kubernetes compares them).
    pub(super) fn matches(&self, api_version: &str, kind: &str) -> bool {
        self.resource.kind == kind && group_of(api_version) == self.resource.group
    }
}

/// The kinds the collector watches: those with owners or dependents in skiff.
pub(super) fn monitored_kinds() -> Vec<Kind> {
    vec![
        Kind::of::<Pod>(true),
        Kind::of::<ReplicaSet>(true),
        Kind::of::<Deployment>(true),
        Kind::of::<ReplicationController>(true),
        Kind::of::<ConfigMap>(true),
        Kind::of::<Secret>(true),
        // Node agents make their Node the owner of their Lease and of their mirror pods.
        Kind::of::<Node>(false),
        Kind::of::<Lease>(true),
    ]
}

/// The group of an `apiVersion`: `apps` of `apps/v1`, empty for `v1`.
pub(super) fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

/// One watch event, of the monitored kind at this index.
pub(super) type KindEvent = (usize, Result<watcher::Event<DynamicObject>, watcher::Error>);

impl Collector {
    pub(super) fn watches(&self) -> BoxStream<'static, KindEvent> {
        let streams = self.kinds.iter().enumerate().map(|(index, kind)| {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.resource);
            watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |event| (index, event))
                .boxed()
        });
        stream::select_all(streams).boxed()
    }

    /// Brings the graph up to date with one watch event and queues what it may change.
    pub(super) fn observe(&mut self, (index, event): KindEvent) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                // The watcher retries by itself, with back-off.
                warn!(kind = %self.kinds[index].resource.kind, "watching: {err}");
                return;
            }
        };
        let touched = match event {
            watcher::Event::Init => {
                self.listing[index] = Some(Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let Some(item) = Item::from_meta(index, object.metadata) {
                    self.listing[index].get_or_insert_with(Vec::new).push(item);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.listing[index].take().unwrap_or_default();
                let seen: HashSet<&str> = listed.iter().map(|i| i.uid.as_str()).collect();
                let vanished: Vec<String> = self
                    .graph
                    .items
                    .values()
                    .filter(|i| i.kind == index && !seen.contains(i.uid.as_str()))
                    .map(|i| i.uid.clone())
                    .collect();
                let mut touched = Vec::new();
                for uid in vanished {
                    touched.extend(self.graph.remove(&uid));
                }
                for item in listed {
                    touched.extend(self.graph.apply(item));
                }
                let first = !self.synced.iter().all(|s| *s);
                self.synced[index] = true;
                if first && self.synced.iter().all(|s| *s) {
                    info!(
                        objects = self.graph.items.len(),
                        "garbage collector synced: every watch has listed"
                    );
                    touched.extend(self.graph.items.keys().cloned());
                }
                touched
            }
            watcher::Event::Apply(object) => Item::from_meta(index, object.metadata)
                .map(|item| self.graph.apply(item))
                .unwrap_or_default(),
            watcher::Event::Delete(object) => object
                .metadata
                .uid
                .map(|uid| self.graph.remove(&uid))
                .unwrap_or_default(),
        };
        for uid in touched {
            self.queue.add(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_references_match_kinds_by_group_not_version() {
        let replica_sets = Kind::of::<ReplicaSet>(true);
        assert!(replica_sets.matches("apps/v1", "ReplicaSet"));
        assert!(replica_sets.matches("apps/v1beta2", "ReplicaSet"));
        assert!(!replica_sets.matches("extensions/v1beta1", "ReplicaSet"));
        assert!(!replica_sets.matches("apps/v1", "Deployment"));
        assert!(Kind::of::<Pod>(true).matches("v1", "Pod"));
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("coordination.k8s.io/v1"), "coordination.k8s.io");
    }
}
