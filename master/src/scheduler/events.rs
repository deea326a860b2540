//! What the scheduler tells users: `Scheduled` and `FailedScheduling` Events on the pod, and
//! the PodScheduled=False condition (reason `Unschedulable`) on a pod that fits nowhere — the
//! two places `kubectl describe pod` shows.
//!
//! Events go through a recorder as in client-go: a bounded queue written by one task, repeats
//! of the same event on the same pod counted on one Event (`count`, `lastTimestamp`), and
//! events dropped, not waited for, when the queue is full — scheduling never waits on them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::chrono::Utc;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::pod_info::PodInfo;

/// The scheduler's name as Events and `kubectl describe` show it.
pub const COMPONENT: &str = "default-scheduler";
/// Event reason of a successful binding.
pub const REASON_SCHEDULED: &str = "Scheduled";
/// Event reason of a pod that fits nowhere (and of a failed binding).
pub const REASON_FAILED_SCHEDULING: &str = "FailedScheduling";
/// The PodScheduled condition's reason when no node fits.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";

/// Events waiting to be written before new ones are dropped (client-go's queue length).
const MAX_QUEUED_EVENTS: usize = 1000;
/// Repeated events remembered for counting.
const MAX_CORRELATED: usize = 4096;

/// The message of the `Scheduled` Event.
pub fn scheduled_message(pod: &PodInfo, node: &str) -> String {
    format!(
        "Successfully assigned {}/{} to {node}",
        pod.namespace, pod.name
    )
}

/// One event to write.
#[derive(Clone, Debug)]
struct Record {
    namespace: String,
    name: String,
    uid: String,
    resource_version: String,
    warning: bool,
    reason: &'static str,
    message: String,
}

/// Writes Events in the background; cheap to clone.
#[derive(Clone, Debug)]
pub struct EventRecorder {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

impl EventRecorder {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(client: kube::Client, instance: String) -> Self {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_EVENTS);
        tokio::spawn(write_events(client, rx, instance));
        Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues an Event about `pod`; drops it if the queue is full.
    pub fn record(&self, pod: &PodInfo, warning: bool, reason: &'static str, message: String) {
        let record = Record {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            resource_version: pod.resource_version.clone(),
            warning,
            reason,
            message,
        };
        if self.tx.try_send(record).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                debug!(dropped, "event queue full, dropping events");
            }
        }
    }

    /// How many events were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_events(client: kube::Client, mut rx: mpsc::Receiver<Record>, instance: String) {
    // (pod uid, reason, message) -> (event namespace/name, count so far)
    let mut seen: HashMap<(String, &'static str, String), (String, i32)> = HashMap::new();
    while let Some(r) = rx.recv().await {
        let events: Api<Event> = Api::namespaced(client.clone(), &r.namespace);
        let key = (r.uid.clone(), r.reason, r.message.clone());
        if let Some((name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": Time(Utc::now())});
            match events
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    debug!(error = %e, "updating an event failed");
                    continue;
                }
            }
        }
        let now = Time(Utc::now());
        let name = format!(
            "{}.{:x}",
            r.name,
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(r.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(r.namespace.clone()),
                name: Some(r.name.clone()),
                uid: Some(r.uid.clone()),
                resource_version: Some(r.resource_version.clone()).filter(|v| !v.is_empty()),
                ..Default::default()
            },
            reason: Some(r.reason.to_string()),
            message: Some(r.message.clone()),
            type_: Some(if r.warning { "Warning" } else { "Normal" }.to_string()),
            source: Some(EventSource {
                component: Some(COMPONENT.to_string()),
                host: None,
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some(COMPONENT.to_string()),
            reporting_instance: Some(instance.clone()),
            ..Default::default()
        };
        match events.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if seen.len() >= MAX_CORRELATED {
                    seen.clear();
                }
                // Only failures repeat; a Scheduled event happens once per pod.
                if r.warning {
                    seen.insert(key, (name, 1));
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => {
                // The namespace is gone or terminating: nothing to tell.
                debug!(error = %e, "event not written");
            }
            Err(e) => {
                warn!(error = %e, pod = %format!("{}/{}", r.namespace, r.name), "writing an event failed")
            }
        }
    }
}

/// Sets PodScheduled=False, reason Unschedulable, with `message` on the pod — only on the
/// version of the pod the decision saw (a pod bound meanwhile must not get it).
pub async fn set_unschedulable(
    client: &kube::Client,
    pod: &PodInfo,
    message: &str,
) -> Result<(), kube::Error> {
    let mut condition = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": REASON_UNSCHEDULABLE,
        "message": message,
        "lastProbeTime": null,
    });
    // The transition time changes only when the status does.
    if pod
        .scheduled_condition
        .as_ref()
        .is_none_or(|c| c.status != "False")
    {
        condition["lastTransitionTime"] = json!(Time(Utc::now()));
    }
    let patch = json!({
        "metadata": {"resourceVersion": pod.resource_version},
        "status": {"conditions": [condition]},
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    pods.patch_status(
        &pod.name,
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await
    .map(|_| ())
}

/// Whether the pod already shows this Unschedulable message.
pub fn condition_is_current(pod: &PodInfo, message: &str) -> bool {
    pod.scheduled_condition.as_ref().is_some_and(|c| {
        c.status == "False" && c.reason == REASON_UNSCHEDULABLE && c.message == message
    })
}
