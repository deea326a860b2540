//! The kubelet: registers the Node, keeps its Lease and status fresh, and runs the pods bound
//! to this node (and static pods) as Docker containers.
//!
//! How the parts fit ([`Kubelet::run`] starts them):
//! - [`register`]: the Node object and its pod CIDR, the Lease;
//! - [`heartbeat`]: lease renewals and node status updates, behind the [`Heartbeat`] trait
//!   that the io_uring module implements;
//! - `runtime_monitor`: Docker's health (the Ready condition) and its container events;
//! - `api_pods` and [`static_pods`]: the two pod sources;
//! - `pod_manager`: one `pod_worker` per pod, each running `sync_pod` (a reconcile of the
//!   pod's containers, from what `observed` reads) and computing the pod's status
//!   (`pod_status`); `pod_kill` stops and removes a pod that is gone;
//! - `status_manager`: the only writer of pods (statuses, mirror pods, finished deletions);
//! - [`pod_view`]: the pods the agent runs with their latest statuses, which the pod manager
//!   and the status manager keep and the endpoint's `/pods` shows;
//! - [`logs`]: the containers' log files, copied from Docker through io_uring;
//! - [`server`]: the agent's HTTPS endpoint for the API server (container logs, `/pods`,
//!   `/metrics`, `/stats/summary`, `/logs/`);
//! - [`certificate`]: the node's client and serving certificates, asked of the cluster and
//!   renewed while the agent runs;
//! - [`event_recorder`]: the Kubernetes Events the kubelet posts.
//!
//! The leaves the parts share, so none imports another for a type (as Kubernetes'
//! `pkg/kubelet/types`): [`types`] (pod annotations and keys), `messages` (what the tasks
//! send each other), `paths` (a pod's files), [`node_facts`] (the machine).
//!
//! Nothing here stops pods when the agent exits or loses the master: containers keep running
//! and a restarted agent adopts them by their labels.

mod api_pods;
pub mod backoff;
pub mod bootstrap;
pub mod certificate;
mod container_config;
pub mod dns;
mod etc_hosts;
pub mod event_recorder;
pub mod heartbeat;
pub mod logs;
mod messages;
pub mod node_facts;
pub mod node_status;
mod observed;
mod paths;
mod pod_kill;
mod pod_manager;
mod pod_status;
pub mod pod_view;
mod pod_worker;
mod prober;
pub mod register;
mod runtime_monitor;
pub mod server;
pub mod static_pods;
mod status_manager;
mod sync_pod;
#[cfg(test)]
mod test_support;
mod token_manager;
pub mod types;
mod volumes;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

pub use heartbeat::{Heartbeat, HeartbeatError};

use crate::runtime::{ContainerRuntime, NodeNetwork};
use node_facts::NodeFacts;
use node_status::RuntimeHealth;
use server::{KubeletServer, ServerConfig, ServerError};

/// How the kubelet runs (the `skiff-node` flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// The Node's name.
    pub node_name: String,
    /// The node's pod CIDR (`None`: the Node's `spec.podCIDR`, assigned by the master).
    pub pod_cidr: Option<Ipv4Net>,
    /// The cluster's pod CIDR.
    pub cluster_cidr: Ipv4Net,
    /// Static pod manifests.
    pub manifests_dir: Option<PathBuf>,
    /// How often the manifests directory is read.
    pub manifests_interval: Duration,
    /// The agent's own files (pod volumes).
    pub root_dir: PathBuf,
    /// Lease renewal period.
    pub lease_interval: Duration,
    /// Node status period when nothing changes.
    pub node_status_interval: Duration,
    /// Pod resync period when nothing happens.
    pub resync_interval: Duration,
    /// The node's address (`None`: detected).
    pub node_ip: Option<IpAddr>,
    /// Whether images missing locally may be pulled from registries.
    pub allow_image_pull: bool,
    /// Size and number of each container's log files.
    pub container_logs: logs::LogLimits,
    /// What pods' resolv.conf is made from.
    pub dns: dns::ClusterDns,
}

/// What can stop the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// A call to the API server failed.
    #[error("{context}: {source}")]
    Api {
        /// What was being done.
        context: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The agent's HTTPS endpoint cannot start.
    #[error("the kubelet endpoint: {0}")]
    Server(#[from] ServerError),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// How long the lease lasts: four renewal periods (40 s for the default 10 s).
    pub fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_interval.as_secs().saturating_mul(4))
            .unwrap_or(i32::MAX)
            .max(1)
    }
}

impl KubeletError {
    /// A mapper from a `kube` error to [`KubeletError::Api`] with `context`.
    pub fn api(context: &'static str) -> impl Fn(kube::Error) -> KubeletError {
        move |source| KubeletError::Api { context, source }
    }
}

/// The node agent.
pub struct Kubelet<R, H> {
    config: Config,
    client: kube::Client,
    runtime: Arc<R>,
    heartbeat: H,
    server: Option<ServerConfig>,
    client_identity: Option<certificate::Identity>,
}

impl<R: ContainerRuntime, H: Heartbeat + 'static> Kubelet<R, H> {
    /// A kubelet with its configuration, API client, container runtime and heartbeat writer.
    pub fn new(config: Config, client: kube::Client, runtime: Arc<R>, heartbeat: H) -> Self {
        Self {
            config,
            client,
            runtime,
            heartbeat,
            server: None,
            client_identity: None,
        }
    }

    /// Renew the node's client certificate (`identity`, kept in
    /// [`certificate::CLIENT_FILE`] under the agent's directory, as joining left it) while
    /// running.
    pub fn rotating_client_certificate(mut self, identity: certificate::Identity) -> Self {
        self.client_identity = Some(identity);
        self
    }

    /// Also serve the agent's HTTPS endpoint (container logs for the API server), and publish
    /// its port in the Node's status.
    pub fn serving(mut self, server: ServerConfig) -> Self {
        self.server = Some(server);
        self
    }

    /// Registers the node (retrying until the master answers) and runs until `shutdown`
    /// resolves. Must run inside a [`tokio::task::LocalSet`]: the heartbeat's futures need
    /// not be `Send`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), KubeletError> {
        let config = self.config;
        std::fs::create_dir_all(&config.root_dir).map_err(|source| KubeletError::Io {
            context: format!("creating {}", config.root_dir.display()),
            source,
        })?;
        let facts = NodeFacts::gather(&config.root_dir, config.node_ip).await;
        info!(node = %config.node_name, ip = %facts.internal_ip, "starting the kubelet");
        let (container_logs, log_copiers) = logs::ContainerLogs::new(
            self.runtime.clone(),
            &config.root_dir,
            config.container_logs,
        );
        let pod_view = pod_view::PodView::default();
        // The serving certificate of an earlier run, while valid; else none until the first
        // is issued.
        let serving_file = config.root_dir.join(certificate::SERVING_FILE);
        let serving = certificate::Identity::load_valid(&serving_file).unwrap_or_default();
        // Bound before registering, so a taken port fails the start at once.
        let server = match &self.server {
            Some(server) => Some(
                KubeletServer::bind(
                    server,
                    &config.node_name,
                    serving.clone(),
                    self.runtime.clone(),
                    container_logs.clone(),
                    pod_view.clone(),
                    server::auth::Authorizer::new(Some(self.client.clone()), &config.node_name),
                )
                .await?,
            ),
            None => None,
        };
        let daemon_port = server.as_ref().map_or(0, |s| i32::from(s.port()));

        let registration = {
            let mut delay = Duration::from_millis(500);
            loop {
                match register::register_node(
                    &self.client,
                    &config.node_name,
                    &facts,
                    config.pod_cidr,
                )
                .await
                {
                    Ok(registration) => break registration,
                    Err(err @ KubeletError::Config(_)) => return Err(err),
                    Err(err) => {
                        warn!("{err}; retrying in {delay:?}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        };
        if !config.cluster_cidr.contains(&registration.pod_cidr) {
            warn!(pod_cidr = %registration.pod_cidr, cluster_cidr = %config.cluster_cidr, "the pod CIDR is outside the cluster CIDR");
        }
        info!(node = %config.node_name, pod_cidr = %registration.pod_cidr, "node registered");
        let lease_seconds = config.lease_duration_seconds();
        if let Err(err) = register::ensure_lease(
            &self.client,
            &config.node_name,
            &registration.uid,
            lease_seconds,
        )
        .await
        {
            // The heartbeat creates it when a renewal finds it missing.
            warn!("{err}");
        }

        let (health_tx, health_rx) = watch::channel(RuntimeHealth::default());
        let (manager_tx, manager_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let (recorder, event_poster) =
            event_recorder::Recorder::new(self.client.clone(), &config.node_name);
        recorder.record(
            recorder.node_ref(),
            event_recorder::EventType::Normal,
            "Starting",
            String::from("Starting kubelet."),
        );

        let heartbeat = heartbeat::HeartbeatLoop {
            heartbeat: self.heartbeat,
            client: self.client.clone(),
            node: config.node_name.clone(),
            node_uid: registration.uid.clone(),
            lease_interval: config.lease_interval,
            lease_seconds,
            status_interval: config.node_status_interval,
            facts: facts.clone(),
            daemon_port,
            health: health_rx,
        };
        let network = NodeNetwork {
            pod_cidr: registration.pod_cidr,
            cluster_cidr: config.cluster_cidr,
        };
        let ctx = Arc::new(pod_worker::WorkerContext {
            sync: sync_pod::SyncContext {
                runtime: self.runtime.clone(),
                client: self.client.clone(),
                recorder: recorder.clone(),
                logs: container_logs,
                host_ip: facts.internal_ip.to_string(),
                node_cpus: facts.cpus,
                node_memory_bytes: facts.memory_bytes,
                root_dir: config.root_dir.clone(),
                allow_image_pull: config.allow_image_pull,
                dns: config.dns.clone(),
                prober: prober::Prober::new().map_err(KubeletError::Config)?,
                tokens: token_manager::TokenManager::default(),
            },
            resync: config.resync_interval,
            status: status_tx,
            manager: manager_tx.clone(),
        });
        let manager = pod_manager::PodManager::new(ctx, config.manifests_dir.is_some())
            .publishing(pod_view.clone());
        let status_manager = status_manager::StatusManager::new(
            self.client.clone(),
            &config.node_name,
            &registration.uid,
        )
        .publishing(pod_view);

        let mut tasks = vec![
            tokio::task::spawn_local(heartbeat.run()),
            // Local: the copiers write through io_uring.
            tokio::task::spawn_local(log_copiers),
            tokio::spawn(event_poster),
            tokio::spawn(status_manager.run(status_rx)),
            tokio::spawn(runtime_monitor::run(
                self.runtime.clone(),
                network,
                health_tx,
                manager_tx.clone(),
            )),
            tokio::spawn({
                let watch = api_pods::watch(
                    self.client.clone(),
                    config.node_name.clone(),
                    manager_tx.clone(),
                );
                let serving = self.server.is_some().then(|| serving.clone());
                async move {
                    // Pods from the API server run once the endpoint has its certificate, so
                    // `kubectl logs` and `exec` reach every pod that runs (static pods, which
                    // may be the control plane itself, do not wait).
                    if let Some(serving) = serving {
                        wait_for_certificate(&serving, SERVING_CERTIFICATE_WAIT).await;
                    }
                    watch.await
                }
            }),
        ];
        if let Some(dir) = config.manifests_dir.clone() {
            // Local: its manifest reads go through io_uring.
            tasks.push(tokio::task::spawn_local(static_pods::watch(
                dir,
                config.node_name.clone(),
                config.manifests_interval,
                recorder,
                manager_tx.clone(),
            )));
        }
        drop(manager_tx);
        tasks.push(tokio::spawn(manager.run(manager_rx)));
        if let Some(server) = server {
            tasks.push(tokio::spawn(server.serve()));
            let rotation = certificate::Rotation {
                client: self.client.clone(),
                template: certificate::Template::serving(
                    &config.node_name,
                    &facts.hostname,
                    &[facts.internal_ip],
                ),
                identity: serving,
                file: serving_file,
            };
            let client = self.client.clone();
            let node = config.node_name.clone();
            let ip = facts.internal_ip;
            tasks.push(tokio::spawn(async move {
                // The approver checks the names against the Node's addresses: they are
                // posted first.
                wait_for_address(&client, &node, ip).await;
                rotation.run().await;
            }));
        }
        if let Some(identity) = self.client_identity {
            tasks.push(tokio::spawn(
                certificate::Rotation {
                    client: self.client.clone(),
                    template: certificate::Template::client(&config.node_name),
                    identity,
                    file: config.root_dir.join(certificate::CLIENT_FILE),
                }
                .run(),
            ));
        }

        shutdown.await;
        info!("shutting down; the pods keep running");
        for task in tasks {
            task.abort();
        }
        Ok(())
    }
}

/// How long pods from the API server wait for the endpoint's first serving certificate.
const SERVING_CERTIFICATE_WAIT: Duration = Duration::from_secs(30);

/// Waits (at most `limit`) until `identity` holds a certificate.
async fn wait_for_certificate(identity: &certificate::Identity, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while identity.certified_key().is_none() {
        if tokio::time::Instant::now() > deadline {
            warn!(
                "no serving certificate yet; running pods without (the API server cannot reach them until it is issued)"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to a minute) until the Node's status lists `ip`.
async fn wait_for_address(client: &kube::Client, node: &str, ip: IpAddr) {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let wanted = ip.to_string();
    for _ in 0..120 {
        let listed = nodes.get(node).await.ok().is_some_and(|n| {
            n.status
                .and_then(|s| s.addresses)
                .is_some_and(|a| a.iter().any(|a| a.address == wanted))
        });
        if listed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    warn!(node, %ip, "the Node's status does not list the address yet; asking for the serving certificate anyway");
}
