//! What the end-to-end tests of `cargo xtask run` share: a run in its own process group, and
//! the removal of what a run leaves on Docker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A cluster's start: the build (done already by `cargo xtask test`), the master, the agents.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// One `cargo xtask run <args> --state-dir <dir>` in its own process group, its output in a
/// file.
pub struct Run {
    pub child: Child,
    log: PathBuf,
}

impl Run {
    pub fn start(args: &[&str], state_dir: &Path, log: PathBuf) -> Run {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).expect("run log");
        let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("run")
            .args(args)
            .arg("--state-dir")
            .arg(state_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("run log"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("starting cargo xtask run");
        Run { child, log }
    }

    /// What the run printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the run says it is up ("Press Ctrl-C to stop."), failing with its output if
    /// it exits first.
    pub fn wait_up(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("checking on run") {
                panic!("cargo xtask run exited ({status}):\n{}", self.log());
            }
            if self.log().contains("Press Ctrl-C to stop.") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cargo xtask run not up within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Sends `signal` to the whole run (xtask, master and agents) and waits until xtask ends.
    pub fn signal_and_wait(&mut self, signal: i32) {
        let group = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill on a process group this test started.
        unsafe {
            libc::kill(-group, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.child.try_wait().expect("checking on run").is_none() {
            assert!(
                Instant::now() < deadline,
                "cargo xtask run did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal_and_wait(libc::SIGKILL);
        }
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("running docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes what a run leaves on Docker for `nodes`: their containers and pod networks.
pub fn remove_leftovers(nodes: &[&str]) {
    for node in nodes {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.skiff.node={node}"),
        ]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            docker(&[&["rm", "-f"][..], &ids].concat());
        }
        docker(&["network", "rm", &format!("skiff-{node}")]);
    }
}

/// `kubectl --kubeconfig <kubeconfig> <args>`'s output; fails the test when kubectl fails.
#[allow(dead_code)] // The tour runs kubectl in its shell blocks instead.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("running kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
