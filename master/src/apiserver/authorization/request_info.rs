//! A request's authorization attributes, read from its method, path and query as Kubernetes'
//! `RequestInfoFactory` (`apiserver/pkg/endpoints/request/requestinfo.go`) reads them: paths
//! under `/api` and `/apis` that name a resource are resource requests (verb, API group,
//! resource, subresource, namespace, name); everything else (discovery, `/healthz`,
//! `/metrics`) is a non-resource request whose verb is the lower-case HTTP method.
//!
//! Where skiff differs: `exec`, `attach` and `portforward` are `create` whatever the method
//! (kubectl opens them with a GET WebSocket upgrade; Kubernetes 1.32 asks for `create` on
//! those too).

use axum::http::Method;

use crate::apiserver::request::Query;

/// What a request asks to do (Kubernetes' `authorizer.Attributes`, less the user).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
    /// another verb (`impersonate`, `bind`, `escalate`); the lower-case method for a
    /// non-resource request.
    pub verb: String,
    /// Whether the request names a resource (else it is about `path`).
    pub resource_request: bool,
    /// API group (empty: core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`status`, `scale`), or empty.
    pub subresource: String,
    /// Namespace, or empty for cluster-scoped and all-namespace requests.
    pub namespace: String,
    /// Object name, or empty.
    pub name: String,
    /// The request path (for non-resource requests).
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Self {
            verb: verb.to_owned(),
            resource_request: true,
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// A non-resource request.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Default::default()
        }
    }

    /// The attributes of a request.
    pub fn of_request(method: &Method, path: &str, query: Option<&str>) -> Self {
        let non_resource = || Self::non_resource(&method.as_str().to_ascii_lowercase(), path);
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", rest @ ..] if rest.len() >= 2 => ("", rest),
            ["apis", group, rest @ ..] if rest.len() >= 2 => (*group, rest),
            _ => return non_resource(),
        };
        let (version, mut rest) = (rest[0], &rest[1..]);
        let mut verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        };
        if rest.first() == Some(&"watch") {
            verb = "watch";
            rest = &rest[1..];
        }
        let mut namespace = "";
        if rest.first() == Some(&"namespaces") && rest.len() > 1 {
            namespace = rest[1];
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        let Some(resource) = rest.first() else {
            return non_resource();
        };
        let mut name = rest.get(1).copied().unwrap_or("").to_owned();
        let subresource = rest.get(2).copied().unwrap_or("");
        if name.is_empty() && verb == "get" {
            let query = Query::parse(query).unwrap_or_default();
            verb = if query.flag("watch") { "watch" } else { "list" };
            // A list or watch of one object by its name is about that name.
            if let Some(selected) = query
                .get("fieldSelector")
                .and_then(|s| s.strip_prefix("metadata.name="))
                .filter(|n| !n.is_empty() && !n.contains([',', '/', '!', '=']))
            {
                name = selected.to_owned();
            }
        }
        if name.is_empty() && verb == "delete" {
            verb = "deletecollection";
        }
        if matches!(subresource, "exec" | "attach" | "portforward") && !verb.is_empty() {
            verb = "create";
        }
        Self {
            verb: verb.to_owned(),
            resource_request: true,
            api_group: group.to_owned(),
            api_version: version.to_owned(),
            resource: (*resource).to_owned(),
            subresource: subresource.to_owned(),
            namespace: namespace.to_owned(),
            name,
            path: path.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, path: &str, query: Option<&str>) -> Attributes {
        Attributes::of_request(&method, path, query)
    }

    #[test]
    fn resource_requests_are_read_as_kubernetes_reads_them() {
        let list = of(Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            (
                list.verb.as_str(),
                list.namespace.as_str(),
                list.resource.as_str()
            ),
            ("list", "default", "pods")
        );
        let watch = of(Method::GET, "/apis/apps/v1/deployments", Some("watch=1"));
        assert_eq!(
            (watch.verb.as_str(), watch.api_group.as_str()),
            ("watch", "apps")
        );
        let one = of(
            Method::GET,
            "/api/v1/nodes",
            Some("fieldSelector=metadata.name%3Dnode-a&watch=true"),
        );
        assert_eq!((one.verb.as_str(), one.name.as_str()), ("watch", "node-a"));
        let status = of(
            Method::PUT,
            "/api/v1/namespaces/default/pods/web/status",
            None,
        );
        assert_eq!(
            (
                status.verb.as_str(),
                status.name.as_str(),
                status.subresource.as_str()
            ),
            ("update", "web", "status")
        );
        let ns = of(Method::GET, "/api/v1/namespaces/kube-system", None);
        assert_eq!(
            (
                ns.resource.as_str(),
                ns.name.as_str(),
                ns.namespace.as_str()
            ),
            ("namespaces", "kube-system", "kube-system")
        );
        let finalize = of(Method::PUT, "/api/v1/namespaces/gone/finalize", None);
        assert_eq!(
            (finalize.resource.as_str(), finalize.subresource.as_str()),
            ("namespaces", "finalize")
        );
        let all = of(
            Method::DELETE,
            "/api/v1/namespaces/default/configmaps",
            None,
        );
        assert_eq!(all.verb, "deletecollection");
        let exec = of(
            Method::GET,
            "/api/v1/namespaces/default/pods/web/exec",
            None,
        );
        assert_eq!(
            (exec.verb.as_str(), exec.subresource.as_str()),
            ("create", "exec")
        );
    }

    #[test]
    fn discovery_and_health_are_non_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/healthz",
            "/openapi/v3",
        ] {
            let a = of(Method::GET, path, None);
            assert!(!a.resource_request, "{path}");
            assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", path));
        }
        assert_eq!(of(Method::POST, "/metrics", None).verb, "post");
    }
}
