//! For build scripts: compiles a small C program into a static binary, the whole content of a
//! local `FROM scratch` image (no registry is reachable, see DESIGN.md).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `cc -static -O2 -s <source> -o <out_dir>/<name>` with the system C compiler (`$CC`, else
/// `cc`), telling cargo to rerun when the source or `$CC` changes. Panics with a hint when it
/// fails: it is only called from build scripts, where a panic is how a build fails.
pub fn compile(source: &Path, out_dir: &Path, name: &str) -> PathBuf {
    println!("cargo::rerun-if-changed={}", source.display());
    println!("cargo::rerun-if-env-changed=CC");
    let compiler = std::env::var("CC").unwrap_or_else(|_| String::from("cc"));
    let output = out_dir.join(name);
    let result = Command::new(&compiler)
        .args(["-static", "-O2", "-s", "-Wall", "-o"])
        .arg(&output)
        .arg(source)
        .output();
    match result {
        Ok(out) if out.status.success() => output,
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
