//! A hollow node's identity and its Node: name, loopback address, capacity, status, and its
//! registration (Node, status, Lease) through the API server.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::stats::Stats;
use crate::kubelet::node_facts::{self, NodeFacts};
use crate::kubelet::node_status::{self, RuntimeHealth};
use crate::kubelet::register;

/// The label every hollow Node carries (`true`), to find or clean them up.
pub const HOLLOW_LABEL: &str = "skiff.dev/hollow";
/// First hollow node address: 127.1.0.0 (the rest of 127.0.0.0/8 upward).
const FIRST_ADDRESS: u32 = u32::from_be_bytes([127, 1, 0, 0]);
/// Nodes with an address of their own in 127.0.0.0/8 above 127.1.0.0.
pub const MAX_NODES: u32 = u32::from_be_bytes([128, 0, 0, 0]) - FIRST_ADDRESS - 1;

/// The name of hollow node `index`.
pub fn node_name(prefix: &str, index: u32) -> String {
    format!("{prefix}-{index}")
}

/// The address of hollow node `index` (`127.1.0.0 + index`): loopback, so nothing a client
/// sends to a hollow node leaves the machine; nothing listens there, so it is refused.
pub fn address(index: u32) -> Ipv4Addr {
    Ipv4Addr::from(FIRST_ADDRESS.saturating_add(index.min(MAX_NODES)))
}

/// One registered hollow node.
#[derive(Debug)]
pub struct HollowNode {
    /// The Node's name.
    pub name: String,
    /// Its index (its address is [`address`] of it).
    pub index: u32,
    /// The Node's uid (the Lease's owner).
    pub uid: String,
    /// Its pod CIDR once read (the master's node IPAM assigns it after registration).
    pub(super) pod_cidr: Cell<Option<Ipv4Net>>,
    /// Offsets into the pod CIDR its pods hold.
    pub(super) pod_ips: RefCell<BTreeSet<u32>>,
}

impl HollowNode {
    /// The node's address.
    pub fn address(&self) -> Ipv4Addr {
        address(self.index)
    }
}

/// What every hollow node reports alike: capacity and `nodeInfo`.
#[derive(Clone, Debug)]
pub(super) struct Facts {
    template: NodeFacts,
    /// The status at the simulator's start: conditions keep its `lastTransitionTime`.
    since: NodeStatus,
}

impl Facts {
    pub(super) fn new(cpus: u64, memory_bytes: u64) -> Facts {
        let template = NodeFacts {
            cpus,
            memory_bytes,
            ephemeral_storage_bytes: None,
            internal_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            hostname: String::new(),
            kernel_version: String::from("hollow"),
            os_image: String::from("skiff hollow node"),
            machine_id: String::from("hollow"),
            system_uuid: String::from("hollow"),
            boot_id: String::from("hollow"),
            architecture: node_facts::architecture(),
        };
        let since = node_status::node_status(&template, &ready(), 0, None);
        Facts { template, since }
    }

    /// Node `name`'s status now: Ready, with the capacity and its address.
    pub(super) fn status(&self, name: &str, index: u32) -> NodeStatus {
        let mut facts = self.template.clone();
        facts.internal_ip = IpAddr::V4(address(index));
        facts.hostname = name.to_owned();
        node_status::node_status(&facts, &ready(), 0, Some(&self.since))
    }

    /// The merge patch of node `name`'s status subresource.
    pub(super) fn status_patch(&self, name: &str, index: u32) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "status": self.status(name, index) }))
            .unwrap_or_default()
    }

    fn node(&self, name: &str) -> Node {
        let arch = self.template.architecture.clone();
        let labels = BTreeMap::from([
            (String::from("kubernetes.io/hostname"), name.to_owned()),
            (String::from("kubernetes.io/os"), String::from("linux")),
            (String::from("kubernetes.io/arch"), arch),
            (String::from(HOLLOW_LABEL), String::from("true")),
        ]);
        Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: None,
        }
    }
}

/// A hollow node's runtime: always ready.
fn ready() -> RuntimeHealth {
    RuntimeHealth {
        ready: true,
        version: String::from("hollow://1"),
        message: String::new(),
    }
}

/// Registers hollow node `index`: creates its Node (or adopts one of its name), writes its
/// status (Ready) and creates its Lease.
pub(super) async fn register(
    client: &kube::Client,
    facts: &Facts,
    prefix: &str,
    index: u32,
    lease_duration_seconds: i32,
    stats: &Stats,
) -> anyhow::Result<HollowNode> {
    let name = node_name(prefix, index);
    let nodes: Api<Node> = Api::all(client.clone());
    let node = match nodes
        .create(&PostParams::default(), &facts.node(&name))
        .await
    {
        Ok(node) => node,
        Err(kube::Error::Api(status)) if status.code == 409 => nodes
            .get(&name)
            .await
            .with_context(|| format!("reading the existing node {name}"))?,
        Err(err) => return Err(err).with_context(|| format!("registering node {name}")),
    };
    let status = serde_json::json!({ "status": facts.status(&name, index) });
    nodes
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("writing the status of node {name}"))?;
    let uid = node.metadata.uid.clone().unwrap_or_default();
    register::ensure_lease(client, &name, &uid, lease_duration_seconds)
        .await
        .with_context(|| format!("creating the lease of node {name}"))?;
    let pod_cidr = node
        .spec
        .as_ref()
        .and_then(|spec| spec.pod_cidr.as_deref())
        .and_then(|cidr| cidr.parse().ok());
    stats.registered();
    Ok(HollowNode {
        name,
        index,
        uid,
        pod_cidr: Cell::new(pod_cidr),
        pod_ips: RefCell::new(BTreeSet::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_loopback_and_distinct() {
        assert_eq!(address(0), Ipv4Addr::new(127, 1, 0, 0));
        assert_eq!(address(65_537), Ipv4Addr::new(127, 2, 0, 1));
        assert_eq!(address(MAX_NODES - 1), Ipv4Addr::new(127, 255, 255, 254));
        assert!(address(u32::MAX).is_loopback());
        assert_eq!(node_name("hollow", 7), "hollow-7");
    }

    #[test]
    fn status_is_ready_with_capacity_and_address() {
        let facts = Facts::new(4, 16 << 30);
        let status = facts.status("hollow-3", 3);
        let ready = status
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .expect("Ready condition");
        assert_eq!(ready.status, "True");
        let capacity = status.capacity.expect("capacity");
        assert_eq!(capacity["cpu"].0, "4");
        assert_eq!(capacity["memory"].0, "16777216Ki");
        assert_eq!(capacity["pods"].0, "110");
        let addresses = status.addresses.expect("addresses");
        assert!(
            addresses
                .iter()
                .any(|a| a.type_ == "InternalIP" && a.address == "127.1.0.3")
        );
    }
}
