//! End-to-end tests of the master's controllers against a real `skiff-master` (as
//! `cargo xtask run` starts it), driven with kubectl and the `kube` crate.

use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use skiff::master::{Master, MasterOptions};

/// How long a controller may take to act.
const WAIT: Duration = Duration::from_secs(20);

fn node(name: &str, pod_cidr: Option<&str>) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": pod_cidr},
    }))
    .expect("node object")
}

/// Waits until the node has a pod CIDR and returns it.
async fn assigned(nodes: &Api<Node>, name: &str) -> Ipv4Net {
    let deadline = Instant::now() + WAIT;
    loop {
        let node = nodes.get(name).await.expect("get node");
        let spec = node.spec.unwrap_or_default();
        if let Some(cidr) = spec.pod_cidr.filter(|c| !c.is_empty()) {
            assert_eq!(spec.pod_cidrs, Some(vec![cidr.clone()]), "podCIDRs");
            return cidr.parse().expect("a CIDR");
        }
        assert!(Instant::now() < deadline, "node {name} got no pod CIDR");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_gets_its_own_pod_cidr_from_the_cluster_cidr() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let nodes: Api<Node> = Api::all(client);
    let cluster: Ipv4Net = "10.244.0.0/16".parse().expect("cidr");

    // A node that brings its own pod CIDR keeps it, and nobody else gets it.
    nodes
        .create(&PostParams::default(), &node("own", Some("10.244.0.0/24")))
        .await
        .expect("create");
    for name in ["a", "b", "c"] {
        nodes
            .create(&PostParams::default(), &node(name, None))
            .await
            .expect("create");
    }
    let mut seen = vec![assigned(&nodes, "own").await];
    for name in ["a", "b", "c"] {
        let cidr = assigned(&nodes, name).await;
        assert_eq!(cidr.prefix_len(), 24, "{cidr}");
        assert!(cluster.contains(&cidr), "{cidr} outside {cluster}");
        assert!(!seen.contains(&cidr), "{cidr} handed out twice: {seen:?}");
        seen.push(cidr);
    }
    assert_eq!(seen[0], "10.244.0.0/24".parse::<Ipv4Net>().expect("cidr"));

    // A deleted node's pod CIDR goes to the next node.
    let freed = seen[1];
    nodes
        .delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    let out = master.kubectl_with_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: d}\n",
    );
    assert!(out.success(), "{out}");
    assert_eq!(assigned(&nodes, "d").await, freed);
    let out = master.kubectl(&["get", "node", "d", "-o", "jsonpath={.spec.podCIDR}"]);
    assert_eq!(out.stdout.trim(), freed.to_string(), "{out}");
}
