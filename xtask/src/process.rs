//! Child processes that `cargo xtask run` owns: started so that they never outlive xtask, and
//! stopped politely (SIGTERM, then SIGKILL after a grace period).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a child gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running child process with a name for messages.
pub struct Supervised {
    name: &'static str,
    child: Child,
}

impl Supervised {
    /// Starts `cmd` in its own process group, so a Ctrl-C in the terminal reaches only xtask,
    /// which then stops its children in order; the kernel sends the child SIGTERM should xtask
    /// die without doing so.
    pub fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Self> {
        // SAFETY: getpid is async-signal-safe and infallible.
        let parent = unsafe { libc::getpid() };
        cmd.process_group(0);
        // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Self { name, child })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the child has exited.
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("checking on {}", self.name))
    }

    /// Stops the child: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL. Returns at once
    /// if it has already exited.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited()? {
            return Ok(status);
        }
        eprintln!("stopping {} (pid {}) ...", self.name, self.id());
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.exited()? {
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{} did not exit within {} s of SIGTERM; killing it",
            self.name,
            STOP_GRACE.as_secs()
        );
        self.child
            .kill()
            .with_context(|| format!("killing {}", self.name))?;
        self.child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    fn signal(&self, signal: libc::c_int) {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill has no memory-safety preconditions; the child is not yet reaped, so
        // the pid still names it.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("warning: {err:#}");
        }
    }
}

/// A flag that turns true on SIGINT, SIGTERM or SIGHUP (instead of the process dying), so the
/// caller can shut down in order. A second Ctrl-C exits at once; the children then still get
/// SIGTERM from the kernel (see [`Supervised::spawn`]).
pub fn shutdown_flag() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::flag;
    let requested = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // Registered first, so it runs before the flag is set: exits only on the second one.
        flag::register_conditional_shutdown(signal, 130, Arc::clone(&requested))
            .context("installing signal handler")?;
        flag::register(signal, Arc::clone(&requested)).context("installing signal handler")?;
    }
    Ok(requested)
}
