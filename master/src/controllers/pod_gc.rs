//! The pod garbage collector (kube-controller-manager's `podgc`): pods that no kubelet will
//! ever finish. Every [`CHECK_PERIOD`] it
//! - deletes the oldest terminated pods (`Succeeded` or `Failed`) beyond
//!   `--terminated-pod-gc-threshold` (12,500; 0 keeps them all);
//! - force-deletes the terminating pods of a node that is not Ready and carries the
//!   [`TAINT_NODE_OUT_OF_SERVICE`] taint (the user's word that the node is shut down for
//!   good, so a StatefulSet's pod can start elsewhere);
//! - force-deletes the pods bound to a node that no longer exists, once the node has been
//!   gone from the cache for [`QUARANTINE`] and the API server confirms it (404), with the
//!   `DisruptionTarget` condition (`DeletionByPodGC`);
//! - force-deletes the terminating pods that were never scheduled.
//!
//! A force-deleted pod that had not finished gets the phase `Failed` first: no kubelet will
//! write its last phase, and a Job counts it by that.

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
use skiff_api::pod::CachedPod;
use skiff_api::well_known::TAINT_NODE_OUT_OF_SERVICE;
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
    pods: Store<CachedPod>,
    on_nodes: Index<CachedPod>,
    nodes: Store<Node>,
    /// The nodes that pods are bound to but the cache does not have, since when.
    missing: HashMap<String, Instant>,
}

impl PodGc {
    async fn collect(&mut self) {
        let pods = self.pods.state();
        let terminated = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
        self.collect_terminated(terminated).await;
        self.collect_out_of_service().await;
        self.collect_orphaned().await;
        let unscheduled = pods.iter().filter(|p| is_unscheduled_terminating(p));
        for pod in unscheduled {
            info!(pod = %key(pod), "deleting a terminating pod that was never scheduled");
            self.fail_and_delete(pod, None).await;
        }
    }

    /// Deletes the oldest terminated pods beyond the threshold.
    async fn collect_terminated(&self, terminated: Vec<Arc<CachedPod>>) {
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

    /// Force-deletes the terminating pods of the nodes that are out of service.
    async fn collect_out_of_service(&self) {
        let out_of_service = self
            .nodes
            .state()
            .into_iter()
            .filter(|n| is_out_of_service(n));
        for node in out_of_service {
            let name = node.name_any();
            let mut terminating: Vec<Arc<CachedPod>> = self
                .on_nodes
                .on_node(&name)
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .collect();
            terminating.sort_by_key(|p| created(p));
            for pod in terminating {
                info!(pod = %key(&pod), node = %name, "deleting a terminating pod on an out-of-service node");
                self.fail_and_delete(&pod, None).await;
            }
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
                self.fail_and_delete(&pod, Some("PodGC: node no longer exists"))
                    .await;
            }
            self.missing.remove(&node);
        }
    }

    /// Deletes the pod at once (grace period 0), whatever its node does. A pod that had not
    /// finished gets the phase `Failed` first, with the `DisruptionTarget` condition saying
    /// `disruption` if given, as kube-controller-manager does.
    async fn fail_and_delete(&self, pod: &CachedPod, disruption: Option<&str>) {
        if !is_terminated(pod) {
            self.mark_failed(pod, disruption).await;
        }
        self.force_delete(pod).await;
    }

    async fn mark_failed(&self, pod: &CachedPod, disruption: Option<&str>) {
        let mut status = json!({"phase": "Failed"});
        if let Some(message) = disruption {
            status["conditions"] = json!([{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": message,
                "lastTransitionTime": Time(Utc::now()),
            }]);
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
            warn!(pod = %key(pod), "marking a pod failed: {err}");
        }
    }

    async fn force_delete(&self, pod: &CachedPod) {
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
fn oldest_beyond(mut terminated: Vec<Arc<CachedPod>>, threshold: usize) -> Vec<Arc<CachedPod>> {
    if threshold == 0 || terminated.len() <= threshold {
        return Vec::new();
    }
    let excess = terminated.len() - threshold;
    terminated.sort_by(|a, b| {
        created(a)
            .cmp(&created(b))
            .then_with(|| key(a).cmp(&key(b)))
    });
    terminated.truncate(excess);
    terminated
}

/// Whether the pod has finished (`Succeeded` or `Failed`).
fn is_terminated(pod: &CachedPod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the pod is being deleted but was never bound to a node.
fn is_unscheduled_terminating(pod: &CachedPod) -> bool {
    let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    pod.metadata.deletion_timestamp.is_some() && bound.is_none_or(str::is_empty)
}

/// Whether the node is not Ready and carries the [`TAINT_NODE_OUT_OF_SERVICE`] (any effect).
fn is_out_of_service(node: &Node) -> bool {
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|t| t.key == TAINT_NODE_OUT_OF_SERVICE);
    let ready = super::node_lifecycle::condition(node, "Ready").is_some_and(|c| c.status == "True");
    tainted && !ready
}

fn created(pod: &CachedPod) -> Option<chrono::DateTime<Utc>> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// `namespace/name`, for logs.
fn key(pod: &CachedPod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, created: i64) -> Arc<CachedPod> {
        let mut pod = CachedPod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.creation_timestamp = chrono::DateTime::from_timestamp(created, 0).map(Time);
        Arc::new(pod)
    }

    fn names(pods: &[Arc<CachedPod>]) -> Vec<String> {
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

    #[test]
    fn out_of_service_needs_the_taint_and_a_node_that_is_not_ready() {
        let node = |taint: Option<&str>, ready: Option<&str>| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": "n"},
                "spec": {"taints": taint.map(|key| vec![json!({"key": key, "value": "nodeshutdown", "effect": "NoExecute"})])},
                "status": {"conditions": ready.map(|status| vec![json!({"type": "Ready", "status": status})])},
            }))
            .expect("node")
        };
        assert!(is_out_of_service(&node(
            Some(TAINT_NODE_OUT_OF_SERVICE),
            Some("False")
        )));
        assert!(is_out_of_service(&node(
            Some(TAINT_NODE_OUT_OF_SERVICE),
            Some("Unknown")
        )));
        assert!(is_out_of_service(&node(
            Some(TAINT_NODE_OUT_OF_SERVICE),
            None
        )));
        assert!(!is_out_of_service(&node(
            Some(TAINT_NODE_OUT_OF_SERVICE),
            Some("True")
        )));
        assert!(!is_out_of_service(&node(
            Some("node.kubernetes.io/unreachable"),
            Some("Unknown")
        )));
        assert!(!is_out_of_service(&node(None, Some("False"))));
    }

    #[test]
    fn only_terminating_pods_without_a_node_are_unscheduled_terminating() {
        let pod = |node: Option<&str>, deleting: bool| -> CachedPod {
            serde_json::from_value(json!({
                "metadata": {"name": "p", "deletionTimestamp": deleting.then_some("2026-12-05T10:00:00Z")},
                "spec": {"nodeName": node, "containers": []},
            }))
            .expect("pod")
        };
        assert!(is_unscheduled_terminating(&pod(None, true)));
        assert!(is_unscheduled_terminating(&pod(Some(""), true)));
        assert!(!is_unscheduled_terminating(&pod(Some("n"), true)));
        assert!(!is_unscheduled_terminating(&pod(None, false)));
    }
}
