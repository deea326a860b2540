//! The resource types skiff serves: names, scope, subresources, and how each kind is decoded,
//! defaulted and validated (through its k8s-openapi type).

use serde::Serialize;

use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, PodTemplate, ReplicationController,
    ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

use super::defaults;
use super::field_error::FieldError;
use super::validation;

/// One served resource type, e.g. `pods` in core/v1.
pub struct Resource {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Version within the group.
    pub version: &'static str,
    /// Plural name, used in paths.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind of the objects.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names (`po`, `svc`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources served: `status`, `binding`, `scale`.
    pub subresources: &'static [&'static str],
    /// Field selectors accepted besides `metadata.name` and `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// Decode, default and validate.
    pub schema: &'static dyn Schema,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resource({})", self.qualified())
    }
}

impl Resource {
    /// `apiVersion` of the objects: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource's name as Kubernetes messages show it: `pods`, `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether `sub` is a served subresource.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether the resource keeps `status` apart from the main resource (a status subresource).
    pub fn has_status(&self) -> bool {
        self.has_subresource("status")
    }

    /// Whether a field selector on `field` is supported.
    pub fn supports_field(&self, field: &str) -> bool {
        matches!(field, "metadata.name" | "metadata.namespace")
            || self.field_selectors.contains(&field)
    }
}

/// How a kind's objects are admitted: decoded into its typed struct (k8s-openapi),
/// defaulted, validated, and encoded back.
pub trait Schema: Sync {
    /// Decode `object`, apply defaults and validate it (as an update of `old` when given).
    fn admit(&self, object: Value, old: Option<&Value>) -> Result<Admitted, AdmitError>;
}

/// An admitted object and the input fields its type does not know (for field validation).
pub struct Admitted {
    /// The object after defaults, as JSON.
    pub object: Value,
    /// Paths of input fields the type does not have (`spec.foo`).
    pub unknown_fields: Vec<String>,
}

/// Why admission failed.
pub enum AdmitError {
    /// The JSON does not fit the type (400).
    Decode(String),
    /// Field validation failed (422).
    Invalid(Vec<FieldError>),
}

/// A [`Schema`] over a k8s-openapi type `T`.
pub struct Typed<T> {
    default: fn(&mut T),
    validate: fn(&T) -> Vec<FieldError>,
    /// Carries server-owned values of the stored object into an update (e.g. a Service's
    /// ClusterIP), as Kubernetes' PrepareForUpdate does.
    prepare_update: Option<fn(&T, &mut T)>,
    validate_update: Option<fn(&T, &T) -> Vec<FieldError>>,
}

impl<T> Schema for Typed<T>
where
    T: DeserializeOwned + Serialize + Sync,
{
    fn admit(&self, object: Value, old: Option<&Value>) -> Result<Admitted, AdmitError> {
        let mut typed = T::deserialize(&object).map_err(|e| AdmitError::Decode(e.to_string()))?;
        (self.default)(&mut typed);
        // The stored object was admitted before, so it decodes; if not, skip the update rules.
        // A type without update rules (a Lease, a Node) does not decode it at all.
        let has_update_rules = self.prepare_update.is_some() || self.validate_update.is_some();
        let old = old
            .filter(|_| has_update_rules)
            .and_then(|old| T::deserialize(old).ok());
        if let (Some(old), Some(prepare)) = (&old, self.prepare_update) {
            prepare(old, &mut typed);
        }
        let mut errors = (self.validate)(&typed);
        if let (Some(old), Some(validate)) = (&old, self.validate_update) {
            errors.extend(validate(old, &typed));
        }
        if !errors.is_empty() {
            return Err(AdmitError::Invalid(errors));
        }
        let encoded =
            serde_json::to_value(&typed).map_err(|e| AdmitError::Decode(e.to_string()))?;
        let mut unknown_fields = Vec::new();
        unknown(&object, &encoded, &mut String::new(), &mut unknown_fields);
        if !unknown_fields.is_empty() {
            // Defaulting may have moved a field (a Secret's write-only `stringData` goes into
            // `data`): judge against the object as decoded, before defaults (rare, so paid
            // only here).
            let decoded = T::deserialize(&object).and_then(|t| serde_json::to_value(&t));
            if let Ok(decoded) = decoded {
                unknown_fields.clear();
                unknown(&object, &decoded, &mut String::new(), &mut unknown_fields);
            }
        }
        Ok(Admitted {
            object: encoded,
            unknown_fields,
        })
    }
}

/// Collect the paths of keys present (non-null) in `input` but dropped by the typed round trip.
/// `path` is the path of `input` (extended in place, and restored on return): a path is only
/// allocated for a key that is reported.
fn unknown(input: &Value, typed: &Value, path: &mut String, out: &mut Vec<String>) {
    let len = path.len();
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                if len > 0 {
                    path.push('.');
                }
                path.push_str(k);
                match t.get(k) {
                    Some(tv) => unknown(v, tv, path, out),
                    None if !v.is_null() => out.push(path.clone()),
                    None => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                path.push('[');
                path.push_str(&n.to_string());
                path.push(']');
                unknown(iv, tv, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

macro_rules! typed {
    ($t:ty, $default:path, $validate:path) => {
        &Typed::<$t> {
            default: $default,
            validate: $validate,
            prepare_update: None,
            validate_update: None,
        }
    };
    ($t:ty, $default:path, $validate:path, $update:path) => {
        &Typed::<$t> {
            default: $default,
            validate: $validate,
            prepare_update: None,
            validate_update: Some($update),
        }
    };
    ($t:ty, $default:path, $validate:path, $prepare:path, $update:path) => {
        &Typed::<$t> {
            default: $default,
            validate: $validate,
            prepare_update: Some($prepare),
            validate_update: Some($update),
        }
    };
}

/// Every served resource.
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &["status"],
        field_selectors: &["status.phase"],
        schema: typed!(Namespace, defaults::namespace, validation::namespace),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &[
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
        ],
        field_selectors: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
            "spec.host",
        ],
        schema: typed!(Pod, defaults::pod, validation::pod, validation::pod_update),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &["status", "proxy"],
        field_selectors: &["spec.unschedulable"],
        schema: typed!(Node, defaults::node, validation::node),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &["status"],
        field_selectors: &["spec.clusterIP", "spec.type"],
        schema: typed!(
            Service,
            defaults::service,
            validation::service,
            defaults::service_update,
            validation::service_update
        ),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(Endpoints, defaults::endpoints, validation::endpoints),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        kind: "ReplicationController",
        namespaced: true,
        short_names: &["rc"],
        categories: &["all"],
        subresources: &["status", "scale"],
        field_selectors: &["status.replicas"],
        schema: typed!(
            ReplicationController,
            defaults::replication_controller,
            validation::replication_controller,
            validation::replication_controller_update
        ),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "podtemplates",
        singular: "podtemplate",
        kind: "PodTemplate",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(
            PodTemplate,
            defaults::pod_template,
            validation::pod_template,
            validation::pod_template_update
        ),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "resourcequotas",
        singular: "resourcequota",
        kind: "ResourceQuota",
        namespaced: true,
        short_names: &["quota"],
        categories: &[],
        subresources: &["status"],
        field_selectors: &[],
        schema: typed!(
            ResourceQuota,
            defaults::resource_quota,
            validation::resource_quota,
            validation::resource_quota_update
        ),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        field_selectors: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        schema: typed!(Event, defaults::event, validation::event),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(ConfigMap, defaults::config_map, validation::config_map),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &["type"],
        schema: typed!(Secret, defaults::secret, validation::secret),
    },
    Resource {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &["token"],
        field_selectors: &[],
        schema: typed!(
            ServiceAccount,
            defaults::service_account,
            validation::service_account
        ),
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &["status", "scale"],
        field_selectors: &[],
        schema: typed!(
            Deployment,
            defaults::deployment,
            validation::deployment,
            validation::deployment_update
        ),
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &["status", "scale"],
        field_selectors: &["status.replicas"],
        schema: typed!(
            ReplicaSet,
            defaults::replica_set,
            validation::replica_set,
            validation::replica_set_update
        ),
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        subresources: &["status"],
        field_selectors: &[],
        schema: typed!(
            DaemonSet,
            defaults::daemon_set,
            validation::daemon_set,
            validation::daemon_set_update
        ),
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        subresources: &["status", "scale"],
        field_selectors: &[],
        schema: typed!(
            StatefulSet,
            defaults::stateful_set,
            validation::stateful_set,
            validation::stateful_set_update
        ),
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        kind: "ControllerRevision",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(
            ControllerRevision,
            defaults::controller_revision,
            validation::controller_revision,
            validation::controller_revision_update
        ),
    },
    Resource {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        subresources: &["status"],
        field_selectors: &["status.successful"],
        schema: typed!(Job, defaults::job, validation::job, validation::job_update),
    },
    Resource {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        categories: &["all"],
        subresources: &["status"],
        field_selectors: &[],
        schema: typed!(
            CronJob,
            defaults::cron_job,
            validation::cron_job,
            validation::cron_job_update
        ),
    },
    Resource {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        subresources: &["status"],
        field_selectors: &[],
        schema: typed!(
            PodDisruptionBudget,
            defaults::pod_disruption_budget,
            validation::pod_disruption_budget
        ),
    },
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(
            EndpointSlice,
            defaults::endpoint_slice,
            validation::endpoint_slice,
            validation::endpoint_slice_update
        ),
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(Lease, defaults::lease, validation::lease),
    },
    Resource {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(Role, defaults::no_rbac_defaults, validation::role),
    },
    Resource {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(
            ClusterRole,
            defaults::no_rbac_defaults,
            validation::cluster_role
        ),
    },
    Resource {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(
            RoleBinding,
            defaults::role_binding,
            validation::role_binding,
            validation::role_binding_update
        ),
    },
    Resource {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        field_selectors: &[],
        schema: typed!(
            ClusterRoleBinding,
            defaults::cluster_role_binding,
            validation::cluster_role_binding,
            validation::cluster_role_binding_update
        ),
    },
    Resource {
        group: "certificates.k8s.io",
        version: "v1",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        kind: "CertificateSigningRequest",
        namespaced: false,
        short_names: &["csr"],
        categories: &[],
        subresources: &["status", "approval"],
        field_selectors: &["spec.signerName"],
        schema: typed!(
            CertificateSigningRequest,
            defaults::certificate_signing_request,
            validation::certificate_signing_request,
            validation::certificate_signing_request_update
        ),
    },
];

/// The resource served at `group`/`version` with plural `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Whether any resource is served in `group`/`version`.
pub fn serves_group_version(group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
}

/// The API groups (other than core) with their versions, in a stable order.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secrets_string_data_is_known_though_defaulting_moves_it() {
        let secrets = find("", "v1", "secrets").expect("secrets");
        let object = json!({"metadata": {"name": "s", "namespace": "default"}, "stringData": {"token": "abc"}, "bogus": 1});
        let Ok(admitted) = secrets.schema.admit(object, None) else {
            panic!("the secret is not admitted");
        };
        assert_eq!(admitted.unknown_fields, vec!["bogus"]);
        assert_eq!(admitted.object["data"]["token"], "YWJj");
        assert!(admitted.object.get("stringData").is_none());
    }

    #[test]
    fn unknown_fields_are_reported_by_path() {
        let input =
            json!({"spec": {"containers": [{"name": "a", "imagee": "x"}], "foo": 1}, "bar": null});
        let typed = json!({"spec": {"containers": [{"name": "a"}]}});
        let mut out = Vec::new();
        unknown(&input, &typed, &mut String::new(), &mut out);
        assert_eq!(out, vec!["spec.containers[0].imagee", "spec.foo"]);
    }
}
