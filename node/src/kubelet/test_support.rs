//! What the kubelet's unit tests share: a [`SyncContext`] over the [`FakeRuntime`], whose
//! events stay in a queue, and pods written as JSON.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, Pod};
use tokio::sync::mpsc;

use super::event_recorder::Recorder;
use super::logs::{ContainerLogs, LogLimits};
use super::prober::Prober;
use super::sync_pod::SyncContext;
use crate::runtime::fake::FakeRuntime;

/// The image every test pod runs.
pub const IMAGE: &str = "skiff/app:1";

/// A sync context over a fake runtime that has [`IMAGE`].
pub struct Harness {
    /// The fake.
    pub runtime: Arc<FakeRuntime>,
    /// What syncs read.
    pub ctx: SyncContext<FakeRuntime>,
    /// The events recorded.
    pub events: mpsc::Receiver<Event>,
    /// The agent's root directory (removed at the end).
    pub root: tempfile::TempDir,
}

impl Harness {
    /// A harness; must run inside a tokio runtime (the API client's buffer is a task).
    pub fn new() -> Self {
        let runtime = Arc::new(FakeRuntime::with_images(&[IMAGE]));
        let root = tempfile::tempdir().expect("temporary root directory");
        // No test pod reads a ConfigMap or Secret: nothing listens there.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("URL"));
        let client = kube::Client::try_from(config).expect("API client");
        let (recorder, events) = Recorder::to_queue("node-1");
        // The copier task is dropped: no log files are written.
        let (logs, _copiers) =
            ContainerLogs::new(runtime.clone(), root.path(), LogLimits::default());
        let ctx = SyncContext {
            runtime: runtime.clone(),
            client,
            recorder,
            logs,
            host_ip: String::from("192.168.1.5"),
            node_cpus: 2,
            node_memory_bytes: 1 << 30,
            root_dir: root.path().to_owned(),
            allow_image_pull: false,
            dns: Default::default(),
            prober: Prober::new().expect("the prober's HTTP client"),
            tokens: Default::default(),
        };
        Harness {
            runtime,
            ctx,
            events,
            root,
        }
    }

    /// The reasons of the events recorded since the last call, in order.
    pub fn event_reasons(&mut self) -> Vec<String> {
        let mut reasons = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            reasons.push(event.reason.unwrap_or_default());
        }
        reasons
    }
}

/// Pod `web` (uid `u1`) in `default` with `restartPolicy` `policy`, app containers `apps` and
/// init containers `inits`, all running [`IMAGE`].
pub fn pod(policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
    let containers = |names: &[&str]| {
        names
            .iter()
            .map(|n| serde_json::json!({"name": n, "image": IMAGE}))
            .collect::<Vec<_>>()
    };
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": 5,
            "initContainers": containers(inits),
            "containers": containers(apps),
        },
    }))
    .expect("pod")
}
