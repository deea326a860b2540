//! Escalation prevention: a user may only write a Role or ClusterRole whose rules they hold
//! themselves (or with the `escalate` verb on it), and only bind a role whose rules they hold
//! (or with the `bind` verb on it); members of `system:masters` may do both. As Kubernetes'
//! RBAC storage (`registry/rbac/*/policybased`) and `ConfirmNoEscalation`
//! (`registry/rbac/validation/rule.go`): each rule granted is broken into single
//! verb/group/resource/name rules, and each must be covered by one the user holds.

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::{Attributes, Authorizer, Decision};
use crate::apiserver::authentication::{MASTERS_GROUP, UserInfo};

const GROUP: &str = "rbac.authorization.k8s.io";

/// Why a write of RBAC objects was refused: Kubernetes' message, for a 403.
pub type Refusal = String;

impl Authorizer {
    /// `Ok` when `user` holds every rule of `rules` in `namespace` (empty: cluster-wide),
    /// else which rules they do not hold.
    pub fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        rules: &[PolicyRule],
    ) -> Result<(), Refusal> {
        let held = self.rbac.policy().rules_for(user, namespace);
        let missing: Vec<PolicyRule> = rules
            .iter()
            .flat_map(break_down)
            .filter(|wanted| !held.iter().any(|owner| covers(owner, wanted)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
        let missing: Vec<String> = missing.iter().map(compact).collect();
        Err(format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            user.username,
            groups.join(" "),
            missing.join("\n")
        ))
    }
}

/// A rule as single-verb, single-resource rules (Kubernetes' `BreakdownRule`).
fn break_down(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &str| Some(vec![s.to_owned()]);
    let mut out = Vec::new();
    let groups = rule.api_groups.clone().unwrap_or_default();
    let resources = rule.resources.clone().unwrap_or_default();
    let names = rule.resource_names.clone().unwrap_or_default();
    for group in &groups {
        for resource in &resources {
            for verb in &rule.verbs {
                if names.is_empty() {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        verbs: vec![verb.clone()],
                        ..Default::default()
                    });
                }
                for name in &names {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        verbs: vec![verb.clone()],
                        ..Default::default()
                    });
                }
            }
        }
    }
    for url in rule.non_resource_urls.iter().flatten() {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..Default::default()
            });
        }
    }
    out
}

/// Whether `owner` grants everything the single rule `wanted` does (Kubernetes'
/// `ruleCovers`).
fn covers(owner: &PolicyRule, wanted: &PolicyRule) -> bool {
    let has_all = |held: &[String], asked: &[String]| {
        held.iter().any(|h| h == "*") || asked.iter().all(|a| held.contains(a))
    };
    let empty: Vec<String> = Vec::new();
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_else(|| empty.clone());
    if !has_all(&owner.verbs, &wanted.verbs) {
        return false;
    }
    let wanted_urls = list(&wanted.non_resource_urls);
    if !wanted_urls.is_empty() {
        let owner_urls = list(&owner.non_resource_urls);
        return wanted_urls.iter().all(|url| {
            owner_urls.iter().any(|held| {
                held == "*"
                    || held == url
                    || held
                        .strip_suffix('*')
                        .is_some_and(|prefix| url.starts_with(prefix))
            })
        });
    }
    let owner_resources = list(&owner.resources);
    let resources_covered = list(&wanted.resources).iter().all(|asked| {
        owner_resources.iter().any(|held| {
            held == "*"
                || held == asked
                || asked.split_once('/').is_some_and(|(resource, sub)| {
                    held == &format!("*/{sub}") || held == &format!("{resource}/*")
                })
        })
    });
    let owner_names = list(&owner.resource_names);
    has_all(&list(&owner.api_groups), &list(&wanted.api_groups))
        && resources_covered
        && (owner_names.is_empty() || has_all(&owner_names, &list(&wanted.resource_names)))
}

/// A rule as Kubernetes' `CompactString` writes it:
/// `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
fn compact(rule: &PolicyRule) -> String {
    let quoted = |list: &[String]| {
        list.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut fields = Vec::new();
    for (name, list) in [
        ("APIGroups", rule.api_groups.as_deref()),
        ("Resources", rule.resources.as_deref()),
        ("ResourceNames", rule.resource_names.as_deref()),
        ("NonResourceURLs", rule.non_resource_urls.as_deref()),
    ] {
        if let Some(list) = list.filter(|l| !l.is_empty()) {
            fields.push(format!("{name}:[{}]", quoted(list)));
        }
    }
    fields.push(format!("Verbs:[{}]", quoted(&rule.verbs)));
    format!("{{{}}}", fields.join(", "))
}

impl crate::apiserver::ApiServer {
    /// Escalation prevention for a write of an RBAC object (`old`: the stored one, for an
    /// update), for the user the request is served for; the server's own writes pass.
    pub fn confirm_rbac_write(
        &self,
        resource: &crate::apiserver::resources::Resource,
        object: &serde_json::Value,
        old: Option<&serde_json::Value>,
    ) -> Result<(), crate::apiserver::status::ApiError> {
        use crate::apiserver::status::ApiError;
        let Some(user) = crate::apiserver::authentication::requester() else {
            return Ok(());
        };
        let meta = |field: &str| object["metadata"][field].as_str().unwrap_or("").to_owned();
        let (namespace, name) = (meta("namespace"), meta("name"));
        let forbidden = |why: String| {
            ApiError::Forbidden(format!(
                "{} \"{name}\" is forbidden: {why}",
                resource.qualified()
            ))
        };
        match resource.kind {
            "Role" | "ClusterRole" => {
                let rules = |o: &serde_json::Value| {
                    serde_json::from_value::<Vec<PolicyRule>>(o["rules"].clone())
                        .unwrap_or_default()
                };
                let new_rules = rules(object);
                let aggregates = !object["aggregationRule"].is_null();
                let unchanged = old.is_some_and(|old| {
                    rules(old) == new_rules && old["aggregationRule"] == object["aggregationRule"]
                });
                if unchanged || user.in_group(MASTERS_GROUP) {
                    return Ok(());
                }
                let escalate =
                    Attributes::resource("escalate", GROUP, resource.plural, "", &namespace, &name);
                if matches!(
                    self.authorizer.authorize(&user, &escalate),
                    Decision::Allow(_)
                ) {
                    return Ok(());
                }
                if aggregates {
                    return Err(forbidden(
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    ));
                }
                self.authorizer
                    .confirm_no_escalation(&user, &namespace, &new_rules)
                    .map_err(forbidden)
            }
            "RoleBinding" | "ClusterRoleBinding" if old.is_none() => {
                let role_ref: k8s_openapi::api::rbac::v1::RoleRef =
                    serde_json::from_value(object["roleRef"].clone())
                        .map_err(|e| ApiError::BadRequest(format!("roleRef: {e}")))?;
                if user.in_group(MASTERS_GROUP) {
                    return Ok(());
                }
                let bind_resource = if role_ref.kind == "ClusterRole" {
                    "clusterroles"
                } else {
                    "roles"
                };
                let bind = Attributes::resource(
                    "bind",
                    GROUP,
                    bind_resource,
                    "",
                    &namespace,
                    &role_ref.name,
                );
                if matches!(self.authorizer.authorize(&user, &bind), Decision::Allow(_)) {
                    return Ok(());
                }
                let rules = self
                    .authorizer
                    .rbac
                    .policy()
                    .role_rules(&role_ref, &namespace)
                    .ok_or_else(|| ApiError::NotFound {
                        kind: format!("{bind_resource}.{GROUP}"),
                        name: role_ref.name.clone(),
                    })?;
                self.authorizer
                    .confirm_no_escalation(&user, &namespace, &rules)
                    .map_err(forbidden)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(value: serde_json::Value) -> PolicyRule {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn held_rules_cover_what_they_grant_and_no_more() {
        let view = rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}),
        );
        let ask = |r: serde_json::Value| break_down(&rule(r)).iter().all(|w| covers(&view, w));
        assert!(ask(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(ask(
            json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]})
        ));
        assert!(ask(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["services/status"]})
        ));
        assert!(!ask(
            json!({"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(!ask(
            json!({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(!ask(
            json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]})
        ));
        assert!(!ask(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]})
        ));
        let admin = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        assert!(
            break_down(&rule(
                json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]})
            ))
            .iter()
            .all(|w| covers(&admin, w))
        );
        assert!(!covers(
            &admin,
            &rule(json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]}))
        ));
    }

    #[test]
    fn missing_rules_are_written_compactly() {
        let r = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}));
        assert_eq!(
            compact(&r),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#
        );
        let u = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]}));
        assert_eq!(
            compact(&u),
            r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#
        );
    }
}
