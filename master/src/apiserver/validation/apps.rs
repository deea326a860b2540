//! The replicated-pod controllers' kinds: ReplicaSet, Deployment and DaemonSet (`apps/v1`) and
//! ReplicationController, their core/v1 forerunner, checked by the same rules (replicas,
//! selector against template labels, a template whose pods restart Always), and the
//! ControllerRevisions that keep a DaemonSet's history.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy,
    ReplicaSet, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use skiff_api::names::NameRule;
use skiff_api::selectors;

use crate::apiserver::field_error::FieldError;

use super::metadata::{labels, object_meta, object_meta_update};
use super::pod::pod_template_spec;
use super::{IMMUTABLE_MSG, NEGATIVE_MSG, go_label_selector, go_string_map, nonnegative};

fn replicas_and_min_ready(
    errs: &mut Vec<FieldError>,
    replicas: Option<i32>,
    min_ready: Option<i32>,
) {
    nonnegative(errs, "spec.replicas", replicas);
    nonnegative(errs, "spec.minReadySeconds", min_ready);
}

/// The checks Kubernetes makes on a controller's template: the selector matches the template
/// labels, the pod spec is valid, `restartPolicy` is Always and there is no
/// `activeDeadlineSeconds`.
fn controller_template(
    errs: &mut Vec<FieldError>,
    template: &PodTemplateSpec,
    selector_matches: Option<bool>,
    kind: &str,
) {
    let template_labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if selector_matches == Some(false) {
        errs.push(FieldError::invalid_unquoted(
            "spec.template.metadata.labels",
            go_string_map(template_labels),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(pod_template_spec(template, "spec.template"));
    let spec = template.spec.as_ref();
    let restart = spec.and_then(|s| s.restart_policy.as_deref());
    if let Some(policy) = restart
        && policy != "Always"
    {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if spec.is_some_and(|s| s.active_deadline_seconds.is_some()) {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// Validate an apps/v1 selector under `spec.selector`; `Some(matches)` tells whether it
/// selects `template_labels` (`None` when it is empty or does not parse).
pub(super) fn apps_selector(
    errs: &mut Vec<FieldError>,
    selector: &LabelSelector,
    template_labels: Option<&BTreeMap<String, String>>,
) -> Option<bool> {
    selector_of(errs, selector, template_labels, "deployment")
}

/// [`apps_selector`] for a kind whose empty-selector message names it (`daemonset`).
fn selector_of(
    errs: &mut Vec<FieldError>,
    selector: &LabelSelector,
    template_labels: Option<&BTreeMap<String, String>>,
    kind: &str,
) -> Option<bool> {
    let before = errs.len();
    errs.extend(labels(
        selector.match_labels.as_ref(),
        "spec.selector.matchLabels",
    ));
    let exprs = selector.match_expressions.as_deref().unwrap_or_default();
    for (i, req) in exprs.iter().enumerate() {
        let p = format!("spec.selector.matchExpressions[{i}]");
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
        if let Err(msg) = selectors::validate_label_key(&req.key) {
            errs.push(FieldError::invalid(format!("{p}.key"), &req.key, msg));
        }
        for v in values {
            if let Err(msg) = selectors::validate_label_value(v) {
                errs.push(FieldError::invalid(format!("{p}.values"), v, msg));
            }
        }
    }
    let empty = selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && exprs.is_empty();
    if empty {
        errs.push(FieldError::invalid_unquoted(
            "spec.selector",
            go_label_selector(selector),
            format!("empty selector is invalid for {kind}"),
        ));
        return None;
    }
    match selectors::LabelSelector::from_api(selector) {
        Ok(parsed) => Some(parsed.matches(template_labels.unwrap_or(&BTreeMap::new()))),
        Err(_) => {
            if errs.len() == before {
                errs.push(FieldError::invalid_unquoted(
                    "spec.selector",
                    go_label_selector(selector),
                    "invalid label selector",
                ));
            }
            None
        }
    }
}

/// A ReplicationController: replicas >= 0, a non-empty selector that matches the template
/// labels, and a template whose pods restart Always.
pub fn replication_controller(rc: &ReplicationController) -> Vec<FieldError> {
    let mut errs = object_meta(&rc.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = rc.spec.as_ref().unwrap_or(&default_spec);
    replicas_and_min_ready(&mut errs, spec.replicas, spec.min_ready_seconds);
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => errs.extend(labels(Some(sel), "spec.selector")),
    }
    match &spec.template {
        None => errs.push(FieldError::required("spec.template", "")),
        Some(template) => {
            let template_labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
            let matches = selector.map(|sel| {
                sel.iter()
                    .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v))
            });
            controller_template(&mut errs, template, matches, "ReplicationController");
        }
    }
    errs
}

/// ReplicationController update rules: those of the metadata (the selector may change).
pub fn replication_controller_update(
    old: &ReplicationController,
    new: &ReplicationController,
) -> Vec<FieldError> {
    object_meta_update(&old.metadata, &new.metadata)
}

/// A ReplicaSet: replicas >= 0, a required non-empty selector that matches the template
/// labels, and a template whose pods restart Always.
pub fn replica_set(rs: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = object_meta(&rs.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = rs.spec.as_ref().unwrap_or(&default_spec);
    replicas_and_min_ready(&mut errs, spec.replicas, spec.min_ready_seconds);
    let default_template = PodTemplateSpec::default();
    let template = spec.template.as_ref().unwrap_or(&default_template);
    let template_labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let matches = apps_selector(&mut errs, &spec.selector, template_labels);
    controller_template(&mut errs, template, matches, "ReplicaSet");
    errs
}

pub(super) fn selector_immutable(
    errs: &mut Vec<FieldError>,
    old: &LabelSelector,
    new: &LabelSelector,
) {
    // nil and empty mean the same selector.
    let norm = |s: &LabelSelector| {
        (
            s.match_labels.clone().unwrap_or_default(),
            s.match_expressions.clone().unwrap_or_default(),
        )
    };
    if norm(old) != norm(new) {
        errs.push(FieldError::invalid_unquoted(
            "spec.selector",
            go_label_selector(new),
            IMMUTABLE_MSG,
        ));
    }
}

/// ReplicaSet update rules (apps/v1): metadata, and `spec.selector` is immutable.
pub fn replica_set_update(old: &ReplicaSet, new: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    if let (Some(o), Some(n)) = (&old.spec, &new.spec) {
        selector_immutable(&mut errs, &o.selector, &n.selector);
    }
    errs
}

/// Kubernetes' `ValidatePositiveIntOrPercent`; returns the value (a percentage as its number).
pub(super) fn int_or_percent(
    errs: &mut Vec<FieldError>,
    field: &str,
    value: Option<&IntOrString>,
) -> Option<(i64, bool)> {
    match value? {
        IntOrString::Int(n) => {
            if *n < 0 {
                errs.push(FieldError::invalid(field, n, NEGATIVE_MSG));
            }
            Some((i64::from(*n), false))
        }
        IntOrString::String(s) => {
            let percent = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
            match percent.and_then(|d| d.parse::<i64>().ok()) {
                Some(p) => Some((p, true)),
                None => {
                    errs.push(FieldError::invalid(
                        field,
                        s,
                        "must be an integer or percentage (e.g '5%')",
                    ));
                    None
                }
            }
        }
    }
}

fn deployment_strategy(errs: &mut Vec<FieldError>, strategy: Option<&DeploymentStrategy>) {
    let Some(strategy) = strategy else { return };
    match strategy.type_.as_deref() {
        None | Some("RollingUpdate") => {
            let Some(ru) = &strategy.rolling_update else {
                return;
            };
            let unavailable = int_or_percent(
                errs,
                "spec.strategy.rollingUpdate.maxUnavailable",
                ru.max_unavailable.as_ref(),
            );
            let surge = int_or_percent(
                errs,
                "spec.strategy.rollingUpdate.maxSurge",
                ru.max_surge.as_ref(),
            );
            if let (Some((0, _)), Some((0, _))) = (unavailable, surge) {
                let value = match &ru.max_unavailable {
                    Some(IntOrString::String(s)) => s.clone(),
                    _ => "0".to_string(),
                };
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    value,
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            if let Some((p, true)) = unavailable
                && p > 100
            {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    format!("{p}%"),
                    "must not be greater than 100%",
                ));
            }
        }
        Some("Recreate") => {
            if strategy.rolling_update.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        Some(other) => {
            errs.push(FieldError::not_supported(
                "spec.strategy.type",
                other,
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

/// A Deployment: replicas >= 0, a required non-empty selector that matches the template
/// labels, a template whose pods restart Always, a valid strategy and limits.
pub fn deployment(d: &Deployment) -> Vec<FieldError> {
    let mut errs = object_meta(&d.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = d.spec.as_ref().unwrap_or(&default_spec);
    replicas_and_min_ready(&mut errs, spec.replicas, spec.min_ready_seconds);
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    let matches = apps_selector(&mut errs, &spec.selector, template_labels);
    controller_template(&mut errs, &spec.template, matches, "ReplicaSet");
    deployment_strategy(&mut errs, spec.strategy.as_ref());
    nonnegative(
        &mut errs,
        "spec.revisionHistoryLimit",
        spec.revision_history_limit,
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        nonnegative(&mut errs, "spec.progressDeadlineSeconds", Some(deadline));
        if deadline <= spec.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// Deployment update rules (apps/v1): metadata, and `spec.selector` is immutable.
pub fn deployment_update(old: &Deployment, new: &Deployment) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    if let (Some(o), Some(n)) = (&old.spec, &new.spec) {
        selector_immutable(&mut errs, &o.selector, &n.selector);
    }
    errs
}

/// A DaemonSet: a non-empty selector that matches the template labels, a template whose pods
/// restart Always, non-negative counts and a valid update strategy (Kubernetes'
/// `ValidateDaemonSetSpec`).
pub fn daemon_set(ds: &DaemonSet) -> Vec<FieldError> {
    let mut errs = object_meta(&ds.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = ds.spec.as_ref().unwrap_or(&default_spec);
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    let matches = selector_of(&mut errs, &spec.selector, template_labels, "daemonset");
    controller_template(&mut errs, &spec.template, matches, "DaemonSet");
    nonnegative(&mut errs, "spec.minReadySeconds", spec.min_ready_seconds);
    nonnegative(
        &mut errs,
        "spec.revisionHistoryLimit",
        spec.revision_history_limit,
    );
    daemon_set_update_strategy(&mut errs, spec.update_strategy.as_ref());
    errs
}

/// Kubernetes' `ValidateDaemonSetUpdateStrategy`: RollingUpdate (with exactly one of
/// `maxUnavailable` and `maxSurge` non-zero, neither over 100%) or OnDelete.
fn daemon_set_update_strategy(
    errs: &mut Vec<FieldError>,
    strategy: Option<&DaemonSetUpdateStrategy>,
) {
    let Some(strategy) = strategy else { return };
    match strategy.type_.as_deref() {
        Some("OnDelete") => {}
        Some("RollingUpdate") => {
            let Some(ru) = &strategy.rolling_update else {
                errs.push(FieldError::required(
                    "spec.updateStrategy.rollingUpdate",
                    "",
                ));
                return;
            };
            let path = "spec.updateStrategy.rollingUpdate";
            let unavailable = int_or_percent(
                errs,
                &format!("{path}.maxUnavailable"),
                ru.max_unavailable.as_ref(),
            );
            let surge = int_or_percent(errs, &format!("{path}.maxSurge"), ru.max_surge.as_ref());
            for (field, value) in [("maxUnavailable", unavailable), ("maxSurge", surge)] {
                if let Some((p, true)) = value
                    && p > 100
                {
                    errs.push(FieldError::invalid(
                        format!("{path}.{field}"),
                        format!("{p}%"),
                        "must not be greater than 100%",
                    ));
                }
            }
            let non_zero = |value: Option<(i64, bool)>| value.is_some_and(|(v, _)| v != 0);
            match (non_zero(unavailable), non_zero(surge)) {
                (true, true) => errs.push(FieldError::invalid(
                    format!("{path}.maxSurge"),
                    int_or_string_text(ru.max_surge.as_ref()),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => errs.push(FieldError::required(
                    format!("{path}.maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy",
            other.unwrap_or_default(),
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

/// An int-or-string as Go prints it in a field error.
fn int_or_string_text(value: Option<&IntOrString>) -> String {
    match value {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => String::from("0"),
    }
}

/// DaemonSet update rules (apps/v1): metadata, and `spec.selector` is immutable.
pub fn daemon_set_update(old: &DaemonSet, new: &DaemonSet) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    if let (Some(o), Some(n)) = (&old.spec, &new.spec) {
        selector_immutable(&mut errs, &o.selector, &n.selector);
    }
    errs
}

/// A StatefulSet (Kubernetes' `ValidateStatefulSetSpec`): a pod management policy and update
/// strategy it knows, non-negative counts, a non-empty selector that matches the template
/// labels, a template whose pods restart Always. `volumeClaimTemplates` are refused: skiff
/// serves no PersistentVolumeClaims to bind them to.
pub fn stateful_set(sts: &StatefulSet) -> Vec<FieldError> {
    let mut errs = object_meta(&sts.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = sts.spec.as_ref().unwrap_or(&default_spec);
    match spec.pod_management_policy.as_deref() {
        None => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        Some("OrderedReady" | "Parallel") => {}
        Some(other) => errs.push(FieldError::not_supported(
            "spec.podManagementPolicy",
            other,
            &["OrderedReady", "Parallel"],
        )),
    }
    let strategy = spec.update_strategy.as_ref();
    match strategy.and_then(|s| s.type_.as_deref()) {
        None => errs.push(FieldError::required("spec.updateStrategy", "")),
        Some("OnDelete") => {
            if strategy.is_some_and(|s| s.rolling_update.is_some()) {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    "",
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        Some("RollingUpdate") => {
            let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
            nonnegative(
                &mut errs,
                "spec.updateStrategy.rollingUpdate.partition",
                rolling.and_then(|r| r.partition),
            );
        }
        Some(other) => errs.push(FieldError::not_supported(
            "spec.updateStrategy",
            other,
            &["RollingUpdate", "OnDelete"],
        )),
    }
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        for (field, value) in [
            ("whenDeleted", &policy.when_deleted),
            ("whenScaled", &policy.when_scaled),
        ] {
            if let Some(value) = value.as_deref()
                && !matches!(value, "Retain" | "Delete")
            {
                errs.push(FieldError::not_supported(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                    value,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    if let Some(ordinals) = &spec.ordinals {
        nonnegative(&mut errs, "spec.ordinals.start", ordinals.start);
    }
    replicas_and_min_ready(&mut errs, spec.replicas, spec.min_ready_seconds);
    nonnegative(
        &mut errs,
        "spec.revisionHistoryLimit",
        spec.revision_history_limit,
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    let matches = selector_of(&mut errs, &spec.selector, template_labels, "statefulset");
    controller_template(&mut errs, &spec.template, matches, "StatefulSet");
    if spec
        .volume_claim_templates
        .as_ref()
        .is_some_and(|claims| !claims.is_empty())
    {
        errs.push(FieldError::forbidden(
            "spec.volumeClaimTemplates",
            "this cluster has no PersistentVolumes or PersistentVolumeClaims yet: a StatefulSet cannot claim storage (use emptyDir or hostPath volumes in the template)",
        ));
    }
    errs
}

/// StatefulSet update rules: metadata, and only `replicas`, `ordinals`, `template`,
/// `updateStrategy`, `revisionHistoryLimit`, `persistentVolumeClaimRetentionPolicy` and
/// `minReadySeconds` may change.
pub fn stateful_set_update(old: &StatefulSet, new: &StatefulSet) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    let fixed = |spec: Option<&StatefulSetSpec>| {
        spec.map(|s| StatefulSetSpec {
            replicas: None,
            ordinals: None,
            template: Default::default(),
            update_strategy: None,
            revision_history_limit: None,
            persistent_volume_claim_retention_policy: None,
            min_ready_seconds: None,
            ..s.clone()
        })
    };
    if fixed(old.spec.as_ref()) != fixed(new.spec.as_ref()) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

/// A ControllerRevision: a valid name and a non-negative revision (Kubernetes'
/// `ValidateControllerRevision`).
pub fn controller_revision(revision: &ControllerRevision) -> Vec<FieldError> {
    let mut errs = object_meta(&revision.metadata, true, NameRule::Dns1123Subdomain);
    if revision.data.is_none() {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    if revision.revision < 0 {
        errs.push(FieldError::invalid(
            "revision",
            revision.revision,
            NEGATIVE_MSG,
        ));
    }
    errs
}

/// ControllerRevision update rules: its `data` is immutable.
pub fn controller_revision_update(
    old: &ControllerRevision,
    new: &ControllerRevision,
) -> Vec<FieldError> {
    // The object is validated as on create too; here what an update adds.
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    if old.data != new.data {
        errs.push(FieldError::invalid("data", "", IMMUTABLE_MSG));
    }
    errs
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
    use serde_json::json;

    use super::super::tests::{fields, from, only};
    use super::*;
    use crate::apiserver::field_error::FieldErrorKind;

    fn deployment_json() -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
                }
            }
        })
    }

    #[test]
    fn valid_controllers_have_no_errors() {
        let d: Deployment = from(deployment_json());
        assert_eq!(deployment(&d), vec![]);
        let mut defaulted = d.clone();
        crate::apiserver::defaults::deployment(&mut defaulted);
        assert_eq!(deployment(&defaulted), vec![]);

        let mut rs_json = deployment_json();
        rs_json["kind"] = json!("ReplicaSet");
        let rs: ReplicaSet = from(rs_json);
        assert_eq!(replica_set(&rs), vec![]);

        let rc: ReplicationController = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "replicas": 2,
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }}),
        );
        assert_eq!(
            fields(&replication_controller(&rc)),
            ["spec.selector"],
            "an RC needs a selector before defaults"
        );
        let mut defaulted = rc.clone();
        crate::apiserver::defaults::replication_controller(&mut defaulted);
        assert_eq!(replication_controller(&defaulted), vec![]);
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut json = deployment_json();
        json["spec"]["template"]["metadata"]["labels"] = json!({"app": "api", "tier": "back"});
        let errs = deployment(&from(json));
        let e = only(&errs, "spec.template.metadata.labels");
        assert_eq!(
            e.to_string(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\", \"tier\":\"back\"}: `selector` does not match template `labels`"
        );
        assert_eq!(errs.len(), 1);

        let mut expr = deployment_json();
        expr["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]});
        assert_eq!(deployment(&from(expr)), vec![]);

        let rc: ReplicationController = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }}),
        );
        assert_eq!(
            fields(&replication_controller(&rc)),
            ["spec.template.metadata.labels"]
        );
    }

    #[test]
    fn replicas_must_not_be_negative() {
        let mut json = deployment_json();
        json["spec"]["replicas"] = json!(-1);
        let errs = deployment(&from(json.clone()));
        assert_eq!(
            errs,
            vec![FieldError::invalid_unquoted(
                "spec.replicas",
                -1,
                "must be greater than or equal to 0"
            )]
        );
        assert_eq!(
            errs[0].to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );

        json["kind"] = json!("ReplicaSet");
        assert_eq!(fields(&replica_set(&from(json))), ["spec.replicas"]);
        let rc: ReplicationController = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "replicas": -3, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }}),
        );
        assert_eq!(fields(&replication_controller(&rc)), ["spec.replicas"]);
    }

    #[test]
    fn apps_selector_is_required_and_valid() {
        let mut json = deployment_json();
        json["spec"]["selector"] = json!({});
        let errs = deployment(&from(json.clone()));
        assert_eq!(
            only(&errs, "spec.selector").detail,
            "empty selector is invalid for deployment"
        );
        assert_eq!(errs.len(), 1, "an empty selector skips the label match");

        json["spec"]["selector"] = json!({"matchExpressions": [
            {"key": "app", "operator": "In"},
            {"key": "app", "operator": "Exists", "values": ["x"]},
            {"key": "bad key", "operator": "Near"}
        ]});
        let errs = deployment(&from(json));
        assert_eq!(
            only(&errs, "spec.selector.matchExpressions[0].values").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.selector.matchExpressions[1].values").kind,
            FieldErrorKind::Forbidden
        );
        assert_eq!(
            only(&errs, "spec.selector.matchExpressions[2].operator").kind,
            FieldErrorKind::NotSupported("Near".into())
        );
        assert_eq!(
            only(&errs, "spec.selector.matchExpressions[2].key").kind,
            FieldErrorKind::Invalid("bad key".into())
        );
    }

    #[test]
    fn template_is_validated_under_its_path() {
        let mut json = deployment_json();
        json["spec"]["template"]["spec"] = json!({"restartPolicy": "Never", "activeDeadlineSeconds": 5, "containers": [{"name": "nginx"}]});
        json["spec"]["template"]["metadata"]["labels"]["bad key"] = json!("x");
        json["spec"]["selector"]["matchLabels"] = json!({"app": "web"});
        let errs = deployment(&from(json));
        assert_eq!(
            only(&errs, "spec.template.spec.containers[0].image").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.template.metadata.labels").kind,
            FieldErrorKind::Invalid("bad key".into())
        );
        assert_eq!(
            only(&errs, "spec.template.spec.restartPolicy").to_string(),
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        );
        assert_eq!(
            only(&errs, "spec.template.spec.activeDeadlineSeconds").detail,
            "activeDeadlineSeconds in ReplicaSet is not Supported"
        );
        assert_eq!(errs.len(), 4, "{errs:#?}");
    }

    #[test]
    fn deployment_strategy_rules() {
        let with = |strategy: serde_json::Value| {
            let mut json = deployment_json();
            json["spec"]["strategy"] = strategy;
            deployment(&from(json))
        };
        assert_eq!(
            with(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"}})
            ),
            vec![]
        );
        assert_eq!(
            only(
                &with(json!({"rollingUpdate": {"maxSurge": "abc"}})),
                "spec.strategy.rollingUpdate.maxSurge"
            )
            .detail,
            "must be an integer or percentage (e.g '5%')"
        );
        assert_eq!(
            only(
                &with(json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})),
                "spec.strategy.rollingUpdate.maxUnavailable"
            )
            .detail,
            "may not be 0 when `maxSurge` is 0"
        );
        assert_eq!(
            only(
                &with(json!({"rollingUpdate": {"maxUnavailable": "150%"}})),
                "spec.strategy.rollingUpdate.maxUnavailable"
            )
            .detail,
            "must not be greater than 100%"
        );
        assert_eq!(
            only(
                &with(json!({"type": "Recreate", "rollingUpdate": {}})),
                "spec.strategy.rollingUpdate"
            )
            .kind,
            FieldErrorKind::Forbidden
        );
        assert_eq!(
            only(&with(json!({"type": "BlueGreen"})), "spec.strategy.type").kind,
            FieldErrorKind::NotSupported("BlueGreen".into())
        );
        let mut json = deployment_json();
        json["spec"]["progressDeadlineSeconds"] = json!(10);
        json["spec"]["minReadySeconds"] = json!(10);
        assert_eq!(
            only(&deployment(&from(json)), "spec.progressDeadlineSeconds").detail,
            "must be greater than minReadySeconds"
        );
    }

    #[test]
    fn apps_selector_is_immutable() {
        let old: Deployment = from(deployment_json());
        let mut scaled = old.clone();
        scaled.spec.as_mut().unwrap().replicas = Some(10);
        assert_eq!(deployment_update(&old, &scaled), vec![]);

        let mut json = deployment_json();
        json["spec"]["selector"]["matchLabels"] = json!({"app": "web", "v": "2"});
        let changed: Deployment = from(json.clone());
        let errs = deployment_update(&old, &changed);
        assert_eq!(
            only(&errs, "spec.selector").to_string(),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );

        json["kind"] = json!("ReplicaSet");
        let mut old_rs = deployment_json();
        old_rs["kind"] = json!("ReplicaSet");
        assert_eq!(
            fields(&replica_set_update(&from(old_rs), &from(json))),
            ["spec.selector"]
        );
    }

    fn daemon_set_json() -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "busybox"}]}
                }
            }
        })
    }

    #[test]
    fn daemon_sets_are_checked_as_kubernetes_checks_them() {
        let ds: DaemonSet = from(daemon_set_json());
        let mut defaulted = ds.clone();
        crate::apiserver::defaults::daemon_set(&mut defaulted);
        assert_eq!(daemon_set(&defaulted), vec![]);
        let strategy = defaulted
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.clone());
        let rolling = strategy.as_ref().and_then(|s| s.rolling_update.clone());
        assert_eq!(
            strategy.and_then(|s| s.type_).as_deref(),
            Some("RollingUpdate")
        );
        assert_eq!(
            rolling.and_then(|r| r.max_unavailable),
            Some(IntOrString::Int(1))
        );

        let mut json = daemon_set_json();
        json["spec"]["selector"]["matchLabels"] = json!({"app": "other"});
        assert_eq!(
            only(&daemon_set(&from(json)), "spec.template.metadata.labels").to_string(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"agent\"}: `selector` does not match template `labels`"
        );
        let mut json = daemon_set_json();
        json["spec"]["selector"] = json!({});
        assert_eq!(
            only(&daemon_set(&from(json)), "spec.selector").detail,
            "empty selector is invalid for daemonset"
        );
        let mut json = daemon_set_json();
        json["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        json["spec"]["minReadySeconds"] = json!(-1);
        assert_eq!(
            fields(&daemon_set(&from(json))),
            ["spec.template.spec.restartPolicy", "spec.minReadySeconds"]
        );

        let strategy = |value: serde_json::Value| {
            let mut json = daemon_set_json();
            json["spec"]["updateStrategy"] = value;
            daemon_set(&from(json))
        };
        assert_eq!(
            only(
                &strategy(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}})),
                "spec.updateStrategy.rollingUpdate.maxSurge"
            )
            .to_string(),
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: \"10%\": may not be set when maxUnavailable is non-zero"
        );
        assert_eq!(
            only(
                &strategy(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}})),
                "spec.updateStrategy.rollingUpdate.maxUnavailable"
            )
            .to_string(),
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
        );
        assert_eq!(
            fields(&strategy(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}})
            )),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable"]
        );
        assert_eq!(strategy(json!({"type": "OnDelete"})), vec![]);
        assert_eq!(
            fields(&strategy(json!({"type": "Recreate"}))),
            ["spec.updateStrategy"]
        );

        let mut json = daemon_set_json();
        json["spec"]["selector"]["matchLabels"] = json!({"app": "agent", "v": "2"});
        json["spec"]["template"]["metadata"]["labels"] = json!({"app": "agent", "v": "2"});
        assert_eq!(
            fields(&daemon_set_update(&ds, &from(json))),
            ["spec.selector"]
        );
    }

    #[test]
    fn a_controller_revisions_data_is_immutable() {
        let revision: ControllerRevision = from(json!({
            "metadata": {"name": "agent-1", "namespace": "default"},
            "data": {"spec": {"template": {"$patch": "replace"}}},
            "revision": 1,
        }));
        assert_eq!(controller_revision(&revision), vec![]);
        let mut raised = revision.clone();
        raised.revision = 3;
        assert_eq!(controller_revision_update(&revision, &raised), vec![]);
        let mut changed = revision.clone();
        changed.data = Some(RawExtension(json!({"other": 1})));
        assert_eq!(
            fields(&controller_revision_update(&revision, &changed)),
            ["data"]
        );
        raised.revision = -1;
        assert_eq!(fields(&controller_revision(&raised)), ["revision"]);
        raised.data = None;
        assert_eq!(fields(&controller_revision(&raised)), ["data", "revision"]);
    }

    fn stateful_set_json() -> serde_json::Value {
        let mut json = daemon_set_json();
        json["kind"] = json!("StatefulSet");
        json["spec"]["serviceName"] = json!("agent");
        json
    }

    #[test]
    fn stateful_sets_are_checked_as_kubernetes_checks_them() {
        let mut sts: StatefulSet = from(stateful_set_json());
        crate::apiserver::defaults::stateful_set(&mut sts);
        assert_eq!(stateful_set(&sts), vec![]);
        let spec = sts.spec.clone().unwrap_or_default();
        assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
        assert_eq!(
            spec.update_strategy
                .and_then(|s| s.rolling_update)
                .and_then(|r| r.partition),
            Some(0)
        );

        let with = |patch: &dyn Fn(&mut serde_json::Value)| {
            let mut json = stateful_set_json();
            patch(&mut json);
            let mut sts: StatefulSet = from(json);
            crate::apiserver::defaults::stateful_set(&mut sts);
            stateful_set(&sts)
        };
        let claims = with(&|j| {
            j["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}}]);
        });
        assert_eq!(fields(&claims), ["spec.volumeClaimTemplates"]);
        assert!(
            claims[0]
                .to_string()
                .starts_with("spec.volumeClaimTemplates: Forbidden: ")
        );
        assert_eq!(
            fields(&with(
                &|j| j["spec"]["podManagementPolicy"] = json!("Random")
            )),
            ["spec.podManagementPolicy"]
        );
        assert_eq!(
            fields(&with(&|j| {
                j["spec"]["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": -1}});
            })),
            ["spec.updateStrategy.rollingUpdate.partition"]
        );
        assert_eq!(
            fields(&with(&|j| j["spec"]["replicas"] = json!(-1))),
            ["spec.replicas"]
        );
        assert_eq!(
            only(
                &with(&|j| j["spec"]["selector"] = json!({})),
                "spec.selector"
            )
            .detail,
            "empty selector is invalid for statefulset"
        );

        // Only some of the spec may change.
        let mut scaled = sts.clone();
        if let Some(spec) = scaled.spec.as_mut() {
            spec.replicas = Some(5);
            spec.template.metadata.get_or_insert_default().annotations =
                Some([("a".to_owned(), "b".to_owned())].into());
        }
        assert_eq!(stateful_set_update(&sts, &scaled), vec![]);
        let mut renamed = sts.clone();
        if let Some(spec) = renamed.spec.as_mut() {
            spec.service_name = Some("other".to_owned());
        }
        assert_eq!(fields(&stateful_set_update(&sts, &renamed)), ["spec"]);
    }
}
