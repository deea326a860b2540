//! The node agent when Docker goes away: the node turns NotReady with the reason, the agent
//! keeps running, and once Docker is back the node is Ready again and its pods run again.
//!
//! Its own test binary: it stops the machine's dockerd, so it must not share a process with
//! other Docker tests (cargo runs test binaries one after another).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use skiff::docker;
use skiff::master::{Master, MasterOptions};
use skiff::node::{NodeAgent, NodeOptions};

const WAIT: Duration = Duration::from_secs(90);

/// The node's Ready condition: status and message.
async fn ready(nodes: &Api<Node>, name: &str) -> (String, String) {
    let node = nodes.get(name).await.expect("get node");
    node.status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status, c.message.unwrap_or_default()))
        .unwrap_or_default()
}

/// Stops dockerd (SIGTERM to the pid in /var/run/docker.pid) and waits until it is gone.
fn stop_dockerd() {
    let pid: i32 = std::fs::read_to_string("/var/run/docker.pid")
        .expect("dockerd's pid file")
        .trim()
        .parse()
        .expect("a pid");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "dockerd (pid {pid}) did not stop"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether process `pid` exists and has not exited. A dockerd started by an earlier test
/// process belongs to PID 1 now, which may not reap it at once: a zombie counts as stopped.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        !state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_going_away_makes_the_node_not_ready_until_it_returns() {
    docker::ensure_dockerd().expect("Docker must run for the node tests");
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let agent = NodeAgent::start(&master, NodeOptions::new("t-faults", "10.244.214.0/24"))
        .expect("start skiff-node");
    let client = master.kube_client().await.expect("client");
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let out = master.kubectl_with_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: survivor}}\nspec:\n  nodeName: t-faults\n  containers:\n  - {{name: app, image: {}}}\n",
            skiff_node::images::PAUSE_IMAGE
        ),
    );
    assert!(out.success(), "{out}");
    let running = async |what: &str| {
        let deadline = Instant::now() + WAIT;
        loop {
            let pod = pods.get("survivor").await.expect("pod");
            let status = pod.status.unwrap_or_default();
            if status.phase.as_deref() == Some("Running")
                && status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pod not running {what}: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    running("at first").await;

    tokio::task::spawn_blocking(stop_dockerd)
        .await
        .expect("stop dockerd");
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, message) = ready(&nodes, "t-faults").await;
        if status == "False" {
            assert!(
                message.contains("container runtime is down"),
                "Ready=False without the reason: {message:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node still Ready with Docker stopped:\n{}",
            agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        agent
            .pid()
            .and_then(|pid| i32::try_from(pid).ok())
            .is_some_and(alive),
        "the agent exited when Docker went away"
    );

    tokio::task::spawn_blocking(docker::ensure_dockerd)
        .await
        .expect("join")
        .expect("start dockerd again");
    let deadline = Instant::now() + WAIT;
    while ready(&nodes, "t-faults").await.0 != "True" {
        assert!(
            Instant::now() < deadline,
            "node not Ready again after Docker returned:\n{}",
            agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Docker stopped the pod's containers with it; the agent started them again.
    let deadline = Instant::now() + WAIT;
    loop {
        let ids = docker::node_containers("t-faults", None).expect("list containers");
        let live = ids
            .iter()
            .filter_map(|id| docker::inspect_container(id).ok())
            .filter(|c| c.state.as_ref().and_then(|state| state.running) == Some(true))
            .count();
        if live >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pod's sandbox and app container are not running again ({live} of {} running):\n{}",
            ids.len(),
            agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    running("after Docker returned").await;
}
