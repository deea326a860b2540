//! End-to-end tests of the master's controllers against a real `skiff-master` (as
//! `cargo xtask run` starts it), driven with kubectl and the `kube` crate.

use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, Pod, ReplicationController, ResourceQuota, ServiceAccount,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
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

/// Waits until `check` holds for the pods `list` returns; returns them.
async fn wait_pods(
    pods: &Api<Pod>,
    selector: &str,
    what: &str,
    check: impl Fn(&[Pod]) -> bool,
) -> Vec<Pod> {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list pods")
            .items;
        let active: Vec<Pod> = list
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if check(&active) {
            return active;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: pods are {:?}",
            active.iter().map(|p| p.name_any()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ReplicaSet controller on its own (no nodes: its pods stay Pending): it creates the
/// pods of the template once each, owns them, replaces deleted ones, scales both ways, adopts
/// matching orphans (made before it, and made later: at once), and reports counts in the
/// status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_keeps_its_number_of_pods() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    // A matching pod made by hand before: the ReplicaSet adopts it and makes only 4 more.
    let out = master.kubectl(&[
        "run",
        "orphan",
        "--image=skiff/pause:1",
        "--labels=app=rs-test",
    ]);
    assert!(out.success(), "{out}");
    let out = master.kubectl_with_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs-test}
spec:
  replicas: 5
  selector: {matchLabels: {app: rs-test}}
  template:
    metadata: {labels: {app: rs-test}}
    spec:
      containers: [{name: app, image: "skiff/pause:1"}]
"#,
    );
    assert!(out.success(), "{out}");
    let rs = replica_sets.get("rs-test").await.expect("rs");
    let uid = rs.metadata.uid.clone().expect("uid");
    let owned_by_rs = |p: &Pod| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == uid && r.controller == Some(true) && r.kind == "ReplicaSet")
    };
    let five = wait_pods(&pods, "app=rs-test", "five owned pods", |p| {
        p.len() == 5 && p.iter().all(owned_by_rs)
    })
    .await;
    assert!(
        five.iter().any(|p| p.name_any() == "orphan"),
        "the orphan was adopted"
    );
    assert!(
        five.iter()
            .filter(|p| p.name_any() != "orphan")
            .all(|p| p.name_any().starts_with("rs-test-")
                && p.name_any().len() == "rs-test-".len() + 5),
        "pods are named <replicaset>-<random>"
    );
    // Not one more: the controller waits for its own creates to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = pods
        .list(&ListParams::default().labels("app=rs-test"))
        .await
        .expect("list")
        .items;
    assert_eq!(
        all.len(),
        5,
        "{:?}",
        all.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );

    // A deleted pod is replaced.
    let victim = five[0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .expect("delete");
    wait_pods(&pods, "app=rs-test", "a replacement", |p| {
        p.len() == 5 && p.iter().all(|p| p.name_any() != victim)
    })
    .await;

    // Scaled with kubectl (the scale subresource) down and up.
    let out = master.kubectl(&["scale", "replicaset", "rs-test", "--replicas=2"]);
    assert!(out.success(), "{out}");
    wait_pods(&pods, "app=rs-test", "two pods", |p| p.len() == 2).await;
    let out = master.kubectl(&["scale", "replicaset", "rs-test", "--replicas=3"]);
    assert!(out.success(), "{out}");
    wait_pods(&pods, "app=rs-test", "three pods", |p| p.len() == 3).await;

    // The status counts them (none is ready: there is no node).
    let deadline = Instant::now() + WAIT;
    loop {
        let status = replica_sets
            .get_status("rs-test")
            .await
            .expect("rs")
            .status
            .unwrap_or_default();
        if status.replicas == 3 && status.observed_generation == rs_generation(&replica_sets).await
        {
            assert_eq!(status.ready_replicas, Some(0));
            assert_eq!(status.available_replicas, Some(0));
            assert_eq!(status.fully_labeled_replicas, Some(3));
            break;
        }
        assert!(Instant::now() < deadline, "status: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = master.kubectl(&["get", "rs", "rs-test", "--no-headers"]);
    let columns: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(columns.get(1..4), Some(&["3", "3", "0"][..]), "{out}");

    // A matching orphan made now wakes the set at once (its periodic resync is 5 minutes
    // away): adopted, it is one too many, and the set is back to three pods it owns.
    let out = master.kubectl(&[
        "run",
        "late-orphan",
        "--image=skiff/pause:1",
        "--labels=app=rs-test",
    ]);
    assert!(out.success(), "{out}");
    wait_pods(
        &pods,
        "app=rs-test",
        "three owned pods after an orphan",
        |p| p.len() == 3 && p.iter().all(owned_by_rs),
    )
    .await;
}

async fn rs_generation(replica_sets: &Api<ReplicaSet>) -> Option<i64> {
    replica_sets
        .get("rs-test")
        .await
        .expect("rs")
        .metadata
        .generation
}

/// `kubectl create deployment` without nodes: a ReplicaSet `<name>-<pod-template-hash>` owned
/// by the Deployment, its pods carrying the hash label; scaling the Deployment scales it; a
/// new template makes a second ReplicaSet with the next revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_runs_its_pods_through_a_replica_set() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let out = master.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=skiff/pause:1",
        "--replicas=3",
    ]);
    assert!(out.success(), "{out}");
    let pods_of_web = wait_pods(&pods, "app=web", "three pods", |p| p.len() == 3).await;
    let deployment = deployments.get("web").await.expect("deployment");
    let owned: Vec<ReplicaSet> = replica_sets
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list")
        .items;
    assert_eq!(owned.len(), 1);
    let rs = &owned[0];
    let hash = rs
        .labels()
        .get("pod-template-hash")
        .cloned()
        .expect("hash label");
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert_eq!(
        rs.owner_references()[0].uid,
        deployment.metadata.uid.clone().expect("uid")
    );
    assert_eq!(
        rs.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    for pod in &pods_of_web {
        assert_eq!(pod.labels().get("pod-template-hash"), Some(&hash));
        assert!(
            pod.name_any().starts_with(&format!("web-{hash}-")),
            "{}",
            pod.name_any()
        );
    }

    let out = master.kubectl(&["scale", "deployment", "web", "--replicas=4"]);
    assert!(out.success(), "{out}");
    wait_pods(&pods, "app=web", "four pods", |p| p.len() == 4).await;

    // The status follows: four pods, all of the current template, none available yet.
    let deadline = Instant::now() + WAIT;
    loop {
        let d = deployments.get("web").await.expect("deployment");
        let status = d.status.clone().unwrap_or_default();
        if status.replicas == Some(4) && status.observed_generation == d.metadata.generation {
            assert_eq!(status.updated_replicas, Some(4));
            assert_eq!(status.unavailable_replicas, Some(4));
            let conditions = status.conditions.unwrap_or_default();
            let available = conditions
                .iter()
                .find(|c| c.type_ == "Available")
                .expect("Available");
            assert_eq!(available.status, "False");
            assert_eq!(
                available.reason.as_deref(),
                Some("MinimumReplicasUnavailable")
            );
            let progressing = conditions
                .iter()
                .find(|c| c.type_ == "Progressing")
                .expect("Progressing");
            assert_eq!(progressing.status, "True");
            break;
        }
        assert!(Instant::now() < deadline, "status: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A new template: a second ReplicaSet, revision 2. No pod is available (no node), so
    // the rollout goes as far as Kubernetes' does: the new one surges to 1 (25% of 4), an
    // unavailable old pod goes, the new one takes its place, and there it stops (old 3, new 2),
    // never asking for more than replicas + maxSurge (4 + 1) pods.
    let out = master.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "pause=skiff/test-workload:1",
    ]);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + WAIT;
    loop {
        let list = replica_sets
            .list(&ListParams::default().labels("app=web"))
            .await
            .expect("list")
            .items;
        let size = |revision: &str| {
            list.iter()
                .find(|rs| {
                    rs.annotations()
                        .get("deployment.kubernetes.io/revision")
                        .map(String::as_str)
                        == Some(revision)
                })
                .and_then(|rs| rs.spec.as_ref()?.replicas)
        };
        let asked: i32 = list
            .iter()
            .filter_map(|rs| rs.spec.as_ref()?.replicas)
            .sum();
        assert!(
            asked <= 5,
            "more than replicas + maxSurge asked for: {asked}"
        );
        if list.len() == 2 && size("1") == Some(3) && size("2") == Some(2) {
            break;
        }
        assert!(Instant::now() < deadline, "rollout: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = master.kubectl(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(
        out.stdout
            .contains(r#""deployment.kubernetes.io/revision":"2""#),
        "{out}"
    );
    let now = wait_pods(&pods, "app=web", "three old pods and two new", |p| {
        p.len() == 5
            && p.iter()
                .filter(|p| p.labels().get("pod-template-hash") != Some(&hash))
                .count()
                == 2
    })
    .await;
    assert!(
        now.iter()
            .filter(|p| p.labels().get("pod-template-hash") != Some(&hash))
            .all(|p| p.spec.as_ref().is_some_and(|s| {
                s.containers[0].image.as_deref() == Some("skiff/test-workload:1")
            }))
    );
    // Stalled, as Kubernetes would be: no available pod may go.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sizes: Vec<Option<i32>> = replica_sets
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list")
        .items
        .iter()
        .map(|rs| rs.spec.as_ref().and_then(|s| s.replicas))
        .collect();
    assert_eq!(sizes.iter().flatten().sum::<i32>(), 5, "{sizes:?}");
}

/// The `list` requests the master's own clients made, by resource, from `/metrics`.
async fn lists_by_resource(master: &Master) -> std::collections::BTreeMap<String, u64> {
    let metrics = master
        .http()
        .get(format!("{}/metrics", master.server_url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let mut lists = std::collections::BTreeMap::new();
    for line in metrics.lines() {
        let Some(labels) = line.strip_prefix("apiserver_request_total{verb=\"list\",resource=\"")
        else {
            continue;
        };
        let (resource, rest) = labels.split_once('"').expect("a resource label");
        let count: u64 = rest
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        *lists.entry(resource.to_string()).or_default() += count;
    }
    lists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_lists_and_watches_each_resource_once() {
    // Every component on: the scheduler, all controllers and the cluster DNS share one
    // informer per resource.
    // Each informer lists once, then watches; watch requests are counted only when they end,
    // so the lists count the watches.
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let expected = [
        "certificatesigningrequests",
        "clusterroles",
        "configmaps",
        "controllerrevisions",
        "cronjobs",
        "daemonsets",
        "deployments",
        "endpoints",
        "endpointslices",
        "jobs",
        "leases",
        "namespaces",
        "nodes",
        "poddisruptionbudgets",
        "pods",
        "replicasets",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "serviceaccounts",
        "services",
        "statefulsets",
    ];
    let deadline = Instant::now() + WAIT;
    let mut lists = lists_by_resource(&master).await;
    while lists.len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lists = lists_by_resource(&master).await;
    }
    // A second component listing late would show here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lists = lists_by_resource(&master).await;
    let once: std::collections::BTreeMap<String, u64> =
        expected.iter().map(|r| (r.to_string(), 1)).collect();
    assert_eq!(lists, once, "list requests by resource (one informer each)");
}

/// Polls `get` until it returns something, for at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut get: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = get().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The uid of the object `name`, if there is one.
async fn uid<K>(api: &Api<K>, name: &str) -> Option<String>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    api.get_opt(name)
        .await
        .expect("get")
        .and_then(|o| o.meta().uid.clone())
}

/// The CA certificate (PEM) in the kubeconfig the master wrote.
fn kubeconfig_ca(master: &Master) -> String {
    use base64::Engine;
    let text = std::fs::read_to_string(master.kubeconfig_path()).expect("reading kubeconfig");
    let config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    let data = config["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("certificate-authority-data");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64 CA");
    String::from_utf8(pem).expect("PEM text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_a_default_service_account_and_the_root_ca() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let ca = kubeconfig_ca(&master);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    // The namespaces the master starts with, and one made afterwards.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let team: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-a"}})).expect("namespace object");
    namespaces
        .create(&PostParams::default(), &team)
        .await
        .expect("create namespace");
    for ns in ["default", "kube-system", "team-a"] {
        let service_accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        eventually(&format!("the default ServiceAccount of {ns}"), || {
            let service_accounts = service_accounts.clone();
            async move { service_accounts.get_opt("default").await.expect("get") }
        })
        .await;
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let published = eventually(&format!("kube-root-ca.crt in {ns}"), || {
            let config_maps = config_maps.clone();
            async move { config_maps.get_opt("kube-root-ca.crt").await.expect("get") }
        })
        .await;
        let data = published.data.unwrap_or_default();
        assert_eq!(
            data.get("ca.crt"),
            Some(&ca),
            "ca.crt in {ns} is the cluster CA"
        );
        assert_eq!(data.len(), 1, "only ca.crt: {data:?}");
        let description = published
            .metadata
            .annotations
            .unwrap_or_default()
            .remove("kubernetes.io/description")
            .unwrap_or_default();
        assert!(
            description
                .starts_with("Contains a CA bundle that can be used to verify the kube-apiserver"),
            "{description}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_or_changed_namespace_defaults_are_put_back() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let ca = kubeconfig_ca(&master);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let team: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-b"}})).expect("namespace object");
    namespaces
        .create(&PostParams::default(), &team)
        .await
        .expect("create namespace");
    let service_accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-b");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "team-b");
    // Present once, then deleted: each comes back as a new object.
    let sa = eventually("the default ServiceAccount", || {
        uid(&service_accounts, "default")
    })
    .await;
    service_accounts
        .delete("default", &DeleteParams::default())
        .await
        .expect("delete ServiceAccount");
    eventually("the default ServiceAccount back", || async {
        uid(&service_accounts, "default").await.filter(|u| *u != sa)
    })
    .await;
    let cm = eventually("kube-root-ca.crt", || uid(&config_maps, "kube-root-ca.crt")).await;
    config_maps
        .delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .expect("delete ConfigMap");
    eventually("kube-root-ca.crt back", || async {
        uid(&config_maps, "kube-root-ca.crt")
            .await
            .filter(|u| *u != cm)
    })
    .await;

    // Changed data and a removed description are put back; other keys are dropped.
    let mut changed = config_maps.get("kube-root-ca.crt").await.expect("get");
    changed.data = Some(
        [("ca.crt", "forged"), ("extra", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    changed.metadata.annotations = None;
    config_maps
        .replace("kube-root-ca.crt", &PostParams::default(), &changed)
        .await
        .expect("replace");
    let restored = eventually("kube-root-ca.crt restored", || {
        let config_maps = config_maps.clone();
        let ca = ca.clone();
        async move {
            let cm = config_maps.get("kube-root-ca.crt").await.expect("get");
            let data = cm.data.clone().unwrap_or_default();
            (data.len() == 1 && data.get("ca.crt") == Some(&ca)).then_some(cm)
        }
    })
    .await;
    assert!(
        restored
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("kubernetes.io/description")
    );

    // A deleted namespace is not refilled while its contents go: nothing is left behind.
    namespaces
        .delete("team-b", &DeleteParams::default())
        .await
        .expect("delete namespace");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = |list: Vec<String>| list.into_iter().filter(|ns| ns == "team-b").count();
    let all_sas: Api<ServiceAccount> = Api::all(client.clone());
    let all_cms: Api<ConfigMap> = Api::all(client.clone());
    let sas = all_sas.list(&ListParams::default()).await.expect("list");
    let cms = all_cms.list(&ListParams::default()).await.expect("list");
    assert_eq!(left(sas.iter().filter_map(|o| o.namespace()).collect()), 0);
    assert_eq!(left(cms.iter().filter_map(|o| o.namespace()).collect()), 0);
}

/// Creates the namespace `name`.
async fn namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace object");
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .expect("create namespace");
}

/// The quota's `status.used`, once the controller has counted every hard limit and `check`
/// holds for it.
async fn counted(
    quotas: &Api<ResourceQuota>,
    name: &str,
    what: &str,
    check: impl Fn(&std::collections::BTreeMap<String, String>) -> bool,
) -> std::collections::BTreeMap<String, String> {
    eventually(what, || async {
        let quota = quotas.get(name).await.expect("get quota");
        let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
        let status = quota.status.unwrap_or_default();
        let used: std::collections::BTreeMap<String, String> = status
            .used
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let synced =
            status.hard.as_ref() == Some(&hard) && hard.keys().all(|k| used.contains_key(k));
        (synced && check(&used)).then_some(used)
    })
    .await
}

fn pod_with_cpu(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                 "resources": {"requests": {"cpu": cpu}}}]},
    }))
    .expect("pod object")
}

/// The resourcequota controller counts what a namespace holds into each quota's status
/// (created with the real kubectl), frees what finished and deleted objects held, and counts
/// again when the hard limits change; kubectl shows the quota as it does for Kubernetes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_usage_is_counted_freed_and_shown_by_kubectl() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    namespace(&client, "team").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    for name in ["a", "b"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("configmap");
        config_maps
            .create(&PostParams::default(), &cm)
            .await
            .expect("create configmap");
    }
    // A kind the master has no informer of is counted through the API.
    let out = master.kubectl_with_stdin(
        &["create", "-n", "team", "-f", "-"],
        "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: t}\ntemplate:\n  spec:\n    containers: [{name: c, image: busybox}]\n",
    );
    assert!(out.success(), "{out}");
    // Sent in protobuf, as kubectl's typed create commands send.
    let out = master.kubectl(&[
        "create",
        "quota",
        "compute",
        "-n",
        "team",
        "--hard=pods=2,requests.cpu=1,configmaps=10,count/secrets=5,count/podtemplates=3,requests.storage=1Gi",
    ]);
    assert!(out.success(), "{out}");
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "team");
    // The namespace already holds two config maps and the root CA's.
    let used = counted(&quotas, "compute", "the first count", |used| {
        used.get("configmaps").map(String::as_str) == Some("3")
    })
    .await;
    assert_eq!(
        used,
        [
            ("configmaps", "3"),
            ("count/podtemplates", "1"),
            ("count/secrets", "0"),
            ("pods", "0"),
            ("requests.cpu", "0"),
            ("requests.storage", "0")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
    for (name, cpu) in [("p1", "300m"), ("p2", "600m")] {
        pods.create(&PostParams::default(), &pod_with_cpu(name, cpu))
            .await
            .expect("create pod");
    }
    let refused = pods
        .create(&PostParams::default(), &pod_with_cpu("p3", "100m"))
        .await
        .expect_err("over the quota");
    let kube::Error::Api(status) = refused else {
        panic!("{refused}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "pods \"p3\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"
    );

    let out = master.kubectl(&["get", "quota", "-n", "team"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .contains("configmaps: 3/10, count/podtemplates: 1/3, count/secrets: 0/5, pods: 2/2, requests.cpu: 900m/1, requests.storage: 0/1Gi"),
        "{out}"
    );
    let out = master.kubectl(&["describe", "quota", "compute", "-n", "team"]);
    assert!(out.success(), "{out}");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.contains(&vec!["pods", "2", "2"]), "{out}");
    assert!(rows.contains(&vec!["requests.cpu", "900m", "1"]), "{out}");

    // A finished pod frees its pods slot and its cpu; its count stays as long as it exists.
    let mut finished = pods.get_status("p2").await.expect("get pod");
    finished.status.get_or_insert_with(Default::default).phase = Some("Succeeded".into());
    pods.replace_status(
        "p2",
        &PostParams::default(),
        serde_json::to_vec(&finished).expect("json"),
    )
    .await
    .expect("finish p2");
    counted(&quotas, "compute", "p2's cpu freed", |used| {
        used.get("pods").map(String::as_str) == Some("1")
            && used.get("requests.cpu").map(String::as_str) == Some("300m")
    })
    .await;
    pods.create(&PostParams::default(), &pod_with_cpu("p3", "100m"))
        .await
        .expect("room again");

    // Deleting frees too.
    config_maps
        .delete("a", &DeleteParams::default())
        .await
        .expect("delete configmap");
    counted(&quotas, "compute", "a config map freed", |used| {
        used.get("configmaps").map(String::as_str) == Some("2")
    })
    .await;

    // A wrong count is corrected when the quota is counted again (here: its limits change).
    let mut wrong = quotas.get_status("compute").await.expect("get quota");
    if let Some(used) = wrong.status.as_mut().and_then(|s| s.used.as_mut()) {
        used.insert(
            "pods".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("7".into()),
        );
    }
    quotas
        .replace_status(
            "compute",
            &PostParams::default(),
            serde_json::to_vec(&wrong).expect("json"),
        )
        .await
        .expect("write a wrong count");
    quotas
        .patch(
            "compute",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "3"}}})),
        )
        .await
        .expect("raise the pods limit");
    counted(&quotas, "compute", "the count corrected", |used| {
        used.get("pods").map(String::as_str) == Some("2")
    })
    .await;
    let quota = quotas.get("compute").await.expect("get quota");
    let hard = quota.status.and_then(|s| s.hard).unwrap_or_default();
    assert_eq!(hard.get("pods").map(|q| q.0.as_str()), Some("3"));
}

/// The ReplicaFailure condition of an owner of kind `K`, if it has one.
async fn replica_failure<K>(api: &Api<K>, name: &str) -> Option<serde_json::Value>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let object = serde_json::to_value(api.get(name).await.expect("get")).expect("json");
    object["status"]["conditions"]
        .as_array()
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c["type"] == "ReplicaFailure")
                .cloned()
        })
}

/// A ReplicaSet and a ReplicationController whose pods a quota refuses show a
/// `ReplicaFailure` condition with the API server's message, and lose it once the quota is
/// raised and their pods are created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_over_quota_show_replica_failure_until_it_is_raised() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    namespace(&client, "limited").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "limited");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "pods"}, "spec": {"hard": {"pods": "2"}},
    }))
    .expect("quota");
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("create quota");
    counted(&quotas, "pods", "the quota counted", |_| true).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "limited");
    let template = |app: &str| {
        json!({"metadata": {"labels": {"app": app}},
               "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
    };

    // A ReplicaSet of 3 gets 2 pods, and says why not the third.
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "limited");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": template("web")},
    }))
    .expect("replica set");
    replica_sets
        .create(&PostParams::default(), &rs)
        .await
        .expect("create replica set");
    wait_pods(&pods, "app=web", "two pods of web", |p| p.len() == 2).await;
    let condition = eventually("web's ReplicaFailure", || {
        replica_failure(&replica_sets, "web")
    })
    .await;
    assert_eq!(condition["status"], "True", "{condition}");
    assert_eq!(condition["reason"], "FailedCreate", "{condition}");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("pods \"web-")
            && message.ends_with(
                "\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2"
            ),
        "{message}"
    );
    assert!(condition["lastTransitionTime"].is_string(), "{condition}");

    // Raised: the third pod, and the condition goes.
    quotas
        .patch(
            "pods",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "4"}}})),
        )
        .await
        .expect("raise the quota");
    wait_pods(&pods, "app=web", "three pods of web", |p| p.len() == 3).await;
    eventually("web without ReplicaFailure", || async {
        replica_failure(&replica_sets, "web")
            .await
            .is_none()
            .then_some(())
    })
    .await;

    // A ReplicationController is kept the same way: 1 of its 2 pods fits.
    let controllers: Api<ReplicationController> = Api::namespaced(client.clone(), "limited");
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template("legacy")},
    }))
    .expect("replication controller");
    controllers
        .create(&PostParams::default(), &rc)
        .await
        .expect("create replication controller");
    let made = wait_pods(&pods, "app=legacy", "a pod of legacy", |p| p.len() == 1).await;
    let owner = made[0]
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    assert_eq!(owner.len(), 1, "{owner:?}");
    assert_eq!(owner[0].kind, "ReplicationController");
    assert_eq!(owner[0].name, "legacy");
    assert_eq!(owner[0].controller, Some(true));
    let condition = eventually("legacy's ReplicaFailure", || {
        replica_failure(&controllers, "legacy")
    })
    .await;
    assert_eq!(condition["reason"], "FailedCreate", "{condition}");
    assert!(
        condition["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with("exceeded quota: pods, requested: pods=1, used: pods=4, limited: pods=4"),
        "{condition}"
    );
    let status = controllers
        .get("legacy")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.replicas, 1);
    quotas
        .patch(
            "pods",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "5"}}})),
        )
        .await
        .expect("raise the quota");
    wait_pods(&pods, "app=legacy", "two pods of legacy", |p| p.len() == 2).await;
    eventually("legacy without ReplicaFailure", || async {
        replica_failure(&controllers, "legacy")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let status = eventually("legacy's status", || async {
        let status = controllers.get("legacy").await.expect("get").status?;
        (status.replicas == 2).then_some(status)
    })
    .await;
    assert_eq!(status.fully_labeled_replicas, Some(2));
    assert_eq!(status.observed_generation, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_of_a_deleted_service_go_with_it_even_when_no_controller_ran() {
    use k8s_openapi::api::core::v1::{Endpoints, Service};
    let mut master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service");
    eventually("the Service's Endpoints", || async {
        endpoints.get_opt("web").await.expect("get").map(drop)
    })
    .await;
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete the Service");
    eventually("the Endpoints to go", || async {
        endpoints
            .get_opt("web")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;

    // Endpoints left behind (written while the master ran no controllers, as a Service was
    // deleted with no controller running) go when the controller starts; a selector-less
    // Service's, which its user writes, stay.
    master.stop();
    master.opts_mut().extra_args = vec![String::from("--controllers=")];
    master.restart().expect("restart without controllers");
    let client = master.kube_client().await.expect("client");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    for name in ["orphan", "kept"] {
        let object: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": "10.244.9.9"}], "ports": [{"port": 80}]}],
        }))
        .expect("endpoints");
        endpoints
            .create(&PostParams::default(), &object)
            .await
            .expect("create Endpoints");
    }
    let kept: Service = serde_json::from_value(json!({
        "metadata": {"name": "kept"}, "spec": {"ports": [{"port": 80}]},
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &kept)
        .await
        .expect("create the selector-less Service");
    master.stop();
    master.opts_mut().extra_args = Vec::new();
    master.restart().expect("restart with the controllers");
    let client = master.kube_client().await.expect("client");
    let endpoints: Api<Endpoints> = Api::namespaced(client, "default");
    eventually("the leftover Endpoints to go", || async {
        endpoints
            .get_opt("orphan")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        endpoints.get_opt("kept").await.expect("get").is_some(),
        "a selector-less Service's Endpoints stay"
    );
    assert!(
        endpoints
            .get_opt("kubernetes")
            .await
            .expect("get")
            .is_some(),
        "the kubernetes Endpoints stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slices_list_a_services_ready_and_not_ready_pods_and_go_with_it() {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "es", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "es"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service");
    // Two pods "running" on a node no agent serves: their status is written here.
    for (name, ip, ready) in [
        ("es-a", "10.244.50.2", "True"),
        ("es-b", "10.244.50.3", "False"),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "es"}},
            "spec": {"nodeName": "nowhere", "containers": [{"name": "c", "image": "i"}]},
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": ready}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("pod status");
    }
    let selector = ListParams::default().labels("kubernetes.io/service-name=es");
    let slice = eventually("a slice with both pods", || async {
        let list = slices.list(&selector).await.expect("list slices");
        list.items.into_iter().find(|s| s.endpoints.len() == 2)
    })
    .await;
    assert_eq!(slice.address_type, "IPv4");
    assert!(
        slice
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .starts_with("es-")
    );
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["tier"], "front");
    let ports = slice.ports.clone().unwrap_or_default();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("http"), Some(8080))
    );
    let conditions: Vec<(String, Option<bool>)> = slice
        .endpoints
        .iter()
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        [
            (String::from("10.244.50.2"), Some(true)),
            (String::from("10.244.50.3"), Some(false))
        ]
    );
    let table = master.kubectl(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=es",
    ]);
    assert!(table.success(), "{table}");
    let row: Vec<&str> = table
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[1..4],
        ["IPv4", "8080", "10.244.50.2,10.244.50.3"],
        "{table}"
    );

    // A bad slice is refused as Kubernetes words it.
    let bad = master.kubectl_with_stdin(
        &["create", "-f", "-"],
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: bad}\naddressType: IPv5\nendpoints: [{addresses: []}]\n",
    );
    assert!(!bad.success(), "{bad}");
    for wanted in [
        "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
        "endpoints[0].addresses: Required value: must contain at least 1 address",
    ] {
        assert!(bad.stderr.contains(wanted), "{bad}");
    }

    // The Service's deletion takes its slices (their owner) with it.
    services
        .delete("es", &DeleteParams::default())
        .await
        .expect("delete the Service");
    eventually("the slices to go", || async {
        slices
            .list(&selector)
            .await
            .expect("list")
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_evicts_within_a_disruption_budget_and_no_further() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    nodes
        .create(&PostParams::default(), &node("drained", None))
        .await
        .expect("create the node");
    // Three running, ready pods on a node no agent serves (their status is written here).
    for name in ["web-1", "web-2", "web-3"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "drained", "containers": [{"name": "c", "image": "i"}]},
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        let status = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("pod status");
    }
    let made = master.kubectl_with_stdin(
        &["create", "-f", "-"],
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 2\n  selector: {matchLabels: {app: web}}\n",
    );
    assert!(made.success(), "{made}");
    eventually("the budget's status", || async {
        let out = master.kubectl(&["get", "pdb", "web", "--no-headers"]);
        let cells: Vec<String> = out.stdout.split_whitespace().map(str::to_owned).collect();
        (cells.get(1..4) == Some(&["2".to_owned(), "N/A".to_owned(), "1".to_owned()][..]))
            .then_some(())
    })
    .await;

    // One pod may go; the second would break the budget, so drain gives up after its timeout.
    let drain = master.kubectl(&[
        "drain",
        "drained",
        "--force",
        "--timeout=8s",
        "--pod-selector=app=web",
    ]);
    assert!(!drain.success(), "{drain}");
    assert!(drain.stdout.contains("node/drained cordoned"), "{drain}");
    assert!(
        drain
            .stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{drain}"
    );
    let deleting = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list")
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .count();
    assert_eq!(deleting, 1, "exactly one pod evicted");
    let unschedulable = nodes
        .get("drained")
        .await
        .expect("node")
        .spec
        .and_then(|s| s.unschedulable);
    assert_eq!(unschedulable, Some(true), "drain cordons the node first");
    let uncordoned = master.kubectl(&["uncordon", "drained"]);
    assert!(uncordoned.success(), "{uncordoned}");

    // An eviction of a pod that does not exist, and a budget that makes no sense.
    let missing = master.kubectl_with_stdin(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods/nobody/eviction",
            "-f",
            "-",
        ],
        r#"{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "nobody"}}"#,
    );
    assert!(!missing.success(), "{missing}");
    assert!(
        missing.stderr.contains("NotFound") || missing.stderr.contains("not found"),
        "{missing}"
    );
    let both = master.kubectl_with_stdin(
        &["create", "-f", "-"],
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: bad}\nspec: {minAvailable: 1, maxUnavailable: 1, selector: {}}\n",
    );
    assert!(!both.success(), "{both}");
    assert!(
        both.stderr
            .contains("minAvailable and maxUnavailable cannot be both set"),
        "{both}"
    );
}

/// A pod bound to a node with the given phase.
fn pod_on(name: &str, node: &str, phase: &str) -> (Pod, serde_json::Value) {
    let pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
    }))
    .expect("pod object");
    (pod, json!({"status": {"phase": phase}}))
}

/// The pod garbage collector: a deleted node's pods go once the node has been gone for the
/// quarantine (40 s), and terminated pods beyond `--terminated-pod-gc-threshold` go oldest
/// first; running pods on nodes that exist stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_deleted_nodes_and_terminated_pods_beyond_the_threshold_are_collected() {
    let master = Master::start(MasterOptions {
        extra_args: vec![String::from("--terminated-pod-gc-threshold=2")],
        ..MasterOptions::default()
    })
    .expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client, "default");
    for name in ["here", "gone"] {
        nodes
            .create(&PostParams::default(), &node(name, None))
            .await
            .expect("create node");
    }
    // Created in this order, a second apart: `done-a` is the oldest terminated pod.
    for (name, node, phase) in [
        ("done-a", "here", "Succeeded"),
        ("done-b", "here", "Failed"),
        ("done-c", "here", "Succeeded"),
        ("running", "here", "Running"),
        ("orphan", "gone", "Running"),
    ] {
        let (pod, status) = pod_on(name, node, phase);
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("pod status");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    nodes
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete node");
    let deleted = Instant::now();

    // Within a check period (20 s): the oldest terminated pod beyond the threshold of 2.
    let deadline = Instant::now() + Duration::from_secs(45);
    while pods.get_opt("done-a").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "done-a was not collected");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for kept in ["done-b", "done-c", "running"] {
        assert!(
            pods.get_opt(kept).await.expect("get").is_some(),
            "{kept} was collected"
        );
    }
    // The orphan: after the 40 s quarantine, within another check period.
    let deadline = deleted + Duration::from_secs(100);
    while pods.get_opt("orphan").await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "the orphaned pod was not collected"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        deleted.elapsed() >= Duration::from_secs(40),
        "the orphan went before the quarantine: {:?}",
        deleted.elapsed()
    );
    for kept in ["done-b", "done-c", "running"] {
        assert!(
            pods.get_opt(kept).await.expect("get").is_some(),
            "{kept} was collected"
        );
    }
}

/// The pod garbage collector force-deletes the terminating pods of a node that is not Ready
/// and carries the `node.kubernetes.io/out-of-service` taint (nothing else would: no kubelet
/// confirms their end), and marks a terminating pod that was never scheduled `Failed`
/// before it deletes it (a finalizer keeps this one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_pods_of_out_of_service_nodes_and_unscheduled_ones_are_force_deleted() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client, "default");
    nodes
        .create(&PostParams::default(), &node("shut", None))
        .await
        .expect("create node");
    let (stuck, status) = pod_on("stuck", "shut", "Running");
    pods.create(&PostParams::default(), &stuck)
        .await
        .expect("create pod");
    pods.patch_status("stuck", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("pod status");
    let unscheduled: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "unscheduled", "finalizers": ["skiff.test/hold"]},
        "spec": {
            "nodeSelector": {"skiff.test/no-such-node": "true"},
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}],
        },
    }))
    .expect("pod object");
    pods.create(&PostParams::default(), &unscheduled)
        .await
        .expect("create pod");
    for name in ["stuck", "unscheduled"] {
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("delete pod");
    }
    // Within a check period (20 s) the unscheduled one is marked Failed; no kubelet
    // finishes `stuck`, and nothing deletes it while its node is only not Ready.
    let phase = |pod: &Pod| pod.status.as_ref().and_then(|s| s.phase.clone());
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let unscheduled = pods
            .get("unscheduled")
            .await
            .expect("held by its finalizer");
        if phase(&unscheduled).as_deref() == Some("Failed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unscheduled terminating pod was not marked Failed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let still = pods.get("stuck").await.expect("stuck is still there");
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(phase(&still).as_deref(), Some("Running"));

    // The user says the node is shut down for good.
    let taint = json!({"spec": {"taints": [{
        "key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute",
    }]}});
    nodes
        .patch("shut", &PatchParams::default(), &Patch::Merge(&taint))
        .await
        .expect("taint node");
    let deadline = Instant::now() + Duration::from_secs(45);
    while pods.get_opt("stuck").await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "the terminating pod of the out-of-service node was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
