//! Docker for the end-to-end tests: [`ensure_dockerd`] starts the daemon when it is not
//! running (CI machines start without one), and [`remove_node_containers`] cleans up after a
//! node agent.
//!
//! dockerd is a machine-wide daemon shared by every test process, so it is started detached
//! (its own session, not tied to the test) and left running; its log is
//! `<repo>/.skiff/dockerd.log`. Starting it needs root and the Debian package `docker.io`
//! (`cargo xtask setup` installs it); without either the call fails with a message saying so.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where Docker's API listens.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The daemon of Debian's `docker.io`.
pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// How long dockerd may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The label the node agent puts on every container it makes (`io.skiff.node=<node>`).
const NODE_LABEL: &str = "io.skiff.node";

/// dockerd's log when the harness started it.
pub fn dockerd_log_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".skiff")
        .join("dockerd.log")
}

/// Makes sure dockerd runs and answers on [`DOCKER_SOCKET`]: returns at once if it does,
/// else starts it (once, even with several test processes at a time) and waits up to 60 s.
/// Blocking.
pub fn ensure_dockerd() -> anyhow::Result<()> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    if docker_answers() {
        return Ok(());
    }
    let _guard = IN_PROCESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Other test processes: one of them starts it, the others wait on the lock.
    let _machine_lock = MachineLock::acquire(Path::new("/tmp/skiff-dockerd.lock"))?;
    if docker_answers() {
        return Ok(());
    }
    if !Path::new(DOCKERD).exists() {
        bail!(
            "Docker is not installed ({DOCKERD} is missing): run `cargo xtask setup` \
             (installs Debian's docker.io)"
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("dockerd is not running and starting it needs root: run `sudo dockerd &`");
    }
    let log_path = dockerd_log_path();
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let _ = writeln!(log, "=== skiff test harness: starting {DOCKERD}");
    let mut cmd = Command::new(DOCKERD);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().context("dockerd log")?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches dockerd from the test's session so a
    // Ctrl-C of the tests does not take the machine's Docker down with them.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {DOCKERD}"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if docker_answers() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "dockerd exited at start ({status}); last lines of {}:\n{}",
                log_path.display(),
                tail(&log_path, 30)
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "dockerd did not answer on {DOCKER_SOCKET} within {START_TIMEOUT:?}; last lines of {}:\n{}",
        log_path.display(),
        tail(&log_path, 30)
    )
}

/// Whether Docker's `/_ping` answers `OK`.
pub fn docker_answers() -> bool {
    docker_request("GET", "/_ping").is_ok_and(|(status, body)| status == 200 && body.trim() == "OK")
}

/// Force-removes every container of node agent `node` and its pod network `skiff-<node>`
/// (what a test leaves behind). Errors are returned, containers already gone are fine.
pub fn remove_node_containers(node: &str) -> anyhow::Result<()> {
    let filters = format!("{{\"label\":[\"{NODE_LABEL}={node}\"]}}");
    let path = format!("/containers/json?all=1&filters={}", url_encode(&filters));
    let (status, body) = docker_request("GET", &path)?;
    if status != 200 {
        bail!("listing containers of node {node}: HTTP {status}: {body}");
    }
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&body).context("Docker's container list")?;
    for id in listed.iter().filter_map(|c| c["Id"].as_str()) {
        let (status, body) = docker_request("DELETE", &format!("/containers/{id}?force=1&v=1"))?;
        if status != 204 && status != 404 && status != 409 {
            bail!("removing container {id}: HTTP {status}: {body}");
        }
    }
    let (status, body) = docker_request("DELETE", &format!("/networks/skiff-{node}"))?;
    if status != 204 && status != 404 {
        bail!("removing network skiff-{node}: HTTP {status}: {body}");
    }
    Ok(())
}

/// The ids of the running and stopped containers of node agent `node`, optionally of one pod
/// (by name).
pub fn node_containers(node: &str, pod: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut labels = vec![format!("\"{NODE_LABEL}={node}\"")];
    if let Some(pod) = pod {
        labels.push(format!("\"io.kubernetes.pod.name={pod}\""));
    }
    let filters = format!("{{\"label\":[{}]}}", labels.join(","));
    let path = format!("/containers/json?all=1&filters={}", url_encode(&filters));
    let (status, body) = docker_request("GET", &path)?;
    if status != 200 {
        bail!("listing containers: HTTP {status}: {body}");
    }
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&body).context("Docker's container list")?;
    Ok(listed
        .iter()
        .filter_map(|c| c["Id"].as_str().map(str::to_owned))
        .collect())
}

/// `docker inspect` of one container, as JSON.
pub fn inspect_container(id: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = docker_request("GET", &format!("/containers/{id}/json"))?;
    if status != 200 {
        bail!("inspecting container {id}: HTTP {status}: {body}");
    }
    serde_json::from_str(&body).context("Docker's container inspect")
}

/// One HTTP/1.0 request to Docker's socket (no body); returns status and body. HTTP/1.0 so
/// the daemon answers without chunking and closes the connection.
fn docker_request(method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = UnixStream::connect(DOCKER_SOCKET)
        .with_context(|| format!("connecting to {DOCKER_SOCKET}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .context("reading Docker's answer")?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("Docker's answer has no status")?;
    Ok((status, body.to_owned()))
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An exclusive `flock` on a file, released when dropped (the file is held only for that).
struct MachineLock(#[allow(dead_code)] std::fs::File);

impl MachineLock {
    fn acquire(path: &Path) -> anyhow::Result<Self> {
        use std::os::fd::AsRawFd;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor we own; blocks until the lock is ours.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", path.display()));
        }
        Ok(Self(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_url_encoded() {
        assert_eq!(
            url_encode("{\"a\":[\"b=c\"]}"),
            "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D"
        );
    }
}
