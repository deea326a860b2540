//! Container log files: the agent copies every app and init container's output from Docker
//! into the pod's log files and serves `kubectl logs` from them, as the kubelet does with the
//! files its container runtime writes.
//!
//! - Where: `<root>/pods/<pod uid>/logs/<container>/<restartCount>.log`, in the CRI format
//!   ([`cri`]); removed with the pod's directory.
//! - [`writer`]: one copier task per container, following Docker's stream of its output and
//!   appending records through io_uring ([`crate::uring::LogFile`]); a file over the size
//!   limit is rotated (`<n>.log.<time>`, at most `max_files` kept). Docker keeps its own
//!   bounded json-file copy, so output written while the agent was down is caught up on:
//!   a copier starts after the last record its file holds.
//! - [`reader`]: `kubectl logs` options (tail, since, timestamps, follow) over a file;
//!   following ends when the copier has written the container's last output.
//!
//! [`ContainerLogs`] is the handle the pod workers (start copiers) and the kubelet endpoint
//! (read, follow) share; the copiers run as `!Send` tasks on the agent's io_uring runtime.

pub mod cri;
pub mod reader;
pub mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::runtime::{ContainerInfo, ContainerKind, ContainerPhase, ContainerRuntime, PodRef};
pub use reader::{ReadOptions, read_logs};
pub use writer::{LogLimits, Progress};

/// The shared handle: which containers are being copied, and where their files are.
#[derive(Clone)]
pub struct ContainerLogs {
    shared: Arc<Shared>,
}

struct Shared {
    root_dir: PathBuf,
    limits: LogLimits,
    state: Mutex<State>,
    copiers: mpsc::UnboundedSender<CopyRequest>,
}

#[derive(Default)]
struct State {
    /// Container id -> (pod uid, what its copier has written so far).
    copying: HashMap<String, (String, watch::Receiver<Progress>)>,
    /// Container id -> pod uid, for containers whose output is all in their file.
    copied: HashMap<String, String>,
}

/// A copier to start.
struct CopyRequest {
    id: String,
    path: PathBuf,
    progress: watch::Sender<Progress>,
}

impl ContainerLogs {
    /// The handle and the task that runs the copiers; the task must be spawned on the
    /// agent's runtime with [`crate::uring::spawn`] (the copiers write through io_uring).
    pub fn new<R: ContainerRuntime>(
        runtime: Arc<R>,
        root_dir: &Path,
        limits: LogLimits,
    ) -> (ContainerLogs, impl Future<Output = ()> + 'static) {
        let (copiers, requests) = mpsc::unbounded_channel();
        let logs = ContainerLogs {
            shared: Arc::new(Shared {
                root_dir: root_dir.to_owned(),
                limits,
                state: Mutex::new(State::default()),
                copiers,
            }),
        };
        let task = run_copiers(runtime, logs.clone(), requests);
        (logs, task)
    }

    /// The log file of instance `attempt` (the restart count) of `container` in `pod`.
    pub fn path(&self, pod: &PodRef, container: &str, attempt: u32) -> PathBuf {
        self.container_dir(pod, container)
            .join(format!("{attempt}.log"))
    }

    fn container_dir(&self, pod: &PodRef, container: &str) -> PathBuf {
        super::paths::container_logs_dir(&self.shared.root_dir, &pod.uid, container)
    }

    /// Makes sure the output of `container` is being copied into its file, or has been: starts
    /// a copier for a started container that has none. Cheap when there is one already.
    pub fn ensure(&self, container: &ContainerInfo) {
        if container.kind == ContainerKind::Sandbox || container.phase == ContainerPhase::Created {
            return;
        }
        let (progress, receiver) = watch::channel(Progress::default());
        {
            let mut state = self.lock();
            if state.copying.contains_key(&container.id) || state.copied.contains_key(&container.id)
            {
                return;
            }
            state
                .copying
                .insert(container.id.clone(), (container.pod.uid.clone(), receiver));
        }
        let path = self.path(&container.pod, &container.name, container.attempt);
        if let Some(dir) = path.parent() {
            remove_older_attempts(dir, container.attempt);
        }
        let copy = CopyRequest {
            id: container.id.clone(),
            path,
            progress,
        };
        if self.shared.copiers.send(copy).is_err() {
            // The copier task is gone (the agent is stopping).
            self.lock().copying.remove(&container.id);
        }
    }

    /// What the copier of container `id` has written, to follow it; `None` when nothing is
    /// copying it (it has stopped and its output is all in the file, or it never started).
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<Progress>> {
        self.lock().copying.get(id).map(|(_, rx)| rx.clone())
    }

    /// Forgets the containers of a pod that is gone (its files go with its directory).
    pub fn forget_pod(&self, uid: &str) {
        let mut state = self.lock();
        state.copied.retain(|_, pod| pod != uid);
    }

    fn finished(&self, id: &str, complete: bool) {
        let mut state = self.lock();
        if let Some((uid, _)) = state.copying.remove(id)
            && complete
        {
            state.copied.insert(id.to_owned(), uid);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent between statements; a panic elsewhere cannot break it.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads a size flag (`10Mi`, `500Ki`, `1000000`): a Kubernetes quantity of at least 1 KiB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    match skiff_api::quantity::value(text) {
        Ok(bytes) if bytes >= 1024 => Ok(u64::try_from(bytes).unwrap_or(u64::MAX)),
        Ok(_) => Err(format!("{text}: must be at least 1Ki")),
        Err(_) => Err(format!("{text}: not a quantity (e.g. 10Mi)")),
    }
}

/// Starts a copier task per request, each on the current (io_uring) thread.
async fn run_copiers<R: ContainerRuntime>(
    runtime: Arc<R>,
    logs: ContainerLogs,
    mut requests: mpsc::UnboundedReceiver<CopyRequest>,
) {
    while let Some(copy) = requests.recv().await {
        let runtime = runtime.clone();
        let logs = logs.clone();
        crate::uring::spawn(async move {
            let copier = writer::Copier {
                id: &copy.id,
                path: &copy.path,
                limits: logs.shared.limits,
                progress: &copy.progress,
            };
            let complete = match copier.run(runtime.as_ref()).await {
                Ok(()) => {
                    debug!(container = %copy.id, "all output is in {}", copy.path.display());
                    true
                }
                Err(err) => {
                    // Tried again on the pod's next sync.
                    warn!(container = %copy.id, "copying the container's output: {err}");
                    false
                }
            };
            copy.progress.send_modify(|p| p.done = true);
            logs.finished(&copy.id, complete);
        });
    }
}

/// Removes the files of instances before `attempt - 1`: the kubelet keeps the current and the
/// previous instance (for `kubectl logs --previous`).
fn remove_older_attempts(dir: &Path, attempt: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(instance) = name
            .to_str()
            .and_then(|n| n.split('.').next())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if instance + 1 < attempt
            && let Err(err) = std::fs::remove_file(entry.path())
        {
            warn!("removing an old log file {}: {err}", entry.path().display());
        }
    }
}
