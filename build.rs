//! Compiles the end-to-end tests' workload program (`images/workload.c`) into the static
//! binary of the `skiff/test-workload` image (see `src/images.rs`).

use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    skiff_tooling::static_binary::compile(Path::new("images/workload.c"), &out_dir, "workload");
}
