//! One run of a probe's handler, as the kubelet's prober runs it: exec (exit code 0 passes),
//! httpGet (a status from 200 to 399 passes), tcpSocket (a connection passes), grpc (the
//! standard health service answering SERVING passes). Each is bounded by `timeoutSeconds`;
//! the messages are the kubelet's, so events read the same.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::runtime::{ContainerRuntime, ExecSpec, RuntimeError};

/// The output of an exec probe that is kept (the kubelet's limit).
const MAX_EXEC_OUTPUT: usize = 10 * 1024;

/// What the probes say they are (`User-Agent`).
const USER_AGENT: &str = "kube-probe/1.32";

/// What a probe is run against.
pub struct Target<'a> {
    /// The container (named ports).
    pub container: &'a Container,
    /// Its id (exec).
    pub container_id: &'a str,
    /// The pod's IP (the default host).
    pub pod_ip: &'a str,
}

/// One probe's verdict, before thresholds.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It passed.
    Pass,
    /// It failed, and why.
    Fail(String),
}

/// Runs `probe` once against `target`.
pub async fn run<R: ContainerRuntime>(
    runtime: &R,
    http: &reqwest::Client,
    probe: &Probe,
    target: &Target<'_>,
) -> Verdict {
    let limit = super::timeout_of(probe);
    if let Some(exec) = &probe.exec {
        return run_exec(
            runtime,
            target,
            exec.command.clone().unwrap_or_default(),
            limit,
        )
        .await;
    }
    if let Some(get) = &probe.http_get {
        let port = match port(&get.port, target.container) {
            Ok(port) => port,
            Err(message) => return Verdict::Fail(message),
        };
        let host = get.host.as_deref().filter(|h| !h.is_empty());
        let host = host.unwrap_or(target.pod_ip);
        let scheme = get.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let path = get.path.as_deref().unwrap_or("/");
        let slash = if path.starts_with('/') { "" } else { "/" };
        let url = format!("{scheme}://{}:{port}{slash}{path}", host_in_url(host));
        let headers = get
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.as_str(), h.value.as_str()));
        return run_http(http, &url, headers, limit).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = match port(&tcp.port, target.container) {
            Ok(port) => port,
            Err(message) => return Verdict::Fail(message),
        };
        let host = tcp.host.as_deref().filter(|h| !h.is_empty());
        return run_tcp(host.unwrap_or(target.pod_ip), port, limit).await;
    }
    if let Some(grpc) = &probe.grpc {
        let Ok(port) = u16::try_from(grpc.port) else {
            return Verdict::Fail(format!("invalid port number: {}", grpc.port));
        };
        return run_grpc(
            target.pod_ip,
            port,
            grpc.service.clone().unwrap_or_default(),
            limit,
        )
        .await;
    }
    Verdict::Fail(String::from("missing probe handler"))
}

/// The port a probe names: a number, or the name of one of the container's ports.
fn port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(number) => number,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// An IPv6 address goes in brackets in a URL.
fn host_in_url(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

async fn run_exec<R: ContainerRuntime>(
    runtime: &R,
    target: &Target<'_>,
    command: Vec<String>,
    limit: Duration,
) -> Verdict {
    let spec = ExecSpec {
        command: command.clone(),
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let run = async {
        let mut session = runtime.exec(target.container_id, &spec).await?;
        let mut output = Vec::new();
        while let Some(chunk) = session.output.next().await {
            let (_, data) = chunk?;
            let room = MAX_EXEC_OUTPUT.saturating_sub(output.len());
            output.extend_from_slice(&data[..data.len().min(room)]);
        }
        // The output ends as the command exits; Docker may take a moment to say so.
        loop {
            if let Some(code) = runtime.exec_exit_code(&session.id).await? {
                return Ok::<_, RuntimeError>((code, output));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    match timeout(limit, run).await {
        Err(_) => Verdict::Fail(format!(
            "command {command:?} timed out after {}s",
            limit.as_secs()
        )),
        Ok(Err(err)) => Verdict::Fail(err.to_string()),
        Ok(Ok((0, _))) => Verdict::Pass,
        Ok(Ok((code, output))) => {
            let output = String::from_utf8_lossy(&output);
            let output = output.trim_end();
            Verdict::Fail(if output.is_empty() {
                format!("command {command:?} exited with {code}")
            } else {
                output.to_owned()
            })
        }
    }
}

async fn run_http<'h>(
    http: &reqwest::Client,
    url: &str,
    headers: impl Iterator<Item = (&'h str, &'h str)>,
    limit: Duration,
) -> Verdict {
    let mut request = http
        .get(url)
        .timeout(limit)
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .header(reqwest::header::ACCEPT, "*/*");
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        ) else {
            return Verdict::Fail(format!("invalid probe header {name:?}"));
        };
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) if (200..400).contains(&response.status().as_u16()) => Verdict::Pass,
        Ok(response) => Verdict::Fail(format!(
            "HTTP probe failed with statuscode: {}",
            response.status().as_u16()
        )),
        Err(err) if err.is_timeout() => Verdict::Fail(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Err(err) => Verdict::Fail(format!("Get \"{url}\": {}", root_cause(&err))),
    }
}

/// The innermost error's text (`connection refused`), which says what went wrong.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

async fn run_tcp(host: &str, port: u16, limit: Duration) -> Verdict {
    let address = format!("{}:{port}", host_in_url(host));
    match timeout(limit, TcpStream::connect(&address)).await {
        Ok(Ok(_)) => Verdict::Pass,
        Ok(Err(err)) => Verdict::Fail(format!("dial tcp {address}: connect: {err}")),
        Err(_) => Verdict::Fail(format!("dial tcp {address}: i/o timeout")),
    }
}

async fn run_grpc(host: &str, port: u16, service: String, limit: Duration) -> Verdict {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let address = format!("{}:{port}", host_in_url(host));
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{address}")) {
        Ok(endpoint) => endpoint.connect_timeout(limit).timeout(limit),
        Err(err) => return Verdict::Fail(format!("invalid address {address}: {err}")),
    };
    let channel = match timeout(limit, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(err)) => {
            return Verdict::Fail(format!(
                "timeout: failed to connect service \"{address}\" within {}s: {}",
                limit.as_secs(),
                root_cause(&err)
            ));
        }
        Err(_) => {
            return Verdict::Fail(format!(
                "timeout: failed to connect service \"{address}\" within {}s",
                limit.as_secs()
            ));
        }
    };
    let mut client = HealthClient::new(channel);
    match timeout(limit, client.check(HealthCheckRequest { service })).await {
        Ok(Ok(response)) => match ServingStatus::try_from(response.get_ref().status) {
            Ok(ServingStatus::Serving) => Verdict::Pass,
            Ok(other) => Verdict::Fail(format!(
                "service unhealthy (responded with \"{}\")",
                other.as_str_name()
            )),
            Err(_) => Verdict::Fail(format!(
                "service unhealthy (responded with {})",
                response.get_ref().status
            )),
        },
        Ok(Err(status)) => Verdict::Fail(format!(
            "rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        )),
        Err(_) => Verdict::Fail(format!(
            "timeout: health rpc did not complete within {}s",
            limit.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::get;

    use super::*;
    use crate::kubelet::prober::Prober;
    use crate::runtime::fake::FakeRuntime;

    /// An HTTP server on loopback with the answers the tests probe.
    async fn http_server() -> SocketAddr {
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/bad", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .route(
                "/moved",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/bad")]) }),
            )
            .route(
                "/elsewhere",
                get(|| async {
                    (
                        StatusCode::FOUND,
                        [(header::LOCATION, "http://127.0.0.2:9/bad")],
                    )
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/headers",
                get(|headers: HeaderMap| async move {
                    let agent = headers
                        .get(header::USER_AGENT)
                        .and_then(|v| v.to_str().ok());
                    let custom = headers.get("x-probe").and_then(|v| v.to_str().ok());
                    if agent == Some(USER_AGENT) && custom == Some("yes") {
                        StatusCode::OK
                    } else {
                        StatusCode::BAD_REQUEST
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    }

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    }

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).expect("probe")
    }

    fn app(ports: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({"name": "app", "ports": ports}))
            .expect("container")
    }

    async fn verdict(runtime: &FakeRuntime, probe: &Probe, container: &Container) -> Verdict {
        let prober = Prober::new().expect("prober");
        let target = Target {
            container,
            container_id: "app.0",
            pod_ip: "127.0.0.1",
        };
        run(runtime, &prober.http, probe, &target).await
    }

    fn failed(verdict: Verdict) -> String {
        match verdict {
            Verdict::Fail(message) => message,
            Verdict::Pass => panic!("the probe passed"),
        }
    }

    #[tokio::test]
    async fn http_get_passes_on_2xx_and_3xx_and_fails_on_the_rest_with_the_kubelets_messages() {
        let address = http_server().await;
        let runtime = FakeRuntime::default();
        let container = app(serde_json::json!([{"name": "web", "containerPort": address.port()}]));
        let get = |path: &str, port: serde_json::Value| {
            probe(serde_json::json!({"httpGet": {"path": path, "port": port}}))
        };
        let port = serde_json::json!(address.port());
        assert_eq!(
            verdict(&runtime, &get("/ok", port.clone()), &container).await,
            Verdict::Pass
        );
        // A named port of the container.
        let named = get("/ok", serde_json::json!("web"));
        assert_eq!(verdict(&runtime, &named, &container).await, Verdict::Pass);
        assert_eq!(
            failed(verdict(&runtime, &get("/bad", port.clone()), &container).await),
            "HTTP probe failed with statuscode: 500"
        );
        // A redirect on the same host is followed; one elsewhere counts as success.
        assert_eq!(
            failed(verdict(&runtime, &get("/moved", port.clone()), &container).await),
            "HTTP probe failed with statuscode: 500"
        );
        let elsewhere = get("/elsewhere", port.clone());
        assert_eq!(
            verdict(&runtime, &elsewhere, &container).await,
            Verdict::Pass
        );
        let headers = probe(serde_json::json!({"httpGet": {
            "path": "/headers", "port": address.port(),
            "httpHeaders": [{"name": "X-Probe", "value": "yes"}],
        }}));
        assert_eq!(verdict(&runtime, &headers, &container).await, Verdict::Pass);

        let slow = probe(
            serde_json::json!({"httpGet": {"path": "/slow", "port": address.port()}, "timeoutSeconds": 1}),
        );
        let started = std::time::Instant::now();
        let message = failed(verdict(&runtime, &slow, &container).await);
        assert!(message.contains("context deadline exceeded"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(3));

        let closed = closed_port();
        let refused =
            failed(verdict(&runtime, &get("/ok", serde_json::json!(closed)), &container).await);
        assert!(
            refused.starts_with(&format!("Get \"http://127.0.0.1:{closed}/ok\": "))
                && refused.contains("refused"),
            "{refused}"
        );
        let missing = get("/ok", serde_json::json!("nope"));
        assert_eq!(
            failed(verdict(&runtime, &missing, &container).await),
            "couldn't find port: nope in app"
        );
        let zero = get("/ok", serde_json::json!(0));
        assert_eq!(
            failed(verdict(&runtime, &zero, &container).await),
            "invalid port number: 0"
        );
    }

    #[tokio::test]
    async fn tcp_socket_passes_when_a_connection_is_accepted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let runtime = FakeRuntime::default();
        let container = app(serde_json::json!([]));
        let open = probe(serde_json::json!({"tcpSocket": {"port": port}}));
        assert_eq!(verdict(&runtime, &open, &container).await, Verdict::Pass);
        let closed = closed_port();
        let shut = probe(serde_json::json!({"tcpSocket": {"port": closed}}));
        let message = failed(verdict(&runtime, &shut, &container).await);
        assert!(
            message.starts_with(&format!("dial tcp 127.0.0.1:{closed}: connect: ")),
            "{message}"
        );
    }

    #[tokio::test]
    async fn grpc_passes_when_the_health_service_says_serving() {
        use tonic_health::ServingStatus;

        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("ready", ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("draining", ServingStatus::NotServing)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let runtime = FakeRuntime::default();
        let container = app(serde_json::json!([]));
        let grpc =
            |service: &str| probe(serde_json::json!({"grpc": {"port": port, "service": service}}));
        // The empty service name is the server as a whole (serving by default).
        assert_eq!(
            verdict(&runtime, &grpc(""), &container).await,
            Verdict::Pass
        );
        assert_eq!(
            verdict(&runtime, &grpc("ready"), &container).await,
            Verdict::Pass
        );
        assert_eq!(
            failed(verdict(&runtime, &grpc("draining"), &container).await),
            "service unhealthy (responded with \"NOT_SERVING\")"
        );
        let unknown = failed(verdict(&runtime, &grpc("unknown"), &container).await);
        assert!(
            unknown.starts_with("rpc error: code = NotFound"),
            "{unknown}"
        );
        let closed = closed_port();
        let nobody = probe(serde_json::json!({"grpc": {"port": closed}}));
        let message = failed(verdict(&runtime, &nobody, &container).await);
        assert!(
            message.starts_with(&format!(
                "timeout: failed to connect service \"127.0.0.1:{closed}\" within 1s"
            )),
            "{message}"
        );
    }

    #[tokio::test]
    async fn exec_passes_on_exit_code_zero_and_fails_on_a_container_that_does_not_run() {
        let runtime = FakeRuntime::default();
        let container = app(serde_json::json!([]));
        let check = probe(serde_json::json!({"exec": {"command": ["check"]}}));
        // The fake has no container app.0.
        let message = failed(verdict(&runtime, &check, &container).await);
        assert!(message.contains("app.0"), "{message}");
        let nothing = probe(serde_json::json!({}));
        assert_eq!(
            failed(verdict(&runtime, &nothing, &container).await),
            "missing probe handler"
        );
    }
}
