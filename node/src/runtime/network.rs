//! The node's pod network: a Docker bridge network `skiff-<node>` whose subnet is the node's
//! pod CIDR, so each sandbox gets its pod IP from it and the host reaches every pod IP through
//! the bridge.
//!
//! Pod-to-pod traffic is not NATed (masquerading is off: pods see each other's real IPs, as
//! Kubernetes requires), and traffic within the cluster CIDR is accepted in `DOCKER-USER` so
//! Docker's isolation between bridge networks does not cut off pods of other agents on the
//! same host.

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::InspectNetworkOptions;
use ipnet::Ipv4Net;
use tracing::{info, warn};

use super::{DockerRuntime, RuntimeError, labels};

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
    pub fn gateway(&self) -> Option<std::net::Ipv4Addr> {
        self.pod_cidr.hosts().next()
    }
}

/// The Docker network of `node`.
pub fn network_name(node: &str) -> String {
    format!("skiff-{node}")
}

/// Creates the network if it is missing (or recreates it if its subnet changed, removing the
/// containers still on the old one), and allows cluster traffic between bridges.
pub(super) async fn ensure(
    runtime: &DockerRuntime,
    network: &NodeNetwork,
) -> Result<(), RuntimeError> {
    let client = runtime.client().await?;
    let name = network_name(runtime.node());
    let subnet = network.pod_cidr.trunc().to_string();
    match client
        .inspect_network(&name, None::<InspectNetworkOptions>)
        .await
    {
        Ok(existing) => {
            let subnets: Vec<String> = existing
                .ipam
                .and_then(|ipam| ipam.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|config| config.subnet)
                .collect();
            if subnets.contains(&subnet) {
                allow_cluster_traffic(network).await;
                return Ok(());
            }
            info!(network = %name, old = ?subnets, new = %subnet, "pod CIDR changed; recreating the pod network");
            // Containers on the old subnet (an earlier cluster's, or this node's before its
            // CIDR changed) cannot keep their addresses, and Docker removes no network with
            // endpoints: they go first; the kubelet recreates the pods it still has.
            for id in existing.containers.unwrap_or_default().into_keys() {
                warn!(network = %name, container = %id, "removing a container on the old pod CIDR");
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
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some(String::from("bridge")),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.clone()),
                gateway: network.gateway().map(|ip| ip.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        options: Some(HashMap::from([(
            String::from("com.docker.network.bridge.enable_ip_masquerade"),
            String::from("false"),
        )])),
        labels: Some(HashMap::from([(
            labels::NODE.to_owned(),
            runtime.node().to_owned(),
        )])),
        ..Default::default()
    };
    match client.create_network(request).await {
        Ok(_) => info!(network = %name, %subnet, "created the pod network"),
        // Another call created it in the meantime.
        Err(err) => match runtime.error(err) {
            RuntimeError::Conflict(_) => {}
            other => return Err(other),
        },
    }
    allow_cluster_traffic(network).await;
    Ok(())
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
