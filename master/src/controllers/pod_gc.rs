//! The pod garbage collector (kube-controller-manager's `podgc`): pods that no kubelet will
//! ever finish. Every [`CHECK_PERIOD`] it
//! - force-deletes the pods bound to a node that no longer exists, once the node has been
//!   gone from the cache for [`QUARANTINE`] and the API server confirms it (404): each gets
//!   the `DisruptionTarget` condition (`DeletionByPodGC`) and, unless it had finished, the
//!   phase `Failed` first;
//! - deletes the oldest terminated pods (`Succeeded` or `Failed`) beyond
//!   `--terminated-pod-gc-threshold` (12,500; 0 keeps them all).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tracing::{info, warn};

use super::informers::{Index, Informers};

/// How often the pods are looked at (kube-controller-manager's `gcCheckPeriod`).
pub const CHECK_PERIOD: Duration = Duration::from_secs(20);
/// How long a node must be gone before its pods are (its `quarantineTime`): a node that is
/// deleted and registered again keeps them.
pub const QUARANTINE: Duration = Duration::from_secs(40);

/// The controller's settings.
#[derive(Clone, Copy, Debug)]
pub struct PodGcConfig {
    /// Terminated pods kept before the oldest are deleted (`--terminated-pod-gc-threshold`);
    /// 0 keeps them all.
    pub terminated_pod_threshold: usize,
}

/// The controller on the shared informers (the pod index by node, the Node cache); it runs
/// until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    config: PodGcConfig,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let mut gc = PodGc {
        client,
        config,
        pods: informers.pods.reader(),
        on_nodes: informers.pods.index(),
        nodes: informers.nodes.reader(),
        missing: HashMap::new(),
    };
    async move {
        let collecting = async {
            super::informers::synced(&gc.pods).await;
            super::informers::synced(&gc.nodes).await;
            let mut tick = tokio::time::interval(CHECK_PERIOD);
            loop {
                tick.tick().await;
                gc.collect().await;
            }
        };
        tokio::select! {
            () = collecting => {}
            () = shutdown => {}
        }
    }
}

struct PodGc {
    client: kube::Client,
    config: PodGcConfig,
    pods: Store<Pod>,
    on_nodes: Index<Pod>,
    nodes: Store<Node>,
    /// The nodes that pods are bound to but the cache does not have, since when.
    missing: HashMap<String, Instant>,
}

impl PodGc {
    async fn collect(&mut self) {
        let terminated = self.pods.state().into_iter().filter(|p| is_terminated(p));
        self.collect_terminated(terminated.collect()).await;
        self.collect_orphaned().await;
    }

    /// Deletes the oldest terminated pods beyond the threshold.
    async fn collect_terminated(&self, terminated: Vec<Arc<Pod>>) {
        let threshold = self.config.terminated_pod_threshold;
        let excess = oldest_beyond(terminated, threshold);
        if excess.is_empty() {
            return;
        }
        info!(
            count = excess.len(),
            threshold, "deleting terminated pods beyond the threshold"
        );
        for pod in &excess {
            self.force_delete(pod).await;
        }
    }

    /// Force-deletes the pods of nodes gone for the quarantine and confirmed gone.
    async fn collect_orphaned(&mut self) {
        let now = Instant::now();
        let gone: HashSet<String> = self
            .on_nodes
            .nodes()
            .into_iter()
            .filter(|node| self.nodes.get(&ObjectRef::new(node)).is_none())
            .collect();
        self.missing.retain(|node, _| gone.contains(node));
        let nodes: Api<Node> = Api::all(self.client.clone());
        for node in gone {
            let since = *self.missing.entry(node.clone()).or_insert(now);
            if now.duration_since(since) < QUARANTINE {
                continue;
            }
            match nodes.get_opt(&node).await {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(err) => {
                    warn!(%node, "looking up a node its pods are bound to: {err}");
                    continue;
                }
            }
            for pod in self.on_nodes.on_node(&node) {
                info!(pod = %key(&pod), %node, "found an orphaned pod assigned to a node that no longer exists; deleting it");
                self.mark_disrupted(&pod).await;
                self.force_delete(&pod).await;
            }
            self.missing.remove(&node);
        }
    }

    /// Gives the pod the `DisruptionTarget` condition, and the phase `Failed` unless it
    /// finished, as kube-controller-manager does before it deletes an orphan.
    async fn mark_disrupted(&self, pod: &Pod) {
        let mut status = json!({"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": Time(Utc::now()),
        }]});
        if !is_terminated(pod) {
            status["phase"] = json!("Failed");
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({ "status": status });
        if let Err(err) = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            warn!(pod = %key(pod), "marking a pod disrupted: {err}");
        }
    }

    /// Deletes the pod at once (grace period 0), whatever its node does.
    async fn force_delete(&self, pod: &Pod) {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => warn!(pod = %key(pod), "deleting a pod: {err}"),
        }
    }
}

/// The oldest of the `terminated` pods (by creation, then name) beyond the first
/// `threshold`; none when the threshold is 0 (off).
fn oldest_beyond(mut terminated: Vec<Arc<Pod>>, threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 || terminated.len() <= threshold {
        return Vec::new();
    }
    let excess = terminated.len() - threshold;
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    terminated.sort_by(|a, b| {
        created(a)
            .cmp(&created(b))
            .then_with(|| key(a).cmp(&key(b)))
    });
    terminated.truncate(excess);
    terminated
}

/// Whether the pod has finished (`Succeeded` or `Failed`).
fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// `namespace/name`, for logs.
fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, created: i64) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.creation_timestamp = chrono::DateTime::from_timestamp(created, 0).map(Time);
        Arc::new(pod)
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn the_oldest_terminated_pods_beyond_the_threshold_go() {
        let terminated = vec![pod("c", 30), pod("a", 10), pod("d", 40), pod("b", 10)];
        assert_eq!(names(&oldest_beyond(terminated.clone(), 2)), ["a", "b"]);
        assert_eq!(names(&oldest_beyond(terminated.clone(), 3)), ["a"]);
        assert!(oldest_beyond(terminated.clone(), 4).is_empty());
        assert!(oldest_beyond(terminated, 0).is_empty(), "0 keeps them all");
    }
}
