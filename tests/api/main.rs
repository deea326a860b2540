//! End-to-end tests of the API server: the real `skiff-master` process (as `cargo xtask run`
//! starts it), driven by the real kubectl, the `kube` crate and raw HTTPS, on the embedded
//! store and on a real etcd.

mod bad_input;
mod kube_client;
mod kubectl;
mod restart;
mod semantics;

use std::path::PathBuf;

use skiff::etcd::Etcd;
use skiff::master::{Master, MasterOptions};

/// A master on the embedded store in a fresh state directory.
pub fn embedded_master() -> Master {
    Master::start(MasterOptions::default()).expect("starting skiff-master")
}

/// A real etcd and a master using it.
pub fn etcd_master() -> (Etcd, Master) {
    let etcd = Etcd::start().expect("starting etcd");
    let master = Master::start(MasterOptions {
        etcd_endpoints: vec![etcd.endpoint()],
        ..Default::default()
    })
    .expect("starting skiff-master on etcd");
    (etcd, master)
}

/// Write `contents` to a file named `name` in a new temporary directory.
pub fn manifest(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("writing manifest");
    path
}
