//! The node agent end to end: a real skiff-master, a real `skiff-node` on the machine's
//! Docker, pods created with the real kubectl, and the test workload image
//! (`skiff/test-workload`, a static binary FROM scratch) built locally.
//!
//! Each test has its own master and its own node (name and pod CIDR), and the agent harness
//! removes the node's containers and network when the test ends. Docker is started if it is not
//! running; when it cannot be, the tests fail saying why.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::Api;
use skiff::docker;
use skiff::images::{WORKLOAD_BINARY, WORKLOAD_IMAGE};
use skiff::master::{Master, MasterOptions};
use skiff::node::{NodeAgent, NodeOptions};
use skiff_node::runtime::{DEFAULT_DOCKER_HOST, DockerRuntime};

mod daemon_sets;
mod exec;
mod jobs;
mod node_identity;
mod partition;
mod probes;
mod replication_controllers;
mod service_accounts;
mod stateful_sets;
mod volumes;

/// How long a pod may take to get where a test expects it.
const POD_TIMEOUT: Duration = Duration::from_secs(60);

/// A master, one agent and the workload image: what every test starts from.
struct Cluster {
    // Dropped first: the agent stops and its containers go before the master does.
    agent: NodeAgent,
    master: Master,
    client: kube::Client,
}

impl Cluster {
    async fn start(node: &str, pod_cidr: &str) -> Cluster {
        Self::start_with(NodeOptions::new(node, pod_cidr)).await
    }

    async fn start_with(opts: NodeOptions) -> Cluster {
        Self::start_with_master(MasterOptions::default(), opts).await
    }

    async fn start_with_master(master: MasterOptions, opts: NodeOptions) -> Cluster {
        docker::ensure_dockerd().expect("Docker must run for the node tests");
        build_workload_image().await;
        let master = Master::start(master).expect("start skiff-master");
        let agent = NodeAgent::start(&master, opts).expect("start skiff-node");
        let client = master.kube_client().await.expect("kube client");
        Cluster {
            agent,
            master,
            client,
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// `kubectl apply -f -` of a manifest; panics with kubectl's output if it fails.
    fn apply(&self, manifest: &str) {
        let out = self
            .master
            .kubectl_with_stdin(&["apply", "-f", "-"], manifest);
        assert!(out.success(), "{out}");
    }

    /// Waits until `check` says the pod is as wanted; panics with the last pod seen.
    async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        let deadline = Instant::now() + POD_TIMEOUT;
        let mut last = None;
        loop {
            if let Ok(Some(pod)) = self.pods().get_opt(name).await {
                if check(&pod) {
                    return pod;
                }
                last = Some(pod);
            }
            assert!(
                Instant::now() < deadline,
                "pod {name}: {what} not reached in {POD_TIMEOUT:?}; last seen: {}",
                last.map(|p| serde_json::to_string_pretty(&p.status).unwrap_or_default())
                    .unwrap_or_else(|| String::from("(no pod)"))
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_running(&self, name: &str) -> Pod {
        self.wait_pod(name, "Running and Ready", |pod| {
            phase(pod) == "Running" && ready(pod)
        })
        .await
    }

    /// Waits until an Event about object `name` (type, reason and message on one line)
    /// contains `needle`; returns those lines.
    async fn wait_event(&self, name: &str, needle: &str) -> String {
        let deadline = Instant::now() + POD_TIMEOUT;
        loop {
            let out = self.master.kubectl(&[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={name}"),
                "-o",
                "jsonpath={range .items[*]}{.type} {.reason} {.message}{\"\\n\"}{end}",
            ]);
            if out.success() && out.stdout.contains(needle) {
                return out.stdout;
            }
            assert!(
                Instant::now() < deadline,
                "no event about {name} saying {needle:?}: {out}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The revisions `kubectl rollout history <object>` lists, lowest first.
    fn rollout_revisions(&self, object: &str) -> Vec<String> {
        let out = self.master.kubectl(&["rollout", "history", object]);
        assert!(out.success(), "{out}");
        out.stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.parse::<u32>().is_ok())
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the pod is gone from the API.
    async fn wait_pod_gone(&self, name: &str) {
        let deadline = Instant::now() + POD_TIMEOUT;
        while let Ok(Some(_)) = self.pods().get_opt(name).await {
            assert!(Instant::now() < deadline, "pod {name} still exists");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The ids of the pod's containers (sandbox included), sorted.
    fn containers(&self, pod: &str) -> Vec<String> {
        let mut ids = docker::node_containers(self.agent.name(), Some(pod)).expect("list");
        ids.sort();
        ids
    }

    async fn wait_containers_gone(&self, pod: &str) {
        let deadline = Instant::now() + POD_TIMEOUT;
        loop {
            let left = self.containers(pod);
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containers of {pod} still exist: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Builds the test workload image unless it is there (several tests may race; fine).
async fn build_workload_image() {
    DockerRuntime::new(DEFAULT_DOCKER_HOST, "test-harness")
        .ensure_image_from_binary(WORKLOAD_IMAGE, WORKLOAD_BINARY)
        .await
        .expect("build the test workload image");
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

fn container_status(pod: &Pod, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == name).cloned())
        .unwrap_or_else(|| panic!("no status of container {name}"))
}

fn waiting_reason(pod: &Pod, container: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

/// `GET http://<ip>:<port><path>` from the host; the body if the answer is 200.
fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_owned())
}

/// Retries [`http_get`] until it answers (the server may still be starting).
async fn http_get_eventually(ip: &str, port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(body) = http_get(ip, port, path) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "GET http://{ip}:{port}{path} never answered 200"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_containers_share_localhost_an_empty_dir_and_the_pod_ip() {
    let cluster = Cluster::start("t-pair", "10.244.201.0/24").await;
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: pair}}
spec:
  nodeName: {node}
  volumes: [{{name: shared, emptyDir: {{}}}}]
  containers:
  - name: server
    image: {WORKLOAD_IMAGE}
    args: [write, /shared/greeting, hello-from-server, serve, "8080", /shared]
    ports: [{{containerPort: 8080}}]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    resources: {{limits: {{cpu: 200m, memory: 64Mi}}}}
    env:
    - {{name: MY_POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: MY_NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: MY_POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: GREETING, value: "hi $(MY_POD_NAME)"}}
  - name: client
    image: {WORKLOAD_IMAGE}
    args: [fetch, 127.0.0.1, "8080", /file/greeting, /shared/fetched, pause]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
"#,
        node = cluster.agent.name()
    ));
    let pod = cluster.wait_running("pair").await;
    let ip = pod_ip(&pod);
    assert!(
        ip.starts_with("10.244.201."),
        "pod IP {ip} is not from the node's pod CIDR"
    );
    for name in ["server", "client"] {
        let status = container_status(&pod, name);
        assert!(status.ready, "{name} not ready: {status:?}");
        assert_eq!(status.restart_count, 0);
        assert!(
            status
                .container_id
                .as_deref()
                .is_some_and(|id| id.starts_with("docker://")),
            "{status:?}"
        );
    }

    // The client reached the server over localhost and wrote what it got into the shared
    // emptyDir; the host reaches the pod IP.
    let fetched = http_get_eventually(&ip, 8080, "/file/fetched").await;
    assert_eq!(fetched, "hello-from-server");
    assert_eq!(
        http_get_eventually(&ip, 8080, "/env/MY_POD_NAME").await,
        "pair"
    );
    assert_eq!(
        http_get_eventually(&ip, 8080, "/env/MY_NAMESPACE").await,
        "default"
    );
    assert_eq!(http_get_eventually(&ip, 8080, "/env/MY_POD_IP").await, ip);
    assert_eq!(
        http_get_eventually(&ip, 8080, "/env/GREETING").await,
        "hi pair"
    );

    // Limits became Docker limits; the app containers live in the sandbox's namespaces.
    let ids = cluster.containers("pair");
    assert_eq!(ids.len(), 3, "sandbox + two containers: {ids:?}");
    let server = docker::inspect_container(
        container_status(&pod, "server")
            .container_id
            .as_deref()
            .and_then(|id| id.strip_prefix("docker://"))
            .expect("id"),
    )
    .expect("inspect");
    let host_config = server.host_config.expect("HostConfig");
    assert_eq!(host_config.memory, Some(64 * 1024 * 1024));
    assert_eq!(host_config.cpu_quota, Some(20_000));
    assert!(
        host_config
            .network_mode
            .as_deref()
            .is_some_and(|m| m.starts_with("container:")),
        "{:?}",
        host_config.network_mode
    );

    let out = cluster
        .master
        .kubectl(&["get", "pod", "pair", "-o", "wide"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("2/2") && out.stdout.contains("Running"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exited_container_is_restarted_then_backs_off() {
    let cluster = Cluster::start("t-restart", "10.244.202.0/24").await;
    let node = cluster.agent.name().to_owned();
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [echo, crashing, exit, "3"]
---
apiVersion: v1
kind: Pod
metadata: {{name: once}}
spec:
  nodeName: {node}
  restartPolicy: OnFailure
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [echo, done, exit, "0"]
"#
    ));
    // The first exit restarts at once (restartCount 1); the second waits 10 s.
    let pod = cluster
        .wait_pod("crasher", "CrashLoopBackOff", |pod| {
            waiting_reason(pod, "app").as_deref() == Some("CrashLoopBackOff")
        })
        .await;
    let app = container_status(&pod, "app");
    assert_eq!(app.restart_count, 1, "{app:?}");
    let waiting = app.state.and_then(|s| s.waiting).expect("waiting");
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap_or("")
            .contains("back-off 10s"),
        "{waiting:?}"
    );
    let last = app
        .last_state
        .and_then(|s| s.terminated)
        .expect("last state");
    assert_eq!(last.exit_code, 3);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    let out = cluster.master.kubectl(&["get", "pod", "crasher"]);
    assert!(out.stdout.contains("CrashLoopBackOff"), "{out}");

    // After the back-off it is restarted again, and the next back-off is 20 s.
    let pod = cluster
        .wait_pod("crasher", "second restart", |pod| {
            container_status(pod, "app").restart_count >= 2
        })
        .await;
    assert_eq!(container_status(&pod, "app").restart_count, 2);
    // Only the newest container and the one before are kept (plus the sandbox).
    assert!(cluster.containers("crasher").len() <= 3);

    // OnFailure with exit 0: the pod succeeded and nothing restarts.
    let pod = cluster
        .wait_pod("once", "Succeeded", |pod| phase(pod) == "Succeeded")
        .await;
    let app = container_status(&pod, "app");
    assert_eq!(app.restart_count, 0);
    let terminated = app.state.and_then(|s| s.terminated).expect("terminated");
    assert_eq!(terminated.reason.as_deref(), Some("Completed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_on_one_node_reaches_a_pod_on_another_by_pod_ip() {
    // Two agents of one master on this host: two Docker bridges, as two machines would have.
    let cluster = Cluster::start("t-net-a", "10.244.212.0/24").await;
    let other = NodeAgent::start(
        &cluster.master,
        NodeOptions::new("t-net-b", "10.244.213.0/24"),
    )
    .expect("start the second skiff-node");
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: server}}
spec:
  nodeName: t-net-b
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
    env: [{{name: MARK, value: served-on-b}}]
"#
    ));
    let server = cluster.wait_running("server").await;
    let server_ip = pod_ip(&server);
    assert!(server_ip.starts_with("10.244.213."), "{server_ip}");
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: t-net-a
  volumes: [{{name: out, emptyDir: {{}}}}]
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [fetch, {server_ip}, "8080", /env/MARK, /out/fetched, serve, "8081", /out]
    volumeMounts: [{{name: out, mountPath: /out}}]
"#
    ));
    let client = cluster.wait_running("client").await;
    let client_ip = pod_ip(&client);
    assert!(client_ip.starts_with("10.244.212."), "{client_ip}");
    // The client fetched from the other node's pod by its pod IP, then serves what it got.
    let fetched = http_get_eventually(&client_ip, 8081, "/file/fetched").await;
    assert_eq!(fetched.trim(), "served-on-b");
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_reaches_its_pod_and_docker_and_the_agent_never_share_an_address() {
    let cluster = Cluster::start("t-hostport", "10.244.243.0/24").await;
    let node = cluster.agent.name().to_owned();
    // A port nothing on this host uses now.
    let host_port = std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: published}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
    env: [{{name: MARK, value: through-the-host-port}}]
    ports: [{{containerPort: 8080, hostPort: {host_port}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: plain}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
"#
    ));
    let published = pod_ip(&cluster.wait_running("published").await);
    let plain = pod_ip(&cluster.wait_running("plain").await);
    // Docker publishes the host port and gives the address, from the top quarter of the
    // pod CIDR; the agent's own addresses lie below it.
    let last_octet = |ip: &str| -> u8 {
        ip.rsplit('.')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        published.starts_with("10.244.243.") && last_octet(&published) >= 192,
        "{published}"
    );
    assert!(
        plain.starts_with("10.244.243.") && (2..192).contains(&last_octet(&plain)),
        "{plain}"
    );
    let through_host = http_get_eventually("127.0.0.1", host_port, "/env/MARK").await;
    assert_eq!(through_host.trim(), "through-the-host-port");
    // Both answer on their pod IPs through the bridge.
    http_get_eventually(&plain, 8080, "/healthz").await;
    http_get_eventually(&published, 8080, "/healthz").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_gives_image_pull_back_off_and_other_pods_run() {
    let cluster = Cluster::start("t-image", "10.244.203.0/24").await;
    let node = cluster.agent.name().to_owned();
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: missing}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: skiff/does-not-exist:1
---
apiVersion: v1
kind: Pod
metadata: {{name: fine}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
"#
    ));
    let pod = cluster
        .wait_pod("missing", "ImagePullBackOff", |pod| {
            waiting_reason(pod, "app").as_deref() == Some("ImagePullBackOff")
        })
        .await;
    assert_eq!(phase(&pod), "Pending");
    let waiting = container_status(&pod, "app")
        .state
        .and_then(|s| s.waiting)
        .expect("waiting");
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap_or("")
            .contains("skiff/does-not-exist:1"),
        "{waiting:?}"
    );
    let out = cluster.master.kubectl(&["get", "pod", "missing"]);
    assert!(
        out.stdout.contains("ImagePullBackOff") || out.stdout.contains("ErrImagePull"),
        "{out}"
    );
    cluster.wait_running("fine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_stops_it_gracefully_and_removes_its_containers() {
    let cluster = Cluster::start("t-delete", "10.244.204.0/24").await;
    let node = cluster.agent.name().to_owned();
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [ignore-term, serve, "8080", /]
---
apiVersion: v1
kind: Pod
metadata: {{name: polite}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
"#
    ));
    cluster.wait_running("stubborn").await;
    cluster.wait_running("polite").await;
    assert_eq!(cluster.containers("stubborn").len(), 2);

    // SIGTERM is ignored: the agent waits the 3 s grace period, then SIGKILLs.
    let started = Instant::now();
    let out = cluster
        .master
        .kubectl(&["delete", "pod", "stubborn", "--timeout=60s"]);
    assert!(out.success(), "{out}");
    cluster.wait_pod_gone("stubborn").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "deleted after {took:?}, before the grace period ended"
    );
    assert!(cluster.containers("stubborn").is_empty());

    // SIGTERM ends it at once: far quicker than its 30 s grace period.
    let started = Instant::now();
    let out = cluster
        .master
        .kubectl(&["delete", "pod", "polite", "--timeout=60s"]);
    assert!(out.success(), "{out}");
    cluster.wait_pod_gone("polite").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    cluster.wait_containers_gone("polite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_pod_file_makes_a_mirror_pod_that_goes_with_the_file() {
    let manifests = tempfile::tempdir().expect("temp dir");
    let mut opts = NodeOptions::new("t-static", "10.244.205.0/24");
    opts.manifests_dir = Some(manifests.path().to_path_buf());
    let cluster = Cluster::start_with(opts).await;
    let node = cluster.agent.name().to_owned();
    let mirror_name = format!("web-{node}");
    let manifest = |greeting: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n  containers:\n  - name: app\n    image: {WORKLOAD_IMAGE}\n    args: [write, /g, {greeting}, serve, \"8080\", /]\n"
        )
    };
    write_atomically(&manifests.path().join("web.yaml"), &manifest("v1"));
    // A malformed manifest is reported and changes nothing for the others.
    write_atomically(
        &manifests.path().join("broken.yaml"),
        "apiVersion: v1\nkind: Pod\nspec: [",
    );

    let pod = cluster.wait_running(&mirror_name).await;
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let hash = annotations
        .get("kubernetes.io/config.mirror")
        .cloned()
        .expect("mirror annotation");
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(node.as_str())
    );
    assert_eq!(
        http_get_eventually(&pod_ip(&pod), 8080, "/file/g").await,
        "v1"
    );
    let deadline = Instant::now() + POD_TIMEOUT;
    loop {
        let out = cluster.master.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=InvalidStaticPodManifest",
        ]);
        if out.success() && out.stdout.contains("broken.yaml") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no InvalidStaticPodManifest event: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Editing the file replaces the pod: a new mirror (new hash), new containers.
    let old_containers = cluster.containers(&mirror_name);
    write_atomically(&manifests.path().join("web.yaml"), &manifest("v2"));
    let pod = cluster
        .wait_pod(&mirror_name, "the edited static pod", |pod| {
            let new_hash = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/config.mirror"))
                .is_some_and(|h| *h != hash);
            new_hash && phase(pod) == "Running" && ready(pod)
        })
        .await;
    assert_eq!(
        http_get_eventually(&pod_ip(&pod), 8080, "/file/g").await,
        "v2"
    );
    let deadline = Instant::now() + POD_TIMEOUT;
    while cluster
        .containers(&mirror_name)
        .iter()
        .any(|id| old_containers.contains(id))
    {
        assert!(
            Instant::now() < deadline,
            "the old static pod's containers remain"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Removing the file removes the pod and its mirror.
    std::fs::remove_file(manifests.path().join("web.yaml")).expect("remove manifest");
    cluster.wait_pod_gone(&mirror_name).await;
    cluster.wait_containers_gone(&mirror_name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_its_containers_and_removes_those_of_deleted_pods() {
    let mut cluster = Cluster::start("t-adopt", "10.244.206.0/24").await;
    let node = cluster.agent.name().to_owned();
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: keeper}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
---
apiVersion: v1
kind: Pod
metadata: {{name: goner}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
---
apiVersion: v1
kind: Pod
metadata: {{name: talker}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [echo, before-the-restart, sleep, "8", echo, while-the-agent-is-down, pause]
"#
    ));
    let keeper = cluster.wait_running("keeper").await;
    cluster.wait_running("goner").await;
    cluster.wait_running("talker").await;
    let keeper_containers = cluster.containers("keeper");
    assert_eq!(keeper_containers.len(), 2);
    wait_logs(&cluster.master, "talker", "before-the-restart\n").await;
    let talking_since = Instant::now();

    // While the agent is down its pods keep running; one is deleted for good meanwhile.
    cluster.agent.stop();
    let ip = pod_ip(&keeper);
    assert!(
        http_get(&ip, 8080, "/healthz").is_some(),
        "pod stopped with its agent"
    );
    let out = cluster
        .master
        .kubectl(&["delete", "pod", "goner", "--grace-period=0", "--force"]);
    assert!(out.success(), "{out}");
    cluster.wait_pod_gone("goner").await;

    cluster.agent.restart().expect("restart skiff-node");
    cluster.wait_containers_gone("goner").await;
    // The running pod was adopted: the same containers, no twins, still Running.
    let pod = cluster.wait_running("keeper").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster.containers("keeper"), keeper_containers);
    assert_eq!(container_status(&pod, "app").restart_count, 0);
    assert_eq!(pod_ip(&pod), ip);

    // What a container printed while the agent was down is in its log once it is back;
    // what was copied before is not copied twice.
    tokio::time::sleep(Duration::from_secs(9).saturating_sub(talking_since.elapsed())).await;
    wait_logs(
        &cluster.master,
        "talker",
        "before-the-restart\nwhile-the-agent-is-down\n",
    )
    .await;
}

/// The master goes away for longer than a lease renewal: the pods keep running, the agent
/// keeps trying and, once the master is back, renews its lease, reports the node Ready and
/// runs a pod created after the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_keep_running_while_the_master_is_down_and_the_agent_reconnects() {
    let mut opts = NodeOptions::new("t-master-down", "10.244.213.0/24");
    opts.extra_args = ["--lease-seconds", "2"].map(String::from).to_vec();
    let mut cluster = Cluster::start_with(opts).await;
    let node = cluster.agent.name().to_owned();
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: steady}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
"#
    ));
    let before = cluster.wait_running("steady").await;
    let ip = pod_ip(&before);
    let containers = cluster.containers("steady");

    let down_at = k8s_openapi::chrono::Utc::now();
    tokio::task::block_in_place(|| cluster.master.stop());
    // Several renewal periods pass without a master.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        http_get(&ip, 8080, "/healthz").is_some(),
        "the pod stopped serving while the master was down"
    );
    assert_eq!(cluster.containers("steady"), containers);
    assert!(
        cluster
            .agent
            .pid()
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()),
        "the agent exited without a master:\n{}",
        cluster.agent.log_tail()
    );

    tokio::task::block_in_place(|| cluster.master.restart()).expect("restart skiff-master");
    let client = cluster.master.kube_client().await.expect("client");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-node-lease");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let renewed = leases
            .get(&node)
            .await
            .ok()
            .and_then(|lease| lease.spec?.renew_time)
            .is_some_and(|time| time.0 > down_at);
        if renewed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no lease renewal after the master came back:\n{}",
            cluster.agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let node_ready = nodes
        .get(&node)
        .await
        .expect("node")
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status);
    assert_eq!(node_ready.as_deref(), Some("True"));

    // The agent's pod watch is back too: a new pod runs; the old one was never restarted.
    cluster.client = client;
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: after-outage}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [pause]
"#
    ));
    cluster.wait_running("after-outage").await;
    let steady = cluster.wait_running("steady").await;
    assert_eq!(container_status(&steady, "app").restart_count, 0);
    assert_eq!(cluster.containers("steady"), containers);
}

/// Waits until `kubectl logs <pod>` prints exactly `want` (the copier may be behind).
async fn wait_logs(master: &Master, pod: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = master.kubectl(&["logs", pod]);
        if out.success() && out.stdout == want {
            return;
        }
        assert!(
            Instant::now() < deadline && (out.stdout.is_empty() || want.starts_with(&out.stdout)),
            "logs of {pod}: want {want:?}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_registers_with_capacity_and_renews_its_lease() {
    let mut opts = NodeOptions::new("t-register", "10.244.207.0/24");
    opts.extra_args = vec![String::from("--lease-seconds"), String::from("1")];
    let cluster = Cluster::start_with(opts).await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = nodes.get("t-register").await.expect("node");
    let spec = node.spec.clone().unwrap_or_default();
    assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.207.0/24"));
    let status = node.status.clone().unwrap_or_default();
    let capacity = status.capacity.clone().unwrap_or_default();
    assert_eq!(capacity.get("pods").map(|q| q.0.as_str()), Some("110"));
    assert!(capacity.contains_key("cpu") && capacity.contains_key("memory"));
    assert!(status.allocatable.is_some());
    let info = status.node_info.clone().expect("nodeInfo");
    assert!(
        info.container_runtime_version.starts_with("docker://"),
        "{info:?}"
    );
    assert!(
        status
            .addresses
            .iter()
            .flatten()
            .any(|a| a.type_ == "InternalIP"),
        "{status:?}"
    );

    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let renew_time = |lease: k8s_openapi::api::coordination::v1::Lease| {
        lease.spec.and_then(|s| s.renew_time).map(|t| t.0)
    };
    let first = renew_time(leases.get("t-register").await.expect("lease")).expect("renewTime");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = renew_time(leases.get("t-register").await.expect("lease")).expect("renewTime");
    assert!(later > first, "lease not renewed: {first} then {later}");
    let out = cluster.master.kubectl(&["get", "nodes"]);
    assert!(
        out.stdout.contains("t-register") && out.stdout.contains("Ready"),
        "{out}"
    );

    // The agent joined with a bootstrap token and runs with a client certificate of its own
    // (system:node:<name>), not the admin's token or a credential other agents share.
    let pid = cluster.agent.pid().expect("agent pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("agent cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(args.iter().any(|a| a == "join"), "{args:?}");
    let own = kube::config::Kubeconfig::read_from(cluster.agent.root_dir().join("kubeconfig"))
        .expect("the agent's kubeconfig");
    let user = own.auth_infos[0].auth_info.clone().expect("user");
    assert!(user.token.is_none(), "the agent holds a token");
    let certificate =
        std::fs::read(user.client_certificate.expect("a client certificate file")).expect("PEM");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&certificate).expect("PEM");
    let parsed = pem.parse_x509().expect("certificate");
    let subject = parsed.subject().to_string();
    assert!(
        subject.contains("CN=system:node:t-register") && subject.contains("O=system:nodes"),
        "{subject}"
    );

    // The agent runs on io_uring: its process holds a ring, and the renewals above went over
    // the io_uring connection.
    let rings = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("agent fds")
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy() == "anon_inode:[io_uring]")
        })
        .count();
    assert!(
        rings > 0,
        "skiff-node (pid {pid}) holds no io_uring instance"
    );
    let log = std::fs::read_to_string(cluster.agent.log_path()).expect("agent log");
    assert!(
        log.contains("heartbeats over a persistent connection transport=io_uring"),
        "{}",
        cluster.agent.log_tail()
    );
}

/// Writes a file via rename, so the agent never reads half of it.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write manifest");
    std::fs::rename(&tmp, path).expect("rename manifest");
}

/// `kubectl logs` end to end: the API server finds the pod's node, calls the agent's HTTPS
/// endpoint (its port published in the Node's status) with its kubelet-client certificate and
/// streams the container's output back; the agent lets in nobody without such a certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_streams_a_containers_output_from_the_agent() {
    let mut opts = NodeOptions::new("t-logs", "10.244.209.0/24");
    // The API server reaches the agent at the Node's InternalIP: keep that on loopback.
    opts.extra_args = [
        "--node-ip",
        "127.0.0.1",
        "--container-log-max-size",
        "1Ki",
        "--container-log-max-files",
        "3",
    ]
    .map(String::from)
    .to_vec();
    let cluster = Cluster::start_with(opts).await;
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: logs}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [echo, hello-from-logs, echo, second-line, pause]
  - name: sidecar
    image: {WORKLOAD_IMAGE}
    args: [echo, from-the-sidecar, pause]
---
apiVersion: v1
kind: Pod
metadata: {{name: logs-crasher}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [echo, before-the-crash, exit, "3"]
---
apiVersion: v1
kind: Pod
metadata: {{name: logs-chatty}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: {chatty:?}
"#,
        node = cluster.agent.name(),
        chatty = chatty_args(),
    ));
    cluster.wait_running("logs").await;
    let master = &cluster.master;

    // Running does not mean the first lines are written yet: wait for them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = master.kubectl(&["logs", "logs", "-c", "app"]);
        if out.success() && out.stdout.contains("second-line") {
            break out;
        }
        assert!(Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(out.stdout, "hello-from-logs\nsecond-line\n", "{out}");

    // The agent wrote them into the container's log file, in the CRI format.
    let pod: Pod = Api::default_namespaced(cluster.client.clone())
        .get("logs")
        .await
        .expect("pod");
    let uid = pod.metadata.uid.clone().expect("uid");
    let file = cluster
        .agent
        .root_dir()
        .join(format!("pods/{uid}/logs/app/0.log"));
    let text = std::fs::read_to_string(&file).expect("the container's log file");
    let records: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.splitn(4, ' ').collect())
        .collect();
    assert_eq!(records.len(), 2, "{text}");
    for (record, content) in records.iter().zip(["hello-from-logs", "second-line"]) {
        assert!(chrono_like_rfc3339(record[0]), "{text}");
        assert_eq!(record[1..], ["stdout", "F", content], "{text}");
    }

    // A log over the size limit (1 KiB here) is rotated: three files kept, the newest served.
    let chatty: Pod = cluster.wait_running("logs-chatty").await;
    let dir = cluster.agent.root_dir().join(format!(
        "pods/{}/logs/app",
        chatty.metadata.uid.as_deref().expect("uid")
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = master.kubectl(&["logs", "logs-chatty"]);
        if out.success() && out.stdout.ends_with(&format!("{}\n", chatty_line(59))) {
            break out;
        }
        assert!(Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("log dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[0], "0.log", "{files:?}");
    assert!(
        files[1..].iter().all(|f| f.starts_with("0.log.")),
        "{files:?}"
    );
    let size = std::fs::metadata(dir.join("0.log")).expect("size").len();
    assert!(size <= 1024 + 200, "{size} bytes in 0.log");
    // What is served is the end of the output, in order, without the rotated-away start.
    let served: Vec<&str> = out.stdout.lines().collect();
    let first: usize = served[0]
        .strip_prefix("line-")
        .and_then(|l| l.split('-').next())
        .and_then(|n| n.parse().ok())
        .expect("a chatty line");
    assert!(first > 0, "{out}");
    let want: Vec<String> = (first..60).map(chatty_line).collect();
    assert_eq!(served, want, "{out}");

    // Without -c kubectl picks the first container; the API itself wants a name.
    let out = master.kubectl(&["logs", "logs"]);
    assert!(
        out.success() && out.stdout.contains("hello-from-logs"),
        "{out}"
    );
    let out = master.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/logs/log"]);
    assert!(
        !out.success()
            && out.stderr.contains(
                "a container name must be specified for pod logs, choose one of: [app sidecar]"
            ),
        "{out}"
    );

    let out = master.kubectl(&["logs", "logs", "-c", "app", "--tail", "1"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "second-line\n", "{out}");
    let out = master.kubectl(&["logs", "logs", "-c", "sidecar"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "from-the-sidecar\n", "{out}");
    let out = master.kubectl(&["logs", "logs", "-c", "app", "--timestamps", "--tail", "1"]);
    assert!(out.success(), "{out}");
    let (time, line) = out.stdout.trim_end().split_once(' ').expect("timestamp");
    assert_eq!(line, "second-line", "{out}");
    assert!(
        chrono_like_rfc3339(time),
        "{time:?} is not an RFC 3339 time: {out}"
    );
    let out = master.kubectl(&["logs", "logs", "-c", "app", "--limit-bytes", "5"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "hello", "{out}");

    // The agent's endpoint, as published in the Node's status.
    let node: Node = Api::all(cluster.client.clone())
        .get(cluster.agent.name())
        .await
        .expect("node");
    let port = node
        .status
        .and_then(|s| s.daemon_endpoints)
        .and_then(|d| d.kubelet_endpoint)
        .map_or(0, |e| e.port);
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .expect("the Node publishes its kubelet port");

    // -f streams: the first line arrives while kubectl keeps following; when kubectl goes,
    // the API server's connection to the agent goes too.
    logs_follow_reads_first_line(master, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while logs_established_connections(port) > 0 {
        assert!(
            Instant::now() < deadline,
            "connections to the agent's port {port} outlive the kubectl that wanted the logs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = master.kubectl(&["logs", "logs", "-c", "sidecar"]);
    assert!(out.success(), "{out}");

    // Clear errors: an unknown container, no previous instance, a pod without a node.
    let out = master.kubectl(&["logs", "logs", "-c", "nope"]);
    assert!(
        !out.success()
            && out
                .stderr
                .contains("container nope is not valid for pod logs"),
        "{out}"
    );
    let out = master.kubectl(&["logs", "logs", "-c", "app", "--previous"]);
    assert!(
        !out.success()
            && out
                .stderr
                .contains(r#"previous terminated container "app" in pod "logs" not found"#),
        "{out}"
    );
    // --previous: the instance before the newest, once the crasher has been restarted.
    cluster
        .wait_pod("logs-crasher", "restarted", |pod| {
            container_status(pod, "app").restart_count >= 1
        })
        .await;
    let out = master.kubectl(&["logs", "logs-crasher", "--previous"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "before-the-crash\n", "{out}");
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: unplaced}}
spec:
  nodeSelector: {{no-such-label: "true"}}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
"#
    ));
    let out = master.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/unplaced/log",
    ]);
    assert!(
        !out.success()
            && out
                .stderr
                .contains("pod unplaced does not have a host assigned"),
        "{out}"
    );

    // Without a client certificate of the cluster CA the agent refuses the TLS handshake;
    // with the API server's it answers.
    let url = format!("https://127.0.0.1:{port}/containerLogs/default/logs/app");
    let anonymous = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    match anonymous.get(&url).send().await {
        Err(_) => {}
        Ok(resp) => assert!(
            matches!(resp.status().as_u16(), 401 | 403),
            "the agent answered {} without a client certificate",
            resp.status()
        ),
    }
    let pki = master.state_dir().join("pki");
    let mut identity = std::fs::read(pki.join("apiserver-kubelet-client.crt")).expect("cert");
    identity.extend(std::fs::read(pki.join("apiserver-kubelet-client.key")).expect("key"));
    let apiserver = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .identity(reqwest::Identity::from_pem(&identity).expect("identity"))
        .build()
        .expect("client");
    let resp = apiserver.get(&url).send().await.expect("agent answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.expect("body"),
        "hello-from-logs\nsecond-line\n"
    );
    let resp = apiserver
        .get(format!(
            "https://127.0.0.1:{port}/containerLogs/default/nope/app"
        ))
        .send()
        .await
        .expect("agent answers");
    assert_eq!(resp.status(), 404);
    assert!(
        resp.text().await.expect("body").contains("nope"),
        "the 404 names the pod"
    );
}

/// Line `n` the chatty container prints: 40 bytes with the newline.
fn chatty_line(n: usize) -> String {
    format!("line-{n:02}-{}", "x".repeat(31))
}

/// The chatty container's steps: 60 lines (2.4 KB of output, 5 KB of log records), then wait.
fn chatty_args() -> Vec<String> {
    let mut args: Vec<String> = (0..60)
        .flat_map(|n| [String::from("echo"), chatty_line(n)])
        .collect();
    args.push(String::from("pause"));
    args
}

/// Runs `kubectl logs -f logs -c app`, reads until the first line and checks that kubectl is
/// still following (not finished, a connection to the agent's `port` open) before killing it.
fn logs_follow_reads_first_line(master: &Master, port: u16) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(skiff::master::KUBECTL)
        .arg("--kubeconfig")
        .arg(master.kubeconfig_path())
        .arg("--cache-dir")
        .arg(master.state_dir().join("kubectl-cache"))
        .args(["logs", "-f", "logs", "-c", "app"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubectl logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = lines_rx.recv_timeout(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let still_following = matches!(child.try_wait(), Ok(None));
    let agent_connections = logs_established_connections(port);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        first.as_deref(),
        Ok("hello-from-logs"),
        "kubectl logs -f printed no first line"
    );
    assert!(still_following, "kubectl logs -f ended on its own");
    assert!(
        agent_connections > 0,
        "no connection to the agent's port {port} while following"
    );
}

/// How many established TCP connections (IPv4 or IPv6) this machine has to local `port`.
fn logs_established_connections(port: u16) -> usize {
    let local_port = format!(":{port:04X}");
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        count += text
            .lines()
            .skip(1)
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local_address, rem_address, st (01: ESTABLISHED).
                fields.len() > 3 && fields[1].ends_with(&local_port) && fields[3] == "01"
            })
            .count();
    }
    count
}

/// Whether `text` looks like Docker's RFC 3339 time with nanoseconds (`2024-05-01T10:00:00.1Z`).
fn chrono_like_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() >= 20
        && text.ends_with('Z')
        && bytes.get(4) == Some(&b'-')
        && bytes.get(10) == Some(&b'T')
        && bytes.get(13) == Some(&b':')
}

/// A Deployment on a real node, driven as a user would: `kubectl create deployment`,
/// `kubectl rollout status`, `kubectl set image` (a rolling update), `kubectl rollout undo`,
/// and `kubectl delete deployment` takes its ReplicaSets and pods with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_rolls_out_and_back_on_a_node() {
    let cluster = Cluster::start("t-deploy", "10.244.212.0/24").await;
    let master = &cluster.master;
    let out = master.kubectl(&[
        "create",
        "deployment",
        "web",
        &format!("--image={WORKLOAD_IMAGE}"),
        "--replicas=3",
        "--",
        "/entrypoint",
        "serve",
        "8080",
        "/",
    ]);
    assert!(out.success(), "{out}");
    let rollout = |what: &str| {
        let out = master.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
        assert!(
            out.success() && out.stdout.contains("successfully rolled out"),
            "rollout {what}: {out}"
        );
    };
    rollout("of the first version");
    let out = master.kubectl(&["get", "deployment", "web", "--no-headers"]);
    let columns: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(columns.get(1..4), Some(&["3/3", "3", "3"][..]), "{out}");
    // A Service over the Deployment: its Endpoints list the running pods' IPs.
    let out = master.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    assert!(out.success(), "{out}");
    endpoints_are_the_running_pods(&cluster, "web", 3).await;

    // A rolling update to a new template: every pod is replaced, the old ReplicaSet is empty.
    let out = master.kubectl(&["set", "env", "deployment/web", "VERSION=2"]);
    assert!(out.success(), "{out}");
    rollout("of the second version");
    endpoints_are_the_running_pods(&cluster, "web", 3).await;
    assert_eq!(replica_set_sizes(master, "web"), ["1=0", "2=3"]);
    let pods = cluster
        .pods()
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items;
    let running: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && phase(p) == "Running")
        .collect();
    assert_eq!(running.len(), 3);
    for pod in running {
        let ip = pod_ip(pod);
        assert_eq!(
            http_get_eventually(&ip, 8080, "/env/VERSION").await.trim(),
            "2"
        );
    }
    let history = master.kubectl(&["rollout", "history", "deployment/web"]);
    assert!(history.success(), "{history}");
    let revisions: Vec<&str> = history
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // Back to the first template: its ReplicaSet runs the pods again, as revision 3.
    let out = master.kubectl(&["rollout", "undo", "deployment/web"]);
    assert!(out.success(), "{out}");
    rollout("back");
    assert_eq!(replica_set_sizes(master, "web"), ["2=0", "3=3"]);

    // Deleting the Deployment deletes its ReplicaSets and their pods.
    let out = master.kubectl(&["delete", "deployment", "web"]);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = master.kubectl(&["get", "rs,pods", "-l", "app=web", "--no-headers"]);
        if left.success() && left.stdout.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left after the delete: {left}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The ReplicaSets labelled `app=<app>` as `<revision>=<spec.replicas>`, sorted.
fn replica_set_sizes(master: &Master, app: &str) -> Vec<String> {
    let out = master.kubectl(&[
        "get",
        "rs",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.deployment\\.kubernetes\\.io/revision}={.spec.replicas},{end}",
    ]);
    assert!(out.success(), "{out}");
    let mut sizes: Vec<String> = out
        .stdout
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    sizes.sort_unstable();
    sizes
}

/// A Deployment `name` (label `app: <name>`) of `replicas` test workloads on `node`, each
/// echoing UDP on 7007 and serving HTTP on 8080 (its name at `/env/POD_NAME`).
fn echo_deployment(name: &str, replicas: u32, node: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeName: {node}
      containers:
      - name: app
        image: {WORKLOAD_IMAGE}
        args: [udp-echo, "7007", serve, "8080", /]
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]"#
    )
}

/// Waits until the Endpoints `name` list exactly the IPs of the `count` running, ready pods
/// labelled `app=<name>`, on port 8080.
async fn endpoints_are_the_running_pods(cluster: &Cluster, name: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = cluster
            .pods()
            .list(&kube::api::ListParams::default().labels(&format!("app={name}")))
            .await
            .expect("pods")
            .items;
        let mut want: Vec<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && ready(p))
            .map(pod_ip)
            .collect();
        want.sort();
        let out = cluster.master.kubectl(&[
            "get",
            "endpoints",
            name,
            "-o",
            "jsonpath={range .subsets[*]}{range .addresses[*]}{.ip}{\" \"}{end}{.ports[0].port}{\"\\n\"}{end}",
        ]);
        let mut got: Vec<String> = Vec::new();
        let mut ports_ok = true;
        for subset in out.stdout.lines() {
            let mut words: Vec<&str> = subset.split_whitespace().collect();
            ports_ok &= words.pop() == Some("8080");
            got.extend(words.iter().map(|w| (*w).to_owned()));
        }
        got.sort();
        if out.success() && want.len() == count && got == want && ports_ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "endpoints of {name}: {got:?} (ports ok: {ports_ok}), running pods: {want:?}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The address the `kube-dns` Endpoints name (the master's DNS server), once they are
/// written.
fn kube_dns_endpoint(cluster: &Cluster) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cluster.master.kubectl(&[
            "get",
            "endpoints",
            "kube-dns",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        ]);
        if let Ok(address) = out.stdout.trim().parse() {
            return address;
        }
        assert!(Instant::now() < deadline, "no kube-dns Endpoints: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One DNS query over UDP to `server`; the answer, or `None` after 2 s.
fn dns_query(
    server: SocketAddr,
    name: &str,
    record_type: hickory_proto::rr::RecordType,
) -> Option<hickory_proto::op::Message> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::Name;
    let mut query = Message::query();
    query.metadata.id = rand_id();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        record_type,
    ));
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    socket
        .send_to(&query.to_vec().expect("encode"), server)
        .expect("send the query");
    let mut buf = [0u8; 4096];
    let (n, from) = socket.recv_from(&mut buf).ok()?;
    assert_eq!(from, server, "the answer comes from the address asked");
    let answer = Message::from_vec(&buf[..n]).expect("a DNS message");
    assert_eq!(answer.metadata.id, query.metadata.id);
    Some(answer)
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7)
        % 65_000) as u16
}

/// The answer's records as `<data>` text, sorted.
fn dns_data(message: &hickory_proto::op::Message) -> Vec<String> {
    let mut data: Vec<String> = message.answers.iter().map(|r| r.data.to_string()).collect();
    data.sort();
    data
}

/// A DNS server on loopback that answers every A question with 192.0.2.1 (the cluster DNS's
/// upstream in the test: names outside the cluster go there, never off the machine).
fn upstream_stub() -> SocketAddr {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the stub");
    let address = socket.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(mut message) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            message.metadata.message_type = MessageType::Response;
            message.metadata.recursion_available = true;
            let name = message.queries.first().map(|q| q.name().clone());
            if let Some(name) = name {
                message.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1))));
            }
            if let Ok(bytes) = message.to_vec() {
                let _ = socket.send_to(&bytes, from);
            }
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dns_names_services_for_pods_and_the_kubernetes_service_reaches_the_api_server() {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;
    // A Service CIDR of this test's own: its kube-dns is 10.100.224.10.
    const SERVICE_CIDR: &str = "10.100.224.0/24";
    let dns_ip: std::net::Ipv4Addr = "10.100.224.10".parse().expect("ip");
    let upstream = upstream_stub();
    let master = MasterOptions {
        extra_args: vec![
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            format!("--dns-upstream={upstream}"),
        ],
        ..Default::default()
    };
    let mut node = NodeOptions::new("t-dns-a", "10.244.224.0/24");
    node.extra_args = vec![
        String::from("--proxy-mode=ebpf"),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
    ];
    let cluster = Cluster::start_with_master(master, node).await;

    // The kube-dns Service and its Endpoints, which name the master's DNS server.
    let server = kube_dns_endpoint(&cluster);
    let out = cluster.master.kubectl(&[
        "get",
        "service",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(out.stdout.trim(), dns_ip.to_string(), "{out}");

    cluster.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: {WORKLOAD_IMAGE}
        args: [serve, "8080", /]
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-headless}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: http, port: 8080}}]
"#
    ));
    endpoints_are_the_running_pods(&cluster, "web", 2).await;
    let cluster_ip = cluster
        .master
        .kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .stdout
        .trim()
        .to_owned();
    let mut pod_ips: Vec<String> = cluster
        .pods()
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items
        .iter()
        .map(pod_ip)
        .collect();
    pod_ips.sort();

    // Asked directly: Service names, headless Services, SRV, unknown names, other names.
    let answer =
        dns_query(server, "web.default.svc.cluster.local.", RecordType::A).expect("an answer");
    assert_eq!(dns_data(&answer), [cluster_ip.as_str()]);
    assert!(answer.metadata.authoritative);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = dns_query(
            server,
            "web-headless.default.svc.cluster.local.",
            RecordType::A,
        )
        .expect("an answer");
        if dns_data(&answer) == pod_ips {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the headless Service names its pods {pod_ips:?}: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let answer = dns_query(
        server,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .expect("an answer");
    assert_eq!(
        dns_data(&answer),
        ["0 100 80 web.default.svc.cluster.local."]
    );
    let answer =
        dns_query(server, "nothing.default.svc.cluster.local.", RecordType::A).expect("an answer");
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    let answer =
        dns_query(server, "web.default.svc.cluster.local.", RecordType::AAAA).expect("an answer");
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty(), "no IPv6 address: {answer:?}");
    let answer = dns_query(server, "outside.example.", RecordType::A).expect("an answer");
    assert_eq!(dns_data(&answer), ["192.0.2.1"], "forwarded upstream");

    // Garbage and a huge message over TCP do not stop it.
    let garbage = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    for size in [0usize, 1, 11, 12, 300, 1400] {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        garbage.send_to(&bytes, server).expect("send garbage");
    }
    if let Ok(mut tcp) = TcpStream::connect_timeout(&server, Duration::from_secs(2)) {
        let mut huge = vec![0xffu8, 0xff];
        huge.extend(std::iter::repeat_n(0x41u8, 65_535));
        let _ = tcp.write_all(&huge);
    }
    let answer = dns_query(server, "web.default.svc.cluster.local.", RecordType::A)
        .expect("an answer after bad input");
    assert_eq!(dns_data(&answer), [cluster_ip.as_str()]);

    // Through the kube-dns ClusterIP from the host: the answer comes from the ClusterIP.
    skiff::network::ensure_stays_local(dns_ip).expect("the Service CIDR is kept local");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Some(answer) = dns_query(
            SocketAddr::from((dns_ip, 53)),
            "web.default.svc.cluster.local.",
            RecordType::A,
        ) {
            break answer;
        }
        assert!(Instant::now() < deadline, "no answer through {dns_ip}:53");
    };
    assert_eq!(dns_data(&answer), [cluster_ip.as_str()]);

    // From a pod: its resolv.conf, a short name through the search path, and the kubernetes
    // Service reaching the API server.
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  volumes: [{{name: out, emptyDir: {{}}}}]
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [cat, /etc/resolv.conf, connect, kubernetes.default, "443", fetch, web, "80", /env/POD_NAME, /out/fetched, serve, "8081", /out]
    volumeMounts: [{{name: out, mountPath: /out}}]
"#
    ));
    let client = cluster.wait_running("client").await;
    let fetched = http_get_eventually(&pod_ip(&client), 8081, "/file/fetched").await;
    assert!(
        fetched.starts_with("web-"),
        "the pod reached a web pod by the Service's short name: {fetched:?}"
    );
    let logs = cluster.master.kubectl(&["logs", "client"]);
    assert!(
        logs.stdout
            .contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && logs.stdout.contains("nameserver 10.100.224.10")
            && logs.stdout.contains("options ndots:5"),
        "the kubelet's resolv.conf: {logs}"
    );
    assert!(
        logs.stdout
            .contains("workload: connected to kubernetes.default:443"),
        "the kubernetes Service reaches the API server from the pod: {logs}"
    );

    // The API server's certificate names the kubernetes Service's ClusterIP, as in-cluster
    // clients check it.
    let kubernetes_ip: std::net::Ipv4Addr = "10.100.224.1".parse().expect("ip");
    skiff::network::ensure_stays_local(kubernetes_ip).expect("the Service CIDR is kept local");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cluster.master.ca_pem().as_bytes()).expect("CA"),
        )
        .build()
        .expect("client");
    let answer = http
        .get("https://10.100.224.1/healthz")
        .send()
        .await
        .expect("HTTPS to the kubernetes Service's ClusterIP");
    assert!(answer.status().is_success(), "{answer:?}");

    // A deleted kube-dns Service comes back, with its Endpoints, as kube-apiserver puts the
    // kubernetes Service back.
    let out = cluster
        .master
        .kubectl(&["delete", "service", "kube-dns", "-n", "kube-system"]);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = cluster.master.kubectl(&[
            "get",
            "service",
            "kube-dns",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ]);
        if out.success() && out.stdout.trim() == dns_ip.to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "kube-dns is not back: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let endpoint = kube_dns_endpoint(&cluster);
    let answer = dns_query(
        endpoint,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    )
    .expect("the server still answers");
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backend_map_warns_on_the_service_and_the_others_keep_working() {
    const SERVICE_CIDR: &str = "10.100.225.0/24";
    let master = MasterOptions {
        extra_args: vec![format!("--service-cluster-ip-range={SERVICE_CIDR}")],
        ..Default::default()
    };
    // Room for 4 backends: the kubernetes Service's, kube-dns's two (UDP and TCP), and one.
    let mut node = NodeOptions::new("t-full", "10.244.225.0/24");
    node.extra_args = vec![
        String::from("--proxy-mode=ebpf"),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        String::from("--bpf-lb-backend-map-max=4"),
    ];
    let cluster = Cluster::start_with_master(master, node).await;
    kube_dns_endpoint(&cluster);
    // Backends on the host: two listeners at the node's address.
    let node_ip = cluster
        .master
        .kubectl(&[
            "get",
            "node",
            "t-full",
            "-o",
            "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
        ])
        .stdout
        .trim()
        .to_owned();
    let listeners: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("0.0.0.0:0").expect("a listener"))
        .collect();
    for (name, listener) in ["a-first", "b-second"].iter().zip(&listeners) {
        let port = listener.local_addr().expect("address").port();
        cluster.apply(&format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  ports: [{{port: 80, targetPort: {port}}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {name}}}
subsets: [{{addresses: [{{ip: "{node_ip}"}}], ports: [{{port: {port}}}]}}]
"#
        ));
        // One at a time: the first takes the last free backend.
        std::thread::sleep(Duration::from_secs(1));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cluster.master.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=b-second",
            "-o",
            "jsonpath={range .items[*]}{.type} {.reason} {.message}{\"\\n\"}{end}",
        ]);
        if out.stdout.contains("Warning LoadBalancerMapFull") {
            assert!(out.stdout.contains("no free backend id"), "{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Warning Event on the Service that does not fit: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The Service that fits still works.
    let cluster_ip: std::net::Ipv4Addr = cluster
        .master
        .kubectl(&[
            "get",
            "service",
            "a-first",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .stdout
        .trim()
        .parse()
        .expect("a ClusterIP");
    skiff::network::ensure_stays_local(cluster_ip).expect("the Service CIDR is kept local");
    listeners[0].set_nonblocking(false).expect("blocking");
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::from((cluster_ip, 80)), Duration::from_secs(2))
            .expect("connect to the Service that fits");
    stream.write_all(b"hello").expect("send");
    let (mut accepted, _) = listeners[0].accept().expect("the first listener gets it");
    let mut got = [0u8; 5];
    accepted.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"hello");

    // A ClusterIP outside the range is refused with a clear error, and nothing else changes.
    let out = cluster.master.kubectl_with_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: outside}\nspec:\n  clusterIP: 10.1.2.3\n  ports: [{port: 80}]\n",
    );
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("Invalid"), "{out}");
}

/// A node whose agent dies: after the grace period (6 s here) its status turns Unknown and it
/// is tainted unreachable; its pod (tolerating that for 2 s) is evicted and the Deployment's
/// replacement runs on the other node. When the agent comes back the node is Ready and
/// untainted again, and the agent finishes the evicted pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_pods_move_to_another_node() {
    docker::ensure_dockerd().expect("Docker must run for the node tests");
    build_workload_image().await;
    let master = Master::start(MasterOptions {
        extra_args: [
            "--node-monitor-grace-period",
            "6s",
            "--node-monitor-period",
            "1s",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
    .expect("start skiff-master");
    let mut agents = [
        NodeAgent::start(&master, NodeOptions::new("t-life-a", "10.244.215.0/24"))
            .expect("start agent a"),
        NodeAgent::start(&master, NodeOptions::new("t-life-b", "10.244.216.0/24"))
            .expect("start agent b"),
    ];
    let client = master.kube_client().await.expect("client");
    let out = master.kubectl_with_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: mover}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: mover}}}}
  template:
    metadata: {{labels: {{app: mover}}}}
    spec:
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      containers:
      - name: app
        image: {WORKLOAD_IMAGE}
        args: [pause]
"#
        ),
    );
    assert!(out.success(), "{out}");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let running_on = async |exclude: Option<&str>| -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let list = pods
                .list(&kube::api::ListParams::default().labels("app=mover"))
                .await
                .expect("pods")
                .items;
            let found = list.iter().find(|p| {
                let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
                p.metadata.deletion_timestamp.is_none()
                    && phase(p) == "Running"
                    && ready(p)
                    && node.is_some_and(|n| Some(n) != exclude)
            });
            if let Some(pod) = found {
                let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                return (pod.name_any(), node.unwrap_or_default());
            }
            assert!(
                Instant::now() < deadline,
                "no running pod (not on {exclude:?}): {:?}",
                list.iter()
                    .map(|p| (p.name_any(), phase(p)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let (first_pod, first_node) = running_on(None).await;
    let dead = usize::from(first_node == "t-life-b");
    agents[dead].kill9();

    // Unknown and tainted after the grace period.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let node = nodes.get(&first_node).await.expect("node");
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()));
        let taints: Vec<(String, String)> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.effect))
            .collect();
        let unreachable = ["NoSchedule", "NoExecute"].iter().all(|effect| {
            taints
                .iter()
                .any(|(k, e)| k == "node.kubernetes.io/unreachable" && e == effect)
        });
        if ready == Some((String::from("Unknown"), String::from("NodeStatusUnknown")))
            && unreachable
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {first_node} not unreachable: {ready:?} {taints:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Evicted; the replacement runs on the other node.
    let (second_pod, second_node) = running_on(Some(&first_node)).await;
    assert_ne!(second_pod, first_pod);
    assert_ne!(second_node, first_node);
    let evicted = pods.get(&first_pod).await.expect("evicted pod");
    assert!(evicted.metadata.deletion_timestamp.is_some());

    // The agent returns: Ready, untainted, and the evicted pod is finished.
    agents[dead].restart().expect("restart agent");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let node = nodes.get(&first_node).await.expect("node");
        let is_ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key.starts_with("node.kubernetes.io/")));
        let gone = pods.get_opt(&first_pod).await.expect("get").is_none();
        if is_ready && !tainted && gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the agent returned: ready={is_ready} tainted={tainted} evicted pod gone={gone}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `nodes/<name>/proxy/...` end to end: the API server forwards to the agent's HTTPS
/// endpoint with its kubelet-client certificate and passes the answer back, for the
/// kubelet's read-only endpoints; an unknown node is a 404 `Status`, and a path that would
/// climb out of `/logs/` does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_proxies_the_agents_read_only_endpoints() {
    let mut opts = NodeOptions::new("t-proxy", "10.244.217.0/24");
    // The API server reaches the agent at the Node's InternalIP: keep that on loopback.
    opts.extra_args = ["--node-ip", "127.0.0.1"].map(String::from).to_vec();
    let mut cluster = Cluster::start_with(opts).await;
    let node = cluster.agent.name().to_owned();
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: proxied}}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [pause]
"#
    ));
    let pod = cluster.wait_running("proxied").await;
    let uid = pod.metadata.uid.clone().expect("uid");
    let master = &cluster.master;
    let http = master.http();
    let get = async |path: &str| {
        let url = format!("{}/api/v1/nodes/{node}/proxy{path}", master.server_url());
        let response = http.get(&url).send().await.expect("GET through the proxy");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, content_type, response.text().await.expect("body"))
    };

    let (status, _, body) = get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    let (status, content_type, body) = get("/pods").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let list: serde_json::Value = serde_json::from_str(&body).expect("a PodList");
    assert_eq!(list["kind"], "PodList", "{body}");
    let found = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["metadata"]["name"] == "proxied")
        .unwrap_or_else(|| panic!("the agent's /pods lacks the running pod: {body}"));
    assert_eq!(found["metadata"]["uid"], uid.as_str());
    assert_eq!(found["status"]["phase"], "Running", "{found}");

    let (status, content_type, body) = get("/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let sample = |name: &str| {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
    };
    assert!(sample("kubelet_running_pods ") >= 1.0, "{body}");
    assert!(
        sample("kubelet_running_containers{container_state=\"running\"}") >= 1.0,
        "{body}"
    );
    assert!(sample("process_resident_memory_bytes ") > 0.0, "{body}");
    assert!(body.contains(&format!("kubelet_node_name{{node=\"{node}\"}} 1")));

    let (status, _, body) = get("/stats/summary").await;
    assert_eq!(status, 200, "{body}");
    let summary: serde_json::Value = serde_json::from_str(&body).expect("a Summary");
    assert_eq!(summary["node"]["nodeName"], node.as_str(), "{body}");
    assert!(summary["node"]["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0));
    assert!(summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0));
    let pod_stats = summary["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["podRef"]["uid"] == uid.as_str())
        .unwrap_or_else(|| panic!("the summary lacks the pod: {body}"));
    assert_eq!(pod_stats["podRef"]["name"], "proxied");
    assert_eq!(pod_stats["containers"][0]["name"], "app", "{pod_stats}");
    assert!(
        pod_stats["containers"][0]["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{pod_stats}"
    );
    assert!(
        pod_stats["containers"][0]["cpu"]["usageCoreNanoSeconds"].is_u64(),
        "{pod_stats}"
    );

    // /logs/ lists the node's log directory; no path climbs out of it.
    let (status, content_type, body) = get("/logs/").await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("<pre>"), "{body}");
    // (The client itself resolves `..` and `%2e%2e` segments: the API server sees another
    // path; the unit tests of node_proxy and node_logs send them as they are.)
    for resolved in ["/logs/../../etc/passwd", "/logs/%2e%2e/%2e%2e/etc/passwd"] {
        let (status, _, body) = get(resolved).await;
        assert_eq!(status, 404, "{resolved}: {body}");
    }
    for escape in [
        "/logs/..%2f..%2fetc%2fpasswd",
        "/logs/%2E%2E%5C%2E%2E%5Cetc%5Cpasswd",
        "/logs/apt/..%2F..%2F..%2Fetc/passwd",
    ] {
        let (status, _, body) = get(escape).await;
        assert_eq!(status, 400, "{escape}: {body}");
        assert!(!body.contains("root:"), "{escape}: {body}");
    }

    // The query string goes along; the agent's own answers pass as they are.
    let (status, _, body) = get("/healthz?verbose=1").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, body) = get("/no-such-endpoint").await;
    assert_eq!((status, body.as_str()), (404, "404 page not found\n"));

    // The same through kubectl.
    let out = master.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/healthz"),
    ]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "ok", "{out}");
    let out = master.kubectl(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/pods")]);
    assert!(out.success() && out.stdout.contains("\"proxied\""), "{out}");
    let out = master.kubectl(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/nodes/{node}:{}/proxy/stats/summary",
            agent_port(&cluster).await
        ),
    ]);
    assert!(out.success() && out.stdout.contains(&uid), "{out}");

    // An unknown node: a 404 Status, from the API and through kubectl.
    let url = format!(
        "{}/api/v1/nodes/no-such-node/proxy/healthz",
        master.server_url()
    );
    let response = http.get(&url).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 404);
    let status: serde_json::Value = response.json().await.expect("a Status");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["reason"], "NotFound", "{status}");
    assert_eq!(
        status["message"], "nodes \"no-such-node\" not found",
        "{status}"
    );
    let out = master.kubectl(&["get", "--raw", "/api/v1/nodes/no-such-node/proxy/healthz"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("NotFound") || out.stderr.contains("not found"),
        "{out}"
    );

    // An agent that is not there: 503, as kube-apiserver's proxy answers.
    cluster.agent.stop();
    let (status, _, body) = get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["reason"], "ServiceUnavailable", "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("error trying to reach service")),
        "{status}"
    );
}

/// The agent's port as its Node publishes it.
async fn agent_port(cluster: &Cluster) -> i64 {
    let node: Node = Api::all(cluster.client.clone())
        .get(cluster.agent.name())
        .await
        .expect("node");
    node.status
        .and_then(|s| s.daemon_endpoints)
        .and_then(|d| d.kubelet_endpoint)
        .map(|e| i64::from(e.port))
        .expect("the Node publishes its kubelet port")
}

/// A ClusterIP Service through the eBPF socket programs, on two agents of one master on this
/// host: requests from the host and from a pod on the other node reach every ready pod of the
/// Deployment behind it, `getpeername()` and UDP replies name the ClusterIP, an agent restart
/// under steady traffic loses no request, a scaled-down Service sends nothing to removed pods,
/// a Service with no pod left refuses at once (ECONNREFUSED, as kube-proxy's REJECT), and a
/// clean stop takes the programs out of the kernel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_ip_reaches_every_ready_pod_and_refuses_when_none_is_left() {
    cluster_ip_behaviour(ProxyTest {
        mode: "ebpf",
        nodes: ["t-svc-a", "t-svc-b"],
        pod_cidrs: ["10.244.220.0/24", "10.244.221.0/24"],
        service_cidr: "10.100.220.0/24",
    })
    .await;
}

/// The same in kube-proxy's iptables mode (`--proxy-mode=iptables`), on nodes, pod CIDRs and
/// a Service CIDR of its own so both run side by side; the eBPF-only checks (the programs,
/// their /metrics counters) become checks of the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_ip_reaches_every_ready_pod_and_refuses_when_none_is_left_in_iptables_mode() {
    cluster_ip_behaviour(ProxyTest {
        mode: "iptables",
        nodes: ["t-ipt-a", "t-ipt-b"],
        pod_cidrs: ["10.244.222.0/24", "10.244.223.0/24"],
        service_cidr: "10.100.222.0/24",
    })
    .await;
}

/// One proxy mode's run of the ClusterIP test.
struct ProxyTest {
    mode: &'static str,
    /// The node the pods run on, and the one the client pod runs on.
    nodes: [&'static str; 2],
    pod_cidrs: [&'static str; 2],
    /// Of this test's own: other tests' clusters on this machine share none of its addresses.
    service_cidr: &'static str,
}

impl ProxyTest {
    fn ebpf(&self) -> bool {
        self.mode == "ebpf"
    }
}

/// The rules of nat `iptables-save` that name `address`.
fn nat_rules_naming(address: &str) -> Vec<String> {
    let out = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains(&format!("{address}/32")))
        .map(str::to_owned)
        .collect()
}

async fn cluster_ip_behaviour(test: ProxyTest) {
    let [node_a, node_b] = test.nodes;

    let service_cidr = test.service_cidr;
    let proxied = |name: &str, pod_cidr: &str| {
        let mut node = NodeOptions::new(name, pod_cidr);
        node.extra_args = vec![
            format!("--proxy-mode={}", test.mode),
            format!("--service-cluster-ip-range={service_cidr}"),
        ];
        node
    };
    let master = MasterOptions {
        extra_args: vec![format!("--service-cluster-ip-range={service_cidr}")],
        ..Default::default()
    };
    let mut cluster = Cluster::start_with_master(master, proxied(node_a, test.pod_cidrs[0])).await;
    let other = NodeAgent::start(&cluster.master, proxied(node_b, test.pod_cidrs[1]))
        .expect("start the second skiff-node");
    cluster.apply(&format!(
        r#"
{}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
  - {{name: echo, port: 7, protocol: UDP, targetPort: 7007}}
"#,
        echo_deployment("web", 3, node_a)
    ));
    endpoints_are_the_running_pods(&cluster, "web", 3).await;
    let out =
        cluster
            .master
            .kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(out.success(), "{out}");
    let cluster_ip: std::net::Ipv4Addr = out.stdout.trim().parse().expect("an IPv4 ClusterIP");
    skiff::network::ensure_stays_local(cluster_ip).expect("the Service CIDR is kept local");
    let ip = cluster_ip.to_string();

    // From the host: every pod, and the ClusterIP is the peer.
    let mut reached = std::collections::BTreeSet::new();
    for _ in 0..30 {
        reached.insert(http_get_eventually(&ip, 80, "/env/POD_NAME").await);
    }
    assert_eq!(
        reached.len(),
        3,
        "30 requests reach all 3 pods: {reached:?}"
    );
    let stream =
        TcpStream::connect_timeout(&SocketAddr::from((cluster_ip, 80)), Duration::from_secs(2))
            .expect("connect to the ClusterIP");
    assert_eq!(
        stream.peer_addr().expect("getpeername"),
        SocketAddr::from((cluster_ip, 80)),
        "getpeername() names the Service, not the pod"
    );
    drop(stream);

    // UDP: the reply comes from the ClusterIP.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut answered = None;
    for _ in 0..10 {
        socket
            .send_to(b"ping", SocketAddr::from((cluster_ip, 7)))
            .expect("send to the ClusterIP");
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            answered = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    let (payload, from) = answered.expect("a UDP answer through the ClusterIP");
    assert_eq!(payload, b"ping");
    assert_eq!(
        from,
        SocketAddr::from((cluster_ip, 7)),
        "the reply names the Service"
    );

    // NodePort (`kubectl expose`, as a user would): 127.0.0.1 and the node's IP reach the
    // pods from the host.
    let out = cluster.master.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--name=web-np",
        "--type=NodePort",
        "--port=80",
        "--target-port=8080",
    ]);
    assert!(out.success(), "{out}");
    let out = cluster.master.kubectl(&[
        "get",
        "service",
        "web-np",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let node_port: u16 = out.stdout.trim().parse().expect("a nodePort");
    let out = cluster.master.kubectl(&[
        "get",
        "node",
        node_a,
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    let node_ip = out.stdout.trim().to_owned();
    for address in ["127.0.0.1", node_ip.as_str()] {
        let name = http_get_eventually(address, node_port, "/env/POD_NAME").await;
        assert!(
            reached.contains(&name),
            "{address}:{node_port} reaches a web pod: {name:?}"
        );
    }

    // From a pod on the other node.
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: {node_b}
  volumes: [{{name: out, emptyDir: {{}}}}]
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [fetch, {ip}, "80", /env/POD_NAME, /out/fetched, fetch, web, "80", /env/POD_NAME, /out/by-name, serve, "8081", /out]
    volumeMounts: [{{name: out, mountPath: /out}}]
"#
    ));
    let client = cluster.wait_running("client").await;
    let fetched = http_get_eventually(&pod_ip(&client), 8081, "/file/fetched").await;
    assert!(
        reached.contains(fetched.trim()),
        "the pod on the other node reached a web pod through the ClusterIP: {fetched:?}"
    );
    // By name: the cluster DNS, itself behind the kube-dns ClusterIP, through this mode too.
    let by_name = http_get_eventually(&pod_ip(&client), 8081, "/file/by-name").await;
    assert!(
        reached.contains(by_name.trim()),
        "the pod reached a web pod by the Service's name: {by_name:?}"
    );

    if test.ebpf() {
        // The agents count what their programs translated, per frontend, in their /metrics
        // (the first program attached on the machine translates; the other sees a pod
        // address).
        let counted: u64 = test
            .nodes
            .iter()
            .map(|node| {
                let path = format!("/api/v1/nodes/{node}/proxy/metrics");
                let out = cluster.master.kubectl(&["get", "--raw", &path]);
                assert!(out.success(), "{out}");
                out.stdout
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix(&format!(
                            "skiff_proxy_service_connections_total{{frontend=\"{ip}:80/TCP\"}} "
                        ))
                    })
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum();
        assert!(counted >= 30, "{counted} connections counted");
        // The programs of each agent are in the kernel.
        for node in test.nodes {
            let loaded = skiff_node::proxy::datapath::node_programs(node);
            assert!(
                ["connect4", "sendmsg4", "recvmsg4", "getpeername4"]
                    .iter()
                    .all(|name| loaded.iter().any(|(_, l)| l == name)),
                "{node}: {loaded:?}"
            );
        }
    } else {
        // Each agent has its own kube-proxy chains for the ClusterIP (TCP and UDP).
        let rules = nat_rules_naming(&ip);
        let jumps = rules
            .iter()
            .filter(|r| r.starts_with("-A KUBE-SERVICES-") && r.contains("-j KUBE-SVC-"))
            .count();
        assert_eq!(jumps, 4, "two frontends on each of two agents: {rules:#?}");
    }

    // An agent restart under steady traffic loses nothing.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, ip) = (stop.clone(), ip.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http_get(&ip, 80, "/healthz") {
                    Some(_) => ok += 1,
                    None => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    cluster.agent.restart().expect("restart the agent");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = traffic.join().expect("the traffic thread");
    assert!(
        ok > 20 && failed == 0,
        "{ok} requests answered, {failed} lost"
    );

    // Scaled to 1: nothing new reaches a removed pod.
    let out = cluster
        .master
        .kubectl(&["scale", "deployment", "web", "--replicas=1"]);
    assert!(out.success(), "{out}");
    endpoints_are_the_running_pods(&cluster, "web", 1).await;
    let left = cluster
        .pods()
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .expect("one web pod left");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..10 {
        assert_eq!(http_get_eventually(&ip, 80, "/env/POD_NAME").await, left);
    }

    // A connected UDP socket, pinned to the backend its connect chose.
    let connected = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    connected
        .connect(SocketAddr::from((cluster_ip, 7)))
        .expect("connect to the ClusterIP");
    connected
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let echoed = (0..10).any(|_| {
        let mut buf = [0u8; 64];
        connected.send(b"ping").is_ok() && connected.recv(&mut buf).is_ok()
    });
    assert!(echoed, "the connected UDP socket gets its echo");

    // Scaled to 0: refused at once.
    let out = cluster
        .master
        .kubectl(&["scale", "deployment", "web", "--replicas=0"]);
    assert!(out.success(), "{out}");
    endpoints_are_the_running_pods(&cluster, "web", 0).await;
    // Its backend gone, the connected UDP socket is not left sending into nothing: eBPF mode
    // closes it (ECONNABORTED); iptables mode clears its conntrack flow, so its next datagram
    // meets the rules afresh and is refused (no backend left).
    let (expected, what) = match test.ebpf() {
        true => (std::io::ErrorKind::ConnectionAborted, "closed"),
        false => (std::io::ErrorKind::ConnectionRefused, "refused"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut buf = [0u8; 64];
        if !test.ebpf() {
            let _ = connected.send(b"ping");
        }
        match connected.recv(&mut buf) {
            Err(err) if err.kind() == expected => break,
            other => assert!(
                Instant::now() < deadline,
                "the connected UDP socket of a removed backend is {what}, not {other:?}\n{}",
                cluster.agent.log_tail()
            ),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let started = Instant::now();
        match TcpStream::connect_timeout(
            &SocketAddr::from((cluster_ip, 80)),
            Duration::from_secs(2),
        ) {
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                break started.elapsed();
            }
            other => assert!(
                Instant::now() < deadline,
                "a connect with no backend left is refused, not {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused < Duration::from_millis(100),
        "refused at once, not after {refused:?}"
    );

    // A clean stop (agents stopped, `skiff-node proxy cleanup`) takes the programs or rules
    // out, and the ClusterIP then fails on this machine instead of going anywhere.
    // Other tests' agents on this machine have programs of their own: these are this test's.
    let programs: Vec<_> = test
        .nodes
        .iter()
        .flat_map(|node| skiff_node::proxy::datapath::node_programs(node))
        .collect();
    drop(other);
    cluster.agent.stop();
    cluster.agent.proxy_cleanup().expect("proxy cleanup");
    if test.ebpf() {
        assert!(
            programs
                .iter()
                .filter(|(_, name)| name == "connect4")
                .count()
                == 2,
            "both agents had their connect4: {programs:?}"
        );
        let left = skiff_node::proxy::datapath::still_loaded(&programs);
        assert!(left.is_empty(), "no program of the agents left: {left:?}");
    } else {
        let rules = nat_rules_naming(&ip);
        assert!(
            rules.is_empty(),
            "no rule for the ClusterIP left: {rules:#?}"
        );
    }
    skiff::network::ensure_stays_local(cluster_ip).expect("still kept local");
    let err =
        TcpStream::connect_timeout(&SocketAddr::from((cluster_ip, 80)), Duration::from_secs(2))
            .expect_err("nothing answers a ClusterIP without the programs or rules");
    assert_ne!(
        err.kind(),
        std::io::ErrorKind::TimedOut,
        "failed at once: {err}"
    );
}

/// A stand-in for a host outside the node: a network namespace reached through a veth pair,
/// `<device>0` (10.<subnet>.0.1/24, the node's address) on the host and `<device>1`
/// (10.<subnet>.0.2/24) in the namespace. No socket hook applies to its clients (its namespace
/// is none of the node's). It has no default route: it talks to 10.<subnet>.0.1 only, so
/// nothing it sends can leave the machine. Removed when dropped.
struct OutsideHost {
    namespace: skiff::netns::NetworkNamespace,
    link: skiff::netns::Link,
}

impl OutsideHost {
    fn create(netns: &str, device: &str, subnet: u8) -> OutsideHost {
        let mut namespace = skiff::netns::NetworkNamespace::create(netns).expect("namespace");
        let link = namespace.link(device, subnet).expect("a link to the host");
        OutsideHost { namespace, link }
    }

    /// The node's address on the link.
    fn node_ip(&self) -> String {
        self.link.host_ip.clone()
    }

    /// The outside client's address.
    fn client_ip(&self) -> String {
        self.link.inside_ip.clone()
    }

    /// Runs `client` on a thread of its own inside the namespace.
    fn run<T: Send>(&self, client: impl FnOnce() -> T + Send) -> T {
        self.namespace.run(client).expect("entering the namespace")
    }
}

/// NodePort from outside the node, through the TC programs on the device of the node's IP: a
/// client in another network namespace reaches both pods over TCP, each connection staying on
/// one backend, with the replies coming from the node's address and nodePort (UDP too); the
/// host and the node's pods reach it through the socket hooks; once the agent is stopped and
/// cleaned up, the programs are gone and the host itself refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_port_reaches_every_pod_from_outside_the_node() {
    node_port_from_outside(OutsideTest {
        mode: "ebpf",
        node: "t-np",
        pod_cidr: "10.244.230.0/24",
        service_cidr: "10.100.230.0/24",
        outside: OutsideHost::create("skiff-t-np", "sknp", 203),
    })
    .await;
}

/// The same through kube-proxy's iptables rules (DNAT in PREROUTING, masquerade, and the
/// forwarding rule for what they translate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_port_reaches_every_pod_from_outside_the_node_in_iptables_mode() {
    node_port_from_outside(OutsideTest {
        mode: "iptables",
        node: "t-npi",
        pod_cidr: "10.244.231.0/24",
        service_cidr: "10.100.231.0/24",
        outside: OutsideHost::create("skiff-t-npi", "sknpi", 204),
    })
    .await;
}

struct OutsideTest {
    mode: &'static str,
    node: &'static str,
    pod_cidr: &'static str,
    /// Of this test's own, as [`ProxyTest`]'s.
    service_cidr: &'static str,
    outside: OutsideHost,
}

async fn node_port_from_outside(test: OutsideTest) {
    let outside = &test.outside;
    let node_ip = outside.node_ip();
    let mut node = NodeOptions::new(test.node, test.pod_cidr);
    node.extra_args = vec![
        format!("--proxy-mode={}", test.mode),
        format!("--service-cluster-ip-range={}", test.service_cidr),
        format!("--node-ip={node_ip}"),
    ];
    let master = MasterOptions {
        extra_args: vec![format!("--service-cluster-ip-range={}", test.service_cidr)],
        ..Default::default()
    };
    let mut cluster = Cluster::start_with_master(master, node).await;
    cluster.apply(&format!(
        r#"
{}
---
apiVersion: v1
kind: Service
metadata: {{name: np}}
spec:
  type: NodePort
  selector: {{app: np}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
  - {{name: echo, port: 7, protocol: UDP, targetPort: 7007}}
"#,
        echo_deployment("np", 2, test.node)
    ));
    endpoints_are_the_running_pods(&cluster, "np", 2).await;
    let node_port = |index: usize| {
        let path = format!("jsonpath={{.spec.ports[{index}].nodePort}}");
        let out = cluster
            .master
            .kubectl(&["get", "service", "np", "-o", &path]);
        assert!(out.success(), "{out}");
        out.stdout.trim().parse::<u16>().expect("a nodePort")
    };
    let (tcp_port, udp_port) = (node_port(0), node_port(1));
    if test.mode == "ebpf" {
        let loaded = skiff_node::proxy::datapath::node_programs(test.node);
        assert!(
            ["nodeport_ingres", "nodeport_egress"]
                .iter()
                .all(|name| loaded.iter().any(|(_, l)| l.starts_with(name))),
            "the TC programs are loaded (names cut at 15 characters): {loaded:?}"
        );
    }

    // TCP: new connections from outside spread over both pods; each is a whole HTTP exchange,
    // so every packet of a connection went to one backend and every reply came back from the
    // node's address (the client's socket would not take it from anyone else).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reached = std::collections::BTreeSet::new();
    let mut requests = 0;
    while reached.len() < 2 || requests < 20 {
        match outside.run(|| http_get(&node_ip, tcp_port, "/env/POD_NAME")) {
            Some(name) => {
                reached.insert(name);
                requests += 1;
            }
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        assert!(
            Instant::now() < deadline,
            "{}:{tcp_port} from outside the node: {requests} answers, pods {reached:?}\n{}",
            &node_ip,
            cluster.agent.log_tail()
        );
    }
    assert_eq!(reached.len(), 2, "both pods answered: {reached:?}");
    let peer = outside.run(|| {
        let stream = TcpStream::connect_timeout(
            &format!("{}:{tcp_port}", node_ip)
                .parse()
                .expect("an address"),
            Duration::from_secs(2),
        )
        .expect("connect from outside");
        stream.peer_addr().expect("getpeername")
    });
    assert_eq!(peer.to_string(), format!("{}:{tcp_port}", node_ip));

    // UDP: the echo comes back from the node's address and nodePort.
    let answered = outside.run(|| {
        let socket = std::net::UdpSocket::bind((outside.client_ip(), 0)).expect("a UDP socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let to: SocketAddr = format!("{}:{udp_port}", node_ip)
            .parse()
            .expect("an address");
        (0..10).find_map(|_| {
            socket.send_to(b"ping", to).ok()?;
            let mut buf = [0u8; 64];
            let (n, from) = socket.recv_from(&mut buf).ok()?;
            Some((buf[..n].to_vec(), from))
        })
    });
    let (payload, from) = answered.expect("a UDP answer through the NodePort");
    assert_eq!(payload, b"ping");
    assert_eq!(
        from.to_string(),
        format!("{}:{udp_port}", node_ip),
        "the reply names the node's address and nodePort"
    );

    // The node's own clients reach it too: the host, and a pod of the node. In eBPF mode
    // through the socket hooks (the pod's namespace is the node's from the start; were it
    // not, its packets would meet no TC program on the pod bridge and the host would refuse
    // them).
    let name = http_get_eventually(&node_ip, tcp_port, "/env/POD_NAME").await;
    assert!(reached.contains(&name), "the host reached a pod: {name:?}");
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: np-client}}
spec:
  nodeName: {node}
  volumes: [{{name: out, emptyDir: {{}}}}]
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [fetch, {node_ip}, "{tcp_port}", /env/POD_NAME, /out/fetched, serve, "8081", /out]
    volumeMounts: [{{name: out, mountPath: /out}}]
"#,
        node = test.node,
    ));
    let client = cluster.wait_running("np-client").await;
    let fetched = http_get_eventually(&pod_ip(&client), 8081, "/file/fetched").await;
    assert!(
        reached.contains(fetched.trim()),
        "a pod of the node reached a pod through the NodePort: {fetched:?}"
    );

    // Stopped and cleaned up: the TC links or the rules are gone, and the host refuses the
    // port itself.
    cluster.agent.stop();
    cluster.agent.proxy_cleanup().expect("proxy cleanup");
    assert!(
        !skiff_node::proxy::datapath::pin_dir(test.node).exists(),
        "no pins left"
    );
    let refused = outside.run(|| {
        TcpStream::connect_timeout(
            &format!("{}:{tcp_port}", node_ip)
                .parse()
                .expect("an address"),
            Duration::from_secs(2),
        )
    });
    assert!(
        matches!(&refused, Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused),
        "without the programs or rules nothing behind the nodePort answers: {refused:?}"
    );
}

/// `rm -rf .skiff` with an earlier cluster's pods still on Docker, then a new cluster whose
/// node gets another pod CIDR: the agent removes the old containers from the old pod network,
/// rebuilds the network on the new CIDR and comes up Ready, and pods run on the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_comes_up_over_an_earlier_clusters_pods_on_another_pod_cidr() {
    const NODE: &str = "t-leftover";
    let earlier = Cluster::start(NODE, "10.244.232.0/24").await;
    earlier.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: old}}
spec:
  nodeName: {NODE}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
"#
    ));
    earlier.wait_running("old").await;
    let old = docker::node_containers(NODE, Some("old")).expect("list containers");
    assert!(!old.is_empty(), "the old pod's containers are on Docker");
    let Cluster { agent, master, .. } = earlier;
    agent.leave_behind();
    drop(master);

    let mut opts = NodeOptions::new(NODE, "10.244.233.0/24");
    opts.keep_leftovers = true;
    // Starting waits for the Node to be Ready.
    let cluster = Cluster::start_with(opts).await;
    // The sandbox went with the old network; its app container, in the sandbox's namespaces
    // and not on the network, goes with the kubelet's removal of unknown pods' containers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = docker::node_containers(NODE, Some("old")).expect("list containers");
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the earlier cluster's containers are gone: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: new}}
spec:
  nodeName: {NODE}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
"#
    ));
    let pod = cluster.wait_running("new").await;
    let ip = pod_ip(&pod);
    assert!(
        ip.starts_with("10.244.233."),
        "the new pod is on the new pod CIDR: {ip}"
    );
}

/// `kubectl top` with no extra component: the API server serves `metrics.k8s.io` from the
/// agents' summaries, and a pod that burns a CPU shows it while an idle one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_shows_the_node_and_a_busy_pod_using_cpu() {
    const NODE: &str = "t-top";
    let cluster = Cluster::start(NODE, "10.244.234.0/24").await;
    for (name, steps) in [
        ("busy", "[spin, serve, \"8080\", /]"),
        ("idle", "[serve, \"8080\", /]"),
    ] {
        cluster.apply(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {NODE}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: {steps}
"#
        ));
    }
    cluster.wait_running("busy").await;
    cluster.wait_running("idle").await;

    // `kubectl top pods`: NAME CPU(cores) MEMORY(bytes), CPU in millicores.
    let millicores = |out: &str, pod: &str| -> Option<u64> {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(pod))?;
        line.split_whitespace()
            .nth(1)?
            .strip_suffix('m')?
            .parse()
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (busy, idle) = loop {
        let out = cluster.master.kubectl(&["top", "pods", "--no-headers"]);
        if let (Some(busy), Some(idle)) = (
            millicores(&out.stdout, "busy"),
            millicores(&out.stdout, "idle"),
        ) && busy >= 200
        {
            break (busy, idle);
        }
        assert!(
            Instant::now() < deadline,
            "kubectl top pods shows the busy pod using a CPU: {out}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // The machine may be busy with other tests: a spinning process still gets a good share.
    assert!(
        idle.saturating_mul(4) < busy,
        "the idle pod uses little CPU: {idle}m (busy {busy}m)"
    );

    // `kubectl top node`: NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%), the busy pod's CPU
    // included.
    let out = cluster
        .master
        .kubectl(&["top", "node", NODE, "--no-headers"]);
    assert!(out.success(), "{out}");
    let node_cpu = millicores(&out.stdout, NODE).expect("the node's CPU in kubectl top node");
    assert!(node_cpu >= 200, "the node's CPU counts the busy pod: {out}");
    let memory = out.stdout.split_whitespace().nth(3).unwrap_or_default();
    assert!(memory.ends_with("Mi"), "the node's memory: {out}");

    // The API directly: one pod's metrics, and a pod that does not exist.
    let out = cluster.master.kubectl(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy",
    ]);
    assert!(out.success(), "{out}");
    let metrics: serde_json::Value = serde_json::from_str(&out.stdout).expect("PodMetrics");
    assert_eq!(metrics["kind"], "PodMetrics");
    assert_eq!(metrics["containers"][0]["name"], "app", "{metrics}");
    let out = cluster.master.kubectl(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nothing",
    ]);
    assert!(!out.success() && out.stderr.contains("NotFound"), "{out}");
}

/// A configMap volume as the kubelet writes it: the keys as files (`items` renamed and with
/// their mode), mounted read-only, and following an update of the ConfigMap in place; a
/// downwardAPI volume follows the pod's labels the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_volume_follows_its_config_map_and_is_read_only() {
    const NODE: &str = "t-cmvol";
    let mut opts = NodeOptions::new(NODE, "10.244.235.0/24");
    // Syncs (which refresh the volumes) every 2 s instead of every minute.
    opts.extra_args = vec![String::from("--resync-seconds=2")];
    let cluster = Cluster::start_with(opts).await;
    cluster.apply(&format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello, secret-ish: "1234"}}
---
apiVersion: v1
kind: Pod
metadata: {{name: reader, labels: {{app: reader}}}}
spec:
  nodeName: {NODE}
  volumes:
  - name: config
    configMap:
      name: settings
      defaultMode: 0440
      items: [{{key: greeting, path: greeting}}, {{key: secret-ish, path: nested/code, mode: 0400}}]
  - name: podinfo
    downwardAPI:
      items:
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: memory_mi, resourceFieldRef: {{containerName: app, resource: limits.memory, divisor: 1Mi}}}}
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /etc/config]
    resources: {{limits: {{memory: 64Mi}}}}
    volumeMounts: [{{name: config, mountPath: /etc/config}}, {{name: podinfo, mountPath: /etc/podinfo}}]
"#
    ));
    let pod = cluster.wait_running("reader").await;
    let ip = pod_ip(&pod);
    assert_eq!(
        http_get_eventually(&ip, 8080, "/file/greeting").await,
        "hello"
    );

    // Read-only, and the files as asked, in the payload the `..data` symlink names.
    let ids = docker::node_containers(NODE, Some("reader")).expect("containers");
    let app = ids
        .iter()
        .map(|id| docker::inspect_container(id).expect("inspect"))
        .find(|c| {
            c.mounts
                .iter()
                .flatten()
                .any(|m| m.destination.as_deref() == Some("/etc/config"))
        })
        .expect("the app container mounts /etc/config");
    let mount = app
        .mounts
        .iter()
        .flatten()
        .find(|m| m.destination.as_deref() == Some("/etc/config"))
        .expect("the mount");
    assert_eq!(mount.rw, Some(false), "mounted read-only: {mount:?}");
    let host_dir = std::path::PathBuf::from(mount.source.clone().expect("a source"));
    let mode = |path: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(host_dir.join(path))
            .expect(path)
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("greeting"), 0o440);
    assert_eq!(mode("nested/code"), 0o400);
    assert!(
        std::fs::read_link(host_dir.join("..data")).is_ok(),
        "a ..data symlink"
    );
    let podinfo = app
        .mounts
        .iter()
        .flatten()
        .find(|m| m.destination.as_deref() == Some("/etc/podinfo"))
        .expect("the downwardAPI mount");
    assert_eq!(podinfo.rw, Some(false), "mounted read-only: {podinfo:?}");
    let podinfo_dir = std::path::PathBuf::from(podinfo.source.clone().expect("a source"));
    let read = |name: &str| std::fs::read_to_string(podinfo_dir.join(name)).expect(name);
    assert_eq!(read("name"), "reader");
    assert_eq!(read("labels"), "app=\"reader\"");
    assert_eq!(read("memory_mi"), "64");

    // An update shows in the running pod.
    let out = cluster.master.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"greeting":"world"}}"#,
    ]);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = http_get(&ip, 8080, "/file/greeting");
        if body.as_deref() == Some("world") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the volume follows the ConfigMap: {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = cluster
        .master
        .kubectl(&["label", "pod", "reader", "tier=web"]);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let labels = read("labels");
        if labels == "app=\"reader\"\ntier=\"web\"" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the downwardAPI volume follows the labels: {labels:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
