//! Probes end to end: the agent probes the pods it runs (httpGet, tcpSocket and exec through
//! the real Docker), readiness decides Ready and the Endpoints, a failing liveness probe
//! restarts the container with an Event, a startup probe holds the other two back, and probes
//! that cannot work leave a pod unready and everything else alone.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Cluster, POD_TIMEOUT, WORKLOAD_IMAGE, container_status, phase, pod_ip, ready};

/// A pod serving HTTP on 8080 from `dir` (a hostPath the test writes), with `probes` (YAML,
/// indented for the container) on its container `app`.
fn probed_pod(name: &str, node: &str, dir: &Path, probes: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /probe]
    ports: [{{name: http, containerPort: 8080}}]
    volumeMounts: [{{name: probe, mountPath: /probe}}]
{probes}
  volumes: [{{name: probe, hostPath: {{path: {dir}, type: Directory}}}}]"#,
        dir = dir.display()
    )
}

/// `ready|notReady` IPs of the Endpoints `name`.
fn endpoint_ips(cluster: &Cluster, name: &str) -> String {
    let out = cluster.master.kubectl(&[
        "get",
        "endpoints",
        name,
        "-o",
        "jsonpath={.subsets[*].addresses[*].ip}|{.subsets[*].notReadyAddresses[*].ip}",
    ]);
    out.stdout.trim().to_owned()
}

async fn wait_endpoints(cluster: &Cluster, name: &str, want: &str) {
    let deadline = Instant::now() + POD_TIMEOUT;
    loop {
        let ips = endpoint_ips(cluster, name);
        if ips == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Endpoints {name}: want {want:?}, have {ips:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_decides_the_endpoints_and_a_failing_liveness_probe_restarts_the_container() {
    let cluster = Cluster::start("probe-node", "10.244.236.0/24").await;
    let node = cluster.agent.name().to_owned();
    let dir = tempfile::tempdir().expect("temp dir");

    // Readiness: an httpGet on a named port, every second.
    let readiness = "    readinessProbe: {httpGet: {path: /file/ready, port: http}, periodSeconds: 1, failureThreshold: 1}";
    cluster.apply(&probed_pod("probed", &node, dir.path(), readiness));
    cluster.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: probed}\nspec:\n  selector: {app: probed}\n  ports: [{port: 80, targetPort: 8080}]",
    );
    let pod = cluster
        .wait_pod("probed", "running", |p| {
            phase(p) == "Running" && !pod_ip(p).is_empty()
        })
        .await;
    let ip = pod_ip(&pod);
    // Running but not Ready: it sits under notReadyAddresses, and the Event says why.
    let events = cluster.wait_event("probed", "Readiness probe failed").await;
    assert!(
        events.contains(
            "Warning Unhealthy Readiness probe failed: HTTP probe failed with statuscode: 404"
        ),
        "{events}"
    );
    let pod = cluster
        .wait_pod("probed", "running", |p| phase(p) == "Running")
        .await;
    assert!(!ready(&pod), "ready before its probe passed");
    assert!(!container_status(&pod, "app").ready);
    wait_endpoints(&cluster, "probed", &format!("|{ip}")).await;

    // The probe passes: Ready, and the address moves to the ready ones.
    std::fs::write(dir.path().join("ready"), "yes").expect("write");
    cluster.wait_running("probed").await;
    wait_endpoints(&cluster, "probed", &format!("{ip}|")).await;
    // It fails again: not ready again, never restarted.
    std::fs::remove_file(dir.path().join("ready")).expect("remove");
    let pod = cluster
        .wait_pod("probed", "not ready again", |p| {
            phase(p) == "Running" && !ready(p)
        })
        .await;
    assert_eq!(container_status(&pod, "app").restart_count, 0);
    wait_endpoints(&cluster, "probed", &format!("|{ip}")).await;

    // Liveness: a failing httpGet restarts the container, with an Event that says why.
    let alive = tempfile::tempdir().expect("temp dir");
    std::fs::write(alive.path().join("alive"), "yes").expect("write");
    let liveness = "    livenessProbe: {httpGet: {path: /file/alive, port: 8080}, periodSeconds: 1, failureThreshold: 2}";
    cluster.apply(&probed_pod("lively", &node, alive.path(), liveness));
    cluster.wait_running("lively").await;
    // Alive for a while: not restarted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod = cluster.wait_running("lively").await;
    assert_eq!(container_status(&pod, "app").restart_count, 0);

    std::fs::remove_file(alive.path().join("alive")).expect("remove");
    let events = cluster
        .wait_event(
            "lively",
            "Container app failed liveness probe, will be restarted",
        )
        .await;
    assert!(
        events.contains(
            "Warning Unhealthy Liveness probe failed: HTTP probe failed with statuscode: 404"
        ),
        "{events}"
    );
    let pod = cluster
        .wait_pod("lively", "restarted", |p| {
            container_status(p, "app").restart_count >= 1
        })
        .await;
    let last = container_status(&pod, "app")
        .last_state
        .and_then(|s| s.terminated)
        .expect("the killed container's termination");
    // The workload ends on SIGTERM with 143.
    assert_eq!(last.exit_code, 143, "{last:?}");
    // Healthy again: it keeps running.
    std::fs::write(alive.path().join("alive"), "yes").expect("write");
    let pod = cluster.wait_running("lively").await;
    let restarts = container_status(&pod, "app").restart_count;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod = cluster.wait_running("lively").await;
    assert_eq!(container_status(&pod, "app").restart_count, restarts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startup_probe_holds_liveness_back_and_broken_probes_only_keep_a_pod_unready() {
    let cluster = Cluster::start("startup-node", "10.244.237.0/24").await;
    let node = cluster.agent.name().to_owned();
    let dir = tempfile::tempdir().expect("temp dir");

    // Started once `/probe/started` exists (an exec through Docker; the workload waits
    // forever after its steps unless told to exit); the liveness probe
    // would fail at once (no `/probe/alive`), but waits for the startup probe.
    let probes = "    startupProbe: {exec: {command: [/entrypoint, cat, /probe/started, exit, '0']}, periodSeconds: 1, failureThreshold: 120}
    livenessProbe: {httpGet: {path: /file/alive, port: 8080}, periodSeconds: 1, failureThreshold: 1}
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}";
    cluster.apply(&probed_pod("slow", &node, dir.path(), probes));
    cluster.wait_event("slow", "Startup probe failed").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pod = cluster
        .wait_pod("slow", "running", |p| phase(p) == "Running")
        .await;
    let status = container_status(&pod, "app");
    assert_eq!(status.started, Some(false), "{status:?}");
    assert!(!status.ready);
    assert_eq!(
        status.restart_count, 0,
        "the liveness probe ran before startup"
    );

    std::fs::write(dir.path().join("alive"), "yes").expect("write");
    std::fs::write(dir.path().join("started"), "yes").expect("write");
    let pod = cluster.wait_running("slow").await;
    let status = container_status(&pod, "app");
    assert_eq!(status.started, Some(true));
    assert_eq!(status.restart_count, 0);

    // Probes that cannot work: a command that does not exist, a port nothing listens on.
    let tasks_before = agent_tasks(&cluster, &node);
    let broken = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: broken}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: no-command
    image: {WORKLOAD_IMAGE}
    args: [pause]
    readinessProbe: {{exec: {{command: [/no/such/command]}}, periodSeconds: 1}}
  - name: no-listener
    image: {WORKLOAD_IMAGE}
    args: [serve, "8080", /]
    readinessProbe: {{tcpSocket: {{port: 9999}}, periodSeconds: 1}}"#
    );
    cluster.apply(&broken);
    let events = cluster.wait_event("broken", "connect:").await;
    assert!(
        events.contains("Readiness probe failed: dial tcp"),
        "{events}"
    );
    let events = cluster.wait_event("broken", "/no/such/command").await;
    assert!(
        events.contains("Warning Unhealthy Readiness probe failed"),
        "{events}"
    );
    let pod = cluster
        .wait_pod("broken", "running", |p| phase(p) == "Running")
        .await;
    assert!(!ready(&pod));
    for name in ["no-command", "no-listener"] {
        let status = container_status(&pod, name);
        assert!(!status.ready && status.restart_count == 0, "{status:?}");
    }
    assert!(
        agent_tasks(&cluster, &node) > tasks_before,
        "no probe workers"
    );
    // The other pod is not disturbed, and deleting the broken one ends its worker and probes.
    let out = cluster
        .master
        .kubectl(&["delete", "pod", "broken", "--wait=true"]);
    assert!(out.success(), "{out}");
    let pod = cluster.wait_running("slow").await;
    assert_eq!(container_status(&pod, "app").restart_count, 0);
    wait_agent_tasks_back(&cluster, &node, tasks_before, "the broken pod").await;
}

/// Waits until the agent's task count is back to `before` (what it had before `what`).
pub async fn wait_agent_tasks_back(cluster: &Cluster, node: &str, before: u64, what: &str) {
    let deadline = Instant::now() + POD_TIMEOUT;
    loop {
        let tasks = agent_tasks(cluster, node);
        if tasks <= before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent has {tasks} tasks, {before} before {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The agent's live tasks, from its `/metrics` through the API server's node proxy.
pub fn agent_tasks(cluster: &Cluster, node: &str) -> u64 {
    let path = format!("/api/v1/nodes/{node}/proxy/metrics");
    let out = cluster.master.kubectl(&["get", "--raw", &path]);
    assert!(out.success(), "{out}");
    out.stdout
        .lines()
        .find_map(|line| line.strip_prefix("skiff_agent_tasks "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no skiff_agent_tasks in {}", out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_run_adopts_its_pods_and_probes_them_again() {
    let mut cluster = Cluster::start("probe-kill-node", "10.244.242.0/24").await;
    let node = cluster.agent.name().to_owned();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ready"), "yes").expect("write");
    let readiness = "    readinessProbe: {httpGet: {path: /file/ready, port: 8080}, periodSeconds: 1, failureThreshold: 1}";
    cluster.apply(&probed_pod("survivor", &node, dir.path(), readiness));
    let pod = cluster.wait_running("survivor").await;
    let container_id = container_status(&pod, "app").container_id;

    // SIGKILL: no chance to tidy up. While it is down the pod stops being ready.
    cluster.agent.kill9();
    std::fs::remove_file(dir.path().join("ready")).expect("remove");
    cluster.agent.restart().expect("restart the agent");

    // The same container, adopted, probed again: not ready, then ready once the file is back.
    let pod = cluster
        .wait_pod("survivor", "not ready after the restart", |p| {
            phase(p) == "Running" && !ready(p)
        })
        .await;
    let status = container_status(&pod, "app");
    assert_eq!(
        status.container_id, container_id,
        "the container was replaced"
    );
    assert_eq!(status.restart_count, 0);
    std::fs::write(dir.path().join("ready"), "yes").expect("write");
    let pod = cluster.wait_running("survivor").await;
    assert_eq!(container_status(&pod, "app").container_id, container_id);
}
