//! Kubernetes semantics beyond CRUD: ClusterIP allocation under concurrency, graceful pod
//! deletion, binding, the status subresource, generation, namespace deletion, metrics.

use std::collections::HashSet;

use serde_json::{Value, json};
use skiff::master::Master;

use super::{Client, embedded_master};

async fn send(
    master: &Master,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    Client::new(master).json(method, path, body).await
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_service_creates_get_distinct_cluster_ips() {
    let master = embedded_master();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let http = master.http();
        let url = format!("{}/api/v1/namespaces/default/services", master.server_url());
        tasks.push(tokio::spawn(async move {
            let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("s{i}")}, "spec": {"ports": [{"port": 80}]}});
            let r = http.post(url).json(&svc).send().await.unwrap();
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.unwrap();
            v["spec"]["clusterIP"].as_str().unwrap().to_string()
        }));
    }
    let mut ips = HashSet::new();
    for t in tasks {
        let ip = t.await.unwrap();
        assert!(ip.starts_with("10.") && ip != "10.96.0.1", "{ip}");
        assert!(ips.insert(ip.clone()), "{ip} handed out twice");
    }
    // A requested address that is taken is refused; a free one in range is granted.
    let taken = ips.iter().next().unwrap().clone();
    let svc = |name: &str, ip: &str| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/services",
        Some(svc("dup", &taken)),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/services",
        Some(svc("outside", "192.168.0.10")),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/services",
        Some(svc("chosen", "10.100.0.42")),
    )
    .await;
    assert_eq!(
        (code, body["spec"]["clusterIP"].as_str()),
        (201, Some("10.100.0.42")),
        "{body}"
    );
    // Deleting a Service frees its address.
    let (code, _) = send(
        &master,
        reqwest::Method::DELETE,
        "/api/v1/namespaces/default/services/chosen",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/services",
        Some(svc("again", "10.100.0.42")),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

/// The `kubernetes` Service and its Endpoints come back when deleted, as kube-apiserver's
/// reconcilers put them back, with the same ClusterIP (the first of the range).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_kubernetes_service_comes_back() {
    let master = embedded_master();
    let service = "/api/v1/namespaces/default/services/kubernetes";
    let (code, before) = send(&master, reqwest::Method::GET, service, None).await;
    assert_eq!(code, 200, "{before}");
    for path in [service, "/api/v1/namespaces/default/endpoints/kubernetes"] {
        let (code, body) = send(&master, reqwest::Method::DELETE, path, None).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (service_code, after) = send(&master, reqwest::Method::GET, service, None).await;
        let (endpoints_code, endpoints) = send(
            &master,
            reqwest::Method::GET,
            "/api/v1/namespaces/default/endpoints/kubernetes",
            None,
        )
        .await;
        if service_code == 200 && endpoints_code == 200 {
            assert_eq!(after["spec"]["clusterIP"], before["spec"]["clusterIP"]);
            assert!(
                endpoints["subsets"][0]["addresses"][0]["ip"].is_string(),
                "{endpoints}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the kubernetes Service is not back: {service_code} {endpoints_code}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_port_services_get_ports_from_the_range() {
    let master = embedded_master();
    let path = "/api/v1/namespaces/default/services";
    let svc = |name: &str, node_port: Option<u32>| {
        let mut port = json!({"port": 80, "targetPort": 8080});
        if let Some(p) = node_port {
            port["nodePort"] = json!(p);
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"type": "NodePort", "selector": {"app": "a"}, "ports": [port]}})
    };
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        path,
        Some(svc("auto", None)),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let port = body["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&port), "{body}");
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        path,
        Some(svc("clash", Some(port as u32))),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        path,
        Some(svc("outside", Some(8080))),
    )
    .await;
    assert!(code == 422, "{body}");
    // Deleting the Service frees its port.
    assert_eq!(
        send(
            &master,
            reqwest::Method::DELETE,
            &format!("{path}/auto"),
            None
        )
        .await
        .0,
        200
    );
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        path,
        Some(svc("reuse", Some(port as u32))),
    )
    .await;
    assert_eq!(
        (code, body["spec"]["ports"][0]["nodePort"].as_u64()),
        (201, Some(port)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_pods_are_deleted_gracefully_and_unbound_at_once() {
    let master = embedded_master();
    let pods = "/api/v1/namespaces/default/pods";
    for name in ["bound", "unbound"] {
        assert_eq!(
            send(&master, reqwest::Method::POST, pods, Some(pod(name)))
                .await
                .0,
            201
        );
    }
    // Binding assigns the node once and marks the pod scheduled.
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "node-1"}});
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        &format!("{pods}/bound/binding"),
        Some(binding.clone()),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = send(
        &master,
        reqwest::Method::POST,
        &format!("{pods}/bound/binding"),
        Some(binding),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    let (_, bound) = send(
        &master,
        reqwest::Method::GET,
        &format!("{pods}/bound"),
        None,
    )
    .await;
    assert_eq!(bound["spec"]["nodeName"], "node-1");
    assert!(
        bound["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True")
    );

    // The node agent's status write changes only the status.
    let mut status = bound.clone();
    status["status"]["phase"] = json!("Running");
    status["spec"]["containers"][0]["image"] = json!("ignored:1");
    let (code, body) = send(
        &master,
        reqwest::Method::PUT,
        &format!("{pods}/bound/status"),
        Some(status),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (
            body["status"]["phase"].as_str(),
            body["spec"]["containers"][0]["image"].as_str()
        ),
        (Some("Running"), Some("busybox:1.36"))
    );
    // A main-resource write cannot change the status.
    let (code, body) = send(
        &master,
        reqwest::Method::PATCH,
        &format!("{pods}/bound"),
        None,
    )
    .await;
    assert_eq!(code, 415, "{body}");

    // Unbound: gone at once.
    let (code, _) = send(
        &master,
        reqwest::Method::DELETE,
        &format!("{pods}/unbound"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        send(
            &master,
            reqwest::Method::GET,
            &format!("{pods}/unbound"),
            None
        )
        .await
        .0,
        404
    );

    // Bound: marked with deletionTimestamp and the grace period; the agent finishes with grace 0.
    let (code, body) = send(
        &master,
        reqwest::Method::DELETE,
        &format!("{pods}/bound"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, marked) = send(
        &master,
        reqwest::Method::GET,
        &format!("{pods}/bound"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, _) = send(
        &master,
        reqwest::Method::DELETE,
        &format!("{pods}/bound"),
        Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        send(
            &master,
            reqwest::Method::GET,
            &format!("{pods}/bound"),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_counts_spec_changes_and_namespaces_take_their_objects() {
    let master = embedded_master();
    let (code, _) = send(
        &master,
        reqwest::Method::POST,
        "/api/v1/namespaces",
        Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})),
    )
    .await;
    assert_eq!(code, 201);
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}});
    let path = "/apis/apps/v1/namespaces/team/replicasets";
    let (code, created) = send(&master, reqwest::Method::POST, path, Some(rs)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let patch = |body: &str| {
        let http = master.http();
        let url = format!("{}{path}/rs", master.server_url());
        let body = body.to_string();
        async move {
            let r = http
                .patch(url)
                .header("Content-Type", "application/merge-patch+json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        patch(r#"{"metadata":{"labels":{"x":"y"}}}"#).await["metadata"]["generation"],
        1,
        "metadata changes keep the generation"
    );
    assert_eq!(
        patch(r#"{"spec":{"replicas":3}}"#).await["metadata"]["generation"],
        2
    );
    // The selector is immutable in apps/v1.
    let r = master
        .http()
        .patch(format!("{}{path}/rs", master.server_url()))
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"spec":{"selector":{"matchLabels":{"app":"b"}},"template":{"metadata":{"labels":{"app":"b"}}}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    assert_eq!(
        send(
            &master,
            reqwest::Method::POST,
            "/api/v1/namespaces/team/pods",
            Some(pod("p"))
        )
        .await
        .0,
        201
    );
    let (code, _) = send(
        &master,
        reqwest::Method::DELETE,
        "/api/v1/namespaces/team",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        send(
            &master,
            reqwest::Method::GET,
            "/api/v1/namespaces/team",
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(
            &master,
            reqwest::Method::GET,
            "/api/v1/namespaces/team/pods/p",
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(&master, reqwest::Method::GET, &format!("{path}/rs"), None)
            .await
            .0,
        404
    );
    // The system namespaces cannot be deleted.
    assert_eq!(
        send(
            &master,
            reqwest::Method::DELETE,
            "/api/v1/namespaces/default",
            None
        )
        .await
        .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_verb_and_resource() {
    let master = embedded_master();
    for i in 0..3 {
        assert_eq!(
            send(
                &master,
                reqwest::Method::POST,
                "/api/v1/namespaces/default/pods",
                Some(pod(&format!("m{i}")))
            )
            .await
            .0,
            201
        );
    }
    let text = master
        .http()
        .get(format!("{}/metrics", master.server_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"apiserver_request_total{verb="create",resource="pods",code="201"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"apiserver_request_duration_seconds_bucket{le="#)
            || text.contains("apiserver_request_duration_seconds_bucket{verb=\"create\""),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_with_a_resource_version_are_served_from_the_watch_cache() {
    let master = embedded_master();
    let path = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cached"}, "data": {"v": "1"}});
    let (code, created) = send(&master, reqwest::Method::POST, path, Some(cm)).await;
    assert_eq!(code, 201, "{created}");
    let mut updated = created.clone();
    updated["data"]["v"] = json!("2");
    let (code, updated) = send(
        &master,
        reqwest::Method::PUT,
        &format!("{path}/cached"),
        Some(updated),
    )
    .await;
    assert_eq!(code, 200, "{updated}");
    let rv = updated["metadata"]["resourceVersion"].as_str().unwrap();

    // At least the update's revision: the cache waits until it has seen it.
    let (code, got) = send(
        &master,
        reqwest::Method::GET,
        &format!("{path}/cached?resourceVersion={rv}"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(
        got, updated,
        "the cache serves the same object as the store"
    );
    // `0`: any state the cache has; by now it has the update too.
    let (code, any) = send(
        &master,
        reqwest::Method::GET,
        &format!("{path}/cached?resourceVersion=0"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{any}");
    assert_eq!(any["metadata"]["resourceVersion"], json!(rv));
    // No resourceVersion: a quorum read from the store, the same object.
    let (code, quorum) = send(
        &master,
        reqwest::Method::GET,
        &format!("{path}/cached"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{quorum}");
    assert_eq!(quorum, updated);

    let (code, missing) = send(
        &master,
        reqwest::Method::GET,
        &format!("{path}/absent?resourceVersion={rv}"),
        None,
    )
    .await;
    assert_eq!(code, 404, "{missing}");
    assert_eq!(missing["kind"], "Status");
    assert_eq!(missing["reason"], "NotFound");
    let (code, bad) = send(
        &master,
        reqwest::Method::GET,
        &format!("{path}/cached?resourceVersion=x"),
        None,
    )
    .await;
    assert_eq!(code, 400, "{bad}");
    assert_eq!(bad["kind"], "Status");
}

/// The names in a list.
fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_see_unset_fields_as_kubernetes_defaults() {
    let master = embedded_master();
    let client = Client::new(&master);
    // A node created without `spec.unschedulable` (as kubelets register) and a cordoned one.
    let node = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec});
    let (code, created) = client
        .post("/api/v1/nodes", &node("plain", json!({})))
        .await;
    assert_eq!(code, 201, "{created}");
    assert!(created["spec"].get("unschedulable").is_none(), "{created}");
    let cordoned = node("cordoned", json!({"unschedulable": true}));
    assert_eq!(client.post("/api/v1/nodes", &cordoned).await.0, 201);
    let get = |path: &str| {
        let path = path.to_string();
        let client = &client;
        async move {
            let (code, list) = client.json(reqwest::Method::GET, &path, None).await;
            assert_eq!(code, 200, "{path}: {list}");
            names(&list)
        }
    };
    assert_eq!(
        get("/api/v1/nodes?fieldSelector=spec.unschedulable=false").await,
        ["plain"]
    );
    assert_eq!(
        get("/api/v1/nodes?fieldSelector=spec.unschedulable%3Dtrue").await,
        ["cordoned"]
    );
    assert_eq!(
        get("/api/v1/nodes?fieldSelector=spec.unschedulable!=true").await,
        ["plain"]
    );

    // Pods: `spec.nodeName=` (empty) selects the unscheduled ones, as a scheduler asks.
    let mut bound = pod("bound");
    bound["spec"]["nodeName"] = json!("plain");
    let pods = "/api/v1/namespaces/default/pods";
    assert_eq!(client.post(pods, &pod("pending")).await.0, 201);
    assert_eq!(client.post(pods, &bound).await.0, 201);
    assert_eq!(
        get(&format!("{pods}?fieldSelector=spec.nodeName=")).await,
        ["pending"]
    );
    assert_eq!(
        get(&format!("{pods}?fieldSelector=spec.nodeName!=")).await,
        ["bound"]
    );
    assert_eq!(
        get("/api/v1/pods?fieldSelector=spec.nodeName=plain").await,
        ["bound"]
    );
    // Old clients' `spec.host`, and `spec.hostNetwork` (false unless set).
    assert_eq!(
        get(&format!("{pods}?fieldSelector=spec.host=plain")).await,
        ["bound"]
    );
    assert_eq!(
        get(&format!("{pods}?fieldSelector=spec.hostNetwork=false")).await,
        ["bound", "pending"]
    );

    // A watch filters with the same values: it sees the plain node, not the cordoned one.
    let r = master
        .http()
        .get(format!(
            "{}/api/v1/nodes?watch=1&resourceVersion=0&timeoutSeconds=1&fieldSelector=spec.unschedulable%3Dfalse",
            master.server_url()
        ))
        .send()
        .await
        .expect("watch");
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("watch body");
    // (The node IPAM controller runs even with `--controllers=`: its pod CIDR may arrive
    // as a MODIFIED event of the same node.)
    let mut watched: Vec<String> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["object"]["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    watched.dedup();
    assert_eq!(watched, ["plain"], "{body}");
}

/// A paged list is a snapshot at its first page's revision: what changed after it (an object
/// deleted, one created, one changed) does not show on the later pages, which carry the first
/// page's resourceVersion.
async fn paged_lists_are_consistent_snapshots(master: &Master) {
    let configmaps = "/api/v1/namespaces/default/configmaps";
    for i in 0..9 {
        let (code, _) = send(
            master,
            reqwest::Method::POST,
            configmaps,
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("page-{i}")}, "data": {"v": "before"}})),
        )
        .await;
        assert_eq!(code, 201);
    }
    let (code, first) = send(
        master,
        reqwest::Method::GET,
        &format!("{configmaps}?limit=3"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(names(&first), ["page-0", "page-1", "page-2"]);
    let revision = first["metadata"]["resourceVersion"].clone();
    // Changes after the first page.
    let (code, _) = send(
        master,
        reqwest::Method::DELETE,
        &format!("{configmaps}/page-7"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = send(
        master,
        reqwest::Method::POST,
        configmaps,
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "page-5a"}})),
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = send(
        master,
        reqwest::Method::PUT,
        &format!("{configmaps}/page-4"),
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "page-4"}, "data": {"v": "after"}})),
    )
    .await;
    assert_eq!(code, 200);
    let mut seen = names(&first);
    let mut token = first["metadata"]["continue"].as_str().map(str::to_owned);
    while let Some(next) = token {
        let (code, page) = send(
            master,
            reqwest::Method::GET,
            &format!("{configmaps}?limit=3&continue={next}"),
            None,
        )
        .await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["metadata"]["resourceVersion"], revision);
        for item in page["items"].as_array().into_iter().flatten() {
            if item["metadata"]["name"] == "page-4" {
                assert_eq!(item["data"]["v"], "before", "page-4 as it was");
            }
        }
        seen.extend(names(&page));
        token = page["metadata"]["continue"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = (0..9).map(|i| format!("page-{i}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_lists_are_consistent_snapshots_on_both_stores() {
    let master = embedded_master();
    paged_lists_are_consistent_snapshots(&master).await;
    let (_etcd, master) = super::etcd_master();
    paged_lists_are_consistent_snapshots(&master).await;
}
