//! The kubectl workflow a user goes through, on both stores.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff::master::{KUBECTL, Master};

use super::{embedded_master, etcd_master, manifest};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
    tier: front
spec:
  containers:
  - name: nginx
    image: nginx:1.25
    ports:
    - containerPort: 80
    resources:
      requests:
        cpu: 100m
        memory: 64Mi
"#;

const DB_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: db
  labels:
    app: db
spec:
  containers:
  - name: postgres
    image: postgres
"#;

fn deployment(replicas: i64, image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox:1.36
"#
    )
}

fn ok(master: &Master, args: &[&str]) -> String {
    let out = master.kubectl(args);
    assert!(out.success(), "{out}");
    out.stdout
}

fn get_json(master: &Master, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(master, &full)).expect("kubectl printed JSON")
}

fn names(master: &Master, args: &[&str]) -> Vec<String> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "name"]);
    let mut names: Vec<String> = ok(master, &full).lines().map(str::to_string).collect();
    names.sort();
    names
}

/// The whole workflow of the foundation issue, against one running master.
fn workflow(master: &Master) {
    let dir = tempfile::tempdir().unwrap();

    // Discovery: every served resource with its short names and groups.
    let resources = ok(master, &["api-resources"]);
    for expected in [
        "pods",
        "po",
        "services",
        "svc",
        "deployments",
        "apps/v1",
        "replicasets",
        "leases",
        "coordination.k8s.io/v1",
        "replicationcontrollers",
        "endpoints",
        "events",
        "namespaces",
        "nodes",
    ] {
        assert!(
            resources.contains(expected),
            "api-resources lacks {expected}:\n{resources}"
        );
    }

    // create + get -o json: server-set fields and defaults are there.
    let pod_file = manifest(&dir, "pod.yaml", POD);
    let out = ok(master, &["create", "-f", pod_file.to_str().unwrap()]);
    assert!(out.contains("pod/web created"), "{out}");
    let db_file = manifest(&dir, "db.yaml", DB_POD);
    ok(master, &["create", "-f", db_file.to_str().unwrap()]);
    let pod = get_json(master, &["pod", "web"]);
    for field in ["uid", "creationTimestamp", "resourceVersion"] {
        assert!(
            pod["metadata"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{field} missing: {pod}"
        );
    }
    assert_eq!(pod["metadata"]["namespace"], "default");
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(pod["status"]["phase"], "Pending");
    let db = get_json(master, &["pod", "db"]);
    assert_eq!(
        db["spec"]["containers"][0]["imagePullPolicy"], "Always",
        "untagged image pulls Always"
    );

    // Label and field selectors.
    assert_eq!(names(master, &["pods", "-l", "app=web"]), ["pod/web"]);
    assert_eq!(
        names(master, &["pods", "-l", "app in (web,db),tier!=front"]),
        ["pod/db"]
    );
    assert_eq!(
        names(master, &["pods", "--field-selector", "metadata.name=db"]),
        ["pod/db"]
    );
    assert_eq!(
        names(
            master,
            &["pods", "--field-selector", "status.phase=Pending"]
        ),
        ["pod/db", "pod/web"]
    );
    assert_eq!(
        names(master, &["pods", "--field-selector", "spec.nodeName="]),
        ["pod/db", "pod/web"]
    );
    assert!(
        names(master, &["pods", "--all-namespaces", "-l", "app=web"])
            .contains(&"pod/web".to_string())
    );

    // describe reads the pod and its events.
    let described = ok(master, &["describe", "pod", "web"]);
    assert!(
        described.contains("Name:") && described.contains("web") && described.contains("app=web"),
        "{described}"
    );
    assert!(described.contains("nginx:1.25"), "{described}");

    // apply twice with a change in between, kubectl's default validation on.
    let deploy_file = manifest(&dir, "deployment.yaml", &deployment(2, "nginx:1.25"));
    let out = ok(master, &["apply", "-f", deploy_file.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    std::fs::write(&deploy_file, deployment(3, "nginx:1.26")).unwrap();
    let out = ok(master, &["apply", "-f", deploy_file.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d = get_json(master, &["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["name"], "sidecar",
        "containers merged by name"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let out = ok(master, &["apply", "-f", deploy_file.to_str().unwrap()]);
    assert!(out.contains("unchanged"), "{out}");
    // Unknown fields are rejected by the server under kubectl's default (strict) validation.
    let bad = manifest(
        &dir,
        "bad.yaml",
        &deployment(1, "nginx").replace("replicas: 1", "replicas: 1\n  replicaz: 2"),
    );
    let out = master.kubectl(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!out.success() && out.stderr.contains("replicaz"), "{out}");

    // scale.
    let out = ok(master, &["scale", "deployment", "web", "--replicas=5"]);
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(
        get_json(master, &["deployment", "web"])["spec"]["replicas"],
        5
    );
    let scale: Value = serde_json::from_str(&ok(
        master,
        &[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ],
    ))
    .unwrap();
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");

    // A replace with a stale resourceVersion is a conflict.
    let stale = get_json(master, &["deployment", "web"]);
    ok(master, &["scale", "deployment", "web", "--replicas=4"]);
    let mut edited = stale.clone();
    edited["spec"]["replicas"] = json!(7);
    let stale_file = manifest(&dir, "stale.json", &edited.to_string());
    let out = master.kubectl(&["replace", "-f", stale_file.to_str().unwrap()]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("the object has been modified"), "{out}");
    assert_eq!(
        get_json(master, &["deployment", "web"])["spec"]["replicas"],
        4
    );

    // get -w sees what another client does.
    watch_sees_other_clients(master);

    // delete -f.
    let out = ok(master, &["delete", "-f", pod_file.to_str().unwrap()]);
    assert!(out.contains("pod \"web\" deleted"), "{out}");
    let out = master.kubectl(&["get", "pod", "web"]);
    assert!(!out.success() && out.stderr.contains("NotFound"), "{out}");
    ok(master, &["delete", "-f", deploy_file.to_str().unwrap()]);
    assert!(names(master, &["deployments"]).is_empty());
}

/// `kubectl get pods -w --output-watch-events` sees ADDED, MODIFIED and DELETED events made by
/// another client (raw HTTPS with the admin token).
fn watch_sees_other_clients(master: &Master) {
    let mut child = Command::new(KUBECTL)
        .args(["--kubeconfig", master.kubeconfig_path().to_str().unwrap()])
        .args(["get", "pods", "-w", "--output-watch-events", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting kubectl get -w");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        // kubectl prints one pretty JSON object per event: collect lines until they parse.
        let mut buf = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            buf.push_str(&line);
            buf.push('\n');
            if let Ok(v) = serde_json::from_str::<Value>(&buf) {
                buf.clear();
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    let mut seen: Vec<(String, String)> = Vec::new();
    let wait_for = |ty: &str, name: &str, seen: &mut Vec<(String, String)>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|(t, n)| t == ty && n == name) {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {ty} event for {name}; saw {seen:?}"));
            seen.push((
                ev["type"].as_str().unwrap_or("").to_string(),
                ev["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ));
        }
    };
    wait_for("ADDED", "web", &mut seen);

    let http = master.http();
    let base = format!("{}/api/v1/namespaces/default/pods", master.server_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "watched"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}});
        let r = http.post(&base).json(&pod).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let r = http
            .patch(format!("{base}/watched"))
            .header("Content-Type", "application/merge-patch+json")
            .body(r#"{"metadata":{"labels":{"touched":"yes"}}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let r = http.delete(format!("{base}/watched")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    });
    wait_for("ADDED", "watched", &mut seen);
    wait_for("MODIFIED", "watched", &mut seen);
    wait_for("DELETED", "watched", &mut seen);
    let order: Vec<&str> = seen
        .iter()
        .filter(|(_, n)| n == "watched")
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(order, ["ADDED", "MODIFIED", "DELETED"]);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kubectl_workflow_on_the_embedded_store() {
    let master = embedded_master();
    workflow(&master);
}

#[test]
fn kubectl_workflow_on_etcd() {
    let (_etcd, master) = etcd_master();
    workflow(&master);
}

/// kubectl's typed commands (some send protobuf bodies) create what they say.
#[test]
fn kubectl_generators_create_objects() {
    let master = embedded_master();
    ok(&master, &["create", "namespace", "team-a"]);
    ok(
        &master,
        &[
            "create",
            "deployment",
            "nginx",
            "--image=nginx:1.25",
            "--replicas=2",
            "-n",
            "team-a",
        ],
    );
    ok(
        &master,
        &[
            "create",
            "service",
            "clusterip",
            "db",
            "--tcp=5432:5432",
            "-n",
            "team-a",
        ],
    );
    ok(
        &master,
        &[
            "run",
            "busy",
            "--image=busybox:1.36",
            "-n",
            "team-a",
            "--",
            "sleep",
            "3600",
        ],
    );
    ok(
        &master,
        &["expose", "deployment", "nginx", "--port=80", "-n", "team-a"],
    );
    let d = get_json(&master, &["deployment", "nginx", "-n", "team-a"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "nginx");
    let svc = get_json(&master, &["service", "nginx", "-n", "team-a"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["selector"]["app"], "nginx");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{svc}"
    );
    let db = get_json(&master, &["service", "db", "-n", "team-a"]);
    assert_eq!(db["spec"]["ports"][0]["targetPort"], 5432);
    let busy = get_json(&master, &["pod", "busy", "-n", "team-a"]);
    assert_eq!(
        busy["spec"]["containers"][0]["args"],
        json!(["sleep", "3600"])
    );
    ok(
        &master,
        &[
            "create",
            "configmap",
            "app",
            "--from-literal=mode=fast",
            "-n",
            "team-a",
        ],
    );
    ok(
        &master,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=s3cret",
            "-n",
            "team-a",
        ],
    );
    let cm = get_json(&master, &["configmap", "app", "-n", "team-a"]);
    assert_eq!(cm["data"]["mode"], "fast");
    let secret = get_json(&master, &["secret", "creds", "-n", "team-a"]);
    assert_eq!(
        (secret["type"].as_str(), secret["data"]["password"].as_str()),
        (Some("Opaque"), Some("czNjcmV0"))
    );
    let table = ok(&master, &["get", "configmaps,secrets", "-n", "team-a"]);
    assert!(
        table.contains("configmap/app")
            && table.contains("secret/creds")
            && table.contains("Opaque"),
        "{table}"
    );
    // Server-side printing: kubectl's usual columns.
    let table = ok(&master, &["get", "pods", "-n", "team-a"]);
    assert!(
        table.contains("READY") && table.contains("STATUS") && table.contains("Pending"),
        "{table}"
    );
    let table = ok(&master, &["get", "services", "-n", "team-a", "-o", "wide"]);
    assert!(
        table.contains("CLUSTER-IP") && table.contains("80/TCP") && table.contains("app=nginx"),
        "{table}"
    );
    let table = ok(&master, &["get", "deployments", "-n", "team-a"]);
    assert!(
        table.contains("UP-TO-DATE") && table.contains("0/2"),
        "{table}"
    );
    ok(
        &master,
        &["label", "pod", "busy", "-n", "team-a", "env=dev"],
    );
    ok(
        &master,
        &["annotate", "pod", "busy", "-n", "team-a", "note=hi"],
    );
    let busy = get_json(&master, &["pod", "busy", "-n", "team-a"]);
    assert_eq!(
        (
            busy["metadata"]["labels"]["env"].as_str(),
            busy["metadata"]["annotations"]["note"].as_str()
        ),
        (Some("dev"), Some("hi"))
    );
    ok(&master, &["delete", "namespace", "team-a"]);
    let out = master.kubectl(&["get", "namespace", "team-a"]);
    assert!(!out.success(), "{out}");
}
