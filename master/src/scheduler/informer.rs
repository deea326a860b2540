//! Informers: kube-runtime watchers (list, then watch; re-list after a 410 Gone; retry with
//! backoff) for Nodes, Pods and Services, turned into the scheduler's compact views on the
//! runtime's threads and sent to the scheduling thread as [`Update`]s.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use crossbeam_channel::Sender;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::bind::BindOutcome;
use super::cache::ServiceInfo;
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;

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
    /// A (re)list of `kind` finished; objects not in `keys` are gone (node names, pod uids,
    /// `namespace/name` of Services).
    Listed {
        /// What was listed.
        kind: Kind,
        /// Everything it contained.
        keys: HashSet<String>,
    },
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

/// Starts the three watchers; each sends its updates to `tx` until it is aborted.
pub fn spawn(client: &kube::Client, tx: &Sender<Update>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(inform(
            Api::<Node>::all(client.clone()),
            Kind::Node,
            tx.clone(),
            |node: Node| {
                let info = NodeInfo::from_node(&node);
                (info.name.clone(), Some(Update::Node(info)))
            },
            |node: Node| Update::NodeDeleted(node.metadata.name.unwrap_or_default()),
        )),
        tokio::spawn(inform(
            Api::<Pod>::all(client.clone()),
            Kind::Pod,
            tx.clone(),
            |pod: Pod| match PodInfo::from_pod(&pod) {
                Ok(info) => (info.uid.clone(), Some(Update::Pod(Arc::new(info)))),
                Err(e) => {
                    warn!(error = %e, "ignoring a pod the scheduler cannot read");
                    (pod.metadata.uid.unwrap_or_default(), None)
                }
            },
            |pod: Pod| Update::PodDeleted(pod.metadata.uid.unwrap_or_default()),
        )),
        tokio::spawn(inform(
            Api::<Service>::all(client.clone()),
            Kind::Service,
            tx.clone(),
            |svc: Service| {
                let info = ServiceInfo {
                    namespace: svc.metadata.namespace.unwrap_or_default(),
                    name: svc.metadata.name.unwrap_or_default(),
                    selector: svc.spec.and_then(|s| s.selector).unwrap_or_default(),
                };
                (
                    format!("{}/{}", info.namespace, info.name),
                    Some(Update::Service(info)),
                )
            },
            |svc: Service| Update::ServiceDeleted {
                namespace: svc.metadata.namespace.unwrap_or_default(),
                name: svc.metadata.name.unwrap_or_default(),
            },
        )),
    ]
}

/// Runs one watcher: every object applied is sent as it comes; at the end of each (re)list
/// the keys seen are sent so the receiver drops what disappeared meanwhile.
async fn inform<K, A, D>(api: Api<K>, kind: Kind, tx: Sender<Update>, applied: A, deleted: D)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    A: Fn(K) -> (String, Option<Update>),
    D: Fn(K) -> Update,
{
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Option<HashSet<String>> = None;
    let mut errors = 0u64;
    while let Some(event) = stream.next().await {
        let update = match event {
            Ok(Event::Init) => {
                listing = Some(HashSet::new());
                continue;
            }
            Ok(Event::InitApply(object)) => {
                let (key, update) = applied(object);
                if let Some(keys) = listing.as_mut() {
                    keys.insert(key);
                }
                update
            }
            Ok(Event::InitDone) => {
                let keys = listing.take().unwrap_or_default();
                if errors > 0 {
                    info!(?kind, objects = keys.len(), "watch re-listed");
                }
                Some(Update::Listed { kind, keys })
            }
            Ok(Event::Apply(object)) => applied(object).1,
            Ok(Event::Delete(object)) => Some(deleted(object)),
            Err(e) => {
                errors += 1;
                if errors.is_power_of_two() {
                    warn!(?kind, error = %e, errors, "watch failed; retrying");
                }
                continue;
            }
        };
        if let Some(update) = update
            && tx.send(update).is_err()
        {
            return;
        }
    }
}
