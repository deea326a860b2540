//! What the scheduler tells users: `Scheduled` and `FailedScheduling` Events on the pod, and
//! the PodScheduled=False condition (reason `Unschedulable`) on a pod that fits nowhere — the
//! two places `kubectl describe pod` shows.
//!
//! Events go through the shared recorder ([`skiff_api::events`]): a bounded queue written by
//! one task, repeats counted on one Event, and events dropped, not waited for, when the queue
//! is full — scheduling never waits on them.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use skiff_api::events::{Recorder, Reporter};

use super::pod_info::PodInfo;

/// The scheduler's name as Events and `kubectl describe` show it.
pub const COMPONENT: &str = "default-scheduler";
/// Event reason of a successful binding.
pub const REASON_SCHEDULED: &str = "Scheduled";
/// Event reason of a pod that fits nowhere (and of a failed binding).
pub const REASON_FAILED_SCHEDULING: &str = "FailedScheduling";
/// The PodScheduled condition's reason when no node fits.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";

/// The message of the `Scheduled` Event.
pub fn scheduled_message(pod: &PodInfo, node: &str) -> String {
    format!(
        "Successfully assigned {}/{} to {node}",
        pod.namespace, pod.name
    )
}

/// The pod as an Event's involved object.
pub fn pod_ref(pod: &PodInfo) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(pod.namespace.clone()),
        name: Some(pod.name.clone()),
        uid: Some(pod.uid.clone()),
        resource_version: Some(pod.resource_version.clone()).filter(|v| !v.is_empty()),
        ..Default::default()
    }
}

/// The scheduler's Event recorder (`default-scheduler`, reporting instance `instance`).
pub fn recorder(client: &kube::Client, instance: &str) -> Recorder {
    Recorder::start(
        client.clone(),
        Reporter {
            component: COMPONENT.into(),
            host: None,
            instance: instance.into(),
        },
    )
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
