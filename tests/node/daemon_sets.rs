//! DaemonSets end to end: the daemonset controller in the master, its pods on real agents and
//! Docker, driven with the real kubectl: a pod on each node, one more on a node that joins,
//! a node selector, a rolling update and its undo with `kubectl rollout`, a cordoned node
//! keeping its daemon, and the DaemonSets the API server refuses.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use skiff::node::{NodeAgent, NodeOptions};
use skiff_node::images::BUSYBOX_IMAGE;

use super::Cluster;
use super::exec::build_busybox_image;

const WAIT: Duration = Duration::from_secs(90);

/// The DaemonSet's running pods: node name → (pod name, the `VERSION` env value).
fn pods_by_node(cluster: &Cluster, selector: &str) -> BTreeMap<String, (String, String)> {
    let out = cluster.master.kubectl(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={range .items[?(@.status.phase==\"Running\")]}{.spec.nodeName} {.metadata.name} {.spec.containers[0].env[0].value}{\"\\n\"}{end}",
    ]);
    assert!(out.success(), "{out}");
    out.stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let node = words.next()?.to_owned();
            let pod = words.next()?.to_owned();
            let version = words.next().unwrap_or_default().to_owned();
            Some((node, (pod, version)))
        })
        .collect()
}

/// Waits until the running pods of `selector` are on exactly `nodes`, none of them
/// terminating; returns them.
async fn wait_on_nodes(
    cluster: &Cluster,
    selector: &str,
    nodes: &[&str],
) -> BTreeMap<String, (String, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let pods = pods_by_node(cluster, selector);
        let all = cluster
            .master
            .kubectl(&["get", "pods", "-l", selector, "-o", "name"]);
        let count = all.stdout.lines().count();
        if pods.keys().map(String::as_str).eq(nodes.iter().copied()) && count == nodes.len() {
            return pods;
        }
        assert!(
            Instant::now() < deadline,
            "pods of {selector} not on {nodes:?}: {pods:?}\n{}",
            cluster.master.kubectl(&["get", "pods", "-o", "wide"])
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn rollout_status(cluster: &Cluster, ds: &str) {
    let out = cluster
        .master
        .kubectl(&["rollout", "status", &format!("ds/{ds}"), "--timeout=90s"]);
    assert!(
        out.success()
            && out
                .stdout
                .contains(&format!("daemon set \"{ds}\" successfully rolled out")),
        "{out}\n{}",
        cluster.master.kubectl(&["get", "ds,pods", "-o", "wide"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_runs_on_every_node_follows_joins_and_rolls_out_and_back() {
    build_busybox_image().await;
    let cluster = Cluster::start("t-ds-a", "10.244.246.0/24").await;
    let _b = NodeAgent::start(
        &cluster.master,
        NodeOptions::new("t-ds-b", "10.244.247.0/24"),
    )
    .expect("start the second skiff-node");

    // Refused: a selector that does not select the template's pods; nothing is stored.
    let out = cluster.master.kubectl_with_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: bad}}
spec:
  selector: {{matchLabels: {{app: other}}}}
  template:
    metadata: {{labels: {{app: bad}}}}
    spec:
      containers: [{{name: c, image: {BUSYBOX_IMAGE}}}]
"#
        ),
    );
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"bad\"}: `selector` does not match template `labels`"),
        "{out}"
    );
    let out = cluster.master.kubectl(&["get", "ds", "bad"]);
    assert!(out.stderr.contains("NotFound"), "{out}");

    cluster.apply(&format!(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: {BUSYBOX_IMAGE}
        command: [sleep, "3600"]
        env: [{{name: VERSION, value: "1"}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: edge}}
spec:
  selector: {{matchLabels: {{app: edge}}}}
  template:
    metadata: {{labels: {{app: edge}}}}
    spec:
      nodeSelector: {{role: edge}}
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, image: {BUSYBOX_IMAGE}, command: [sleep, "3600"]}}]
"#
    ));
    rollout_status(&cluster, "agent");
    let first = wait_on_nodes(&cluster, "app=agent", &["t-ds-a", "t-ds-b"]).await;
    // kube-rs reads the same, typed.
    let daemon_sets: kube::Api<DaemonSet> =
        kube::Api::namespaced(cluster.client.clone(), "default");
    let agent = daemon_sets
        .get("agent")
        .await
        .expect("kube-rs reads the DaemonSet");
    let status = agent.status.expect("status");
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.number_ready,
            status.updated_number_scheduled
        ),
        (2, 2, Some(2))
    );
    let out = cluster
        .master
        .kubectl(&["get", "ds", "agent", "--no-headers"]);
    let columns: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(
        columns.get(..7),
        Some(["agent", "2", "2", "2", "2", "2", "<none>"].as_slice()),
        "{out}"
    );
    // No node is labelled for the edge DaemonSet yet.
    let out = cluster.master.kubectl(&[
        "get",
        "ds",
        "edge",
        "-o",
        "jsonpath={.status.desiredNumberScheduled}",
    ]);
    assert_eq!(out.stdout, "0", "{out}");

    // A node that joins gets its pod; labelled, it gets the edge DaemonSet's too.
    let _c = NodeAgent::start(
        &cluster.master,
        NodeOptions::new("t-ds-c", "10.244.248.0/24"),
    )
    .expect("start the third skiff-node");
    let joined = wait_on_nodes(&cluster, "app=agent", &["t-ds-a", "t-ds-b", "t-ds-c"]).await;
    for node in ["t-ds-a", "t-ds-b"] {
        assert_eq!(joined[node], first[node], "the pods already there stay");
    }
    let out = cluster
        .master
        .kubectl(&["label", "node", "t-ds-c", "role=edge"]);
    assert!(out.success(), "{out}");
    wait_on_nodes(&cluster, "app=edge", &["t-ds-c"]).await;

    // A cordoned node keeps its daemon (daemon pods tolerate the unschedulable taint).
    let out = cluster.master.kubectl(&["cordon", "t-ds-b"]);
    assert!(out.success(), "{out}");

    // A rolling update replaces every pod, one node at a time (maxUnavailable 1).
    let out = cluster
        .master
        .kubectl(&["set", "env", "ds/agent", "VERSION=2"]);
    assert!(out.success(), "{out}");
    rollout_status(&cluster, "agent");
    let updated = wait_on_nodes(&cluster, "app=agent", &["t-ds-a", "t-ds-b", "t-ds-c"]).await;
    for (node, (pod, version)) in &updated {
        assert_eq!(version, "2", "{node}: {updated:?}");
        assert_ne!(pod, &joined[node].0, "{node}'s pod was replaced");
    }

    // The history has both templates; an undo goes back to the first, as revision 3.
    assert_eq!(cluster.rollout_revisions("ds/agent"), ["1", "2"]);
    let out = cluster.master.kubectl(&["rollout", "undo", "ds/agent"]);
    assert!(out.success(), "{out}");
    rollout_status(&cluster, "agent");
    let undone = wait_on_nodes(&cluster, "app=agent", &["t-ds-a", "t-ds-b", "t-ds-c"]).await;
    assert!(
        undone.values().all(|(_, version)| version == "1"),
        "{undone:?}"
    );
    assert_eq!(cluster.rollout_revisions("ds/agent"), ["2", "3"]);

    // Deleted, the DaemonSet takes its pods and revisions with it.
    let out = cluster
        .master
        .kubectl(&["delete", "ds", "agent", "edge", "--wait=true"]);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + WAIT;
    loop {
        let out = cluster.master.kubectl(&[
            "get",
            "pods,controllerrevisions",
            "-l",
            "app in (agent,edge)",
            "-o",
            "name",
        ]);
        if out.success() && out.stdout.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
