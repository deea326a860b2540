//! Kubernetes Events from the kubelet (`kubectl describe` / `kubectl get events` show them):
//! container started, back-off, image missing, a malformed static manifest...
//!
//! Written through the shared recorder of [`skiff_api::events`] (bounded queue, never blocks a
//! pod worker, repeated Warnings counted on one Event); this module adds the kubelet's own
//! references: a pod, one of its containers (`spec.containers{name}`), the node.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use skiff_api::events::Reporter;

pub use skiff_api::events::EventType;

/// The kubelet's recorder; cheap to clone.
#[derive(Clone, Debug)]
pub struct Recorder {
    node: String,
    events: skiff_api::events::Recorder,
}

/// The kubelet of `node` as the reporter of its events.
fn reporter(node: &str) -> Reporter {
    Reporter {
        component: String::from("kubelet"),
        host: Some(node.to_owned()),
        instance: node.to_owned(),
    }
}

impl Recorder {
    /// A recorder for the kubelet of `node`, and the task that posts its events.
    pub fn new(
        client: kube::Client,
        node: &str,
    ) -> (Self, impl Future<Output = ()> + Send + use<>) {
        let (events, writer) = skiff_api::events::Recorder::new(client, reporter(node));
        let recorder = Self {
            node: node.to_owned(),
            events,
        };
        (recorder, writer)
    }

    /// A recorder whose events stay in the returned queue (tests read them from there).
    #[cfg(test)]
    pub fn to_queue(
        node: &str,
    ) -> (
        Self,
        tokio::sync::mpsc::Receiver<k8s_openapi::api::core::v1::Event>,
    ) {
        let (events, queue) = skiff_api::events::Recorder::to_queue(reporter(node));
        let recorder = Self {
            node: node.to_owned(),
            events,
        };
        (recorder, queue)
    }

    /// Records an event about `pod`.
    pub fn pod_event(&self, pod: &Pod, kind: EventType, reason: &str, message: String) {
        self.record(object_ref(pod, None), kind, reason, message);
    }

    /// Records an event about one container of `pod`.
    pub fn container_event(
        &self,
        pod: &Pod,
        container: &str,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        self.record(object_ref(pod, Some(container)), kind, reason, message);
    }

    /// Records an event about `object`.
    pub fn record(&self, object: ObjectReference, kind: EventType, reason: &str, message: String) {
        self.events.record(object, kind, reason, message);
    }

    /// A reference to this node, for node-level events.
    pub fn node_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(String::from("v1")),
            kind: Some(String::from("Node")),
            name: Some(self.node.clone()),
            uid: Some(self.node.clone()),
            ..Default::default()
        }
    }
}

/// A reference to `pod`, or to one of its containers (`spec.containers{name}`).
fn object_ref(pod: &Pod, container: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some(String::from("v1")),
        kind: Some(String::from("Pod")),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        field_path: container.map(|c| format!("spec.containers{{{c}}}")),
        ..Default::default()
    }
}
