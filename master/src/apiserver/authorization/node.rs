//! The Node authorizer and NodeRestriction admission, as Kubernetes' `plugin/pkg/auth/
//! authorizer/node` and `plugin/pkg/admission/noderestriction`: a node (user
//! `system:node:<name>` in `system:nodes`, what `skiff-node join` makes) reads only the
//! Secrets and ConfigMaps of pods bound to it, requests tokens only for their
//! ServiceAccounts, and renews only its own Lease; for the rest it holds the `system:node`
//! role's rules. Its writes are then held to itself: only its own Node (and no
//! `node-restriction.kubernetes.io/` labels), only mirror pods bound to it, only the status,
//! deletion and eviction of pods bound to it.
//!
//! Where skiff differs: the relations are read from the watch cache's pods at each decision
//! (Kubernetes keeps a graph); persistent volumes are not served, so nothing of them is
//! granted.

use std::sync::OnceLock;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::bootstrap_policy::cluster_roles;
use super::rbac::rule_allows;
use super::{Attributes, Decision};
use crate::apiserver::authentication::{NODES_GROUP, UserInfo};
use crate::apiserver::status::ApiError;
use crate::apiserver::watch_cache::WatchCache;

/// The label prefix nodes may not set on themselves.
const RESTRICTED_LABEL_PREFIX: &str = "node-restriction.kubernetes.io/";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The node a user is, if it is one (`system:node:<name>` in `system:nodes`).
pub fn node_of(user: &UserInfo) -> Option<&str> {
    let name = user.username.strip_prefix("system:node:")?;
    (!name.is_empty() && user.in_group(NODES_GROUP)).then_some(name)
}

/// The `system:node` role's rules, what a node may do with what it is not related to.
fn node_rules() -> &'static [PolicyRule] {
    static RULES: OnceLock<Vec<PolicyRule>> = OnceLock::new();
    RULES.get_or_init(|| {
        cluster_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == "system:node")
            .and_then(|r| serde_json::from_value(r["rules"].clone()).ok())
            .unwrap_or_default()
    })
}

/// The Node authorizer's decision for `user` (None: not a node, or no opinion).
pub fn authorize(user: &UserInfo, a: &Attributes, cache: &WatchCache) -> Option<Decision> {
    let node = node_of(user)?;
    if !a.resource_request {
        return None;
    }
    let allow = |why: String| Some(Decision::Allow(why));
    match (a.api_group.as_str(), a.resource.as_str()) {
        ("", "secrets" | "configmaps") => {
            let reads = matches!(a.verb.as_str(), "get" | "list" | "watch");
            if reads
                && !a.name.is_empty()
                && pods_of(cache, node, &a.namespace)
                    .iter()
                    .any(|pod| references(pod, &a.resource, &a.name))
            {
                return allow(format!("node {node:?} runs a pod that uses it"));
            }
            Some(Decision::Deny)
        }
        ("", "serviceaccounts") if a.subresource == "token" && a.verb == "create" => {
            if pods_of(cache, node, &a.namespace).iter().any(|pod| {
                pod["spec"]["serviceAccountName"]
                    .as_str()
                    .unwrap_or("default")
                    == a.name
            }) {
                return allow(format!("node {node:?} runs a pod of this ServiceAccount"));
            }
            Some(Decision::Deny)
        }
        ("", "persistentvolumeclaims" | "persistentvolumes") => Some(Decision::Deny),
        ("coordination.k8s.io", "leases") => {
            let own = a.namespace == "kube-node-lease"
                && (a.name == node || (a.name.is_empty() && a.verb == "create"));
            let verbs = matches!(
                a.verb.as_str(),
                "get" | "create" | "update" | "patch" | "delete"
            );
            if own && verbs {
                return allow(format!("node {node:?} renews its own Lease"));
            }
            Some(Decision::Deny)
        }
        _ if node_rules().iter().any(|r| rule_allows(r, a)) => {
            allow(String::from("allowed by the system:node rules"))
        }
        _ => None,
    }
}

/// The pods bound to `node` in `namespace`.
fn pods_of(cache: &WatchCache, node: &str, namespace: &str) -> Vec<Value> {
    let Ok((pods, _)) = cache.list("pods", &format!("/registry/pods/{namespace}/")) else {
        return Vec::new();
    };
    pods.iter()
        .filter_map(|p| p.parsed())
        .filter(|p| p["spec"]["nodeName"] == node)
        .cloned()
        .collect()
}

/// Whether `pod` uses the Secret or ConfigMap (`resource`) named `name`: in a volume, a
/// projected source, an env var, envFrom, or an image pull secret.
fn references(pod: &Value, resource: &str, name: &str) -> bool {
    let spec = &pod["spec"];
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let is = |v: &Value| v.as_str() == Some(name);
    let (volume_key, volume_name, ref_key) = if resource == "secrets" {
        ("secret", "secretName", "secretRef")
    } else {
        ("configMap", "name", "configMapRef")
    };
    let key_ref = if resource == "secrets" {
        "secretKeyRef"
    } else {
        "configMapKeyRef"
    };
    if resource == "secrets"
        && list(&spec["imagePullSecrets"])
            .iter()
            .any(|s| is(&s["name"]))
    {
        return true;
    }
    for volume in list(&spec["volumes"]) {
        if is(&volume[volume_key][volume_name]) {
            return true;
        }
        let projection = if resource == "secrets" {
            "secret"
        } else {
            "configMap"
        };
        if list(&volume["projected"]["sources"])
            .iter()
            .any(|s| is(&s[projection]["name"]))
        {
            return true;
        }
    }
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| list(&spec[*k]))
        .any(|c| {
            list(&c["env"])
                .iter()
                .any(|e| is(&e["valueFrom"][key_ref]["name"]))
                || list(&c["envFrom"]).iter().any(|e| is(&e[ref_key]["name"]))
        })
}

/// NodeRestriction: what a node may write, given the object as written (`object`) and as
/// stored (`stored`; None for a create). `verb` is `create`, `update` or `delete`;
/// `subresource` is the part written.
pub fn admit(
    user: &UserInfo,
    kind: &str,
    verb: &str,
    subresource: Option<&str>,
    object: &Value,
    stored: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(node) = node_of(user) else {
        return Ok(());
    };
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let forbidden = |plural: &str, why: String| {
        ApiError::Forbidden(format!("{plural} \"{name}\" is forbidden: {why}"))
    };
    match kind {
        "Node" => {
            if name != node {
                return Err(forbidden(
                    "nodes",
                    format!("node {node:?} is not allowed to modify node {name:?}"),
                ));
            }
            let labels = |o: Option<&Value>| -> Vec<(String, Value)> {
                o.and_then(|o| o["metadata"]["labels"].as_object().cloned())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| k.starts_with(RESTRICTED_LABEL_PREFIX))
                    .collect()
            };
            if verb != "delete" && labels(Some(object)) != labels(stored) {
                let keys: Vec<String> = labels(Some(object)).into_iter().map(|(k, _)| k).collect();
                return Err(forbidden(
                    "nodes",
                    format!(
                        "is not allowed to modify labels: {}",
                        if keys.is_empty() {
                            RESTRICTED_LABEL_PREFIX.to_owned()
                        } else {
                            keys.join(", ")
                        }
                    ),
                ));
            }
            Ok(())
        }
        "Pod" => {
            let bound = object["spec"]["nodeName"].as_str().unwrap_or("");
            match (verb, subresource) {
                ("create", None) => {
                    if !object["metadata"]["annotations"][MIRROR_ANNOTATION].is_string() {
                        return Err(forbidden(
                            "pods",
                            format!(
                                "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node {node:?} can only create mirror pods"
                            ),
                        ));
                    }
                    if bound != node {
                        return Err(forbidden(
                            "pods",
                            format!(
                                "node {node:?} can only create pods with spec.nodeName set to itself"
                            ),
                        ));
                    }
                    Ok(())
                }
                ("create", Some("eviction")) | ("delete", _) | ("update", Some("status")) => {
                    let bound =
                        stored.map_or(bound, |s| s["spec"]["nodeName"].as_str().unwrap_or(""));
                    if bound != node {
                        return Err(forbidden(
                            "pods",
                            format!(
                                "node {node:?} can only {} pods with spec.nodeName set to itself",
                                match verb {
                                    "delete" => "delete",
                                    "update" => "update pod status for",
                                    _ => "evict",
                                }
                            ),
                        ));
                    }
                    Ok(())
                }
                _ => Err(forbidden(
                    "pods",
                    format!(
                        "node {node:?} may only create mirror pods and update the status of its pods"
                    ),
                )),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_uses_the_objects_it_names() {
        let pod = json!({"spec": {
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "a", "secret": {"secretName": "vol"}},
                        {"name": "b", "projected": {"sources": [{"configMap": {"name": "proj"}}]}}],
            "containers": [{"name": "c",
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "from"}}]}],
        }});
        for (resource, name) in [
            ("secrets", "pull"),
            ("secrets", "vol"),
            ("secrets", "env"),
            ("configmaps", "proj"),
            ("configmaps", "from"),
        ] {
            assert!(references(&pod, resource, name), "{resource}/{name}");
        }
        assert!(!references(&pod, "secrets", "other"));
        assert!(!references(&pod, "configmaps", "vol"));
    }

    #[test]
    fn a_node_writes_only_itself_and_its_pods() {
        let node_a = UserInfo::new("system:node:a", &[NODES_GROUP]);
        assert_eq!(node_of(&node_a), Some("a"));
        assert_eq!(node_of(&UserInfo::new("system:node:a", &[])), None);
        let node_b = json!({"metadata": {"name": "b"}});
        let err = admit(&node_a, "Node", "update", None, &node_b, Some(&node_b)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nodes \"b\" is forbidden: node \"a\" is not allowed to modify node \"b\""
        );
        assert!(admit(&node_a, "Node", "delete", None, &node_b, Some(&node_b)).is_err());
        let own =
            json!({"metadata": {"name": "a", "labels": {"node-restriction.kubernetes.io/x": "y"}}});
        let stored = json!({"metadata": {"name": "a"}});
        assert!(admit(&node_a, "Node", "update", None, &own, Some(&stored)).is_err());
        assert!(admit(&node_a, "Node", "update", None, &stored, Some(&stored)).is_ok());
        let pod_on_b = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "b"}});
        assert!(
            admit(
                &node_a,
                "Pod",
                "update",
                Some("status"),
                &pod_on_b,
                Some(&pod_on_b)
            )
            .is_err()
        );
        assert!(admit(&node_a, "Pod", "delete", None, &pod_on_b, Some(&pod_on_b)).is_err());
        let pod_on_a = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "a"}});
        assert!(
            admit(
                &node_a,
                "Pod",
                "update",
                Some("status"),
                &pod_on_a,
                Some(&pod_on_a)
            )
            .is_ok()
        );
        assert!(
            admit(&node_a, "Pod", "create", None, &pod_on_a, None).is_err(),
            "not a mirror pod"
        );
        let admin = UserInfo::new("admin", &[]);
        assert!(admit(&admin, "Node", "delete", None, &node_b, Some(&node_b)).is_ok());
    }
}
