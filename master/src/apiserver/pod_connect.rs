//! `pods/<name>/exec` (`kubectl exec`, `kubectl cp`), `pods/<name>/attach` (`kubectl
//! attach`) and `pods/<name>/portforward` (`kubectl port-forward`): the API server checks the
//! request against the pod, then carries the client's upgraded connection (a WebSocket in
//! Kubernetes' remote command protocol, or the SPDY session kubectl tunnels in one for port
//! forwarding) to the agent of the pod's node, as kube-apiserver's upgrade-aware proxy does:
//! the handshake goes to the agent's `/exec/<ns>/<pod>/<container>` (`/attach/...`,
//! `/portForward/<ns>/<pod>`) with the kubelet client certificate, the agent's 101 comes back
//! to the client, and from then on the bytes flow both ways untouched.
//!
//! Served: WebSockets (`v5.channel.k8s.io`, `v4.channel.k8s.io`), which kubectl v1.32 uses
//! first. SPDY/3.1 is not: a client that only speaks it gets the agent's 400.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::debug;

use super::ApiServer;
use super::objects;
use super::pod_logs::{agent_error, container_name, kubelet_address};
use super::request::Target;
use super::status::ApiError;

/// The handshake headers that go to the agent (WebSocket, and SPDY's version header).
const HANDSHAKE: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// What the agent is asked for, from the API's `PodExecOptions` or `PodAttachOptions`.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecOptions {
    /// The container (checked against the pod).
    pub container: Option<String>,
    /// The agent's query: `command` repeated, `input`, `output`, `error`, `tty`.
    pub agent_query: String,
}

impl ExecOptions {
    /// Reads `command` (repeated; an exec needs one), `container`, `stdin`, `stdout`, `stderr`
    /// and `tty`, with Kubernetes' errors for what cannot run.
    pub fn parse(raw_query: Option<&str>, exec: bool) -> Result<ExecOptions, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query.unwrap_or(""))
            .map_err(|err| ApiError::BadRequest(format!("invalid query string: {err}")))?;
        let flag = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .is_some_and(|(_, v)| matches!(v.as_str(), "1" | "true" | "True"))
        };
        let mut agent: Vec<(&str, &str)> = pairs
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| ("command", v.as_str()))
            .collect();
        if agent.is_empty() && exec {
            return Err(ApiError::BadRequest(String::from(
                "you must specify at least one command for the container",
            )));
        }
        for (api, kubelet) in [
            ("stdin", "input"),
            ("stdout", "output"),
            ("stderr", "error"),
            ("tty", "tty"),
        ] {
            if flag(api) {
                agent.push((kubelet, "1"));
            }
        }
        if !(flag("stdin") || flag("stdout") || flag("stderr")) {
            return Err(ApiError::BadRequest(String::from(
                "you must specify at least 1 of stdin, stdout, stderr",
            )));
        }
        let agent_query = serde_urlencoded::to_string(&agent)
            .map_err(|err| ApiError::Internal(format!("encoding the exec query: {err}")))?;
        let container = pairs
            .iter()
            .rev()
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v.clone());
        Ok(ExecOptions {
            container,
            agent_query,
        })
    }
}

impl ApiServer {
    /// GET or POST `pods/<name>/exec`, `attach` or `portforward`: the client's upgraded
    /// connection carried to the agent.
    pub(super) async fn pod_connect(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        raw_query: Option<&str>,
        headers: &HeaderMap,
        upgrade: Option<OnUpgrade>,
    ) -> Result<Response, ApiError> {
        if method != Method::GET && method != Method::POST {
            return Err(ApiError::MethodNotAllowed);
        }
        let target = Target::parse(path)?;
        let name = target.name()?;
        let namespace = target.namespace.as_deref().unwrap_or("default");
        let subresource = target.subresource.as_deref().unwrap_or("");
        let exec = subresource == "exec";
        let pod = objects::decode(&self.current(&target).await?)?;
        if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
            let what = match subresource {
                "exec" => "exec into",
                "attach" => "attach to",
                _ => "forward ports of",
            };
            return Err(ApiError::BadRequest(format!(
                "cannot {what} a container in a completed pod; current phase is {phase}"
            )));
        }
        let agent_path = if subresource == "portforward" {
            let query = raw_query.unwrap_or("");
            format!("/portForward/{namespace}/{name}?{query}")
        } else {
            let options = ExecOptions::parse(raw_query, exec)?;
            let container = container_name(&pod, name, options.container.as_deref())?;
            let endpoint = if exec { "exec" } else { "attach" };
            format!(
                "/{endpoint}/{namespace}/{name}/{container}?{}",
                options.agent_query
            )
        };
        let node_name = pod["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::BadRequest(format!("pod {name} does not have a host assigned"))
            })?;
        let Some(client_side) = upgrade else {
            return Err(ApiError::BadRequest(String::from(
                "Upgrade request required",
            )));
        };
        let node = self.node(node_name).await?;
        let addr = kubelet_address(&node, node_name)?;
        let mut request = hyper::Request::get(&agent_path)
            .body(Empty::<Bytes>::new())
            .map_err(|err| ApiError::Internal(format!("the agent's exec request: {err}")))?;
        for name in HANDSHAKE {
            for value in headers.get_all(*name) {
                request
                    .headers_mut()
                    .append(HeaderName::from_static(name), value.clone());
            }
        }
        let mut agent = self
            .kubelet
            .upgrade(addr, request)
            .await
            .map_err(|err| ApiError::Internal(format!("error dialing backend: {err}")))?;
        if agent.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = agent.status();
            return Err(agent_error(status, agent.into_body(), node_name).await);
        }
        let agent_side = hyper::upgrade::on(&mut agent);
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for (name, value) in agent.headers() {
            if name != header::CONTENT_LENGTH {
                response.headers_mut().append(name, value.clone());
            }
        }
        let pod_name = name.to_owned();
        tokio::spawn(async move {
            let (client, agent) = match tokio::try_join!(client_side, agent_side) {
                Ok(both) => both,
                Err(err) => return debug!(pod = %pod_name, "exec upgrade failed: {err}"),
            };
            let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
            if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
                debug!(pod = %pod_name, "exec connection ended: {err}");
            }
        });
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_options_become_the_kubelets_query() {
        let query = "command=sh&command=-c&command=echo+a%26b&container=app&stdin=true&stdout=true&tty=true";
        let options = ExecOptions::parse(Some(query), true).expect("valid");
        assert_eq!(options.container.as_deref(), Some("app"));
        assert_eq!(
            options.agent_query,
            "command=sh&command=-c&command=echo+a%26b&input=1&output=1&tty=1"
        );
        let err = ExecOptions::parse(Some("stdout=true"), true).expect_err("no command");
        assert!(err.to_string().contains("at least one command"), "{err}");
        let err = ExecOptions::parse(Some("command=ls&tty=true"), true).expect_err("no stream");
        assert!(err.to_string().contains("at least 1 of stdin"), "{err}");
        let attach = ExecOptions::parse(Some("stdin=true&stdout=true"), false).expect("valid");
        assert_eq!(attach.agent_query, "input=1&output=1");
    }
}
