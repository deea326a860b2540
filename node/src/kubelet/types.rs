//! What the kubelet's parts say about a pod, shared by all of them (as Kubernetes'
//! `pkg/kubelet/types`): the annotations that mark static and mirror pods, a pod's key, and
//! the runtime's view of a pod. A leaf: it imports nothing of the kubelet.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::runtime::PodRef;

/// Annotation with the static pod's content hash (= its uid).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Annotation naming where a pod came from (`file` for static pods, `api` otherwise).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// Annotation marking a mirror pod; its value is the static pod's hash.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// A pod's namespace and name.
pub type PodKey = (String, String);

/// Namespace and name of `pod`.
pub fn key_of(pod: &Pod) -> PodKey {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Whether `pod` is a static pod (read from a manifest file, not from the API).
pub fn is_static_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE))
        .is_some_and(|s| s == "file")
}

/// Whether `pod` is a mirror pod (the API's copy of a static pod).
pub fn is_mirror_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR))
}

/// The static pod hash a mirror pod stands for.
pub fn mirror_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(CONFIG_MIRROR)
        .map(String::as_str)
}

/// The pod's termination grace period (`deletionGracePeriodSeconds` while it is deleted); a
/// huge one is as long as a wait can be ([`skiff_api::time::seconds`]).
pub fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    skiff_api::time::seconds(seconds)
}

/// The runtime's view of which pod this is.
pub fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| String::from("default")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_grace_period_is_a_wait_a_deadline_can_hold() {
        let mut pod = Pod::default();
        assert_eq!(grace_period(&pod), Duration::from_secs(30));
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            termination_grace_period_seconds: Some(-1),
            ..Default::default()
        });
        assert_eq!(grace_period(&pod), Duration::ZERO);
        pod.metadata.deletion_grace_period_seconds = Some(i64::MAX);
        let grace = grace_period(&pod);
        // What stopping a container computes: it panicked with the unclamped grace period.
        assert!(tokio::time::Instant::now().checked_add(grace).is_some());
        assert_eq!(grace, skiff_api::time::seconds(i64::MAX));
    }
}
