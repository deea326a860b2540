//! Compiles the pod sandbox's `pause` program (`images/pause.c`) into the static binary the
//! agent turns into a local image (no registry is reachable): linked statically with the
//! system C compiler, so the image can be `FROM scratch` and needs nothing else.

use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    skiff_tooling::static_binary::compile(Path::new("images/pause.c"), &out_dir, "pause");
}
