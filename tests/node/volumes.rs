//! Projected volumes (ServiceAccount tokens among their sources) and volumes that cannot be
//! made, end to end.

use super::{Cluster, WORKLOAD_IMAGE, http_get_eventually, pod_ip, waiting_reason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projected_volume_merges_its_sources_and_a_missing_key_is_a_config_error() {
    let cluster = Cluster::start("t-projected", "10.244.240.0/24").await;
    let node = cluster.agent.name().to_owned();
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{token: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: projected}}
spec:
  nodeName: {node}
  volumes:
  - name: all
    projected:
      defaultMode: 0440
      sources:
      - configMap: {{name: settings, items: [{{key: greeting, path: greeting}}]}}
      - secret: {{name: creds}}
      - downwardAPI: {{items: [{{path: podname, fieldRef: {{fieldPath: metadata.name}}}}]}}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /etc/all]
    volumeMounts: [{{name: all, mountPath: /etc/all}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: missing-key}}
spec:
  nodeName: {node}
  volumes:
  - name: config
    configMap: {{name: settings, items: [{{key: absent, path: absent}}]}}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    volumeMounts: [{{name: config, mountPath: /etc/config}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: token}}
spec:
  nodeName: {node}
  volumes:
  - name: token
    projected: {{sources: [{{serviceAccountToken: {{path: token}}}}]}}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /var/run/token]
    volumeMounts: [{{name: token, mountPath: /var/run/token}}]
"#
    ));
    let pod = cluster.wait_running("projected").await;
    let ip = pod_ip(&pod);
    assert_eq!(
        http_get_eventually(&ip, 8080, "/file/greeting").await,
        "hello"
    );
    assert_eq!(
        http_get_eventually(&ip, 8080, "/file/token").await,
        "s3cret"
    );
    assert_eq!(
        http_get_eventually(&ip, 8080, "/file/podname").await,
        "projected"
    );

    // A serviceAccountToken source holds a token the API server signed for the pod.
    let token_pod = cluster.wait_running("token").await;
    let token = http_get_eventually(&pod_ip(&token_pod), 8080, "/file/token").await;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "token");

    // Volumes that cannot be made keep their pods' containers from starting, saying why.
    for (name, says) in [("missing-key", "references non-existent config key: absent")] {
        let pod = cluster
            .wait_pod(name, "CreateContainerConfigError", |p| {
                waiting_reason(p, "app").as_deref() == Some("CreateContainerConfigError")
            })
            .await;
        let message = super::container_status(&pod, "app")
            .state
            .and_then(|s| s.waiting)
            .and_then(|w| w.message)
            .unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
    }
    // The pod with good volumes is untouched.
    cluster.wait_running("projected").await;
}
