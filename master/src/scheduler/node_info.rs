//! What the scheduler needs of a Node: allocatable resources, labels, taints, whether it is
//! cordoned and whether it is Ready. A node with missing or partial status is not Ready and
//! has nothing allocatable, so nothing lands there, and reading it never fails.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use super::pod_info::{Resources, Taint, TaintEffect};

pub use skiff_api::well_known::{
    TAINT_NODE_NOT_READY as TAINT_NOT_READY, TAINT_NODE_UNREACHABLE as TAINT_UNREACHABLE,
    TAINT_NODE_UNSCHEDULABLE as TAINT_UNSCHEDULABLE,
};

/// The node's Ready condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Readiness {
    /// Ready=True.
    Ready,
    /// Ready=False.
    NotReady,
    /// Ready=Unknown, or no Ready condition (no status yet).
    Unknown,
}

/// The scheduler's view of a Node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    /// metadata.name.
    pub name: String,
    /// status.allocatable (status.capacity when allocatable is missing); `pods` is separate.
    pub allocatable: Resources,
    /// How many pods it may run.
    pub allocatable_pods: i64,
    /// metadata.labels.
    pub labels: BTreeMap<String, String>,
    /// spec.taints.
    pub taints: Vec<Taint>,
    /// spec.unschedulable (cordoned).
    pub unschedulable: bool,
    /// The Ready condition.
    pub readiness: Readiness,
}

impl NodeInfo {
    /// Reads a Node. Quantities that do not parse count as zero (and are logged).
    pub fn from_node(node: &Node) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let status = node.status.as_ref();
        let list = status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .cloned()
            .unwrap_or_default();
        let mut allocatable = Resources::default();
        let mut allocatable_pods = 0;
        for (resource, q) in &list {
            let one = BTreeMap::from([(resource.clone(), q.clone())]);
            match Resources::from_list(&one, &|| name.clone()) {
                Ok(r) => {
                    allocatable.add(&r);
                }
                Err(e) => tracing::warn!(node = %name, error = %e, "ignoring allocatable resource"),
            }
            if resource == "pods" {
                allocatable_pods = skiff_api::quantity::quantity_nanos(&q.0)
                    .map(|n| i64::try_from(n / 1_000_000_000).unwrap_or(i64::MAX))
                    .unwrap_or(0);
            }
        }
        let readiness = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| match c.status.as_str() {
                "True" => Readiness::Ready,
                "False" => Readiness::NotReady,
                _ => Readiness::Unknown,
            })
            .unwrap_or(Readiness::Unknown);
        let spec = node.spec.as_ref();
        NodeInfo {
            allocatable,
            allocatable_pods,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .map(|t| Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: TaintEffect::parse(&t.effect),
                })
                .collect(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            readiness,
            name,
        }
    }

    /// The taints that keep pods off the node (NoSchedule, NoExecute), including the one the
    /// node lifecycle controller adds when the node is not Ready, sorted.
    pub fn scheduling_taints(&self) -> Vec<Taint> {
        let mut taints: Vec<Taint> = self
            .taints
            .iter()
            .filter(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
            .cloned()
            .collect();
        let implicit = match self.readiness {
            Readiness::Ready => None,
            Readiness::NotReady => Some(TAINT_NOT_READY),
            Readiness::Unknown => Some(TAINT_UNREACHABLE),
        };
        if let Some(key) = implicit
            && !taints
                .iter()
                .any(|t| t.key == key && t.effect == TaintEffect::NoSchedule)
        {
            taints.push(Taint {
                key: key.to_string(),
                value: String::new(),
                effect: TaintEffect::NoSchedule,
            });
        }
        taints.sort();
        taints
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).expect("node json")
    }

    #[test]
    fn reads_allocatable_and_readiness() {
        let n = node(json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"},
                                {"key": "soft", "effect": "PreferNoSchedule"}]},
            "status": {"allocatable": {"cpu": "3500m", "memory": "8Gi", "pods": "110", "example.com/fpga": "2"},
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }));
        let info = NodeInfo::from_node(&n);
        assert_eq!(info.allocatable.milli_cpu, 3500);
        assert_eq!(info.allocatable.memory, 8 << 30);
        assert_eq!(info.allocatable.scalar("example.com/fpga"), 2);
        assert_eq!(info.allocatable_pods, 110);
        assert_eq!(info.readiness, Readiness::Ready);
        assert_eq!(info.scheduling_taints().len(), 1);
    }

    #[test]
    fn a_node_without_status_is_unreachable_and_empty() {
        let info = NodeInfo::from_node(&node(json!({"metadata": {"name": "bare"}})));
        assert_eq!(info.readiness, Readiness::Unknown);
        assert_eq!(info.allocatable, Resources::default());
        assert_eq!(info.allocatable_pods, 0);
        let taints = info.scheduling_taints();
        assert_eq!(taints.len(), 1);
        assert_eq!(taints[0].key, TAINT_UNREACHABLE);
    }

    #[test]
    fn partial_status_falls_back_to_capacity_and_ignores_bad_quantities() {
        let info = NodeInfo::from_node(&node(json!({
            "metadata": {"name": "partial"},
            "status": {"capacity": {"cpu": "2", "memory": "not-a-quantity"},
                       "conditions": [{"type": "Ready", "status": "False"}]},
        })));
        assert_eq!(info.allocatable.milli_cpu, 2000);
        assert_eq!(info.allocatable.memory, 0);
        assert_eq!(info.readiness, Readiness::NotReady);
        assert_eq!(info.scheduling_taints()[0].key, TAINT_NOT_READY);
    }
}
