//! Child processes that `cargo xtask run` owns: started so that they never outlive xtask, and
//! stopped politely (SIGTERM, then SIGKILL after a grace period).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use skiff_tooling::process;

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
    pub fn spawn(name: &'static str, mut cmd: Command) -> anyhow::Result<Self> {
        cmd.process_group(0);
        let program = cmd.get_program().to_owned();
        let child =
            process::spawn_tied(cmd).with_context(|| format!("starting {name} ({program:?})"))?;
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

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited()? {
            return Ok(status);
        }
        self.child
            .kill()
            .with_context(|| format!("killing {}", self.name))?;
        self.child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// Stops the child: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL. Returns at once
    /// if it has already exited.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited()? {
            return Ok(status);
        }
        eprintln!("stopping {} (pid {}) ...", self.name, self.id());
        let stopped = process::stop(&mut self.child, STOP_GRACE)
            .with_context(|| format!("stopping {}", self.name))?;
        if stopped.killed {
            eprintln!(
                "{} did not exit within {} s of SIGTERM; killed it",
                self.name,
                STOP_GRACE.as_secs()
            );
        }
        Ok(stopped.status)
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
