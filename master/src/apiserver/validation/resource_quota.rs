//! ResourceQuotas (`ValidateResourceQuota`): the resource names a quota may limit, their
//! amounts (not negative, whole for counts), and its scopes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use skiff_api::names::NameRule;
use skiff_api::quantity::ParsedQuantity;
use skiff_api::selectors::validate_label_key;

use crate::apiserver::field_error::FieldError;

use super::metadata::{object_meta, object_meta_update};
use super::{IMMUTABLE_MSG, NEGATIVE_MSG};

/// Names a quota may limit without a domain (`standardQuotaResources`).
const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// Resource names Kubernetes knows without a domain (`standardResources`): the quota names
/// and `storage`.
fn is_standard_resource(name: &str) -> bool {
    STANDARD_QUOTA_RESOURCES.contains(&name) || name == "storage" || is_huge_pages(name)
}

fn is_huge_pages(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// Counts of things, which must be whole (`integerResources` and extended resources such as
/// `count/pods` or `example.com/gpu`).
fn is_integer_resource(name: &str) -> bool {
    const COUNTS: &[&str] = &[
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    ];
    COUNTS.contains(&name) || is_extended_resource(name)
}

/// `IsExtendedResourceName`: outside `kubernetes.io`, not `requests.`-prefixed, and a
/// qualified name once prefixed so.
fn is_extended_resource(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    !native
        && !name.starts_with("requests.")
        && validate_label_key(&format!("requests.{name}")).is_ok()
}

/// The scopes a quota may have (`standardResourceQuotaScopes`).
const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// Whether a quota with `scope` may limit `resource` (`IsResourceQuotaScopeValidForResource`):
/// scopes select pods, so they go with pod counts and pod compute resources only.
fn scope_fits_resource(scope: &str, resource: &str) -> bool {
    let pod_count = resource == "pods";
    let pod_compute = matches!(
        resource,
        "cpu" | "memory" | "limits.cpu" | "limits.memory" | "requests.cpu" | "requests.memory"
    );
    match scope {
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => pod_count || pod_compute,
        "BestEffort" => pod_count,
        _ => true,
    }
}

/// Go's `%#v` of a scope list, as Kubernetes prints the invalid value.
fn go_scopes(scopes: &[String]) -> String {
    let items: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
    format!("[]core.ResourceQuotaScope{{{}}}", items.join(", "))
}

/// `ValidateResourceQuotaResourceName`: a qualified name, and without a domain a standard
/// resource for quota.
fn resource_name(errs: &mut Vec<FieldError>, name: &str, field: &str) {
    if let Err(msg) = validate_label_key(name) {
        errs.push(FieldError::invalid(field, name, msg));
        return;
    }
    if name.contains('/') {
        return;
    }
    if !is_standard_resource(name) {
        errs.push(FieldError::invalid(
            field,
            name,
            "must be a standard resource type or fully qualified",
        ));
    } else if !STANDARD_QUOTA_RESOURCES.contains(&name) && !is_huge_pages(name) {
        errs.push(FieldError::invalid(
            field,
            name,
            "must be a standard resource for quota",
        ));
    }
}

/// `ValidateResourceQuantityValue`: an amount quota can count, not negative, whole for counts.
fn quantity_value(errs: &mut Vec<FieldError>, name: &str, q: &Quantity, field: &str) {
    let parsed = match ParsedQuantity::parse(&q.0) {
        Ok(parsed) => parsed,
        Err(e) => return errs.push(FieldError::invalid(field, &q.0, e.to_string())),
    };
    if parsed.is_negative() {
        errs.push(FieldError::invalid(field, parsed, NEGATIVE_MSG));
    }
    if is_integer_resource(name) && parsed.nanos() % 1_000_000_000 != 0 {
        errs.push(FieldError::invalid(field, parsed, "must be an integer"));
    }
}

/// The names and amounts of a resource list at `path` (`spec.hard`, `status.used`).
fn resource_list(
    errs: &mut Vec<FieldError>,
    list: Option<&BTreeMap<String, Quantity>>,
    path: &str,
) {
    for (name, q) in list.into_iter().flatten() {
        let field = format!("{path}[{name}]");
        resource_name(errs, name, &field);
        quantity_value(errs, name, q, &field);
    }
}

/// Conflicting pairs of scopes.
const CONFLICTING_SCOPES: &[(&str, &str)] = &[
    ("BestEffort", "NotBestEffort"),
    ("Terminating", "NotTerminating"),
];

fn conflicting(scopes: &BTreeSet<&str>) -> bool {
    CONFLICTING_SCOPES
        .iter()
        .any(|(a, b)| scopes.contains(a) && scopes.contains(b))
}

/// `validateResourceQuotaScopes` and `validateScopeSelector`.
fn scopes(errs: &mut Vec<FieldError>, spec: &ResourceQuotaSpec) {
    let hard: Vec<&str> = spec
        .hard
        .iter()
        .flatten()
        .map(|(name, _)| name.as_str())
        .collect();
    let limits_other_resources = |scope: &str| {
        hard.iter().any(|name| {
            STANDARD_QUOTA_RESOURCES.contains(name) && !scope_fits_resource(scope, name)
        })
    };
    let listed = spec.scopes.as_deref().unwrap_or_default();
    if !listed.is_empty() {
        let value = go_scopes(listed);
        let mut seen = BTreeSet::new();
        for scope in listed {
            if !SCOPES.contains(&scope.as_str()) {
                errs.push(FieldError::invalid(
                    "spec.scopes",
                    &value,
                    "unsupported scope",
                ));
            }
            if limits_other_resources(scope) {
                errs.push(FieldError::invalid(
                    "spec.scopes",
                    &value,
                    "unsupported scope applied to resource",
                ));
            }
            seen.insert(scope.as_str());
        }
        if conflicting(&seen) {
            errs.push(FieldError::invalid(
                "spec.scopes",
                &value,
                "conflicting scopes",
            ));
        }
    }
    let Some(selector) = &spec.scope_selector else {
        return;
    };
    let path = "spec.scopeSelector.matchExpressions";
    let mut seen = BTreeSet::new();
    for requirement in selector.match_expressions.iter().flatten() {
        let scope = requirement.scope_name.as_str();
        if !SCOPES.contains(&scope) {
            errs.push(FieldError::invalid(
                format!("{path}.scopeName"),
                scope,
                "unsupported scope",
            ));
        }
        if limits_other_resources(scope) {
            errs.push(FieldError::invalid(
                path,
                scope,
                "unsupported scope applied to resource",
            ));
        }
        let operator = requirement.operator.as_str();
        if matches!(
            scope,
            "BestEffort" | "NotBestEffort" | "Terminating" | "NotTerminating"
        ) && operator != "Exists"
        {
            errs.push(FieldError::invalid(
                format!("{path}.operator"),
                operator,
                "must be 'Exist' only operator when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort and ResourceQuotaScopeNotBestEffort",
            ));
        }
        let values = requirement.values.as_deref().unwrap_or_default();
        match operator {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                format!("{path}.values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::invalid(
                format!("{path}.values"),
                super::go_string_slice(values),
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{path}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        seen.insert(scope);
    }
    if conflicting(&seen) {
        errs.push(FieldError::invalid(
            path,
            go_scopes(listed),
            "conflicting scopes",
        ));
    }
}

/// A ResourceQuota: metadata (DNS-1123 subdomain name, namespaced), `spec.hard`, its scopes,
/// and `status.hard` / `status.used`.
pub fn resource_quota(quota: &ResourceQuota) -> Vec<FieldError> {
    let mut errs = object_meta(&quota.metadata, true, NameRule::Dns1123Subdomain);
    if let Some(spec) = &quota.spec {
        resource_list(&mut errs, spec.hard.as_ref(), "spec.hard");
        scopes(&mut errs, spec);
    }
    if let Some(status) = &quota.status {
        resource_list(&mut errs, status.hard.as_ref(), "status.hard");
        resource_list(&mut errs, status.used.as_ref(), "status.used");
    }
    errs
}

/// A ResourceQuota update (`ValidateResourceQuotaUpdate`): the metadata rules, and the scopes
/// stay as they are.
pub fn resource_quota_update(old: &ResourceQuota, new: &ResourceQuota) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    let scopes = |q: &ResourceQuota| -> BTreeSet<String> {
        q.spec
            .as_ref()
            .and_then(|s| s.scopes.clone())
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    if scopes(old) != scopes(new) {
        let listed = new
            .spec
            .as_ref()
            .and_then(|s| s.scopes.clone())
            .unwrap_or_default();
        errs.push(FieldError::invalid(
            "spec.scopes",
            go_scopes(&listed),
            IMMUTABLE_MSG,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{fields, from, only};
    use super::*;

    fn quota(spec: serde_json::Value) -> ResourceQuota {
        from(json!({"metadata": {"name": "q", "namespace": "default"}, "spec": spec}))
    }

    #[test]
    fn valid_quotas_have_no_errors() {
        let q = quota(json!({"hard": {
            "pods": "10", "requests.cpu": "1500m", "limits.memory": "2Gi", "services": "5",
            "count/deployments.apps": "3", "requests.example.com/gpu": "1",
            "hugepages-2Mi": "1Gi"}}));
        assert_eq!(resource_quota(&q), []);
        let scoped = quota(
            json!({"hard": {"pods": "2", "cpu": "1"}, "scopes": ["NotBestEffort"],
            "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}),
        );
        assert_eq!(resource_quota(&scoped), []);
    }

    #[test]
    fn names_must_be_quota_resources() {
        let errs = resource_quota(&quota(json!({"hard": {
            "widgets": "1", "storage": "1Gi", "bad name/x": "1"}})));
        assert_eq!(
            only(&errs, "spec.hard[widgets]").to_string(),
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource type or fully qualified"
        );
        assert_eq!(
            only(&errs, "spec.hard[storage]").detail,
            "must be a standard resource for quota"
        );
        assert_eq!(fields(&errs).len(), 3);
    }

    #[test]
    fn amounts_are_not_negative_and_counts_are_whole() {
        let errs = resource_quota(&quota(json!({"hard": {
            "pods": "1500m", "cpu": "-1", "count/pods": "0.5", "memory": "lots",
            "secrets": "1e40"}})));
        assert_eq!(
            only(&errs, "spec.hard[pods]").to_string(),
            "spec.hard[pods]: Invalid value: \"1500m\": must be an integer"
        );
        assert_eq!(
            only(&errs, "spec.hard[cpu]").to_string(),
            "spec.hard[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
        );
        assert_eq!(
            only(&errs, "spec.hard[count/pods]").detail,
            "must be an integer"
        );
        assert!(
            only(&errs, "spec.hard[memory]")
                .detail
                .starts_with("quantities must match")
        );
        assert_eq!(
            only(&errs, "spec.hard[secrets]").detail,
            "must be no more than 1e27 in magnitude"
        );
    }

    #[test]
    fn scopes_must_be_known_fit_the_resources_and_not_conflict() {
        let errs = resource_quota(&quota(json!({"hard": {"secrets": "1"},
            "scopes": ["BestEffort", "NotBestEffort", "Sometimes"]})));
        let details: Vec<&str> = errs.iter().map(|e| e.detail.as_str()).collect();
        assert!(details.contains(&"unsupported scope"), "{errs:?}");
        assert!(details.contains(&"unsupported scope applied to resource"));
        assert!(details.contains(&"conflicting scopes"));
        assert_eq!(
            errs[0].to_string().split(": ").nth(2),
            Some("\"[]core.ResourceQuotaScope{\"BestEffort\", \"NotBestEffort\", \"Sometimes\"}\"")
        );
        let errs = resource_quota(&quota(json!({"hard": {"pods": "1"},
            "scopeSelector": {"matchExpressions": [
                {"scopeName": "BestEffort", "operator": "In", "values": ["x"]},
                {"scopeName": "PriorityClass", "operator": "NotIn"},
                {"scopeName": "PriorityClass", "operator": "Exists", "values": ["x"]},
                {"scopeName": "PriorityClass", "operator": "Near"}]}})));
        assert_eq!(
            fields(&errs),
            [
                "spec.scopeSelector.matchExpressions.operator",
                "spec.scopeSelector.matchExpressions.values",
                "spec.scopeSelector.matchExpressions.values",
                "spec.scopeSelector.matchExpressions.operator",
            ]
        );
    }

    #[test]
    fn status_lists_are_checked_and_scopes_are_immutable() {
        let mut q = quota(json!({"hard": {"pods": "1"}}));
        q.status = Some(from(json!({"hard": {"pods": "1"}, "used": {"pods": "-1"}})));
        assert_eq!(fields(&resource_quota(&q)), ["status.used[pods]"]);
        let old = quota(json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}));
        let new = quota(json!({"hard": {"pods": "2"}, "scopes": ["NotBestEffort"]}));
        assert_eq!(
            only(&resource_quota_update(&old, &new), "spec.scopes").detail,
            "field is immutable"
        );
        assert_eq!(resource_quota_update(&old, &old), []);
    }
}
