//! Well-known label, annotation and taint keys (Kubernetes' `k8s.io/api/core/v1`
//! `well_known_labels.go` and `well_known_taints.go`, and the controllers' own).

/// Every Namespace carries its own name under this label.
pub const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// The label a Deployment puts on its ReplicaSets and their pods: the template's hash.
pub const LABEL_POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The label a DaemonSet puts on its ControllerRevisions and pods: the revision's hash.
pub const LABEL_CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// The DaemonSet generation a pod was made from (kept beside the hash, as Kubernetes does).
pub const LABEL_POD_TEMPLATE_GENERATION: &str = "pod-template-generation";

/// A ReplicaSet's revision in its Deployment's history.
pub const ANNOTATION_DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";

/// The node is not ready (its Ready condition is False).
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";

/// The node controller cannot reach the node (its Ready condition is Unknown).
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The node is cordoned (`spec.unschedulable`).
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The node's memory is low.
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";

/// The node's disk is low.
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";

/// The node is short of process ids.
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";

/// The node's network is not configured.
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// A user or operator says the node is shut down and will not come back as it was: its
/// terminating pods are deleted at once (kube-controller-manager's podgc).
pub const TAINT_NODE_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// The cluster DNS's address in a Service range starting at `network` (10.96.0.0/12 gives
/// 10.96.0.10): its 10th address, as kubeadm picks it for the `kube-dns` Service and as
/// kubelets' `--cluster-dns` names it.
pub fn cluster_dns_address(network: std::net::Ipv4Addr) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(network).saturating_add(10))
}
