//! The scheduler's feed from the master's shared informers (as kube-scheduler's cache is
//! fed from the `SharedInformerFactory`): each changed Node, Pod and Service, judged by the
//! informer's cache, is turned into the scheduler's compact view on the runtime's threads
//! and sent to the scheduling thread as an [`Update`].

use std::sync::Arc;

use crossbeam_channel::Sender;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use skiff_api::pod::CachedPod;
use tokio::task::JoinHandle;
use tracing::warn;

use super::bind::BindOutcome;
use super::cache::ServiceInfo;
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;
use crate::controllers::informers::{Change, Informers};

/// The kinds the scheduler watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Nodes.
    Node,
    /// Pods.
    Pod,
    /// Services.
    Service,
}

/// A change the scheduling thread applies, in order.
#[derive(Debug)]
pub enum Update {
    /// A node was added or changed.
    Node(NodeInfo),
    /// A node was deleted.
    NodeDeleted(String),
    /// A pod was added or changed.
    Pod(Arc<PodInfo>),
    /// A pod was deleted (by uid).
    PodDeleted(String),
    /// A Service was added or changed.
    Service(ServiceInfo),
    /// A Service was deleted.
    ServiceDeleted {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The informer of `kind` has listed once, and everything it listed has been sent.
    Synced(Kind),
    /// A binding finished.
    BindDone {
        /// The pod.
        uid: String,
        /// The node it was bound to.
        node: String,
        /// How it went.
        outcome: BindOutcome,
    },
    /// An unschedulable pod's condition could not be written (it changed meanwhile): decide
    /// it again after its backoff.
    RetryPod(String),
    /// Stop the scheduling thread.
    Shutdown,
}

/// The scheduler's subscriptions to the shared informers, taken before they start.
pub struct Feeds {
    nodes: futures::stream::BoxStream<'static, Change<Node>>,
    pods: futures::stream::BoxStream<'static, Change<CachedPod>>,
    services: futures::stream::BoxStream<'static, Change<Service>>,
}

impl Feeds {
    /// Subscribes to the Node, Pod and Service informers.
    pub fn subscribe(informers: &mut Informers) -> Self {
        Self {
            nodes: informers.nodes.changes().boxed(),
            pods: informers.pods.changes().boxed(),
            services: informers.services.changes().boxed(),
        }
    }

    /// Sends each change to `tx` as it comes, until aborted.
    pub fn spawn(self, tx: &Sender<Update>) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(forward(self.nodes, tx.clone(), node_update)),
            tokio::spawn(forward(self.pods, tx.clone(), pod_update)),
            tokio::spawn(forward(self.services, tx.clone(), service_update)),
        ]
    }
}

async fn forward<K>(
    mut changes: impl Stream<Item = Change<K>> + Unpin,
    tx: Sender<Update>,
    update: fn(Change<K>) -> Option<Update>,
) {
    while let Some(change) = changes.next().await {
        if let Some(update) = update(change)
            && tx.send(update).is_err()
        {
            return;
        }
    }
}

/// The update a Node change makes.
pub fn node_update(change: Change<Node>) -> Option<Update> {
    Some(match change {
        Change::Applied(node) => Update::Node(NodeInfo::from_node(&node)),
        Change::Deleted(node) => {
            Update::NodeDeleted(node.metadata.name.clone().unwrap_or_default())
        }
        Change::Synced => Update::Synced(Kind::Node),
    })
}

/// The update a Pod change makes (none for a pod the scheduler cannot read).
pub fn pod_update(change: Change<CachedPod>) -> Option<Update> {
    Some(match change {
        Change::Applied(pod) => match PodInfo::from_pod(&pod) {
            Ok(info) => Update::Pod(Arc::new(info)),
            Err(e) => {
                warn!(error = %e, "ignoring a pod the scheduler cannot read");
                return None;
            }
        },
        Change::Deleted(pod) => Update::PodDeleted(pod.metadata.uid.clone().unwrap_or_default()),
        Change::Synced => Update::Synced(Kind::Pod),
    })
}

/// The update a Service change makes.
pub fn service_update(change: Change<Service>) -> Option<Update> {
    Some(match change {
        Change::Applied(svc) => Update::Service(ServiceInfo {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: svc.metadata.name.clone().unwrap_or_default(),
            selector: svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default(),
        }),
        Change::Deleted(svc) => Update::ServiceDeleted {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: svc.metadata.name.clone().unwrap_or_default(),
        },
        Change::Synced => Update::Synced(Kind::Service),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ServiceSpec;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use skiff_api::pod::CachedPodSpec;

    use super::*;
    use crate::controllers::informers::resolve;

    fn meta<K: kube::Resource>(mut object: K, name: &str, uid: &str) -> K {
        let meta = object.meta_mut();
        meta.name = Some(name.into());
        meta.uid = Some(uid.into());
        object
    }

    fn namespaced<K: kube::Resource + Default>(name: &str, uid: &str) -> K {
        let mut object = meta(K::default(), name, uid);
        object.meta_mut().namespace = Some("default".into());
        object
    }

    fn pod(name: &str, uid: &str, node: Option<&str>) -> CachedPod {
        let mut pod: CachedPod = namespaced(name, uid);
        pod.spec = Some(CachedPodSpec {
            node_name: node.map(str::to_string),
            ..Default::default()
        });
        pod
    }

    /// A cache holding `objects`, as an informer's after it applied them.
    fn cache<K>(objects: Vec<K>) -> kube::runtime::reflector::Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        let mut writer = Writer::default();
        for object in objects {
            writer.apply_watcher_event(&Event::Apply(object));
        }
        writer.as_reader()
    }

    #[test]
    fn a_pod_in_the_cache_is_sent_as_cached_and_one_gone_by_its_uid() {
        let pods = cache(vec![pod("p", "1", Some("a")), pod("r", "3", None)]);
        // The change told is older than the cache: the binding is what is sent.
        match pod_update(resolve(&pods, Arc::new(pod("p", "1", None)))) {
            Some(Update::Pod(info)) => {
                assert_eq!(info.uid, "1");
                assert_eq!(info.node_name.as_deref(), Some("a"));
            }
            other => panic!("expected the cached pod, got {other:?}"),
        }
        match pod_update(resolve(&pods, Arc::new(pod("q", "2", None)))) {
            Some(Update::PodDeleted(uid)) => assert_eq!(uid, "2"),
            other => panic!("expected a deletion, got {other:?}"),
        }
        // Deleted and created again under the same name: the old uid is gone.
        match pod_update(resolve(&pods, Arc::new(pod("r", "0", None)))) {
            Some(Update::PodDeleted(uid)) => assert_eq!(uid, "0"),
            other => panic!("expected a deletion, got {other:?}"),
        }
        assert!(matches!(
            pod_update(Change::Synced),
            Some(Update::Synced(Kind::Pod))
        ));
    }

    #[test]
    fn nodes_and_services_are_sent_as_cached_or_deleted_by_name() {
        let nodes = cache(vec![meta(Node::default(), "a", "1")]);
        match node_update(resolve(&nodes, Arc::new(meta(Node::default(), "a", "1")))) {
            Some(Update::Node(info)) => assert_eq!(info.name, "a"),
            other => panic!("expected the node, got {other:?}"),
        }
        match node_update(resolve(&nodes, Arc::new(meta(Node::default(), "b", "2")))) {
            Some(Update::NodeDeleted(name)) => assert_eq!(name, "b"),
            other => panic!("expected a deletion, got {other:?}"),
        }

        let mut web: Service = namespaced("web", "1");
        web.spec = Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..Default::default()
        });
        let services = cache(vec![web]);
        let told = Arc::new(namespaced::<Service>("web", "1"));
        match service_update(resolve(&services, told)) {
            Some(Update::Service(info)) => {
                assert_eq!(
                    (info.namespace.as_str(), info.name.as_str()),
                    ("default", "web")
                );
                assert_eq!(info.selector.get("app").map(String::as_str), Some("web"));
            }
            other => panic!("expected the service, got {other:?}"),
        }
        let gone = Arc::new(namespaced::<Service>("db", "2"));
        match service_update(resolve(&services, gone)) {
            Some(Update::ServiceDeleted { namespace, name }) => {
                assert_eq!((namespace.as_str(), name.as_str()), ("default", "db"))
            }
            other => panic!("expected a deletion, got {other:?}"),
        }
    }
}
