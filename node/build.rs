//! Compiles the static binaries the agent turns into local images (no registry is reachable):
//! the pod sandbox's `pause` and, for the test harness, the test `workload`. Both are tiny C
//! programs linked statically with the system C compiler (`$CC`, else `cc`), so the images can
//! be `FROM scratch` and need nothing else from the machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in ["pause", "workload"] {
        compile_static(name, &out_dir);
    }
}

/// `cc -static -O2 -s images/<name>.c -o $OUT_DIR/<name>`, failing the build with a hint.
fn compile_static(name: &str, out_dir: &Path) {
    let source = Path::new("images").join(format!("{name}.c"));
    println!("cargo::rerun-if-changed={}", source.display());
    println!("cargo::rerun-if-env-changed=CC");
    let compiler = env::var("CC").unwrap_or_else(|_| String::from("cc"));
    let output = out_dir.join(name);
    let result = Command::new(&compiler)
        .args(["-static", "-O2", "-s", "-Wall", "-o"])
        .arg(&output)
        .arg(&source)
        .output();
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "compiling {} with `{compiler} -static` failed ({}); the static C library is in \
             Debian's libc6-dev:\n{}",
            source.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => panic!(
            "cannot run the C compiler `{compiler}` to build {} ({err}); install gcc",
            source.display()
        ),
    }
}
