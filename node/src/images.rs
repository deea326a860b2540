//! The images skiff makes locally through Docker's build API (`FROM scratch`), so nothing
//! has to come from a registry: the pod sandbox's, from a static binary `node/build.rs`
//! compiles from `node/images/pause.c`, and a shell image of the host's static busybox for
//! the README's tour and the tests (`skiff-node image busybox`).

/// The image every pod's sandbox container runs.
pub const PAUSE_IMAGE: &str = "skiff/pause:1";

/// The pause program: holds the pod's namespaces and reaps zombies; exits on SIGTERM.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// A shell image: the host's static busybox (Debian's `busybox-static`) with every applet
/// linked in `/bin` (sh, httpd, wget, nslookup, tar for `kubectl cp`, ...).
pub const BUSYBOX_IMAGE: &str = "skiff/busybox:1";

/// Where the static busybox is on the host (`cargo xtask setup` installs it).
pub const HOST_BUSYBOX: &str = "/bin/busybox";
