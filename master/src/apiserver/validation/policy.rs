//! policy/v1 PodDisruptionBudgets, checked as Kubernetes' `ValidatePodDisruptionBudgetSpec`
//! checks them: `minAvailable` or `maxUnavailable` (not both), each a count or a percentage
//! of at most 100%, a selector that parses and a known unhealthy-pod eviction policy.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use skiff_api::names::NameRule;
use skiff_api::selectors;

use crate::apiserver::field_error::FieldError;

use super::apps::int_or_percent;
use super::go_label_selector;
use super::metadata::object_meta;

/// A PodDisruptionBudget.
pub fn pod_disruption_budget(pdb: &PodDisruptionBudget) -> Vec<FieldError> {
    let mut errs = object_meta(&pdb.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = pdb.spec.as_ref().unwrap_or(&default_spec);
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        errs.push(FieldError::invalid(
            "spec",
            "{...}",
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (field, value) in [
        ("spec.minAvailable", spec.min_available.as_ref()),
        ("spec.maxUnavailable", spec.max_unavailable.as_ref()),
    ] {
        if let Some((number, true)) = int_or_percent(&mut errs, field, value)
            && number > 100
        {
            let shown = match value {
                Some(IntOrString::String(text)) => text.clone(),
                _ => number.to_string(),
            };
            errs.push(FieldError::invalid(
                field,
                shown,
                "must not be greater than 100%",
            ));
        }
    }
    if let Some(selector) = &spec.selector
        && selectors::LabelSelector::from_api(selector).is_err()
    {
        errs.push(FieldError::invalid_unquoted(
            "spec.selector",
            go_label_selector(selector),
            "invalid label selector",
        ));
    }
    match spec.unhealthy_pod_eviction_policy.as_deref() {
        None | Some("IfHealthyBudget" | "AlwaysAllow") => {}
        Some(other) => errs.push(FieldError::not_supported(
            "spec.unhealthyPodEvictionPolicy",
            other,
            &["AlwaysAllow", "IfHealthyBudget"],
        )),
    }
    errs
}
