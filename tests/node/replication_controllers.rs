//! ReplicationControllers end to end on two real agents, driven with the real kubectl: the
//! scheduler spreads an RC's replicas over the nodes, and a deleted pod is replaced.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use skiff::node::{NodeAgent, NodeOptions};
use skiff_node::images::BUSYBOX_IMAGE;

use super::Cluster;
use super::exec::build_busybox_image;

const WAIT: Duration = Duration::from_secs(90);

/// The RC's running, ready pods that are not being deleted: name → node.
fn ready_pods(cluster: &Cluster) -> BTreeMap<String, String> {
    let out = cluster.master.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=rc",
        "-o",
        "jsonpath={range .items[?(@.status.phase==\"Running\")]}{.metadata.name} {.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    assert!(out.success(), "{out}");
    out.stdout
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [name, node, "True"] => Some((name.to_owned(), node.to_owned())),
                _ => None,
            },
        )
        .collect()
}

/// Waits until `check` holds for the RC's ready pods; returns them.
async fn wait_pods(
    cluster: &Cluster,
    what: &str,
    check: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let pods = ready_pods(cluster);
        if check(&pods) {
            return pods;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {pods:?}\n{}",
            cluster.master.kubectl(&["get", "rc,pods", "-o", "wide"])
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_controller_spreads_over_the_nodes_and_replaces_a_deleted_pod() {
    build_busybox_image().await;
    let cluster = Cluster::start("t-rc-a", "10.244.250.0/24").await;
    let _b = NodeAgent::start(
        &cluster.master,
        NodeOptions::new("t-rc-b", "10.244.251.0/24"),
    )
    .expect("start the second skiff-node");
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: ReplicationController
metadata: {{name: rc}}
spec:
  replicas: 4
  selector: {{app: rc}}
  template:
    metadata: {{labels: {{app: rc}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, image: {BUSYBOX_IMAGE}, command: [sleep, "3600"]}}]
"#
    ));
    let spread = wait_pods(&cluster, "4 ready pods, 2 on each node", |pods| {
        let on = |node: &str| pods.values().filter(|n| *n == node).count();
        pods.len() == 4 && on("t-rc-a") == 2 && on("t-rc-b") == 2
    })
    .await;

    // A deleted pod is replaced: 4 ready again, the deleted one not among them.
    let victim = spread.keys().next().expect("a pod").clone();
    let out = cluster
        .master
        .kubectl(&["delete", "pod", &victim, "--wait=false"]);
    assert!(out.success(), "{out}");
    let replaced = wait_pods(&cluster, "the deleted pod replaced", |pods| {
        pods.len() == 4 && !pods.contains_key(&victim)
    })
    .await;
    let new: Vec<&String> = replaced
        .keys()
        .filter(|p| !spread.contains_key(*p))
        .collect();
    assert_eq!(new.len(), 1, "one new pod: {replaced:?}");
    let out = cluster.master.kubectl(&[
        "get",
        "rc",
        "rc",
        "-o",
        "jsonpath={.status.replicas} {.status.readyReplicas}",
    ]);
    assert_eq!(out.stdout.trim(), "4 4", "{out}");
}
