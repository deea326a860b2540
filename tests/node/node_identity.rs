//! Node identity end to end: a second agent joins with a bootstrap token and the pinned CA
//! hash (`skiff-master token create --print-join-command`), gets its own approved client
//! certificate, and is then held to itself by the Node authorizer and NodeRestriction (and
//! kept off another node's endpoint, which asks the API server who may call it); a wrong pin
//! or an expired token does not join. A node renews its client and serving certificates
//! before they expire, and the API server verifies the serving one when it calls the agent.

use std::process::Command;

use serde_json::Value;
use skiff::master::MasterOptions;
use skiff::node::{JoinOptions, NodeAgent, NodeOptions, join_options};
use skiff_node::images::BUSYBOX_IMAGE;
use skiff_node::kubelet::certificate::{CLIENT_FILE, SERVING_FILE};

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
    let pem = std::fs::read_to_string(b.root_dir().join(CLIENT_FILE)).expect("cert");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pem.contains("PRIVATE KEY-----"));

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
    let identity = std::fs::read(b.root_dir().join(CLIENT_FILE)).expect("cert and key");
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

/// The certificate requests of `node` for `signer` that were approved and issued.
fn issued(cluster: &Cluster, node: &str, signer: &str) -> Vec<Value> {
    let csrs: Value =
        serde_json::from_str(&ok(cluster, &["get", "csr", "-o", "json"])).expect("JSON");
    csrs["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| {
            c["spec"]["username"] == format!("system:node:{node}")
                && c["spec"]["signerName"] == signer
                && c["status"]["certificate"].is_string()
                && c["status"]["conditions"]
                    .to_string()
                    .contains("AutoApproved")
        })
        .cloned()
        .collect()
}

/// When the certificate in `pem` expires.
fn not_after(pem: &[u8]) -> k8s_openapi::chrono::DateTime<k8s_openapi::chrono::Utc> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).expect("PEM");
    let certificate = block.parse_x509().expect("certificate");
    k8s_openapi::chrono::DateTime::from_timestamp(certificate.validity().not_after.timestamp(), 0)
        .expect("time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_renews_its_certificates_before_they_expire() {
    build_busybox_image().await;
    // Certificates that live a minute: renewed after 42 to 54 s.
    let master = MasterOptions {
        extra_args: vec![String::from("--cluster-signing-duration=60s")],
        ..Default::default()
    };
    let cluster =
        Cluster::start_with_master(master, NodeOptions::new("t-rotate", "10.244.208.0/24")).await;
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: talker}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{{name: c, image: {BUSYBOX_IMAGE}, command: [sh, -c, "echo hello-from-talker; sleep 3600"]}}]
"#
    ));
    cluster.wait_running("talker").await;
    // The agent serves a certificate of the cluster CA, asked for and approved as its own:
    // the API server, which verifies it, reads the logs.
    let logs = ok(&cluster, &["logs", "talker"]);
    assert_eq!(logs, "hello-from-talker\n");
    let serving = issued(&cluster, "t-rotate", "kubernetes.io/kubelet-serving");
    assert_eq!(serving.len(), 1, "{serving:?}");
    let root = cluster.agent.root_dir();
    let first_client = std::fs::read(root.join(CLIENT_FILE)).expect("client certificate");
    let first_serving = std::fs::read(root.join(SERVING_FILE)).expect("serving certificate");
    let expiry = not_after(&first_client).max(not_after(&first_serving));
    assert!(expiry < k8s_openapi::chrono::Utc::now() + k8s_openapi::chrono::Duration::seconds(65));

    // Past the first certificates' end: both were renewed and are in use.
    let wait = (expiry - k8s_openapi::chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_secs(2)).await;
    let client = std::fs::read(root.join(CLIENT_FILE)).expect("client certificate");
    assert_ne!(client, first_client, "the client certificate was renewed");
    assert!(not_after(&client) > k8s_openapi::chrono::Utc::now());
    assert_ne!(
        std::fs::read(root.join(SERVING_FILE)).expect("serving certificate"),
        first_serving,
        "the serving certificate was renewed"
    );
    // The node asked with its own certificate (the bootstrap token asked first).
    assert!(
        !issued(
            &cluster,
            "t-rotate",
            "kubernetes.io/kube-apiserver-client-kubelet"
        )
        .is_empty()
    );
    assert!(issued(&cluster, "t-rotate", "kubernetes.io/kubelet-serving").len() >= 2);
    // The heartbeat goes on with the new certificate: a Lease renewed after the old one
    // expired (a handshake with the old one would now fail).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let renewed = ok(
            &cluster,
            &[
                "get",
                "lease",
                "-n",
                "kube-node-lease",
                "t-rotate",
                "-o",
                "jsonpath={.spec.renewTime}",
            ],
        );
        let renewed =
            k8s_openapi::chrono::DateTime::parse_from_rfc3339(&renewed).expect("renewTime");
        if renewed > expiry + k8s_openapi::chrono::Duration::seconds(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Lease renewal after the first certificate expired (last {renewed})\n{}",
            cluster.agent.log_tail()
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    // And the API server still reaches the agent, on its renewed serving certificate.
    assert_eq!(ok(&cluster, &["logs", "talker"]), "hello-from-talker\n");
    let ready = ok(
        &cluster,
        &[
            "get",
            "node",
            "t-rotate",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(ready, "True");
}
