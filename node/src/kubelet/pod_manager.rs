//! The pod manager: merges the pod sources (the API watch and the static pod directory) into
//! the set of pods this node should run, keeps one worker per pod, forwards container events
//! to the worker of their pod, and cleans up containers of pods that no longer exist
//! (e.g. deleted while the agent was down) once both sources have been read in full.
//!
//! A worker that panics is replaced after a back-off ([`skiff_api::restart`]), with an error
//! line and `skiff_pod_worker_restarts_total` on `/metrics`: its pod would otherwise stay as
//! the panic left it, neither synced nor ever terminated.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use skiff_api::restart::{RestartBackoff, panic_message};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::messages::{ApiPodMeta, ManagerMsg, StatusMsg};
use super::paths;
use super::pod_view::PodView;
use super::pod_worker::{self, WorkerContext, WorkerInput};
use super::types::{is_mirror_pod, key_of};
use crate::runtime::ContainerRuntime;

/// How often orphaned containers and pod directories are looked for.
const HOUSEKEEPING: Duration = Duration::from_secs(60);

struct Worker {
    input: watch::Sender<WorkerInput>,
    /// When its task started (the latest one, after a panic).
    started: Instant,
    /// The wait before a task replaces one that panicked.
    restarts: RestartBackoff,
}

/// The pod manager's state.
pub struct PodManager<R> {
    ctx: Arc<WorkerContext<R>>,
    status: mpsc::UnboundedSender<StatusMsg>,
    api_pods: HashMap<String, Pod>,
    api_synced: bool,
    static_pods: HashMap<String, Pod>,
    static_synced: bool,
    runtime_ready: bool,
    workers: HashMap<String, Worker>,
    view: PodView,
}

impl<R: ContainerRuntime> PodManager<R> {
    /// A manager whose workers share `ctx`; `static_source` says whether a manifest directory
    /// is watched (if not, the static source counts as read).
    pub fn new(ctx: Arc<WorkerContext<R>>, static_source: bool) -> Self {
        Self {
            status: ctx.status.clone(),
            ctx,
            api_pods: HashMap::new(),
            api_synced: false,
            static_pods: HashMap::new(),
            static_synced: !static_source,
            runtime_ready: false,
            workers: HashMap::new(),
            view: PodView::default(),
        }
    }

    /// Keeps `view` up to date with the desired pods.
    pub fn publishing(mut self, view: PodView) -> Self {
        self.view = view;
        self
    }

    /// Runs until every sender is gone.
    pub async fn run(mut self, mut incoming: mpsc::UnboundedReceiver<ManagerMsg>) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = incoming.recv() => match msg {
                    Some(msg) => self.handle(msg).await,
                    None => return,
                },
                _ = housekeeping.tick() => self.clean_up_orphans().await,
            }
        }
    }

    async fn handle(&mut self, msg: ManagerMsg) {
        match msg {
            ManagerMsg::ApiSnapshot(pods) => {
                let metas = pods.iter().map(ApiPodMeta::of).collect();
                let _ = self.status.send(StatusMsg::ApiSnapshot(metas));
                let old: HashSet<String> = self.api_pods.keys().cloned().collect();
                self.api_pods = pods
                    .into_iter()
                    .filter(|pod| !is_mirror_pod(pod))
                    .filter_map(|pod| Some((pod.metadata.uid.clone()?, pod)))
                    .collect();
                let first = !self.api_synced;
                self.api_synced = true;
                let touched: HashSet<String> = old
                    .into_iter()
                    .chain(self.api_pods.keys().cloned())
                    .collect();
                for uid in touched {
                    self.update_worker(&uid);
                }
                if first {
                    info!(pods = self.api_pods.len(), "listed this node's pods");
                    self.clean_up_orphans().await;
                }
            }
            ManagerMsg::ApiApply(pod) => {
                let _ = self.status.send(StatusMsg::ApiApply(ApiPodMeta::of(&pod)));
                if is_mirror_pod(&pod) {
                    return;
                }
                if let Some(uid) = pod.metadata.uid.clone() {
                    self.api_pods.insert(uid.clone(), pod);
                    self.update_worker(&uid);
                }
            }
            ManagerMsg::ApiDelete(pod) => {
                let _ = self.status.send(StatusMsg::ApiDelete(ApiPodMeta::of(&pod)));
                if let Some(uid) = pod.metadata.uid.clone()
                    && self.api_pods.remove(&uid).is_some()
                {
                    self.update_worker(&uid);
                }
            }
            ManagerMsg::StaticSnapshot(pods) => {
                let by_key = pods.values().map(|p| (key_of(p), p.clone())).collect();
                let _ = self.status.send(StatusMsg::StaticPods(by_key));
                let touched: HashSet<String> = self
                    .static_pods
                    .keys()
                    .chain(pods.keys())
                    .cloned()
                    .collect();
                self.static_pods = pods;
                let first = !self.static_synced;
                self.static_synced = true;
                for uid in touched {
                    self.update_worker(&uid);
                }
                if first {
                    self.clean_up_orphans().await;
                }
            }
            ManagerMsg::RuntimeReady => {
                self.runtime_ready = true;
                for worker in self.workers.values() {
                    worker.input.send_modify(|input| input.poke += 1);
                }
                self.clean_up_orphans().await;
            }
            ManagerMsg::Container(event) => {
                if let Some(worker) = self.workers.get(&event.pod_uid) {
                    debug!(pod = %event.pod_uid, action = %event.action, "container event");
                    worker.input.send_modify(|input| input.poke += 1);
                }
            }
            ManagerMsg::WorkerDone(uid) => {
                self.workers.remove(&uid);
                // Desired again meanwhile (or never removed): start afresh.
                self.update_worker(&uid);
            }
            ManagerMsg::WorkerPanicked { uid, message } => self.worker_panicked(uid, &message),
            ManagerMsg::RestartWorker(uid) => {
                let Some(worker) = self.workers.get_mut(&uid) else {
                    return;
                };
                worker.started = Instant::now();
                // The pod as it is now: what changed meanwhile waited in the channel.
                let input = worker.input.subscribe();
                self.run_worker(&uid, input);
            }
        }
    }

    /// Pod `uid`'s worker panicked: a new task takes its input over after a back-off.
    fn worker_panicked(&mut self, uid: String, message: &str) {
        let Some(worker) = self.workers.get_mut(&uid) else {
            return;
        };
        let wait = worker.restarts.failed(worker.started.elapsed());
        self.view.worker_restarted();
        error!(
            pod = %uid,
            failures = worker.restarts.failures(),
            "the pod's worker panicked ({message}); a new one starts in {wait:?}"
        );
        let manager = self.ctx.manager.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = manager.send(ManagerMsg::RestartWorker(uid));
        });
    }

    /// The pod with this uid as it should run, if any.
    fn desired(&self, uid: &str) -> Option<&Pod> {
        self.api_pods.get(uid).or_else(|| self.static_pods.get(uid))
    }

    /// Tells the pod's worker what it should run now, starting a worker if needed.
    fn update_worker(&mut self, uid: &str) {
        self.view.set_pod(uid, self.desired(uid));
        let desired = self.desired(uid).cloned().map(Arc::new);
        match self.workers.get(uid) {
            Some(worker) => {
                worker.input.send_modify(|input| {
                    input.pod = desired;
                    input.poke += 1;
                });
            }
            None if desired.is_some() => self.spawn_worker(uid, desired),
            None => {}
        }
    }

    fn spawn_worker(&mut self, uid: &str, pod: Option<Arc<Pod>>) {
        let (input, receiver) = watch::channel(WorkerInput { pod, poke: 0 });
        self.run_worker(uid, receiver);
        self.workers.insert(
            uid.to_owned(),
            Worker {
                input,
                started: Instant::now(),
                restarts: RestartBackoff::default(),
            },
        );
    }

    /// Runs pod `uid`'s worker as a task of its own, and tells the manager if it panics.
    fn run_worker(&self, uid: &str, input: watch::Receiver<WorkerInput>) {
        let ctx = self.ctx.clone();
        let uid = uid.to_owned();
        tokio::spawn(async move {
            // The panicked worker's own state goes with it: the next one starts from the pod
            // and the runtime's containers, as a worker does after an agent restart.
            let worker = AssertUnwindSafe(pod_worker::run(ctx.clone(), uid.clone(), input));
            if let Err(panic) = worker.catch_unwind().await {
                let message = panic_message(&*panic);
                let _ = ctx
                    .manager
                    .send(ManagerMsg::WorkerPanicked { uid, message });
            }
        });
    }

    /// Containers and pod directories of pods that are neither desired nor worked on get a
    /// worker that removes them. Only once both sources were read in full: before that, an
    /// existing pod would look like an orphan.
    async fn clean_up_orphans(&mut self) {
        if !(self.api_synced && self.static_synced && self.runtime_ready) {
            return;
        }
        let containers = match self.ctx.sync.runtime.list_pod_containers(None).await {
            Ok(containers) => containers,
            Err(err) => {
                debug!("looking for orphaned containers: {err}");
                return;
            }
        };
        let orphans: HashSet<String> = containers
            .iter()
            .map(|c| c.pod.uid.clone())
            .filter(|uid| !self.workers.contains_key(uid) && self.desired(uid).is_none())
            .collect();
        for uid in orphans {
            info!(pod = %uid, "removing the containers of a pod that no longer exists");
            self.spawn_worker(&uid, None);
        }
        let pods_dir = paths::pods_dir(&self.ctx.sync.root_dir);
        if let Ok(entries) = std::fs::read_dir(&pods_dir) {
            for entry in entries.flatten() {
                let uid = entry.file_name().to_string_lossy().into_owned();
                if !self.workers.contains_key(&uid)
                    && self.desired(&uid).is_none()
                    && let Err(err) = paths::remove_pod_dir(&self.ctx.sync.root_dir, &uid)
                {
                    warn!(pod = %uid, "removing an orphaned pod directory: {err}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::test_support::{Harness, pod};
    use crate::runtime::ContainerPhase;

    #[tokio::test]
    async fn a_worker_that_panics_is_replaced_after_a_backoff_and_its_pod_runs() {
        let Harness { runtime, ctx, .. } = Harness::new();
        let (status, _statuses) = mpsc::unbounded_channel();
        let (manager_tx, incoming) = mpsc::unbounded_channel();
        let ctx = Arc::new(WorkerContext {
            sync: ctx,
            resync: Duration::from_secs(60),
            status,
            manager: manager_tx.clone(),
        });
        let view = PodView::default();
        let manager = tokio::spawn(
            PodManager::new(ctx, false)
                .publishing(view.clone())
                .run(incoming),
        );
        runtime.panic_on_sandboxes(1);
        let started = Instant::now();
        manager_tx
            .send(ManagerMsg::ApiSnapshot(vec![pod("Always", &[], &["app"])]))
            .expect("sent");
        let running = || {
            runtime
                .containers()
                .iter()
                .filter(|c| c.info.phase == ContainerPhase::Running)
                .count()
        };
        while running() < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the pod never ran"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(started.elapsed() >= skiff_api::restart::INITIAL);
        assert_eq!(view.worker_restarts(), 1);
        manager.abort();
    }
}
