//! The agent's own HTTPS endpoint (the kubelet's port, 10250 by default), which the API server
//! calls for what only the node has: container logs (`kubectl logs`), and the kubelet's
//! read-only endpoints it proxies for `nodes/<name>/proxy/...`.
//!
//! - `tls`: the node's serving certificate (signed by the cluster CA, renewed while the agent
//!   runs); client certificates required and verified against the cluster CA;
//! - [`auth`]: what each caller may do, asked of the API server (SubjectAccessReviews for
//!   `nodes/proxy`, `nodes/log`, ...), as the kubelet's webhook authorization;
//! - [`container_logs`]: `GET /containerLogs/{namespace}/{pod}/{container}`;
//! - [`exec`]: `GET /exec/{namespace}/{pod}/{container}` and `/attach/...`, a command or the
//!   container's process over a WebSocket;
//! - [`port_forward`]: `GET /portForward/{namespace}/{pod}`, connections into the pod over
//!   SPDY tunneled in a WebSocket;
//! - `/healthz`: `ok` while the agent serves;
//! - [`pods`]: `GET /pods`, the pods the agent runs with their statuses;
//! - [`metrics`]: `GET /metrics`, Prometheus text;
//! - [`stats_summary`]: `GET /stats/summary`, the Summary API (node and pod CPU and memory,
//!   from `proc_usage` and the runtime's stats);
//! - [`node_logs`]: `GET /logs/...`, /var/log read-only.
//!
//! The bound port is published in the Node's `status.daemonEndpoints.kubeletEndpoint`, which
//! is where the API server looks for it.

pub mod auth;
pub mod container_logs;
pub mod exec;
pub mod metrics;
pub mod node_logs;
pub mod pods;
pub mod port_forward;
mod proc_usage;
mod spdy;
pub mod stats_summary;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::certificate::Identity;
use super::logs::ContainerLogs;
use super::pod_view::PodView;
use crate::runtime::ContainerRuntime;

/// The port the kubelet serves on by default.
pub const DEFAULT_PORT: u16 = 10250;

/// How long a client may take for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and for whom the endpoint serves (the `--address`, `--port` flags and the CA of the
/// kubeconfig).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The address to listen on (`0.0.0.0`: every address of the node).
    pub address: IpAddr,
    /// The port; 0 picks a free one (published in the Node's status all the same).
    pub port: u16,
    /// PEM of the CA whose client certificates are let in: the cluster CA.
    pub client_ca_pem: Vec<u8>,
}

/// What can keep the endpoint from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The port cannot be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address and port.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The cluster CA certificate is missing or unreadable.
    #[error("the cluster CA for client certificates: {0}")]
    ClientCa(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// The endpoint, bound and ready to serve.
pub struct KubeletServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
}

impl KubeletServer {
    /// Binds the port; connections get `serving`'s current certificate.
    pub async fn bind<R: ContainerRuntime>(
        config: &ServerConfig,
        node: &str,
        serving: Identity,
        runtime: Arc<R>,
        logs: ContainerLogs,
        pods: PodView,
        authorizer: auth::Authorizer,
    ) -> Result<KubeletServer, ServerError> {
        let acceptor = TlsAcceptor::from(tls::server_config(&config.client_ca_pem, serving)?);
        let addr = SocketAddr::new(config.address, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(KubeletServer {
            listener,
            acceptor,
            router: router(ServerState {
                runtime,
                logs,
                pods,
                node_name: node.to_owned(),
                node_log_dir: PathBuf::from(node_logs::NODE_LOG_DIR),
            })
            .layer(axum::middleware::from_fn_with_state(
                authorizer,
                auth::authorize,
            )),
        })
    }

    /// The bound port (the real one when 0 was asked for).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |addr| addr.port())
    }

    /// Serves connections until the task is dropped, one task per connection.
    pub async fn serve(self) {
        if let Ok(addr) = self.listener.local_addr() {
            info!(%addr, "serving the kubelet endpoint (client certificates of the cluster CA only)");
        }
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!("accepting a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let router = self.router.clone();
            tokio::spawn(async move {
                // Without a client certificate of the cluster CA the handshake fails here.
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => return debug!(%peer, "TLS handshake refused: {err}"),
                    Err(_) => return debug!(%peer, "TLS handshake timed out"),
                };
                // Who is calling: the subject of the certificate the handshake verified.
                let caller = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| auth::Caller::of_certificate(leaf.as_ref()));
                let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                    router,
                    move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                        if let Some(caller) = &caller {
                            request.extensions_mut().insert(caller.clone());
                        }
                        request
                    },
                ));
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30));
                if let Err(err) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    debug!(%peer, "connection ended with an error: {err}");
                }
            });
        }
    }
}

/// What the handlers work with.
pub struct ServerState<R> {
    /// Finds a pod's containers by their labels.
    pub runtime: Arc<R>,
    /// Their log files.
    pub logs: ContainerLogs,
    /// The pods the agent runs, with their statuses.
    pub pods: PodView,
    /// The node's name.
    pub node_name: String,
    /// The node's log directory (`/logs/`).
    pub node_log_dir: PathBuf,
}

impl<R> Clone for ServerState<R> {
    fn clone(&self) -> Self {
        ServerState {
            runtime: self.runtime.clone(),
            logs: self.logs.clone(),
            pods: self.pods.clone(),
            node_name: self.node_name.clone(),
            node_log_dir: self.node_log_dir.clone(),
        }
    }
}

/// The endpoint's routes.
fn router<R: ContainerRuntime>(state: ServerState<R>) -> Router {
    Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs::container_logs::<R>),
        )
        .route("/exec/{namespace}/{pod}/{container}", get(exec::exec::<R>))
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(exec::attach::<R>),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward::port_forward::<R>),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(pods::pods::<R>))
        .route("/pods/", get(pods::pods::<R>))
        .route("/metrics", get(metrics::metrics::<R>))
        .route("/stats/summary", get(stats_summary::summary::<R>))
        .route("/logs/", get(node_logs::node_logs::<R>))
        .route("/logs/{*path}", get(node_logs::node_logs::<R>))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(state)
}
