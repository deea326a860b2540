//! rbac.authorization.k8s.io/v1: Roles, ClusterRoles and their bindings, as Kubernetes'
//! `pkg/apis/rbac/validation` checks them. Names are path segments (`system:node` is a valid
//! role name); verbs are not checked against a list (roles may grant custom verbs such as
//! `bind`, `escalate`, `impersonate` or `approve`).

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
    Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_api::names::{NameRule, is_dns1123_subdomain, is_path_segment_name};

use super::{go_string_slice, labels, object_meta, object_meta_update};
use crate::apiserver::field_error::FieldError;

const GROUP: &str = "rbac.authorization.k8s.io";

fn meta(metadata: &ObjectMeta, namespaced: bool) -> Vec<FieldError> {
    object_meta(metadata, namespaced, NameRule::PathSegment)
}

/// Kubernetes' `ValidatePolicyRule`.
fn policy_rule(rule: &PolicyRule, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if rule.verbs.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    if !urls.is_empty() {
        if namespaced {
            errs.push(FieldError::invalid_unquoted(
                format!("{path}.nonResourceURLs"),
                go_string_slice(urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
            errs.push(FieldError::invalid_unquoted(
                format!("{path}.nonResourceURLs"),
                go_string_slice(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if groups.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if resources.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
    errs
}

fn rules(rules: Option<&Vec<PolicyRule>>, namespaced: bool) -> Vec<FieldError> {
    rules
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, rule)| policy_rule(rule, namespaced, &format!("rules[{i}]")))
        .collect()
}

/// A Role.
pub fn role(role: &Role) -> Vec<FieldError> {
    let mut errs = meta(&role.metadata, true);
    errs.extend(rules(role.rules.as_ref(), true));
    errs
}

/// A ClusterRole (its rules may name non-resource URLs).
pub fn cluster_role(role: &ClusterRole) -> Vec<FieldError> {
    let mut errs = meta(&role.metadata, false);
    errs.extend(rules(role.rules.as_ref(), false));
    if let Some(rule) = &role.aggregation_rule {
        errs.extend(aggregation_rule(rule));
    }
    errs
}

fn aggregation_rule(rule: &AggregationRule) -> Vec<FieldError> {
    let selectors = rule.cluster_role_selectors.as_deref().unwrap_or_default();
    if selectors.is_empty() {
        return vec![FieldError::required(
            "aggregationRule.clusterRoleSelectors",
            "at least one clusterRoleSelector required if aggregationRule is non-nil",
        )];
    }
    selectors
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            labels(
                s.match_labels.as_ref(),
                &format!("aggregationRule.clusterRoleSelectors[{i}].matchLabels"),
            )
        })
        .collect()
}

fn role_ref(role_ref: &RoleRef, kinds: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if role_ref.api_group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &role_ref.api_group,
            &[GROUP],
        ));
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            &role_ref.kind,
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in is_path_segment_name(&role_ref.name) {
            errs.push(FieldError::invalid("roleRef.name", &role_ref.name, msg));
        }
    }
    errs
}

/// Kubernetes' `ValidateRoleBindingSubject`.
fn subject(subject: &Subject, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if subject.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    let group = subject.api_group.as_deref().unwrap_or("");
    match subject.kind.as_str() {
        "ServiceAccount" => {
            if !subject.name.is_empty() {
                for msg in is_dns1123_subdomain(&subject.name) {
                    errs.push(FieldError::invalid(
                        format!("{path}.name"),
                        &subject.name,
                        msg,
                    ));
                }
            }
            if !group.is_empty() {
                errs.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    group,
                    &[""],
                ));
            }
            if !namespaced && subject.namespace.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(format!("{path}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                errs.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    group,
                    &[GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

fn subjects(subjects: Option<&Vec<Subject>>, namespaced: bool) -> Vec<FieldError> {
    subjects
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, s)| subject(s, namespaced, &format!("subjects[{i}]")))
        .collect()
}

/// A RoleBinding (of a Role or a ClusterRole).
pub fn role_binding(binding: &RoleBinding) -> Vec<FieldError> {
    let mut errs = meta(&binding.metadata, true);
    errs.extend(role_ref(&binding.role_ref, &["Role", "ClusterRole"]));
    errs.extend(subjects(binding.subjects.as_ref(), true));
    errs
}

/// A ClusterRoleBinding (of a ClusterRole).
pub fn cluster_role_binding(binding: &ClusterRoleBinding) -> Vec<FieldError> {
    let mut errs = meta(&binding.metadata, false);
    errs.extend(role_ref(&binding.role_ref, &["ClusterRole"]));
    errs.extend(subjects(binding.subjects.as_ref(), false));
    errs
}

fn role_ref_unchanged(old: &RoleRef, new: &RoleRef) -> Option<FieldError> {
    (old != new).then(|| {
        FieldError::invalid_unquoted(
            "roleRef",
            format!(
                "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
                new.api_group, new.kind, new.name
            ),
            "cannot change roleRef",
        )
    })
}

/// RoleBinding update rules: the roleRef is immutable.
pub fn role_binding_update(old: &RoleBinding, new: &RoleBinding) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    errs.extend(role_ref_unchanged(&old.role_ref, &new.role_ref));
    errs
}

/// ClusterRoleBinding update rules: the roleRef is immutable.
pub fn cluster_role_binding_update(
    old: &ClusterRoleBinding,
    new: &ClusterRoleBinding,
) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    errs.extend(role_ref_unchanged(&old.role_ref, &new.role_ref));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message()))
            .collect()
    }

    #[test]
    fn rules_need_verbs_groups_and_resources_and_urls_only_cluster_wide() {
        let bad: Role = from(
            json!({"metadata": {"name": "r", "namespace": "ns"}, "rules": [
                {"verbs": [], "resources": ["pods"]},
                {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
            ]}),
        );
        assert_eq!(
            messages(&role(&bad)),
            [
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
            ]
        );
        let mixed: ClusterRole = from(json!({"metadata": {"name": "system:x"}, "rules": [
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "nonResourceURLs": ["/x"]},
        ]}));
        assert_eq!(
            messages(&cluster_role(&mixed)),
            [
                "rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: rules cannot apply to both regular resources and non-resource URLs"
            ]
        );
    }

    #[test]
    fn bindings_name_a_role_of_the_rbac_group_and_known_subjects() {
        let bad: ClusterRoleBinding = from(json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac", "kind": "Role", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "r"}]}));
        assert_eq!(
            messages(&cluster_role_binding(&bad)),
            [
                "roleRef.apiGroup: Unsupported value: \"rbac\": supported values: \"rbac.authorization.k8s.io\"",
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
                "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ]
        );
        let good: RoleBinding = from(json!({"metadata": {"name": "b", "namespace": "ns"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "User", "apiGroup": GROUP, "name": "jane"}]}));
        assert_eq!(messages(&role_binding(&good)), Vec::<String>::new());
        let mut moved = good.clone();
        moved.role_ref.name = "edit".into();
        assert_eq!(
            messages(&role_binding_update(&good, &moved)),
            [
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
            ]
        );
    }
}
