//! Kubernetes Events from the kubelet (`kubectl describe` / `kubectl get events` show them):
//! container started, back-off, image missing, a malformed static manifest...
//!
//! Recording never blocks the caller: events go through a bounded queue to a task that posts
//! them once; when the master is unreachable or the queue is full they are dropped (events
//! are best-effort in Kubernetes too).

use chrono::Utc;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;
use tracing::debug;

/// Events waiting to be posted before new ones are dropped.
const QUEUE: usize = 256;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

/// Hands events to the posting task; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    node: String,
    queue: mpsc::Sender<Event>,
}

impl Recorder {
    /// A recorder for the kubelet of `node`, and the task that posts its events.
    pub fn new(
        client: kube::Client,
        node: &str,
    ) -> (Self, impl Future<Output = ()> + Send + use<>) {
        let (queue, mut incoming) = mpsc::channel::<Event>(QUEUE);
        let poster = async move {
            while let Some(event) = incoming.recv().await {
                let namespace = event
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| String::from("default"));
                let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
                if let Err(err) = api.create(&PostParams::default(), &event).await {
                    debug!("dropping event {:?}: {err}", event.reason);
                }
            }
        };
        (
            Self {
                node: node.to_owned(),
                queue,
            },
            poster,
        )
    }

    /// A recorder whose events stay in the returned queue (tests read them from there).
    #[cfg(test)]
    pub fn to_queue(node: &str) -> (Self, mpsc::Receiver<Event>) {
        let (queue, events) = mpsc::channel::<Event>(QUEUE);
        (
            Self {
                node: node.to_owned(),
                queue,
            },
            events,
        )
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
        let now = Utc::now();
        let namespace = object
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| String::from("default"));
        let name = object.name.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{name}.{:x}",
                    now.timestamp_nanos_opt().unwrap_or_default()
                )),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: object,
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(
                match kind {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            source: Some(EventSource {
                component: Some(String::from("kubelet")),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(String::from("kubelet")),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        // Full queue: drop rather than block a pod worker.
        let _ = self.queue.try_send(event);
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
