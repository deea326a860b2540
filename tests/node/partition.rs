//! A black-hole partition between an agent and its master: the master runs in a network
//! namespace the test makes, reached by the test through one link and by the agent through
//! another, and every packet on the agent's link is dropped inside the namespace (no reset,
//! no ICMP error: the agent's connections just stop answering). The agent's heartbeat must
//! time out and retry with back-off, its pods keep running untouched, the node turns Unknown
//! on the master and Ready again once the link heals, and no pod is killed, restarted or
//! duplicated.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use skiff::master::{Master, MasterOptions};
use skiff::netns::NetworkNamespace;
use skiff::node::{self, NodeAgent, NodeOptions};
use skiff::{docker, images::WORKLOAD_IMAGE};

use super::{Cluster, build_workload_image, container_status, http_get, pod_ip, ready};

/// Seconds the master lets a node stay silent before its status turns Unknown.
const GRACE_SECONDS: u64 = 10;
/// How long the node status may take to follow the link (the grace period, the controller's
/// period and the agent's back-off and reconnects).
const FOLLOW: Duration = Duration::from_secs(90);

/// The Node's Ready condition status (`True`, `False`, `Unknown`).
async fn node_ready(nodes: &Api<Node>, name: &str) -> String {
    nodes
        .get(name)
        .await
        .ok()
        .and_then(|node| node.status?.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status)
        .unwrap_or_default()
}

/// Waits until the Node's Ready condition is `want`; panics with the agent's log.
async fn wait_node_ready(cluster: &Cluster, want: &str) -> Duration {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let start = Instant::now();
    loop {
        if node_ready(&nodes, cluster.agent.name()).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < FOLLOW,
            "node not Ready={want} after {FOLLOW:?}:\n{}",
            cluster.agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The pods of app `app`, by name.
async fn app_pods(cluster: &Cluster, app: &str) -> Vec<Pod> {
    let mut pods = cluster
        .pods()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods")
        .items;
    pods.sort_by_key(|pod| pod.name_any());
    pods
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_partition_makes_the_node_unknown_and_heals_without_touching_its_pods() {
    docker::ensure_dockerd().expect("Docker must run for the node tests");
    build_workload_image().await;
    // Dropped last, after the master in it has stopped.
    let mut namespace = NetworkNamespace::create("skiff-t-partition").expect("namespace");
    let test_link = namespace.link("skpta", 231).expect("the test's link");
    let agent_link = namespace.link("skptb", 232).expect("the agent's link");
    let master = Master::start_in_namespace(
        MasterOptions {
            extra_args: vec![
                format!("--bind-address={}", test_link.inside_ip),
                format!("--advertise-address={}", agent_link.inside_ip),
                format!("--node-monitor-grace-period={GRACE_SECONDS}s"),
                String::from("--node-monitor-period=1s"),
            ],
            ..MasterOptions::default()
        },
        &namespace,
    )
    .expect("start skiff-master in its namespace");
    let port = master
        .server_url()
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let mut join = node::join_options(&master).expect("a join token");
    join.server = format!("https://{}:{port}", agent_link.inside_ip);
    let mut opts = NodeOptions::new("t-partition", "10.244.210.0/24");
    opts.join = Some(join);
    opts.extra_args = ["--lease-seconds", "2"].map(String::from).to_vec();
    let agent = NodeAgent::start(&master, opts).expect("start skiff-node");
    let client = master.kube_client().await.expect("kube client");
    let cluster = Cluster {
        agent,
        master,
        client,
    };

    cluster.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: steady}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: steady}}}}
  template:
    metadata: {{labels: {{app: steady}}}}
    spec:
      containers:
      - name: app
        image: {WORKLOAD_IMAGE}
        args: [serve, "8080", /]
"#
    ));
    let deadline = Instant::now() + FOLLOW;
    let before = loop {
        let pods = app_pods(&cluster, "steady").await;
        if pods.len() == 2 && pods.iter().all(ready) {
            break pods;
        }
        assert!(Instant::now() < deadline, "the Deployment's pods never ran");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let names: Vec<String> = before.iter().map(|pod| pod.name_any()).collect();
    let uids: Vec<Option<String>> = before.iter().map(|pod| pod.uid()).collect();
    let containers: Vec<Vec<String>> = names.iter().map(|name| cluster.containers(name)).collect();
    let ips: Vec<String> = before.iter().map(pod_ip).collect();

    namespace.block(&agent_link).expect("cut the agent off");
    let cut_at = k8s_openapi::chrono::Utc::now();
    let unknown_after = wait_node_ready(&cluster, "Unknown").await;
    // The master marks the silent node's pods not Ready, as Kubernetes does ...
    let deadline = Instant::now() + FOLLOW;
    while app_pods(&cluster, "steady").await.iter().any(ready) {
        assert!(
            Instant::now() < deadline,
            "the unreachable node's pods stayed Ready"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // ... but nothing replaces them, and on the node they keep serving.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during: Vec<String> = app_pods(&cluster, "steady")
        .await
        .iter()
        .map(|pod| pod.name_any())
        .collect();
    assert_eq!(during, names, "pods were replaced during the partition");
    for ip in &ips {
        assert!(
            http_get(ip, 8080, "/healthz").is_some(),
            "a pod stopped serving during the partition"
        );
    }
    for (name, containers) in names.iter().zip(&containers) {
        assert_eq!(&cluster.containers(name), containers, "{name}'s containers");
    }
    let log = std::fs::read_to_string(cluster.agent.log_path()).expect("the agent's log");
    assert!(
        log.contains("renewing the node lease"),
        "the agent never noticed its renewals failing:\n{}",
        cluster.agent.log_tail()
    );

    namespace.unblock(&agent_link).expect("heal the link");
    let ready_after = wait_node_ready(&cluster, "True").await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let renewed = leases
        .get(cluster.agent.name())
        .await
        .expect("the node's Lease")
        .spec
        .and_then(|spec| spec.renew_time)
        .expect("a renew time");
    assert!(renewed.0 > cut_at, "no renewal after the link healed");
    eprintln!("node Unknown {unknown_after:?} after the cut, Ready {ready_after:?} after healing");

    // The same pods, never restarted, Ready again; the agent's pod watch is back too.
    let deadline = Instant::now() + FOLLOW;
    let after = loop {
        let pods = app_pods(&cluster, "steady").await;
        if pods.len() == 2 && pods.iter().all(ready) {
            break pods;
        }
        assert!(
            Instant::now() < deadline,
            "the pods did not turn Ready again: {:?}\n{}",
            pods.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
            cluster.agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        after.iter().map(|pod| pod.uid()).collect::<Vec<_>>(),
        uids,
        "pods were replaced"
    );
    for (pod, containers) in after.iter().zip(&containers) {
        assert_eq!(container_status(pod, "app").restart_count, 0);
        assert_eq!(&cluster.containers(&pod.name_any()), containers);
    }
    let out = cluster
        .master
        .kubectl(&["scale", "deployment/steady", "--replicas=3"]);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + FOLLOW;
    loop {
        let pods = app_pods(&cluster, "steady").await;
        if pods.len() == 3 && pods.iter().all(ready) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a pod created after the partition never ran:\n{}",
            cluster.agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let killing = cluster.master.kubectl(&[
        "get",
        "events",
        "--field-selector=reason=Killing",
        "-o",
        "name",
    ]);
    assert!(killing.success(), "{killing}");
    assert_eq!(killing.stdout.trim(), "", "a pod was killed");
}
