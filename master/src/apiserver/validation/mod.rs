//! Validation of API objects: the field errors Kubernetes reports as `422 Invalid`.
//!
//! One function per kind returns every [`FieldError`] of an object, with Kubernetes' field
//! paths and messages (`pkg/apis/core/validation`, `pkg/apis/apps/validation`); an empty list
//! means the object is valid. The `*_update` functions hold only the rules about a change
//! (immutable fields); the API server validates the new object with the kind's function too.
//!
//! Kubernetes validates after defaulting. Fields that [`super::defaults`] fills
//! (`restartPolicy`, `dnsPolicy`, port protocols, `targetPort`, ...) are also accepted unset
//! here, so the answer is the same before and after defaulting.

mod apps;
mod batch;
pub mod certificates;
mod config;
mod discovery;
mod event;
mod lease;
mod metadata;
mod namespace;
mod node;
mod pod;
mod policy;
mod rbac;
mod resource_quota;
mod service;

pub use apps::{
    controller_revision, controller_revision_update, daemon_set, daemon_set_update, deployment,
    deployment_update, replica_set, replica_set_update, replication_controller,
    replication_controller_update, stateful_set, stateful_set_update,
};
pub use batch::{cron_job, cron_job_update, job, job_update};
pub use certificates::{certificate_signing_request, certificate_signing_request_update};
pub use config::{config_map, secret, service_account};
pub use discovery::{endpoint_slice, endpoint_slice_update};
pub use event::event;
pub use lease::lease;
pub use metadata::{annotations, labels, object_meta, object_meta_update};
pub use namespace::namespace;
pub use node::node;
pub use pod::{pod, pod_spec, pod_template, pod_template_spec, pod_template_update, pod_update};
pub use policy::pod_disruption_budget;
pub use rbac::{
    cluster_role, cluster_role_binding, cluster_role_binding_update, role, role_binding,
    role_binding_update,
};
pub use resource_quota::{resource_quota, resource_quota_update};
pub use service::{endpoints, service, service_update};

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use skiff_api::names::is_port_name;
use skiff_api::quantity::quantity_nanos;

use crate::apiserver::field_error::FieldError;

// ---------------------------------------------------------------------------------------------
// Messages and checks every kind shares (name rules are skiff_api::names)
// ---------------------------------------------------------------------------------------------

const NEGATIVE_MSG: &str = "must be greater than or equal to 0";
const IMMUTABLE_MSG: &str = "field is immutable";
const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn push_all(errs: &mut Vec<FieldError>, field: &str, value: &str, msgs: Vec<String>) {
    errs.extend(
        msgs.into_iter()
            .map(|m| FieldError::invalid(field, value, m)),
    );
}

/// A name that must refer to something that does not exist (Kubernetes' `field.NotFound`).
fn not_found(field: &str, value: &str, detail: &str) -> FieldError {
    FieldError::invalid(field, value, format!("not found: {detail}"))
}

fn port_number(errs: &mut Vec<FieldError>, field: &str, port: i32) {
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(field, port, PORT_RANGE_MSG));
    }
}

fn nonnegative<T: Into<i64> + Copy>(errs: &mut Vec<FieldError>, field: &str, value: Option<T>) {
    if let Some(v) = value.map(Into::into)
        && v < 0
    {
        errs.push(FieldError::invalid_unquoted(field, v, NEGATIVE_MSG));
    }
}

/// Kubernetes' `ValidatePortNumOrName`.
fn port_num_or_name(errs: &mut Vec<FieldError>, field: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(n) => port_number(errs, field, *n),
        IntOrString::String(s) => push_all(errs, field, s, is_port_name(s)),
    }
}

fn ip(errs: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(field, value, IP_MSG));
    }
}

fn cidr(errs: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.parse::<ipnet::IpNet>().is_err() {
        errs.push(FieldError::invalid(field, value, CIDR_MSG));
    }
}

fn supported(errs: &mut Vec<FieldError>, field: &str, value: Option<&str>, values: &[&str]) {
    if let Some(v) = value
        && !values.contains(&v)
    {
        errs.push(FieldError::not_supported(field, v, values));
    }
}

// ---------------------------------------------------------------------------------------------
// Go-style values in messages (Kubernetes prints non-string values with `%#v`)
// ---------------------------------------------------------------------------------------------

fn go_string_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let entries: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

fn go_string_slice(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

fn go_label_selector(sel: &LabelSelector) -> String {
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(reqs) => {
            let items: Vec<String> = reqs
                .iter()
                .map(|r| {
                    let values = r
                        .values
                        .as_deref()
                        .map_or("[]string(nil)".to_string(), go_string_slice);
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        r.key, r.operator
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(sel.match_labels.as_ref())
    )
}

// ---------------------------------------------------------------------------------------------
// Quantities (parsed by skiff_api::quantity)
// ---------------------------------------------------------------------------------------------

/// Check a quantity's syntax; `field` is the path reported, e.g.
/// `spec.containers[0].resources.limits[memory]`.
pub fn quantity(q: &Quantity, field: &str) -> Option<FieldError> {
    quantity_nanos(&q.0)
        .err()
        .map(|e| FieldError::invalid(field, &q.0, e.to_string()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{
        Endpoints, Event, Namespace, Node, Pod, PodTemplate, ReplicationController, ResourceQuota,
        Service,
    };
    use serde_json::json;
    use skiff_api::names::{is_dns1123_label, is_dns1123_subdomain, is_env_var_name};

    use super::*;

    pub(super) fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("test fixture decodes")
    }

    pub(super) fn pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}
        })
    }

    pub(super) fn valid_pod() -> Pod {
        from(pod_json())
    }

    /// The one error on `field`, failing the test if there is none or several.
    pub(super) fn only<'a>(errs: &'a [FieldError], field: &str) -> &'a FieldError {
        let on: Vec<&FieldError> = errs.iter().filter(|e| e.field == field).collect();
        assert_eq!(on.len(), 1, "expected one error on {field}, got {errs:#?}");
        on[0]
    }

    pub(super) fn fields(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn empty_objects_do_not_panic() {
        let _ = pod(&Pod::default());
        let _ = pod_update(&Pod::default(), &Pod::default());
        let _ = service(&Service::default());
        let _ = service_update(&Service::default(), &Service::default());
        let _ = deployment(&Deployment::default());
        let _ = deployment_update(&Deployment::default(), &Deployment::default());
        let _ = replica_set(&ReplicaSet::default());
        let _ = replica_set_update(&ReplicaSet::default(), &ReplicaSet::default());
        let _ = replication_controller(&ReplicationController::default());
        let _ = replication_controller_update(
            &ReplicationController::default(),
            &ReplicationController::default(),
        );
        let _ = namespace(&Namespace::default());
        let _ = node(&Node::default());
        let _ = endpoints(&Endpoints::default());
        let _ = event(&Event::default());
        let _ = lease(&Lease::default());
        let _ = pod_template(&PodTemplate::default());
        let _ = pod_template_update(&PodTemplate::default(), &PodTemplate::default());
        let _ = resource_quota(&ResourceQuota::default());
        let _ = resource_quota_update(&ResourceQuota::default(), &ResourceQuota::default());
        assert_eq!(
            fields(&pod(&Pod::default())),
            ["metadata.name", "metadata.namespace", "spec.containers"]
        );
    }

    #[test]
    fn odd_strings_do_not_panic() {
        let odd = [
            "", "-", "+", ".", "é", "1é", "１２", "\u{0}", "e5", "1e+", "--1", "1.", "%", "/",
            "a/b/c", "💥Gi",
        ];
        for s in odd {
            let _ = quantity_nanos(s);
            let _ = is_dns1123_label(s);
            let _ = is_dns1123_subdomain(s);
            let _ = skiff_api::names::is_dns1035_label(s);
            let _ = is_port_name(s);
            let _ = is_env_var_name(s);
            let mut p = valid_pod();
            let c = &mut p.spec.as_mut().unwrap().containers[0];
            c.name = s.to_string();
            c.image = Some(s.to_string());
            c.resources = Some(from(json!({"limits": {s: s}, "requests": {s: s}})));
            let _ = pod(&p);
        }
    }
}
