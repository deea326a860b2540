//! Harness for skiff's end-to-end tests and benchmarks: starts the real programs (etcd,
//! skiff-master, skiff-node, dockerd) on loopback ports of this machine, waits until they are
//! ready and stops them when dropped.

pub mod binaries;
pub mod docker;
pub mod etcd;
pub mod hollow;
pub mod images;
pub mod master;
pub mod netns;
pub mod network;
pub mod node;
pub mod process;
pub mod python;

use std::thread;

/// Runs a future to completion on a runtime of its own in another thread, so that blocking
/// code can wait for it even when called from inside a tokio runtime.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    thread::scope(|scope| {
        scope
            .spawn(|| {
                // Building a current-thread runtime fails only when the OS refuses its
                // resources; a test cannot go on then.
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
