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
        let probes_changed = state.probes.changed();
        tokio::select! {
            // A probe's result changed: readiness to report, or a container to restart.
            _ = probes_changed.notified() => {}
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
    sync.tokens.forget_pod(uid);
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use tokio::time::timeout;

    use super::*;
    use crate::kubelet::test_support::{Harness, pod};
    use crate::kubelet::types::CONFIG_SOURCE;
    use crate::runtime::fake::{Call, FakeRuntime};

    const WAIT: Duration = Duration::from_secs(10);

    /// A running worker of pod `u1` and what it reports to.
    struct Running {
        runtime: Arc<FakeRuntime>,
        root: tempfile::TempDir,
        input: watch::Sender<WorkerInput>,
        worker: tokio::task::JoinHandle<()>,
        status: mpsc::UnboundedReceiver<StatusMsg>,
        manager: mpsc::UnboundedReceiver<ManagerMsg>,
    }

    impl Running {
        /// Starts the worker for `pod` and waits for its first status.
        async fn start(pod: Pod) -> Running {
            let Harness {
                runtime, ctx, root, ..
            } = Harness::new();
            let (status_tx, status) = mpsc::unbounded_channel();
            let (manager_tx, manager) = mpsc::unbounded_channel();
            let ctx = Arc::new(WorkerContext {
                sync: ctx,
                resync: Duration::from_secs(60),
                status: status_tx,
                manager: manager_tx,
            });
            let (input, receiver) = watch::channel(WorkerInput {
                pod: Some(Arc::new(pod)),
                poke: 0,
            });
            let worker = tokio::spawn(run(ctx, String::from("u1"), receiver));
            let mut running = Running {
                runtime,
                root,
                input,
                worker,
                status,
                manager,
            };
            let first = timeout(WAIT, running.status.recv())
                .await
                .expect("a status");
            assert!(matches!(first, Some(StatusMsg::Status { .. })), "{first:?}");
            running
        }

        fn pod_dir(&self) -> PathBuf {
            paths::pod_dir(self.root.path(), "u1")
        }

        /// Tells the worker its pod is now `pod` and waits for the worker to end.
        async fn change_to(mut self, pod: Option<Pod>) -> (Vec<Call>, Option<StatusMsg>) {
            self.runtime.take_calls();
            self.input.send_modify(|input| {
                input.pod = pod.map(Arc::new);
                input.poke += 1;
            });
            timeout(WAIT, &mut self.worker)
                .await
                .expect("the worker ends")
                .expect("the worker does not panic");
            let done = self.manager.try_recv().expect("the manager is told");
            assert!(matches!(done, ManagerMsg::WorkerDone(uid) if uid == "u1"));
            assert!(self.runtime.containers().is_empty(), "containers left");
            assert!(!self.pod_dir().exists(), "the pod's directory is left");
            (self.runtime.take_calls(), self.status.try_recv().ok())
        }
    }

    #[tokio::test]
    async fn deleting_a_pod_stops_its_containers_then_removes_them_and_finishes_the_deletion() {
        let pod = pod("Always", &[], &["app"]);
        let running = Running::start(pod.clone()).await;
        std::fs::create_dir_all(paths::pod_volumes_dir(running.root.path(), "u1")).expect("dir");

        let mut deleting = pod;
        deleting.metadata.deletion_timestamp = Some(Time(chrono::Utc::now()));
        deleting.metadata.deletion_grace_period_seconds = Some(3);
        let (calls, status) = running.change_to(Some(deleting)).await;
        assert_eq!(
            calls,
            vec![
                // The app containers get the pod's deletion grace period, the sandbox goes last.
                Call::Stop(String::from("app.0"), Duration::from_secs(3)),
                Call::Stop(String::from("POD.0"), Duration::ZERO),
                Call::Remove(String::from("POD.0")),
                Call::Remove(String::from("app.0")),
            ]
        );
        assert!(
            matches!(&status, Some(StatusMsg::Terminated { key, uid }) if key.1 == "web" && uid == "u1"),
            "{status:?}"
        );
    }

    #[tokio::test]
    async fn a_static_pod_whose_manifest_is_gone_is_stopped_and_forgotten_not_deleted() {
        let mut pod = pod("Always", &[], &["app"]);
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert(CONFIG_SOURCE.to_owned(), String::from("file"));
        let running = Running::start(pod).await;
        let (calls, status) = running.change_to(None).await;
        assert_eq!(
            calls,
            vec![
                Call::Stop(String::from("app.0"), Duration::from_secs(5)),
                Call::Stop(String::from("POD.0"), Duration::ZERO),
                Call::Remove(String::from("POD.0")),
                Call::Remove(String::from("app.0")),
            ]
        );
        assert!(
            matches!(&status, Some(StatusMsg::Forget { uid, .. }) if uid == "u1"),
            "{status:?}"
        );
    }

    #[tokio::test]
    async fn a_worker_reports_a_status_only_when_it_changed() {
        let (status_tx, mut status_rx) = mpsc::unbounded_channel();
        let pod = pod("Always", &[], &["app"]);
        let mut state = SyncState::default();
        let pending = PodStatus {
            phase: Some(String::from("Pending")),
            ..Default::default()
        };
        let running = PodStatus {
            phase: Some(String::from("Running")),
            ..Default::default()
        };
        for status in [&pending, &pending, &running, &running] {
            report(&status_tx, &pod, &mut state, status.clone());
        }
        let mut phases = Vec::new();
        while let Ok(StatusMsg::Status { status, .. }) = status_rx.try_recv() {
            phases.push(status.phase.unwrap_or_default());
        }
        assert_eq!(phases, ["Pending", "Running"]);
    }
}
