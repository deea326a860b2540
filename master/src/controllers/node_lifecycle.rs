//! The node lifecycle controller: notices nodes whose agent stopped reporting, and moves their
//! pods away.
//!
//! As kube-controller-manager's nodelifecycle controller does, every `monitor_period` it
//! - takes a node's heartbeat to be its Lease's renewTime or its Ready condition's
//!   lastHeartbeatTime; when neither changed for `grace_period` (measured on this
//!   controller's clock, so skewed node clocks do not matter), the node's conditions turn
//!   `Unknown` ("Kubelet stopped posting node status.") and its pods' Ready condition `False`;
//! - keeps the taints in step with the Ready condition: `node.kubernetes.io/not-ready` for
//!   False, `node.kubernetes.io/unreachable` for Unknown, each as `NoSchedule` (the scheduler
//!   avoids the node) and `NoExecute` (with the time it was added);
//! - evicts (deletes) the pods of a node with `NoExecute` taints: at once when a pod does not
//!   tolerate one, after its `tolerationSeconds` when it does (the API server gives every pod
//!   300 s for these two taints), never when it tolerates them without a limit. Their
//!   ReplicaSets then make replacements on other nodes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use serde_json::json;
use tracing::{info, warn};

use skiff_api::events::{EventType, Recorder, object_ref};
use skiff_api::pod::CachedPod;

use super::informers::{Index, Informers};
use skiff_api::taints::tolerates;
use skiff_api::well_known::{
    TAINT_NODE_NOT_READY as NOT_READY_TAINT, TAINT_NODE_UNREACHABLE as UNREACHABLE_TAINT,
};
/// The conditions an agent reports, turned Unknown when it goes silent.
const NODE_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The controller's settings (kube-controller-manager's `--node-monitor-period` and
/// `--node-monitor-grace-period`).
#[derive(Clone, Copy, Debug)]
pub struct NodeLifecycleConfig {
    /// How often nodes are looked at.
    pub monitor_period: Duration,
    /// How long a node may stay silent before it is taken as unreachable.
    pub grace_period: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(40),
        }
    }
}

/// The controller on the shared informers (it reads the Node and Lease caches on a timer, and
/// a node's pods from the pod index);
/// it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    config: NodeLifecycleConfig,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let pod_cache = informers.pods.reader();
    let mut monitor = Monitor {
        recorder: super::recorder(&client, COMPONENT),
        client,
        config,
        nodes: informers.nodes.reader(),
        leases: informers.leases.reader(),
        pods: informers.pods.index(),
        heard: HashMap::new(),
    };
    async move {
        info!(
            grace_period = ?config.grace_period,
            "node lifecycle controller started"
        );
        let monitoring = async {
            super::informers::synced(&monitor.nodes).await;
            super::informers::synced(&monitor.leases).await;
            super::informers::synced(&pod_cache).await;
            let mut tick = tokio::time::interval(config.monitor_period);
            loop {
                tick.tick().await;
                monitor.monitor_nodes().await;
            }
        };
        tokio::select! {
            () = monitoring => {}
            () = shutdown => {}
        }
    }
}

/// The component name on Events.
const COMPONENT: &str = "node-controller";

struct Monitor {
    client: kube::Client,
    recorder: Recorder,
    config: NodeLifecycleConfig,
    nodes: Store<Node>,
    leases: Store<Lease>,
    /// The pods, by node (a dead node's pods are read every period until they are gone: from
    /// the cache, not by a list through the API server per node).
    pods: Index<CachedPod>,
    /// Per node: the last heartbeat seen (lease renewal, Ready heartbeat) and when it changed.
    heard: HashMap<String, (Heartbeat, Instant)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Heartbeat {
    lease: Option<chrono::DateTime<Utc>>,
    ready: Option<chrono::DateTime<Utc>>,
}

impl Monitor {
    async fn monitor_nodes(&mut self) {
        let nodes = self.nodes.state();
        // Forget nodes that are gone: one set of names, not a scan of every node per entry
        // (that was quadratic: 100,000 nodes took the controller a core).
        let names: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        self.heard.retain(|name, _| names.contains(name.as_str()));
        for node in nodes {
            let name = node.name_any();
            let heartbeat = Heartbeat {
                lease: self
                    .leases
                    .get(&reflector::ObjectRef::new(&name).within("kube-node-lease"))
                    .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)),
                ready: condition(&node, "Ready")
                    .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0)),
            };
            let now = Instant::now();
            let since = match self.heard.get(&name) {
                Some((seen, since)) if *seen == heartbeat => *since,
                _ => {
                    self.heard.insert(name.clone(), (heartbeat, now));
                    now
                }
            };
            let silent = now.duration_since(since) > self.config.grace_period;
            // Shared with the cache until a patch gives a new version: no copy of every Node
            // every period.
            let mut node = node;
            if silent && let Err(err) = self.mark_unknown(&mut node).await {
                warn!(node = %name, "marking the node unreachable: {err}");
                continue;
            }
            if let Err(err) = self.sync_taints(&mut node).await {
                warn!(node = %name, "updating the node's taints: {err}");
            }
            if let Err(err) = self.evict(&node).await {
                warn!(node = %name, "evicting pods: {err}");
            }
        }
    }

    /// Turns the node's conditions Unknown (once) and its pods not ready.
    async fn mark_unknown(&self, node: &mut Arc<Node>) -> Result<(), kube::Error> {
        let ready = condition(node, "Ready");
        if ready.is_some_and(|c| c.status == "Unknown") {
            return Ok(());
        }
        let now = Time(Utc::now());
        let mut conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let (reason, message) = if ready.is_some() {
            ("NodeStatusUnknown", "Kubelet stopped posting node status.")
        } else {
            (
                "NodeStatusNeverUpdated",
                "Kubelet never posted node status.",
            )
        };
        for type_ in NODE_CONDITIONS {
            match conditions.iter_mut().find(|c| c.type_ == *type_) {
                Some(c) => {
                    c.status = String::from("Unknown");
                    c.reason = Some(reason.to_owned());
                    c.message = Some(message.to_owned());
                    c.last_transition_time = Some(now.clone());
                }
                None => conditions.push(NodeCondition {
                    type_: (*type_).to_owned(),
                    status: String::from("Unknown"),
                    reason: Some(reason.to_owned()),
                    message: Some(message.to_owned()),
                    last_heartbeat_time: Some(now.clone()),
                    last_transition_time: Some(now.clone()),
                }),
            }
        }
        let name = node.name_any();
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"status": {"conditions": conditions}});
        *node = Arc::new(
            api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await?,
        );
        info!(node = %name, "the node stopped reporting: its status is Unknown");
        self.recorder.record(
            object_ref(node.as_ref()),
            EventType::Normal,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
        self.mark_pods_not_ready(&name).await
    }

    /// Sets the Ready condition of the node's pods to False (MarkPodsNotReady).
    async fn mark_pods_not_ready(&self, node: &str) -> Result<(), kube::Error> {
        for pod in self.pods.on_node(node) {
            let Some(ready) = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status != "False"))
            else {
                continue;
            };
            let mut ready = ready.clone();
            ready.status = String::from("False");
            ready.last_transition_time = Some(Time(Utc::now()));
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            // Conditions merge by type: the patch carries only the one it changes.
            let patch = json!({"status": {"conditions": [ready]}});
            match api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Makes the node's not-ready/unreachable taints match its Ready condition. A conflict
    /// (the agent wrote the node meanwhile) reads the node again and retries, as
    /// kube-controller-manager's `SwapNodeControllerTaint` does under `RetryOnConflict`.
    async fn sync_taints(&self, node: &mut Arc<Node>) -> Result<(), kube::Error> {
        const ATTEMPTS: usize = 5;
        let api: Api<Node> = Api::all(self.client.clone());
        let mut attempt = 1;
        loop {
            let current = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_deref())
                .unwrap_or_default();
            let wanted = match condition(node, "Ready").map(|c| c.status.as_str()) {
                Some("False") => Some(NOT_READY_TAINT),
                Some("Unknown") => Some(UNREACHABLE_TAINT),
                _ => None,
            };
            let taints = taints_for(current, wanted, Utc::now());
            if taints == current {
                return Ok(());
            }
            // The resourceVersion guards against overwriting taints someone else just set.
            let patch = json!({
                "metadata": {"resourceVersion": node.resource_version()},
                "spec": {"taints": taints},
            });
            let name = node.name_any();
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(patched) => {
                    *node = Arc::new(patched);
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.code == 409 && attempt < ATTEMPTS => {
                    attempt += 1;
                    // client-go's DefaultRetry waits 10 ms before reading again.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    *node = Arc::new(api.get(&name).await?);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Deletes the node's pods whose tolerations of its NoExecute taints ran out.
    async fn evict(&self, node: &Node) -> Result<(), kube::Error> {
        let taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
            .iter()
            .filter(|t| t.effect == "NoExecute")
            .cloned()
            .collect();
        if taints.is_empty() {
            return Ok(());
        }
        let name = node.name_any();
        let now = Utc::now();
        for pod in self.pods.on_node(&name) {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            let Some(at) = eviction_time(&taints, &tolerations) else {
                continue;
            };
            if at > now {
                continue;
            }
            let namespace = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            match api.delete(&pod.name_any(), &DeleteParams::default()).await {
                Ok(_) => {
                    info!(pod = %pod.name_any(), node = %name, "evicted a pod from a node with NoExecute taints");
                    self.recorder.record(
                        object_ref(pod.as_ref()),
                        EventType::Normal,
                        "TaintManagerEviction",
                        format!("Marking for deletion Pod {namespace}/{}", pod.name_any()),
                    );
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// The node's condition of `type_`.
pub(super) fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `current` with the not-ready/unreachable taints replaced by `wanted`'s (NoSchedule and
/// NoExecute); taints of others are kept as they are, and a taint already there keeps its
/// timeAdded.
pub fn taints_for(
    current: &[Taint],
    wanted: Option<&str>,
    now: chrono::DateTime<Utc>,
) -> Vec<Taint> {
    let ours = |t: &Taint| t.key == NOT_READY_TAINT || t.key == UNREACHABLE_TAINT;
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !ours(t) || Some(t.key.as_str()) == wanted)
        .cloned()
        .collect();
    if let Some(key) = wanted {
        for effect in ["NoSchedule", "NoExecute"] {
            if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                taints.push(Taint {
                    key: key.to_owned(),
                    effect: effect.to_owned(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    taints
}

/// When a pod must leave a node with these NoExecute `taints`: now-or-earlier if one is not
/// tolerated, the earliest end of a limited toleration otherwise; `None` if it may stay.
pub fn eviction_time(
    taints: &[Taint],
    tolerations: &[Toleration],
) -> Option<chrono::DateTime<Utc>> {
    let mut earliest: Option<chrono::DateTime<Utc>> = None;
    for taint in taints {
        let Some(toleration) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Some(chrono::DateTime::UNIX_EPOCH);
        };
        if let Some(seconds) = toleration.toleration_seconds {
            let added = taint
                .time_added
                .as_ref()
                .map_or(chrono::DateTime::UNIX_EPOCH, |t| t.0);
            let at = skiff_api::time::plus_seconds(added, seconds.max(0));
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
    }
    earliest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str, added: Option<&str>) -> Taint {
        Taint {
            key: key.to_owned(),
            effect: effect.to_owned(),
            time_added: added.map(|t| {
                Time(
                    chrono::DateTime::parse_from_rfc3339(t)
                        .expect("time")
                        .with_timezone(&Utc),
                )
            }),
            value: None,
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.to_owned()),
            operator: Some(String::from("Exists")),
            effect: Some(String::from("NoExecute")),
            toleration_seconds: seconds,
            value: None,
        }
    }

    #[test]
    fn taints_follow_the_ready_condition_and_keep_others() {
        let now = Utc::now();
        let other = taint("dedicated", "NoSchedule", None);
        let unknown = taints_for(std::slice::from_ref(&other), Some(UNREACHABLE_TAINT), now);
        assert_eq!(unknown.len(), 3);
        assert!(unknown.contains(&other));
        let no_execute = unknown
            .iter()
            .find(|t| t.key == UNREACHABLE_TAINT && t.effect == "NoExecute")
            .expect("NoExecute");
        assert_eq!(no_execute.time_added.as_ref().map(|t| t.0), Some(now));
        // Again later: the same taints, the time they were added kept.
        let later = now + chrono::Duration::seconds(30);
        assert_eq!(
            taints_for(&unknown, Some(UNREACHABLE_TAINT), later),
            unknown
        );
        // From unreachable to not ready, and back to Ready: only ours change.
        let not_ready = taints_for(&unknown, Some(NOT_READY_TAINT), later);
        assert!(not_ready.iter().all(|t| t.key != UNREACHABLE_TAINT));
        assert_eq!(
            not_ready
                .iter()
                .filter(|t| t.key == NOT_READY_TAINT)
                .count(),
            2
        );
        assert_eq!(taints_for(&not_ready, None, later), vec![other]);
    }

    #[test]
    fn pods_leave_when_their_toleration_runs_out() {
        let taints = [taint(
            UNREACHABLE_TAINT,
            "NoExecute",
            Some("2026-12-01T10:00:00Z"),
        )];
        let at = |seconds| {
            chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .expect("time")
                .with_timezone(&Utc)
                + chrono::Duration::seconds(seconds)
        };
        // Not tolerated: at once.
        assert_eq!(
            eviction_time(&taints, &[]),
            Some(chrono::DateTime::UNIX_EPOCH)
        );
        // The API server's default: 300 s after the taint came.
        assert_eq!(
            eviction_time(&taints, &[toleration(UNREACHABLE_TAINT, Some(300))]),
            Some(at(300))
        );
        // Tolerated for ever: stays.
        assert_eq!(
            eviction_time(&taints, &[toleration(UNREACHABLE_TAINT, None)]),
            None
        );
        // An Exists toleration without a key tolerates every taint.
        let everything = Toleration {
            operator: Some(String::from("Exists")),
            ..Default::default()
        };
        assert_eq!(eviction_time(&taints, &[everything]), None);
        // Another key does not help.
        assert_eq!(
            eviction_time(&taints, &[toleration(NOT_READY_TAINT, None)]),
            Some(chrono::DateTime::UNIX_EPOCH)
        );
    }

    #[test]
    fn a_huge_toleration_lasts_to_the_end_of_time_without_overflowing() {
        let taints = [taint(
            UNREACHABLE_TAINT,
            "NoExecute",
            Some("9999-12-31T00:00:00Z"),
        )];
        for seconds in [i64::MAX, i64::MAX / 1000, 1 << 40] {
            assert_eq!(
                eviction_time(&taints, &[toleration(UNREACHABLE_TAINT, Some(seconds))]),
                Some(skiff_api::time::latest()),
                "{seconds}"
            );
        }
        // Negative: at once, as zero.
        assert_eq!(
            eviction_time(&taints, &[toleration(UNREACHABLE_TAINT, Some(i64::MIN))]),
            taints[0].time_added.as_ref().map(|t| t.0)
        );
    }
}
