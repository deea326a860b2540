//! Registration: the Node object (labels, pod CIDR) and the node's Lease in
//! `kube-node-lease`, created if missing and adopted if they exist (a restarted agent).
//!
//! The pod CIDR comes from `--pod-cidr`, else from the Node's `spec.podCIDR`, which the
//! master's node IPAM controller assigns (the agent waits for it).

use std::collections::BTreeMap;

use chrono::Utc;
use ipnet::Ipv4Net;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{info, warn};

use super::KubeletError;
use super::node_facts::NodeFacts;

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
        (None, None) => wait_for_pod_cidr(&nodes, name).await?,
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

/// Waits until the master's node IPAM controller has given the Node a pod CIDR (as the
/// kubelet does), polling once a second.
async fn wait_for_pod_cidr(nodes: &Api<Node>, name: &str) -> Result<Ipv4Net, KubeletError> {
    let mut said = false;
    loop {
        let node = nodes
            .get(name)
            .await
            .map_err(KubeletError::api("reading the node"))?;
        if let Some(cidr) = node
            .spec
            .as_ref()
            .and_then(|spec| spec.pod_cidr.as_deref())
            .and_then(|cidr| cidr.parse::<Ipv4Net>().ok())
        {
            info!(pod_cidr = %cidr, "the master assigned the pod CIDR");
            return Ok(cidr);
        }
        if !said {
            info!(
                node = name,
                "waiting for the master to assign a pod CIDR (or pass --pod-cidr)"
            );
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
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
