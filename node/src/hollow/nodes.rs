//! A hollow node's identity and its Node: name, loopback address, capacity, status, and its
//! registration (Node, status, Lease) through the API server.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
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
    /// The status patch every node writes, encoded once (see [`Facts::status_patch`]).
    patch: Vec<Piece>,
}

/// A piece of the encoded status patch: text every node sends alike, or a node's own value.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Name,
    Address,
    HeartbeatTime,
}

/// Where the status patch's template has the node's name, its address and the heartbeat
/// time: JSON strings no real value equals.
const NAME_MARK: &str = "\"@hollow-name@\"";
const ADDRESS_MARK: &str = "\"@hollow-address@\"";

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
        let patch = patch_template(&template, &since);
        Facts {
            template,
            since,
            patch,
        }
    }

    /// Node `name`'s status now: Ready, with the capacity and its address.
    pub(super) fn status(&self, name: &str, index: u32) -> NodeStatus {
        let mut facts = self.template.clone();
        facts.internal_ip = IpAddr::V4(address(index));
        facts.hostname = name.to_owned();
        node_status::node_status(&facts, &ready(), 0, Some(&self.since))
    }

    /// The merge patch of node `name`'s status subresource with heartbeats at `now`: the
    /// patch of [`Facts::status`], from the template encoded once (a status write is a
    /// sixth of the simulator's writes, and encoding the typed status each time took a
    /// sixth of its CPU).
    pub(super) fn status_patch(&self, name: &str, index: u32, now: DateTime<Utc>) -> Vec<u8> {
        let name = serde_json::to_string(name).unwrap_or_default();
        let address = serde_json::to_string(&address(index).to_string()).unwrap_or_default();
        let now = serde_json::to_string(&Time(now)).unwrap_or_default();
        let mut patch = Vec::with_capacity(1536);
        for piece in &self.patch {
            let text = match piece {
                Piece::Text(text) => text.as_str(),
                Piece::Name => &name,
                Piece::Address => &address,
                Piece::HeartbeatTime => &now,
            };
            patch.extend_from_slice(text.as_bytes());
        }
        patch
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

/// The status patch of [`Facts::status`] encoded with marks for what differs between nodes
/// and writes, cut into pieces at the marks.
fn patch_template(facts: &NodeFacts, since: &NodeStatus) -> Vec<Piece> {
    let mut status = node_status::node_status(facts, &ready(), 0, Some(since));
    for address in status.addresses.iter_mut().flatten() {
        address.address = match address.type_.as_str() {
            "InternalIP" => ADDRESS_MARK,
            _ => NAME_MARK,
        }
        .trim_matches('"')
        .to_owned();
    }
    for condition in status.conditions.iter_mut().flatten() {
        condition.last_heartbeat_time = Some(Time(DateTime::UNIX_EPOCH));
    }
    let time_mark = serde_json::to_string(&Time(DateTime::UNIX_EPOCH)).unwrap_or_default();
    let mut rest =
        serde_json::to_string(&serde_json::json!({ "status": status })).unwrap_or_default();
    let marks = [
        (NAME_MARK, Piece::Name),
        (ADDRESS_MARK, Piece::Address),
        (time_mark.as_str(), Piece::HeartbeatTime),
    ];
    let mut pieces = Vec::new();
    loop {
        let next = marks
            .iter()
            .filter_map(|(mark, piece)| Some((rest.find(mark)?, mark.len(), piece)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, len, piece)) = next else {
            pieces.push(Piece::Text(rest));
            return pieces;
        };
        pieces.push(Piece::Text(rest[..at].to_owned()));
        pieces.push(piece.clone());
        rest = rest[at + len..].to_owned();
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
    fn the_status_patch_from_the_template_is_the_nodes_status_at_the_time_given() {
        let facts = Facts::new(4, 16 << 30);
        let now = DateTime::parse_from_rfc3339("2026-12-05T08:30:00Z")
            .expect("time")
            .with_timezone(&Utc);
        for (name, index) in [("hollow-3", 3), ("other-70000", 70_000)] {
            let patch: serde_json::Value =
                serde_json::from_slice(&facts.status_patch(name, index, now)).expect("JSON");
            let mut status = facts.status(name, index);
            for condition in status.conditions.iter_mut().flatten() {
                condition.last_heartbeat_time = Some(Time(now));
            }
            assert_eq!(patch, serde_json::json!({ "status": status }));
        }
        // Each mark was found once per place it stands for, and nothing else was cut.
        let marks = |piece: Piece| facts.patch.iter().filter(|p| **p == piece).count();
        assert_eq!(marks(Piece::Name), 1);
        assert_eq!(marks(Piece::Address), 1);
        assert_eq!(marks(Piece::HeartbeatTime), 4);
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
