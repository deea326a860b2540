//! What `cargo xtask` and the test harness (the root `skiff` crate) share, so each exists once:
//! starting and stopping child processes ([`process`]), building the workspace's programs with
//! one feature set ([`workspace`]), starting the machine's dockerd ([`dockerd`]), the settings
//! every etcd runs with ([`etcd`]), compiling the static binaries of local images in build
//! scripts ([`static_binary`]), and getting a bootstrap token to join agents with ([`join`]).
//!
//! It depends on no async runtime, so xtask stays quick to build.

pub mod dockerd;
pub mod etcd;
pub mod join;
pub mod process;
pub mod static_binary;
pub mod workspace;
