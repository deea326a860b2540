//! The node IPAM controller: every Node gets one subnet of the cluster CIDR (default
//! 10.244.0.0/16, a /24 each) as `spec.podCIDR`/`spec.podCIDRs`, the range its agent gives
//! pod IPs from, reading the shared Node informer. As kube-controller-manager's range
//! allocator does, it rebuilds the set of subnets taken from the Nodes it lists at start (a
//! Node created with a pod CIDR, e.g. by `skiff-node --pod-cidr`, keeps it and occupies it),
//! hands out the lowest free subnet, and frees a Node's subnet when the Node is deleted. When none is left the Node stays without
//! one and a `CIDRNotAvailable` Event says so.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;

use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tracing::{debug, info, warn};

use skiff_api::events::{EventType, Recorder, object_ref};

use super::informers::Informers;

/// Pod CIDRs written at once (kube-controller-manager's range allocator runs 30 workers,
/// `cidrUpdateWorkers`): one at a time, 50,000 nodes that register together wait minutes
/// for theirs behind the pods being created.
const CIDR_UPDATE_WORKERS: usize = 30;

/// The controller's settings (kube-controller-manager's `--cluster-cidr` and
/// `--node-cidr-mask-size`).
#[derive(Clone, Copy, Debug)]
pub struct NodeIpamConfig {
    /// The range every node's pod CIDR comes from.
    pub cluster_cidr: Ipv4Net,
    /// The prefix length of one node's pod CIDR.
    pub node_mask: u8,
}

impl Default for NodeIpamConfig {
    fn default() -> Self {
        Self {
            cluster_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16).expect("valid prefix"),
            node_mask: 24,
        }
    }
}

/// The subnets of the cluster CIDR, by index, and which node holds each.
#[derive(Debug)]
pub struct CidrSet {
    cluster_cidr: Ipv4Net,
    node_mask: u8,
    free: BTreeSet<u32>,
    by_node: HashMap<String, u32>,
}

impl CidrSet {
    /// Every subnet of `config` free. Fails when the mask is shorter than the cluster CIDR's
    /// or longer than 30 bits.
    pub fn new(config: NodeIpamConfig) -> Result<Self, String> {
        let prefix = config.cluster_cidr.prefix_len();
        if config.node_mask < prefix || config.node_mask > 30 {
            return Err(format!(
                "--node-cidr-mask-size {} must be between the cluster CIDR's prefix ({prefix}) and 30",
                config.node_mask
            ));
        }
        let mut set = Self {
            cluster_cidr: config.cluster_cidr.trunc(),
            node_mask: config.node_mask,
            free: BTreeSet::new(),
            by_node: HashMap::new(),
        };
        set.reset();
        Ok(set)
    }

    /// Every subnet free again (before the taken ones are re-read from a relist).
    pub fn reset(&mut self) {
        let count = 1u32 << (self.node_mask - self.cluster_cidr.prefix_len()).min(31);
        self.free = (0..count).collect();
        self.by_node.clear();
    }

    fn subnet(&self, index: u32) -> Ipv4Net {
        let size = 1u32 << (32 - u32::from(self.node_mask));
        let network = u32::from(self.cluster_cidr.network()) + index * size;
        Ipv4Net::new(Ipv4Addr::from(network), self.node_mask).expect("mask checked in new")
    }

    /// The index of `cidr` if it is exactly one of the set's subnets.
    fn index_of(&self, cidr: Ipv4Net) -> Option<u32> {
        if cidr.prefix_len() != self.node_mask || !self.cluster_cidr.contains(&cidr) {
            return None;
        }
        let size = 1u32 << (32 - u32::from(self.node_mask));
        let offset = u32::from(cidr.network()) - u32::from(self.cluster_cidr.network());
        Some(offset / size)
    }

    /// Records that `node` holds `cidr` (a subnet outside the set is the node's own business).
    pub fn occupy(&mut self, node: &str, cidr: Ipv4Net) {
        if let Some(index) = self.index_of(cidr) {
            self.free.remove(&index);
            self.by_node.insert(node.to_owned(), index);
        }
    }

    /// The lowest free subnet, now held by `node`; `None` when every subnet is taken.
    pub fn allocate(&mut self, node: &str) -> Option<Ipv4Net> {
        if let Some(index) = self.by_node.get(node) {
            return Some(self.subnet(*index));
        }
        let index = self.free.pop_first()?;
        self.by_node.insert(node.to_owned(), index);
        Some(self.subnet(index))
    }

    /// The subnet `node` holds.
    pub fn held(&self, node: &str) -> Option<Ipv4Net> {
        self.by_node.get(node).map(|index| self.subnet(*index))
    }

    /// Frees the subnet `node` held.
    pub fn release(&mut self, node: &str) {
        if let Some(index) = self.by_node.remove(node) {
            self.free.insert(index);
        }
    }
}

/// The controller on the shared Node informer; the future runs until `shutdown` resolves.
/// Fails at once when the configuration gives no subnets.
pub fn run(
    client: kube::Client,
    config: NodeIpamConfig,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send + 'static, String> {
    let cidrs = CidrSet::new(config)?;
    let cache = informers.nodes.reader();
    let changes = informers.nodes.subscribe();
    Ok(async move {
        info!(cluster_cidr = %config.cluster_cidr, node_mask = config.node_mask, "node IPAM controller started");
        tokio::select! {
            () = reconcile(client, cidrs, cache, changes) => {}
            () = shutdown => {}
        }
    })
}

async fn reconcile(
    client: kube::Client,
    mut cidrs: CidrSet,
    cache: Store<Node>,
    mut changes: impl Stream<Item = Arc<Node>> + Unpin,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let recorder = super::recorder(&client, "cidrAllocator");
    if !super::informers::synced(&cache).await {
        return;
    }
    // Every subnet already taken is known before anything is handed out.
    for node in cache.state() {
        if let (Some(name), Some(cidr)) = (&node.metadata.name, pod_cidr(&node)) {
            cidrs.occupy(name, cidr);
        }
    }
    // Nodes already told that no subnet is left.
    let mut reported = BTreeSet::new();
    // Nodes whose pod CIDR is being written, and those writes.
    let mut assigning: HashSet<String> = HashSet::new();
    let mut assignments = FuturesUnordered::new();
    loop {
        let node = tokio::select! {
            Some(Assigned { name, cidr, result }) = assignments.next(), if !assignments.is_empty() => {
                assigning.remove(&name);
                match result {
                    Ok(_) => debug!(node = %name, pod_cidr = %cidr, "assigned a pod CIDR"),
                    Err(err) => {
                        // Gone meanwhile, or the API server failed: the next change of the
                        // node (or the next relist) tries again.
                        if cidrs.held(&name) == Some(cidr) {
                            cidrs.release(&name);
                        }
                        warn!(node = %name, "assigning pod CIDR {cidr}: {err}");
                    }
                }
                continue;
            }
            node = changes.next(), if assignments.len() < CIDR_UPDATE_WORKERS => match node {
                Some(node) => node,
                None => break,
            },
        };
        let Some(name) = node.metadata.name.clone() else {
            continue;
        };
        // A node no longer in the cache was deleted (or vanished during a relist): its
        // subnet is free again.
        if cache.get(&ObjectRef::new(&name)).is_none() {
            cidrs.release(&name);
            reported.remove(&name);
            continue;
        }
        if node.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(cidr) = pod_cidr(&node) {
            cidrs.occupy(&name, cidr);
            continue;
        }
        if assigning.contains(&name) {
            continue;
        }
        match cidrs.allocate(&name) {
            Some(cidr) => {
                assigning.insert(name.clone());
                assignments.push(assign(nodes.clone(), name, cidr));
            }
            None => {
                if reported.insert(name.clone()) {
                    warn!(node = %name, cluster_cidr = %cidrs.cluster_cidr, "no pod CIDR left for the node");
                    record_cidr_not_available(&recorder, &node);
                }
            }
        }
    }
}

/// A pod CIDR written, or not.
struct Assigned {
    name: String,
    cidr: Ipv4Net,
    result: kube::Result<Node>,
}

/// Writes `cidr` as the pod CIDR of the node `name`.
async fn assign(nodes: Api<Node>, name: String, cidr: Ipv4Net) -> Assigned {
    let patch = json!({"spec": {
        "podCIDR": cidr.to_string(),
        "podCIDRs": [cidr.to_string()],
    }});
    let result = nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    Assigned { name, cidr, result }
}

/// The node's pod CIDR, if it has a valid one.
fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    node.spec
        .as_ref()?
        .pod_cidr
        .as_deref()
        .filter(|c| !c.is_empty())?
        .parse()
        .ok()
}

/// A Warning Event on the node, as kube-controller-manager writes it.
fn record_cidr_not_available(recorder: &Recorder, node: &Node) {
    let name = node.metadata.name.clone().unwrap_or_default();
    recorder.record(
        object_ref(node),
        EventType::Warning,
        "CIDRNotAvailable",
        format!(
            "Node {name} status is now: CIDRNotAvailable (no pod CIDR left in the cluster CIDR)"
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> CidrSet {
        CidrSet::new(NodeIpamConfig::default()).expect("valid")
    }

    #[test]
    fn hands_out_the_lowest_free_subnet_once_per_node() {
        let mut cidrs = set();
        assert_eq!(cidrs.allocate("a"), Some("10.244.0.0/24".parse().unwrap()));
        assert_eq!(cidrs.allocate("b"), Some("10.244.1.0/24".parse().unwrap()));
        // Asking again for the same node gives its subnet, not a new one.
        assert_eq!(cidrs.allocate("a"), Some("10.244.0.0/24".parse().unwrap()));
        cidrs.release("a");
        assert_eq!(cidrs.allocate("c"), Some("10.244.0.0/24".parse().unwrap()));
    }

    #[test]
    fn occupied_subnets_are_skipped_and_foreign_ones_ignored() {
        let mut cidrs = set();
        cidrs.occupy("x", "10.244.0.0/24".parse().unwrap());
        cidrs.occupy("y", "192.168.7.0/24".parse().unwrap());
        cidrs.occupy("z", "10.244.1.0/25".parse().unwrap());
        assert_eq!(cidrs.allocate("a"), Some("10.244.1.0/24".parse().unwrap()));
    }

    #[test]
    fn a_full_range_gives_nothing() {
        let mut cidrs = CidrSet::new(NodeIpamConfig {
            cluster_cidr: "10.244.0.0/23".parse().unwrap(),
            node_mask: 24,
        })
        .unwrap();
        assert!(cidrs.allocate("a").is_some());
        assert!(cidrs.allocate("b").is_some());
        assert_eq!(cidrs.allocate("c"), None);
        assert!(
            CidrSet::new(NodeIpamConfig {
                cluster_cidr: "10.244.0.0/16".parse().unwrap(),
                node_mask: 8,
            })
            .is_err()
        );
    }
}
