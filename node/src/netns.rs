//! Work done inside a pod's network namespace (the proxy's socket cookies and closes, the
//! kubelet's port-forward connections): a thread of its own joins the namespace of a process,
//! does the work and ends, so nothing else of the agent ever runs there.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Runs `work` on a thread of its own that joins process `pid`'s network namespace and ends
/// with it. Blocks until `work` is done.
pub fn in_namespace_of<T: Send>(
    pid: u32,
    work: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let namespace = File::open(Path::new("/proc").join(pid.to_string()).join("ns/net"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns on this thread only, with an open namespace file.
                if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                work()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}
