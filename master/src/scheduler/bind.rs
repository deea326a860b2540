//! Binding: the decision written through the `pods/binding` subresource, as kube-scheduler
//! writes it. The caller forgets the assumption when it fails; a pod that is gone or was bound
//! by someone else is dropped (the watch brings its real state), anything else is retried
//! after the pod's backoff.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use super::pod_info::PodInfo;

/// How a binding went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindOutcome {
    /// The pod is bound to the node.
    Bound,
    /// The pod is gone, being deleted, recreated or already bound: nothing to retry.
    Drop(String),
    /// A failure worth another attempt (server error, connection lost).
    Retry(String),
}

/// Writes the Binding of `pod` to `node`.
pub async fn bind(client: &kube::Client, pod: &PodInfo, node: &str) -> BindOutcome {
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    let body = match serde_json::to_vec(&binding) {
        Ok(body) => body,
        Err(e) => return BindOutcome::Drop(format!("encoding the binding: {e}")),
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let result = pods
        .create_subresource::<serde_json::Value>("binding", &pod.name, &PostParams::default(), body)
        .await;
    outcome(result)
}

fn outcome<T>(result: Result<T, kube::Error>) -> BindOutcome {
    match result {
        Ok(_) => BindOutcome::Bound,
        // 404: the pod was deleted. 409: already bound, being deleted, or another pod of
        // that name (a new uid). The watch tells the rest.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => BindOutcome::Drop(e.message),
        Err(e) => BindOutcome::Retry(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ErrorResponse;

    fn api_error(code: u16) -> Result<(), kube::Error> {
        Err(kube::Error::Api(ErrorResponse {
            status: "Failure".into(),
            message: format!("error {code}"),
            reason: String::new(),
            code,
        }))
    }

    #[test]
    fn gone_or_taken_pods_are_dropped_and_the_rest_retried() {
        assert_eq!(outcome(Ok(())), BindOutcome::Bound);
        assert!(matches!(outcome(api_error(404)), BindOutcome::Drop(_)));
        assert!(matches!(outcome(api_error(409)), BindOutcome::Drop(_)));
        assert!(matches!(outcome(api_error(500)), BindOutcome::Retry(_)));
        assert!(matches!(outcome(api_error(429)), BindOutcome::Retry(_)));
    }
}
