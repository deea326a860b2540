//! One worker per pod: a task that syncs its pod whenever the pod changes, one of its
//! containers changes (Docker events), a back-off ends or the periodic resync comes, and that
//! terminates the pod when it is deleted (or gone):
//! SIGTERM to its containers, up to the grace period, SIGKILL, remove the containers and the
//! pod's volumes, then (for a pod being deleted through the API) have the deletion finished.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::messages::{ManagerMsg, StatusMsg};
use super::paths;
use super::pod_kill::kill_pod;
use super::sync_pod::{self, SyncContext, SyncState};
use super::types::{is_static_pod, key_of};
use crate::runtime::ContainerRuntime;

/// What every pod worker uses: what a sync reads, and where workers report.
pub struct WorkerContext<R> {
    /// What a sync reads.
    pub sync: SyncContext<R>,
    /// How often a pod is synced without a reason.
    pub resync: Duration,
    /// Statuses go here.
    pub status: mpsc::UnboundedSender<StatusMsg>,
    /// Workers report their end here.
    pub manager: mpsc::UnboundedSender<ManagerMsg>,
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
    let mut state = SyncState::default();
    let mut failures = 0u32;
    let mut last_pod: Option<Arc<Pod>> = None;
    loop {
        let current = input.borrow_and_update().clone();
        let requeue = match current.pod {
            Some(pod) if pod.metadata.deletion_timestamp.is_none() => {
                last_pod = Some(pod.clone());
                match sync_pod::sync_pod(&ctx.sync, &pod, &mut state).await {
                    Ok(outcome) => {
                        failures = 0;
                        debug!(
                            pod = pod.metadata.name.as_deref().unwrap_or(""),
                            requeue = ?outcome.requeue,
                            changed = outcome.status.is_some(),
                            "synced pod"
                        );
                        if let Some(status) = outcome.status {
                            report(&ctx.status, &pod, &mut state, status);
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
fn report(
    status_tx: &mpsc::UnboundedSender<StatusMsg>,
    pod: &Pod,
    state: &mut SyncState,
    status: PodStatus,
) {
    if state.last_status.as_ref() == Some(&status) {
        return;
    }
    state.last_status = Some(status.clone());
    let _ = status_tx.send(StatusMsg::Status {
        key: key_of(pod),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        static_pod: is_static_pod(pod),
        status: Box::new(status),
    });
}

/// Stops and removes the pod's containers and its directory, retrying until the runtime lets
/// it, then finishes an API deletion. `pod` is `None` for orphans found by labels only.
async fn terminate<R: ContainerRuntime>(ctx: &WorkerContext<R>, uid: &str, pod: Option<&Pod>) {
    let sync = &ctx.sync;
    let mut inspected = Default::default();
    let mut failures = 0u32;
    loop {
        let killed = kill_pod(
            sync.runtime.as_ref(),
            &sync.logs,
            &sync.recorder,
            uid,
            pod,
            &mut inspected,
        )
        .await;
        match killed {
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
    if let Err(err) = paths::remove_pod_dir(&sync.root_dir, uid) {
        warn!(pod = uid, "removing the pod's directory: {err}");
    }
    sync.logs.forget_pod(uid);
    let Some(pod) = pod else { return };
    let key = key_of(pod);
    let uid = uid.to_owned();
    let _ = ctx.status.send(
        if pod.metadata.deletion_timestamp.is_some() && !is_static_pod(pod) {
            StatusMsg::Terminated { key, uid }
        } else {
            StatusMsg::Forget { key, uid }
        },
    );
}
