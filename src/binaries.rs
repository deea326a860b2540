//! The workspace's programs the harness runs (`skiff-master`, `skiff-node`): the ones beside
//! the running test or bench binary (so `cargo test` runs the debug build and `cargo bench`
//! the release one), brought up to date by one workspace build per process
//! ([`workspace::build_binaries`], a no-op after `cargo xtask test`, which builds the same
//! way), or the one an environment variable names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use skiff_tooling::workspace::{self, Profile};

/// The program `name`: `$<env>` if set, else the workspace's build of it.
pub fn binary(name: &str, env: &str) -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<BTreeMap<String, PathBuf>, String>> = OnceLock::new();
    if let Some(binary) = std::env::var_os(env) {
        return Ok(PathBuf::from(binary));
    }
    let built = BUILT
        .get_or_init(|| {
            workspace::build_binaries(Profile::of_dir(&profile_dir()))
                .map_err(|err| format!("{err:#}"))
        })
        .as_ref()
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    workspace::binary(built, name)
}

/// `<target dir>/<profile>`: where the running test binary lives (`.../debug/deps/x-hash`),
/// else `<repo>/target/debug`.
fn profile_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe.parent()
        && deps.file_name().is_some_and(|name| name == "deps")
        && let Some(profile) = deps.parent()
    {
        return profile.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("debug")
}
