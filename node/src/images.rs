//! The pod sandbox's image, made locally through Docker's build API from a static binary
//! (`FROM scratch`), so nothing has to come from a registry. `node/build.rs` compiles it
//! from `node/images/pause.c`.

/// The image every pod's sandbox container runs.
pub const PAUSE_IMAGE: &str = "skiff/pause:1";

/// The pause program: holds the pod's namespaces and reaps zombies; exits on SIGTERM.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));
