//! Registration: the Node object (labels, pod CIDR) and the node's Lease in
//! `kube-node-lease`, created if missing and adopted if they exist (a restarted agent).
//!
//! The pod CIDR comes from `--pod-cidr`, else from the Node's `spec.podCIDR` (assigned by the
//! master), else the agent takes the first /24 of the cluster CIDR no other Node holds.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use ipnet::Ipv4Net;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{info, warn};

use super::KubeletError;
use super::node_info::NodeFacts;

/// Where node leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The registered node.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The Node's uid (owner of the Lease and of mirror pods).
    pub uid: String,
    /// The node's pod CIDR.
    pub pod_cidr: Ipv4Net,
}

/// Creates the Node or reconciles an existing one; returns its uid and pod CIDR.
pub async fn register_node(
    client: &kube::Client,
    name: &str,
    facts: &NodeFacts,
    pod_cidr: Option<Ipv4Net>,
    cluster_cidr: Ipv4Net,
) -> Result<Registration, KubeletError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels = BTreeMap::from([
        (String::from("kubernetes.io/hostname"), name.to_owned()),
        (String::from("kubernetes.io/os"), String::from("linux")),
        (
            String::from("kubernetes.io/arch"),
            facts.architecture.clone(),
        ),
        (String::from("beta.kubernetes.io/os"), String::from("linux")),
        (
            String::from("beta.kubernetes.io/arch"),
            facts.architecture.clone(),
        ),
    ]);
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: pod_cidr.map(|c| c.to_string()),
            pod_cidrs: pod_cidr.map(|c| vec![c.to_string()]),
            ..Default::default()
        }),
        status: None,
    };
    let existing = match nodes.create(&PostParams::default(), &node).await {
        Ok(created) => {
            info!(node = name, "registered the node");
            created
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            info!(node = name, "the node exists; adopting it");
            let patch = json!({"metadata": {"labels": labels}});
            nodes
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(KubeletError::api("updating the node's labels"))?
        }
        Err(err) => return Err(KubeletError::api("registering the node")(err)),
    };
    let uid = existing.metadata.uid.clone().unwrap_or_default();
    let assigned = existing
        .spec
        .as_ref()
        .and_then(|spec| spec.pod_cidr.as_deref())
        .filter(|cidr| !cidr.is_empty())
        .and_then(|cidr| cidr.parse::<Ipv4Net>().ok());
    let pod_cidr = match (pod_cidr, assigned) {
        (Some(flag), Some(assigned)) if flag != assigned => {
            warn!(%flag, %assigned, "--pod-cidr differs from the Node's spec.podCIDR; using the flag");
            flag
        }
        (Some(flag), _) => {
            if assigned.is_none() {
                set_pod_cidr(&nodes, name, flag).await?;
            }
            flag
        }
        (None, Some(assigned)) => assigned,
        (None, None) => {
            let free = free_pod_cidr(&nodes, cluster_cidr).await?;
            set_pod_cidr(&nodes, name, free).await?;
            info!(pod_cidr = %free, "took a free pod CIDR of the cluster CIDR");
            free
        }
    };
    Ok(Registration { uid, pod_cidr })
}

async fn set_pod_cidr(nodes: &Api<Node>, name: &str, cidr: Ipv4Net) -> Result<(), KubeletError> {
    let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(KubeletError::api("setting the node's pod CIDR"))?;
    Ok(())
}

/// The first /24 of the cluster CIDR that no Node has.
async fn free_pod_cidr(nodes: &Api<Node>, cluster_cidr: Ipv4Net) -> Result<Ipv4Net, KubeletError> {
    let taken: HashSet<Ipv4Net> = nodes
        .list(&ListParams::default())
        .await
        .map_err(KubeletError::api("listing nodes"))?
        .items
        .into_iter()
        .filter_map(|node| node.spec?.pod_cidr?.parse().ok())
        .collect();
    first_free(cluster_cidr, &taken).ok_or_else(|| {
        KubeletError::Config(format!(
            "no free /24 left in the cluster CIDR {cluster_cidr}; pass --pod-cidr"
        ))
    })
}

fn first_free(cluster_cidr: Ipv4Net, taken: &HashSet<Ipv4Net>) -> Option<Ipv4Net> {
    let prefix = cluster_cidr.prefix_len().max(24);
    cluster_cidr.subnets(prefix).ok()?.find(|subnet| {
        !taken
            .iter()
            .any(|t| t.contains(subnet) || subnet.contains(t))
    })
}

/// The lease object of `node` (owned by the Node), renewed now.
pub fn lease(node: &str, node_uid: &str, duration_seconds: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_owned()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            owner_references: (!node_uid.is_empty()).then(|| {
                vec![OwnerReference {
                    api_version: String::from("v1"),
                    kind: String::from("Node"),
                    name: node.to_owned(),
                    uid: node_uid.to_owned(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_owned()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(MicroTime(Utc::now())),
            ..Default::default()
        }),
    }
}

/// Creates the node's lease if it does not exist.
pub async fn ensure_lease(
    client: &kube::Client,
    node: &str,
    node_uid: &str,
    duration_seconds: i32,
) -> Result<(), KubeletError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    match leases
        .create(
            &PostParams::default(),
            &lease(node, node_uid, duration_seconds),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(KubeletError::api("creating the node lease")(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_first_free_slash_24() {
        let cluster: Ipv4Net = "10.244.0.0/16".parse().expect("cidr");
        let taken: HashSet<Ipv4Net> = ["10.244.0.0/24", "10.244.1.0/24"]
            .iter()
            .map(|c| c.parse().expect("cidr"))
            .collect();
        assert_eq!(
            first_free(cluster, &taken),
            Some("10.244.2.0/24".parse().expect("cidr"))
        );
    }
}
