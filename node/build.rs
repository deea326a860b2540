//! Compiles the pod sandbox's `pause` program (`images/pause.c`) into the static binary the
//! agent turns into a local image (no registry is reachable): linked statically with the
//! system C compiler, so the image can be `FROM scratch` and needs nothing else.
//!
//! Builds the eBPF programs of `node-ebpf/` for `bpfel-unknown-none` (aya-build: nightly,
//! `-Z build-std=core`, bpf-linker; `cargo xtask setup` installs them), which the agent
//! embeds and loads (`proxy/`).

use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    skiff_tooling::static_binary::compile(Path::new("images/pause.c"), &out_dir, "pause");

    let ebpf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node-ebpf");
    let ebpf = ebpf.canonicalize().expect("node-ebpf/ beside node/");
    // node-ebpf is a workspace of its own (its programs are not built for the host): cargo
    // finds it from its own directory.
    std::env::set_current_dir(&ebpf).expect("entering node-ebpf/");
    let root_dir = ebpf.to_str().expect("a UTF-8 checkout path");
    if let Err(err) = aya_build::build_ebpf(
        [aya_build::Package {
            name: "skiff-node-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    ) {
        panic!(
            "building the eBPF programs failed (run `cargo xtask setup` for nightly's rust-src \
             and bpf-linker): {err:#}"
        );
    }
}
