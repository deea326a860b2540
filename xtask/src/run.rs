//! `cargo xtask run`: builds skiff-master and skiff-node, starts the master (and optionally a
//! local etcd) with its state in `<repo>/.skiff` (or `--state-dir`), makes sure Docker runs,
//! starts the node agents (one named after the host by default, or `--node-name`; `--nodes N`
//! for more, each with its own pod CIDR; the first one runs the static pods of
//! `.skiff/manifests`), waits until everything is ready, tells the user how to reach it, and stops everything on Ctrl-C / SIGTERM. A node
//! agent that dies leaves the rest running (its pods move as on a real node's death); `cargo
//! xtask node start|stop|kill <node>` asks the run to bring one back or take it down. Pods
//! keep running in Docker when the agents stop; the next `run` adopts them. The agents' Service
//! programs are detached, or their iptables rules removed (`skiff-node proxy cleanup`).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use skiff_tooling::dockerd;
use skiff_tooling::join::JoinCommand;
use skiff_tooling::process::log_tail;
use skiff_tooling::workspace::{self, Profile};

use crate::process::{Supervised, shutdown_flag};
use crate::{setup, step};

mod control_plane;

use control_plane::{ControlPlane, Plan};

/// The first agent's HTTPS port (the kubelet's); agent `i` serves on this + `i`.
const KUBELET_PORT: u16 = 10250;
/// How long a start may take before we give up (a first start generates its certificates).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags of `cargo xtask run`.
pub struct Options {
    /// Start a local etcd and keep the master's state there.
    pub etcd: bool,
    /// How many masters (more than one: on an etcd cluster, behind an API balancer).
    pub masters: usize,
    /// Build and run release binaries.
    pub release: bool,
    /// How many node agents to start (0: none).
    pub nodes: usize,
    /// The agents' `--proxy-mode`.
    pub proxy_mode: String,
    /// The first node's name (`None`: the host's).
    pub node_name: Option<String>,
    /// Where the cluster keeps its state.
    pub state_dir: PathBuf,
}

/// Runs the cluster until a shutdown signal; exits non-zero if the master (or etcd) dies on its
/// own. A node agent that dies is reported, and the cluster goes on without it until `cargo
/// xtask node start` brings it back.
pub fn run(opts: Options) -> anyhow::Result<ExitCode> {
    step("setup");
    setup::run()?;

    let profile = if opts.release {
        Profile::Release
    } else {
        Profile::Debug
    };
    step(if opts.release {
        "building the workspace (release)"
    } else {
        "building the workspace (debug)"
    });
    let built = workspace::build_binaries(profile)?;
    let master_bin = workspace::binary(&built, "skiff-master")?;
    let node_bin = workspace::binary(&built, "skiff-node")?;

    let state_dir = opts.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let kubeconfig = state_dir.join("kubeconfig");

    if opts.nodes > 0 {
        step("docker");
        ensure_dockerd(&state_dir)?;
        // No registry is reachable: the README's tour runs this locally built shell image.
        let built = Command::new(&node_bin)
            .args(["image", "busybox"])
            .stdout(Stdio::null())
            .status()
            .context("running skiff-node image busybox")?;
        if !built.success() {
            bail!("skiff-node image busybox failed ({built})");
        }
        eprintln!("✓ image skiff/busybox:1 (the host's static busybox)");
    }

    // From here on a Ctrl-C stops the children in order instead of killing xtask.
    let shutdown = shutdown_flag()?;

    // Stopped in reverse order of start when dropped: balancer, masters, then etcd.
    let mut plane = ControlPlane::start(
        &Plan {
            masters: opts.masters,
            etcd: opts.etcd,
            master_bin: &master_bin,
            node_bin: &node_bin,
            state_dir: &state_dir,
        },
        &shutdown,
    )?;

    let launcher = Launcher {
        node_bin: node_bin.clone(),
        state_dir: state_dir.clone(),
        // Each agent joins as a node of its own would (bootstrap token, pinned CA, its own
        // client certificate); an agent that joined before keeps its certificate.
        join: JoinCommand {
            // Several masters: the agents balance and fail over between them.
            server: plane.servers().join(","),
            ..JoinCommand::create(&master_bin, plane.first_state_dir(), "24h")?
        },
        proxy_mode: opts.proxy_mode.clone(),
    };
    let mut agents = Vec::new();
    if opts.nodes > 0 {
        step(&format!(
            "starting {} node agent{}",
            opts.nodes,
            if opts.nodes == 1 { "" } else { "s" }
        ));
        for index in 0..opts.nodes {
            agents.push(launcher.start(&node_name(opts.node_name.as_deref(), index), index)?);
        }
        for agent in &mut agents {
            wait_node_ready(agent, &kubeconfig, &shutdown)?;
        }
    }
    // `cargo xtask node start|stop|kill` finds this run by its pid file.
    let control = Control::open(&state_dir)?;

    let (summary, masters) = plane.describe();
    println!(
        "\nskiff is running: {summary}, state in {}",
        state_dir.display()
    );
    for master in masters {
        println!("{master}");
    }
    for agent in &agents {
        println!(
            "node {} (pid {}): pod CIDR {}, kubelet port {}, log {}",
            agent.name,
            agent.process.as_ref().map_or(0, Supervised::id),
            agent.pod_cidr,
            agent.port,
            agent.log.display()
        );
    }
    if !agents.is_empty() {
        println!(
            "static pods: put Pod manifests into {}",
            state_dir.join("manifests").display()
        );
    }
    println!("In another shell:\n");
    println!("    export KUBECONFIG={}", kubeconfig.display());
    println!("    kubectl get nodes");
    println!("    kubectl get pods");
    if !agents.is_empty() {
        println!(
            "\nA node can be stopped, killed and started again while the cluster runs:\n\n    \
             cargo xtask node stop|kill|start <node>"
        );
    }
    println!("\nPress Ctrl-C to stop.");

    let failed = loop {
        if shutdown.load(Ordering::SeqCst) {
            eprintln!("\nshutting down ...");
            break None;
        }
        if let Some(reason) = plane.check()? {
            break Some(reason);
        }
        for agent in &mut agents {
            if let Some(status) = agent.exited()? {
                agent.process = None;
                eprintln!("{}", death_notice(agent, &status.to_string()));
            }
        }
        control.serve(&mut agents, &launcher, &kubeconfig, &shutdown)?;
        thread::sleep(Duration::from_millis(200));
    };

    // Agents first (their pods keep running in Docker), then the master. The agents' Service
    // programs or rules outlive them (as kube-proxy's rules do) until `proxy cleanup` takes
    // them out: a stopped cluster leaves nothing attached to the machine's sockets.
    drop(control);
    for agent in &mut agents {
        if let Some(process) = agent.process.as_mut() {
            process.stop()?;
        }
        let cleanup = Command::new(&node_bin)
            .args(["proxy", "cleanup", "--node-name", &agent.name])
            .status();
        if !cleanup.is_ok_and(|status| status.success()) {
            eprintln!(
                "skiff-node proxy cleanup --node-name {} failed; its programs or rules stay",
                agent.name
            );
        }
    }
    let master_status = plane.stop()?;
    match failed {
        Some(reason) => bail!(reason),
        None => {
            match master_status {
                Some(status) => eprintln!("stopped (skiff-master {status})."),
                None => eprintln!("stopped."),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A `kubectl --kubeconfig <kubeconfig> <args>` command.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("/usr/bin/kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd
}

/// Fails when something already listens on `127.0.0.1:<port>`.
fn ensure_port_free(port: u16, hint: &str) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
        bail!("127.0.0.1:{port} is already in use: {hint}");
    }
    Ok(())
}

/// A node agent of this run: running, or dead and waiting for `cargo xtask node start`.
struct Agent {
    name: String,
    index: usize,
    /// Known once the node is Ready (the master assigns it).
    pod_cidr: String,
    /// The agent's HTTPS port (container logs for the API server).
    port: u16,
    log: PathBuf,
    /// `None` while it is down.
    process: Option<Supervised>,
}

/// The name of agent `index`: `base` (default: the hostname) for the first, `<base>-<n>` for
/// the others.
fn node_name(base: Option<&str>, index: usize) -> String {
    let host = match base {
        Some(base) => base.to_owned(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
    };
    // A DNS-1123 subdomain: lowercase alphanumerics, '-' and '.'.
    let host: String = host
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let host = host.trim_matches(|c| c == '-' || c == '.');
    let host = if host.is_empty() { "node" } else { host };
    if index == 0 {
        host.to_owned()
    } else {
        format!("{host}-{}", index + 1)
    }
}

impl Agent {
    /// `Some(status)` once its process has exited (`None` also while it is down).
    fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(match self.process.as_mut() {
            Some(process) => process.exited()?,
            None => None,
        })
    }
}

/// What every agent of the run is started with.
struct Launcher {
    node_bin: PathBuf,
    state_dir: PathBuf,
    /// What every agent joins with.
    join: JoinCommand,
    proxy_mode: String,
}

impl Launcher {
    /// Starts agent `index`, called `name`, with its files in `<state>/nodes/<name>`, its log
    /// in `<state>/nodes/<name>.log` (the master assigns its pod CIDR) and its HTTPS endpoint on
    /// port 10250 + `index`; the first one reads `<state>/manifests`.
    fn start(&self, name: &str, index: usize) -> anyhow::Result<Agent> {
        let mut agent = Agent {
            name: name.to_owned(),
            index,
            pod_cidr: String::new(),
            port: u16::try_from(index)
                .ok()
                .and_then(|i| KUBELET_PORT.checked_add(i))
                .with_context(|| format!("no kubelet port left for node {name}"))?,
            log: self.state_dir.join("nodes").join(format!("{name}.log")),
            process: None,
        };
        self.restart(&mut agent)?;
        Ok(agent)
    }

    /// Starts `agent`'s process (again).
    fn restart(&self, agent: &mut Agent) -> anyhow::Result<()> {
        ensure_port_free(
            agent.port,
            "another skiff-node or a kubelet may be running (agent i of `cargo xtask run` takes port 10250+i)",
        )?;
        let root_dir = self.state_dir.join("nodes").join(&agent.name);
        std::fs::create_dir_all(&root_dir)
            .with_context(|| format!("creating {}", root_dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&agent.log)
            .with_context(|| format!("opening {}", agent.log.display()))?;
        let mut cmd = Command::new(&self.node_bin);
        cmd.arg("--node-name")
            .arg(&agent.name)
            .arg("--root-dir")
            .arg(&root_dir)
            .arg("--port")
            .arg(agent.port.to_string())
            .arg(format!("--proxy-mode={}", self.proxy_mode))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("agent log")?)
            .stderr(log)
            .current_dir(workspace::root());
        if agent.index == 0 {
            let manifests = self.state_dir.join("manifests");
            std::fs::create_dir_all(&manifests)
                .with_context(|| format!("creating {}", manifests.display()))?;
            cmd.arg("--manifests-dir").arg(manifests);
        }
        cmd.args(self.join.args());
        agent.process = Some(Supervised::spawn("skiff-node", cmd)?);
        Ok(())
    }
}

/// The requests of `cargo xtask node start|stop|kill <node>` to this run: one file each in
/// `<state>/control` (`<node>.<action>`), answered with `<node>.<action>.done` beside it (`ok`
/// or `error`, then the message). The run's pid in `<state>/run.pid` tells the command that a
/// run serves this state directory.
struct Control {
    dir: PathBuf,
    pid_file: PathBuf,
}

impl Control {
    fn open(state_dir: &Path) -> anyhow::Result<Self> {
        let dir = state_dir.join("control");
        // Requests and answers of an earlier run mean nothing to this one.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pid_file = state_dir.join("run.pid");
        std::fs::write(&pid_file, std::process::id().to_string())
            .with_context(|| format!("writing {}", pid_file.display()))?;
        Ok(Self { dir, pid_file })
    }

    /// Carries out the requests waiting, in name order.
    fn serve(
        &self,
        agents: &mut [Agent],
        launcher: &Launcher,
        kubeconfig: &Path,
        shutdown: &AtomicBool,
    ) -> anyhow::Result<()> {
        let mut requests: Vec<String> = std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading {}", self.dir.display()))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| !name.ends_with(".done") && !name.ends_with(".tmp"))
            .collect();
        requests.sort();
        for request in requests {
            let _ = std::fs::remove_file(self.dir.join(&request));
            let answer = match request.rsplit_once('.') {
                Some((node, action)) => act(action, node, agents, launcher, kubeconfig, shutdown),
                None => Err(format!("not a request: {request}")),
            };
            let text = match &answer {
                Ok(message) => format!("ok\n{message}\n"),
                Err(message) => format!("error\n{message}\n"),
            };
            eprintln!(
                "{}",
                text.split_once('\n').map_or("", |(_, m)| m).trim_end()
            );
            write_atomically(&self.dir.join(format!("{request}.done")), &text)?;
        }
        Ok(())
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// `action` (start, stop, kill) on node `node` of this run; the answer for the user.
fn act(
    action: &str,
    node: &str,
    agents: &mut [Agent],
    launcher: &Launcher,
    kubeconfig: &Path,
    shutdown: &AtomicBool,
) -> Result<String, String> {
    let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    let agent = agents.iter_mut().find(|a| a.name == node).ok_or_else(|| {
        format!(
            "no node {node} in this run (its nodes: {})",
            names.join(", ")
        )
    })?;
    match action {
        "start" => {
            if let Some(process) = &agent.process {
                return Ok(format!("node {node} runs already (pid {})", process.id()));
            }
            launcher.restart(agent).map_err(|err| format!("{err:#}"))?;
            if let Err(err) = wait_node_ready(agent, kubeconfig, shutdown) {
                if let Some(mut process) = agent.process.take() {
                    let _ = process.kill();
                }
                return Err(format!("{err:#}"));
            }
            let pid = agent.process.as_ref().map_or(0, Supervised::id);
            Ok(format!("node {node} is Ready again (pid {pid})"))
        }
        "stop" | "kill" => {
            let Some(mut process) = agent.process.take() else {
                return Ok(format!("node {node} is not running"));
            };
            let status = if action == "stop" {
                process.stop()
            } else {
                process.kill()
            }
            .map_err(|err| format!("{err:#}"))?;
            Ok(format!(
                "node {node} {} ({status}); its pods keep running in Docker, and the node turns \
                 NotReady after the node monitor's grace period (40 s)",
                if action == "stop" {
                    "stopped"
                } else {
                    "killed"
                }
            ))
        }
        other => Err(format!("unknown action {other:?} (start, stop or kill)")),
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader never sees half.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// `cargo xtask node <action> <node>`: asks the `run` whose state is in `state_dir` to start,
/// stop or kill one of its nodes and prints its answer.
pub fn node(action: &str, node: &str, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let pid_file = state_dir.join("run.pid");
    let running = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    if !running {
        bail!(
            "no `cargo xtask run` keeps its state in {}: start one first",
            state_dir.display()
        );
    }
    let dir = state_dir.join("control");
    let request = format!("{node}.{action}");
    let answer = dir.join(format!("{request}.done"));
    let _ = std::fs::remove_file(&answer);
    write_atomically(&dir.join(&request), "")?;
    // A start waits for the node to turn Ready (up to a minute).
    let deadline = Instant::now() + READY_TIMEOUT + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&answer) {
            let _ = std::fs::remove_file(&answer);
            let (verdict, message) = text.split_once('\n').unwrap_or((&text, ""));
            println!("{}", message.trim_end());
            return Ok(if verdict == "ok" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        if Instant::now() > deadline {
            bail!("`cargo xtask run` did not answer {request} in time");
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// What `run` says when an agent dies on its own: the cluster goes on without it.
fn death_notice(agent: &Agent, status: &str) -> String {
    format!(
        "\n✗ node {name} exited on its own ({status}); the last lines of {log}:\n{tail}\n\
         The master and the other nodes keep running. The node turns NotReady once it has been \
         silent for the node monitor's grace period (40 s); then its pods are evicted, after \
         each pod's toleration of node.kubernetes.io/unreachable (300 s unless the pod sets \
         tolerationSeconds), and their controllers make new ones on the other nodes.\n\
         Start it again with `cargo xtask node start {name}`: it adopts its containers and \
         turns Ready.",
        name = agent.name,
        log = agent.log.display(),
        tail = log_tail(&agent.log, 10),
    )
}

/// Waits until the agent's Node reports Ready.
fn wait_node_ready(
    agent: &mut Agent,
    kubeconfig: &Path,
    shutdown: &AtomicBool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
    loop {
        if shutdown.load(Ordering::SeqCst) {
            bail!("interrupted while skiff-node {} was starting", agent.name);
        }
        if let Some(status) = agent.exited()? {
            bail!(
                "skiff-node {} exited at start ({status}):\n{}",
                agent.name,
                log_tail(&agent.log, 20)
            );
        }
        let out = kubectl(kubeconfig, &["get", "node", &agent.name, "-o", jsonpath])
            .output()
            .context("running kubectl")?;
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "True" {
            let out = kubectl(
                kubeconfig,
                &["get", "node", &agent.name, "-o", "jsonpath={.spec.podCIDR}"],
            )
            .output()
            .context("running kubectl")?;
            agent.pod_cidr = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            eprintln!("✓ node {} Ready (pod CIDR {})", agent.name, agent.pod_cidr);
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "node {} not Ready after {} s; its log {}:\n{}",
                agent.name,
                READY_TIMEOUT.as_secs(),
                agent.log.display(),
                log_tail(&agent.log, 20)
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Makes sure dockerd runs (it is the machine's daemon and outlives `run`), logging to
/// `<state_dir>/dockerd.log`.
pub fn ensure_dockerd(state_dir: &Path) -> anyhow::Result<()> {
    match dockerd::ensure(&state_dir.join("dockerd.log"))? {
        dockerd::Started::AlreadyRunning => eprintln!("✓ dockerd running"),
        dockerd::Started::Now { pid } => eprintln!("✓ dockerd started (pid {pid})"),
    }
    Ok(())
}
