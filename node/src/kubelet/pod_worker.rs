//! One worker per pod: a task that syncs its pod whenever the pod changes, one of its
//! containers changes (Docker events), a back-off ends or the periodic resync comes, and that
//! terminates the pod when it is deleted (or gone):
//! SIGTERM to its containers, up to the grace period, SIGKILL, remove the containers and the
//! pod's volumes, then (for a pod being deleted through the API) have the deletion finished.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodStatus};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::events::{EventType, Recorder};
use super::logs::ContainerLogs;
use super::pod_manager::ManagerMsg;
use super::pod_status::Waiting;
use super::static_pods;
use super::status_manager::{StatusMsg, key_of};
use super::sync_pod::{self, grace_period, observe};
use super::volumes;
use crate::runtime::{ContainerDetails, ContainerRuntime, RuntimeError};

/// Everything a pod worker uses, shared by all workers.
pub struct WorkerContext<R> {
    /// The container runtime.
    pub runtime: Arc<R>,
    /// For ConfigMaps and Secrets.
    pub client: kube::Client,
    /// This node's IP.
    pub host_ip: String,
    /// The node's CPUs (a missing CPU limit in the downward API).
    pub node_cpus: u64,
    /// The node's memory (a missing memory limit in the downward API).
    pub node_memory_bytes: u64,
    /// The agent's directory (pod volumes).
    pub root_dir: PathBuf,
    /// Whether images may be pulled from registries.
    pub allow_image_pull: bool,
    /// How often a pod is synced without a reason.
    pub resync: Duration,
    /// Statuses go here.
    pub status: mpsc::UnboundedSender<StatusMsg>,
    /// Workers report their end here.
    pub manager: mpsc::UnboundedSender<ManagerMsg>,
    /// Events.
    pub recorder: Recorder,
    /// The containers' log files.
    pub logs: ContainerLogs,
}

impl<R> WorkerContext<R> {
    /// Records an event about `pod`.
    pub fn record(&self, pod: &Pod, kind: EventType, reason: &str, message: String) {
        self.recorder
            .record(object_ref(pod, None), kind, reason, message);
    }

    /// Records an event about one container of `pod`.
    pub fn record_container(
        &self,
        pod: &Pod,
        container: &str,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        self.recorder
            .record(object_ref(pod, Some(container)), kind, reason, message);
    }
}

fn object_ref(pod: &Pod, container: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some(String::from("v1")),
        kind: Some(String::from("Pod")),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        field_path: container.map(|c| format!("spec.containers{{{c}}}")),
        ..Default::default()
    }
}

/// What a worker remembers between syncs: errors with their retry back-off, and details of
/// containers whose state cannot have changed. Everything else is read afresh each sync.
#[derive(Default)]
pub struct WorkerState {
    /// Why a container is not running, by container name.
    pub waiting: HashMap<String, Waiting>,
    /// Consecutive failures, by container name.
    pub failures: HashMap<String, u32>,
    /// When to retry, by container name.
    pub retry_at: HashMap<String, Instant>,
    /// Consecutive failures to create the sandbox.
    pub sandbox_failures: u32,
    /// When to retry the sandbox.
    pub sandbox_retry_at: Option<Instant>,
    /// Details of the containers seen at the last sync.
    pub inspected: HashMap<String, ContainerDetails>,
    /// The status last computed.
    pub last_status: Option<PodStatus>,
    /// Whether this worker computed the pod's status already (else the API's phase counts).
    pub owns_status: bool,
    /// Exited containers whose back-off event was recorded.
    pub backoff_reported: HashSet<String>,
}

impl WorkerState {
    /// Time until the earliest pending retry.
    pub fn next_retry(&self) -> Option<Duration> {
        let now = Instant::now();
        self.retry_at
            .values()
            .copied()
            .chain(self.sandbox_retry_at)
            .filter(|at| *at > now)
            .min()
            .map(|at| at - now)
    }
}

/// What the pod manager tells a worker: the pod as it should be (`None`: gone), and a counter
/// bumped to make it sync now.
#[derive(Clone, Debug, Default)]
pub struct WorkerInput {
    /// The desired pod.
    pub pod: Option<Arc<Pod>>,
    /// Bumped for "sync now" (a container event, the runtime coming back).
    pub poke: u64,
}

/// Runs the worker of pod `uid` until the pod is terminated.
pub async fn run<R: ContainerRuntime>(
    ctx: Arc<WorkerContext<R>>,
    uid: String,
    mut input: watch::Receiver<WorkerInput>,
) {
    let mut state = WorkerState::default();
    let mut failures = 0u32;
    let mut last_pod: Option<Arc<Pod>> = None;
    loop {
        let current = input.borrow_and_update().clone();
        let requeue = match current.pod {
            Some(pod) if pod.metadata.deletion_timestamp.is_none() => {
                last_pod = Some(pod.clone());
                match sync_pod::sync_pod(&ctx, &pod, &mut state).await {
                    Ok(outcome) => {
                        failures = 0;
                        debug!(
                            pod = pod.metadata.name.as_deref().unwrap_or(""),
                            requeue = ?outcome.requeue,
                            changed = outcome.status.is_some(),
                            "synced pod"
                        );
                        if let Some(status) = outcome.status {
                            report(&ctx, &pod, &mut state, status);
                        }
                        outcome.requeue.unwrap_or(ctx.resync).min(ctx.resync)
                    }
                    Err(err) => {
                        failures += 1;
                        if failures == 1 {
                            warn!(
                                pod = pod.metadata.name.as_deref().unwrap_or(""),
                                "syncing pod: {err}"
                            );
                        }
                        Duration::from_millis(500 * (1 << failures.min(5)))
                    }
                }
            }
            deleting => {
                let pod = deleting.or(last_pod.clone());
                terminate(&ctx, &uid, pod.as_deref()).await;
                break;
            }
        };
        tokio::select! {
            changed = input.changed() => {
                if changed.is_err() {
                    // The manager is gone: the agent is shutting down; containers stay.
                    return;
                }
                // A container event can come before Docker's container list shows the change
                // (a `die` while `docker ps` still says running): inspect everything afresh.
                state.inspected.clear();
            }
            _ = tokio::time::sleep(requeue) => {}
        }
    }
    let _ = ctx.manager.send(ManagerMsg::WorkerDone(uid));
}

/// Hands a changed status to the status manager.
fn report<R>(ctx: &WorkerContext<R>, pod: &Pod, state: &mut WorkerState, status: PodStatus) {
    if state.last_status.as_ref() == Some(&status) {
        return;
    }
    state.last_status = Some(status.clone());
    let static_pod = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(static_pods::CONFIG_SOURCE))
        .is_some_and(|s| s == "file");
    let _ = ctx.status.send(StatusMsg::Status {
        key: key_of(pod),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        static_pod,
        status: Box::new(status),
    });
}

/// Stops and removes the pod's containers and volumes, retrying until Docker lets it, then
/// finishes an API deletion. `pod` is `None` for orphans found by labels only.
async fn terminate<R: ContainerRuntime>(ctx: &WorkerContext<R>, uid: &str, pod: Option<&Pod>) {
    let mut state = WorkerState::default();
    let mut failures = 0u32;
    loop {
        match kill_pod(ctx, uid, pod, &mut state).await {
            Ok(()) => break,
            Err(err) => {
                failures += 1;
                if failures == 1 {
                    warn!(pod = uid, "stopping pod: {err}; retrying");
                }
                tokio::time::sleep(Duration::from_millis(500 * (1 << failures.min(5)))).await;
            }
        }
    }
    if let Err(err) = volumes::remove_pod_dir(&ctx.root_dir, uid) {
        warn!(pod = uid, "removing the pod's directory: {err}");
    }
    ctx.logs.forget_pod(uid);
    let Some(pod) = pod else { return };
    let key = key_of(pod);
    let is_static = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(static_pods::CONFIG_SOURCE))
        .is_some_and(|s| s == "file");
    if pod.metadata.deletion_timestamp.is_some() && !is_static {
        let _ = ctx.status.send(StatusMsg::Terminated {
            key,
            uid: uid.to_owned(),
        });
    } else {
        let _ = ctx.status.send(StatusMsg::Forget {
            key,
            uid: uid.to_owned(),
        });
    }
}

/// One attempt at stopping (grace period, then SIGKILL) and removing everything of the pod.
async fn kill_pod<R: ContainerRuntime>(
    ctx: &WorkerContext<R>,
    uid: &str,
    pod: Option<&Pod>,
    state: &mut WorkerState,
) -> Result<(), RuntimeError> {
    let observed = observe(ctx, uid, state).await?;
    let grace = match pod {
        Some(pod) => grace_period(pod),
        // An orphan: its pod is gone from the API; the grace it had is on its labels.
        None => Duration::from_secs(
            observed
                .all()
                .map(|c| c.grace_seconds.clamp(0, 30) as u64)
                .max()
                .unwrap_or(0),
        ),
    };
    let name = pod
        .and_then(|p| p.metadata.name.clone())
        .or_else(|| observed.all().next().map(|c| c.pod.name.clone()))
        .unwrap_or_default();
    if observed.all().next().is_some() {
        info!(pod = %name, uid, grace_seconds = grace.as_secs(), "stopping the pod's containers");
        if let Some(pod) = pod {
            for container in observed
                .all()
                .filter(|c| c.phase == crate::runtime::ContainerPhase::Running)
                .filter(|c| c.kind != crate::runtime::ContainerKind::Sandbox)
            {
                ctx.record_container(
                    pod,
                    &container.name,
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {}", container.name),
                );
            }
        }
    }
    sync_pod::stop_all(ctx, &observed, grace).await?;
    for container in observed.all() {
        ctx.runtime.remove_container(&container.id).await?;
    }
    debug!(pod = %name, uid, "pod terminated");
    Ok(())
}
