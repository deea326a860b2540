//! Pod state as the controllers read it (Kubernetes' `pkg/api/v1/pod` helpers): readiness,
//! availability, whether a pod still counts, and its QoS class; and the record of a pod the
//! master's informer keeps ([`CachedPod`]), which those helpers read.

mod cached;

pub use cached::{
    CachedContainer, CachedContainerStatus, CachedPod, CachedPodSpec, CachedPodStatus,
};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::quantity_nanos;

/// Whether the pod counts toward its controller: not finished and not being deleted
/// (Kubernetes' `controller.IsPodActive`).
pub fn is_active(pod: &CachedPod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether the pod's Ready condition is True (`podutil.IsPodReady`).
pub fn is_ready(pod: &CachedPod) -> bool {
    ready_since(pod).is_some()
}

/// When the pod's Ready condition turned True (None: not ready).
pub fn ready_since(pod: &CachedPod) -> Option<DateTime<Utc>> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map_or(DateTime::UNIX_EPOCH, |t| t.0),
    )
}

/// Whether the pod has been ready for at least `min_ready_seconds` at `now`
/// (`podutil.IsPodAvailable`).
pub fn is_available(pod: &CachedPod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    ready_since(pod).is_some_and(|since| {
        min_ready_seconds <= 0 || crate::time::plus_seconds(since, min_ready_seconds.into()) <= now
    })
}

/// A positive cpu or memory quantity, in nano units (QoS ignores other resources and zeros).
fn qos_quantities(list: Option<&BTreeMap<String, Quantity>>) -> impl Iterator<Item = (&str, i128)> {
    list.into_iter().flatten().filter_map(|(name, q)| {
        let name = name.as_str();
        let v = quantity_nanos(&q.0).ok()?;
        (matches!(name, "cpu" | "memory") && v > 0).then_some((name, v))
    })
}

/// The pod's QoS class, as Kubernetes' `ComputePodQOS`: `BestEffort` without cpu or memory
/// requests and limits, `Guaranteed` when every container limits both and requests equal
/// limits, `Burstable` otherwise.
pub fn qos_class(spec: &impl ContainerResources) -> &'static str {
    qos_class_of(spec.container_resources())
}

/// The resources of a pod spec's containers, init containers first: what [`qos_class`] reads,
/// of a typed [`PodSpec`] (the agent, defaulting) and a [`CachedPodSpec`] (quota) alike.
pub trait ContainerResources {
    /// Each container's `resources`, init containers first.
    fn container_resources(&self) -> impl Iterator<Item = Option<&ResourceRequirements>>;
}

impl ContainerResources for PodSpec {
    fn container_resources(&self) -> impl Iterator<Item = Option<&ResourceRequirements>> {
        let init = self.init_containers.iter().flatten();
        init.chain(&self.containers).map(|c| c.resources.as_ref())
    }
}

impl ContainerResources for CachedPodSpec {
    fn container_resources(&self) -> impl Iterator<Item = Option<&ResourceRequirements>> {
        let init = self.init_containers.iter().flatten();
        init.chain(&self.containers).map(|c| c.resources.as_ref())
    }
}

/// The QoS class of containers with these resources.
fn qos_class_of<'a>(
    containers: impl Iterator<Item = Option<&'a ResourceRequirements>>,
) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for res in containers {
        for (name, v) in qos_quantities(res.and_then(|r| r.requests.as_ref())) {
            *requests.entry(name).or_default() += v;
        }
        let mut limited = (false, false);
        for (name, v) in qos_quantities(res.and_then(|r| r.limits.as_ref())) {
            *limits.entry(name).or_default() += v;
            match name {
                "cpu" => limited.0 = true,
                _ => limited.1 = true,
            }
        }
        if limited != (true, true) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
    {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(phase: &str, ready: Option<(&str, &str)>) -> CachedPod {
        let conditions: Vec<serde_json::Value> = ready
            .map(|(status, at)| {
                serde_json::json!({"type": "Ready", "status": status, "lastTransitionTime": at})
            })
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"phase": phase, "conditions": conditions},
        }))
        .expect("pod")
    }

    #[test]
    fn readiness_and_availability() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:01:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let ready = pod("Running", Some(("True", "2026-01-01T00:00:30Z")));
        assert!(is_ready(&ready));
        assert!(is_available(&ready, 30, now), "ready for exactly 30 s");
        assert!(!is_available(&ready, 31, now));
        assert!(is_available(&ready, 0, now));
        assert!(!is_ready(&pod(
            "Running",
            Some(("False", "2026-01-01T00:00:30Z"))
        )));
        assert!(!is_ready(&pod("Pending", None)));
    }

    #[test]
    fn finished_and_deleted_pods_are_not_active() {
        assert!(is_active(&pod("Running", None)));
        assert!(is_active(&pod("Pending", None)));
        assert!(!is_active(&pod("Succeeded", None)));
        assert!(!is_active(&pod("Failed", None)));
        let mut deleting = pod("Running", None);
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Utc::now()),
        );
        assert!(!is_active(&deleting));
    }
}
