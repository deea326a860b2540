//! Leases (`coordination.k8s.io/v1`): duration, transitions and preferred holder.

use k8s_openapi::api::coordination::v1::Lease;

use skiff_api::names::NameRule;

use crate::apiserver::field_error::FieldError;

use super::metadata::object_meta;
use super::nonnegative;

/// A Lease: DNS-1123 subdomain name; `leaseDurationSeconds` > 0 and `leaseTransitions` >= 0
/// when set; `preferredHolder` only with a `strategy`.
pub fn lease(lease: &Lease) -> Vec<FieldError> {
    let mut errs = object_meta(&lease.metadata, true, NameRule::Dns1123Subdomain);
    if let Some(spec) = &lease.spec {
        if let Some(d) = spec.lease_duration_seconds
            && d <= 0
        {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            ));
        }
        nonnegative(&mut errs, "spec.leaseTransitions", spec.lease_transitions);
        let has_strategy = spec.strategy.as_deref().is_some_and(|s| !s.is_empty());
        if spec
            .preferred_holder
            .as_deref()
            .is_some_and(|h| !h.is_empty())
            && !has_strategy
        {
            errs.push(FieldError::forbidden(
                "spec.preferredHolder",
                "may only be specified if `strategy` is defined",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{fields, from};
    use super::*;

    #[test]
    fn lease_rules() {
        let good: Lease = from(
            json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}),
        );
        assert_eq!(lease(&good), vec![]);
        let bad: Lease = from(
            json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "x"}}),
        );
        assert_eq!(
            fields(&lease(&bad)),
            [
                "spec.leaseDurationSeconds",
                "spec.leaseTransitions",
                "spec.preferredHolder"
            ]
        );
    }
}
