//! The messages between the kubelet's tasks: what the pod sources, the runtime monitor and
//! the pod workers tell the pod manager ([`ManagerMsg`]), and what the pod manager and the
//! workers tell the status manager ([`StatusMsg`]). A leaf over [`super::types`], so senders
//! and receivers do not import each other.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::types::{PodKey, key_of, mirror_hash};
use crate::runtime::ContainerEvent;

/// What the pod manager is told.
#[derive(Debug)]
pub enum ManagerMsg {
    /// All API pods of this node (after a list).
    ApiSnapshot(Vec<Pod>),
    /// An API pod was added or changed.
    ApiApply(Pod),
    /// An API pod was deleted.
    ApiDelete(Pod),
    /// The static pods now, by uid.
    StaticSnapshot(HashMap<String, Pod>),
    /// Docker is (again) reachable: resync every pod and look for orphans.
    RuntimeReady,
    /// A container of this node changed.
    Container(ContainerEvent),
    /// The worker of this pod uid has finished.
    WorkerDone(String),
    /// The worker of this pod uid panicked: another must take over its pod.
    WorkerPanicked {
        /// The pod's uid.
        uid: String,
        /// What the panic said.
        message: String,
    },
    /// The back-off after a worker's panic is over: start a new worker for this pod uid.
    RestartWorker(String),
}

/// The parts of an API pod the status manager needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiPodMeta {
    /// Namespace and name.
    pub key: PodKey,
    /// The API's uid.
    pub uid: String,
    /// For mirror pods: the static pod hash they stand for.
    pub mirror_hash: Option<String>,
    /// Whether it has a deletionTimestamp.
    pub deleting: bool,
    /// Its status's conditions as the API has them: type and status, sorted by type.
    pub conditions: Vec<(String, String)>,
}

impl ApiPodMeta {
    /// The meta of `pod`.
    pub fn of(pod: &Pod) -> Self {
        Self {
            key: key_of(pod),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            mirror_hash: mirror_hash(pod).map(str::to_owned),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            conditions: pod.status.as_ref().map(conditions_of).unwrap_or_default(),
        }
    }
}

/// The conditions of `status`: type and status, sorted by type.
pub fn conditions_of(status: &PodStatus) -> Vec<(String, String)> {
    let mut conditions: Vec<(String, String)> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect();
    conditions.sort();
    conditions
}

/// What the status manager is told.
#[derive(Debug)]
pub enum StatusMsg {
    /// A pod's latest status from its worker (`uid` is the worker's pod uid; for a static
    /// pod, its hash).
    Status {
        /// The pod.
        key: PodKey,
        /// The worker's pod uid.
        uid: String,
        /// Whether it is a static pod (the status goes to its mirror pod).
        static_pod: bool,
        /// The status.
        status: Box<PodStatus>,
    },
    /// The worker stopped and removed the containers of a pod being deleted: finish the
    /// deletion.
    Terminated {
        /// The pod.
        key: PodKey,
        /// Its uid (a precondition of the delete).
        uid: String,
    },
    /// The pod is gone; drop what is kept about it.
    Forget {
        /// The pod.
        key: PodKey,
        /// Its uid.
        uid: String,
    },
    /// The static pods now (the mirror pods to have).
    StaticPods(HashMap<PodKey, Pod>),
    /// All API pods of this node (after a list).
    ApiSnapshot(Vec<ApiPodMeta>),
    /// An API pod was added or changed.
    ApiApply(ApiPodMeta),
    /// An API pod was deleted.
    ApiDelete(ApiPodMeta),
}
