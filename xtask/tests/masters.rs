//! `cargo xtask run --masters 3` end to end: three masters on a three-member etcd cluster,
//! behind the api-balancer on 127.0.0.1:6443, and an agent that joined all three. The master
//! that leads the scheduler and the controllers is killed with SIGKILL: the run says so and
//! goes on, kubectl keeps working through the kubeconfig, another master takes the lead, the
//! agent keeps renewing its Lease through its node-local balancer, and a Deployment created
//! after the kill is scheduled and runs. Uses the real kubectl, etcd, Docker and the
//! workspace's binaries; needs root and ports 6443-6446, 2379-2384 and 10250.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use support::{Run, kubectl, remove_leftovers};

const NODE: &str = "xtask-masters-e2e";

/// The holder of the controllers' Lease, or "" while none holds it.
fn leader(kubeconfig: &Path) -> String {
    kubectl(
        kubeconfig,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
            "--ignore-not-found",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
    .trim()
    .to_owned()
}

/// Waits until a master holds the Lease (other than `not`); returns its identity.
fn wait_leader(kubeconfig: &Path, not: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let holder = leader(kubeconfig);
        if !holder.is_empty() && holder != not {
            return holder;
        }
        assert!(
            start.elapsed() < within,
            "no new leader after {within:?} (holder {holder:?})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The node's Lease's renewTime.
fn renew_time(kubeconfig: &Path) -> String {
    kubectl(
        kubeconfig,
        &[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            NODE,
            "-o",
            "jsonpath={.spec.renewTime}",
        ],
    )
}

const WEB: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "after-the-kill"},
  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "after"}},
    "template": {"metadata": {"labels": {"app": "after"}},
      "spec": {"terminationGracePeriodSeconds": 0,
        "containers": [{"name": "app", "image": "skiff/pause:1"}]}}}}"#;

#[test]
fn three_masters_survive_the_death_of_the_leader() {
    remove_leftovers(&[NODE]);
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().join(".skiff");
    let kubeconfig = state_dir.join("kubeconfig");
    let mut run = Run::start(
        &["--masters", "3", "--nodes", "1", "--node-name", NODE],
        &state_dir,
        state.path().join("run.log"),
    );
    run.wait_up();
    let log = run.log();
    assert!(
        log.contains("the embedded store serves one master"),
        "{log}"
    );
    assert!(
        log.contains(
            "3 masters at https://127.0.0.1:6443 (the api-balancer), a 3-member etcd cluster"
        ),
        "{log}"
    );
    assert_eq!(
        kubectl(
            &kubeconfig,
            &[
                "config",
                "view",
                "--minify",
                "-o",
                "jsonpath={.clusters[0].cluster.server}"
            ]
        ),
        "https://127.0.0.1:6443"
    );
    let agent_log = std::fs::read_to_string(state_dir.join("nodes").join(format!("{NODE}.log")))
        .unwrap_or_default();
    assert!(
        agent_log.contains("the API through the node-local load balancer"),
        "{agent_log}"
    );

    // The leader, found by the identity it logged.
    let holder = wait_leader(&kubeconfig, "", Duration::from_secs(30));
    let index = (0..3)
        .find(|i| {
            std::fs::read_to_string(state_dir.join("masters").join(format!("{i}.log")))
                .is_ok_and(|log| log.contains(&format!("identity={holder}")))
        })
        .expect("a master logged the leader's identity");
    let pid: i32 = log
        .lines()
        .find_map(|line| line.strip_prefix(&format!("master {index} (pid ")))
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .expect("the run names the masters' pids");
    let renewed_before = renew_time(&kubeconfig);
    // SAFETY: kill on a master this test's run started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let killed = Instant::now();

    // kubectl through the balancer keeps working at once.
    kubectl(&kubeconfig, &["get", "nodes"]);
    let file = state.path().join("web.json");
    std::fs::write(&file, WEB).expect("manifest");
    kubectl(&kubeconfig, &["apply", "-f", &file.display().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !run
        .log()
        .contains(&format!("master {index} exited on its own"))
    {
        assert!(
            Instant::now() < deadline,
            "no word of the dead master:\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        run.child.try_wait().expect("run").is_none(),
        "the run stopped:\n{}",
        run.log()
    );

    let new = wait_leader(&kubeconfig, &holder, Duration::from_secs(25));
    eprintln!(
        "{new} leads {:?} after {holder} was killed",
        killed.elapsed()
    );

    // The Deployment made during the handover runs on the node.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let phases = kubectl(
            &kubeconfig,
            &[
                "get",
                "pods",
                "-l",
                "app=after",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        );
        if phases.trim() == "Running Running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pods of after-the-kill: {phases:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The agent renewed its Lease after the kill (every 10 s) and its node stays Ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    while renew_time(&kubeconfig) == renewed_before {
        assert!(
            Instant::now() < deadline,
            "the node's Lease was not renewed after the kill"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ready = kubectl(
        &kubeconfig,
        &[
            "get",
            "node",
            NODE,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(ready, "True");

    run.signal_and_wait(libc::SIGTERM);
    kubectl_is_gone(&kubeconfig);
    remove_leftovers(&[NODE]);
}

/// After the run stopped, nothing answers at its kubeconfig.
fn kubectl_is_gone(kubeconfig: &Path) {
    let out = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "--raw", "/readyz", "--request-timeout=2s"])
        .output()
        .expect("kubectl");
    assert!(
        !out.status.success(),
        "the API still answers after the run stopped"
    );
}
