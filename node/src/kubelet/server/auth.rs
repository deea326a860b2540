//! Who may call the endpoint, as the kubelet's webhook authorization
//! (`pkg/kubelet/server/auth.go`, `--authorization-mode=Webhook`): the caller is the subject
//! of its client certificate (the cluster CA signed it; CN the user, O the groups), and what
//! it asks maps to `nodes/<subresource>` of this node (`/stats/*` to `stats`, `/metrics` to
//! `metrics`, `/logs/*` to `log`, everything else, exec and logs of containers included, to
//! `proxy`) with the verb of the method. The API server answers with a SubjectAccessReview;
//! answers are kept 5 minutes when allowed and 30 seconds when not, as the kubelet's cache
//! does. A refusal is 403 `Forbidden (user=..., verb=..., resource=nodes,
//! subresource=...)`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use tracing::warn;

/// How long an allowed answer is kept.
const ALLOWED_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a refusal is kept.
const DENIED_TTL: Duration = Duration::from_secs(30);

/// The subject of a client certificate, put into each request of its connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The certificate's common name.
    pub user: String,
    /// Its organizations.
    pub groups: Vec<String>,
}

impl Caller {
    /// The subject of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Option<Caller> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = certificate.subject();
        let user = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        Some(Caller { user, groups })
    }
}

/// The `nodes` subresource and verb a request asks for.
pub fn attributes(method: &Method, path: &str) -> (&'static str, &'static str) {
    let subresource = if path.starts_with("/stats") {
        "stats"
    } else if path.starts_with("/metrics") {
        "metrics"
    } else if path.starts_with("/logs") {
        "log"
    } else {
        "proxy"
    };
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    };
    (subresource, verb)
}

type Key = (Caller, &'static str, &'static str);

/// Asks the API server, and remembers its answers.
#[derive(Clone)]
pub struct Authorizer {
    client: Option<kube::Client>,
    node: String,
    answers: Arc<Mutex<HashMap<Key, (bool, Instant)>>>,
}

impl Authorizer {
    /// Asks through `client` about node `node` (no client: every caller with a certificate
    /// the CA signed is let in, for agents run without an API server in tests).
    pub fn new(client: Option<kube::Client>, node: &str) -> Self {
        Self {
            client,
            node: node.to_owned(),
            answers: Arc::default(),
        }
    }

    async fn allowed(
        &self,
        caller: &Caller,
        subresource: &'static str,
        verb: &'static str,
    ) -> bool {
        let Some(client) = &self.client else {
            return true;
        };
        let key = (caller.clone(), subresource, verb);
        let now = Instant::now();
        if let Some((allowed, until)) = self
            .answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && now < *until
        {
            return *allowed;
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.user.clone()),
                groups: Some(caller.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    resource: Some(String::from("nodes")),
                    subresource: Some(subresource.to_owned()),
                    name: Some(self.node.clone()),
                    verb: Some(verb.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(client.clone());
        let allowed = match api.create(&PostParams::default(), &review).await {
            Ok(answer) => answer.status.is_some_and(|s| s.allowed),
            Err(err) => {
                // Not remembered: the next request asks again.
                warn!("asking the API server who may call the endpoint: {err}");
                return false;
            }
        };
        let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (allowed, now + ttl));
        allowed
    }
}

/// The middleware: 401 without a caller, 403 when the API server says no.
pub async fn authorize(
    State(authorizer): State<Authorizer>,
    request: Request,
    next: Next,
) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    };
    let (subresource, verb) = attributes(request.method(), request.uri().path());
    if !authorizer.allowed(&caller, subresource, verb).await {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden (user={}, verb={verb}, resource=nodes, subresource={subresource})",
                caller.user
            ),
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_node_subresources() {
        assert_eq!(attributes(&Method::GET, "/stats/summary"), ("stats", "get"));
        assert_eq!(attributes(&Method::GET, "/metrics"), ("metrics", "get"));
        assert_eq!(attributes(&Method::GET, "/logs/syslog"), ("log", "get"));
        assert_eq!(
            attributes(&Method::GET, "/containerLogs/a/b/c"),
            ("proxy", "get")
        );
        assert_eq!(
            attributes(&Method::POST, "/exec/a/b/c"),
            ("proxy", "create")
        );
        assert_eq!(attributes(&Method::GET, "/healthz"), ("proxy", "get"));
    }
}
