//! The agent's async executor: tokio-uring (one thread, io_uring for file and socket
//! I/O) when the kernel lets us set up an io_uring instance, otherwise a plain tokio
//! current-thread runtime. Both run futures inside a [`tokio::task::LocalSet`], so
//! [`spawn`] (`!Send` tasks) and `tokio::spawn` work the same on either.
//!
//! io_uring can be unavailable: old kernels, `kernel.io_uring_disabled=2`, seccomp profiles
//! that deny `io_uring_setup` (Docker's default profile does), or a locked-memory limit too
//! small for the rings. The agent then still runs, only without io_uring; it says so once.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::Once;

use tokio::task::{JoinHandle, LocalSet};
use tracing::{info, warn};

/// Environment variable that turns io_uring off (`SKIFF_IO_URING=off`, `0` or `false`):
/// the agent then runs on plain tokio, e.g. to compare the two or to work around a kernel bug.
pub const DISABLE_ENV: &str = "SKIFF_IO_URING";

/// Submission queue entries of the ring. The agent has few operations in flight (one
/// heartbeat, a few file reads and log writes), so a small ring keeps locked memory low.
const RING_ENTRIES: u32 = 64;

thread_local! {
    /// Whether this thread is inside [`Executor::block_on`] of an io_uring runtime.
    static ON_IO_URING: Cell<bool> = const { Cell::new(false) };
}

/// The agent's single-threaded executor: tokio-uring if possible, else plain tokio.
pub struct Executor {
    inner: Inner,
}

enum Inner {
    IoUring(tokio_uring::Runtime),
    Tokio {
        runtime: tokio::runtime::Runtime,
        local: LocalSet,
    },
}

impl Executor {
    /// A tokio-uring runtime; if io_uring cannot be set up (or [`DISABLE_ENV`] says so), a
    /// plain tokio current-thread runtime, with a warning logged once per process.
    ///
    /// Fails only if not even the plain tokio runtime can be built.
    pub fn new() -> io::Result<Executor> {
        if disabled_by_env() {
            static SAID: Once = Once::new();
            SAID.call_once(|| info!("io_uring turned off by {DISABLE_ENV}; running on tokio"));
            return Executor::tokio();
        }
        let mut builder = tokio_uring::builder();
        builder.entries(RING_ENTRIES);
        // A socket operation completes as task work on this thread. By default the kernel
        // interrupts the thread for it: a reschedule IPI when the answer arrived on the other
        // CPU, as the master's do (a tenth of the hollow nodes' perf samples). With
        // COOP_TASKRUN it runs when the thread next enters the kernel (epoll_wait,
        // io_uring_enter), and still wakes the thread if it sleeps. Kernels before 5.19
        // refuse the flag: the ring is then made without it.
        let mut cooperative = tokio_uring::uring_builder();
        cooperative.setup_coop_taskrun();
        builder.uring_builder(&cooperative);
        let runtime = tokio_uring::Runtime::new(&builder).or_else(|err| {
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
            builder.uring_builder(&tokio_uring::uring_builder());
            tokio_uring::Runtime::new(&builder)
        });
        match runtime {
            Ok(runtime) => Ok(Executor {
                inner: Inner::IoUring(runtime),
            }),
            Err(err) => {
                static SAID: Once = Once::new();
                SAID.call_once(|| {
                    warn!(error = %err, "io_uring is not available; falling back to plain tokio")
                });
                Executor::tokio()
            }
        }
    }

    /// A plain tokio current-thread runtime (no io_uring), e.g. for side-by-side comparisons.
    pub fn tokio() -> io::Result<Executor> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Executor {
            inner: Inner::Tokio {
                runtime,
                local: LocalSet::new(),
            },
        })
    }

    /// Whether this runtime drives its I/O through io_uring.
    pub fn is_io_uring(&self) -> bool {
        matches!(self.inner, Inner::IoUring(_))
    }

    /// Runs `future` to completion on the current thread, with tasks from [`spawn`] running
    /// beside it. Tasks still pending when it returns are suspended, not dropped.
    ///
    /// # Panics
    ///
    /// If called from inside another runtime (as tokio's `block_on` does), or if `future`
    /// panics.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match &self.inner {
            Inner::IoUring(runtime) => {
                let _flag = OnIoUring::set();
                runtime.block_on(future)
            }
            Inner::Tokio { runtime, local } => runtime.block_on(local.run_until(future)),
        }
    }
}

/// Runs `future` on a new [`Executor::new`]: tokio-uring, or plain tokio as a fallback.
///
/// # Panics
///
/// If no runtime at all can be built (the process cannot create an epoll instance), if
/// called from inside another runtime, or if `future` panics.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = match Executor::new() {
        Ok(runtime) => runtime,
        Err(err) => panic!("cannot build a tokio runtime: {err}"),
    };
    runtime.block_on(future)
}

/// Whether the calling thread runs inside an io_uring [`Executor`], i.e. whether the I/O of
/// this module goes through io_uring right now.
pub fn io_uring_active() -> bool {
    ON_IO_URING.with(Cell::get)
}

/// Spawns a `!Send` task on the current [`Executor`] (either kind).
///
/// # Panics
///
/// If called outside [`Executor::block_on`].
pub fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    tokio::task::spawn_local(task)
}

fn disabled_by_env() -> bool {
    std::env::var(DISABLE_ENV).is_ok_and(|value| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "0" | "off" | "false" | "no"
        )
    })
}

/// Marks the thread as running on io_uring until dropped (also when the future panics).
struct OnIoUring {
    previous: bool,
}

impl OnIoUring {
    fn set() -> OnIoUring {
        OnIoUring {
            previous: ON_IO_URING.with(|flag| flag.replace(true)),
        }
    }
}

impl Drop for OnIoUring {
    fn drop(&mut self) {
        ON_IO_URING.with(|flag| flag.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokio_runtime_runs_local_tasks_without_io_uring() {
        let runtime = Executor::tokio().expect("tokio runtime");
        assert!(!runtime.is_io_uring());
        let answer = runtime.block_on(async {
            assert!(!io_uring_active());
            let not_send = std::rc::Rc::new(41);
            spawn(async move { *not_send + 1 }).await.expect("task")
        });
        assert_eq!(answer, 42);
    }

    #[test]
    fn io_uring_flag_is_only_set_inside_block_on() {
        let runtime = Executor::new().expect("runtime");
        let inside = runtime.block_on(async { io_uring_active() });
        assert_eq!(inside, runtime.is_io_uring());
        assert!(!io_uring_active());
    }
}
