//! The machine's Docker daemon: [`ensure`] starts it when it is not running (CI machines start
//! without one). dockerd is shared by everything on the machine, so it is started detached
//! (a session of its own, not tied to whoever started it) and left running. Starting it needs
//! root and Debian's `docker.io` (`cargo xtask setup` installs it).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::log_tail;

/// Where Docker's API listens.
pub const SOCKET: &str = "/var/run/docker.sock";

/// The daemon of Debian's `docker.io`.
pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// How long dockerd may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Held while one process checks and starts dockerd, so test processes and xtask running at
/// once start it once.
const MACHINE_LOCK: &str = "/tmp/skiff-dockerd.lock";

/// Whether it was running or this call started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    AlreadyRunning,
    Now { pid: u32 },
}

/// Makes sure dockerd runs and answers on [`SOCKET`]: returns at once if it does, else
/// starts it (once, however many processes ask at a time) with its output appended to `log`,
/// and waits up to 60 s. Blocking.
pub fn ensure(log: &Path) -> anyhow::Result<Started> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    if answers() {
        return Ok(Started::AlreadyRunning);
    }
    let _guard = IN_PROCESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _machine_lock = MachineLock::acquire(Path::new(MACHINE_LOCK))?;
    if answers() {
        return Ok(Started::AlreadyRunning);
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
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let _ = writeln!(log_file, "=== skiff: starting {DOCKERD}");
    let mut cmd = Command::new(DOCKERD);
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone().context("dockerd log")?)
        .stderr(log_file);
    // SAFETY: setsid is async-signal-safe; a session of its own keeps a Ctrl-C of the tests
    // or of `cargo xtask run` away from the machine's Docker.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {DOCKERD}"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if answers() {
            return Ok(Started::Now { pid: child.id() });
        }
        if let Some(status) = child.try_wait().context("checking on dockerd")? {
            bail!(
                "dockerd exited at start ({status}); last lines of {}:\n{}",
                log.display(),
                log_tail(log, 30)
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "dockerd did not answer on {SOCKET} within {START_TIMEOUT:?}; last lines of {}:\n{}",
        log.display(),
        log_tail(log, 30)
    )
}

/// Whether Docker's `GET /_ping` answers `OK`. A plain HTTP/1.0 exchange on the socket: this
/// crate has no async runtime for a Docker client (the harness and the agent use bollard).
pub fn answers() -> bool {
    let Ok(mut stream) = UnixStream::connect(SOCKET) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut response = String::new();
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.0 200")
        && response.ends_with("OK")
}

/// An exclusive `flock` on a file, released when dropped (the file is held only for that).
struct MachineLock {
    _file: std::fs::File,
}

impl MachineLock {
    fn acquire(path: &Path) -> anyhow::Result<Self> {
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
        Ok(Self { _file: file })
    }
}
