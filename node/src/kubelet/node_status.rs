//! The Node's status as the kubelet reports it: capacity and allocatable, addresses,
//! `nodeInfo` and the conditions, Ready among them (False with the reason while Docker is
//! down).

use std::collections::BTreeMap;

use chrono::Utc;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::node_facts::NodeFacts;

/// Pods a node runs at most (Kubernetes' default `maxPods`).
pub const MAX_PODS: u32 = 110;

/// The version the agent reports as its kubelet version (the API it speaks).
pub const KUBELET_VERSION: &str = concat!("v1.32.0-skiff.", env!("CARGO_PKG_VERSION"));

/// Whether the container runtime works, as the node's Ready condition says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeHealth {
    /// The runtime answers and the node network and pause image are in place.
    pub ready: bool,
    /// `docker://<version>` once known.
    pub version: String,
    /// Why it is not ready.
    pub message: String,
}

impl Default for RuntimeHealth {
    fn default() -> Self {
        Self {
            ready: false,
            version: String::new(),
            message: String::from("container runtime status check may not have completed yet"),
        }
    }
}

/// The status to report now. Conditions keep their `lastTransitionTime` from `previous`
/// while their status is unchanged.
pub fn node_status(
    facts: &NodeFacts,
    health: &RuntimeHealth,
    daemon_port: i32,
    previous: Option<&NodeStatus>,
) -> NodeStatus {
    let mut capacity = BTreeMap::from([
        (String::from("cpu"), Quantity(facts.cpus.to_string())),
        (
            String::from("memory"),
            Quantity(format!("{}Ki", facts.memory_bytes / 1024)),
        ),
        (String::from("pods"), Quantity(MAX_PODS.to_string())),
    ]);
    if let Some(bytes) = facts.ephemeral_storage_bytes {
        capacity.insert(
            String::from("ephemeral-storage"),
            Quantity(format!("{}Ki", bytes / 1024)),
        );
    }
    let now = Time(Utc::now());
    let previous_conditions = previous
        .and_then(|status| status.conditions.as_ref())
        .cloned()
        .unwrap_or_default();
    let condition = |type_: &str, status: bool, reason: &str, message: &str| {
        let status = if status { "True" } else { "False" };
        let transition = previous_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        NodeCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(transition),
        }
    };
    let ready = if health.ready {
        condition(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status",
        )
    } else {
        condition(
            "Ready",
            false,
            "KubeletNotReady",
            &format!("container runtime is down: {}", health.message),
        )
    };
    NodeStatus {
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        addresses: Some(vec![
            NodeAddress {
                type_: String::from("InternalIP"),
                address: facts.internal_ip.to_string(),
            },
            NodeAddress {
                type_: String::from("Hostname"),
                address: facts.hostname.clone(),
            },
        ]),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            ready,
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: daemon_port }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: facts.architecture.clone(),
            boot_id: facts.boot_id.clone(),
            container_runtime_version: health.version.clone(),
            kernel_version: facts.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            machine_id: facts.machine_id.clone(),
            operating_system: String::from("linux"),
            os_image: facts.os_image.clone(),
            system_uuid: facts.system_uuid.clone(),
        }),
        ..Default::default()
    }
}

/// Whether two statuses differ in more than their heartbeat times (worth an early update).
pub fn changed(a: &NodeStatus, b: &NodeStatus) -> bool {
    let strip = |status: &NodeStatus| {
        let mut status = status.clone();
        for condition in status.conditions.iter_mut().flatten() {
            condition.last_heartbeat_time = None;
        }
        status
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn facts() -> NodeFacts {
        NodeFacts {
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: None,
            internal_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            hostname: "n1".into(),
            kernel_version: "6.1".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            system_uuid: "m".into(),
            boot_id: "b".into(),
            architecture: "amd64".into(),
        }
    }

    fn ready_of(status: &NodeStatus) -> NodeCondition {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .expect("Ready condition")
    }

    #[test]
    fn ready_follows_the_runtime_and_keeps_transition_times() {
        let up = RuntimeHealth {
            ready: true,
            version: "docker://20.10".into(),
            message: String::new(),
        };
        let first = node_status(&facts(), &up, 0, None);
        assert_eq!(ready_of(&first).status, "True");
        assert_eq!(
            first.capacity.as_ref().map(|c| c["pods"].0.clone()),
            Some("110".into())
        );
        let again = node_status(&facts(), &up, 0, Some(&first));
        assert_eq!(
            ready_of(&again).last_transition_time,
            ready_of(&first).last_transition_time
        );
        assert!(!changed(&first, &again));

        let down = RuntimeHealth {
            ready: false,
            version: String::new(),
            message: "socket missing".into(),
        };
        let status = node_status(&facts(), &down, 0, Some(&again));
        let ready = ready_of(&status);
        assert_eq!(ready.status, "False");
        assert!(ready.message.unwrap_or_default().contains("socket missing"));
        assert!(changed(&again, &status));
    }
}
