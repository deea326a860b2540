//! Child processes that never outlive their parent: [`spawn_tied`] starts them with
//! `PR_SET_PDEATHSIG`, [`stop`] asks them to exit and kills them if they do not.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Spawns `cmd` so that it gets SIGTERM when this process dies, even by SIGKILL or abort
/// (tests that are killed, `static` masters that are never dropped, a Ctrl-C'd xtask).
///
/// The kernel sends the parent-death signal when the *thread* that forked exits, so every
/// child is forked by one thread that lives as long as the process.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();

    // SAFETY: getpid is infallible.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        let spawned = thread::Builder::new()
            .name("skiff-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in incoming {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(err) = spawned {
            // Without the thread every request fails below with a clear error.
            eprintln!("cannot start the process spawner thread: {err}");
        }
        requests
    });
    let (reply, response) = mpsc::channel();
    spawner
        .send((cmd, reply))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    response
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Sends `signal` to a child that has not been reaped yet.
pub fn signal(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; an unreaped child's pid is its own.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// How [`stop`] ended.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// The child ignored SIGTERM for the whole grace period and was killed.
    pub killed: bool,
}

/// Stops a child: SIGTERM, up to `grace` to exit, then SIGKILL. Returns at once if it has
/// already exited.
pub fn stop(child: &mut Child, grace: Duration) -> io::Result<Stopped> {
    if let Some(status) = child.try_wait()? {
        return Ok(Stopped {
            status,
            killed: false,
        });
    }
    signal(child, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(Stopped {
                status,
                killed: false,
            });
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    Ok(Stopped {
        status: child.wait()?,
        killed: true,
    })
}

/// The last `lines` lines of a log file, for error messages (or why it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_ends_a_child_that_ignores_nothing() {
        let mut child = spawn_tied({
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            cmd
        })
        .expect("spawn sleep");
        let stopped = stop(&mut child, Duration::from_secs(5)).expect("stop");
        assert!(!stopped.killed, "sleep exits on SIGTERM");
        assert!(!stopped.status.success());
    }

    #[test]
    fn stop_kills_a_child_that_ignores_sigterm() {
        let mut child = spawn_tied({
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "trap '' TERM; exec sleep 30"]);
            cmd
        })
        .expect("spawn sh");
        // Let the shell install its trap before the signal comes.
        thread::sleep(Duration::from_millis(200));
        let stopped = stop(&mut child, Duration::from_millis(300)).expect("stop");
        assert!(stopped.killed);
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("skiff-tooling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("x.log");
        std::fs::write(&log, "a\nb\nc\nd\n").expect("write");
        assert_eq!(log_tail(&log, 2), "c\nd");
        assert_eq!(log_tail(&log, 10), "a\nb\nc\nd");
        assert!(log_tail(&dir.join("missing.log"), 2).starts_with("(cannot read"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
