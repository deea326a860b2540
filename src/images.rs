//! The end-to-end tests' workload image, built locally from a static binary (`FROM scratch`;
//! no registry is reachable). `build.rs` compiles it from `images/workload.c`, which lists
//! the steps it can take (serve, exit, write files, ...).

/// The image tests run their pods with.
/// The tag changes with `images/workload.c`: an image is built only when its tag is missing.
pub const WORKLOAD_IMAGE: &str = "skiff/test-workload:4";

/// The workload program (`images/workload.c`).
pub const WORKLOAD_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/workload"));
