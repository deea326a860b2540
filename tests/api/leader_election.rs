//! Two masters on one etcd with `--leader-elect`: both serve the API, the scheduler and the
//! controllers run on the one that holds `kube-system/kube-controller-manager`. Killed with
//! SIGKILL, the leader's Lease runs out and the other master takes over; pods created during
//! the handover are scheduled and a ReplicaSet makes no pod twice. Stopped cleanly, a leader
//! gives its Lease up and the next master leads at once. The `kubernetes` and `kube-dns`
//! Endpoints name every live master.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use skiff::etcd::Etcd;
use skiff::master::{Master, MasterOptions};

/// The election's Lease.
const LEASE: &str = "kube-controller-manager";

/// The Lease's holder and transitions.
async fn holder(client: &kube::Client) -> (String, i32) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let spec = leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec);
    spec.map(|spec| {
        (
            spec.holder_identity.unwrap_or_default(),
            spec.lease_transitions.unwrap_or(0),
        )
    })
    .unwrap_or_default()
}

/// Waits until one of `masters` holds the Lease and returns its index and identity.
async fn wait_leader(client: &kube::Client, masters: &[&Master], within: Duration) -> usize {
    let start = Instant::now();
    loop {
        let (identity, _) = holder(client).await;
        // Each candidate logs its own identity ("waiting to lead").
        if !identity.is_empty()
            && let Some(index) = masters.iter().position(|master| {
                std::fs::read_to_string(master.log_path())
                    .is_ok_and(|log| log.contains(&format!("identity={identity}")))
            })
        {
            return index;
        }
        assert!(
            start.elapsed() < within,
            "no master of these leads after {within:?} (holder {identity:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pods of ReplicaSet `web` and whether each is bound.
async fn web_pods(client: &kube::Client) -> Vec<(String, bool)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .map(|pod| {
            let bound = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some();
            (pod.metadata.name.unwrap_or_default(), bound)
        })
        .collect()
}

/// Waits until ReplicaSet `web` has `count` pods, all bound.
async fn wait_web_pods(client: &kube::Client, count: usize) {
    let start = Instant::now();
    loop {
        let pods = web_pods(client).await;
        if pods.len() == count && pods.iter().all(|(_, bound)| *bound) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "ReplicaSet web: want {count} bound pods, have {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ports Endpoints `namespace/name` name (for `kube-dns`, its UDP ports), sorted.
async fn endpoint_ports(client: &kube::Client, namespace: &str, name: &str) -> Vec<i32> {
    let endpoints: Api<k8s_openapi::api::core::v1::Endpoints> =
        Api::namespaced(client.clone(), namespace);
    let mut ports: Vec<i32> = endpoints
        .get(name)
        .await
        .ok()
        .and_then(|e| e.subsets)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|subset| subset.ports.unwrap_or_default())
        .filter(|port| port.name.as_deref() != Some("dns-tcp"))
        .map(|port| port.port)
        .collect();
    ports.sort();
    ports
}

/// Waits until the `kubernetes` Endpoints name exactly the ports of `masters`, and the
/// `kube-dns` Endpoints as many DNS servers.
async fn wait_kubernetes_endpoints(client: &kube::Client, masters: &[&Master]) {
    let mut want: Vec<i32> = masters
        .iter()
        .map(|m| {
            m.server_url()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port")
        })
        .collect();
    want.sort();
    let start = Instant::now();
    loop {
        let have = endpoint_ports(client, "default", "kubernetes").await;
        // Each master runs a cluster DNS of its own (on a port of its own here).
        let dns = endpoint_ports(client, "kube-system", "kube-dns").await;
        if have == want && dns.len() == want.len() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the kubernetes Endpoints name {have:?}, not {want:?}; kube-dns {dns:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Copies the first master's credentials (CA, serving certificate, keys, admin token) into
/// another state directory, as the masters of one cluster share them.
fn share_credentials(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("pki")).expect("pki dir");
    for entry in std::fs::read_dir(from.join("pki")).expect("the first master's pki") {
        let entry = entry.expect("pki entry");
        std::fs::copy(entry.path(), to.join("pki").join(entry.file_name())).expect("copy");
    }
    std::fs::copy(from.join("token"), to.join("token")).expect("copy the admin token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_master_leads_the_controllers_and_another_takes_over_when_it_dies() {
    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .expect("task")
        .expect("starting etcd");
    let dirs = [(); 2].map(|()| tempfile::tempdir().expect("state dir"));
    let options = |dir: &Path| MasterOptions {
        state_dir: Some(dir.to_owned()),
        etcd_endpoints: vec![etcd.endpoint()],
        extra_args: ["--leader-elect", "--node-monitor-grace-period=5m"]
            .map(String::from)
            .to_vec(),
    };
    let first = Master::start(options(dirs[0].path())).expect("the first master");
    share_credentials(dirs[0].path(), dirs[1].path());
    let second = Master::start(options(dirs[1].path())).expect("the second master");
    let mut masters = [first, second];
    let client = masters[1].kube_client().await.expect("client");
    let leader = wait_leader(
        &client,
        &[&masters[0], &masters[1]],
        Duration::from_secs(30),
    )
    .await;
    let survivor = 1 - leader;
    let client = masters[survivor].kube_client().await.expect("client");
    // Pods reach either master through the kubernetes Service.
    wait_kubernetes_endpoints(&client, &[&masters[0], &masters[1]]).await;

    // Through the master that does not lead: the leader's scheduler and controllers act.
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "status": {
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }))
    .expect("node");
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("create the node");
    let replica_set = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: registry.local/app:1}]
"#;
    let out = masters[survivor].kubectl_with_stdin(&["apply", "-f", "-"], replica_set);
    assert!(out.success(), "{out}");
    wait_web_pods(&client, 3).await;

    let (old_identity, transitions) = holder(&client).await;
    tokio::task::block_in_place(|| masters[leader].kill9());
    let killed = Instant::now();
    // During the handover: a scale-up and a pod of its own, both waiting for the new leader.
    let out = masters[survivor].kubectl(&["scale", "rs/web", "--replicas=5"]);
    assert!(out.success(), "{out}");
    let out = masters[survivor].kubectl(&["run", "during", "--image=registry.local/app:1"]);
    assert!(out.success(), "{out}");
    assert_eq!(
        wait_leader(&client, &[&masters[survivor]], Duration::from_secs(25)).await,
        0
    );
    let takeover = killed.elapsed();
    let (new_identity, new_transitions) = holder(&client).await;
    assert_ne!(new_identity, old_identity);
    assert_eq!(new_transitions, transitions + 1);
    // The Lease lasts 15 s from the last renewal the survivor saw, renewals come every 2 s.
    assert!(
        takeover <= Duration::from_secs(18),
        "took over {takeover:?} after the leader died"
    );
    wait_web_pods(&client, 5).await;
    let during =
        masters[survivor].kubectl(&["get", "pod", "during", "-o", "jsonpath={.spec.nodeName}"]);
    let start = Instant::now();
    let mut during = during;
    while during.stdout.trim() != "n1" {
        assert!(start.elapsed() < Duration::from_secs(30), "{during}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        during =
            masters[survivor].kubectl(&["get", "pod", "during", "-o", "jsonpath={.spec.nodeName}"]);
    }
    // Nothing made twice: still five after the new leader's ReplicaSet controller settled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(web_pods(&client).await.len(), 5);
    eprintln!("the survivor took over {takeover:?} after the leader was killed");
    // The dead master's lease runs out: the kubernetes Service leads to the survivor only.
    wait_kubernetes_endpoints(&client, &[&masters[survivor]]).await;

    // The killed master comes back as a candidate; the leader stopped cleanly gives its Lease
    // up, so the candidate leads within a retry period, not a Lease duration.
    tokio::task::block_in_place(|| masters[leader].restart()).expect("restart");
    let client = masters[leader].kube_client().await.expect("client");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        holder(&client).await.0,
        new_identity,
        "the lead moved by itself"
    );
    tokio::task::block_in_place(|| masters[survivor].stop());
    let stopped = Instant::now();
    wait_leader(&client, &[&masters[leader]], Duration::from_secs(10)).await;
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "took over {:?} after a clean stop",
        stopped.elapsed()
    );
    drop(etcd);
}

/// A leader whose Lease someone else takes (here a user writing another holder into it, as a
/// master that saw it expire during a long pause would) stops its controllers at its next
/// renewal, before any of them acts again: it never works beside another leader. The API
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_loses_its_lease_stops_its_controllers_at_once() {
    let master = Master::start(MasterOptions {
        extra_args: ["--leader-elect", "--leader-elect-retry-period=1s"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .expect("master");
    let client = master.kube_client().await.expect("client");
    wait_leader(&client, &[&master], Duration::from_secs(30)).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let mut lease = leases.get(LEASE).await.expect("the election Lease");
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some("intruder".into());
    spec.lease_duration_seconds = Some(3600);
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::chrono::Utc::now(),
    ));
    leases
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .expect("another holder");
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(master.log_path()).unwrap_or_default();
        if log.contains("lost the lead") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the master did not notice it lost the lead:\n{}",
            master.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its controllers are stopped: a ReplicaSet made now gets no pods.
    let replica_sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), "default");
    let replica_set = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }))
    .expect("replica set");
    replica_sets
        .create(&PostParams::default(), &replica_set)
        .await
        .expect("the API still serves");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        web_pods(&client).await.is_empty(),
        "a master that lost its Lease still made pods"
    );
    assert_eq!(holder(&client).await.0, "intruder");
}
