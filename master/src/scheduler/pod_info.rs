//! What the scheduler needs of a Pod, read once from the API object when the watch delivers
//! it: its requests (as kube-scheduler sums them), tolerations, node selector and required
//! node affinity, host ports, labels and controller for spreading.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_api::pod::{CachedContainer, CachedPod};

use skiff_api::quantity::quantity_nanos;
use skiff_api::selectors::LabelList;

/// kube-scheduler's stand-in CPU request for scoring a container that requests none (100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// kube-scheduler's stand-in memory request for scoring a container that requests none.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Why a Pod could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PodInfoError {
    /// The pod has no uid (every stored pod has one).
    #[error("pod {0} has no uid")]
    NoUid(String),
    /// A resource quantity did not parse (the API server validates them, so this is a bug).
    #[error("pod {pod}: resource {resource}: quantity {quantity:?} does not parse")]
    Quantity {
        /// namespace/name.
        pod: String,
        /// The resource name.
        resource: String,
        /// The quantity text.
        quantity: String,
    },
}

/// Amounts of resources: CPU in millicores, memory in bytes, others (ephemeral-storage,
/// hugepages, extended resources) in their base unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Every other resource, sorted by name; zero amounts are left out.
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    /// Reads a resource list (`{"cpu": "500m", "memory": "1Gi", ...}`); `pods` is skipped.
    pub fn from_list(
        list: &BTreeMap<String, Quantity>,
        owner: &dyn Fn() -> String,
    ) -> Result<Self, PodInfoError> {
        let mut out = Resources::default();
        for (name, q) in list {
            let nanos = quantity_nanos(&q.0).map_err(|_| PodInfoError::Quantity {
                pod: owner(),
                resource: name.clone(),
                quantity: q.0.clone(),
            })?;
            match name.as_str() {
                "cpu" => out.milli_cpu = ceil_div(nanos, 1_000_000),
                "memory" => out.memory = ceil_div(nanos, 1_000_000_000),
                "pods" => {}
                other => {
                    let value = ceil_div(nanos, 1_000_000_000);
                    if value != 0 {
                        out.scalar.push((other.to_string(), value));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The amount of scalar resource `name` (0 when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map(|i| self.scalar[i].1)
            .unwrap_or(0)
    }

    /// Adds `other` to these amounts.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.merge_scalar(other, |a, b| a.saturating_add(b));
    }

    /// Raises each amount to at least `other`'s.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.merge_scalar(other, i64::max);
    }

    fn merge_scalar(&mut self, other: &Resources, f: impl Fn(i64, i64) -> i64) {
        for (name, value) in &other.scalar {
            match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                Ok(i) => self.scalar[i].1 = f(self.scalar[i].1, *value),
                Err(i) => self.scalar.insert(i, (name.clone(), f(0, *value))),
            }
        }
    }
}

fn ceil_div(nanos: i128, unit: i128) -> i64 {
    let v = if nanos > 0 {
        (nanos + unit - 1) / unit
    } else {
        nanos / unit
    };
    i64::try_from(v).unwrap_or(if v > 0 { i64::MAX } else { i64::MIN })
}

/// A taint's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaintEffect {
    /// New pods that do not tolerate it are not scheduled to the node.
    NoSchedule,
    /// The scheduler avoids the node for pods that do not tolerate it.
    PreferNoSchedule,
    /// Like NoSchedule, and running pods that do not tolerate it are evicted.
    NoExecute,
    /// An effect this scheduler does not know (the API server rejects them).
    Other,
}

impl TaintEffect {
    /// Reads `NoSchedule`, `PreferNoSchedule`, `NoExecute`.
    pub fn parse(s: &str) -> Self {
        match s {
            "NoSchedule" => Self::NoSchedule,
            "PreferNoSchedule" => Self::PreferNoSchedule,
            "NoExecute" => Self::NoExecute,
            _ => Self::Other,
        }
    }
}

/// A node taint.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Taint {
    /// The taint key.
    pub key: String,
    /// The taint value ("" when none).
    pub value: String,
    /// What it does to pods that do not tolerate it.
    pub effect: TaintEffect,
}

/// A pod toleration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    /// The key it matches; "" with `exists` matches every key.
    pub key: String,
    /// Operator `Exists` (any value) rather than `Equal`.
    pub exists: bool,
    /// The value `Equal` compares with.
    pub value: String,
    /// The effect it matches; `None` matches all.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether this toleration tolerates `taint` (Kubernetes' `ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        self.exists || self.value == taint.value
    }
}

/// A node selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOperator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label's value, an integer, is greater than the one value.
    Gt,
    /// The label's value, an integer, is less than the one value.
    Lt,
    /// Unknown; matches nothing.
    Invalid,
}

/// One requirement of a node selector term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key (or, for a field requirement, `metadata.name`).
    pub key: String,
    /// How it compares.
    pub operator: SelectorOperator,
    /// The values compared with.
    pub values: Vec<String>,
}

/// A term of required node affinity: all its requirements must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    /// Requirements on node labels.
    pub match_expressions: Vec<Requirement>,
    /// Requirements on node fields (only `metadata.name` exists).
    pub match_fields: Vec<Requirement>,
}

/// A host port a container asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The host IP; `0.0.0.0` (all addresses) when unset.
    pub ip: String,
    /// The port.
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports cannot be on one node: same protocol and port, and the same IP
    /// or either one on every address.
    pub fn conflicts_with(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == WILDCARD_IP || other.ip == WILDCARD_IP)
    }
}

const WILDCARD_IP: &str = "0.0.0.0";

/// The pod's current PodScheduled condition, to avoid writing the same one twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduledCondition {
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// E.g. `Unschedulable`.
    pub reason: String,
    /// E.g. `0/3 nodes are available: ...`.
    pub message: String,
}

/// The scheduler's view of a Pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodInfo {
    /// metadata.uid: pods are keyed by it (a recreated pod is another pod).
    pub uid: String,
    /// metadata.namespace.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
    /// metadata.resourceVersion as the watch delivered it.
    pub resource_version: String,
    /// spec.nodeName, when bound.
    pub node_name: Option<String>,
    /// spec.schedulerName.
    pub scheduler_name: String,
    /// spec.priority (0 when unset).
    pub priority: i32,
    /// metadata.labels.
    pub labels: LabelList,
    /// The uid of the controller that owns it (ReplicaSet, ReplicationController, ...).
    pub controller_uid: Option<String>,
    /// Effective requests: containers, restartable init containers, the largest init
    /// container, overhead — as kube-scheduler computes them.
    pub requests: Resources,
    /// CPU for scoring, with containers that request none counted as 100m.
    pub non_zero_milli_cpu: i64,
    /// Memory for scoring, with containers that request none counted as 200 MiB.
    pub non_zero_memory: i64,
    /// spec.tolerations.
    pub tolerations: Vec<Toleration>,
    /// spec.nodeSelector.
    pub node_selector: Vec<(String, String)>,
    /// Required node affinity terms (ORed); `None` when the pod has none.
    pub required_affinity: Option<Vec<NodeSelectorTerm>>,
    /// Host ports its containers ask for.
    pub host_ports: Vec<HostPort>,
    /// Phase Succeeded or Failed: it no longer uses its node.
    pub terminal: bool,
    /// metadata.deletionTimestamp is set.
    pub deleting: bool,
    /// status.conditions[type=PodScheduled].
    pub scheduled_condition: Option<ScheduledCondition>,
}

impl PodInfo {
    /// "namespace/name".
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod runs, or will run, on its node: bound and not finished.
    pub fn occupies_node(&self) -> bool {
        self.node_name.is_some() && !self.terminal
    }

    /// Reads a Pod.
    pub fn from_pod(pod: &CachedPod) -> Result<Self, PodInfoError> {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let key = || format!("{namespace}/{name}");
        let uid = meta
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| PodInfoError::NoUid(key()))?;
        let mut info = PodInfo {
            uid,
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            labels: meta
                .labels
                .as_ref()
                .map(LabelList::from)
                .unwrap_or_default(),
            controller_uid: meta
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.controller == Some(true))
                .map(|r| r.uid.clone()),
            deleting: meta.deletion_timestamp.is_some(),
            ..Default::default()
        };
        if let Some(status) = &pod.status {
            info.terminal = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
            info.scheduled_condition = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled")
                .map(|c| ScheduledCondition {
                    status: c.status.clone(),
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                });
        }
        if let Some(spec) = &pod.spec {
            info.node_name = spec.node_name.clone().filter(|n| !n.is_empty());
            info.scheduler_name = spec
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".to_string());
            info.priority = spec.priority.unwrap_or(0);
            let (requests, non_zero_cpu, non_zero_mem) = pod_requests(
                &spec.containers,
                spec.init_containers.as_deref().unwrap_or(&[]),
                spec.overhead.as_ref(),
                &key,
            )?;
            info.requests = requests;
            info.non_zero_milli_cpu = non_zero_cpu;
            info.non_zero_memory = non_zero_mem;
            info.tolerations = spec
                .tolerations
                .iter()
                .flatten()
                .map(|t| Toleration {
                    key: t.key.clone().unwrap_or_default(),
                    exists: t.operator.as_deref() == Some("Exists"),
                    value: t.value.clone().unwrap_or_default(),
                    effect: t
                        .effect
                        .as_deref()
                        .filter(|e| !e.is_empty())
                        .map(TaintEffect::parse),
                })
                .collect();
            info.node_selector = spec
                .node_selector
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            info.required_affinity = spec
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|selector| {
                    selector
                        .node_selector_terms
                        .iter()
                        .map(|term| NodeSelectorTerm {
                            match_expressions: requirements(term.match_expressions.as_deref()),
                            match_fields: requirements(term.match_fields.as_deref()),
                        })
                        .collect()
                });
            info.host_ports = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .flat_map(|c| c.ports.iter().flatten())
                .filter(|p| p.host_port.is_some_and(|hp| hp > 0))
                .map(|p| HostPort {
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or_else(|| WILDCARD_IP.to_string()),
                    port: p.host_port.unwrap_or(0),
                })
                .collect();
        }
        info.namespace = namespace;
        info.name = name;
        Ok(info)
    }
}

fn requirements(
    list: Option<&[k8s_openapi::api::core::v1::NodeSelectorRequirement]>,
) -> Vec<Requirement> {
    list.unwrap_or(&[])
        .iter()
        .map(|r| Requirement {
            key: r.key.clone(),
            operator: match r.operator.as_str() {
                "In" => SelectorOperator::In,
                "NotIn" => SelectorOperator::NotIn,
                "Exists" => SelectorOperator::Exists,
                "DoesNotExist" => SelectorOperator::DoesNotExist,
                "Gt" => SelectorOperator::Gt,
                "Lt" => SelectorOperator::Lt,
                _ => SelectorOperator::Invalid,
            },
            values: r.values.clone().unwrap_or_default(),
        })
        .collect()
}

/// A container's requests, with limits standing in for requests it does not make (the API
/// server defaults them so; done again here for objects stored before that default).
fn container_requests(
    c: &CachedContainer,
    key: &dyn Fn() -> String,
) -> Result<Resources, PodInfoError> {
    let Some(res) = &c.resources else {
        return Ok(Resources::default());
    };
    let mut list = res.requests.clone().unwrap_or_default();
    for (name, q) in res.limits.iter().flatten() {
        list.entry(name.clone()).or_insert_with(|| q.clone());
    }
    Resources::from_list(&list, key)
}

/// kube-scheduler's `PodRequests`: the sum of the containers and restartable (sidecar) init
/// containers, at least the largest init container (plus the sidecars started before it), plus
/// the overhead. Also the non-zero CPU and memory used for scoring.
fn pod_requests(
    containers: &[CachedContainer],
    init_containers: &[CachedContainer],
    overhead: Option<&BTreeMap<String, Quantity>>,
    key: &dyn Fn() -> String,
) -> Result<(Resources, i64, i64), PodInfoError> {
    let mut total = Resources::default();
    let (mut non_zero_cpu, mut non_zero_mem) = (0i64, 0i64);
    for c in containers {
        let r = container_requests(c, key)?;
        non_zero_cpu =
            non_zero_cpu.saturating_add(non_zero(r.milli_cpu, DEFAULT_MILLI_CPU_REQUEST));
        non_zero_mem = non_zero_mem.saturating_add(non_zero(r.memory, DEFAULT_MEMORY_REQUEST));
        total.add(&r);
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in init_containers {
        let r = container_requests(c, key)?;
        let effective = if c.restart_policy.as_deref() == Some("Always") {
            total.add(&r);
            sidecars.add(&r);
            non_zero_cpu =
                non_zero_cpu.saturating_add(non_zero(r.milli_cpu, DEFAULT_MILLI_CPU_REQUEST));
            non_zero_mem = non_zero_mem.saturating_add(non_zero(r.memory, DEFAULT_MEMORY_REQUEST));
            sidecars.clone()
        } else {
            let mut e = r;
            e.add(&sidecars);
            e
        };
        init_max.max_with(&effective);
    }
    total.max_with(&init_max);
    non_zero_cpu = non_zero_cpu.max(init_max.milli_cpu);
    non_zero_mem = non_zero_mem.max(init_max.memory);
    if let Some(list) = overhead {
        let o = Resources::from_list(list, key)?;
        total.add(&o);
        non_zero_cpu = non_zero_cpu.saturating_add(o.milli_cpu);
        non_zero_mem = non_zero_mem.saturating_add(o.memory);
    }
    Ok((total, non_zero_cpu, non_zero_mem))
}

fn non_zero(value: i64, default: i64) -> i64 {
    if value == 0 { default } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> CachedPod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}]},
            "spec": spec,
        }))
        .expect("pod json")
    }

    #[test]
    fn requests_sum_containers_and_take_the_largest_init_container() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "2"}}},
                {"name": "c"},
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}],
            "overhead": {"cpu": "10m"},
        }));
        let info = PodInfo::from_pod(&p).expect("pod info");
        assert_eq!(info.requests.milli_cpu, 2010);
        assert_eq!(info.requests.memory, 64 * 1024 * 1024);
        assert_eq!(info.requests.scalar("nvidia.com/gpu"), 2);
        // a + b + c(100m default) = 1350m, below the init container's 2000m, plus overhead.
        assert_eq!(info.non_zero_milli_cpu, 2010);
        assert_eq!(
            info.non_zero_memory,
            64 * 1024 * 1024 + 2 * DEFAULT_MEMORY_REQUEST
        );
        assert_eq!(info.controller_uid.as_deref(), Some("rs-uid"));
        assert_eq!(info.priority, 0);
    }

    #[test]
    fn sidecars_add_to_the_sum() {
        let p = pod(json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "i", "resources": {"requests": {"cpu": "1"}}},
            ],
        }));
        let info = PodInfo::from_pod(&p).expect("pod info");
        assert_eq!(info.requests.milli_cpu, 1500);
    }

    #[test]
    fn millicores_and_bytes_round_up() {
        let p = pod(
            json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "0.0001", "memory": "1.5"}}}]}),
        );
        let info = PodInfo::from_pod(&p).expect("pod info");
        assert_eq!(info.requests.milli_cpu, 1);
        assert_eq!(info.requests.memory, 2);
    }

    #[test]
    fn tolerations_follow_kubernetes_matching() {
        let taint = Taint {
            key: "dedicated".into(),
            value: "x".into(),
            effect: TaintEffect::NoSchedule,
        };
        let t = |key: &str, exists: bool, value: &str, effect: Option<TaintEffect>| Toleration {
            key: key.into(),
            exists,
            value: value.into(),
            effect,
        };
        assert!(t("dedicated", false, "x", None).tolerates(&taint));
        assert!(t("dedicated", true, "", Some(TaintEffect::NoSchedule)).tolerates(&taint));
        assert!(t("", true, "", None).tolerates(&taint));
        assert!(!t("dedicated", false, "y", None).tolerates(&taint));
        assert!(!t("dedicated", true, "", Some(TaintEffect::NoExecute)).tolerates(&taint));
        assert!(!t("other", true, "", None).tolerates(&taint));
    }

    #[test]
    fn host_ports_conflict_on_the_same_address_or_the_wildcard() {
        let hp = |ip: &str, port: i32| HostPort {
            protocol: "TCP".into(),
            ip: ip.into(),
            port,
        };
        assert!(hp("0.0.0.0", 80).conflicts_with(&hp("10.0.0.1", 80)));
        assert!(hp("10.0.0.1", 80).conflicts_with(&hp("10.0.0.1", 80)));
        assert!(!hp("10.0.0.1", 80).conflicts_with(&hp("10.0.0.2", 80)));
        assert!(!hp("0.0.0.0", 80).conflicts_with(&hp("0.0.0.0", 81)));
        let udp = HostPort {
            protocol: "UDP".into(),
            ..hp("0.0.0.0", 80)
        };
        assert!(!udp.conflicts_with(&hp("0.0.0.0", 80)));
    }
}
