//! Nodes: taints, pod CIDRs, and the capacity and addresses in their status.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use skiff_api::names::NameRule;
use skiff_api::quantity::quantity_nanos;
use skiff_api::selectors;

use crate::apiserver::field_error::FieldError;

use super::metadata::object_meta;
use super::pod::TAINT_EFFECTS;
use super::{NEGATIVE_MSG, cidr, supported};

fn taints(errs: &mut Vec<FieldError>, taints: &[Taint]) {
    let mut seen = HashSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = format!("spec.taints[{i}]");
        if let Err(msg) = selectors::validate_label_key(&t.key) {
            errs.push(FieldError::invalid(format!("{p}.key"), &t.key, msg));
        }
        let value = t.value.as_deref().unwrap_or("");
        if let Err(msg) = selectors::validate_label_value(value) {
            errs.push(FieldError::invalid(format!("{p}.value"), value, msg));
        }
        if t.effect.is_empty() {
            errs.push(FieldError::required(format!("{p}.effect"), ""));
        } else {
            supported(errs, &format!("{p}.effect"), Some(&t.effect), TAINT_EFFECTS);
        }
        if !seen.insert((t.key.as_str(), t.effect.as_str())) {
            let mut dup = FieldError::duplicate(&p, format!("{}:{}", t.key, t.effect));
            dup.detail = "taints must be unique by key and effect pair".to_string();
            errs.push(dup);
        }
    }
}

fn resource_list(
    errs: &mut Vec<FieldError>,
    list: Option<&BTreeMap<String, Quantity>>,
    path: &str,
) {
    for (name, q) in list.into_iter().flatten() {
        let field = format!("{path}.{name}");
        match quantity_nanos(&q.0) {
            Err(e) => errs.push(FieldError::invalid(&field, &q.0, e.to_string())),
            Ok(v) if v < 0 => errs.push(FieldError::invalid(&field, &q.0, NEGATIVE_MSG)),
            Ok(_) => {}
        }
    }
}

/// A Node: DNS-1123 subdomain name, not namespaced; taints (qualified key, label value,
/// known effect, unique per key and effect), pod CIDRs, and status capacity/allocatable
/// quantities valid and non-negative, addresses not repeated.
pub fn node(node: &Node) -> Vec<FieldError> {
    let mut errs = object_meta(&node.metadata, false, NameRule::Dns1123Subdomain);
    if let Some(spec) = &node.spec {
        taints(&mut errs, spec.taints.as_deref().unwrap_or_default());
        if let Some(c) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
            cidr(&mut errs, "spec.podCIDR", c);
        }
        for (i, c) in spec.pod_cidrs.iter().flatten().enumerate() {
            cidr(&mut errs, &format!("spec.podCIDRs[{i}]"), c);
        }
    }
    if let Some(status) = &node.status {
        resource_list(&mut errs, status.capacity.as_ref(), "status.capacity");
        resource_list(&mut errs, status.allocatable.as_ref(), "status.allocatable");
        let mut seen = HashSet::new();
        for (i, a) in status.addresses.iter().flatten().enumerate() {
            if !seen.insert((a.type_.as_str(), a.address.as_str())) {
                errs.push(FieldError::duplicate(
                    format!("status.addresses[{i}]"),
                    format!("{}:{}", a.type_, a.address),
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::CIDR_MSG;
    use super::super::tests::{from, only};
    use super::*;
    use crate::apiserver::field_error::FieldErrorKind;

    #[test]
    fn node_rules() {
        let good: Node = from(json!({
            "metadata": {"name": "node-1.example.com"},
            "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}, "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
        }));
        assert_eq!(node(&good), vec![]);
        let bad: Node = from(json!({
            "metadata": {"name": "Node_1"},
            "spec": {"podCIDR": "10.244.1.0", "taints": [
                {"key": "k", "effect": "Sometimes"},
                {"key": "k", "effect": ""},
                {"key": "k", "effect": "Sometimes"}
            ]},
            "status": {"capacity": {"cpu": "four"}, "allocatable": {"memory": "-1Gi"}}
        }));
        let errs = node(&bad);
        assert_eq!(
            only(&errs, "metadata.name").kind,
            FieldErrorKind::Invalid("Node_1".into())
        );
        assert_eq!(only(&errs, "spec.podCIDR").detail, CIDR_MSG);
        assert_eq!(
            only(&errs, "spec.taints[0].effect").kind,
            FieldErrorKind::NotSupported("Sometimes".into())
        );
        assert_eq!(
            only(&errs, "spec.taints[1].effect").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.taints[2]").detail,
            "taints must be unique by key and effect pair"
        );
        assert!(
            only(&errs, "status.capacity.cpu")
                .detail
                .starts_with("quantities must match")
        );
        assert_eq!(
            only(&errs, "status.allocatable.memory").detail,
            NEGATIVE_MSG
        );
    }
}
