//! Node identity end to end: a second agent joins with a bootstrap token and the pinned CA
//! hash (`skiff-master token create --print-join-command`), gets its own approved client
//! certificate, and is then held to itself by the Node authorizer and NodeRestriction (and
//! kept off another node's endpoint, which asks the API server who may call it); a wrong pin
//! or an expired token does not join.

use std::process::Command;

use serde_json::Value;
use skiff::node::{JoinOptions, NodeAgent, NodeOptions, join_options};
use skiff_node::images::BUSYBOX_IMAGE;

use super::Cluster;
use super::exec::build_busybox_image;

fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.master.kubectl(args);
    assert!(out.success(), "{out}");
    out.stdout
}

/// `kubectl` as the joined node (its own kubeconfig): (success, stdout, stderr).
fn as_node(agent: &NodeAgent, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(agent.root_dir().join("kubeconfig"))
        .args(args)
        .output()
        .expect("kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn joining(name: &str, cidr: &str, server: &str, token: &str, pin: &str) -> NodeOptions {
    let mut opts = NodeOptions::new(name, cidr);
    opts.join = Some(JoinOptions {
        server: server.to_owned(),
        token: token.to_owned(),
        ca_cert_hash: pin.to_owned(),
    });
    opts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_with_a_token_and_a_pinned_ca_and_is_held_to_itself() {
    build_busybox_image().await;
    let cluster = Cluster::start("t-join-a", "10.244.253.0/24").await;
    let JoinOptions {
        server,
        token,
        ca_cert_hash: pin,
    } = join_options(&cluster.master).expect("skiff-master token create");
    assert!(pin.starts_with("sha256:") && pin.len() == 71, "{pin}");

    // A wrong pin: the agent trusts nothing and does not join.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let refused = NodeAgent::start(
        &cluster.master,
        joining("t-join-x", "10.244.254.0/24", &server, &token, &wrong),
    );
    let err = format!("{:#}", refused.err().expect("a wrong pin is refused"));
    assert!(
        err.contains("cluster CA found in cluster-info ConfigMap is invalid"),
        "{err}"
    );
    // An expired token: refused by the API server.
    cluster.apply(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-old123, namespace: kube-system}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: old123
  token-secret: 0123456789abcdef
  expiration: "2020-01-01T00:00:00Z"
  usage-bootstrap-authentication: "true"
  auth-extra-groups: system:bootstrappers:kubeadm:default-node-token
"#,
    );
    let expired = NodeAgent::start(
        &cluster.master,
        joining(
            "t-join-x",
            "10.244.254.0/24",
            &server,
            "old123.0123456789abcdef",
            &pin,
        ),
    );
    let err = format!("{:#}", expired.err().expect("an expired token is refused"));
    assert!(err.contains("is the bootstrap token valid?"), "{err}");

    // The right token and pin: the node joins with its own certificate.
    let b = NodeAgent::start(
        &cluster.master,
        joining("t-join-b", "10.244.254.0/24", &server, &token, &pin),
    )
    .expect("the second agent joins");
    let csrs: Value =
        serde_json::from_str(&ok(&cluster, &["get", "csr", "-o", "json"])).expect("JSON");
    let ours: Vec<&Value> = csrs["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["spec"]["username"] == format!("system:bootstrap:{}", &token[..6]))
        .collect();
    assert_eq!(ours.len(), 1, "{csrs}");
    let conditions = ours[0]["status"]["conditions"].to_string();
    assert!(
        conditions.contains("Approved") && conditions.contains("AutoApproved"),
        "{conditions}"
    );
    let (whoami_ok, whoami, _) = as_node(
        &b,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert!(whoami_ok);
    assert_eq!(whoami, "system:node:t-join-b");
    let crt = std::fs::read_to_string(b.root_dir().join("pki/kubelet-client.crt")).expect("cert");
    assert!(crt.starts_with("-----BEGIN CERTIFICATE-----"));

    // A Secret of a pod on node a, and one of a pod on node b.
    ok(
        &cluster,
        &["create", "secret", "generic", "on-a", "--from-literal=k=a"],
    );
    ok(
        &cluster,
        &["create", "secret", "generic", "on-b", "--from-literal=k=b"],
    );
    for (pod, node, secret) in [("pa", "t-join-a", "on-a"), ("pb", "t-join-b", "on-b")] {
        cluster.apply(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {pod}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: s, secret: {{secretName: {secret}}}}}]
  containers: [{{name: c, image: {BUSYBOX_IMAGE}, command: [sleep, "3600"], volumeMounts: [{{name: s, mountPath: /s}}]}}]
"#
        ));
    }
    cluster.wait_running("pb").await;
    let (read, _, _) = as_node(&b, &["get", "secret", "on-b"]);
    assert!(read, "node b reads the Secret of its own pod");
    let (read, _, err) = as_node(&b, &["get", "secret", "on-a"]);
    assert!(
        !read && err.contains("Forbidden"),
        "node b may not read node a's pod's Secret: {err}"
    );
    let (listed, _, _) = as_node(&b, &["get", "secrets"]);
    assert!(!listed, "node b may not list Secrets");
    // Node b leaves node a alone.
    let (deleted, _, err) = as_node(&b, &["delete", "node", "t-join-a"]);
    assert!(!deleted && err.contains("forbidden"), "{err}");
    // Its addresses, as the API server would then call them: refused by NodeRestriction.
    let pki = b.root_dir().join("pki");
    let identity = [
        std::fs::read(pki.join("kubelet-client.crt")).expect("cert"),
        std::fs::read(pki.join("kubelet-client.key")).expect("key"),
    ]
    .concat();
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cluster.master.ca_pem().as_bytes()).expect("CA"),
        )
        .identity(reqwest::Identity::from_pem(&identity).expect("identity"))
        .build()
        .expect("client");
    let answer = http
        .patch(format!(
            "{}/api/v1/nodes/t-join-a/status",
            cluster.master.server_url()
        ))
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"status":{"addresses":[{"type":"InternalIP","address":"203.0.113.9"}]}}"#)
        .send()
        .await
        .expect("PATCH");
    assert_eq!(answer.status().as_u16(), 403);
    let status: Value = answer.json().await.expect("Status");
    assert_eq!(
        status["message"],
        "nodes \"t-join-a\" is forbidden: node \"t-join-b\" is not allowed to modify node \"t-join-a\""
    );
    // Node a's own endpoint: a certificate the CA signed is not enough, the API server is
    // asked who may call it (node b may not; the API server may).
    let node_a: Value =
        serde_json::from_str(&ok(&cluster, &["get", "node", "t-join-a", "-o", "json"]))
            .expect("JSON");
    let port = node_a["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_i64()
        .expect("kubelet port");
    let kubelet = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .identity(reqwest::Identity::from_pem(&identity).expect("identity"))
        .build()
        .expect("client");
    let answer = kubelet
        .get(format!("https://127.0.0.1:{port}/pods"))
        .send()
        .await
        .expect("GET /pods on node a's endpoint");
    assert_eq!(answer.status().as_u16(), 403);
    assert_eq!(
        answer.text().await.expect("text"),
        "Forbidden (user=system:node:t-join-b, verb=get, resource=nodes, subresource=proxy)"
    );
    let logs = ok(&cluster, &["logs", "pa", "--tail=1"]);
    assert!(logs.is_empty() || !logs.contains("Forbidden"), "{logs}");

    let (labelled, _, err) = as_node(
        &b,
        &[
            "label",
            "node",
            "t-join-b",
            "node-restriction.kubernetes.io/pool=gold",
        ],
    );
    assert!(
        !labelled && err.contains("is not allowed to modify labels"),
        "{err}"
    );
    let (pod_deleted, _, err) = as_node(&b, &["delete", "pod", "pa", "--wait=false"]);
    assert!(!pod_deleted && err.contains("forbidden"), "{err}");
    assert_eq!(
        ok(
            &cluster,
            &["get", "node", "t-join-a", "-o", "jsonpath={.metadata.name}"]
        ),
        "t-join-a"
    );
}
