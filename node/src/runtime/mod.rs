//! The container runtime: what the kubelet asks of Docker, one operation per file, behind the
//! [`ContainerRuntime`] trait. [`DockerRuntime`] (bollard) is the one the agent runs; the
//! in-memory fake in `fake.rs` (unit tests only) is what the kubelet's sync loop, pod workers
//! and pod kills are tested against.
//!
//! Every container the agent makes carries labels naming its node, pod and container
//! ([`labels`]), so a restarted agent finds (adopts) what already runs and recognises what
//! belongs to pods that no longer exist. A pod is one sandbox container (the pause image,
//! owning the pod's network and IPC namespaces and its IP on the node's bridge network, which
//! the agent plumbs itself: `network.rs`) plus the app containers joined to it.

mod container_create;
mod container_events;
mod container_exec;
mod container_inspect;
mod container_list;
mod container_logs;
mod container_remove;
mod container_start;
mod container_stats;
mod container_stop;
mod docker;
#[cfg(test)]
pub mod fake;
mod image;
pub mod labels;
mod network;
mod sandbox_create;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use futures::stream::BoxStream;
use tokio::io::AsyncWrite;

pub use docker::{DEFAULT_DOCKER_HOST, DockerRuntime};
pub use network::NodeNetwork;

/// The name the sandbox container has in labels and statuses (as in dockershim).
pub const SANDBOX_CONTAINER_NAME: &str = "POD";

/// What a runtime operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The Docker daemon cannot be reached (not running, socket missing).
    #[error("container runtime is down: {0}")]
    Unavailable(String),
    /// The object does not exist (any more).
    #[error("not found: {0}")]
    NotFound(String),
    /// A container with this name exists already (holds its name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The image is not on this node and may not be pulled.
    #[error("image {0} is not present on this node")]
    ImageNotPresent(String),
    /// Docker refused the request (invalid spec, bad state, ...): its message.
    #[error("{0}")]
    Rejected(String),
    /// Building a local image failed.
    #[error("building image {image}: {message}")]
    ImageBuild {
        /// The image tag.
        image: String,
        /// What went wrong.
        message: String,
    },
    /// Docker answered something this agent does not understand.
    #[error("unexpected answer from Docker: {0}")]
    Unexpected(String),
}

/// The pod a container belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// `metadata.uid` (for static pods: derived from the manifest).
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
}

/// Whether a container is a pod's sandbox, an init container or an app container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerKind {
    /// The pause container holding the pod's namespaces.
    Sandbox,
    /// An init container (runs to completion before the app containers).
    Init,
    /// An app container.
    App,
}

/// The coarse state Docker lists a container in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerPhase {
    /// Created, never started (or its start failed).
    Created,
    /// Running (or paused / restarting).
    Running,
    /// Stopped: exited or dead.
    Exited,
    /// Anything else Docker may report.
    Unknown,
}

/// A container of a pod on this node, as listed (labels and coarse state).
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    /// Docker's container id.
    pub id: String,
    /// The pod it belongs to.
    pub pod: PodRef,
    /// Sandbox, init or app.
    pub kind: ContainerKind,
    /// The container's name in the pod spec ([`SANDBOX_CONTAINER_NAME`] for the sandbox).
    pub name: String,
    /// How many times this container of the pod was (re)created before: Kubernetes'
    /// restartCount.
    pub attempt: u32,
    /// Hash of the container's spec when it was created; a different spec means recreate.
    pub spec_hash: String,
    /// The image as the pod spec names it.
    pub image: String,
    /// The coarse state.
    pub phase: ContainerPhase,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// The pod's termination grace period when it was created (for orphans).
    pub grace_seconds: i64,
}

/// How a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// Exit code (137 after SIGKILL).
    pub exit_code: i32,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
    /// When it started (None if it never did).
    pub started_at: Option<DateTime<Utc>>,
    /// When it stopped.
    pub finished_at: Option<DateTime<Utc>>,
    /// Docker's error message, if starting it failed.
    pub error: Option<String>,
}

/// A container's detailed state (inspect).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running since the given time.
    Running {
        /// When it started.
        started_at: Option<DateTime<Utc>>,
    },
    /// Stopped.
    Exited(Termination),
    /// Docker reported a state this agent does not know.
    Unknown(String),
}

/// One container in detail: its labels, its state and, for a sandbox, its IP.
#[derive(Clone, Debug)]
pub struct ContainerDetails {
    /// What the list shows.
    pub info: ContainerInfo,
    /// The state with times and exit code.
    pub state: ContainerState,
    /// The image id Docker resolved (`sha256:...`).
    pub image_id: String,
    /// The container's IPv4 address on the node network (sandboxes only).
    pub ip: Option<String>,
    /// The address the agent plumbed into this sandbox (`None`: Docker's network, or the
    /// host's).
    pub plumbed_ip: Option<std::net::Ipv4Addr>,
    /// Whether it runs in the host's network namespace.
    pub host_network: bool,
    /// The running process whose network namespace is the pod's own (a running sandbox not
    /// on the host's network).
    pub network_pid: Option<u32>,
}

/// A port of the pod published on the node (`hostPort`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The port inside the pod.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port on the node.
    pub host_port: u16,
    /// The node address to bind (empty: all).
    pub host_ip: String,
}

/// The seccomp filter a container runs under (`securityContext.seccompProfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// No filter: the kubelet's default when the pod names no profile (its
    /// `--seccomp-default` is off by default).
    #[default]
    Unconfined,
    /// The runtime's default filter (Docker's).
    RuntimeDefault,
    /// A profile from the node's seccomp directory: its JSON.
    Localhost(String),
}

impl Seccomp {
    /// Docker's `SecurityOpt` entries for it.
    fn security_opt(&self) -> Option<Vec<String>> {
        match self {
            Self::Unconfined => Some(vec![String::from("seccomp=unconfined")]),
            Self::RuntimeDefault => None,
            Self::Localhost(profile) => Some(vec![format!("seccomp={profile}")]),
        }
    }
}

/// What a pod's sandbox (pause) container is made of.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    /// The pod.
    pub pod: PodRef,
    /// Which sandbox of the pod this is (0 for the first).
    pub attempt: u32,
    /// The pod's hostname.
    pub hostname: String,
    /// Ports published on the node.
    pub host_ports: Vec<HostPort>,
    /// The pod's termination grace period, kept as a label for orphan clean-up.
    pub grace_seconds: i64,
    /// Use the node's network namespace (`hostNetwork`) instead of the pod network.
    pub host_network: bool,
    /// Its seccomp filter.
    pub seccomp: Seccomp,
}

/// What one app or init container is made of (the kubelet's translation of the pod spec).
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// The pod.
    pub pod: Option<PodRef>,
    /// Init or app.
    pub init: bool,
    /// The container's name in the pod.
    pub name: String,
    /// Kubernetes' restartCount of this instance.
    pub attempt: u32,
    /// Hash of the container's spec.
    pub spec_hash: String,
    /// The sandbox whose network and IPC namespaces it joins.
    pub sandbox_id: String,
    /// The image.
    pub image: String,
    /// Replaces the image's ENTRYPOINT (`command`).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD (`args`).
    pub cmd: Option<Vec<String>>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// Bind mounts, `host-path:container-path[:ro]`.
    pub binds: Vec<String>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// CPU limit in millicores (a CFS quota over a 100 ms period).
    pub cpu_limit_millis: Option<i64>,
    /// CPU request in millicores (cpu shares).
    pub cpu_request_millis: Option<i64>,
    /// `uid[:gid]` to run as.
    pub user: Option<String>,
    /// Run privileged.
    pub privileged: bool,
    /// Capabilities to add.
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// Mount the root filesystem read-only.
    pub read_only_root: bool,
    /// Its seccomp filter.
    pub seccomp: Seccomp,
    /// Allocate a TTY.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// Close stdin when the first attached client detaches (`stdinOnce`).
    pub stdin_once: bool,
    /// Share the sandbox's PID namespace (`shareProcessNamespace`).
    pub share_pid: bool,
    /// The pod's termination grace period, kept as a label.
    pub grace_seconds: i64,
}

/// A change to a container of this node, from Docker's event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The pod's uid (label).
    pub pod_uid: String,
    /// The container id.
    pub container_id: String,
    /// Docker's action: `start`, `die`, `oom`, `destroy`, ...
    pub action: String,
}

/// Which output stream of a container a log record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output (and a TTY's merged output).
    Stdout,
    /// Standard error.
    Stderr,
}

/// One record of a container's output, as the runtime stored it: a line, or a part of a
/// long line (one without its end of line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// When the runtime read it from the container.
    pub time: DateTime<Utc>,
    /// Which stream.
    pub stream: LogStream,
    /// The bytes, with the line's `\n` if this record ends a line.
    pub content: Bytes,
}

/// A command to run in a running container (`kubectl exec`, exec probes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// The command and its arguments (no shell is implied).
    pub command: Vec<String>,
    /// Whether the command reads standard input.
    pub stdin: bool,
    /// Whether its standard output is wanted.
    pub stdout: bool,
    /// Whether its standard error is wanted (with a TTY it is merged into the output).
    pub stderr: bool,
    /// Whether it runs on a terminal.
    pub tty: bool,
}

/// A command started in a container (or a container's main process attached to): what it
/// writes, where its input goes, and the id of what runs (exec id, or container id for an
/// attach) for its exit code and terminal size.
pub struct ExecSession {
    /// The runtime's id of this exec (the container's id for an attach).
    pub id: String,
    /// Its output in order, until it exits.
    pub output: BoxStream<'static, Result<(LogStream, Bytes), RuntimeError>>,
    /// Its standard input (closing it sends end of file).
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// One container's resource usage, as the Summary API reports it (`None`: not known).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// CPU time used since the container started, in nanoseconds (all cores).
    pub usage_core_nanoseconds: Option<u64>,
    /// CPU used lately, in billionths of a core.
    pub usage_nano_cores: Option<u64>,
    /// Memory in use, page cache included.
    pub memory_usage_bytes: Option<u64>,
    /// Memory in use minus the inactive page cache: what the kubelet evicts on.
    pub memory_working_set_bytes: Option<u64>,
    /// Anonymous memory (and swap cache).
    pub memory_rss_bytes: Option<u64>,
    /// The container's memory limit.
    pub memory_limit_bytes: Option<u64>,
    /// Page faults.
    pub page_faults: Option<u64>,
    /// Major page faults.
    pub major_page_faults: Option<u64>,
}

/// What the kubelet needs from a container runtime. Every method is safe to call again after
/// a failure (the kubelet reconciles by retrying).
pub trait ContainerRuntime: Send + Sync + 'static {
    /// The runtime's name and version (`docker://20.10.24`); fails when it is down.
    fn version(&self) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// Prepares the node: the pod network (bridge with the node's pod CIDR) and the pause
    /// image. Idempotent.
    fn prepare_node(
        &self,
        network: &NodeNetwork,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Whether `image` is present locally.
    fn image_present(&self, image: &str)
    -> impl Future<Output = Result<bool, RuntimeError>> + Send;

    /// Pulls `image` from its registry.
    fn pull_image(&self, image: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Creates and starts a pod's sandbox container; returns its id.
    fn create_sandbox(
        &self,
        spec: &SandboxSpec,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// Creates (does not start) an app or init container; returns its id.
    fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// Starts a created container.
    fn start_container(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Stops a container: SIGTERM, up to `grace` to exit, then SIGKILL. Fine if it is not
    /// running or gone.
    fn stop_container(
        &self,
        id: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes a container (stopped or not); fine if it is gone already.
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The containers of one pod (`Some(uid)`) or of every pod on this node (`None`).
    fn list_pod_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ContainerInfo>, RuntimeError>> + Send;

    /// One container in detail.
    fn inspect(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<ContainerDetails, RuntimeError>> + Send;

    /// The output of container `id` (stdout and stderr, in order) from `since` on (whole
    /// seconds; `None`: from the start), following new output until the container stops.
    fn logs(
        &self,
        id: &str,
        since: Option<DateTime<Utc>>,
    ) -> impl Stream<Item = Result<LogRecord, RuntimeError>> + Send + 'static;

    /// Container `id`'s resource usage now (a running container's; a stopped one has none).
    fn stats(&self, id: &str) -> impl Future<Output = Result<ContainerStats, RuntimeError>> + Send;

    /// Starts `spec` in running container `id`, attached to its input and output. A container
    /// that does not run is [`RuntimeError::Conflict`].
    fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
    ) -> impl Future<Output = Result<ExecSession, RuntimeError>> + Send;

    /// The exit code of exec `exec_id` (`None`: still running).
    fn exec_exit_code(
        &self,
        exec_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, RuntimeError>> + Send;

    /// Attaches to the main process of running container `id` (the streams `spec` asks for;
    /// its command is ignored). The output ends when the process exits.
    fn attach(
        &self,
        id: &str,
        spec: &ExecSpec,
    ) -> impl Future<Output = Result<ExecSession, RuntimeError>> + Send;

    /// Sets the terminal size of container `id`.
    fn resize_container(
        &self,
        id: &str,
        width: u16,
        height: u16,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Sets the terminal size of exec `exec_id`.
    fn resize_exec(
        &self,
        exec_id: &str,
        width: u16,
        height: u16,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The container events of this node's containers until the connection ends.
    fn events(&self) -> impl Stream<Item = Result<ContainerEvent, RuntimeError>> + Send + 'static;
}

/// Groups a pod's containers by name, each group newest (highest attempt) first.
pub fn by_name(
    containers: &[ContainerInfo],
) -> BTreeMap<(ContainerKind, String), Vec<&ContainerInfo>> {
    let mut groups: BTreeMap<(ContainerKind, String), Vec<&ContainerInfo>> = BTreeMap::new();
    for container in containers {
        groups
            .entry((container.kind, container.name.clone()))
            .or_default()
            .push(container);
    }
    for group in groups.values_mut() {
        group.sort_by(|a, b| b.attempt.cmp(&a.attempt).then(b.created.cmp(&a.created)));
    }
    groups
}
