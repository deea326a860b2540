//! `nodes/<name>/proxy/<path>`: the API server as a reverse proxy to a node agent's own
//! endpoints (`/healthz`, `/pods`, `/metrics`, `/stats/summary`, `/logs/`), as
//! kube-apiserver's `ProxyREST` for nodes does (pkg/registry/core/node/rest/proxy.go).
//!
//! The request goes to the agent found as for `kubectl logs` (the Node's InternalIP and
//! `daemonEndpoints.kubeletEndpoint` port) with the API server's kubelet client certificate:
//! any method, the path after `proxy`, the query string, the body and the end-to-end headers
//! (the client's `Authorization` is the API server's business, never the agent's). The agent's
//! answer comes back as it is (status, headers, streamed body); only a failure to reach the
//! agent is a `Status`, 503 "error trying to reach service", as apimachinery's proxy
//! transport answers.
//!
//! Differences from Kubernetes: the `<name>:<port>` form is served for the kubelet port only
//! (kube-apiserver would also proxy plain HTTP to other ports of the node), and a path with a
//! `.` or `..` segment is refused (400) instead of being cleaned, so nothing but the
//! path the client wrote reaches the agent.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, header};
use axum::response::Response;
use percent_encoding::percent_decode_str;

use super::ApiServer;
use super::pod_logs::kubelet_address;
use super::status::ApiError;

/// Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1), and
/// are not forwarded either way.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What the `{name}` segment of a node proxy path asks for (Kubernetes'
/// `SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port`).
#[derive(Debug, PartialEq, Eq)]
pub struct ProxyTarget<'a> {
    /// The node.
    pub node: &'a str,
    /// The port asked for, if any.
    pub port: Option<u16>,
}

impl<'a> ProxyTarget<'a> {
    /// Reads the (decoded) name segment; 400 when it is malformed, as Kubernetes answers.
    pub fn parse(id: &'a str) -> Result<ProxyTarget<'a>, ApiError> {
        let invalid = || ApiError::BadRequest(format!("invalid node request {id:?}"));
        let parts: Vec<&str> = id.split(':').collect();
        let (scheme, node, port) = match parts.as_slice() {
            [node] => ("", *node, None),
            [node, port] => ("", *node, Some(*port)),
            [scheme, node, port] => (*scheme, *node, Some(*port)),
            _ => return Err(invalid()),
        };
        if node.is_empty() || !matches!(scheme, "" | "http" | "https") {
            return Err(invalid());
        }
        let port = match port {
            None => None,
            Some(port) => Some(port.parse::<u16>().map_err(|_| invalid())?),
        };
        Ok(ProxyTarget { node, port })
    }
}

impl ApiServer {
    /// Any method on `nodes/<id>/proxy<rest>`: `rest` is the raw (still percent-encoded) path
    /// after `proxy`, empty or starting with `/`.
    pub(super) async fn node_proxy(
        self: &Arc<Self>,
        method: Method,
        id: &str,
        rest: &str,
        raw_query: Option<&str>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let id = percent_decode_str(id).decode_utf8_lossy();
        let target = ProxyTarget::parse(&id)?;
        let path = agent_path(rest)?;
        let node = self.node(target.node).await?;
        let addr = kubelet_address(&node, target.node)?;
        if let Some(port) = target.port.filter(|p| *p != addr.port()) {
            return Err(ApiError::BadRequest(format!(
                "proxying to port {port} of node {} is not supported: only its kubelet port {}",
                target.node,
                addr.port()
            )));
        }
        let path_and_query = match raw_query {
            Some(query) if !query.is_empty() => format!("{path}?{query}"),
            _ => path,
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&path_and_query)
            .body(body)
            .map_err(|err| ApiError::BadRequest(format!("invalid proxy request: {err}")))?;
        *request.headers_mut() = forwarded_headers(headers);
        let response = self.kubelet.send(addr, request).await.map_err(|err| {
            ApiError::Unavailable(format!("error trying to reach service: {err}"))
        })?;
        let (parts, incoming) = response.into_parts();
        let mut response = Response::new(Body::new(incoming));
        *response.status_mut() = parts.status;
        *response.headers_mut() = without_hop_by_hop(&parts.headers);
        Ok(response)
    }
}

/// The raw path after `/api/v1/nodes/<id>/proxy` (empty, or from its `/` on).
pub fn rest_of_path(path: &str) -> &str {
    // The path matched `api/v1/nodes/<id>/proxy/...` with empty segments dropped: find the
    // `proxy` after the id in the raw path.
    let mut rest = path;
    for _ in 0..5 {
        rest = rest.trim_start_matches('/');
        rest = rest.find('/').map_or("", |at| &rest[at..]);
    }
    rest
}

/// The agent's path for the raw path after `proxy` (`""` is the agent's `/`); 400 for a `.`
/// or `..` segment, also when percent-encoded or hidden in an encoded `/` or `\`, so the
/// request cannot reach anything but what it names.
pub fn agent_path(rest: &str) -> Result<String, ApiError> {
    if !rest.is_empty() && !rest.starts_with('/') {
        return Err(ApiError::NotFoundPath(format!(
            "the server could not find the requested resource (proxy{rest})"
        )));
    }
    let decoded = percent_decode_str(rest).decode_utf8_lossy();
    let escapes = decoded
        .split(['/', '\\'])
        .any(|segment| segment == "." || segment == "..");
    if escapes {
        return Err(ApiError::BadRequest(format!(
            "invalid proxy path {rest:?}: it must not contain \".\" or \"..\" segments"
        )));
    }
    Ok(if rest.is_empty() {
        String::from("/")
    } else {
        rest.to_owned()
    })
}

/// The client's headers the agent gets: the end-to-end ones, without the client's
/// credentials (they are the API server's, as kube-apiserver drops them once authenticated)
/// or `Host` (the client set it for the API server).
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let mut forwarded = without_hop_by_hop(headers);
    forwarded.remove(header::AUTHORIZATION);
    forwarded.remove(header::HOST);
    forwarded
}

/// `headers` without the hop-by-hop ones, including those the `Connection` header names.
fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut kept = headers.clone();
    for name in HOP_BY_HOP {
        kept.remove(name);
    }
    kept.remove("keep-alive");
    for name in named {
        kept.remove(name.as_str());
    }
    kept
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    #[test]
    fn the_name_may_carry_a_scheme_and_port() {
        let parse = |id| ProxyTarget::parse(id).map_err(|err| err.code());
        assert_eq!(
            parse("n1"),
            Ok(ProxyTarget {
                node: "n1",
                port: None
            })
        );
        assert_eq!(
            parse("n1:10250"),
            Ok(ProxyTarget {
                node: "n1",
                port: Some(10250)
            })
        );
        assert_eq!(
            parse("https:n1:10250"),
            Ok(ProxyTarget {
                node: "n1",
                port: Some(10250)
            })
        );
        for bad in [
            ":10250",
            "n1:",
            "n1:port",
            "ftp:n1:21",
            "a:b:c:d",
            "n1:99999",
        ] {
            assert_eq!(parse(bad), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
    }

    #[test]
    fn the_rest_follows_proxy() {
        assert_eq!(rest_of_path("/api/v1/nodes/n1/proxy"), "");
        assert_eq!(rest_of_path("/api/v1/nodes/n1/proxy/"), "/");
        assert_eq!(
            rest_of_path("/api/v1/nodes/n1:10250/proxy/stats/summary"),
            "/stats/summary"
        );
        assert_eq!(rest_of_path("//api/v1//nodes/n1/proxy/logs/"), "/logs/");
    }

    #[test]
    fn paths_pass_as_written_and_never_climb_out() {
        assert_eq!(agent_path("").expect("root"), "/");
        assert_eq!(agent_path("/").expect("root"), "/");
        assert_eq!(agent_path("/healthz").expect("ok"), "/healthz");
        assert_eq!(agent_path("/logs/").expect("ok"), "/logs/");
        assert_eq!(agent_path("/stats/summary").expect("ok"), "/stats/summary");
        assert_eq!(
            agent_path("/logs/a%20b.log").expect("encoded stays encoded"),
            "/logs/a%20b.log"
        );
        assert_eq!(agent_path("/logs/..foo").expect("a name"), "/logs/..foo");
        for bad in [
            "/..",
            "/logs/../etc/passwd",
            "/logs/%2e%2e/etc",
            "/logs/%2E%2E%2Fetc",
            "/logs/..%2f..%2fetc",
            "/logs/..%5c..%5cetc",
            "/./healthz",
            "/logs/..",
        ] {
            assert_eq!(
                agent_path(bad).map_err(|err| err.code()),
                Err(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
        assert_eq!(
            agent_path("xyz").map_err(|err| err.code()),
            Err(StatusCode::NOT_FOUND)
        );
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:6443"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let forwarded = forwarded_headers(&headers);
        let mut names: Vec<&str> = forwarded.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "content-type"]);
    }
}
