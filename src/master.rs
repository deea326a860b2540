//! A real `skiff-master` process for end-to-end tests and benchmarks.
//!
//! [`Master::start`] runs the built `skiff-master` binary with its state in a temporary
//! directory (or one the test names, to restart on the same data), on a free loopback port,
//! and waits until it has written its kubeconfig and `/readyz` answers. The [`Master`] then
//! hands out clients that reach it the way users do: a [`reqwest::Client`] trusting its CA with
//! its admin token, a [`kube::Client`], and the real `kubectl`. The process is stopped when the
//! [`Master`] is dropped, and it gets SIGTERM from the kernel if the test process dies first.
//!
//! The binary is the workspace's build for the running test's profile, or the one
//! `$SKIFF_MASTER_BIN` names (see [`crate::binaries`]).
//!
//! Its log (stdout and stderr, every start appended) is `<state dir>/master.log`; start errors
//! quote its tail, and so does a test that panics while holding the [`Master`].

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use kube::config::Kubeconfig;
use secrecy::ExposeSecret;
use skiff_tooling::process;

use crate::binaries;

/// The `kubectl` the tests drive (v1.32, preinstalled).
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// Environment variable naming another `skiff-master` binary to run.
pub const MASTER_BIN_ENV: &str = "SKIFF_MASTER_BIN";

/// How long a start may take until `/readyz` answers.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the master gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of the master's log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// How to run a [`Master`].
#[derive(Clone, Debug, Default)]
pub struct MasterOptions {
    /// State directory (pki, token, data, kubeconfig). `None`: a new temporary directory,
    /// removed when the [`Master`] is dropped. Give one to run a second master on the data
    /// of a first; it is created if missing and kept.
    pub state_dir: Option<PathBuf>,
    /// etcd client URLs (`--etcd-endpoints`); empty: the embedded store in the state dir.
    pub etcd_endpoints: Vec<String>,
    /// Further command-line arguments for `skiff-master`.
    pub extra_args: Vec<String>,
}

/// A running `skiff-master` process; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Master {
    opts: MasterOptions,
    state_dir: PathBuf,
    child: Option<Child>,
    access: Access,
    /// The network namespace it runs in (`ip netns exec`); `None`: the host's.
    netns: Option<String>,
    // Dropped last, after `Drop::drop` stopped the process.
    _temp_dir: Option<tempfile::TempDir>,
}

/// What the kubeconfig says about reaching the master.
#[derive(Clone, Default)]
struct Access {
    server_url: String,
    token: String,
    ca_pem: String,
}

impl Master {
    /// Starts `skiff-master` (building it first, once per process) on a free loopback
    /// port and waits up to 30 s until it is ready. Blocking; callable from sync and async
    /// tests alike.
    pub fn start(opts: MasterOptions) -> anyhow::Result<Master> {
        Master::start_in(opts, None)
    }

    /// As [`Master::start`], but inside network namespace `netns`: it reaches and is reached
    /// only through the namespace's links, so `opts` should name a `--bind-address` (which
    /// the kubeconfig names) on one of them.
    pub fn start_in_namespace(
        opts: MasterOptions,
        netns: &crate::netns::NetworkNamespace,
    ) -> anyhow::Result<Master> {
        Master::start_in(opts, Some(netns.name().to_owned()))
    }

    fn start_in(opts: MasterOptions, netns: Option<String>) -> anyhow::Result<Master> {
        let (state_dir, temp_dir) = match &opts.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating state dir {}", dir.display()))?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("skiff-master-")
                    .tempdir()
                    .context("creating temporary state dir")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let mut master = Master {
            opts,
            state_dir,
            child: None,
            access: Access::default(),
            netns,
            _temp_dir: temp_dir,
        };
        master.launch()?;
        Ok(master)
    }

    /// The kubeconfig the master wrote (server, CA, admin token).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    /// The API server's URL, e.g. `https://127.0.0.1:40123` (the port changes on restart).
    pub fn server_url(&self) -> &str {
        &self.access.server_url
    }

    /// The admin bearer token.
    pub fn token(&self) -> &str {
        &self.access.token
    }

    /// The cluster CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.access.ca_pem
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The master's log file (stdout and stderr of every start).
    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join("master.log")
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A new HTTP client for the API server: trusts its CA and sends the admin token.
    /// A fresh client per call, so it is bound to the caller's tokio runtime.
    pub fn http(&self) -> reqwest::Client {
        // The same construction succeeded in `launch` with the same inputs.
        http_client(&self.access).expect("HTTP client for the master")
    }

    /// A client certificate the cluster CA (`<state dir>/pki/ca.key`) signs for `user` in
    /// `groups`, read as kube-apiserver's x509 authenticator reads one (CN the user, O the
    /// groups): (certificate, key), PEM. For clients other than the admin: a user, a node
    /// (`system:node:<name>` in `system:nodes`), a `system:kube-*` component.
    pub fn client_certificate(
        &self,
        user: &str,
        groups: &[&str],
    ) -> anyhow::Result<(String, String)> {
        let ca_key_path = self.state_dir.join("pki/ca.key");
        let ca_key = std::fs::read_to_string(&ca_key_path)
            .with_context(|| format!("reading {}", ca_key_path.display()))?;
        let ca_key = rcgen::KeyPair::from_pem(&ca_key).context("the CA key")?;
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(self.ca_pem(), ca_key).context("the CA certificate")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, user);
        for group in groups {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *group);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &issuer)
            .context("signing the client certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A new HTTP client that trusts the cluster CA and presents the client certificate
    /// `cert` with its `key` (PEM, e.g. from [`Master::client_certificate`]) instead of the
    /// admin token.
    pub fn http_with_certificate(&self, cert: &str, key: &str) -> anyhow::Result<reqwest::Client> {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem().as_bytes()).context("cluster CA")?,
            )
            .identity(
                reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                    .context("client certificate and key")?,
            )
            .build()
            .context("building HTTP client")
    }

    /// A `kube` client configured from the master's kubeconfig file.
    pub async fn kube_client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig_path())
            .context("reading the master's kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .context("kube config from the master's kubeconfig")?;
        kube::Client::try_from(config).context("building kube client")
    }

    /// Runs `kubectl --kubeconfig <kubeconfig> <args>` and captures what it did.
    pub fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        self.run_kubectl(args, None)
    }

    /// Like [`Master::kubectl`], with `input` on kubectl's stdin (e.g. `apply -f -`).
    pub fn kubectl_with_stdin(&self, args: &[&str], input: &str) -> KubectlOutput {
        self.run_kubectl(args, Some(input))
    }

    /// Stops the master: SIGTERM, up to 10 s to exit, then SIGKILL. Returns how it exited,
    /// `None` if it was not running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        process::stop(&mut child, STOP_GRACE)
            .ok()
            .map(|stopped| stopped.status)
    }

    /// Kills the master with SIGKILL (no chance to flush or clean up), for durability tests.
    /// Returns how it exited, `None` if it was not running.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Stops the master if it runs (also fine after [`Master::kill9`]) and starts it again on
    /// the same state dir and port with the same options; waits until it is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }

    /// The options the next (re)start uses, e.g. other flags for a restart.
    pub fn opts_mut(&mut self) -> &mut MasterOptions {
        &mut self.opts
    }

    /// As [`Master::restart`], but on a new free port (clients must be told the new address).
    pub fn restart_on_new_port(&mut self) -> anyhow::Result<()> {
        self.stop();
        // Without a known address the start picks a free port again.
        self.access = Access::default();
        self.launch()
    }

    /// Starts the process and waits until it is ready; on failure it is stopped again.
    fn launch(&mut self) -> anyhow::Result<()> {
        let binary = binaries::binary("skiff-master", MASTER_BIN_ENV)?;
        let kubeconfig = self.kubeconfig_path();
        // Every start writes a fresh kubeconfig (new port); an old one must not count.
        match std::fs::remove_file(&kubeconfig) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).context(format!("removing {}", kubeconfig.display())),
        }
        // The first start takes a free port; a restart listens where the first start did, so
        // agents and clients find the master again.
        let port = self
            .access
            .server_url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse::<u16>().ok())
            .unwrap_or(0);
        let mut cmd = match &self.netns {
            Some(netns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", netns]).arg(&binary);
                cmd
            }
            None => Command::new(&binary),
        };
        cmd.arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--secure-port")
            .arg(port.to_string());
        if !self.opts.etcd_endpoints.is_empty() {
            cmd.arg("--etcd-endpoints")
                .arg(self.opts.etcd_endpoints.join(","));
        }
        // Many test masters run at once on this machine: their cluster DNS takes any free
        // port (the `kube-dns` Endpoints name it) unless a test asks for one.
        if !self
            .opts
            .extra_args
            .iter()
            .any(|arg| arg.starts_with("--dns-port"))
        {
            cmd.arg("--dns-port=0");
        }
        cmd.args(&self.opts.extra_args);

        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(log, "=== skiff test harness: starting {cmd:?}")
            .with_context(|| format!("writing {}", log_path.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().context("master log")?)
            .stderr(log);
        self.child = Some(process::spawn_tied(cmd).context("starting skiff-master")?);

        match self.wait_ready() {
            Ok(access) => {
                self.access = access;
                Ok(())
            }
            Err(err) => {
                self.stop();
                bail!(
                    "skiff-master did not become ready: {err:#}\n\
                     --- last lines of its log {} ---\n{}",
                    log_path.display(),
                    self.log_tail()
                )
            }
        }
    }

    /// Waits for the kubeconfig, then for `/readyz` to answer 200 through it.
    fn wait_ready(&mut self) -> anyhow::Result<Access> {
        let deadline = Instant::now() + START_TIMEOUT;
        let kubeconfig = self.kubeconfig_path();
        let access = loop {
            self.ensure_running()?;
            if kubeconfig.exists() {
                match read_access(&kubeconfig) {
                    Ok(access) => break access,
                    Err(err) if Instant::now() > deadline => return Err(err),
                    Err(_) => {}
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "no kubeconfig at {} after {START_TIMEOUT:?}",
                    kubeconfig.display()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let client = http_client(&access)?;
        let url = format!("{}/readyz", access.server_url);
        crate::block_on(async {
            loop {
                self.ensure_running()?;
                let response = client
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == reqwest::StatusCode::OK => {
                        return Ok(access);
                    }
                    Ok(response) if Instant::now() > deadline => bail!(
                        "GET {url} still answers {} after {START_TIMEOUT:?}",
                        response.status()
                    ),
                    Err(err) if Instant::now() > deadline => {
                        return Err(anyhow::Error::new(err)
                            .context(format!("GET {url} still fails after {START_TIMEOUT:?}")));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    }

    /// Fails if the process has exited.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("skiff-master is not running");
        };
        if let Some(status) = child.try_wait().context("checking on skiff-master")? {
            self.child = None;
            bail!("skiff-master exited ({status})");
        }
        Ok(())
    }

    fn run_kubectl(&self, args: &[&str], input: Option<&str>) -> KubectlOutput {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig_path())
            // Discovery cache per state dir, so one from another master never leaks in.
            .arg("--cache-dir")
            .arg(self.state_dir.join("kubectl-cache"))
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = format!("kubectl {}", args.join(" "));
        let output = cmd.spawn().and_then(|mut child| {
            if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
                // Written from another thread so a large input cannot deadlock against
                // kubectl's output filling its pipes.
                let input = input.to_owned();
                thread::spawn(move || {
                    let _ = stdin.write_all(input.as_bytes());
                });
            }
            child.wait_with_output()
        });
        match output {
            Ok(out) => KubectlOutput {
                command,
                status: Some(out.status),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(err) => KubectlOutput {
                command,
                status: None,
                stdout: String::new(),
                stderr: format!("could not run {KUBECTL}: {err}"),
            },
        }
    }

    /// The last lines of the master's log.
    pub fn log_tail(&self) -> String {
        process::log_tail(&self.log_path(), LOG_TAIL_LINES)
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if thread::panicking() {
            // Shown with the failing test's output.
            eprintln!(
                "--- last lines of the skiff-master log {} ---\n{}",
                self.log_path().display(),
                self.log_tail()
            );
        }
        self.stop();
    }
}

/// What one `kubectl` run did.
#[derive(Clone, Debug)]
pub struct KubectlOutput {
    /// The command line, for messages (`kubectl get pods`).
    pub command: String,
    /// Its exit status; `None` if kubectl could not be started.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl KubectlOutput {
    /// Whether kubectl ran and exited with 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }
}

impl fmt::Display for KubectlOutput {
    /// All of it, for assertion messages: `assert!(out.success(), "{out}")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => writeln!(f, "`{}` exited with {status}", self.command)?,
            None => writeln!(f, "`{}` did not run", self.command)?,
        }
        writeln!(f, "stdout:\n{}", self.stdout)?;
        write!(f, "stderr:\n{}", self.stderr)
    }
}

/// Server, token and CA from the kubeconfig's current context (or its only entries), read
/// with kube's own kubeconfig types.
fn read_access(path: &Path) -> anyhow::Result<Access> {
    let config = Kubeconfig::read_from(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    let context = config
        .contexts
        .iter()
        .find(|named| Some(&named.name) == config.current_context.as_ref())
        .and_then(|named| named.context.as_ref());
    let pick = |names: Vec<&String>, wanted: Option<&str>| -> Option<usize> {
        wanted
            .and_then(|w| names.iter().position(|n| n.as_str() == w))
            .or((!names.is_empty()).then_some(0))
    };
    let cluster = pick(
        config.clusters.iter().map(|c| &c.name).collect(),
        context.map(|c| c.cluster.as_str()),
    )
    .and_then(|i| config.clusters[i].cluster.as_ref())
    .context("kubeconfig has no cluster")?;
    let user = pick(
        config.auth_infos.iter().map(|u| &u.name).collect(),
        context.and_then(|c| c.user.as_deref()),
    )
    .and_then(|i| config.auth_infos[i].auth_info.as_ref())
    .context("kubeconfig has no user")?;
    let ca_pem = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .context("kubeconfig certificate-authority-data is not base64")?;
            String::from_utf8(pem).context("kubeconfig CA is not PEM text")?
        }
        (None, Some(file)) => {
            std::fs::read_to_string(file).with_context(|| format!("reading CA {file}"))?
        }
        (None, None) => bail!("kubeconfig cluster has no certificate authority"),
    };
    let token = user
        .token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
        .context("kubeconfig user has no token")?;
    let server = cluster
        .server
        .as_deref()
        .context("kubeconfig cluster has no server")?;
    Ok(Access {
        server_url: server.trim_end_matches('/').to_owned(),
        token,
        ca_pem,
    })
}

/// An HTTP client that trusts only the cluster CA and sends the bearer token.
fn http_client(access: &Access) -> anyhow::Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(access.ca_pem.as_bytes()).context("cluster CA")?;
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", access.token))
        .context("token is not a valid header value")?;
    auth.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .default_headers(headers)
        .build()
        .context("building HTTP client")
}
