//! The node's pod network: a Docker bridge network `skiff-<node>` whose subnet is the node's
//! pod CIDR gives the bridge, its gateway address and Docker's forwarding rules; the agent
//! plumbs each sandbox into it itself, as a CNI bridge plugin does for the kubelet: a veth
//! pair with one end on the bridge and the other as the pod's `eth0`, with an address the
//! agent hands out from the pod CIDR ([`AddressBook`]) and keeps in the sandbox's labels.
//!
//! Docker's own networking for a container costs a re-exec of dockerd (its prestart hook)
//! and libnetwork's endpoint work on every start: about three times the CPU of the start
//! itself, which made pod start Docker-bound. Sandboxes that publish host ports are still
//! attached by Docker (it owns port publishing), with addresses from the top quarter of the
//! pod CIDR, which the agent never hands out.
//!
//! Pod-to-pod traffic is not NATed (masquerading is off: pods see each other's real IPs, as
//! Kubernetes requires), and traffic within the cluster CIDR is accepted in `DOCKER-USER` so
//! Docker's isolation between bridge networks does not cut off pods of other agents on the
//! same host.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Stdio;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    InspectNetworkOptions, ListContainersOptions, ListNetworksOptions,
};
use ipnet::Ipv4Net;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use super::{DockerRuntime, RuntimeError, labels};

/// Docker's option naming a bridge network's device.
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// The pod network of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNetwork {
    /// The node's pod CIDR (one /24 of the cluster CIDR).
    pub pod_cidr: Ipv4Net,
    /// The whole cluster's pod CIDR: traffic within it is allowed between bridges.
    pub cluster_cidr: Ipv4Net,
}

impl NodeNetwork {
    /// The bridge's own address: the first host of the pod CIDR.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.pod_cidr.hosts().next()
    }

    /// The part of the pod CIDR Docker gives out (sandboxes with host ports): its top
    /// quarter, or all of a CIDR too small to split.
    fn docker_range(&self) -> Ipv4Net {
        let cidr = self.pod_cidr.trunc();
        match cidr.prefix_len() {
            prefix @ 0..=28 => cidr
                .subnets(prefix + 2)
                .ok()
                .and_then(|mut quarters| quarters.nth(3))
                .unwrap_or(cidr),
            _ => cidr,
        }
    }
}

/// The Docker network of `node`.
pub fn network_name(node: &str) -> String {
    format!("skiff-{node}")
}

/// The node's bridge and the addresses handed out on it: what [`plumb`] needs.
#[derive(Debug)]
pub(super) struct PodNetwork {
    network: NodeNetwork,
    bridge: String,
    addresses: AddressBook,
}

/// The pod addresses the agent hands out: every host of the pod CIDR but the gateway and
/// Docker's range. An address is in use from [`AddressBook::take`] until the sandbox labelled
/// with it is gone; the book forgets nothing until it runs out, then learns again from the
/// sandboxes Docker lists (so freed addresses come back, the oldest first, and none is
/// handed out twice).
#[derive(Debug)]
struct AddressBook {
    free_range: Vec<Ipv4Addr>,
    /// Where the next search starts (round robin, as host-local IPAM).
    next: usize,
    in_use: HashSet<Ipv4Addr>,
    /// Taken, its sandbox perhaps not listed yet.
    pending: HashSet<Ipv4Addr>,
}

impl AddressBook {
    fn new(network: &NodeNetwork, in_use: HashSet<Ipv4Addr>) -> Self {
        let docker = network.docker_range();
        let gateway = network.gateway();
        let free_range = network
            .pod_cidr
            .trunc()
            .hosts()
            .filter(|ip| Some(*ip) != gateway && !docker.contains(ip))
            .collect();
        Self {
            free_range,
            next: 0,
            in_use,
            pending: HashSet::new(),
        }
    }

    /// The next address not in use; `None` when all are.
    fn take(&mut self) -> Option<Ipv4Addr> {
        let count = self.free_range.len();
        for offset in 0..count {
            let index = (self.next + offset) % count;
            let ip = self.free_range[index];
            if !self.in_use.contains(&ip) {
                self.next = (index + 1) % count;
                self.in_use.insert(ip);
                self.pending.insert(ip);
                return Some(ip);
            }
        }
        None
    }

    /// The sandbox of `ip` exists now (or was never made): Docker's list tells from here.
    fn settle(&mut self, ip: Ipv4Addr) {
        self.pending.remove(&ip);
    }

    /// Forgets everything but what `listed` sandboxes hold and what is pending.
    fn relearn(&mut self, listed: HashSet<Ipv4Addr>) {
        self.in_use = listed.union(&self.pending).copied().collect();
    }
}

/// Creates the network if it is missing (or recreates it if its subnet changed, removing the
/// node's sandboxes, which cannot keep their addresses), allows cluster traffic between
/// bridges, and learns the addresses the node's sandboxes hold.
pub(super) async fn ensure(
    runtime: &DockerRuntime,
    network: &NodeNetwork,
) -> Result<PodNetwork, RuntimeError> {
    let bridge = ensure_bridge(runtime, network).await?;
    allow_cluster_traffic(network).await;
    let in_use = sandbox_addresses(runtime).await?;
    Ok(PodNetwork {
        addresses: AddressBook::new(network, in_use),
        network: network.clone(),
        bridge,
    })
}

/// The Docker network of the node, made (anew) if need be; returns its bridge device.
async fn ensure_bridge(
    runtime: &DockerRuntime,
    network: &NodeNetwork,
) -> Result<String, RuntimeError> {
    let client = runtime.client().await?;
    let name = network_name(runtime.node());
    let subnet = network.pod_cidr.trunc().to_string();
    let docker_range = network.docker_range().to_string();
    match client
        .inspect_network(&name, None::<InspectNetworkOptions>)
        .await
    {
        Ok(existing) => {
            let ranges: Vec<(String, String)> = existing
                .ipam
                .and_then(|ipam| ipam.config)
                .unwrap_or_default()
                .into_iter()
                .map(|config| {
                    (
                        config.subnet.unwrap_or_default(),
                        config.ip_range.unwrap_or_default(),
                    )
                })
                .collect();
            if ranges == [(subnet.clone(), docker_range.clone())] {
                return existing
                    .options
                    .and_then(|mut options| options.remove(BRIDGE_NAME_OPTION))
                    .or_else(|| {
                        existing
                            .id
                            .map(|id| format!("br-{}", &id[..id.len().min(12)]))
                    })
                    .ok_or_else(|| RuntimeError::Unexpected(format!("network {name} has no id")));
            }
            info!(network = %name, old = ?ranges, new = %subnet, "pod CIDR changed; recreating the pod network");
            // The sandboxes on the old bridge (an earlier cluster's, or this node's before
            // its CIDR changed) cannot keep their addresses, and Docker removes no network
            // with endpoints: they go first; the kubelet recreates the pods it still has.
            let mut stale: HashSet<String> = existing
                .containers
                .unwrap_or_default()
                .into_keys()
                .collect();
            stale.extend(
                super::container_list::list_pod_containers(runtime, None)
                    .await?
                    .into_iter()
                    .filter(|c| c.kind == super::ContainerKind::Sandbox)
                    .map(|c| c.id),
            );
            for id in stale {
                warn!(network = %name, container = %id, "removing a sandbox of the old pod network");
                super::container_remove::remove_container(runtime, &id).await?;
            }
            client
                .remove_network(&name)
                .await
                .map_err(|err| runtime.error(err))?;
        }
        Err(err) => match runtime.error(err) {
            RuntimeError::NotFound(_) => {}
            other => return Err(other),
        },
    }
    let bridge = bridge_device(runtime.node());
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some(String::from("bridge")),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.clone()),
                ip_range: Some(docker_range),
                gateway: network.gateway().map(|ip| ip.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        options: Some(HashMap::from([
            (
                String::from("com.docker.network.bridge.enable_ip_masquerade"),
                String::from("false"),
            ),
            (BRIDGE_NAME_OPTION.to_owned(), bridge.clone()),
        ])),
        labels: Some(HashMap::from([(
            labels::NODE.to_owned(),
            runtime.node().to_owned(),
        )])),
        ..Default::default()
    };
    let mut created = client.create_network(request.clone()).await;
    if let Err(err) = &created
        && err.to_string().contains("overlaps")
    {
        // An earlier cluster's node had this CIDR and left its network behind.
        remove_abandoned_overlaps(runtime, network).await?;
        created = client.create_network(request).await;
    }
    match created {
        Ok(_) => info!(network = %name, %subnet, %bridge, "created the pod network"),
        // Another call created it in the meantime.
        Err(err) => match runtime.error(err) {
            RuntimeError::Conflict(_) => {}
            other => return Err(other),
        },
    }
    Ok(bridge)
}

/// Removes the pod networks of other nodes whose subnets overlap this node's pod CIDR and
/// that no running container of theirs uses any more (what a removed cluster's agents left);
/// one still in use is an error that names it.
async fn remove_abandoned_overlaps(
    runtime: &DockerRuntime,
    network: &NodeNetwork,
) -> Result<(), RuntimeError> {
    let client = runtime.client().await?;
    let options = ListNetworksOptions {
        filters: Some(HashMap::from([(
            String::from("label"),
            vec![labels::NODE.to_owned()],
        )])),
    };
    let networks = client
        .list_networks(Some(options))
        .await
        .map_err(|err| runtime.error(err))?;
    for other in networks {
        let (Some(name), Some(node)) = (
            other.name.clone(),
            other
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::NODE))
                .cloned(),
        ) else {
            continue;
        };
        let overlaps = other
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .iter()
            .filter_map(|config| config.subnet.as_deref()?.parse::<Ipv4Net>().ok())
            .any(|subnet| {
                subnet.contains(&network.pod_cidr.network())
                    || network.pod_cidr.contains(&subnet.network())
            });
        if node == runtime.node() || !overlaps {
            continue;
        }
        let running = ListContainersOptions {
            filters: Some(HashMap::from([(
                String::from("label"),
                vec![format!("{}={node}", labels::NODE)],
            )])),
            ..Default::default()
        };
        let in_use = client
            .list_containers(Some(running))
            .await
            .map_err(|err| runtime.error(err))?;
        if !in_use.is_empty() {
            return Err(RuntimeError::Rejected(format!(
                "the pod CIDR {} overlaps Docker network {name} of node {node}, which still \
                 runs pods (another cluster on this host?)",
                network.pod_cidr
            )));
        }
        warn!(network = %name, %node, "removing an abandoned pod network on this node's pod CIDR");
        match client.remove_network(&name).await {
            Ok(()) => {}
            Err(err) => match runtime.error(err) {
                RuntimeError::NotFound(_) => {}
                other => return Err(other),
            },
        }
    }
    Ok(())
}

/// The bridge device of `node`'s network: `skiff` and a hash of the node's name, within the
/// kernel's 15 characters whatever the name.
fn bridge_device(node: &str) -> String {
    format!("skiff{:08x}", fnv1a(node.as_bytes()))
}

/// A veth's host end for `sandbox_id`: within the kernel's 15 characters, unique per sandbox.
fn veth_name(sandbox_id: &str) -> String {
    format!("skv{}", &sandbox_id[..sandbox_id.len().min(12)])
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// The addresses in the pod-IP labels of this node's sandboxes, running or not.
async fn sandbox_addresses(runtime: &DockerRuntime) -> Result<HashSet<Ipv4Addr>, RuntimeError> {
    let client = runtime.client().await?;
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            String::from("label"),
            vec![
                format!("{}={}", labels::NODE, runtime.node()),
                labels::POD_IP.to_owned(),
            ],
        )])),
        ..Default::default()
    };
    let listed = client
        .list_containers(Some(options))
        .await
        .map_err(|err| runtime.error(err))?;
    Ok(listed
        .into_iter()
        .filter_map(|summary| summary.labels?.get(labels::POD_IP)?.parse().ok())
        .collect())
}

/// An address for a new sandbox, until [`release_pending`] is called for it.
pub(super) async fn take_address(runtime: &DockerRuntime) -> Result<Ipv4Addr, RuntimeError> {
    if let Some(ip) = runtime.with_pod_network(|net| net.addresses.take())? {
        return Ok(ip);
    }
    let listed = sandbox_addresses(runtime).await?;
    runtime
        .with_pod_network(|net| {
            net.addresses.relearn(listed);
            net.addresses.take()
        })?
        .ok_or_else(|| {
            RuntimeError::Rejected(String::from(
                "no pod address is free in the node's pod CIDR",
            ))
        })
}

/// The sandbox of `ip` exists now, or its creation failed and it was removed.
pub(super) fn release_pending(runtime: &DockerRuntime, ip: Ipv4Addr) {
    let _ = runtime.with_pod_network(|net| net.addresses.settle(ip));
}

/// Gives the sandbox whose process is `pid` its network: a veth pair, one end on the node's
/// bridge, the other its `eth0` with `ip` and a default route through the gateway, and its
/// loopback up. Fine to call again on a sandbox that lost its `eth0`.
pub(super) async fn plumb(
    runtime: &DockerRuntime,
    sandbox_id: &str,
    pid: u32,
    ip: Ipv4Addr,
) -> Result<(), RuntimeError> {
    let (bridge, prefix, gateway) = runtime.with_pod_network(|net| {
        (
            net.bridge.clone(),
            net.network.pod_cidr.prefix_len(),
            net.network.gateway(),
        )
    })?;
    let gateway = gateway.ok_or_else(|| {
        RuntimeError::Rejected(String::from("the pod CIDR has no address for a gateway"))
    })?;
    let veth = veth_name(sandbox_id);
    let failed = |err: String| RuntimeError::Rejected(format!("plumbing the pod network: {err}"));
    // Left over by an earlier attempt: the pod's end went with its namespace, this one not.
    if host_has_link(&veth) {
        ip_batch(None, &format!("link del {veth}\n"))
            .await
            .map_err(failed)?;
    }
    ip_batch(
        None,
        &format!(
            "link add name {veth} type veth peer name eth0 netns {pid}\n\
             link set {veth} master {bridge} up\n"
        ),
    )
    .await
    .map_err(failed)?;
    let namespace = File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|err| failed(format!("the sandbox's network namespace: {err}")))?;
    ip_batch(
        Some(&namespace),
        &format!(
            "link set lo up\n\
             addr add {ip}/{prefix} dev eth0\n\
             link set eth0 up\n\
             route add default via {gateway}\n"
        ),
    )
    .await
    .map_err(failed)
}

/// Whether the sandbox whose process is `pid` has its `eth0` (it has none until plumbed).
pub(super) fn has_interface(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .is_ok_and(|devices| devices.lines().any(|l| l.trim_start().starts_with("eth0:")))
}

fn host_has_link(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Runs `ip -batch -` with `commands`, in `namespace` if given; the error is `ip`'s message.
async fn ip_batch(namespace: Option<&File>, commands: &str) -> Result<(), String> {
    let mut command = tokio::process::Command::new("ip");
    command
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(namespace) = namespace {
        let fd = namespace.as_raw_fd();
        // SAFETY: setns is async-signal-safe; `fd` stays open in the parent (and so in the
        // child) until the child has been spawned.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .map_err(|err| format!("running ip: {err}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(commands.as_bytes())
            .await
            .map_err(|err| format!("writing to ip: {err}"))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|err| format!("running ip: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// `iptables -I DOCKER-USER -s <cluster> -d <cluster> -j ACCEPT` unless present. Failing
/// here only costs cross-node pod traffic on this host, so it is logged, not fatal.
async fn allow_cluster_traffic(network: &NodeNetwork) {
    let cidr = network.cluster_cidr.trunc().to_string();
    let rule = ["DOCKER-USER", "-s", &cidr, "-d", &cidr, "-j", "ACCEPT"];
    let present = tokio::process::Command::new("iptables")
        .arg("-C")
        .args(rule)
        .output()
        .await
        .is_ok_and(|out| out.status.success());
    if present {
        return;
    }
    match tokio::process::Command::new("iptables")
        .arg("-I")
        .args(rule)
        .output()
        .await
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => warn!(
            "iptables -I {}: {}",
            rule.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => warn!("cannot run iptables: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(cidr: &str) -> NodeNetwork {
        NodeNetwork {
            pod_cidr: cidr.parse().unwrap(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        }
    }

    #[test]
    fn docker_gets_the_top_quarter_and_the_agent_the_rest_but_the_gateway() {
        let net = network("10.244.7.0/24");
        assert_eq!(net.docker_range().to_string(), "10.244.7.192/26");
        let mut book = AddressBook::new(&net, HashSet::new());
        assert_eq!(book.free_range.len(), 190);
        assert_eq!(book.free_range.first(), Some(&Ipv4Addr::new(10, 244, 7, 2)));
        assert_eq!(
            book.free_range.last(),
            Some(&Ipv4Addr::new(10, 244, 7, 191))
        );
        assert_eq!(book.take(), Some(Ipv4Addr::new(10, 244, 7, 2)));
        // A CIDR too small to split is Docker's as a whole: nothing for the agent.
        assert!(
            AddressBook::new(&network("10.244.7.0/30"), HashSet::new())
                .take()
                .is_none()
        );
    }

    #[test]
    fn addresses_go_round_and_come_back_only_once_their_sandboxes_are_gone() {
        let net = network("10.244.7.0/28");
        // /28: .1 the gateway, .12-.15 Docker's, .2-.11 the agent's.
        let held = Ipv4Addr::new(10, 244, 7, 3);
        let mut book = AddressBook::new(&net, HashSet::from([held]));
        let mut taken = Vec::new();
        while let Some(ip) = book.take() {
            taken.push(ip);
        }
        assert_eq!(taken.len(), 9);
        assert!(!taken.contains(&held));
        // .2 settled and its sandbox removed; .4 still being created; .3 still listed.
        let (first, pending) = (taken[0], taken[1]);
        for ip in &taken {
            if *ip != pending {
                book.settle(*ip);
            }
        }
        book.relearn(HashSet::from([held]));
        assert_eq!(book.take(), Some(first));
        let mut again: Vec<Ipv4Addr> = std::iter::from_fn(|| book.take()).collect();
        again.sort();
        assert!(!again.contains(&pending) && !again.contains(&held));
        assert_eq!(again.len(), 7);
    }

    #[test]
    fn device_names_fit_the_kernel() {
        let long = "a-node-name-much-longer-than-fifteen-characters";
        assert_eq!(bridge_device(long).len(), 13);
        assert_ne!(bridge_device("n1"), bridge_device("n2"));
        assert_eq!(veth_name("0123456789abcdef0123").len(), 15);
    }
}
