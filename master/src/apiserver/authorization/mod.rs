//! Authorization: whether the user of a request may do what it asks. As kube-apiserver's
//! authorizer chain: members of `system:masters` may do anything; then the Node authorizer
//! ([`node`]) for node agents; then RBAC decides ([`rbac`], over the Roles and bindings in the
//! watch cache). A request nothing allows gets
//! 403 with Kubernetes' message.
//!
//! [`request_info`] reads a request's attributes (verb, resource, namespace, name) from its
//! method and path as Kubernetes' `RequestInfoFactory` does; [`bootstrap_policy`] holds the
//! default roles and bindings kube-apiserver creates; [`escalation`] keeps a user from
//! granting what they do not hold; [`reviews`] answers the access reviews kubectl's `auth
//! can-i` and `auth whoami` send; [`impersonation`] lets an allowed user act as another.

pub mod bootstrap_policy;
pub mod escalation;
pub mod impersonation;
pub mod node;
pub mod rbac;
pub mod request_info;
pub mod reviews;

use super::authentication::{MASTERS_GROUP, UserInfo};
use super::status::ApiError;

pub use rbac::Rbac;
pub use request_info::Attributes;

/// What the authorizers decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and why.
    Allow(String),
    /// Nothing allows it.
    Deny,
}

/// The authorizer chain.
pub struct Authorizer {
    /// RBAC over the cached policy objects.
    pub rbac: Rbac,
    /// What the Node authorizer reads (pods and what they use).
    pub cache: super::watch_cache::WatchCache,
}

impl Authorizer {
    /// Whether `user` may do what `attributes` describe.
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        if user.in_group(MASTERS_GROUP) {
            return Decision::Allow(format!("user is in the {MASTERS_GROUP} group"));
        }
        if let Some(allowed @ Decision::Allow(_)) = node::authorize(user, attributes, &self.cache) {
            return allowed;
        }
        self.rbac.authorize(user, attributes)
    }

    /// `Ok` when allowed, else the 403 Kubernetes answers.
    pub fn check(&self, user: &UserInfo, attributes: &Attributes) -> Result<(), ApiError> {
        match self.authorize(user, attributes) {
            Decision::Allow(_) => Ok(()),
            Decision::Deny => Err(ApiError::Forbidden(forbidden_message(user, attributes))),
        }
    }
}

/// Kubernetes' 403 message: `pods "web" is forbidden: User "jane" cannot get resource
/// "pods" in API group "" in the namespace "default"` (`responsewriters.forbiddenMessage`
/// in `errors.NewForbidden`).
pub fn forbidden_message(user: &UserInfo, a: &Attributes) -> String {
    let username = &user.username;
    if !a.resource_request {
        return format!(
            "forbidden: User \"{username}\" cannot {} path \"{}\"",
            a.verb, a.path
        );
    }
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource = format!("{resource}/{}", a.subresource);
    }
    let why = match &a.namespace {
        ns if !ns.is_empty() => format!(
            "User \"{username}\" cannot {} resource \"{resource}\" in API group \"{}\" in the namespace \"{ns}\"",
            a.verb, a.api_group
        ),
        _ => format!(
            "User \"{username}\" cannot {} resource \"{resource}\" in API group \"{}\" at the cluster scope",
            a.verb, a.api_group
        ),
    };
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    if a.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} \"{}\" is forbidden: {why}", a.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_read_as_kubernetes_writes_them() {
        let jane = UserInfo::new("jane", &[]);
        let list = Attributes::resource("list", "", "pods", "", "default", "");
        assert_eq!(
            forbidden_message(&jane, &list),
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let get = Attributes::resource("get", "apps", "deployments", "scale", "", "web");
        assert_eq!(
            forbidden_message(&jane, &get),
            "deployments.apps \"web\" is forbidden: User \"jane\" cannot get resource \"deployments/scale\" in API group \"apps\" at the cluster scope"
        );
        let path = Attributes::non_resource("get", "/metrics");
        assert_eq!(
            forbidden_message(&jane, &path),
            "forbidden: User \"jane\" cannot get path \"/metrics\""
        );
    }
}
