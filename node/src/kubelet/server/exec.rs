//! `GET /exec/{namespace}/{pod}/{container}?command=...&input=1&output=1&error=1&tty=1`: a
//! command run in a running container, and `GET /attach/{namespace}/{pod}/{container}?...`:
//! the container's main process, their input and output carried over a WebSocket in
//! Kubernetes' remote command protocol (`v5.channel.k8s.io`, and `v4.channel.k8s.io`), as the
//! kubelet serves them to the API server for `kubectl exec`, `kubectl cp` and `kubectl attach`.
//!
//! Every binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final
//! status, 4 terminal resizes (`{"Width":80,"Height":24}`); in v5 a message on channel 255
//! closes the input of the channel it names (end of file for the command's stdin). The
//! session ends with a `Status` on channel 3 (`Success`, or `NonZeroExitCode` with the code)
//! and the socket closing. A client that goes away ends the session; the command gets end of
//! file on its input.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tracing::debug;

use super::ServerState;
use super::container_logs::{LogsError, find_container};
use crate::runtime::{
    ContainerPhase, ContainerRuntime, ExecSession, ExecSpec, LogStream, RuntimeError,
};

/// The protocols served, preferred first.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: "close the channel named in the next byte".
const CLOSE: u8 = 255;

/// What an exec asks for, read from the kubelet's query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub spec: ExecSpec,
}

impl ExecRequest {
    /// Reads `command` (repeated; required for an exec), `input`, `output`, `error` and `tty`.
    pub fn parse(raw_query: Option<&str>, mode: Mode) -> Result<ExecRequest, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query.unwrap_or(""))
            .map_err(|err| format!("invalid query: {err}"))?;
        let flag = |name: &str| {
            pairs
                .iter()
                .any(|(k, v)| k == name && matches!(v.as_str(), "1" | "true" | "True"))
        };
        let command: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        if command.is_empty() && mode == Mode::Exec {
            return Err(String::from("you must specify at least one command"));
        }
        let spec = ExecSpec {
            command,
            stdin: flag("input"),
            stdout: flag("output"),
            stderr: flag("error"),
            tty: flag("tty"),
        };
        if !(spec.stdin || spec.stdout || spec.stderr) {
            return Err(String::from(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        Ok(ExecRequest { spec })
    }
}

/// What a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A new command (`kubectl exec`).
    Exec,
    /// The container's main process (`kubectl attach`).
    Attach,
}

/// The exec handler.
pub(super) async fn exec<R: ContainerRuntime>(
    State(state): State<ServerState<R>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let target = (namespace, pod, container);
    serve(Mode::Exec, state, target, query, headers, upgrade).await
}

/// The attach handler.
pub(super) async fn attach<R: ContainerRuntime>(
    State(state): State<ServerState<R>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let target = (namespace, pod, container);
    serve(Mode::Attach, state, target, query, headers, upgrade).await
}

/// Checks the request and the container, then upgrades to the WebSocket.
async fn serve<R: ContainerRuntime>(
    mode: Mode,
    state: ServerState<R>,
    (namespace, pod, container): (String, String, String),
    query: Option<String>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let request = match ExecRequest::parse(query.as_deref(), mode) {
        Ok(request) => request,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let found =
        match find_container(state.runtime.as_ref(), &namespace, &pod, &container, false).await {
            Ok(found) => found,
            Err(err) => return err.into_response(),
        };
    if found.phase != ContainerPhase::Running {
        return LogsError::BadRequest(format!("container not running ({})", found.id))
            .into_response();
    }
    // Checked last, so a client falling back to SPDY after a refusal sees the same reason.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "{}: this agent serves remote commands over WebSockets ({}), not SPDY",
                    rejection.body_text(),
                    PROTOCOLS.join(", ")
                ),
            )
                .into_response();
        }
    };
    let Some(protocol) = chosen_protocol(&headers) else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "no supported remote command protocol offered; this agent serves {}",
                PROTOCOLS.join(", ")
            ),
        )
            .into_response();
    };
    let runtime = state.runtime.clone();
    upgrade
        .protocols([protocol])
        .on_upgrade(move |socket| async move {
            let v5 = protocol == PROTOCOLS[0];
            let session = match mode {
                Mode::Exec => runtime.exec(&found.id, &request.spec).await,
                Mode::Attach => runtime.attach(&found.id, &request.spec).await,
            };
            let status = match session {
                Ok(session) => {
                    run_session(runtime.as_ref(), mode, session, socket, v5, &request.spec).await
                }
                Err(err) => finish(socket, &error_status(&request.spec, &err)).await,
            };
            if let Err(err) = status {
                debug!(pod = %pod, container = %container, "exec session ended early: {err}");
            }
        })
}

/// The first protocol of ours the client offers.
fn chosen_protocol(headers: &HeaderMap) -> Option<&'static str> {
    let offered: Vec<&str> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    PROTOCOLS.into_iter().find(|p| offered.contains(p))
}

/// Carries the session until the command's output ends (then its status is sent) or the
/// client goes away.
async fn run_session<R: ContainerRuntime>(
    runtime: &R,
    mode: Mode,
    session: ExecSession,
    socket: WebSocket,
    v5: bool,
    spec: &ExecSpec,
) -> Result<(), axum::Error> {
    let ExecSession {
        id,
        mut output,
        mut input,
    } = session;
    let (mut sink, mut incoming) = socket.split();
    let outbound = async {
        let mut failure = None;
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok((stream, data)) => {
                    let channel = match stream {
                        LogStream::Stdout => STDOUT,
                        LogStream::Stderr => STDERR,
                    };
                    sink.send(Message::Binary(framed(channel, &data))).await?;
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        let status = match failure {
            Some(err) => error_status(spec, &err),
            // An attach ends with its process; its exit code is the pod status's business.
            None if mode == Mode::Attach => exit_status(spec, Ok(0)),
            None => exit_status(spec, wait_exit_code(runtime, &id).await),
        };
        sink.send(Message::Binary(framed(
            ERROR,
            status.to_string().as_bytes(),
        )))
        .await?;
        sink.send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await?;
        Ok::<_, axum::Error>(())
    };
    let inbound = async {
        let mut stdin_open = spec.stdin;
        while let Some(message) = incoming.next().await {
            let data = match message? {
                Message::Binary(data) => data,
                // The Python client sends text input as text messages (channel byte first),
                // which Kubernetes takes as well.
                Message::Text(text) => Bytes::from(text.as_str().as_bytes().to_vec()),
                Message::Close(_) => break,
                // Pings are answered by the socket.
                _ => continue,
            };
            match data.first() {
                // Flushed at once: the command may wait for this very line. A command that
                // closed its input takes no more.
                Some(&STDIN) if stdin_open => {
                    let written = input.write_all(&data[1..]).await;
                    if written.and(input.flush().await).is_err() {
                        stdin_open = false;
                    }
                }
                Some(&RESIZE) => {
                    if let Some((width, height)) = terminal_size(&data[1..]) {
                        let _ = match mode {
                            Mode::Exec => runtime.resize_exec(&id, width, height).await,
                            Mode::Attach => runtime.resize_container(&id, width, height).await,
                        };
                    }
                }
                Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => {
                    let _ = input.shutdown().await;
                    stdin_open = false;
                }
                _ => {}
            }
        }
        Ok::<_, axum::Error>(())
    };
    tokio::select! {
        done = outbound => done,
        // The client went away: the command's input closes with the session.
        done = inbound => done,
    }
}

/// Sends `status` on the error channel and closes the socket.
async fn finish(mut socket: WebSocket, status: &serde_json::Value) -> Result<(), axum::Error> {
    socket
        .send(Message::Binary(framed(
            ERROR,
            status.to_string().as_bytes(),
        )))
        .await?;
    socket.send(Message::Close(None)).await
}

fn framed(channel: u8, data: &[u8]) -> Bytes {
    let mut message = BytesMut::with_capacity(data.len() + 1);
    message.put_u8(channel);
    message.put_slice(data);
    message.freeze()
}

/// `{"Width":80,"Height":24}`, as the client sends a terminal's size.
fn terminal_size(data: &[u8]) -> Option<(u16, u16)> {
    let size: serde_json::Value = serde_json::from_slice(data).ok()?;
    let dimension = |name: &str| u16::try_from(size[name].as_u64()?).ok();
    Some((dimension("Width")?, dimension("Height")?))
}

/// The exit code once Docker has it (it may lag the end of the output a little).
async fn wait_exit_code<R: ContainerRuntime>(
    runtime: &R,
    exec_id: &str,
) -> Result<i64, RuntimeError> {
    for _ in 0..200 {
        if let Some(code) = runtime.exec_exit_code(exec_id).await? {
            return Ok(code);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err(RuntimeError::Unexpected(String::from(
        "the command's output ended but it did not exit",
    )))
}

/// The final status: Success, or the exit code as Kubernetes reports it.
fn exit_status(spec: &ExecSpec, code: Result<i64, RuntimeError>) -> serde_json::Value {
    match code {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {:?}, exit code {code}",
                spec.command
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(err) => error_status(spec, &err),
    }
}

fn error_status(spec: &ExecSpec, err: &RuntimeError) -> serde_json::Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("error executing command {:?}: {err}", spec.command),
        "reason": "InternalError",
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kubelets_exec_query() {
        let request = ExecRequest::parse(
            Some("command=sh&command=-c&command=echo+hi&input=1&output=1&tty=1"),
            Mode::Exec,
        )
        .expect("valid");
        assert_eq!(request.spec.command, ["sh", "-c", "echo hi"]);
        assert!(request.spec.stdin && request.spec.stdout && request.spec.tty);
        assert!(!request.spec.stderr);
        assert_eq!(
            ExecRequest::parse(Some("output=1"), Mode::Exec).expect_err("no command"),
            "you must specify at least one command"
        );
        assert_eq!(
            ExecRequest::parse(Some("command=ls"), Mode::Exec).expect_err("no stream"),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        // An attach needs no command.
        let attach = ExecRequest::parse(Some("input=1&output=1"), Mode::Attach).expect("valid");
        assert!(attach.spec.command.is_empty() && attach.spec.stdin);
    }

    #[test]
    fn the_status_carries_the_exit_code_as_kubectl_reads_it() {
        let spec = ExecSpec {
            command: vec![String::from("false")],
            ..Default::default()
        };
        assert_eq!(exit_status(&spec, Ok(0))["status"], "Success");
        let failed = exit_status(&spec, Ok(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        let gone = exit_status(&spec, Err(RuntimeError::NotFound(String::from("x"))));
        assert_eq!(gone["reason"], "InternalError");
    }

    #[test]
    fn reads_terminal_sizes_and_protocols() {
        assert_eq!(
            terminal_size(br#"{"Width":120,"Height":40}"#),
            Some((120, 40))
        );
        assert_eq!(terminal_size(br#"{"Width":-1,"Height":40}"#), None);
        assert_eq!(terminal_size(b"junk"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            "sec-websocket-protocol",
            "v4.channel.k8s.io, v5.channel.k8s.io"
                .parse()
                .expect("header"),
        );
        assert_eq!(chosen_protocol(&headers), Some("v5.channel.k8s.io"));
        headers.insert(
            "sec-websocket-protocol",
            "channel.k8s.io".parse().expect("header"),
        );
        assert_eq!(chosen_protocol(&headers), None);
    }
}
