//! A real etcd (the Debian `etcd-server` package) on loopback ports, for tests and benchmarks.
//!
//! [`Etcd::start`] runs `/usr/bin/etcd` with its data in a fresh temporary directory, waits until
//! `/health` answers, and the process is killed (and reaped) when the [`Etcd`] is dropped. fsync
//! stays on: the figures measured against it are those of a real etcd.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_tooling::process;

/// Where the `etcd-server` package puts the binary.
const ETCD_BINARY: &str = "/usr/bin/etcd";

/// How long etcd may take to answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of etcd's log quoted in errors.
const LOG_TAIL_LINES: usize = 30;

/// Attempts before giving up when a picked port was taken in the meantime.
const START_ATTEMPTS: usize = 3;

/// The files of an etcd that serves TLS and asks clients for certificates of `ca`.
#[derive(Clone, Debug)]
pub struct EtcdTlsFiles {
    /// The CA (PEM) that signed the server's and the clients' certificates.
    pub ca: PathBuf,
    /// etcd's serving certificate (for 127.0.0.1) and key.
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate of the CA and its key, for the harness's health checks.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

/// A running etcd on 127.0.0.1 (a single-member cluster, or one member of an
/// [`EtcdCluster`]), stopped when dropped.
pub struct Etcd {
    child: Child,
    binary: PathBuf,
    member: Member,
    tls: Option<EtcdTlsFiles>,
    // Dropped after the child is reaped (fields drop after `Drop::drop`).
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd on two free loopback ports with its data in a new temporary directory and
    /// waits until it is healthy. Fails with a hint when etcd is not installed, and with the
    /// tail of etcd's log when it does not come up within 20 seconds. It blocks while it
    /// waits: from async code, call it through `tokio::task::spawn_blocking`.
    pub fn start() -> anyhow::Result<Etcd> {
        Self::start_with(Path::new(ETCD_BINARY))
    }

    /// Like [`Etcd::start`], serving TLS with client certificates required
    /// (`--client-cert-auth`).
    pub fn start_tls(tls: EtcdTlsFiles) -> anyhow::Result<Etcd> {
        Self::start_inner(Path::new(ETCD_BINARY), Some(tls))
    }

    /// Like [`Etcd::start`] with another etcd binary.
    pub fn start_with(binary: &Path) -> anyhow::Result<Etcd> {
        Self::start_inner(binary, None)
    }

    fn start_inner(binary: &Path, tls: Option<EtcdTlsFiles>) -> anyhow::Result<Etcd> {
        if !binary.exists() {
            bail!(
                "etcd not installed: run `cargo xtask setup` ({} is missing)",
                binary.display()
            );
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(binary, tls.clone()) {
                Ok(etcd) => return Ok(etcd),
                // Another process may have taken a port between picking and binding it.
                Err(StartError::PortTaken(e)) => last_error = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// The etcd process's id (for measuring what it uses).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.member.client_port)
    }

    /// etcd's data directory (inside the temporary directory).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// etcd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Stops etcd (SIGKILL, as a crash or a lost machine), keeping its data: a fault for the
    /// master to live through. [`Etcd::resume`] starts it again.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts etcd again on the same ports and data after [`Etcd::stop`], and waits until it
    /// is healthy. Blocking.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.child = spawn(
            &self.binary,
            self.dir.path(),
            &self.member,
            self.tls.as_ref(),
        )?;
        self.wait_ready().map_err(|e| match e {
            StartError::PortTaken(e) | StartError::Other(e) => e,
        })
    }

    fn try_start(binary: &Path, tls: Option<EtcdTlsFiles>) -> Result<Etcd, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-etcd-")
            .tempdir()
            .context("create etcd temp dir")?;
        let peer_port = free_port()?;
        let member = Member {
            name: String::from("default"),
            client_port: free_port()?,
            initial_cluster: format!("default=http://127.0.0.1:{peer_port}"),
            peer_port,
        };
        let child = spawn(binary, dir.path(), &member, tls.as_ref())?;
        let mut etcd = Etcd {
            child,
            binary: binary.to_path_buf(),
            member,
            tls,
            dir,
        };
        etcd.wait_ready()?;
        Ok(etcd)
    }

    fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("wait for etcd")? {
                let log = process::log_tail(&self.log_path(), LOG_TAIL_LINES);
                let error =
                    anyhow::anyhow!("etcd exited with {status} before it was ready:\n{log}");
                return Err(if log.contains("address already in use") {
                    StartError::PortTaken(error)
                } else {
                    StartError::Other(error)
                });
            }
            let healthy = match &self.tls {
                None => health(self.member.client_port),
                Some(tls) => health_tls(self.member.client_port, tls),
            };
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::Other(anyhow::anyhow!(
                    "etcd not healthy after {READY_TIMEOUT:?}:\n{}",
                    process::log_tail(&self.log_path(), LOG_TAIL_LINES)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running etcd cluster of several members on 127.0.0.1, each with its own data directory
/// and ports; stopped when dropped.
pub struct EtcdCluster {
    members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Starts `size` members at once and waits until each is healthy (the cluster has a
    /// leader). Blocking.
    pub fn start(size: usize) -> anyhow::Result<EtcdCluster> {
        let binary = Path::new(ETCD_BINARY);
        if !binary.exists() {
            bail!("etcd not installed: run `cargo xtask setup` ({ETCD_BINARY} is missing)");
        }
        let ports = (0..size)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<Vec<(u16, u16)>>>()?;
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(size);
        for (i, (client_port, peer_port)) in ports.into_iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix("skiff-etcd-")
                .tempdir()
                .context("create etcd temp dir")?;
            let member = Member {
                name: format!("m{i}"),
                client_port,
                peer_port,
                initial_cluster: initial_cluster.clone(),
            };
            let child = spawn(binary, dir.path(), &member, None)?;
            members.push(Etcd {
                child,
                binary: binary.to_path_buf(),
                member,
                tls: None,
                dir,
            });
        }
        for member in &mut members {
            member.wait_ready().map_err(|e| match e {
                StartError::PortTaken(e) | StartError::Other(e) => e,
            })?;
        }
        Ok(EtcdCluster { members })
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Etcd::endpoint).collect()
    }

    /// Member `index`, to stop and resume.
    pub fn member(&mut self, index: usize) -> &mut Etcd {
        &mut self.members[index]
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // SIGKILL: the data directory is thrown away, nothing to shut down cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why one start attempt failed.
enum StartError {
    /// A port picked as free was bound by someone else first: worth another try.
    PortTaken(anyhow::Error),
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Other(e)
    }
}

/// One member's name, loopback ports and the cluster it starts in.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// `--initial-cluster`: every member's name and peer URL.
    initial_cluster: String,
}

/// Runs etcd `member` with its data and log in `dir`, serving TLS with client certificates
/// required when `tls` is given.
fn spawn(
    binary: &Path,
    dir: &Path,
    member: &Member,
    tls: Option<&EtcdTlsFiles>,
) -> anyhow::Result<Child> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client_url = format!("{scheme}://127.0.0.1:{}", member.client_port);
    let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("etcd.log"))
        .context("open etcd log file")?;
    let log_err = log.try_clone().context("clone etcd log file")?;
    let mut cmd = Command::new(binary);
    cmd.arg("--name")
        .arg(&member.name)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(&member.initial_cluster)
        .args(skiff_tooling::etcd::server_flags())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    if let Some(tls) = tls {
        cmd.arg("--cert-file")
            .arg(&tls.server_cert)
            .arg("--key-file")
            .arg(&tls.server_key)
            .arg("--trusted-ca-file")
            .arg(&tls.ca)
            .arg("--client-cert-auth");
    }
    // Tied to this process: a killed test or bench leaves no etcd behind.
    process::spawn_tied(cmd).with_context(|| format!("spawn {}", binary.display()))
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("pick a free port")?;
    Ok(listener.local_addr().context("local addr")?.port())
}

/// Whether etcd's `/health` endpoint reports healthy (a plain HTTP/1.0 GET, no client needed).
fn health(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() {
        return false;
    }
    response.starts_with("HTTP/1.")
        && response.contains(" 200 ")
        && response.replace(' ', "").contains("\"health\":\"true\"")
}

/// Whether a TLS etcd's `/health` reports healthy, asked with the harness's client
/// certificate.
fn health_tls(port: u16, tls: &EtcdTlsFiles) -> bool {
    let client = (|| -> anyhow::Result<reqwest::Client> {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&tls.ca)?)?;
        let mut identity = std::fs::read(&tls.client_cert)?;
        identity.extend(std::fs::read(&tls.client_key)?);
        Ok(reqwest::Client::builder()
            .add_root_certificate(ca)
            .identity(reqwest::Identity::from_pem(&identity)?)
            .timeout(Duration::from_secs(2))
            .build()?)
    })();
    let Ok(client) = client else {
        return false;
    };
    crate::block_on(async {
        let Ok(answer) = client
            .get(format!("https://127.0.0.1:{port}/health"))
            .send()
            .await
        else {
            return false;
        };
        answer.status().is_success()
            && answer
                .text()
                .await
                .is_ok_and(|t| t.replace(' ', "").contains("\"health\":\"true\""))
    })
}
