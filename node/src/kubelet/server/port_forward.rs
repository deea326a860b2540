//! `GET /portForward/{namespace}/{pod}`: `kubectl port-forward`, as the kubelet serves it to the
//! API server. kubectl v1.32 opens a WebSocket with the `SPDY/3.1+portforward.k8s.io`
//! subprotocol and runs a SPDY/3.1 session inside it ([`super::spdy`]); for each connection it
//! forwards it opens two streams with one `requestID`, `error` then `data`, both naming the
//! pod's `port`. The agent connects to that port on localhost inside the pod's network
//! namespace (a thread of its own joins it for the connect) and copies bytes both ways; a
//! failure is written on the error stream, which kubectl prints. SPDY/3.1 without the
//! WebSocket (kubectl's fallback) is not served.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tracing::debug;

use super::ServerState;
use super::container_logs::{LogsError, pod_containers};
use super::spdy::{self, Stream};
use crate::runtime::{ContainerKind, ContainerPhase, ContainerRuntime, RuntimeError, by_name};

/// The subprotocol kubectl asks for.
const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long a connect into the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the forwarded connections go: the pod's network namespace (by a process in it), or
/// the host's for a pod on the host's network.
#[derive(Clone, Copy, Debug)]
struct Target {
    network_pid: Option<u32>,
}

/// The handler: finds the pod's running sandbox, then upgrades to the WebSocket.
pub(super) async fn port_forward<R: ContainerRuntime>(
    State(state): State<ServerState<R>>,
    Path((namespace, pod)): Path<(String, String)>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let target = match sandbox(state.runtime.as_ref(), &namespace, &pod).await {
        Ok(target) => target,
        Err(err) => return err.into_response(),
    };
    let offered = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    let upgrade = match upgrade {
        Ok(upgrade) if offered => upgrade,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                format!("port forwarding is served over a WebSocket with the {PROTOCOL} subprotocol only"),
            )
                .into_response();
        }
    };
    upgrade
        .protocols([PROTOCOL])
        .on_upgrade(move |socket| async move {
            let (io, pump) = websocket_io(socket);
            tokio::select! {
                () = pump => {}
                () = forward_streams(spdy::serve(io), target, pod) => {}
            }
        })
}

/// The pod's running sandbox, as a [`Target`].
async fn sandbox<R: ContainerRuntime>(
    runtime: &R,
    namespace: &str,
    pod: &str,
) -> Result<Target, LogsError> {
    let of_pod = pod_containers(runtime, namespace, pod).await?;
    let sandbox = by_name(&of_pod)
        .into_iter()
        .filter(|((kind, _), _)| *kind == ContainerKind::Sandbox)
        .flat_map(|(_, instances)| instances.into_iter())
        .find(|c| c.phase == ContainerPhase::Running)
        .cloned()
        .ok_or_else(|| {
            LogsError::NotFound(format!(
                "pod \"{namespace}/{pod}\" has no running sandbox on this node"
            ))
        })?;
    let details = runtime
        .inspect(&sandbox.id)
        .await
        .map_err(|err| match err {
            RuntimeError::NotFound(_) => {
                LogsError::NotFound(format!("pod \"{namespace}/{pod}\" has no running sandbox"))
            }
            other => LogsError::Runtime(other),
        })?;
    Ok(Target {
        network_pid: details.network_pid,
    })
}

/// The WebSocket as a byte stream (kubectl writes the SPDY session into binary messages), and
/// the task that carries the bytes; it ends when either side closes.
fn websocket_io(socket: WebSocket) -> (tokio::io::DuplexStream, impl Future<Output = ()> + Send) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let pump = async move {
        let (mut sink, mut messages) = socket.split();
        let (mut from_session, mut to_session) = tokio::io::split(theirs);
        let inbound = async {
            while let Some(Ok(message)) = messages.next().await {
                match message {
                    Message::Binary(data) if to_session.write_all(&data).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = to_session.shutdown().await;
        };
        let outbound = async {
            let mut buffer = vec![0u8; 32 * 1024];
            loop {
                match from_session.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = Bytes::copy_from_slice(&buffer[..n]);
                        if sink.send(Message::Binary(data)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.send(Message::Close(None)).await;
        };
        tokio::join!(inbound, outbound);
    };
    (ours, pump)
}

/// Pairs each request's error and data streams and forwards each pair; every forward ends
/// with the session.
async fn forward_streams(
    mut streams: tokio::sync::mpsc::UnboundedReceiver<Stream>,
    target: Target,
    pod: String,
) {
    let mut waiting: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    let mut forwards = JoinSet::new();
    loop {
        let stream = tokio::select! {
            stream = streams.recv() => stream,
            // Reap finished forwards as they end.
            Some(_) = forwards.join_next(), if !forwards.is_empty() => continue,
        };
        let Some(stream) = stream else { break };
        let request = stream.header("requestid").unwrap_or("").to_owned();
        let entry = waiting.entry(request.clone()).or_default();
        match stream.header("streamtype") {
            Some("error") => entry.0 = Some(stream),
            Some("data") => entry.1 = Some(stream),
            other => {
                debug!(pod = %pod, stream = stream.id, "port-forward stream of unknown type {other:?}");
                stream.reset();
                continue;
            }
        }
        if let Some((Some(_), Some(_))) = waiting.get(&request)
            && let Some((Some(error), Some(data))) = waiting.remove(&request)
        {
            forwards.spawn(forward(target, error, data, pod.clone()));
        }
    }
}

/// One forwarded connection: connect to the stream's port in the pod, copy both ways, report
/// a failure on the error stream, and end both streams.
async fn forward(target: Target, error: Stream, mut data: Stream, pod: String) {
    let port = data
        .header("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p > 0);
    let Some(port) = port else {
        let _ = error.send(Bytes::from(format!(
            "invalid port {:?}",
            data.header("port").unwrap_or("")
        )));
        error.finish();
        data.finish();
        return;
    };
    let connection = match connect(target, port).await {
        Ok(connection) => connection,
        Err(err) => {
            let message = format!(
                "error forwarding port {port} to pod {pod}: failed to connect to localhost:{port} inside the pod's network namespace: {err}"
            );
            let _ = error.send(Bytes::from(message));
            error.finish();
            data.finish();
            return;
        }
    };
    let (mut from_pod, mut to_pod) = connection.into_split();
    let sender = data.sender();
    let upstream = async {
        while let Some(chunk) = data.incoming.recv().await {
            if to_pod.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    };
    let downstream = async {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match from_pod.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.send(Bytes::copy_from_slice(&buffer[..n])).is_err() {
                        break;
                    }
                }
            }
        }
        sender.finish();
    };
    // The pod's side ending ends the forward (kubectl then resets the data stream); the
    // client's end only closes the pod's input.
    let upstream_then_wait = async {
        upstream.await;
        std::future::pending::<()>().await
    };
    tokio::select! {
        () = downstream => {}
        () = upstream_then_wait => {}
    }
    error.finish();
}

/// A connection to `port` on localhost in the target's network namespace.
async fn connect(target: Target, port: u16) -> std::io::Result<TcpStream> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = tokio::task::spawn_blocking(move || match target.network_pid {
        Some(pid) => crate::netns::in_namespace_of(pid, || {
            std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
        }),
        None => std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT),
    })
    .await
    .map_err(std::io::Error::other)??;
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}
