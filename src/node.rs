//! A real `skiff-node` agent for end-to-end tests and benchmarks, registered with a
//! [`Master`](crate::master::Master) and running pods on the machine's Docker.
//!
//! [`NodeAgent::start`] makes sure dockerd runs ([`crate::docker::ensure_dockerd`]), runs the
//! workspace's `skiff-node` (or the one `$SKIFF_NODE_BIN` names, see [`crate::binaries`]),
//! which joins with a bootstrap token of the master's (and so runs with a client certificate
//! of its own), and waits until its Node is Ready.
//! Dropping it stops the agent and removes every container and the pod network it made, so a
//! test leaves nothing behind; [`NodeAgent::restart`] keeps them (agent restarts adopt them).
//!
//! Its log is `<dir>/agent.log`; start errors quote its tail, and so does a test that panics
//! while holding the agent.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_tooling::process;

use crate::master::Master;
use crate::{binaries, docker};

/// Environment variable naming another `skiff-node` binary to run.
pub const NODE_BIN_ENV: &str = "SKIFF_NODE_BIN";

/// How long until the Node must be Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agent gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of the agent's log quoted in errors.
const LOG_TAIL_LINES: usize = 60;

/// How to run a [`NodeAgent`].
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The Node's name; also names its Docker network `skiff-<name>`. Distinct per test.
    pub name: String,
    /// Its pod CIDR; must not overlap another node's on this machine (Docker refuses
    /// overlapping networks).
    pub pod_cidr: String,
    /// Static pod manifests directory (`--manifests-dir`).
    pub manifests_dir: Option<PathBuf>,
    /// Further arguments for `skiff-node`.
    pub extra_args: Vec<String>,
    /// Start over what an earlier agent of this name left on Docker (its containers and pod
    /// network), as `cargo xtask run` after `rm -rf .skiff` does, instead of clearing it first.
    pub keep_leftovers: bool,
    /// How it joins (`skiff-node join`); `None`: with a new bootstrap token of the master's.
    pub join: Option<JoinOptions>,
}

/// How an agent joins: `skiff-node join <server> --token <token> --ca-cert-hash <pin>`.
pub use skiff_tooling::join::JoinCommand as JoinOptions;

impl NodeOptions {
    /// A node `name` with pod CIDR `pod_cidr` and nothing else.
    pub fn new(name: &str, pod_cidr: &str) -> Self {
        Self {
            name: name.to_owned(),
            pod_cidr: pod_cidr.to_owned(),
            manifests_dir: None,
            extra_args: Vec::new(),
            keep_leftovers: false,
            join: None,
        }
    }
}

/// A new bootstrap token of `master`'s, to join agents with.
pub fn join_options(master: &Master) -> anyhow::Result<JoinOptions> {
    let binary = binaries::binary("skiff-master", crate::master::MASTER_BIN_ENV)?;
    JoinOptions::create(&binary, master.state_dir(), "2h")
}

/// A running `skiff-node`; stopped and cleaned up when dropped.
pub struct NodeAgent {
    opts: NodeOptions,
    kubectl_master: KubectlTarget,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Dropped without removing its containers ([`NodeAgent::leave_behind`]).
    leave_containers: bool,
}

/// What [`NodeAgent`] needs to ask the master about its Node.
#[derive(Clone)]
struct KubectlTarget {
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

impl NodeAgent {
    /// Starts the agent for `master` and waits until its Node is Ready (up to 60 s).
    /// Blocking. Fails with a clear message when Docker cannot be started.
    pub fn start(master: &Master, opts: NodeOptions) -> anyhow::Result<NodeAgent> {
        docker::ensure_dockerd().context("the node agent needs Docker")?;
        // A previous run that was killed may have left containers of this node name.
        if !opts.keep_leftovers {
            docker::remove_node_containers(&opts.name)?;
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("skiff-node-{}-", opts.name))
            .tempdir()
            .context("creating the agent's directory")?;
        let mut opts = opts;
        if opts.join.is_none() {
            // Every agent joins as a node of its own, with a token of its own.
            opts.join = Some(join_options(master)?);
        }
        let mut agent = NodeAgent {
            opts,
            kubectl_master: KubectlTarget {
                kubeconfig: master.kubeconfig_path(),
                cache_dir: master.state_dir().join("kubectl-cache"),
            },
            dir,
            child: None,
            leave_containers: false,
        };
        agent.launch()?;
        Ok(agent)
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.opts.name
    }

    /// The agent's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// The agent's root directory (pod volumes).
    pub fn root_dir(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the agent (SIGTERM, then SIGKILL after 10 s); its containers keep running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::stop(&mut child, STOP_GRACE);
        }
    }

    /// Stops the agent and leaves its containers and pod network on Docker, as a cluster whose
    /// state directory is removed leaves them (its Service programs are cleaned up).
    pub fn leave_behind(mut self) {
        self.leave_containers = true;
    }

    /// Kills the agent with SIGKILL; its containers keep running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the agent if it runs and starts it again with the same options (containers
    /// stay); waits until the Node is Ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }

    /// `skiff-node proxy cleanup` for this node: its Service programs and maps outlive the
    /// agent (as kube-proxy's rules do) until this removes them.
    pub fn proxy_cleanup(&self) -> anyhow::Result<()> {
        let binary = binaries::binary("skiff-node", NODE_BIN_ENV)?;
        let out = Command::new(&binary)
            .args(["proxy", "cleanup", "--node-name", &self.opts.name])
            .output()
            .context("running skiff-node proxy cleanup")?;
        if !out.status.success() {
            bail!(
                "skiff-node proxy cleanup --node-name {}: {}",
                self.opts.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The last lines of the agent's log.
    pub fn log_tail(&self) -> String {
        process::log_tail(&self.log_path(), LOG_TAIL_LINES)
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let binary = binaries::binary("skiff-node", NODE_BIN_ENV)?;
        let mut cmd = Command::new(&binary);
        cmd.arg("--node-name")
            .arg(&self.opts.name)
            .arg("--pod-cidr")
            .arg(&self.opts.pod_cidr)
            .arg("--root-dir")
            .arg(self.root_dir())
            .env("RUST_LOG", "info,skiff_node=debug")
            // An error that stops the agent ends its log with its message, not a backtrace
            // (panics keep theirs).
            .env("RUST_LIB_BACKTRACE", "0");
        if let Some(dir) = &self.opts.manifests_dir {
            cmd.arg("--manifests-dir").arg(dir);
        }
        // Several agents run at once: each serves its endpoint on a free port (published in
        // its Node's status), unless the test picks one.
        let port_given = self
            .opts
            .extra_args
            .iter()
            .any(|arg| arg == "--port" || arg.starts_with("--port="));
        if !port_given {
            cmd.arg("--port").arg("0");
        }
        // Service load balancing is for the tests about it: every agent's socket programs see
        // every connect on the machine, and other tests' clusters use the same Service CIDR.
        let proxy_given = self
            .opts
            .extra_args
            .iter()
            .any(|arg| arg.starts_with("--proxy-mode"));
        if !proxy_given {
            cmd.arg("--proxy-mode=none");
        }
        cmd.args(&self.opts.extra_args);
        if let Some(join) = &self.opts.join {
            cmd.args(join.args());
        }
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(log, "=== skiff test harness: starting {cmd:?}")?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().context("agent log")?)
            .stderr(log);
        self.child = Some(process::spawn_tied(cmd).context("starting skiff-node")?);
        if let Err(err) = self.wait_ready() {
            self.stop();
            bail!(
                "skiff-node {} did not become Ready: {err:#}\n--- last lines of its log {} ---\n{}",
                self.opts.name,
                log_path.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Waits until the Node's Ready condition is True.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("checking on skiff-node")?
            {
                self.child = None;
                bail!("skiff-node exited ({status})");
            }
            let out = Command::new(crate::master::KUBECTL)
                .arg("--kubeconfig")
                .arg(&self.kubectl_master.kubeconfig)
                .arg("--cache-dir")
                .arg(&self.kubectl_master.cache_dir)
                .args(["get", "node", &self.opts.name, "-o", jsonpath])
                .output()
                .context("running kubectl")?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "True" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Node {} not Ready after {READY_TIMEOUT:?}", self.opts.name);
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- last lines of the skiff-node {} log {} ---\n{}",
                self.opts.name,
                self.log_path().display(),
                self.log_tail()
            );
        }
        self.stop();
        if let Err(err) = self.proxy_cleanup() {
            eprintln!("skiff test harness: {err:#}");
        }
        if !self.leave_containers
            && let Err(err) = docker::remove_node_containers(&self.opts.name)
        {
            eprintln!(
                "skiff test harness: cleaning up node {}: {err:#}",
                self.opts.name
            );
        }
    }
}
