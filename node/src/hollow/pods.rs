//! The hollow nodes' pods: one watch of every bound pod, demultiplexed by node name. A pod
//! bound to one of ours is Running after the start delay (its IP from the node's podCIDR,
//! every condition True, each container running); once it is gracefully deleted it is
//! deleted for good (grace period 0, with its uid as precondition), as the kubelet does after
//! its containers stopped.
//!
//! Pods are decoded into the few fields the simulator reads, not whole `Pod`s: the watch
//! carries every pod of the cluster.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use futures::TryStreamExt as _;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ApiResource, DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::Object;
use kube::runtime::watcher;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tracing::{debug, info};

use super::nodes::HollowNode;
use super::stats::Stats;
use crate::uring;

/// The part of a pod's spec the simulator reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodSpec {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    host_network: Option<bool>,
    #[serde(default, deserialize_with = "null_is_empty")]
    init_containers: Vec<Container>,
    #[serde(default, deserialize_with = "null_is_empty")]
    containers: Vec<Container>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct Container {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: Option<String>,
}

/// `null` reads as an empty list (some servers write `"initContainers": null`).
fn null_is_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Container>, D::Error> {
    Ok(Option::<Vec<Container>>::deserialize(deserializer)?.unwrap_or_default())
}

/// The part of a pod's status the simulator reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodStatus {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
}

type HollowPod = Object<PodSpec, PodStatus>;

/// `(namespace, name)`.
type PodKey = (String, String);

/// What the simulator holds for a pod of its nodes.
#[derive(Debug)]
struct Tracked {
    uid: String,
    node: u32,
    /// Offset of its IP in the node's pod CIDR, once it has one.
    ip: Option<u32>,
    running: bool,
    /// A task is making it Running.
    starting: bool,
    deleting: bool,
}

/// First and longest wait between attempts of a failed pod write.
const RETRY: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));

/// The pods of the hollow nodes.
pub(super) struct Pods {
    client: kube::Client,
    prefix: String,
    nodes: Rc<[HollowNode]>,
    start_delay: Duration,
    stats: Rc<Stats>,
    tracked: RefCell<HashMap<PodKey, Tracked>>,
    writes: Semaphore,
}

impl Pods {
    pub(super) fn new(
        client: kube::Client,
        prefix: String,
        nodes: Rc<[HollowNode]>,
        start_delay: Duration,
        stats: Rc<Stats>,
    ) -> Rc<Pods> {
        Rc::new(Pods {
            client,
            prefix,
            nodes,
            start_delay,
            stats,
            tracked: RefCell::new(HashMap::new()),
            writes: Semaphore::new(super::API_CONCURRENCY),
        })
    }

    /// Watches every bound pod until the watch fails for good.
    pub(super) async fn run(self: Rc<Self>) -> anyhow::Result<()> {
        let api: Api<HollowPod> =
            Api::all_with(self.client.clone(), &ApiResource::erase::<Pod>(&()));
        let config = watcher::Config::default().fields("spec.nodeName!=");
        let mut events = std::pin::pin!(watcher(api, config));
        let mut said = false;
        loop {
            match events.try_next().await {
                Ok(Some(event)) => match event {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                        self.clone().seen(pod);
                    }
                    watcher::Event::Delete(pod) => self.gone(&pod),
                    watcher::Event::InitDone if !said => {
                        info!("watching the hollow nodes' pods");
                        said = true;
                    }
                    watcher::Event::Init | watcher::Event::InitDone => {}
                },
                Ok(None) => return Ok(()),
                Err(err) => {
                    // The watcher relists after errors; wait a moment before it does.
                    debug!("watching pods: {err}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The index of node `name` if it is one of ours.
    fn node_index(&self, name: &str) -> Option<u32> {
        let index: u32 = name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        let node = self.nodes.get(usize::try_from(index).ok()?)?;
        (node.name == name).then_some(index)
    }

    fn seen(self: Rc<Self>, pod: HollowPod) {
        let Some(node) = pod
            .spec
            .node_name
            .as_deref()
            .and_then(|n| self.node_index(n))
        else {
            return;
        };
        let (Some(namespace), Some(name), Some(uid)) = (
            pod.metadata.namespace.clone(),
            pod.metadata.name.clone(),
            pod.metadata.uid.clone(),
        ) else {
            return;
        };
        let key = (namespace, name);
        let mut tracked = self.tracked.borrow_mut();
        let entry = tracked.entry(key.clone());
        let state = match entry {
            std::collections::hash_map::Entry::Occupied(entry) if entry.get().uid == uid => {
                entry.into_mut()
            }
            entry => {
                // New (or a new pod of the same name): adopt what it already reports.
                let ip = self.adopted_ip(node, pod.status.as_ref());
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if running {
                    self.stats.pod_running();
                }
                let state = Tracked {
                    uid: uid.clone(),
                    node,
                    ip,
                    running,
                    starting: false,
                    deleting: false,
                };
                match entry {
                    std::collections::hash_map::Entry::Occupied(mut entry) => {
                        let old = std::mem::replace(entry.get_mut(), state);
                        self.release(&old);
                        entry.into_mut()
                    }
                    std::collections::hash_map::Entry::Vacant(entry) => entry.insert(state),
                }
            }
        };
        if pod.metadata.deletion_timestamp.is_some() {
            if !state.deleting {
                state.deleting = true;
                drop(tracked);
                uring::spawn(self.delete(key, uid));
            }
            return;
        }
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if state.running || state.starting || terminal {
            return;
        }
        // Claimed now, so the echo of our own write does not start it twice.
        state.starting = true;
        drop(tracked);
        uring::spawn(self.start(key, uid, pod));
    }

    /// The offset of the IP the pod already reports, held again (the simulator restarted).
    fn adopted_ip(&self, node: u32, status: Option<&PodStatus>) -> Option<u32> {
        let ip: Ipv4Addr = status?.pod_ip.as_deref()?.parse().ok()?;
        let hollow = &self.nodes[node as usize];
        let cidr = hollow.pod_cidr.get()?;
        if !cidr.contains(&ip) {
            return None;
        }
        let offset = u32::from(ip) - u32::from(cidr.network());
        hollow.pod_ips.borrow_mut().insert(offset);
        Some(offset)
    }

    fn gone(&self, pod: &HollowPod) {
        let (Some(namespace), Some(name)) =
            (pod.metadata.namespace.clone(), pod.metadata.name.clone())
        else {
            return;
        };
        let removed = self.tracked.borrow_mut().remove(&(namespace, name));
        if let Some(old) = removed
            && Some(&old.uid) == pod.metadata.uid.as_ref()
        {
            self.release(&old);
            self.stats.pod_gone(old.running);
        }
    }

    fn release(&self, pod: &Tracked) {
        if let Some(offset) = pod.ip {
            self.nodes[pod.node as usize]
                .pod_ips
                .borrow_mut()
                .remove(&offset);
        }
    }

    /// After the start delay: an IP, then the status that says Running; retried until it is
    /// written or the pod is gone or being deleted.
    async fn start(self: Rc<Self>, key: PodKey, uid: String, pod: HollowPod) {
        tokio::time::sleep(self.start_delay).await;
        let mut wait = RETRY.0;
        loop {
            let result = match self.writes.acquire().await {
                Ok(_permit) => self.write_running(&key, &uid, &pod).await,
                Err(_) => return,
            };
            if self.started(&key, &uid, result) {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY.1);
        }
    }

    /// Records the outcome of a start; true when there is nothing more to do (it is Running,
    /// or gone, or being deleted).
    fn started(&self, key: &PodKey, uid: &str, result: anyhow::Result<()>) -> bool {
        let mut tracked = self.tracked.borrow_mut();
        let Some(state) = tracked
            .get_mut(key)
            .filter(|state| state.uid == uid && !state.deleting)
        else {
            return true;
        };
        match result {
            Ok(()) => {
                state.starting = false;
                if !state.running {
                    state.running = true;
                    self.stats.pod_running();
                }
                true
            }
            Err(err) => {
                debug!(pod = %key.1, namespace = %key.0, "starting the hollow pod: {err:#}");
                self.stats.pod_failed();
                false
            }
        }
    }

    async fn write_running(&self, key: &PodKey, uid: &str, pod: &HollowPod) -> anyhow::Result<()> {
        let node_index = pod
            .spec
            .node_name
            .as_deref()
            .and_then(|n| self.node_index(n))
            .context("not a hollow node's pod")?;
        let node = &self.nodes[node_index as usize];
        let host_ip = node.address();
        let pod_ip = if pod.spec.host_network == Some(true) {
            host_ip
        } else {
            let cidr = self.pod_cidr(node).await?;
            let offset = self.allocate(node, cidr, key, uid)?;
            Ipv4Addr::from(u32::from(cidr.network()).saturating_add(offset))
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.0);
        let patch = running_status(pod, host_ip, pod_ip);
        api.patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .context("writing the pod status")?;
        Ok(())
    }

    /// The node's pod CIDR: read once from its Node (the master assigns it after registration).
    async fn pod_cidr(&self, node: &HollowNode) -> anyhow::Result<Ipv4Net> {
        if let Some(cidr) = node.pod_cidr.get() {
            return Ok(cidr);
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let cidr: Ipv4Net = nodes
            .get(&node.name)
            .await
            .context("reading the node")?
            .spec
            .and_then(|spec| spec.pod_cidr)
            .context("the node has no podCIDR yet")?
            .parse()
            .context("the node's podCIDR")?;
        node.pod_cidr.set(Some(cidr));
        Ok(cidr)
    }

    /// The lowest free address of the node's pod CIDR (past the network and gateway
    /// addresses), recorded as the pod's.
    fn allocate(
        &self,
        node: &HollowNode,
        cidr: Ipv4Net,
        key: &PodKey,
        uid: &str,
    ) -> anyhow::Result<u32> {
        let size = 1u64 << (32 - u32::from(cidr.prefix_len()));
        let mut tracked = self.tracked.borrow_mut();
        let state = tracked
            .get_mut(key)
            .filter(|state| state.uid == uid && !state.deleting)
            .context("the pod is gone or being deleted")?;
        if let Some(offset) = state.ip {
            return Ok(offset);
        }
        let mut used = node.pod_ips.borrow_mut();
        let offset = (2..size.saturating_sub(1))
            .filter_map(|o| u32::try_from(o).ok())
            .find(|o| !used.contains(o))
            .with_context(|| format!("no free address in the pod CIDR {cidr}"))?;
        used.insert(offset);
        state.ip = Some(offset);
        Ok(offset)
    }

    /// Deletes the pod for good: its (hollow) containers are gone at once. Retried until the
    /// API server answers.
    async fn delete(self: Rc<Self>, key: PodKey, uid: String) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.0);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let mut wait = RETRY.0;
        loop {
            let result = match self.writes.acquire().await {
                Ok(_permit) => api.delete(&key.1, &params).await,
                Err(_) => return,
            };
            match result {
                Ok(_) => return,
                // Gone already, or another pod of the name now: nothing of ours to delete.
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                    return;
                }
                Err(err) => {
                    debug!(pod = %key.1, namespace = %key.0, "deleting the hollow pod: {err}");
                    self.stats.pod_failed();
                }
            }
            let still_ours = self
                .tracked
                .borrow()
                .get(&key)
                .is_some_and(|state| state.uid == uid);
            if !still_ours {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY.1);
        }
    }
}

/// The merge patch of a pod's status that says it runs: phase, IPs, every condition True,
/// init containers completed, containers running.
fn running_status(pod: &HollowPod, host_ip: Ipv4Addr, pod_ip: Ipv4Addr) -> serde_json::Value {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let container_id = |name: &str| {
        format!(
            "hollow://{}-{name}",
            pod.metadata.uid.as_deref().unwrap_or_default()
        )
    };
    let status = |container: &Container, state: serde_json::Value, ready: bool| {
        let image = container.image.clone().unwrap_or_default();
        serde_json::json!({
            "name": container.name,
            "image": image,
            "imageID": format!("hollow://{image}"),
            "containerID": container_id(&container.name),
            "ready": ready,
            "started": ready,
            "restartCount": 0,
            "state": state,
        })
    };
    let init: Vec<_> = pod
        .spec
        .init_containers
        .iter()
        .map(|c| {
            status(
                c,
                serde_json::json!({"terminated": {
                    "exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now,
                    "containerID": container_id(&c.name),
                }}),
                false,
            )
        })
        .collect();
    let containers: Vec<_> = pod
        .spec
        .containers
        .iter()
        .map(|c| status(c, serde_json::json!({"running": {"startedAt": now}}), true))
        .collect();
    let conditions: Vec<_> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .iter()
    .map(|type_| serde_json::json!({"type": type_, "status": "True", "lastTransitionTime": now}))
    .collect();
    serde_json::json!({"status": {
        "phase": "Running",
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "podIP": pod_ip.to_string(),
        "podIPs": [{"ip": pod_ip.to_string()}],
        "startTime": now,
        "conditions": conditions,
        "initContainerStatuses": init,
        "containerStatuses": containers,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_status_has_ips_conditions_and_containers() {
        let pod: HollowPod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "hollow-0",
                     "initContainers": [{"name": "init", "image": "busybox"}],
                     "containers": [{"name": "app", "image": "nginx"}]},
        }))
        .expect("pod");
        let patch = running_status(
            &pod,
            Ipv4Addr::new(127, 1, 0, 0),
            Ipv4Addr::new(10, 0, 0, 2),
        );
        let status = &patch["status"];
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.0.0.2");
        assert_eq!(status["hostIP"], "127.1.0.0");
        assert_eq!(status["conditions"].as_array().map(Vec::len), Some(5));
        assert_eq!(status["containerStatuses"][0]["ready"], true);
        assert_eq!(
            status["containerStatuses"][0]["containerID"],
            "hollow://u1-app"
        );
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        // And a real Pod reads it.
        let typed: k8s_openapi::api::core::v1::PodStatus =
            serde_json::from_value(status.clone()).expect("a PodStatus");
        assert_eq!(typed.pod_ip.as_deref(), Some("10.0.0.2"));
    }
}
