//! Static binaries that become local images through Docker's build API (`FROM scratch`), so
//! nothing has to come from a registry. `node/build.rs` compiles them from `node/images/*.c`.

/// The image every pod's sandbox container runs.
pub const PAUSE_IMAGE: &str = "skiff/pause:1";

/// The pause program: holds the pod's namespaces and reaps zombies; exits on SIGTERM.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// The image of the end-to-end tests' workload (see `node/images/workload.c` for its steps).
#[cfg(feature = "test-workload")]
pub const WORKLOAD_IMAGE: &str = "skiff/test-workload:1";

/// The test workload program (`node/images/workload.c`).
#[cfg(feature = "test-workload")]
pub const WORKLOAD_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/workload"));
