//! RBAC (rbac.authorization.k8s.io/v1): a request is allowed when a rule of a role bound to
//! its user allows it. ClusterRoleBindings grant their ClusterRole everywhere; a RoleBinding
//! grants its Role, or a ClusterRole, in its own namespace. Nothing is ever denied outright:
//! a request no rule allows is not allowed.
//!
//! As Kubernetes' `rbac.go` and `rule.go` (`plugin/pkg/auth/authorizer/rbac`), over a policy
//! read from the watch cache. The policy is built again, before the next decision, whenever
//! a Role, ClusterRole or binding changed, so a binding a client just made counts for its
//! next request (Kubernetes' informers make that eventual).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::{Attributes, Decision};
use crate::apiserver::authentication::UserInfo;
use crate::apiserver::watch_cache::WatchCache;
use crate::store::Revision;

/// The RBAC resources, whose changes rebuild the policy.
const POLICY_RESOURCES: [&str; 4] = [
    "clusterroles",
    "roles",
    "clusterrolebindings",
    "rolebindings",
];

/// The RBAC authorizer.
pub struct Rbac {
    cache: WatchCache,
    current: Mutex<Current>,
}

struct Current {
    changes: Vec<watch::Receiver<Revision>>,
    policy: Arc<Policy>,
}

impl Rbac {
    /// An authorizer over the policy objects in `cache`.
    pub fn new(cache: WatchCache) -> Self {
        let changes = POLICY_RESOURCES
            .iter()
            .filter_map(|plural| cache.subscribe(plural).ok())
            .collect();
        let policy = Arc::new(Policy::read(&cache));
        Self {
            cache,
            current: Mutex::new(Current { changes, policy }),
        }
    }

    /// The policy as the cache holds it now.
    pub fn policy(&self) -> Arc<Policy> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut changed = false;
        for receiver in &mut current.changes {
            if receiver.has_changed().unwrap_or(false) {
                receiver.mark_unchanged();
                changed = true;
            }
        }
        if changed {
            current.policy = Arc::new(Policy::read(&self.cache));
        }
        current.policy.clone()
    }

    /// Whether a rule bound to `user` allows `attributes`.
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        self.policy().authorize(user, attributes)
    }
}

/// A binding with its role's rules resolved.
#[derive(Debug)]
struct Binding {
    /// `ClusterRoleBinding "x" of ClusterRole "y"`, for reasons.
    describe: String,
    subjects: Vec<Subject>,
    /// The binding's namespace (empty for a ClusterRoleBinding).
    namespace: String,
    rules: Arc<Vec<PolicyRule>>,
}

/// The roles and bindings at one moment.
#[derive(Debug, Default)]
pub struct Policy {
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    roles: HashMap<(String, String), Arc<Vec<PolicyRule>>>,
    cluster_bindings: Vec<Binding>,
    /// Namespace -> its RoleBindings.
    role_bindings: HashMap<String, Vec<Binding>>,
}

fn objects<T: DeserializeOwned>(cache: &WatchCache, plural: &str) -> Vec<T> {
    let Ok((items, _)) = cache.list(plural, "") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|o| o.parsed())
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect()
}

impl Policy {
    /// The policy of the objects in `cache`.
    pub fn read(cache: &WatchCache) -> Self {
        Self::new(
            objects(cache, "clusterroles"),
            objects(cache, "roles"),
            objects(cache, "clusterrolebindings"),
            objects(cache, "rolebindings"),
        )
    }

    /// The policy of these objects.
    pub fn new(
        cluster_roles: Vec<ClusterRole>,
        roles: Vec<Role>,
        cluster_bindings: Vec<ClusterRoleBinding>,
        role_bindings: Vec<RoleBinding>,
    ) -> Self {
        let mut policy = Policy {
            cluster_roles: cluster_roles
                .into_iter()
                .filter_map(|r| Some((r.metadata.name?, Arc::new(r.rules.unwrap_or_default()))))
                .collect(),
            roles: roles
                .into_iter()
                .filter_map(|r| {
                    let key = (r.metadata.namespace?, r.metadata.name?);
                    Some((key, Arc::new(r.rules.unwrap_or_default())))
                })
                .collect(),
            ..Default::default()
        };
        for binding in cluster_bindings {
            let name = binding.metadata.name.unwrap_or_default();
            if let Some(rules) = policy.role_rules(&binding.role_ref, "") {
                policy.cluster_bindings.push(Binding {
                    describe: format!(
                        "ClusterRoleBinding \"{name}\" of ClusterRole \"{}\"",
                        binding.role_ref.name
                    ),
                    subjects: binding.subjects.unwrap_or_default(),
                    namespace: String::new(),
                    rules,
                });
            }
        }
        for binding in role_bindings {
            let namespace = binding.metadata.namespace.unwrap_or_default();
            let name = binding.metadata.name.unwrap_or_default();
            if let Some(rules) = policy.role_rules(&binding.role_ref, &namespace) {
                let describe = format!(
                    "RoleBinding \"{name}/{namespace}\" of {} \"{}\"",
                    binding.role_ref.kind, binding.role_ref.name
                );
                policy
                    .role_bindings
                    .entry(namespace.clone())
                    .or_default()
                    .push(Binding {
                        describe,
                        subjects: binding.subjects.unwrap_or_default(),
                        namespace,
                        rules,
                    });
            }
        }
        policy
    }

    /// The rules a role reference stands for in `namespace` (None: no such role).
    pub fn role_rules(&self, role_ref: &RoleRef, namespace: &str) -> Option<Arc<Vec<PolicyRule>>> {
        match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name).cloned(),
            "Role" if !namespace.is_empty() => self
                .roles
                .get(&(namespace.to_owned(), role_ref.name.clone()))
                .cloned(),
            _ => None,
        }
    }

    /// The bindings that count in `namespace` (the cluster's, then the namespace's).
    fn bindings<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Binding> {
        let local = (!namespace.is_empty())
            .then(|| self.role_bindings.get(namespace))
            .flatten();
        self.cluster_bindings
            .iter()
            .chain(local.into_iter().flatten())
    }

    /// Whether a rule bound to `user` allows `attributes`.
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        for binding in self.bindings(&attributes.namespace) {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| applies_to(s, user, &binding.namespace))
            else {
                continue;
            };
            if binding.rules.iter().any(|r| rule_allows(r, attributes)) {
                return Decision::Allow(format!(
                    "RBAC: allowed by {} to {} \"{}\"",
                    binding.describe, subject.kind, subject.name
                ));
            }
        }
        Decision::Deny
    }

    /// Every rule bound to `user` that counts in `namespace` (empty: cluster-wide only).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        self.bindings(namespace)
            .filter(|b| b.subjects.iter().any(|s| applies_to(s, user, &b.namespace)))
            .flat_map(|b| b.rules.iter().cloned())
            .collect()
    }
}

/// Whether a binding's subject is `user` (a ServiceAccount subject without a namespace is
/// in the binding's).
fn applies_to(subject: &Subject, user: &UserInfo, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.username,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && user.service_account() == Some((ns, subject.name.as_str()))
        }
        _ => false,
    }
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|item| item == "*" || item == wanted)
}

/// Whether `rule` allows `a` (Kubernetes' `RuleAllows`).
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if !has(&rule.verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return rule
            .non_resource_urls
            .iter()
            .flatten()
            .any(|url| url_matches(url, &a.path));
    }
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    has(groups, &a.api_group)
        && resources
            .iter()
            .any(|r| resource_matches(r, &a.resource, &a.subresource))
        && (names.is_empty() || names.contains(&a.name))
}

/// `*`, `pods`, `pods/status`, or `*/status`.
pub fn resource_matches(rule: &str, resource: &str, subresource: &str) -> bool {
    if rule == "*" {
        return true;
    }
    if subresource.is_empty() {
        return rule == resource;
    }
    rule.strip_prefix("*/") == Some(subresource)
        || rule
            .split_once('/')
            .is_some_and(|(r, s)| r == resource && s == subresource)
}

/// `*`, an exact path, or a prefix ending in `*`.
pub fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn policy() -> Policy {
        Policy::new(
            vec![
                from(json!({"metadata": {"name": "view"}, "rules": [
                    {"verbs": ["get", "list", "watch"], "apiGroups": ["", "apps"], "resources": ["pods", "deployments", "pods/log"]}
                ]})),
                from(json!({"metadata": {"name": "health"}, "rules": [
                    {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}
                ]})),
            ],
            vec![from(
                json!({"metadata": {"name": "cm-writer", "namespace": "team"}, "rules": [
                    {"verbs": ["create", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"]}
                ]}),
            )],
            vec![from(
                json!({"metadata": {"name": "everyone-health"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "health"},
                "subjects": [{"kind": "Group", "name": "system:authenticated"}]}),
            )],
            vec![
                from(
                    json!({"metadata": {"name": "viewers", "namespace": "team"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "ServiceAccount", "name": "viewer"}, {"kind": "User", "name": "jane"}]}),
                ),
                from(
                    json!({"metadata": {"name": "writers", "namespace": "team"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-writer"},
                    "subjects": [{"kind": "User", "name": "jane"}]}),
                ),
                from(
                    json!({"metadata": {"name": "dangling", "namespace": "team"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "missing"},
                    "subjects": [{"kind": "User", "name": "bob"}]}),
                ),
            ],
        )
    }

    fn allowed(policy: &Policy, user: &UserInfo, a: Attributes) -> bool {
        matches!(policy.authorize(user, &a), Decision::Allow(_))
    }

    #[test]
    fn a_role_binding_grants_its_cluster_role_in_its_namespace_only() {
        let policy = policy();
        let sa = UserInfo::new(
            "system:serviceaccount:team:viewer",
            &["system:serviceaccounts"],
        );
        assert!(allowed(
            &policy,
            &sa,
            Attributes::resource("list", "", "pods", "", "team", "")
        ));
        assert!(allowed(
            &policy,
            &sa,
            Attributes::resource("get", "", "pods", "log", "team", "web")
        ));
        assert!(!allowed(
            &policy,
            &sa,
            Attributes::resource("list", "", "pods", "", "other", "")
        ));
        assert!(!allowed(
            &policy,
            &sa,
            Attributes::resource("list", "", "pods", "", "", "")
        ));
        assert!(!allowed(
            &policy,
            &sa,
            Attributes::resource("create", "", "configmaps", "", "team", "")
        ));
        assert!(!allowed(
            &policy,
            &sa,
            Attributes::resource("get", "", "pods", "exec", "team", "web")
        ));
        let other_sa = UserInfo::new("system:serviceaccount:other:viewer", &[]);
        assert!(!allowed(
            &policy,
            &other_sa,
            Attributes::resource("list", "", "pods", "", "team", "")
        ));
    }

    #[test]
    fn resource_names_limit_a_rule_and_dangling_bindings_grant_nothing() {
        let policy = policy();
        let jane = UserInfo::new("jane", &[]);
        assert!(allowed(
            &policy,
            &jane,
            Attributes::resource("update", "", "configmaps", "", "team", "settings")
        ));
        assert!(!allowed(
            &policy,
            &jane,
            Attributes::resource("update", "", "configmaps", "", "team", "other")
        ));
        assert!(!allowed(
            &policy,
            &jane,
            Attributes::resource("create", "", "configmaps", "", "team", "")
        ));
        let bob = UserInfo::new("bob", &[]);
        assert!(!allowed(
            &policy,
            &bob,
            Attributes::resource("get", "", "pods", "", "team", "x")
        ));
        assert_eq!(
            policy.rules_for(&bob, "team").len(),
            1,
            "only the health rule"
        );
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let policy = policy();
        let jane = UserInfo::new("jane", &[]);
        assert!(allowed(
            &policy,
            &jane,
            Attributes::non_resource("get", "/healthz")
        ));
        assert!(allowed(
            &policy,
            &jane,
            Attributes::non_resource("get", "/api/v1")
        ));
        assert!(!allowed(
            &policy,
            &jane,
            Attributes::non_resource("get", "/metrics")
        ));
        assert!(!allowed(
            &policy,
            &jane,
            Attributes::non_resource("post", "/healthz")
        ));
        let anonymous = UserInfo {
            username: "x".into(),
            ..Default::default()
        };
        assert!(!allowed(
            &policy,
            &anonymous,
            Attributes::non_resource("get", "/healthz")
        ));
    }

    #[test]
    fn subresource_rules() {
        assert!(resource_matches("*/scale", "deployments", "scale"));
        assert!(resource_matches(
            "deployments/scale",
            "deployments",
            "scale"
        ));
        assert!(!resource_matches("deployments", "deployments", "scale"));
        assert!(!resource_matches(
            "deployments/status",
            "deployments",
            "scale"
        ));
        assert!(!resource_matches("*/scale", "deployments", ""));
    }
}
