//! The monitors that feed the graph (Kubernetes' `graph_builder.go`): the kinds monitored,
//! each followed through the master's informer of that kind, and each change applied to the
//! graph.

use std::fmt::Debug;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use kube::api::ApiResource;
use tracing::info;

use super::Collector;
use super::graph::Item;
use crate::controllers::informers::{Change, Informer, Informers};

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

/// The kinds the collector monitors (those with owners or dependents in skiff), each with
/// its changes; the stream tells each change with the index of its kind.
pub(super) fn monitors(informers: &mut Informers) -> (Vec<Kind>, BoxStream<'static, KindEvent>) {
    let mut monitors = Monitors::default();
    monitors.add(&mut informers.pods, true);
    monitors.add(&mut informers.replica_sets, true);
    monitors.add(&mut informers.deployments, true);
    monitors.add(&mut informers.replication_controllers, true);
    monitors.add(&mut informers.daemon_sets, true);
    monitors.add(&mut informers.stateful_sets, true);
    monitors.add(&mut informers.controller_revisions, true);
    monitors.add(&mut informers.jobs, true);
    monitors.add(&mut informers.cron_jobs, true);
    // Services own their EndpointSlices.
    monitors.add(&mut informers.services, true);
    monitors.add(&mut informers.endpoint_slices, true);
    monitors.add(&mut informers.config_maps, true);
    monitors.add(&mut informers.secrets, true);
    // Node agents make their Node the owner of their Lease and of their mirror pods.
    monitors.add(&mut informers.nodes, false);
    monitors.add(&mut informers.leases, true);
    (monitors.kinds, stream::select_all(monitors.changes).boxed())
}

#[derive(Default)]
struct Monitors {
    kinds: Vec<Kind>,
    changes: Vec<BoxStream<'static, KindEvent>>,
}

impl Monitors {
    fn add<K>(&mut self, informer: &mut Informer<K>, namespaced: bool)
    where
        K: kube::Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
    {
        let index = self.kinds.len();
        self.kinds.push(Kind::of::<K>(namespaced));
        let changes = informer
            .changes()
            .filter_map(move |change| std::future::ready(observed(index, &change)))
            .map(move |observed| (index, observed));
        self.changes.push(changes.boxed());
    }
}

/// The group of an `apiVersion`: `apps` of `apps/v1`, empty for `v1`.
pub(super) fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

/// What a monitor tells the graph.
#[derive(Debug, PartialEq)]
pub(super) enum Observed {
    /// An object as it is now.
    Applied(Item),
    /// The object with this uid is gone.
    Removed(String),
    /// Every object of the kind has been told once.
    Synced,
}

/// What a monitor tells, of the monitored kind at this index.
pub(super) type KindEvent = (usize, Observed);

/// What an informer's change tells the graph (nothing of an object without name or uid).
pub(super) fn observed<K: kube::Resource>(index: usize, change: &Change<K>) -> Option<Observed> {
    match change {
        Change::Applied(object) => Item::from_meta(index, object.meta()).map(Observed::Applied),
        Change::Deleted(object) => object.meta().uid.clone().map(Observed::Removed),
        Change::Synced => Some(Observed::Synced),
    }
}

impl Collector {
    /// Brings the graph up to date with one change and queues what it may change.
    pub(super) fn observe(&mut self, (index, observed): KindEvent) {
        let touched = match observed {
            Observed::Applied(item) => self.graph.apply(item),
            Observed::Removed(uid) => self.graph.remove(&uid),
            Observed::Synced => {
                let first = !self.synced.iter().all(|s| *s);
                self.synced[index] = true;
                if first && self.synced.iter().all(|s| *s) {
                    info!(
                        objects = self.graph.items.len(),
                        "garbage collector synced: every monitored kind has listed"
                    );
                    self.graph.items.keys().cloned().collect()
                } else {
                    Vec::new()
                }
            }
        };
        for uid in touched {
            self.queue.add(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use kube::core::{PartialObjectMeta, PartialObjectMetaExt};

    use super::*;

    fn meta(name: &str, uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: uid.map(str::to_string),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                uid: "rs-1".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn an_informer_change_becomes_an_item_or_a_removal() {
        let pod = Arc::new(Pod {
            metadata: meta("p", Some("p-1")),
            ..Default::default()
        });
        match observed(3, &Change::Applied(pod.clone())) {
            Some(Observed::Applied(item)) => {
                assert_eq!((item.kind, item.uid.as_str()), (3, "p-1"));
                assert_eq!(item.owners[0].uid, "rs-1");
            }
            other => panic!("expected an item, got {other:?}"),
        }
        assert_eq!(
            observed(3, &Change::Deleted(pod)),
            Some(Observed::Removed("p-1".into()))
        );
        assert_eq!(observed::<Pod>(3, &Change::Synced), Some(Observed::Synced));
        // A metadata-only informer's object reads the same.
        let config_map: Arc<PartialObjectMeta<ConfigMap>> =
            Arc::new(meta("c", Some("c-1")).into_request_partial());
        assert!(matches!(
            observed(4, &Change::Applied(config_map)),
            Some(Observed::Applied(Item { kind: 4, .. }))
        ));
        // Without a uid there is nothing to key it by.
        let nameless = Arc::new(Pod {
            metadata: meta("q", None),
            ..Default::default()
        });
        assert_eq!(observed(3, &Change::Applied(nameless)), None);
    }

    #[test]
    fn metadata_only_kinds_keep_their_api_resource() {
        let kind = Kind::of::<PartialObjectMeta<ReplicaSet>>(true);
        assert_eq!(kind.resource, ApiResource::erase::<ReplicaSet>(&()));
    }

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
