//! `metadata` of every kind (Kubernetes' `ValidateObjectMeta`): names, namespace, labels,
//! annotations, owner references and finalizers, and what may change on update.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use skiff_api::names::{NameRule, is_dns1123_label};
use skiff_api::selectors;

use crate::apiserver::field_error::FieldError;

use super::{IMMUTABLE_MSG, TOTAL_ANNOTATION_SIZE_LIMIT, go_string_slice, nonnegative, push_all};

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

/// Kubernetes' `ValidateLabels`: every key a qualified name, every value a label value.
pub fn labels(labels: Option<&BTreeMap<String, String>>, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        if let Err(msg) = selectors::validate_label_key(k) {
            errs.push(FieldError::invalid(field, k, msg));
        }
        if let Err(msg) = selectors::validate_label_value(v) {
            errs.push(FieldError::invalid(field, v, msg));
        }
    }
    errs
}

/// Kubernetes' `ValidateAnnotations`: keys are qualified names (any case), total size of keys
/// and values at most 256 KiB.
pub fn annotations(annotations: Option<&BTreeMap<String, String>>, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations.into_iter().flatten() {
        if let Err(msg) = selectors::validate_label_key(&k.to_lowercase()) {
            errs.push(FieldError::invalid(field, k, msg));
        }
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Replace a trailing `-` of a generateName so the prefix checks as a name would.
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => format!("{rest}a"),
        _ => name.to_string(),
    }
}

/// Finalizers Kubernetes itself knows, allowed without a domain prefix.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

pub(super) fn finalizers(errs: &mut Vec<FieldError>, field: &str, names: &[String]) {
    for name in names {
        if let Err(msg) = selectors::validate_label_key(name) {
            errs.push(FieldError::invalid(field, name, msg));
        } else if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name.as_str()) {
            errs.push(FieldError::invalid(
                field,
                name,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    let has = |f: &str| names.iter().any(|n| n == f);
    if has("orphan") && has("foregroundDeletion") {
        errs.push(FieldError::invalid(
            field,
            go_string_slice(names),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

fn owner_references(errs: &mut Vec<FieldError>, refs: &[OwnerReference]) {
    let field = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    for r in refs {
        // apiVersion is `group/version` or `version`; more slashes do not parse.
        let version = match r.api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] | [_, v] => *v,
            _ => "",
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.apiVersion"),
                &r.api_version,
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.kind"),
                &r.kind,
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.name"),
                &r.name,
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.uid"),
                &r.uid,
                "uid must not be empty",
            ));
        }
        if r.controller == Some(true) {
            let this = format!("{}/{}", r.kind, r.name);
            match &controller {
                Some(first) => errs.push(FieldError::invalid(
                    field,
                    format!("{} references", refs.len()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => controller = Some(this),
            }
        }
    }
}

/// Kubernetes' `ValidateObjectMeta` under `metadata`: name (or generateName) by `name_rule`,
/// namespace required for namespaced kinds and forbidden otherwise, labels, annotations,
/// owner references and finalizers.
pub fn object_meta(meta: &ObjectMeta, namespaced: bool, name_rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = meta.name.as_deref().unwrap_or("");
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        let msgs = name_rule.check(&mask_trailing_dash(generate_name));
        push_all(&mut errs, "metadata.generateName", generate_name, msgs);
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        push_all(&mut errs, "metadata.name", name, name_rule.check(name));
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            push_all(
                &mut errs,
                "metadata.namespace",
                namespace,
                is_dns1123_label(namespace),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    nonnegative(&mut errs, "metadata.generation", meta.generation);
    errs.extend(labels(meta.labels.as_ref(), "metadata.labels"));
    errs.extend(annotations(
        meta.annotations.as_ref(),
        "metadata.annotations",
    ));
    owner_references(
        &mut errs,
        meta.owner_references.as_deref().unwrap_or_default(),
    );
    finalizers(
        &mut errs,
        "metadata.finalizers",
        meta.finalizers.as_deref().unwrap_or_default(),
    );
    errs
}

/// Kubernetes' `ValidateObjectMetaUpdate`: name and namespace never change, nor a uid the
/// client sent (an empty one means "keep"), and the generation never goes back.
pub fn object_meta_update(old: &ObjectMeta, new: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    for (field, o, n) in [
        ("metadata.name", s(&old.name), s(&new.name)),
        ("metadata.namespace", s(&old.namespace), s(&new.namespace)),
    ] {
        if o != n {
            errs.push(FieldError::invalid(field, n, IMMUTABLE_MSG));
        }
    }
    let new_uid = s(&new.uid);
    if !new_uid.is_empty() && new_uid != s(&old.uid) {
        errs.push(FieldError::invalid("metadata.uid", new_uid, IMMUTABLE_MSG));
    }
    if let (Some(o), Some(n)) = (old.generation, new.generation)
        && n < o
    {
        errs.push(FieldError::invalid(
            "metadata.generation",
            n,
            "must not be decremented",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{fields, from, only};
    use super::*;
    use crate::apiserver::field_error::FieldErrorKind;

    #[test]
    fn object_meta_name_rules() {
        let meta: ObjectMeta = from(json!({"name": "My_Pod", "namespace": "default"}));
        let errs = object_meta(&meta, true, NameRule::Dns1123Subdomain);
        let e = only(&errs, "metadata.name");
        assert_eq!(e.kind, FieldErrorKind::Invalid("My_Pod".into()));
        assert!(e.to_string().starts_with(
            "metadata.name: Invalid value: \"My_Pod\": a lowercase RFC 1123 subdomain"
        ));

        let nameless: ObjectMeta = from(json!({"namespace": "default"}));
        let errs = object_meta(&nameless, true, NameRule::Dns1123Subdomain);
        assert_eq!(
            only(&errs, "metadata.name").to_string(),
            "metadata.name: Required value: name or generateName is required"
        );

        let generated: ObjectMeta = from(json!({"generateName": "web-", "namespace": "default"}));
        assert!(object_meta(&generated, true, NameRule::Dns1123Subdomain).is_empty());
        let bad_generated: ObjectMeta =
            from(json!({"generateName": "Web-", "namespace": "default"}));
        assert_eq!(
            fields(&object_meta(
                &bad_generated,
                true,
                NameRule::Dns1123Subdomain
            )),
            ["metadata.generateName"]
        );
    }

    #[test]
    fn object_meta_namespace_scope() {
        let no_ns: ObjectMeta = from(json!({"name": "web"}));
        let errs = object_meta(&no_ns, true, NameRule::Dns1123Subdomain);
        assert_eq!(
            only(&errs, "metadata.namespace").kind,
            FieldErrorKind::Required
        );
        assert!(object_meta(&no_ns, false, NameRule::Dns1123Subdomain).is_empty());

        let with_ns: ObjectMeta = from(json!({"name": "node-1", "namespace": "default"}));
        let errs = object_meta(&with_ns, false, NameRule::Dns1123Subdomain);
        assert_eq!(
            only(&errs, "metadata.namespace").to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );

        let bad_ns: ObjectMeta = from(json!({"name": "web", "namespace": "Bad_NS"}));
        assert_eq!(
            fields(&object_meta(&bad_ns, true, NameRule::Dns1123Subdomain)),
            ["metadata.namespace"]
        );
    }

    #[test]
    fn object_meta_labels_annotations_finalizers_owners() {
        let meta: ObjectMeta = from(json!({
            "name": "web", "namespace": "default",
            "labels": {"app": "web", "bad key": "x", "ok": "bad value!"},
            "annotations": {"example.com/Note": "anything at all", "bad key": "x"},
            "finalizers": ["example.com/cleanup", "kubernetes", "custom"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "", "uid": "u1"}]
        }));
        let errs = object_meta(&meta, true, NameRule::Dns1123Subdomain);
        let labels: Vec<_> = errs
            .iter()
            .filter(|e| e.field == "metadata.labels")
            .collect();
        assert_eq!(labels.len(), 2, "{errs:#?}");
        assert!(
            labels
                .iter()
                .any(|e| e.kind == FieldErrorKind::Invalid("bad key".into()))
        );
        assert!(
            labels
                .iter()
                .any(|e| e.kind == FieldErrorKind::Invalid("bad value!".into()))
        );
        assert_eq!(
            only(&errs, "metadata.annotations").kind,
            FieldErrorKind::Invalid("bad key".into())
        );
        assert_eq!(
            only(&errs, "metadata.finalizers").detail,
            "name is neither a standard finalizer name nor is it fully qualified"
        );
        assert_eq!(
            only(&errs, "metadata.ownerReferences.name").detail,
            "name must not be empty"
        );
    }

    #[test]
    fn annotations_total_size_is_limited() {
        let big = BTreeMap::from([("a".to_string(), "x".repeat(256 * 1024))]);
        let errs = annotations(Some(&big), "metadata.annotations");
        assert_eq!(
            errs,
            vec![FieldError::too_long("metadata.annotations", 262_144)]
        );
        let fits = BTreeMap::from([("a".to_string(), "x".repeat(256 * 1024 - 1))]);
        assert!(annotations(Some(&fits), "metadata.annotations").is_empty());
    }

    #[test]
    fn object_meta_update_keeps_identity() {
        let old: ObjectMeta =
            from(json!({"name": "web", "namespace": "default", "uid": "u1", "generation": 2}));
        let same_without_uid: ObjectMeta =
            from(json!({"name": "web", "namespace": "default", "generation": 2}));
        assert!(object_meta_update(&old, &same_without_uid).is_empty());
        let renamed: ObjectMeta =
            from(json!({"name": "web2", "namespace": "default", "uid": "u2", "generation": 1}));
        let errs = object_meta_update(&old, &renamed);
        assert_eq!(
            fields(&errs),
            ["metadata.name", "metadata.uid", "metadata.generation"]
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Invalid value: \"web2\": field is immutable"
        );
    }
}
