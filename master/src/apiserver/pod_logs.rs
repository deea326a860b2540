//! `GET pods/<name>/log` (`kubectl logs`): the API server checks the request against the pod,
//! finds the agent of the pod's node (its InternalIP and `daemonEndpoints.kubeletEndpoint`
//! port) and streams the agent's `/containerLogs/<ns>/<pod>/<container>` through, so `-f`
//! follows until the container stops or the client goes away.
//!
//! Error texts are Kubernetes' own, so kubectl users see what they know.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use super::ApiServer;
use super::field_error::FieldError;
use super::objects;
use super::request::{Query, Target};
use super::resources;
use super::status::ApiError;

/// The kubelet's port when a Node publishes none.
const DEFAULT_KUBELET_PORT: u16 = 10250;
/// How much of an agent's error answer is read for the message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

impl ApiServer {
    /// GET `pods/<name>/log`: the container's log from the node agent, streamed.
    pub(super) async fn pod_log(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
    ) -> Result<Response, ApiError> {
        let name = target.name()?;
        let namespace = target.namespace.as_deref().unwrap_or("default");
        let pod = objects::decode(&self.current(target).await?)?;
        let forwarded = forwarded_query(query, name)?;
        let container = container_name(&pod, name, query.get("container"))?;
        let node_name = pod["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::BadRequest(format!("pod {name} does not have a host assigned"))
            })?;
        let node = self.node(node_name).await?;
        let addr = kubelet_address(&node, node_name)?;
        let path = format!("/containerLogs/{namespace}/{name}/{container}{forwarded}");
        let url = format!("https://{addr}{path}");
        let response = self
            .kubelet
            .get(addr, &path)
            .await
            .map_err(|err| ApiError::Internal(format!("Get \"{url}\": {err}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(agent_error(status, response.into_body(), node_name).await);
        }
        let mut response = (StatusCode::OK, Body::new(response.into_body())).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        Ok(response)
    }

    /// The Node object `name`.
    pub(super) async fn node(&self, name: &str) -> Result<Value, ApiError> {
        let nodes = resources::find("", "v1", "nodes")
            .ok_or_else(|| ApiError::Internal("the nodes resource is not served".into()))?;
        let kv = self
            .store
            .get(&objects::key(nodes, None, name))
            .await?
            .ok_or_else(|| ApiError::NotFound {
                kind: String::from("nodes"),
                name: name.to_owned(),
            })?;
        objects::decode(&kv)
    }
}

/// The container whose log is wanted: the one named, or the only one; Kubernetes' errors
/// otherwise.
pub fn container_name(
    pod: &Value,
    name: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    match requested.filter(|c| !c.is_empty()) {
        Some(container) => {
            let known = containers
                .iter()
                .chain(&names("initContainers"))
                .chain(&names("ephemeralContainers"))
                .any(|c| c == container);
            if known {
                Ok(container.to_owned())
            } else {
                Err(ApiError::BadRequest(format!(
                    "container {container} is not valid for pod {name}"
                )))
            }
        }
        None => match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}"
            ))),
            several => {
                let mut message = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    several.join(" ")
                );
                let init = names("initContainers");
                if !init.is_empty() {
                    message.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(ApiError::BadRequest(message))
            }
        },
    }
}

/// The agent's query (`?follow=true&tailLines=1...`, empty if nothing is asked) from the
/// request's `PodLogOptions`, validated as Kubernetes validates them (422).
pub fn forwarded_query(query: &Query, name: &str) -> Result<String, ApiError> {
    let mut causes = Vec::new();
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for flag in ["follow", "previous", "timestamps"] {
        if query.flag(flag) {
            pairs.push((flag, String::from("true")));
        }
    }
    for (field, min, detail) in [
        ("tailLines", 0, "must be greater than or equal to 0"),
        ("sinceSeconds", 1, "must be greater than 0"),
        ("limitBytes", 1, "must be greater than 0"),
    ] {
        if let Some(value) = query.int(field)? {
            if value < min {
                causes.push(FieldError::invalid(field, value, detail));
            }
            pairs.push((field, value.to_string()));
        }
    }
    if let Some(since_time) = query.get("sinceTime").filter(|t| !t.is_empty()) {
        if chrono::DateTime::parse_from_rfc3339(since_time).is_err() {
            return Err(ApiError::BadRequest(format!(
                "sinceTime: invalid time {since_time:?}, want RFC 3339"
            )));
        }
        if query.get("sinceSeconds").is_some_and(|s| !s.is_empty()) {
            causes.push(FieldError::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ));
        }
        pairs.push(("sinceTime", since_time.to_owned()));
    }
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            kind: String::from("PodLogOptions"),
            group: String::new(),
            name: name.to_owned(),
            causes,
        });
    }
    if pairs.is_empty() {
        return Ok(String::new());
    }
    serde_urlencoded::to_string(&pairs)
        .map(|encoded| format!("?{encoded}"))
        .map_err(|err| ApiError::Internal(format!("encoding the log query: {err}")))
}

/// Where the node's agent listens: its InternalIP and published kubelet port.
pub fn kubelet_address(node: &Value, node_name: &str) -> Result<SocketAddr, ApiError> {
    let addresses = node["status"]["addresses"].as_array();
    let ip = addresses
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "InternalIP")
        .find_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
        .ok_or_else(|| {
            let known: Vec<String> = addresses
                .into_iter()
                .flatten()
                .map(|a| format!("{}:{}", a["type"].as_str().unwrap_or(""), a["address"].as_str().unwrap_or("")))
                .collect();
            ApiError::Internal(format!(
                "node {node_name} has no InternalIP address to reach its agent at; known addresses: [{}]",
                known.join(" ")
            ))
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(SocketAddr::new(ip, port))
}

/// An agent's error answer as the API error the client sees (the agent's text as message).
pub(super) async fn agent_error(
    status: StatusCode,
    body: hyper::body::Incoming,
    node_name: &str,
) -> ApiError {
    let text = match Limited::new(body, ERROR_BODY_LIMIT).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        Err(err) => format!("(reading the answer failed: {err})"),
    };
    match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(text),
        StatusCode::NOT_FOUND => ApiError::NotFoundPath(text),
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(text),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::Internal(format!(
            "the node agent of {node_name} refused the API server ({status}): {text}"
        )),
        _ => ApiError::Internal(format!(
            "the node agent of {node_name} answered {status}: {text}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({"spec": {
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "app"}, {"name": "sidecar"}],
        }})
    }

    #[test]
    fn the_container_is_named_or_the_only_one() {
        assert_eq!(
            container_name(&pod(), "web", Some("app")).expect("ok"),
            "app"
        );
        assert_eq!(
            container_name(&pod(), "web", Some("setup")).expect("ok"),
            "setup"
        );
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(container_name(&one, "web", None).expect("ok"), "app");
        assert_eq!(
            container_name(&pod(), "web", None)
                .expect_err("ambiguous")
                .to_string(),
            "a container name must be specified for pod web, choose one of: [app sidecar] or one of the init containers: [setup]"
        );
        assert_eq!(
            container_name(&pod(), "web", Some("nope"))
                .expect_err("unknown")
                .to_string(),
            "container nope is not valid for pod web"
        );
    }

    #[test]
    fn the_query_is_validated_and_forwarded() {
        let query = Query::parse(Some(
            "container=app&follow=true&tailLines=1&timestamps=true",
        ))
        .expect("query");
        assert_eq!(
            forwarded_query(&query, "web").expect("valid"),
            "?follow=true&timestamps=true&tailLines=1"
        );
        let none = Query::parse(None).expect("query");
        assert_eq!(forwarded_query(&none, "web").expect("valid"), "");
        for bad in [
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=5&sinceTime=2024-05-01T10:00:00Z",
        ] {
            let query = Query::parse(Some(bad)).expect("query");
            let err = forwarded_query(&query, "web").expect_err(bad);
            assert_eq!(err.code(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {err}");
        }
    }

    #[test]
    fn the_agent_is_at_the_internal_ip_and_published_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 40123}},
        }});
        assert_eq!(
            kubelet_address(&node, "n1").expect("address"),
            "127.0.0.1:40123".parse().expect("addr")
        );
        let unpublished =
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}});
        assert_eq!(
            kubelet_address(&unpublished, "n1").expect("address").port(),
            DEFAULT_KUBELET_PORT
        );
        let nameless = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert!(kubelet_address(&nameless, "n1").is_err());
    }
}
