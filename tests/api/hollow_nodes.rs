//! Hollow nodes (`skiff-node --hollow N`) against the real master with its scheduler and
//! controllers: 1,000 register and stay Ready, a Deployment of 5,000 replicas over them is
//! Running (every pod bound, with an IP of its node's podCIDR, no node over its pod
//! capacity) and is deleted cleanly. A count the machine's memory cannot hold is refused
//! before anything is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use skiff::hollow::HollowNodes;
use skiff::master::{Master, MasterOptions};

const NODES: u32 = 1_000;
const REPLICAS: i32 = 5_000;

/// Waits until `check` says done, with `what` in the failure.
async fn wait_for<F: AsyncFn() -> Result<(), String>>(what: &str, within: Duration, check: F) {
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(state) => assert!(
                start.elapsed() < within,
                "{what}: not within {within:?}; {state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The hollow Nodes: name to (Ready, podCIDR).
async fn hollow_nodes(client: &kube::Client) -> BTreeMap<String, (bool, Option<Ipv4Net>)> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .list(&ListParams::default().labels("skiff.dev/hollow=true"))
        .await
        .expect("list nodes")
        .items
        .into_iter()
        .map(|node| {
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let cidr = node
                .spec
                .and_then(|s| s.pod_cidr)
                .and_then(|c| c.parse().ok());
            (node.metadata.name.unwrap_or_default(), (ready, cidr))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_hollow_nodes_run_a_deployment_of_five_thousand_replicas() {
    let master = Master::start(MasterOptions {
        // A /26 per node: 1,000 nodes need more than 10.244.0.0/16's 256 /24s.
        extra_args: vec![
            "--cluster-cidr=10.128.0.0/12".into(),
            "--node-cidr-mask-size=26".into(),
        ],
        ..Default::default()
    })
    .expect("starting skiff-master");
    let mut hollow = HollowNodes::start(&master, "hollow", NODES, &[]).expect("hollow nodes");
    hollow
        .wait_registered(Duration::from_secs(180))
        .expect("registered");
    let client = master.kube_client().await.expect("client");
    wait_for(
        "1,000 Ready hollow nodes with a pod CIDR",
        Duration::from_secs(120),
        async || {
            let nodes = hollow_nodes(&client).await;
            let ready = nodes
                .values()
                .filter(|(ready, cidr)| *ready && cidr.is_some())
                .count();
            if nodes.len() == NODES as usize && ready == nodes.len() {
                Ok(())
            } else {
                Err(format!(
                    "{} nodes, {ready} Ready with a pod CIDR",
                    nodes.len()
                ))
            }
        },
    )
    .await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hollow-web"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "hollow-web"}},
            "template": {
                "metadata": {"labels": {"app": "hollow-web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }))
    .expect("deployment");
    let started = Instant::now();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    wait_for(
        "5,000 ready replicas",
        Duration::from_secs(240),
        async || {
            let status = deployments
                .get("hollow-web")
                .await
                .map_err(|err| err.to_string())?
                .status
                .unwrap_or_default();
            match status.ready_replicas {
                Some(REPLICAS) => Ok(()),
                ready => Err(format!("{ready:?} ready replicas")),
            }
        },
    )
    .await;
    eprintln!(
        "5,000 replicas Running on hollow nodes after {:?}",
        started.elapsed()
    );

    // Every pod bound and Running, with an IP of its node's pod CIDR, no IP twice, and no
    // node over its 110 pods.
    let nodes = hollow_nodes(&client).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let listed = pods
        .list(&ListParams::default().labels("app=hollow-web"))
        .await
        .expect("list pods")
        .items;
    assert_eq!(listed.len(), REPLICAS as usize);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut ips = BTreeSet::new();
    for pod in &listed {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| panic!("pod {name} is not bound"));
        let status = pod.status.clone().unwrap_or_default();
        assert_eq!(status.phase.as_deref(), Some("Running"), "pod {name}");
        let ip: Ipv4Addr = status
            .pod_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("pod {name} has no IP"));
        let cidr = nodes
            .get(&node)
            .and_then(|(_, cidr)| *cidr)
            .unwrap_or_else(|| panic!("pod {name} is on {node}, not a hollow node with a CIDR"));
        assert!(
            cidr.contains(&ip),
            "pod {name}: {ip} is not in {node}'s {cidr}"
        );
        assert!(ips.insert(ip), "pod {name}: {ip} is given twice");
        *per_node.entry(node).or_default() += 1;
    }
    let busiest = per_node.values().max().copied().unwrap_or(0);
    assert!(busiest <= 110, "a node runs {busiest} pods");
    let report = hollow
        .wait_until(Duration::from_secs(10), |report| {
            report.get("pods_running") == Some(&f64::from(REPLICAS))
        })
        .expect("the simulator counts every pod Running");
    assert!(
        report
            .get("pods_max_per_node")
            .is_some_and(|most| *most <= 110.0),
        "{report:?}"
    );

    // Deleted: the hollow nodes finish every graceful deletion.
    deployments
        .delete("hollow-web", &DeleteParams::default())
        .await
        .expect("delete deployment");
    wait_for("every pod gone", Duration::from_secs(240), async || {
        let left = pods
            .list_metadata(&ListParams::default().labels("app=hollow-web"))
            .await
            .map_err(|err| err.to_string())?
            .items
            .len();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} pods left"))
        }
    })
    .await;
    // The simulator reports every second.
    let report = hollow
        .wait_until(Duration::from_secs(10), |report| {
            report.get("pods_running") == Some(&0.0)
                && report.get("pods_deleted") == Some(&f64::from(REPLICAS))
        })
        .expect("the simulator saw every pod go");
    // And the nodes stayed Ready throughout: renewals never failed.
    let nodes = hollow_nodes(&client).await;
    assert!(
        nodes.values().all(|(ready, _)| *ready),
        "a hollow node is not Ready"
    );
    assert_eq!(report.get("renew_errors"), Some(&0.0), "{report:?}");
    assert!(
        report
            .get("renewals")
            .is_some_and(|r| *r >= f64::from(NODES)),
        "{report:?}"
    );
}

#[test]
fn a_hollow_count_beyond_memory_is_refused_with_the_estimate() {
    let binary = skiff::binaries::binary("skiff-node", skiff::node::NODE_BIN_ENV).expect("binary");
    for (count, expected) in [("16000000", "would need about"), ("0", "at least one node")] {
        let out = Command::new(&binary)
            // No kubeconfig is read and nothing is sent: refused first.
            .args(["--kubeconfig", "/nonexistent", "--hollow", count])
            .output()
            .expect("run skiff-node");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--hollow {count} was accepted");
        assert!(stderr.contains(expected), "--hollow {count}: {stderr}");
    }
}
