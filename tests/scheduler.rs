//! End-to-end tests of the scheduler: a real `skiff-master` (as `cargo xtask run` starts it,
//! scheduler included) with Node objects of different sizes and no agents, driven through the
//! API with the `kube` crate and kubectl. Each test checks at the end that no node is
//! over-committed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use skiff::master::{Master, MasterOptions};
use skiff_api::quantity::quantity_nanos;

/// How long a pod may take to be bound (or to be reported unschedulable).
const WAIT: Duration = Duration::from_secs(30);

/// A master with the scheduler and no controllers (as Kubernetes' scheduler integration
/// tests run): the hand-made nodes here have no agent, so node lifecycle would taint them.
fn master(extra_args: &[&str]) -> Master {
    Master::start(MasterOptions {
        extra_args: ["--controllers="]
            .iter()
            .chain(extra_args)
            .map(|a| a.to_string())
            .collect(),
        ..Default::default()
    })
    .expect("starting skiff-master")
}

/// A Ready node with `cpu` CPUs and `gib` GiB, as a kubelet would report it.
fn node(name: &str, cpu: u32, gib: u32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": cpu.to_string(), "memory": format!("{gib}Gi"), "pods": "110"},
            "allocatable": {"cpu": cpu.to_string(), "memory": format!("{gib}Gi"), "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    })
}

fn pod(name: &str, cpu: &str, memory: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
    })
}

async fn create_node(client: &kube::Client, node: Value) {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(node).expect("node object");
    api.create(&PostParams::default(), &node)
        .await
        .expect("creating a node");
}

async fn create_pod(client: &kube::Client, pod: Value) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(pod).expect("pod object");
    api.create(&PostParams::default(), &pod)
        .await
        .expect("creating a pod");
}

/// Waits until `pod` is bound and returns its node.
async fn bound_node(client: &kube::Client, pod: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + WAIT;
    loop {
        let p = api.get(pod).await.expect("reading the pod");
        if let Some(node) = p.spec.and_then(|s| s.node_name) {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "pod {pod} not bound after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `pod` shows PodScheduled=False and returns (reason, message).
async fn unschedulable_condition(client: &kube::Client, pod: &str) -> (String, String) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + WAIT;
    loop {
        let p = api.get(pod).await.expect("reading the pod");
        let condition = p
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        if let Some(c) = condition {
            assert!(
                p.spec.and_then(|s| s.node_name).is_none(),
                "an unschedulable pod is not bound"
            );
            return (c.reason.unwrap_or_default(), c.message.unwrap_or_default());
        }
        assert!(
            Instant::now() < deadline,
            "pod {pod} has no PodScheduled=False after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node's allocatable is at least what the pods bound to it request.
async fn assert_no_node_overcommitted(client: &kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let mut used: BTreeMap<String, (i128, i128, i128)> = BTreeMap::new();
    for p in pods.list(&ListParams::default()).await.expect("pods").items {
        let Some(spec) = p.spec else { continue };
        let Some(node) = spec.node_name else { continue };
        let entry = used.entry(node).or_default();
        entry.2 += 1;
        for c in &spec.containers {
            let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            for (name, q) in requests.into_iter().flatten() {
                let n = quantity_nanos(&q.0).expect("stored quantities parse");
                match name.as_str() {
                    "cpu" => entry.0 += n,
                    "memory" => entry.1 += n,
                    _ => {}
                }
            }
        }
    }
    for n in nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
    {
        let name = n.metadata.name.unwrap_or_default();
        let alloc = n.status.and_then(|s| s.allocatable).unwrap_or_default();
        let get = |r: &str| {
            alloc
                .get(r)
                .map_or(0, |q| quantity_nanos(&q.0).unwrap_or(0))
        };
        let (cpu, memory, count) = used.get(&name).copied().unwrap_or_default();
        assert!(cpu <= get("cpu"), "node {name}: cpu over-committed");
        assert!(
            memory <= get("memory"),
            "node {name}: memory over-committed"
        );
        assert!(
            count * 1_000_000_000 <= get("pods"),
            "node {name}: too many pods"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_replicas_of_a_service_spread_two_per_node() {
    let master = master(&[]);
    let client = master.kube_client().await.expect("kube client");
    create_node(&client, node("small", 2, 4)).await;
    create_node(&client, node("medium", 4, 8)).await;
    create_node(&client, node("big", 16, 32)).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .expect("service object");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("creating the service");
    for i in 0..6 {
        let mut p = pod(&format!("web-{i}"), "100m", "128Mi");
        p["metadata"]["labels"] = json!({"app": "web"});
        create_pod(&client, p).await;
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        *per_node
            .entry(bound_node(&client, &format!("web-{i}")).await)
            .or_default() += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([
            ("big".to_string(), 2),
            ("medium".to_string(), 2),
            ("small".to_string(), 2)
        ]),
        "replicas of one Service spread over every node, even unequal ones"
    );
    assert_no_node_overcommitted(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_only_the_biggest_node_fits_goes_there() {
    let master = master(&[]);
    let client = master.kube_client().await.expect("kube client");
    create_node(&client, node("small", 2, 4)).await;
    create_node(&client, node("medium", 4, 8)).await;
    create_node(&client, node("big", 8, 16)).await;
    create_pod(&client, pod("wide", "6", "1Gi")).await;
    create_pod(&client, pod("tall", "500m", "12Gi")).await;
    assert_eq!(bound_node(&client, "wide").await, "big");
    assert_eq!(bound_node(&client, "tall").await, "big");
    assert_no_node_overcommitted(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tainted_node_receives_only_tolerating_pods() {
    let master = master(&[]);
    let client = master.kube_client().await.expect("kube client");
    create_node(&client, node("plain", 4, 8)).await;
    // The tainted node is far roomier: without the taint it would take every pod.
    let mut tainted = node("dedicated", 64, 256);
    tainted["spec"] =
        json!({"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]});
    create_node(&client, tainted).await;
    for i in 0..5 {
        create_pod(&client, pod(&format!("plain-{i}"), "100m", "64Mi")).await;
    }
    let mut tolerating = pod("tolerating", "100m", "64Mi");
    tolerating["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]);
    create_pod(&client, tolerating).await;
    for i in 0..5 {
        assert_eq!(bound_node(&client, &format!("plain-{i}")).await, "plain");
    }
    assert_eq!(bound_node(&client, "tolerating").await, "dedicated");
    assert_no_node_overcommitted(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_too_big_for_every_node_waits_until_a_big_enough_node_joins() {
    let master = master(&[]);
    let client = master.kube_client().await.expect("kube client");
    create_node(&client, node("small", 2, 4)).await;
    create_node(&client, node("medium", 4, 8)).await;
    create_pod(&client, pod("huge", "12", "1Gi")).await;

    let (reason, message) = unschedulable_condition(&client, "huge").await;
    assert_eq!(reason, "Unschedulable");
    assert_eq!(message, "0/2 nodes are available: 2 Insufficient cpu.");

    // What a user sees: the condition and the FailedScheduling event.
    let deadline = Instant::now() + WAIT;
    loop {
        let out = master.kubectl(&["describe", "pod", "huge"]);
        assert!(out.success(), "{out}");
        let shown = out.stdout.contains("PodScheduled   False")
            && out.stdout.lines().any(|l| {
                l.contains("FailedScheduling")
                    && l.contains("default-scheduler")
                    && l.contains("0/2 nodes are available: 2 Insufficient cpu.")
            });
        if shown {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "describe does not show it:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = master.kubectl(&["get", "pod", "huge", "--no-headers"]);
    assert!(out.stdout.contains("Pending"), "{out}");

    // A big enough node joins: the pod is retried and lands there.
    create_node(&client, node("big", 16, 32)).await;
    assert_eq!(bound_node(&client, "huge").await, "big");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let bound = pods.get("huge").await.expect("pod");
    let scheduled = bound
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")
        .expect("PodScheduled condition");
    assert_eq!(scheduled.status, "True");

    // And the Scheduled event says where.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + WAIT;
    loop {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=huge"))
            .await
            .expect("events");
        if list.items.iter().any(|e| {
            e.reason.as_deref() == Some("Scheduled")
                && e.message.as_deref() == Some("Successfully assigned default/huge to big")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "no Scheduled event: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_node_overcommitted(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_fill_nodes_without_over_committing_them() {
    let master = master(&[]);
    let client = master.kube_client().await.expect("kube client");
    create_node(&client, node("a", 2, 4)).await;
    create_node(&client, node("b", 3, 4)).await;
    // 5 CPUs in all: ten 500m pods fit, the rest wait.
    for i in 0..14 {
        create_pod(&client, pod(&format!("p-{i}"), "500m", "256Mi")).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + WAIT;
    loop {
        let list = pods.list(&ListParams::default()).await.expect("pods").items;
        let bound = list
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .count();
        let waiting = list
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.type_ == "PodScheduled"
                                && c.status == "False"
                                && c.message.as_deref()
                                    == Some("0/2 nodes are available: 2 Insufficient cpu.")
                        })
                    })
            })
            .count();
        if bound == 10 && waiting == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{bound} bound, {waiting} unschedulable"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_node_overcommitted(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_missing_or_partial_status_are_not_ready() {
    let master = master(&[]);
    let client = master.kube_client().await.expect("kube client");
    create_node(
        &client,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bare"}}),
    )
    .await;
    create_node(
        &client,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "partial"},
            "status": {"capacity": {"cpu": "8"}}}),
    )
    .await;
    let mut down = node("down", 8, 8);
    down["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    create_node(&client, down).await;
    create_pod(&client, pod("waiting", "100m", "64Mi")).await;
    let (reason, message) = unschedulable_condition(&client, "waiting").await;
    assert_eq!(reason, "Unschedulable");
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
    );
    // The scheduler survived them: a Ready node gets the pod.
    create_node(&client, node("ready", 2, 4)).await;
    assert_eq!(bound_node(&client, "waiting").await, "ready");
    assert_no_node_overcommitted(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_can_be_turned_off() {
    let master = master(&["--scheduler=false"]);
    let client = master.kube_client().await.expect("kube client");
    create_node(&client, node("a", 4, 8)).await;
    create_pod(&client, pod("unscheduled", "100m", "64Mi")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = pods.get("unscheduled").await.expect("pod");
    assert!(p.spec.and_then(|s| s.node_name).is_none());
    assert!(
        p.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .is_empty(),
        "nobody wrote a PodScheduled condition"
    );
}
