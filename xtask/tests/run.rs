//! `cargo xtask run` end to end, from what an earlier run left behind: a two-node cluster
//! with a pod on each node is killed (its pods stay on Docker, its agents' networks too), its
//! state directory is removed, and a new `run --nodes 2` over the same Docker comes up
//! Ready, removes the earlier cluster's containers, gives its nodes pod CIDRs of its own and
//! runs new pods. Then one of its agents is killed with SIGKILL: the run goes on, the node
//! turns NotReady, a Deployment's pods move to the other node, and `cargo xtask node start`
//! brings the node back Ready. Uses the real kubectl, Docker and the workspace's binaries; needs root and
//! ports 6443 and 10250-10251 (a `cargo xtask run` of the user's must not be running).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::{Run, docker, kubectl, remove_leftovers};

/// The nodes' names, apart from any cluster of the user's on this machine.
const NODE: &str = "xtask-run-e2e";
const OTHER_NODE: &str = "xtask-run-e2e-2";

/// Starts `cargo xtask run --nodes 2` and waits until both nodes are Ready.
fn start_cluster(state_dir: &Path, log: PathBuf, kubeconfig: &Path) -> Run {
    let mut run = Run::start(&["--nodes", "2", "--node-name", NODE], state_dir, log);
    run.wait_up();
    let ready = kubectl(
        kubeconfig,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(ready.trim(), "True True", "both nodes Ready");
    run
}

/// The ids of the containers (running or not) Docker has of pod `pod`.
fn pod_containers(pod: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.kubernetes.pod.name={pod}"),
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

/// Creates pod `name` on `node` (the pause image every agent builds) and waits until it runs;
/// returns its IP.
fn run_pod(kubeconfig: &Path, name: &str, node: &str) -> String {
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
            "spec": {{"nodeName": "{node}", "terminationGracePeriodSeconds": 0,
                      "containers": [{{"name": "app", "image": "skiff/pause:1"}}]}}}}"#
    );
    let file = std::env::temp_dir().join(format!("{name}-{}.json", std::process::id()));
    std::fs::write(&file, manifest).expect("manifest");
    kubectl(kubeconfig, &["create", "-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = kubectl(
            kubeconfig,
            &[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.status.phase} {.status.podIP}",
            ],
        );
        if let Some(ip) = state.strip_prefix("Running ").filter(|ip| !ip.is_empty()) {
            return ip.to_owned();
        }
        assert!(Instant::now() < deadline, "pod {name} not Running: {state}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn pod_cidr(kubeconfig: &Path, node: &str) -> String {
    kubectl(
        kubeconfig,
        &["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"],
    )
}

/// Whether `ip` lies in the /24 `cidr` (the master gives each node one).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let prefix = cidr.trim_end_matches("0/24");
    !prefix.is_empty() && ip.starts_with(prefix)
}

/// Four replicas that each ask for some CPU (so the scheduler spreads them over both nodes)
/// and leave an unreachable node after 2 s instead of 300.
const MOVER: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "mover"},
  "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "mover"}},
    "template": {"metadata": {"labels": {"app": "mover"}},
      "spec": {"terminationGracePeriodSeconds": 0,
        "tolerations": [
          {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
          {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}],
        "containers": [{"name": "app", "image": "skiff/pause:1",
          "resources": {"requests": {"cpu": "100m"}}}]}}}}"#;

fn kubectl_apply(kubeconfig: &Path, manifest: &str) {
    let file = std::env::temp_dir().join(format!("xtask-run-e2e-{}.json", std::process::id()));
    std::fs::write(&file, manifest).expect("manifest");
    kubectl(kubeconfig, &["apply", "-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
}

/// Waits until `count` pods with `selector` run, each on a node `on` accepts, and no other pod
/// of theirs is pending (pods being deleted aside); returns their nodes.
fn wait_pods(
    kubeconfig: &Path,
    selector: &str,
    count: usize,
    on: impl Fn(&str) -> bool,
) -> Vec<String> {
    // The node monitor's grace period (40 s), the toleration (2 s), the new pods' start.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let listed = kubectl(
            kubeconfig,
            &[
                "get",
                "pods",
                "-l",
                selector,
                "-o",
                "jsonpath={range .items[*]}{.status.phase} {.metadata.deletionTimestamp} {.spec.nodeName}{\"\\n\"}{end}",
            ],
        );
        let running: Vec<String> = listed
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    ["Running", node] => Some((*node).to_owned()),
                    _ => None,
                }
            })
            .collect();
        // Pods being deleted (evicted from an unreachable node) do not count.
        let all_listed = listed
            .lines()
            .filter(|l| (1..3).contains(&l.split_whitespace().count()))
            .count();
        if running.len() == count && all_listed == count && running.iter().all(|n| on(n)) {
            return running;
        }
        assert!(
            Instant::now() < deadline,
            "pods {selector} not as wanted:\n{listed}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `cargo xtask node <args> --state-dir <state_dir>`.
fn xtask_node(state_dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("node")
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .output()
        .expect("cargo xtask node");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[derive(Debug)]
#[allow(dead_code)] // stderr shows in assertion messages.
struct Output {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

#[test]
fn a_cluster_comes_up_over_what_a_killed_cluster_left_and_outlives_a_killed_node() {
    remove_leftovers(&[NODE, OTHER_NODE]);
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().join(".skiff");
    let kubeconfig = state_dir.join("kubeconfig");

    // The first cluster, with a pod on each node; then it is killed outright.
    let mut first = start_cluster(&state_dir, state.path().join("first.log"), &kubeconfig);
    let old_cidrs = [
        pod_cidr(&kubeconfig, NODE),
        pod_cidr(&kubeconfig, OTHER_NODE),
    ];
    let old_ips = [
        run_pod(&kubeconfig, "before-a", NODE),
        run_pod(&kubeconfig, "before-b", OTHER_NODE),
    ];
    assert!(
        in_cidr(&old_ips[0], &old_cidrs[0]),
        "{old_ips:?} {old_cidrs:?}"
    );
    first.signal_and_wait(libc::SIGKILL);
    drop(first);
    assert!(
        !pod_containers("before-a").is_empty(),
        "the killed cluster's pods stay on Docker"
    );

    // A fresh state: the new master knows none of those pods and hands out CIDRs anew.
    std::fs::remove_dir_all(&state_dir).expect("removing the state dir");
    let mut second = start_cluster(&state_dir, state.path().join("second.log"), &kubeconfig);
    for old in ["before-a", "before-b"] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pod_containers(old).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the earlier cluster's {old} is still on Docker"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    for node in [NODE, OTHER_NODE] {
        let cidr = pod_cidr(&kubeconfig, node);
        let ip = run_pod(&kubeconfig, &format!("after-{node}"), node);
        assert!(
            in_cidr(&ip, &cidr),
            "pod on {node} got {ip}, not from {cidr}"
        );
    }

    // A node agent killed outright: the run says so and goes on; the node turns NotReady and
    // a Deployment's pods there move to the other node; `cargo xtask node start` brings it
    // back Ready.
    kubectl_apply(&kubeconfig, MOVER);
    let mover_nodes = wait_pods(&kubeconfig, "app=mover", 4, |_| true);
    assert!(
        mover_nodes.iter().any(|n| n == OTHER_NODE),
        "no replica on {OTHER_NODE}: {mover_nodes:?}"
    );
    let pid = second
        .log()
        .lines()
        .find_map(|line| line.strip_prefix(&format!("node {OTHER_NODE} (pid ")))
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse::<i32>().ok())
        .expect("the run names the agent's pid");
    // SAFETY: kill on the agent this test's run started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !second
        .log()
        .contains(&format!("node {OTHER_NODE} exited on its own"))
    {
        assert!(
            Instant::now() < deadline,
            "no word of the dead node:\n{}",
            second.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        second.child.try_wait().expect("run").is_none(),
        "the run stopped:\n{}",
        second.log()
    );
    assert!(
        second
            .log()
            .contains(&format!("cargo xtask node start {OTHER_NODE}"))
    );
    let moved = wait_pods(&kubeconfig, "app=mover", 4, |node| node == NODE);
    assert_eq!(moved.len(), 4, "{moved:?}");
    let node_state = |node: &str| {
        kubectl(
            &kubeconfig,
            &[
                "get",
                "node",
                node,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        )
    };
    assert_eq!(node_state(OTHER_NODE), "Unknown");
    assert_eq!(node_state(NODE), "True");
    let unknown = xtask_node(&state_dir, &["start", "no-such-node"]);
    assert!(
        !unknown.status.success() && unknown.stdout.contains("no node no-such-node"),
        "{unknown:?}"
    );
    let started = xtask_node(&state_dir, &["start", OTHER_NODE]);
    assert!(started.status.success(), "{started:?}");
    assert!(started.stdout.contains("is Ready again"), "{started:?}");
    assert_eq!(node_state(OTHER_NODE), "True");
    // The returned agent finishes the pods evicted from it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names = kubectl(
            &kubeconfig,
            &["get", "pods", "-l", "app=mover", "-o", "name"],
        );
        if names.lines().count() == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "evicted pods left: {names}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let again = xtask_node(&state_dir, &["start", OTHER_NODE]);
    assert!(
        again.status.success() && again.stdout.contains("runs already"),
        "{again:?}"
    );

    // A clean stop leaves the pods on Docker for the next run; the test takes them away.
    second.signal_and_wait(libc::SIGINT);
    assert!(
        second.log().contains("stopped (skiff-master"),
        "no clean stop:\n{}",
        second.log()
    );
    drop(second);
    remove_leftovers(&[NODE, OTHER_NODE]);
}
