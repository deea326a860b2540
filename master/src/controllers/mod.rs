//! Controllers: loops that drive the cluster toward what its objects say, each an API client
//! like any other (list + watch, then writes through the API server).
//!
//! - [`node_ipam`]: gives every Node a pod CIDR from the cluster CIDR (kube-controller-manager's
//!   `nodeipam` controller with `--allocate-node-cidrs`);
//! - [`replica_set`]: keeps each ReplicaSet's number of pods, and each ReplicationController's
//!   ([`replication_controller`]);
//! - [`deployment`]: runs Deployments through ReplicaSets and rolls them out;
//! - [`daemon_set`]: runs a pod of each DaemonSet on every node it is meant for, and rolls
//!   them out;
//! - [`stateful_set`]: runs each StatefulSet's pods with their stable names, in order, and
//!   rolls them out;
//! - [`job`]: runs each Job's pods to completion (or failure), and deletes finished Jobs
//!   after their `ttlSecondsAfterFinished`;
//! - [`cron_job`]: makes each CronJob's Jobs on its schedule;
//! - [`endpoints`]: keeps each Service's Endpoints listing the pods its selector picks;
//! - [`endpoint_slice`]: keeps each Service's EndpointSlices beside them;
//! - [`disruption`]: keeps each PodDisruptionBudget's status, which evictions read;
//! - [`node_lifecycle`]: marks silent nodes unreachable, taints them and evicts their pods;
//! - [`pod_gc`]: deletes the pods of deleted nodes, and terminated pods beyond a threshold;
//! - [`garbage_collector`]: deletes objects whose owners are gone, and carries out foreground
//!   and orphan deletes;
//! - [`service_account`]: gives every namespace its `default` ServiceAccount;
//! - [`root_ca_cert_publisher`]: gives every namespace the `kube-root-ca.crt` ConfigMap;
//! - [`cluster_role_aggregation`]: fills each aggregated ClusterRole (`admin`, `edit`, `view`)
//!   with the rules of the ClusterRoles its selectors pick;
//! - [`csr_approving`] and [`csr_signing`]: approve node agents' client certificate requests
//!   their requesters may make, and issue approved requests' certificates with the cluster CA;
//! - [`resource_quota`]: keeps each ResourceQuota's `status` (hard limits, usage) up to date;
//!
//! and what they share: [`informers`] (one watch and one cache per resource for all of
//! them and the scheduler), [`controller_ref`] (adoption and release), [`history`] (the
//! ControllerRevisions of DaemonSets and StatefulSets) and [`recorder`].

pub mod cluster_role_aggregation;
pub mod controller_ref;
pub mod cron_job;
pub mod csr_approving;
pub mod csr_signing;
pub mod daemon_set;
pub mod deployment;
pub mod disruption;
pub mod endpoint_slice;
pub mod endpoints;
pub mod garbage_collector;
pub mod history;
pub mod informers;
pub mod job;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod pod_gc;
pub mod replica_set;
pub mod replication_controller;
pub mod resource_quota;
pub mod root_ca_cert_publisher;
pub mod service_account;
pub mod stateful_set;

/// The Event recorder of the controller `component` (`replicaset-controller`, ...), writing
/// on the current tokio runtime.
pub fn recorder(client: &kube::Client, component: &str) -> skiff_api::events::Recorder {
    skiff_api::events::Recorder::start(
        client.clone(),
        skiff_api::events::Reporter {
            component: component.to_owned(),
            host: None,
            instance: String::from("skiff-master"),
        },
    )
}

/// The settings of a kube-runtime controller that reconciles at most `syncs` objects at once,
/// as kube-controller-manager's `--concurrent-*-syncs` flags bound each controller's workers
/// (kube-runtime's own default is no bound).
pub fn concurrent_syncs(syncs: u16) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(syncs)
}

/// Drives a kube-runtime controller's stream of reconcile results until it ends or
/// `shutdown` resolves. Failed reconciles are retried by the controller's error policy (which
/// logs them); here they are only traced.
pub async fn drive<T, E: std::fmt::Display>(
    name: &str,
    results: impl futures::Stream<Item = Result<T, E>>,
    shutdown: impl Future<Output = ()>,
) {
    let results = futures::StreamExt::for_each(results, |result| async move {
        if let Err(err) = result {
            tracing::debug!("{name} reconcile: {err}");
        }
    });
    tokio::select! {
        () = results => {}
        () = shutdown => {}
    }
}
