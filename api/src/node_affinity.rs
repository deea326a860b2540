//! Whether a pod's node selector and required node affinity admit a node (Kubernetes'
//! `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`), judged on one Node object: the
//! DaemonSet controller's eligibility check. The scheduler judges the same rules over its
//! columnar node cache instead.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

use crate::pod::CachedPodSpec;

/// The node field node selector terms may match on (`matchFields`).
pub const FIELD_NODE_NAME: &str = "metadata.name";

/// Whether `spec`'s `nodeSelector` and required node affinity both admit `node`.
pub fn admits(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let selector_holds = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let name = node.metadata.name.as_deref().unwrap_or_default();
    selector_holds
        && required.is_none_or(|selector| {
            selector
                .node_selector_terms
                .iter()
                .any(|term| term_matches(term, labels, name))
        })
}

/// One term: all its requirements hold; a term with none matches no node.
fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|req| requirement_holds(req, labels.get(&req.key).map(String::as_str)))
        && fields.iter().all(|req| {
            let value = (req.key == FIELD_NODE_NAME).then_some(name);
            // Only `In` and `NotIn` are allowed on fields.
            matches!(req.operator.as_str(), "In" | "NotIn") && requirement_holds(req, value)
        })
}

/// A requirement on a value that is there or not.
fn requirement_holds(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|w| w == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|w| w == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(actual), [bound]) = (value.and_then(|v| v.parse::<i64>().ok()), values)
            else {
                return false;
            };
            let Ok(bound) = bound.parse::<i64>() else {
                return false;
            };
            if req.operator == "Gt" {
                actual > bound
            } else {
                actual < bound
            }
        }
        _ => false,
    }
}

/// The node a pod is bound to, or, before it is, the one its required node affinity names
/// by `metadata.name` (Kubernetes' `GetTargetNodeName`: how a DaemonSet pod is tied to its node
/// before the scheduler binds it).
pub fn target_node(spec: &CachedPodSpec) -> Option<&str> {
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|term| term.match_fields.iter().flatten())
        .find(|req| req.key == FIELD_NODE_NAME && req.operator == "In")
        .and_then(|req| match req.values.as_deref() {
            Some([name]) => Some(name.as_str()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("node")
    }

    fn spec(spec: serde_json::Value) -> PodSpec {
        let mut spec = spec;
        spec["containers"] = json!([]);
        serde_json::from_value(spec).expect("spec")
    }

    fn required(terms: serde_json::Value) -> PodSpec {
        spec(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}))
    }

    #[test]
    fn node_selector_and_affinity_admit_as_in_kubernetes() {
        let a = node("a", json!({"zone": "east", "cores": "8"}));
        let b = node("b", json!({"zone": "west"}));
        assert!(admits(&spec(json!({})), &a), "no rule admits every node");
        let east = spec(json!({"nodeSelector": {"zone": "east"}}));
        assert!(admits(&east, &a));
        assert!(!admits(&east, &b));

        let big = required(json!([{"matchExpressions": [
            {"key": "cores", "operator": "Gt", "values": ["4"]}]}]));
        assert!(admits(&big, &a));
        assert!(!admits(&big, &b), "a missing label is not greater");
        let no_cores = required(json!([{"matchExpressions": [
            {"key": "cores", "operator": "DoesNotExist"}]}]));
        assert!(!admits(&no_cores, &a) && admits(&no_cores, &b));
        let not_east = required(json!([{"matchExpressions": [
            {"key": "zone", "operator": "NotIn", "values": ["east"]}]}]));
        assert!(!admits(&not_east, &a) && admits(&not_east, &b));

        // Terms are ORed; a term's requirements ANDed; an empty term matches nothing.
        let either = required(json!([
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["east"]}]}]));
        assert!(admits(&either, &a) && admits(&either, &b));
        let empty_term = required(json!([{}]));
        assert!(!admits(&empty_term, &a));
        let field_exists = required(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "Exists"}]}]));
        assert!(!admits(&field_exists, &a), "fields take In and NotIn only");
    }

    #[test]
    fn the_target_node_is_the_binding_or_the_name_in_the_affinity() {
        let cached = |spec: serde_json::Value| -> CachedPodSpec {
            serde_json::from_value(spec).expect("spec")
        };
        let bound = cached(json!({"nodeName": "n1"}));
        assert_eq!(target_node(&bound), Some("n1"));
        let pinned = cached(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}}));
        assert_eq!(target_node(&pinned), Some("n2"));
        assert_eq!(target_node(&cached(json!({}))), None);
    }
}
