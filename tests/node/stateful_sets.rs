//! StatefulSets end to end: the statefulset controller in the master, its pods on a real
//! agent and Docker, driven with the real kubectl: three pods made in order with stable
//! names that the cluster DNS answers under the governing Service, a scale-down from the
//! highest ordinal, a rolling update held at a partition, and the StatefulSets the API server
//! refuses.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use skiff::master::MasterOptions;
use skiff::node::NodeOptions;
use skiff_node::images::BUSYBOX_IMAGE;

use super::Cluster;
use super::exec::build_busybox_image;

const WAIT: Duration = Duration::from_secs(90);

/// The set's pods: name → (revision label, Ready condition's transition time, creation time,
/// terminating).
fn pods(cluster: &Cluster) -> BTreeMap<String, (String, String, String, bool)> {
    let out = cluster.master.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.labels.controller-revision-hash} {.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}/{.status.conditions[?(@.type==\"Ready\")].status} {.metadata.creationTimestamp} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    assert!(out.success(), "{out}");
    out.stdout
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [name, revision, ready, created, rest @ ..] = words.as_slice() else {
                return None;
            };
            Some((
                (*name).to_owned(),
                (
                    (*revision).to_owned(),
                    (*ready).to_owned(),
                    (*created).to_owned(),
                    !rest.is_empty(),
                ),
            ))
        })
        .collect()
}

fn set_partition(cluster: &Cluster, partition: u32) {
    let patch = format!(
        r#"{{"spec": {{"updateStrategy": {{"rollingUpdate": {{"partition": {partition}}}}}}}}}"#
    );
    let out = cluster
        .master
        .kubectl(&["patch", "sts", "web", "-p", &patch]);
    assert!(out.success(), "{out}");
}

fn rollout_status(cluster: &Cluster, expected: &str) {
    let out = cluster
        .master
        .kubectl(&["rollout", "status", "sts/web", "--timeout=90s"]);
    assert!(
        out.success() && out.stdout.contains(expected),
        "{out}\n{}",
        cluster.master.kubectl(&["get", "sts,pods", "-o", "wide"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_set_starts_in_order_scales_down_from_the_top_and_rolls_out_to_a_partition() {
    build_busybox_image().await;
    // A Service range of its own: the cluster DNS behind its kube-dns ClusterIP is this
    // cluster's, whatever other tests' clusters on this machine program.
    let service_cidr = "10.100.249.0/24";
    let master = MasterOptions {
        extra_args: vec![format!("--service-cluster-ip-range={service_cidr}")],
        ..Default::default()
    };
    let mut node = NodeOptions::new("t-sts", "10.244.249.0/24");
    node.extra_args = vec![
        String::from("--proxy-mode=ebpf"),
        format!("--service-cluster-ip-range={service_cidr}"),
    ];
    let cluster = Cluster::start_with_master(master, node).await;

    // Refused: claims for storage this cluster does not have; nothing is stored.
    let out = cluster.master.kubectl_with_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: claims}}
spec:
  serviceName: claims
  selector: {{matchLabels: {{app: claims}}}}
  template:
    metadata: {{labels: {{app: claims}}}}
    spec:
      containers: [{{name: c, image: {BUSYBOX_IMAGE}}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
        ),
    );
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("spec.volumeClaimTemplates: Forbidden"),
        "{out}"
    );
    let out = cluster.master.kubectl(&["get", "sts", "claims"]);
    assert!(out.stderr.contains("NotFound"), "{out}");

    // Three pods, each made once the one before is ready, under a headless Service.
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{port: 80}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  serviceName: web
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: {BUSYBOX_IMAGE}
        command: [sleep, "3600"]
        env: [{{name: VERSION, value: "1"}}]
"#
    ));
    rollout_status(
        &cluster,
        "partitioned roll out complete: 3 new pods have been updated",
    );
    let first = pods(&cluster);
    // kube-rs reads the same, typed.
    let sets: kube::Api<StatefulSet> = kube::Api::namespaced(cluster.client.clone(), "default");
    let web = sets
        .get("web")
        .await
        .expect("kube-rs reads the StatefulSet");
    let status = web.status.expect("status");
    assert_eq!((status.replicas, status.ready_replicas), (3, Some(3)));
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["web-0", "web-1", "web-2"],
        "{first:?}"
    );
    for (before, after) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let ready_at = first[before].1.trim_end_matches("/True");
        let created_at = &first[after].2;
        assert!(
            created_at.as_str() >= ready_at,
            "{after} made at {created_at}, before {before} was ready at {ready_at}"
        );
    }

    // Each pod has its own name in the cluster DNS, and knows it.
    let out = cluster
        .master
        .kubectl(&["get", "pod", "web-0", "-o", "jsonpath={.status.podIP}"]);
    let web0_ip = out.stdout.trim().to_owned();
    assert!(!web0_ip.is_empty(), "{out}");
    let deadline = Instant::now() + WAIT;
    loop {
        let out = cluster.master.kubectl(&[
            "exec",
            "web-1",
            "--",
            "nslookup",
            "web-0.web.default.svc.cluster.local",
        ]);
        if out.success() && out.stdout.contains(&web0_ip) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web-0.web does not resolve: {out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = cluster.master.kubectl(&["exec", "web-2", "--", "hostname"]);
    assert_eq!(out.stdout.trim(), "web-2", "{out}");

    // Scaled to 1: web-2 goes before web-1 is touched.
    let out = cluster
        .master
        .kubectl(&["scale", "sts", "web", "--replicas=1"]);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + WAIT;
    loop {
        let now = pods(&cluster);
        let web1_going = now.get("web-1").is_none_or(|p| p.3);
        assert!(
            !web1_going || !now.contains_key("web-2"),
            "web-1 goes while web-2 is still there: {now:?}"
        );
        if now.keys().eq(["web-0"].iter()) {
            break;
        }
        assert!(Instant::now() < deadline, "not scaled down: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back to 3, then a rolling update held at partition 2 replaces web-2 only.
    let out = cluster
        .master
        .kubectl(&["scale", "sts", "web", "--replicas=3"]);
    assert!(out.success(), "{out}");
    rollout_status(
        &cluster,
        "partitioned roll out complete: 3 new pods have been updated",
    );
    let before = pods(&cluster);
    set_partition(&cluster, 2);
    let out = cluster
        .master
        .kubectl(&["set", "env", "sts/web", "VERSION=2"]);
    assert!(out.success(), "{out}");
    rollout_status(
        &cluster,
        "partitioned roll out complete: 1 new pods have been updated",
    );
    let after = pods(&cluster);
    assert_eq!(after["web-0"].0, before["web-0"].0, "{after:?}");
    assert_eq!(after["web-1"].0, before["web-1"].0, "{after:?}");
    assert_ne!(after["web-2"].0, before["web-2"].0, "{after:?}");
    let out = cluster
        .master
        .kubectl(&["exec", "web-2", "--", "sh", "-c", "echo $VERSION"]);
    assert_eq!(out.stdout.trim(), "2", "{out}");
    let out = cluster
        .master
        .kubectl(&["exec", "web-0", "--", "sh", "-c", "echo $VERSION"]);
    assert_eq!(out.stdout.trim(), "1", "{out}");
    let out = cluster.master.kubectl(&[
        "get",
        "sts",
        "web",
        "-o",
        "jsonpath={.status.currentRevision} {.status.updateRevision} {.status.updatedReplicas}",
    ]);
    let status: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(status.len(), 3, "{out}");
    assert_eq!(status[0], before["web-0"].0, "{out}");
    assert_eq!(status[1], after["web-2"].0, "{out}");
    assert_eq!(status[2], "1", "{out}");

    // The partition lowered to 0: the rest follow; an undo brings the first template back,
    // as revision 3, and `rollout history` shows both templates.
    set_partition(&cluster, 0);
    rollout_status(
        &cluster,
        "partitioned roll out complete: 3 new pods have been updated",
    );
    let out = cluster
        .master
        .kubectl(&["rollout", "history", "sts/web", "--revision=1"]);
    let version = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("VERSION:"))
        .map(|l| l.trim_start().trim_start_matches("VERSION:").trim());
    assert_eq!(version, Some("1"), "{out}");
    let out = cluster.master.kubectl(&["rollout", "undo", "sts/web"]);
    assert!(out.success(), "{out}");
    rollout_status(
        &cluster,
        "partitioned roll out complete: 3 new pods have been updated",
    );
    for pod in ["web-0", "web-1", "web-2"] {
        let out = cluster
            .master
            .kubectl(&["exec", pod, "--", "sh", "-c", "echo $VERSION"]);
        assert_eq!(out.stdout.trim(), "1", "{pod}: {out}");
    }
    assert_eq!(cluster.rollout_revisions("sts/web"), ["2", "3"]);
}
