//! A pod as the master's shared informer keeps it: only the fields that the controllers and
//! the scheduler read, read straight from the pod's JSON (client-go's informer transform,
//! done by the type). k8s-openapi's `Pod` takes 2 KB however few of its fields are set, and
//! each `Container` another 2 KB; this record takes a fifth of that, which at a million
//! pods is gigabytes. Controllers change pods by patches only, so nothing the record lacks
//! is ever written back. Field names and types are `Pod`'s, so code reads either alike.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, ContainerState, Pod, PodCondition, PodIP, ResourceRequirements,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer};

/// A pod in the informer's cache: its metadata (without managedFields and generateName),
/// what the controllers and the scheduler read of its spec, and of its status.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CachedPod {
    #[serde(deserialize_with = "metadata")]
    pub metadata: ObjectMeta,
    pub spec: Option<CachedPodSpec>,
    pub status: Option<CachedPodStatus>,
}

/// What is read of `spec`: where the pod runs and what it asks of its node (the scheduler,
/// quota), its hostname (endpoints), its deadline and restart policy (jobs, quota scopes).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct CachedPodSpec {
    pub active_deadline_seconds: Option<i64>,
    pub affinity: Option<Box<Affinity>>,
    pub containers: Vec<CachedContainer>,
    pub hostname: Option<String>,
    pub init_containers: Option<Vec<CachedContainer>>,
    pub node_name: Option<String>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub overhead: Option<BTreeMap<String, Quantity>>,
    pub priority: Option<i32>,
    pub priority_class_name: Option<String>,
    pub restart_policy: Option<String>,
    pub scheduler_name: Option<String>,
    pub subdomain: Option<String>,
    pub tolerations: Option<Vec<Toleration>>,
}

/// What is read of a container: its name, ports (named target ports, host ports), resources
/// and restart policy (a sidecar's `Always`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct CachedContainer {
    pub name: String,
    pub ports: Option<Vec<ContainerPort>>,
    pub resources: Option<ResourceRequirements>,
    pub restart_policy: Option<String>,
}

/// What is read of `status`: the phase, the `Ready` and `PodScheduled` conditions (the
/// others are dropped as they arrive), the addresses, and the containers' states.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct CachedPodStatus {
    #[serde(deserialize_with = "read_conditions")]
    pub conditions: Option<Vec<PodCondition>>,
    pub container_statuses: Option<Vec<CachedContainerStatus>>,
    pub init_container_statuses: Option<Vec<CachedContainerStatus>>,
    pub message: Option<String>,
    pub phase: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIP>>,
    pub qos_class: Option<String>,
    pub reason: Option<String>,
    pub start_time: Option<Time>,
}

/// What is read of a container's status: readiness, restarts and state (a Job's pod
/// failure policy reads exit codes).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct CachedContainerStatus {
    pub name: String,
    pub ready: bool,
    pub restart_count: i32,
    pub state: Option<ContainerState>,
}

/// The metadata without managedFields (which kube-controller-manager's informers drop too)
/// and generateName.
fn metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let mut metadata = ObjectMeta::deserialize(deserializer)?;
    metadata.managed_fields = None;
    metadata.generate_name = None;
    Ok(metadata)
}

/// The `Ready` and `PodScheduled` conditions, the only ones read.
fn read_conditions<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<PodCondition>>, D::Error> {
    let conditions = Option::<Vec<PodCondition>>::deserialize(deserializer)?;
    Ok(conditions.map(|conditions| {
        conditions
            .into_iter()
            .filter(|c| c.type_ == "Ready" || c.type_ == "PodScheduled")
            .collect()
    }))
}

impl k8s_openapi::Resource for CachedPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for CachedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The record of a typed pod: what the informer would keep of the pod's JSON.
impl From<&Pod> for CachedPod {
    fn from(pod: &Pod) -> Self {
        // Every field of the record is a field of `Pod` of the same type, so a pod's JSON
        // always reads as a record.
        serde_json::to_value(pod)
            .and_then(serde_json::from_value)
            .expect("a Pod's JSON reads as a CachedPod")
    }
}

impl From<Pod> for CachedPod {
    fn from(pod: Pod) -> Self {
        Self::from(&pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_what_is_read_and_drops_the_rest() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-1", "namespace": "default", "generateName": "web-",
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {
                "nodeName": "n1", "hostname": "web-1", "priority": 7,
                "volumes": [{"name": "token", "emptyDir": {}}],
                "containers": [{
                    "name": "app", "image": "nginx",
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"name": "http", "containerPort": 80}],
                    "resources": {"requests": {"cpu": "100m"}},
                }],
            },
            "status": {
                "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                ],
                "containerStatuses": [{
                    "name": "app", "ready": true, "restartCount": 2, "image": "nginx",
                    "imageID": "sha256:1", "state": {"running": {}},
                }],
            },
        }))
        .expect("pod");
        let cached = CachedPod::from(&pod);
        assert_eq!(cached.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(cached.metadata.labels, pod.metadata.labels);
        assert_eq!(cached.metadata.managed_fields, None);
        assert_eq!(cached.metadata.generate_name, None);
        let spec = cached.spec.expect("spec");
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.priority, Some(7));
        assert_eq!(spec.containers[0].name, "app");
        let port = &spec.containers[0].ports.as_ref().expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("http"), 80)
        );
        let requests = spec.containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref());
        assert_eq!(
            requests.and_then(|r| r.get("cpu")).map(|q| q.0.as_str()),
            Some("100m")
        );
        let status = cached.status.expect("status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(status.pod_ips.map(|ips| ips.len()), Some(1));
        let conditions: Vec<&str> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(conditions, ["Ready", "PodScheduled"]);
        let container = &status.container_statuses.expect("statuses")[0];
        assert_eq!(
            (
                container.name.as_str(),
                container.ready,
                container.restart_count
            ),
            ("app", true, 2)
        );
        assert!(
            container
                .state
                .as_ref()
                .is_some_and(|s| s.running.is_some())
        );
    }

    #[test]
    fn the_record_is_a_fraction_of_a_typed_pod() {
        // Inline sizes: what every pod pays however few fields it sets.
        let typed = size_of::<Pod>() + size_of::<k8s_openapi::api::core::v1::Container>();
        let cached = size_of::<CachedPod>() + size_of::<CachedContainer>();
        assert!(cached * 3 < typed, "{cached} bytes against {typed}");
    }
}
