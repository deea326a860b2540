//! The API server: Kubernetes' REST API over the store, spoken in the wire format the real
//! kubectl and client libraries expect. It is the only component that touches the store.
//!
//! One file per concern: `request` reads paths, queries and bodies; `create`, `read`
//! (get, list, watch), `update` (update, patch, status), `delete` and `subresources`
//! (binding, scale) are the verbs; `pod_logs` streams container logs from the node agents
//! through `kubelet_client`, and `node_proxy` forwards `nodes/<name>/proxy/...` to them;
//! `metrics_api` serves `metrics.k8s.io` (`kubectl top`) from their summaries; `discovery` and
//! `openapi` describe the API; `pki`, `authentication` and `authorization` guard it;
//! `resources` lists the served types and admits their objects, and
//! `resource_quota` charges creates to the namespace's quotas; `watch_cache`
//! follows the store once and serves every watcher from memory; `negotiation` picks the
//! representation a client asks for (JSON, a Table, or `protobuf`, which also reads protobuf
//! bodies).

pub mod allocator;
pub mod authentication;
pub mod authorization;
pub mod bootstrap;
pub mod bootstrap_tokens;
pub mod certificates;
pub mod create;
pub mod defaults;
pub mod delete;
pub mod discovery;
pub mod eviction;
pub mod field_error;
pub mod kubelet_client;
pub mod metrics;
pub mod metrics_api;
pub mod negotiation;
pub mod node_proxy;
pub mod objects;
pub mod openapi;
pub mod overload;
pub mod patch;
pub mod pki;
pub mod pod_connect;
pub mod pod_logs;
pub mod pod_security;
pub mod protobuf;
pub mod read;
pub mod request;
pub mod resource_quota;
pub mod resources;
pub mod server;
pub mod service_account_admission;
pub mod service_account_tokens;
pub mod status;
pub mod strategic_merge;
pub mod subresources;
pub mod table;
pub mod update;
pub mod validation;
pub mod watch_cache;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use allocator::{NodePorts, ServiceIps};
use kubelet_client::KubeletClient;
use metrics::{Metrics, RequestInfo};
use negotiation::Representation;
use openapi::OpenApi;
use request::{Query, Target};
use status::ApiError;
use watch_cache::WatchCache;

use crate::store::Store;

pub use server::{Config, serve};

/// Everything a request handler needs: the store and the server's own state.
pub struct ApiServer {
    /// The store; nothing else in the master touches it.
    pub store: Arc<dyn Store>,
    /// Every watch and most lists are served from here: one store watch for the server.
    pub watch_cache: WatchCache,
    /// ClusterIP allocation.
    pub service_ips: ServiceIps,
    /// NodePort allocation.
    pub node_ports: NodePorts,
    /// Request metrics.
    pub metrics: Metrics,
    /// The OpenAPI documents.
    pub openapi: OpenApi,
    /// Who a request is from.
    pub authenticator: authentication::Authenticator,
    /// What they may do.
    pub authorizer: authorization::Authorizer,
    /// The address clients reach the server at (`127.0.0.1:6443`), for discovery.
    pub advertise_address: String,
    /// Calls node agents (container logs), with the API server's client certificate.
    pub kubelet: KubeletClient,
    /// One quota check at a time per namespace (ResourceQuota admission).
    pub quota_locks: resource_quota::NamespaceLocks,
    /// Seats for requests in flight and open watches.
    pub inflight: overload::InFlight,
}

/// A JSON response with the given status.
pub fn json_response(code: StatusCode, body: impl Into<bytes::Bytes>) -> Response {
    let mut resp = (code, body.into()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A response in Kubernetes' protobuf encoding (a `k8s\0` body) with the given status.
pub fn protobuf_response(code: StatusCode, body: impl Into<bytes::Bytes>) -> Response {
    let mut resp = (code, body.into()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protobuf::MEDIA_TYPE),
    );
    resp
}

/// A JSON response of a value.
pub fn json_value(code: StatusCode, value: &Value) -> Response {
    json_response(code, serde_json::to_vec(value).unwrap_or_default())
}

/// Attach `Warning` headers (e.g. unknown fields under `fieldValidation=Warn`).
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        // A quoted-string (RFC 9110): quotes and backslashes escaped, as client-go unescapes.
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

impl ApiServer {
    /// Serve one request under `/api` or `/apis` that names a resource.
    pub async fn handle_resource(
        self: &Arc<Self>,
        method: Method,
        path: &str,
        raw_query: Option<&str>,
        headers: &HeaderMap,
        body: Body,
    ) -> (Result<Response, ApiError>, RequestInfo) {
        let mut info = RequestInfo {
            verb: "unknown",
            resource: String::new(),
        };
        let result = async {
            let target = Target::parse(path)?;
            let query = Query::parse(raw_query)?;
            info.resource = match &target.subresource {
                Some(sub) => format!("{}/{sub}", target.resource.plural),
                None => target.resource.plural.to_string(),
            };
            let sub = target.subresource.as_deref();
            match (method, target.name.is_some(), sub) {
                (Method::GET, false, None) if query.flag("watch") => {
                    info.verb = "watch";
                    self.watch(&target, &query, headers).await
                }
                (Method::GET, false, None) => {
                    info.verb = "list";
                    self.list(&target, &query, headers).await
                }
                (Method::GET, true, None) if query.flag("watch") => {
                    info.verb = "watch";
                    self.watch(&target, &query, headers).await
                }
                (Method::GET, true, None | Some("status" | "approval")) => {
                    info.verb = "get";
                    self.get(&target, &query, headers).await
                }
                (Method::GET, true, Some("scale")) => {
                    info.verb = "get";
                    self.get_scale(&target).await
                }
                (Method::GET, true, Some("log")) => {
                    info.verb = "get";
                    self.pod_log(&target, &query).await
                }
                (Method::POST, false, None) => {
                    info.verb = "create";
                    let body = request::read_body(body).await?;
                    self.create(&target, &query, headers, &body).await
                }
                (Method::POST, true, Some("eviction")) => {
                    info.verb = "create";
                    let body = request::read_body(body).await?;
                    self.evict(&target, headers, &body).await
                }
                (Method::POST, true, Some("token")) => {
                    info.verb = "create";
                    let body = request::read_body(body).await?;
                    self.token_request(&target, headers, &body).await
                }
                (Method::POST, true, Some("binding")) => {
                    info.verb = "create";
                    let body = request::read_body(body).await?;
                    self.bind(&target, headers, &body).await
                }
                (Method::PUT, true, None | Some("status" | "finalize" | "approval")) => {
                    info.verb = "update";
                    let body = request::read_body(body).await?;
                    self.replace(&target, &query, headers, &body).await
                }
                (Method::PUT, true, Some("scale")) => {
                    info.verb = "update";
                    let body = request::read_body(body).await?;
                    self.replace_scale(&target, headers, &body).await
                }
                (Method::PATCH, true, None | Some("status" | "approval")) => {
                    info.verb = "patch";
                    let body = request::read_body(body).await?;
                    self.patch(&target, &query, headers, &body).await
                }
                (Method::PATCH, true, Some("scale")) => {
                    info.verb = "patch";
                    let body = request::read_body(body).await?;
                    self.patch_scale(&target, headers, &body).await
                }
                (Method::DELETE, true, None) => {
                    info.verb = "delete";
                    let body = request::read_body(body).await?;
                    self.delete(&target, &query, headers, &body).await
                }
                (Method::DELETE, false, None) => {
                    info.verb = "deletecollection";
                    let body = request::read_body(body).await?;
                    self.delete_collection(&target, &query, headers, &body)
                        .await
                }
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
        .await;
        // Reads write the representation asked for themselves; the other answers are JSON
        // objects here, encoded again for a client that asks for protobuf.
        let result = match result {
            Ok(response) if !matches!(info.verb, "get" | "list" | "watch") => {
                in_protobuf_if_asked(response, headers).await
            }
            other => other,
        };
        (result, info)
    }
}

/// A JSON object answer in Kubernetes' protobuf encoding when the request asks for it (an
/// object whose kind has none stays JSON if the request also takes JSON, else 406). Errors
/// stay JSON `Status` bodies, which Go clients read by their Content-Type.
pub(crate) async fn in_protobuf_if_asked(
    response: Response,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let Ok(Representation::Protobuf { or_json }) = Representation::negotiate(accept) else {
        return Ok(response);
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if !is_json {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("reading the answer: {e}")))?;
    let object: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Internal(format!("the answer is not JSON: {e}")))?;
    match protobuf::encode::body(&object) {
        Ok(encoded) => Ok(protobuf_response(parts.status, encoded)),
        Err(protobuf::ProtobufError::UnsupportedKind { .. }) if or_json => {
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
        Err(protobuf::ProtobufError::UnsupportedKind { api_version, kind }) => {
            Err(ApiError::NotAcceptable(format!(
                "{kind} of {api_version} has no protobuf form; ask for application/json"
            )))
        }
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}
