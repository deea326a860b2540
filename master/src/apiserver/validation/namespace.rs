//! Namespaces: a DNS-1123 label name, standard or qualified finalizers, and Pod Security
//! labels that name a level and a version.

use k8s_openapi::api::core::v1::Namespace;

use skiff_api::names::NameRule;

use crate::apiserver::field_error::FieldError;

use super::metadata::{finalizers, object_meta};

/// A Namespace: DNS-1123 label name, not namespaced, finalizers standard or qualified.
pub fn namespace(ns: &Namespace) -> Vec<FieldError> {
    let mut errs = object_meta(&ns.metadata, false, NameRule::Dns1123Label);
    let spec_finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_deref())
        .unwrap_or_default();
    finalizers(&mut errs, "spec.finalizers", spec_finalizers);
    if let Some(labels) = &ns.metadata.labels {
        errs.extend(crate::apiserver::pod_security::validate_labels(labels));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{fields, from, only};
    use super::*;

    #[test]
    fn namespace_rules() {
        let ns: Namespace =
            from(json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["kubernetes"]}}));
        assert_eq!(namespace(&ns), vec![]);
        let dotted: Namespace = from(json!({"metadata": {"name": "team.a"}}));
        assert_eq!(
            only(&namespace(&dotted), "metadata.name").detail,
            "must not contain dots"
        );
        let bad: Namespace = from(
            json!({"metadata": {"name": "Team_A", "namespace": "x"}, "spec": {"finalizers": ["custom"]}}),
        );
        assert_eq!(
            fields(&namespace(&bad)),
            ["metadata.name", "metadata.namespace", "spec.finalizers"]
        );
    }
}
