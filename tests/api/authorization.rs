//! Who may do what, end to end with the real kubectl: the admin's identity (`auth whoami`), a
//! client certificate the cluster CA signed, a ServiceAccount bound to `view` (`auth can-i`,
//! `--as`, Kubernetes' 403 messages), escalation prevention for a namespace admin,
//! impersonation refused to who may not, access reviews over raw HTTPS, and RBAC objects
//! that are not valid.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff::master::{Master, MasterOptions};

use crate::Client;

/// The API server with the clusterrole-aggregation controller, which fills `view`, `edit`
/// and `admin`.
fn master() -> Master {
    Master::start(MasterOptions {
        extra_args: vec![
            "--scheduler=false".into(),
            "--controllers=clusterrole-aggregation".into(),
        ],
        ..Default::default()
    })
    .expect("starting skiff-master")
}

fn ok(master: &Master, args: &[&str]) -> String {
    let out = master.kubectl(args);
    assert!(out.success(), "{out}");
    out.stdout
}

/// `kubectl auth can-i` as asked, waiting up to 20 s for `want` (aggregation fills `view`
/// shortly after start).
fn can_i(master: &Master, args: &[&str], want: &str) {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = master.kubectl(&full);
        if out.stdout.trim() == want {
            assert_eq!(out.success(), want == "yes", "{out}");
            return;
        }
        assert!(Instant::now() < deadline, "expected {want}: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn rbac_decides_what_each_user_may_do() {
    let master = master();
    let whoami = ok(&master, &["auth", "whoami", "-o", "json"]);
    let whoami: Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(whoami["status"]["userInfo"]["username"], "kubernetes-admin");
    assert!(
        whoami["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:masters")),
        "{whoami}"
    );
    for role in ["cluster-admin", "admin", "edit", "view", "system:node"] {
        ok(&master, &["get", "clusterrole", role]);
    }

    // A ServiceAccount bound to `view` in its namespace lists pods but writes nothing.
    ok(&master, &["create", "namespace", "team"]);
    ok(
        &master,
        &["create", "serviceaccount", "viewer", "-n", "team"],
    );
    ok(
        &master,
        &[
            "create",
            "rolebinding",
            "viewers",
            "--clusterrole=view",
            "--serviceaccount=team:viewer",
            "-n",
            "team",
        ],
    );
    let viewer = "--as=system:serviceaccount:team:viewer";
    can_i(&master, &["list", "pods", "-n", "team", viewer], "yes");
    can_i(
        &master,
        &["create", "configmaps", "-n", "team", viewer],
        "no",
    );
    can_i(&master, &["list", "pods", "-n", "default", viewer], "no");
    ok(&master, &["get", "pods", "-n", "team", viewer]);
    let refused = master.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=a=b",
        "-n",
        "team",
        viewer,
    ]);
    assert!(!refused.success(), "{refused}");
    assert!(
        refused.stderr.contains(
            "configmaps is forbidden: User \"system:serviceaccount:team:viewer\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"team\""
        ),
        "{refused}"
    );
    let listed = ok(&master, &["auth", "can-i", "--list", "-n", "team", viewer]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{listed}"
    );
    assert!(
        !master
            .kubectl(&["get", "configmap", "settings", "-n", "team"])
            .success()
    );

    // A namespace admin may grant what they hold, and nothing more.
    ok(
        &master,
        &[
            "create",
            "rolebinding",
            "jane",
            "--clusterrole=admin",
            "--user=jane",
            "-n",
            "team",
        ],
    );
    can_i(
        &master,
        &["create", "roles", "-n", "team", "--as=jane"],
        "yes",
    );
    ok(
        &master,
        &[
            "create",
            "role",
            "secret-reader",
            "--verb=get",
            "--resource=secrets",
            "-n",
            "team",
            "--as=jane",
        ],
    );
    let escalation = master.kubectl(&[
        "create",
        "role",
        "node-reader",
        "--verb=get",
        "--resource=nodes",
        "-n",
        "team",
        "--as=jane",
    ]);
    assert!(!escalation.success(), "{escalation}");
    assert!(
        escalation.stderr.contains(
            "roles.rbac.authorization.k8s.io \"node-reader\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"
        ),
        "{escalation}"
    );
    let binding = master.kubectl(&[
        "create",
        "rolebinding",
        "jane-root",
        "--clusterrole=cluster-admin",
        "--user=jane",
        "-n",
        "team",
        "--as=jane",
    ]);
    assert!(!binding.success(), "{binding}");
    assert!(
        binding
            .stderr
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{binding}"
    );
    assert!(
        !master
            .kubectl(&["get", "role", "node-reader", "-n", "team"])
            .success()
    );
    assert!(
        !master
            .kubectl(&["get", "rolebinding", "jane-root", "-n", "team"])
            .success()
    );
}

#[tokio::test]
async fn certificates_reviews_impersonation_and_bad_rbac_objects() {
    let master = master();
    let admin = Client::new(&master);

    // A client certificate the CA signed names its user and groups; one it did not is refused.
    let (cert, key) = master.client_certificate("alice", &["devs"]).unwrap();
    let alice = master.http_with_certificate(&cert, &key).unwrap();
    let review = alice
        .post(format!(
            "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            master.server_url()
        ))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        .send()
        .await
        .unwrap();
    assert_eq!(review.status().as_u16(), 201);
    let review: Value = review.json().await.unwrap();
    assert_eq!(
        review["status"]["userInfo"],
        json!({"username": "alice", "groups": ["devs", "system:authenticated"]})
    );
    let pods = alice
        .get(format!(
            "{}/api/v1/namespaces/default/pods",
            master.server_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(pods.status().as_u16(), 403);
    let status: Value = pods.json().await.unwrap();
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    // Alice may not act as bob.
    let impersonating = alice
        .get(format!(
            "{}/api/v1/namespaces/default/pods",
            master.server_url()
        ))
        .header("Impersonate-User", "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(impersonating.status().as_u16(), 403);
    let status: Value = impersonating.json().await.unwrap();
    assert_eq!(
        status["message"],
        "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    let self_signed = {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mallory");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        master
            .http_with_certificate(&cert.pem(), &key.serialize_pem())
            .unwrap()
    };
    let forged = self_signed
        .get(format!(
            "{}/api/v1/namespaces/default/pods",
            master.server_url()
        ))
        .send()
        .await;
    assert!(
        forged.is_err() || forged.is_ok_and(|r| r.status().as_u16() == 401),
        "a certificate the CA did not sign must not authenticate"
    );
    // A wrong token is refused even with a good certificate.
    let wrong_token = alice
        .get(format!(
            "{}/api/v1/namespaces/default/pods",
            master.server_url()
        ))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status().as_u16(), 401);

    // SubjectAccessReview: what a user may do, asked by the admin.
    let (code, _) = admin
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "devs-discovery"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kube-dns"},
                "subjects": [{"kind": "Group", "name": "devs"}]}),
        )
        .await;
    assert_eq!(code, 201);
    let sar = |user: &str, groups: Vec<&str>, verb: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": {"verb": verb, "resource": "services", "namespace": "default"}}})
    };
    let (code, answer) = admin
        .post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &sar("alice", vec!["devs"], "list"),
        )
        .await;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["status"]["allowed"], true, "{answer}");
    assert!(
        answer["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("ClusterRoleBinding \"devs-discovery\""),
        "{answer}"
    );
    let (_, answer) = admin
        .post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &sar("alice", vec!["devs"], "delete"),
        )
        .await;
    assert_eq!(answer["status"]["allowed"], false, "{answer}");
    let (code, answer) = admin
        .post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &sar("", vec![], "list"),
        )
        .await;
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("at least one of user or group must be specified"),
        "{answer}"
    );

    // RBAC objects that are not valid are refused, and nothing is stored.
    let bad = [
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "no-verbs"},
                "rules": [{"verbs": [], "apiGroups": [""], "resources": ["pods"]}]}),
            "rules[0].verbs: Required value: verbs must contain at least one value",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "urls"},
                "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]}),
            "namespaced rules cannot apply to non-resource URLs",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "robot"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Robot", "name": "view"}}),
            "roleRef.kind: Unsupported value: \"Robot\"",
        ),
    ];
    for (path, object, message) in bad {
        let (code, answer) = admin.post(path, &object).await;
        assert_eq!(code, 422, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{answer}"
        );
        let name = object["metadata"]["name"].as_str().unwrap();
        let (code, _) = admin
            .json(reqwest::Method::GET, &format!("{path}/{name}"), None)
            .await;
        assert_eq!(code, 404);
    }
    // A binding's role may not change.
    let (code, answer) = admin
        .send(
            reqwest::Method::PATCH,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/devs-discovery",
            "application/merge-patch+json",
            json!({"roleRef": {"name": "cluster-admin"}}).to_string(),
        )
        .await;
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("cannot change roleRef"),
        "{answer}"
    );
}

#[test]
fn pod_security_levels_refuse_warn_and_audit_as_the_namespace_labels_say() {
    let master = master();
    ok(&master, &["create", "namespace", "locked"]);
    ok(
        &master,
        &[
            "label",
            "namespace",
            "locked",
            "pod-security.kubernetes.io/enforce=baseline",
            "pod-security.kubernetes.io/warn=restricted",
            "pod-security.kubernetes.io/audit=restricted",
        ],
    );
    let privileged = r#"
apiVersion: v1
kind: Pod
metadata: {name: root, namespace: locked}
spec:
  hostNetwork: true
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
"#;
    let refused = master.kubectl_with_stdin(&["create", "-f", "-"], privileged);
    assert!(!refused.success(), "{refused}");
    assert!(
        refused.stderr.contains(
            "pods \"root\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true), privileged (container \"c\" must not set securityContext.privileged=true)"
        ),
        "{refused}"
    );
    assert!(
        !master
            .kubectl(&["get", "pod", "root", "-n", "locked"])
            .success()
    );

    // Baseline lets a plain pod in; restricted warns about it and records it.
    let plain = r#"
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: locked}
spec:
  containers: [{name: c, image: busybox}]
"#;
    let admitted = master.kubectl_with_stdin(&["create", "-f", "-"], plain);
    assert!(admitted.success(), "{admitted}");
    assert!(
        admitted.stderr.contains(
            "Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)"
        ),
        "{admitted}"
    );
    let annotation = ok(
        &master,
        &[
            "get",
            "pod",
            "plain",
            "-n",
            "locked",
            "-o",
            "jsonpath={.metadata.annotations.pod-security\\.kubernetes\\.io/audit-violations}",
        ],
    );
    assert!(annotation.contains("runAsNonRoot != true"), "{annotation}");

    // A Deployment's template is warned about, not refused (its pods are).
    let deployment = ok(
        &master,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "-n",
            "locked",
        ],
    );
    assert!(deployment.contains("created"), "{deployment}");

    // A level that does not exist is refused.
    let bad = master.kubectl(&[
        "label",
        "namespace",
        "locked",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=strict",
    ]);
    assert!(!bad.success(), "{bad}");
    assert!(
        bad.stderr
            .contains("must be one of privileged, baseline, restricted"),
        "{bad}"
    );
}

/// An EncryptionConfiguration for Secrets with `first` as the writing provider.
fn encryption_config(dir: &tempfile::TempDir, first: &str) -> std::path::PathBuf {
    let path = dir.path().join("encryption.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - {first}\n  - identity: {{}}\n"
        ),
    )
    .unwrap();
    path
}

/// Whether any file under `dir` contains `needle`.
fn stored_anywhere(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            return stored_anywhere(&path, needle);
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn secrets_are_encrypted_at_rest_and_the_store_is_root_s_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = encryption_config(
        &dir,
        "secretbox: {keys: [{name: key1, secret: c2VjcmV0IGlzIHNlY3VyZSwgSSB0aGluaywgeWVzIGE=}]}",
    );
    let mut master = Master::start(MasterOptions {
        extra_args: vec![
            "--scheduler=false".into(),
            "--controllers=".into(),
            format!("--encryption-provider-config={}", config.display()),
        ],
        ..Default::default()
    })
    .expect("starting skiff-master with encryption at rest");
    ok(
        &master,
        &[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=hunter2-at-rest",
        ],
    );
    ok(
        &master,
        &[
            "create",
            "configmap",
            "plain",
            "--from-literal=note=visible-at-rest",
        ],
    );
    let password = ok(
        &master,
        &["get", "secret", "db", "-o", "jsonpath={.data.password}"],
    );
    assert_eq!(password, "aHVudGVyMi1hdC1yZXN0"); // base64 of hunter2-at-rest
    assert!(ok(&master, &["get", "secrets"]).contains("db"));
    // Stopped, so every write is on disk: the Secret is not there in plain text (nor in
    // base64), the ConfigMap is.
    master.stop();
    let data = master.state_dir().join("data");
    assert!(
        stored_anywhere(&data, b"visible-at-rest"),
        "the ConfigMap is stored as it is"
    );
    assert!(!stored_anywhere(&data, b"aHVudGVyMi1hdC1yZXN0"));
    assert!(!stored_anywhere(&data, b"hunter2-at-rest"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
    }
    // Restarted with the same configuration, the Secret reads back.
    master.restart().expect("restart");
    let password = ok(
        &master,
        &["get", "secret", "db", "-o", "jsonpath={.data.password}"],
    );
    assert_eq!(password, "aHVudGVyMi1hdC1yZXN0");

    // A key of the wrong length keeps the server from starting, saying why.
    let bad = encryption_config(&dir, "aescbc: {keys: [{name: key1, secret: c2hvcnQ=}]}");
    let state_dir = dir.path().join("refused");
    let refused = Master::start(MasterOptions {
        extra_args: vec![format!("--encryption-provider-config={}", bad.display())],
        state_dir: Some(state_dir.clone()),
        ..Default::default()
    });
    assert!(refused.is_err(), "a bad key is refused");
    let log = std::fs::read_to_string(state_dir.join("master.log")).unwrap();
    assert!(
        log.contains("secret is not of the expected length, got 5, expected one of [16 24 32]"),
        "{log}"
    );
}

/// A node serving certificate request (`kubernetes.io/kubelet-serving`) for `node` naming
/// `host` and `ip`, as JSON.
fn serving_request(name: &str, node: &str, host: &str, ip: [u8; 4]) -> Value {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(ip.into()));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
    "metadata": {"name": name},
    "spec": {
        "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem),
        "signerName": "kubernetes.io/kubelet-serving",
        "usages": ["digital signature", "server auth"],
    }})
}

#[tokio::test]
async fn a_node_gets_a_serving_certificate_only_for_its_own_addresses() {
    let master = Master::start(MasterOptions {
        extra_args: vec![
            "--scheduler=false".into(),
            "--controllers=csrapproving,csrsigning".into(),
        ],
        ..Default::default()
    })
    .expect("starting skiff-master");
    let admin = Client::new(&master);
    let (code, node) = admin
        .post(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        )
        .await;
    assert_eq!(code, 201, "{node}");
    let (code, node) = admin
        .send(
            reqwest::Method::PATCH,
            "/api/v1/nodes/n1/status",
            "application/merge-patch+json",
            json!({"status": {"addresses": [
                {"type": "InternalIP", "address": "10.9.0.1"},
                {"type": "Hostname", "address": "host-n1"}]}})
            .to_string(),
        )
        .await;
    assert_eq!(code, 200, "{node}");
    let (cert, key) = master
        .client_certificate("system:node:n1", &["system:nodes"])
        .unwrap();
    let n1 = master.http_with_certificate(&cert, &key).unwrap();
    let create = async |client: &reqwest::Client, body: Value| {
        let answer = client
            .post(format!(
                "{}/apis/certificates.k8s.io/v1/certificatesigningrequests",
                master.server_url()
            ))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201, "{body}");
    };
    // Its own name and addresses: approved and issued, with those names, for serving.
    create(&n1, serving_request("own", "n1", "host-n1", [10, 9, 0, 1])).await;
    // Another's address, another node's name, or asked by someone else: left pending.
    create(
        &n1,
        serving_request("stolen-ip", "n1", "host-n1", [10, 9, 0, 2]),
    )
    .await;
    create(
        &n1,
        serving_request("other-node", "n2", "host-n1", [10, 9, 0, 1]),
    )
    .await;
    let (code, _) = admin
        .post(
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            &serving_request("by-admin", "n1", "host-n1", [10, 9, 0, 1]),
        )
        .await;
    assert_eq!(code, 201);
    let deadline = Instant::now() + Duration::from_secs(20);
    let issued = loop {
        let (_, csr) = admin
            .json(
                reqwest::Method::GET,
                "/apis/certificates.k8s.io/v1/certificatesigningrequests/own",
                None,
            )
            .await;
        if let Some(pem) = csr["status"]["certificate"].as_str() {
            break base64::Engine::decode(&base64::engine::general_purpose::STANDARD, pem).unwrap();
        }
        assert!(Instant::now() < deadline, "not issued: {csr}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, block) = x509_parser::pem::parse_x509_pem(&issued).unwrap();
    let certificate = block.parse_x509().unwrap();
    let names = format!(
        "{:?}",
        certificate
            .subject_alternative_name()
            .unwrap()
            .expect("names")
            .value
            .general_names
    );
    assert_eq!(names, "[DNSName(\"host-n1\"), IPAddress([10, 9, 0, 1])]");
    let usage = certificate.extended_key_usage().unwrap().expect("usage");
    assert!(usage.value.server_auth && !usage.value.client_auth);
    // The controller has seen the others by now (it took them in turn).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in ["stolen-ip", "other-node", "by-admin"] {
        let (_, csr) = admin
            .json(
                reqwest::Method::GET,
                &format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}"),
                None,
            )
            .await;
        assert!(
            csr["status"]["conditions"].is_null(),
            "{name} must stay pending: {csr}"
        );
    }
    // An admin may still approve one.
    let out = master.kubectl(&["certificate", "approve", "other-node"]);
    assert!(out.success(), "{out}");
    let out = master.kubectl(&["get", "csr", "other-node"]);
    assert!(out.stdout.contains("Approved"), "{out}");
}

/// A user's certificate made as the RBAC tutorials make it: `openssl x509 -req` without an
/// extension file, an X.509 version 1 certificate, which kube-apiserver (Go) accepts. One the
/// cluster CA did not sign is refused.
#[tokio::test]
async fn a_version_1_certificate_from_openssl_authenticates_its_user() {
    let master = master();
    let dir = tempfile::tempdir().unwrap();
    let pki = master.state_dir().join("pki");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("/usr/bin/openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl (cargo xtask setup installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca_crt = pki.join("ca.crt").display().to_string();
    let ca_key = pki.join("ca.key").display().to_string();
    openssl(&["genrsa", "-out", "jane.key", "2048"]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "jane.key",
        "-subj",
        "/CN=jane/O=devs",
        "-out",
        "jane.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "jane.csr",
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        "jane.crt",
        "-days",
        "1",
    ]);
    openssl(&[
        "x509", "-req", "-in", "jane.csr", "-signkey", "jane.key", "-out", "self.crt", "-days", "1",
    ]);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let (_, certificate) = x509_parser::pem::parse_x509_pem(read("jane.crt").as_bytes()).unwrap();
    assert_eq!(
        certificate.parse_x509().unwrap().version(),
        x509_parser::x509::X509Version::V1
    );
    // kubectl (Go, as the tutorials' users) presents it; rustls clients cannot load one.
    let kubectl = |cert: &str, args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .arg(format!("--server={}", master.server_url()))
            .arg(format!("--certificate-authority={ca_crt}"))
            .arg(format!(
                "--client-certificate={}",
                dir.path().join(cert).display()
            ))
            .arg(format!(
                "--client-key={}",
                dir.path().join("jane.key").display()
            ))
            .args(["--kubeconfig=/dev/null", "--token="])
            .args(args)
            .output()
            .expect("kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, whoami, err) = kubectl(
        "jane.crt",
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(whoami, "jane [\"devs\",\"system:authenticated\"]");
    let (ok, _, err) = kubectl("self.crt", &["get", "namespaces"]);
    assert!(
        !ok && err.contains("certificate"),
        "a version 1 certificate the CA did not sign must not authenticate"
    );
}
