//! `GET /pods`: the pods this agent runs as a v1 `PodList`, as the kubelet's `/pods` answers:
//! the pods bound to this node and its static pods, each with the status the agent computed
//! last ([`crate::kubelet::pod_view`]).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;

use super::ServerState;

/// The `PodList` of `pods`, as JSON.
pub fn pod_list(pods: Vec<Pod>) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&List::<Pod> {
        items: pods,
        ..Default::default()
    })
}

/// The handler.
pub(super) async fn pods<R>(State(state): State<ServerState<R>>) -> Response {
    match pod_list(state.pods.pods()) {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the pod list: {err}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn is_a_v1_pod_list() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(String::from("web")),
                namespace: Some(String::from("default")),
                ..Default::default()
            },
            ..Default::default()
        };
        let list: serde_json::Value =
            serde_json::from_slice(&pod_list(vec![pod]).expect("encodes")).expect("json");
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["items"][0]["metadata"]["name"], "web");
    }
}
