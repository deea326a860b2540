//! `cargo xtask run`: builds skiff-master, starts it (and optionally a local etcd) with its
//! state in `<repo>/.skiff`, waits until it is ready, tells the user how to reach it, and
//! stops everything on Ctrl-C / SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cargo::{self, Profile};
use crate::process::{Supervised, shutdown_flag};
use crate::{repo_root, setup, step};

/// Port the master serves on (its default).
const MASTER_PORT: u16 = 6443;
/// etcd's client and peer ports on loopback.
const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_PEER_PORT: u16 = 2380;
/// How long a start may take before we give up (a first start generates its certificates).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags of `cargo xtask run`.
pub struct Options {
    /// Start a local etcd and keep the master's state there.
    pub etcd: bool,
    /// Build and run release binaries.
    pub release: bool,
}

/// Runs the cluster until a shutdown signal; exits non-zero if a component dies on its own.
pub fn run(opts: Options) -> anyhow::Result<ExitCode> {
    step("setup");
    setup::run()?;

    let profile = if opts.release {
        Profile::Release
    } else {
        Profile::Debug
    };
    step(if opts.release {
        "building skiff-master (release)"
    } else {
        "building skiff-master (debug)"
    });
    let master_bin = cargo::build_master(profile)?;

    let state_dir = repo_root().join(".skiff");
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let kubeconfig = state_dir.join("kubeconfig");
    ensure_port_free(
        MASTER_PORT,
        "another skiff master (`cargo xtask run`) may be running",
    )?;

    // From here on a Ctrl-C stops the children in order instead of killing xtask.
    let shutdown = shutdown_flag()?;

    // Children are stopped in reverse order of start when dropped: master first, then etcd.
    let mut etcd = None;
    if opts.etcd {
        step("starting etcd");
        etcd = Some(start_etcd(&state_dir, &shutdown)?);
    }

    step("starting skiff-master");
    // The master writes a fresh kubeconfig once it listens; a stale one would point at an
    // old port and make the readiness check below succeed too early or fail confusingly.
    match std::fs::remove_file(&kubeconfig) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).context(format!("removing {}", kubeconfig.display())),
    }
    let mut cmd = Command::new(&master_bin);
    cmd.arg("--state-dir")
        .arg(&state_dir)
        .stdin(Stdio::null())
        .current_dir(repo_root());
    if etcd.is_some() {
        cmd.arg("--etcd-endpoints")
            .arg(format!("http://127.0.0.1:{ETCD_CLIENT_PORT}"));
    }
    let mut master = Supervised::spawn("skiff-master", &mut cmd)?;
    wait_master_ready(&mut master, &kubeconfig, &shutdown)?;

    let server = kubectl(&kubeconfig, &["config", "view", "--minify", "-o"])
        .arg("jsonpath={.clusters[0].cluster.server}")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    let store = if opts.etcd {
        format!("etcd at 127.0.0.1:{ETCD_CLIENT_PORT}")
    } else {
        String::from("embedded store")
    };
    println!(
        "\nskiff is running: master pid {} at {server}, {store}, state in {}",
        master.id(),
        state_dir.display()
    );
    println!("In another shell:\n");
    println!("    export KUBECONFIG={}", kubeconfig.display());
    println!("    kubectl get pods");
    println!("\nPress Ctrl-C to stop.");

    let failed = loop {
        if shutdown.load(Ordering::SeqCst) {
            eprintln!("\nshutting down ...");
            break None;
        }
        if let Some(status) = master.exited()? {
            break Some(format!("skiff-master exited on its own ({status})"));
        }
        if let Some(etcd) = etcd.as_mut()
            && let Some(status) = etcd.exited()?
        {
            break Some(format!(
                "etcd exited on its own ({status}); see {}",
                state_dir.join("etcd.log").display()
            ));
        }
        thread::sleep(Duration::from_millis(200));
    };

    let master_status = master.stop()?;
    if let Some(etcd) = etcd.as_mut() {
        etcd.stop()?;
    }
    match failed {
        Some(reason) => bail!(reason),
        None => {
            eprintln!("stopped (skiff-master {master_status}).");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Starts etcd with its data in `<state_dir>/etcd` and its log in `<state_dir>/etcd.log`, and
/// waits until it reports healthy.
fn start_etcd(state_dir: &Path, shutdown: &AtomicBool) -> anyhow::Result<Supervised> {
    let hint = "a system etcd may be running (`systemctl stop etcd`)";
    ensure_port_free(ETCD_CLIENT_PORT, hint)?;
    ensure_port_free(ETCD_PEER_PORT, hint)?;
    let log_path = state_dir.join("etcd.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let client_url = format!("http://127.0.0.1:{ETCD_CLIENT_PORT}");
    let peer_url = format!("http://127.0.0.1:{ETCD_PEER_PORT}");
    let mut cmd = Command::new("/usr/bin/etcd");
    cmd.arg("--name=skiff")
        .arg(format!("--data-dir={}", state_dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=skiff={peer_url}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("etcd log")?)
        .stderr(log);
    let mut etcd = Supervised::spawn("etcd", &mut cmd)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if shutdown.load(Ordering::SeqCst) {
            bail!("interrupted while etcd was starting");
        }
        if let Some(status) = etcd.exited()? {
            bail!(
                "etcd exited at start ({status}):\n{}",
                log_tail(&log_path, 20)
            );
        }
        if etcd_healthy() {
            eprintln!(
                "✓ etcd ready at {client_url} (pid {}, log {})",
                etcd.id(),
                log_path.display()
            );
            return Ok(etcd);
        }
        if Instant::now() > deadline {
            bail!(
                "etcd not healthy after {} s:\n{}",
                READY_TIMEOUT.as_secs(),
                log_tail(&log_path, 20)
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Whether etcd's `/health` says `"health":"true"` (plain HTTP on loopback).
fn etcd_healthy() -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], ETCD_CLIENT_PORT));
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

/// Waits until the master has written its kubeconfig and `/readyz` answers `ok` through it.
fn wait_master_ready(
    master: &mut Supervised,
    kubeconfig: &Path,
    shutdown: &AtomicBool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if shutdown.load(Ordering::SeqCst) {
            bail!("interrupted while skiff-master was starting");
        }
        if let Some(status) = master.exited()? {
            bail!("skiff-master exited at start ({status}); its log is above");
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
                "skiff-master not ready after {} s ({} {})",
                READY_TIMEOUT.as_secs(),
                kubeconfig.display(),
                if kubeconfig.exists() {
                    "exists but /readyz does not answer ok"
                } else {
                    "was not written"
                }
            );
        }
        thread::sleep(Duration::from_millis(250));
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

/// The last `lines` lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
