//! ServiceAccount tokens end to end on a real agent: a pod gets its projected token, the
//! cluster CA and its namespace at /var/run/secrets/kubernetes.io/serviceaccount, and that
//! token reaches the API server through the `kubernetes` Service as the pod's ServiceAccount:
//! allowed what its Role grants, 403 otherwise; `kubectl create token` issues one too, and a
//! token for another audience, or of a deleted pod, is refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff::master::MasterOptions;
use skiff::node::NodeOptions;
use skiff_node::images::BUSYBOX_IMAGE;

use super::Cluster;
use super::exec::build_busybox_image;

/// This test's own Service CIDR: its `kubernetes` Service is 10.100.252.1.
const SERVICE_CIDR: &str = "10.100.252.0/24";
const KUBERNETES_IP: &str = "10.100.252.1";
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.master.kubectl(args);
    assert!(out.success(), "{out}");
    out.stdout
}

/// A file of the pod's ServiceAccount volume, read with `kubectl exec`.
fn read_in_pod(cluster: &Cluster, pod: &str, file: &str) -> String {
    ok(
        cluster,
        &["exec", pod, "--", "cat", &format!("{MOUNT}/{file}")],
    )
}

/// GET `path` on the API server through the `kubernetes` Service's ClusterIP with `token`,
/// trusting `ca` (what the pod holds): (status, body).
async fn call_as(token: &str, ca: &str, path: &str) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("the CA"))
        .build()
        .expect("client");
    let answer = http
        .get(format!("https://{KUBERNETES_IP}{path}"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("HTTPS to the kubernetes Service");
    let code = answer.status().as_u16();
    (code, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_projected_token_calls_the_api_server_as_its_service_account() {
    build_busybox_image().await;
    let master = MasterOptions {
        extra_args: vec![format!("--service-cluster-ip-range={SERVICE_CIDR}")],
        ..Default::default()
    };
    let mut node = NodeOptions::new("t-sa-a", "10.244.252.0/24");
    node.extra_args = vec![
        String::from("--proxy-mode=ebpf"),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
    ];
    let cluster = Cluster::start_with_master(master, node).await;
    ok(&cluster, &["create", "serviceaccount", "lister"]);
    ok(&cluster, &["create", "serviceaccount", "nobody"]);
    ok(
        &cluster,
        &[
            "create",
            "role",
            "pod-lister",
            "--verb=list",
            "--resource=pods",
        ],
    );
    ok(
        &cluster,
        &[
            "create",
            "rolebinding",
            "lister",
            "--role=pod-lister",
            "--serviceaccount=default:lister",
        ],
    );
    for (pod, account) in [("lister", "lister"), ("nobody", "nobody")] {
        cluster.apply(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {pod}}}
spec:
  serviceAccountName: {account}
  terminationGracePeriodSeconds: 1
  containers: [{{name: c, image: {BUSYBOX_IMAGE}, command: [sleep, "3600"]}}]
"#
        ));
    }
    cluster.wait_running("lister").await;
    cluster.wait_running("nobody").await;

    // The admission added the volume; the agent filled it.
    let pod: Value =
        serde_json::from_str(&ok(&cluster, &["get", "pod", "lister", "-o", "json"])).expect("JSON");
    let mounts = pod["spec"]["containers"][0]["volumeMounts"].to_string();
    assert!(
        mounts.contains(MOUNT) && mounts.contains("kube-api-access-"),
        "{mounts}"
    );
    assert_eq!(read_in_pod(&cluster, "lister", "namespace"), "default");
    let ca = read_in_pod(&cluster, "lister", "ca.crt");
    assert_eq!(ca.trim(), cluster.master.ca_pem().trim());
    let token = read_in_pod(&cluster, "lister", "token");
    let nobody_token = read_in_pod(&cluster, "nobody", "token");

    // Through the kubernetes Service, as an in-cluster client calls.
    skiff::network::ensure_stays_local(KUBERNETES_IP.parse().expect("ip"))
        .expect("the Service CIDR is kept local");
    let (code, list) = call_as(&token, &ca, "/api/v1/namespaces/default/pods").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    let (code, status) = call_as(&token, &ca, "/api/v1/namespaces/default/secrets").await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(
        status["message"],
        "secrets is forbidden: User \"system:serviceaccount:default:lister\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
    let (code, status) = call_as(&nobody_token, &ca, "/api/v1/namespaces/default/pods").await;
    assert_eq!(code, 403, "{status}");
    let (code, review) = {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
            .build()
            .expect("client");
        let answer = http
            .post(format!(
                "https://{KUBERNETES_IP}/apis/authentication.k8s.io/v1/selfsubjectreviews"
            ))
            .bearer_auth(token.trim())
            .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
            .send()
            .await
            .expect("whoami");
        (
            answer.status().as_u16(),
            answer.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    assert_eq!(code, 201, "{review}");
    let user = &review["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:lister");
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["lister"])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/node-name"],
        json!(["t-sa-a"])
    );

    // `kubectl create token`: for the API server's audience it works, for another it does not.
    let issued = ok(&cluster, &["create", "token", "lister", "--duration=10m"]);
    let (code, _) = call_as(&issued, &ca, "/api/v1/namespaces/default/pods").await;
    assert_eq!(code, 200);
    let vault = ok(&cluster, &["create", "token", "lister", "--audience=vault"]);
    let (code, _) = call_as(&vault, &ca, "/api/v1/namespaces/default/pods").await;
    assert_eq!(code, 401);
    let short = cluster
        .master
        .kubectl(&["create", "token", "lister", "--duration=1m"]);
    assert!(!short.success(), "{short}");
    assert!(
        short
            .stderr
            .contains("may not specify a duration less than 10 minutes"),
        "{short}"
    );

    // A token bound to a pod dies with the pod.
    ok(&cluster, &["delete", "pod", "lister", "--wait=false"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = call_as(&token, &ca, "/api/v1/namespaces/default/pods").await;
        if code == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a deleted pod's token still authenticates"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A token of a deleted ServiceAccount is refused.
    ok(&cluster, &["delete", "serviceaccount", "lister"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _) = call_as(&issued, &ca, "/api/v1/namespaces/default/pods").await;
        if code == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a deleted ServiceAccount's token still authenticates"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
