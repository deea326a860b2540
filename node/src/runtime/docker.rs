//! [`DockerRuntime`]: the production [`ContainerRuntime`], Docker Engine through bollard.
//!
//! The client connects lazily and negotiates the API version on first use (Debian's daemon
//! speaks 1.41, older than bollard's default), so the agent starts even while Docker is down
//! and picks it up when it comes; after a connection error the next call connects afresh.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::Stream;

use crate::proxy::node_netns::NodeNetns;

use super::container_stats::CpuReadings;
use super::network::PodNetwork;
use super::{
    ContainerDetails, ContainerEvent, ContainerInfo, ContainerRuntime, ContainerSpec,
    ContainerStats, ExecSession, ExecSpec, LogRecord, NodeNetwork, RuntimeError, SandboxSpec,
};

/// Where Docker listens by default.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How long one Docker request may take (image builds included).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Docker Engine as the container runtime of one node. Clones share the connection.
#[derive(Clone)]
pub struct DockerRuntime {
    host: String,
    node: String,
    client: Arc<Mutex<Option<Docker>>>,
    node_netns: Option<Arc<NodeNetns>>,
    /// The bridge sandboxes are plumbed into, once [`ContainerRuntime::prepare_node`] ran.
    pod_network: Arc<Mutex<Option<PodNetwork>>>,
    /// Each container's last CPU reading, for its CPU rate.
    cpu_readings: Arc<CpuReadings>,
}

impl DockerRuntime {
    /// A runtime for the agent of `node`, talking to the daemon at `host`
    /// (`unix:///var/run/docker.sock`). Does not connect yet.
    pub fn new(host: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            node: node.into(),
            client: Arc::new(Mutex::new(None)),
            node_netns: None,
            pod_network: Arc::new(Mutex::new(None)),
            cpu_readings: Arc::default(),
        }
    }

    /// Tells `node_netns` of each pod's network namespace as its sandbox comes and goes (the
    /// eBPF proxy's socket hooks serve NodePorts to the node's own namespaces only).
    pub fn with_node_netns(mut self, node_netns: Arc<NodeNetns>) -> Self {
        self.node_netns = Some(node_netns);
        self
    }

    pub(super) fn node_netns(&self) -> Option<&NodeNetns> {
        self.node_netns.as_deref()
    }

    pub(super) fn cpu_readings(&self) -> &CpuReadings {
        &self.cpu_readings
    }

    /// `work` on the node's pod network; an error before the node was prepared.
    pub(super) fn with_pod_network<T>(
        &self,
        work: impl FnOnce(&mut PodNetwork) -> T,
    ) -> Result<T, RuntimeError> {
        let mut guard = self
            .pod_network
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.as_mut().map(work).ok_or_else(|| {
            RuntimeError::Rejected(String::from("the node's pod network is not ready yet"))
        })
    }

    /// The node whose containers this runtime manages.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A connected client with the negotiated API version.
    pub async fn client(&self) -> Result<Docker, RuntimeError> {
        if let Some(client) = self.lock().clone() {
            return Ok(client);
        }
        let path = self.host.trim_start_matches("unix://");
        let docker =
            Docker::connect_with_socket(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|err| RuntimeError::Unavailable(err.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|err| RuntimeError::Unavailable(err.to_string()))?;
        *self.lock() = Some(docker.clone());
        Ok(docker)
    }

    /// Maps a bollard error, dropping the client when the daemon could not be reached so the
    /// next call reconnects.
    pub(super) fn error(&self, err: bollard::errors::Error) -> RuntimeError {
        let mapped = map_error(err);
        if matches!(mapped, RuntimeError::Unavailable(_)) {
            *self.lock() = None;
        }
        mapped
    }

    /// Builds `image` (`FROM scratch`, the static `binary` as its entrypoint) unless it is
    /// present. Used for the pause image and by the test harness for its workload image.
    pub async fn ensure_image_from_binary(
        &self,
        image: &str,
        binary: &[u8],
    ) -> Result<(), RuntimeError> {
        super::image::ensure_from_binary(self, image, binary).await
    }

    /// Builds the busybox shell image ([`crate::images::BUSYBOX_IMAGE`]) unless it is present.
    pub async fn ensure_busybox_image(&self) -> Result<(), RuntimeError> {
        super::image::ensure_busybox(self).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Docker>> {
        // A poisoned lock only means another thread panicked between two plain assignments.
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A bollard error as a [`RuntimeError`].
fn map_error(err: bollard::errors::Error) -> RuntimeError {
    use bollard::errors::Error;
    match err {
        Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NotFound(message),
        Error::DockerResponseServerError {
            status_code: 409,
            message,
        } => RuntimeError::Conflict(message),
        Error::DockerResponseServerError {
            status_code,
            message,
        } if status_code >= 500 => RuntimeError::Rejected(message),
        Error::DockerResponseServerError { message, .. } => RuntimeError::Rejected(message),
        Error::DockerStreamError { error } => RuntimeError::Rejected(error),
        Error::JsonDataError { message, .. } => RuntimeError::Unexpected(message),
        Error::JsonSerdeError { err } => RuntimeError::Unexpected(err.to_string()),
        other => RuntimeError::Unavailable(other.to_string()),
    }
}

impl ContainerRuntime for DockerRuntime {
    async fn version(&self) -> Result<String, RuntimeError> {
        let client = self.client().await?;
        let version = client.version().await.map_err(|err| self.error(err))?;
        Ok(format!(
            "docker://{}",
            version.version.as_deref().unwrap_or("unknown")
        ))
    }

    async fn prepare_node(&self, network: &NodeNetwork) -> Result<(), RuntimeError> {
        let pod_network = super::network::ensure(self, network).await?;
        *self
            .pod_network
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(pod_network);
        super::sandbox_create::retain_pod_networks(self).await?;
        super::image::ensure_pause(self).await
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        super::image::present(self, image).await
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        super::image::pull(self, image).await
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<String, RuntimeError> {
        super::sandbox_create::create_sandbox(self, spec).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        super::container_create::create_container(self, spec).await
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        super::container_start::start_container(self, id).await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        super::container_stop::stop_container(self, id, grace).await
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        super::container_remove::remove_container(self, id).await
    }

    async fn list_pod_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        super::container_list::list_pod_containers(self, pod_uid).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerDetails, RuntimeError> {
        super::container_inspect::inspect(self, id).await
    }

    fn logs(
        &self,
        id: &str,
        since: Option<DateTime<Utc>>,
    ) -> impl Stream<Item = Result<LogRecord, RuntimeError>> + Send + 'static {
        super::container_logs::container_logs(self, id, since)
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        super::container_stats::container_stats(self, id).await
    }

    async fn exec(&self, id: &str, spec: &ExecSpec) -> Result<ExecSession, RuntimeError> {
        super::container_exec::exec(self, id, spec).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        super::container_exec::exit_code(self, exec_id).await
    }

    async fn attach(&self, id: &str, spec: &ExecSpec) -> Result<ExecSession, RuntimeError> {
        super::container_exec::attach(self, id, spec).await
    }

    async fn resize_container(
        &self,
        id: &str,
        width: u16,
        height: u16,
    ) -> Result<(), RuntimeError> {
        super::container_exec::resize_container(self, id, width, height).await
    }

    async fn resize_exec(
        &self,
        exec_id: &str,
        width: u16,
        height: u16,
    ) -> Result<(), RuntimeError> {
        super::container_exec::resize(self, exec_id, width, height).await
    }

    fn events(&self) -> impl Stream<Item = Result<ContainerEvent, RuntimeError>> + Send + 'static {
        super::container_events::container_events(self)
    }
}
