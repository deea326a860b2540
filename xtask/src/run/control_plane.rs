//! The control plane of `cargo xtask run`: one master on the embedded store (or on one local
//! etcd with `--etcd`), or `--masters N` on an N-member etcd cluster.
//!
//! With several masters:
//! - etcd member `i` is `skiff-<i>`, its data in `<state>/etcd-cluster/<i>`, its client and
//!   peer ports 2379 + 2i and 2380 + 2i on loopback;
//! - master `i` keeps its files in `<state>/masters/<i>` and its log in
//!   `<state>/masters/<i>.log`, serves on 6444 + i and runs with `--leader-elect`: every master
//!   serves the API, the scheduler and the controllers run on the one that holds the Lease;
//!   masters after the first serve the cluster DNS on a port of their own (the `kube-dns`
//!   Endpoints name it);
//! - the masters share one CA, serving certificate and admin token: the first master makes
//!   them (or finds `<state>/pki` of an earlier run), and the others get copies;
//! - `skiff-node api-balancer` listens on 127.0.0.1:6443, the port of a single master, and
//!   passes each connection on to a master that accepts it; `<state>/kubeconfig` points there,
//!   so kubectl fails over between the masters.
//!
//! A master or etcd member that dies is reported and the cluster goes on with the others.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_tooling::process::log_tail;
use skiff_tooling::workspace;

use super::{READY_TIMEOUT, ensure_port_free, kubectl};
use crate::process::Supervised;

/// Port the API is reached at: the single master's, or the API balancer's in front of several.
pub const API_PORT: u16 = 6443;
/// etcd's first client and peer ports on loopback.
const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_PEER_PORT: u16 = 2380;

/// What to start.
pub struct Plan<'a> {
    /// How many masters (more than one: on an etcd cluster of as many members).
    pub masters: usize,
    /// One master on one local etcd instead of the embedded store.
    pub etcd: bool,
    pub master_bin: &'a Path,
    pub node_bin: &'a Path,
    pub state_dir: &'a Path,
}

/// A master process of the run.
pub struct MasterProcess {
    pub index: usize,
    pub port: u16,
    /// Its own state (the run's directory for a single master).
    pub state_dir: PathBuf,
    /// `None`: its output goes to the run's terminal.
    pub log: Option<PathBuf>,
    /// `None` once it died.
    pub process: Option<Supervised>,
}

/// An etcd member of the run.
pub struct EtcdMember {
    pub name: String,
    pub client_port: u16,
    pub log: PathBuf,
    pub process: Option<Supervised>,
}

/// The running control plane; dropping it stops the balancer, the masters, then etcd.
pub struct ControlPlane {
    // Field order is stop order.
    pub balancer: Option<Supervised>,
    pub masters: Vec<MasterProcess>,
    pub etcd: Vec<EtcdMember>,
}

impl ControlPlane {
    /// Starts etcd (if any), the masters and the balancer (with several masters), and waits
    /// until `<state>/kubeconfig` reaches a ready API.
    pub fn start(plan: &Plan<'_>, shutdown: &AtomicBool) -> anyhow::Result<ControlPlane> {
        if plan.masters == 0 {
            bail!("--masters must be at least 1");
        }
        let several = plan.masters > 1;
        let kubeconfig = plan.state_dir.join("kubeconfig");
        ensure_port_free(
            API_PORT,
            "another skiff master (`cargo xtask run`) may be running",
        )?;
        // A stale kubeconfig would point at an old port and make the readiness check below
        // succeed too early or fail confusingly.
        remove_if_present(&kubeconfig)?;

        let mut plane = ControlPlane {
            balancer: None,
            masters: Vec::new(),
            etcd: Vec::new(),
        };
        if several {
            eprintln!(
                "the embedded store serves one master: {} masters keep their state in a \
                 {}-member etcd cluster",
                plan.masters, plan.masters
            );
        }
        if several || plan.etcd {
            super::step(&format!(
                "starting etcd{}",
                if several {
                    format!(" ({} members)", plan.masters)
                } else {
                    String::new()
                }
            ));
            plane.etcd = start_etcd(plan.state_dir, plan.masters, shutdown)?;
        }
        let endpoints: Vec<String> = plane
            .etcd
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect();

        super::step(if several {
            "starting the skiff-masters"
        } else {
            "starting skiff-master"
        });
        let shared = plan.state_dir.join("pki");
        for index in 0..plan.masters {
            let master_dir = if several {
                plan.state_dir.join("masters").join(index.to_string())
            } else {
                plan.state_dir.to_owned()
            };
            // The cluster's credentials, from an earlier run or from the first master.
            if several && shared.join("ca.crt").exists() {
                copy_credentials(plan.state_dir, &master_dir)?;
            }
            let mut master = MasterProcess {
                index,
                port: if several {
                    API_PORT + 1 + u16::try_from(index).context("too many masters")?
                } else {
                    API_PORT
                },
                log: several.then(|| plan.state_dir.join("masters").join(format!("{index}.log"))),
                state_dir: master_dir,
                process: None,
            };
            if several {
                ensure_port_free(master.port, "masters of `run --masters` take 6444 and up")?;
            }
            master.launch(plan.master_bin, &endpoints, several)?;
            master.wait_ready(shutdown)?;
            if several && index == 0 {
                copy_credentials(&master.state_dir, plan.state_dir)?;
            }
            plane.masters.push(master);
        }

        if several {
            let servers: Vec<String> = plane
                .masters
                .iter()
                .map(|m| format!("https://127.0.0.1:{}", m.port))
                .collect();
            let log_path = plan.state_dir.join("api-balancer.log");
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let mut cmd = Command::new(plan.node_bin);
            cmd.arg("api-balancer")
                .arg(servers.join(","))
                .arg("--listen")
                .arg(format!("127.0.0.1:{API_PORT}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().context("balancer log")?)
                .stderr(log);
            plane.balancer = Some(Supervised::spawn("skiff-node api-balancer", cmd)?);
            // The first master's kubeconfig, pointed at the balancer.
            std::fs::copy(plane.masters[0].state_dir.join("kubeconfig"), &kubeconfig)
                .context("copying the first master's kubeconfig")?;
            let cluster = kubectl(&kubeconfig, &["config", "view", "-o"])
                .arg("jsonpath={.clusters[0].name}")
                .output()
                .context("running kubectl")?;
            let cluster = String::from_utf8_lossy(&cluster.stdout).trim().to_owned();
            let set = kubectl(
                &kubeconfig,
                &[
                    "config",
                    "set-cluster",
                    &cluster,
                    &format!("--server=https://127.0.0.1:{API_PORT}"),
                ],
            )
            .stdout(Stdio::null())
            .status()
            .context("running kubectl config set-cluster")?;
            if !set.success() {
                bail!("kubectl config set-cluster {cluster} failed ({set})");
            }
            wait_api_ready(&kubeconfig, shutdown, &mut || Ok(None))?;
            eprintln!(
                "✓ api-balancer at 127.0.0.1:{API_PORT} -> {}",
                servers.join(", ")
            );
        }
        Ok(plane)
    }

    /// The state directory of the master agents join through (its `skiff-master token
    /// create` makes their token).
    pub fn first_state_dir(&self) -> &Path {
        &self.masters[0].state_dir
    }

    /// The servers agents join: every master.
    pub fn servers(&self) -> Vec<String> {
        self.masters
            .iter()
            .map(|m| format!("https://127.0.0.1:{}", m.port))
            .collect()
    }

    /// What the user is told of the control plane: a summary, then a line for each of
    /// several masters.
    pub fn describe(&self) -> (String, Vec<String>) {
        let store = match self.etcd.len() {
            0 => String::from("embedded store"),
            1 => format!("etcd at 127.0.0.1:{}", self.etcd[0].client_port),
            n => format!(
                "a {n}-member etcd cluster at {}",
                self.etcd
                    .iter()
                    .map(|m| format!("127.0.0.1:{}", m.client_port))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let pid = |master: &MasterProcess| master.process.as_ref().map_or(0, Supervised::id);
        if let [master] = self.masters.as_slice() {
            let summary = format!(
                "master pid {} at https://127.0.0.1:{}, {store}",
                pid(master),
                master.port
            );
            return (summary, Vec::new());
        }
        let summary = format!(
            "{} masters at https://127.0.0.1:{API_PORT} (the api-balancer), {store}",
            self.masters.len()
        );
        let lines = self
            .masters
            .iter()
            .map(|master| {
                format!(
                    "master {} (pid {}): https://127.0.0.1:{}, log {}",
                    master.index,
                    pid(master),
                    master.port,
                    master
                        .log
                        .as_ref()
                        .map_or_else(String::new, |l| l.display().to_string())
                )
            })
            .collect();
        (summary, lines)
    }

    /// Why the run must stop, if it must: its only master (or etcd) died, or all of them. A
    /// master or member that dies beside others that live is reported, and the run goes on.
    pub fn check(&mut self) -> anyhow::Result<Option<String>> {
        let several = self.masters.len() > 1;
        for master in &mut self.masters {
            let Some(status) = reap(&mut master.process)? else {
                continue;
            };
            if !several {
                return Ok(Some(format!("skiff-master exited on its own ({status})")));
            }
            let log = master.log.as_deref().unwrap_or(Path::new(""));
            eprintln!(
                "\n✗ master {} exited on its own ({status}); the last lines of {}:\n{}\n\
                 The other masters serve the API; one of them leads the scheduler and the \
                 controllers within the Lease duration (15 s).",
                master.index,
                log.display(),
                log_tail(log, 10)
            );
        }
        if several && self.masters.iter().all(|m| m.process.is_none()) {
            return Ok(Some(String::from("every skiff-master exited")));
        }
        let members = self.etcd.len();
        for member in &mut self.etcd {
            let Some(status) = reap(&mut member.process)? else {
                continue;
            };
            let message = format!(
                "etcd {} exited on its own ({status}); see {}",
                member.name,
                member.log.display()
            );
            if members == 1 {
                return Ok(Some(message));
            }
            eprintln!("\n✗ {message}");
        }
        if members > 1 && self.etcd.iter().all(|m| m.process.is_none()) {
            return Ok(Some(String::from("every etcd member exited")));
        }
        if let Some(balancer) = self.balancer.as_mut()
            && let Some(status) = balancer.exited()?
        {
            return Ok(Some(format!("skiff-node api-balancer exited ({status})")));
        }
        Ok(None)
    }

    /// Stops the balancer, the masters, then etcd; returns the first master's exit status.
    pub fn stop(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        if let Some(balancer) = self.balancer.as_mut() {
            balancer.stop()?;
        }
        let mut first = None;
        for master in &mut self.masters {
            if let Some(process) = master.process.as_mut() {
                let status = process.stop()?;
                first.get_or_insert(status);
            }
        }
        for member in &mut self.etcd {
            if let Some(process) = member.process.as_mut() {
                process.stop()?;
            }
        }
        Ok(first)
    }
}

/// The exit status of `process` if it has exited, which then leaves it `None` (reported once).
fn reap(process: &mut Option<Supervised>) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let status = match process.as_mut() {
        Some(running) => running.exited()?,
        None => None,
    };
    if status.is_some() {
        *process = None;
    }
    Ok(status)
}

impl MasterProcess {
    /// Starts the process; `several`: with leader election and a log file of its own.
    fn launch(&mut self, bin: &Path, etcd: &[String], several: bool) -> anyhow::Result<()> {
        // The master writes its kubeconfig once it listens; an old one names an old port.
        remove_if_present(&self.state_dir.join("kubeconfig"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--state-dir")
            .arg(&self.state_dir)
            .stdin(Stdio::null())
            .current_dir(workspace::root());
        if !etcd.is_empty() {
            cmd.arg("--etcd-endpoints").arg(etcd.join(","));
        }
        if several {
            cmd.arg("--secure-port")
                .arg(self.port.to_string())
                .arg("--leader-elect");
            // One host, one port 53: the later masters' DNS listen on a free port each.
            if self.index > 0 {
                cmd.arg("--dns-port=0");
            }
        }
        if let Some(log_path) = &self.log {
            if let Some(dir) = log_path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            cmd.stdout(log.try_clone().context("master log")?)
                .stderr(log);
        }
        self.process = Some(Supervised::spawn("skiff-master", cmd)?);
        Ok(())
    }

    /// Waits until the master has written its kubeconfig and `/readyz` answers `ok` through
    /// it.
    fn wait_ready(&mut self, shutdown: &AtomicBool) -> anyhow::Result<()> {
        let kubeconfig = self.state_dir.join("kubeconfig");
        let log = self.log.clone();
        let index = self.index;
        let process = self.process.as_mut().context("the master is not running")?;
        wait_api_ready(&kubeconfig, shutdown, &mut || {
            Ok(process.exited()?.map(|status| match &log {
                Some(log) => format!(
                    "skiff-master {index} exited at start ({status}):\n{}",
                    log_tail(log, 20)
                ),
                None => format!("skiff-master exited at start ({status}); its log is above"),
            }))
        })?;
        if self.log.is_some() {
            eprintln!(
                "✓ master {index} ready at https://127.0.0.1:{} (pid {})",
                self.port,
                process.id()
            );
        }
        Ok(())
    }
}

/// Waits until `kubeconfig` exists and `/readyz` answers `ok` through it; `died` says why to
/// stop waiting (the process behind it exited).
fn wait_api_ready(
    kubeconfig: &Path,
    shutdown: &AtomicBool,
    died: &mut dyn FnMut() -> anyhow::Result<Option<String>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if shutdown.load(Ordering::SeqCst) {
            bail!("interrupted while the API was starting");
        }
        if let Some(why) = died()? {
            bail!(why);
        }
        if kubeconfig.exists() {
            let out = kubectl(
                kubeconfig,
                &["get", "--raw", "/readyz", "--request-timeout=2s"],
            )
            .output()
            .context("running kubectl")?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the API at {} not ready after {} s ({})",
                kubeconfig.display(),
                READY_TIMEOUT.as_secs(),
                if kubeconfig.exists() {
                    "/readyz does not answer ok"
                } else {
                    "the kubeconfig was not written"
                }
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Copies the CA, serving certificate, keys and admin token from `from` to `to` (the masters
/// of one cluster share them).
fn copy_credentials(from: &Path, to: &Path) -> anyhow::Result<()> {
    let pki = to.join("pki");
    std::fs::create_dir_all(&pki).with_context(|| format!("creating {}", pki.display()))?;
    let source = from.join("pki");
    for entry in
        std::fs::read_dir(&source).with_context(|| format!("reading {}", source.display()))?
    {
        let entry = entry.with_context(|| format!("reading {}", source.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), pki.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    std::fs::copy(from.join("token"), to.join("token"))
        .with_context(|| format!("copying {}", from.join("token").display()))?;
    Ok(())
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).context(format!("removing {}", path.display())),
    }
}

/// Starts `members` etcd members on loopback and waits until each reports healthy. One member
/// keeps its data in `<state>/etcd` (as ever); a cluster's member `i` in
/// `<state>/etcd-cluster/<i>`.
fn start_etcd(
    state_dir: &Path,
    members: usize,
    shutdown: &AtomicBool,
) -> anyhow::Result<Vec<EtcdMember>> {
    let hint = "a system etcd may be running (`systemctl stop etcd`)";
    let ports = |i: usize| -> anyhow::Result<(u16, u16)> {
        let offset = u16::try_from(i * 2).context("too many etcd members")?;
        Ok((ETCD_CLIENT_PORT + offset, ETCD_PEER_PORT + offset))
    };
    let name = |i: usize| {
        if members == 1 {
            String::from("skiff")
        } else {
            format!("skiff-{i}")
        }
    };
    let mut initial_cluster = Vec::new();
    for i in 0..members {
        let (client, peer) = ports(i)?;
        ensure_port_free(client, hint)?;
        ensure_port_free(peer, hint)?;
        initial_cluster.push(format!("{}=http://127.0.0.1:{peer}", name(i)));
    }
    let initial_cluster = initial_cluster.join(",");
    let mut started = Vec::new();
    for i in 0..members {
        let (client_port, peer_port) = ports(i)?;
        let (data_dir, log_path) = if members == 1 {
            (state_dir.join("etcd"), state_dir.join("etcd.log"))
        } else {
            let dir = state_dir.join("etcd-cluster");
            (dir.join(i.to_string()), dir.join(format!("{i}.log")))
        };
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new("/usr/bin/etcd");
        cmd.arg(format!("--name={}", name(i)))
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .args(skiff_tooling::etcd::server_flags())
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("etcd log")?)
            .stderr(log);
        started.push(EtcdMember {
            name: name(i),
            client_port,
            log: log_path,
            process: Some(Supervised::spawn("etcd", cmd)?),
        });
    }
    // A cluster's members elect a leader once a quorum is up: wait for all together.
    let deadline = Instant::now() + READY_TIMEOUT;
    for member in &mut started {
        loop {
            if shutdown.load(Ordering::SeqCst) {
                bail!("interrupted while etcd was starting");
            }
            let process = member.process.as_mut().context("etcd is not running")?;
            if let Some(status) = process.exited()? {
                bail!(
                    "etcd {} exited at start ({status}):\n{}",
                    member.name,
                    log_tail(&member.log, 20)
                );
            }
            if etcd_healthy(member.client_port) {
                eprintln!(
                    "✓ etcd {} ready at http://127.0.0.1:{} (pid {}, log {})",
                    member.name,
                    member.client_port,
                    process.id(),
                    member.log.display()
                );
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd {} not healthy after {} s:\n{}",
                    member.name,
                    READY_TIMEOUT.as_secs(),
                    log_tail(&member.log, 20)
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(started)
}

/// Whether etcd's `/health` says `"health":"true"` (plain HTTP on loopback).
fn etcd_healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.contains("\"health\":\"true\"")
}
