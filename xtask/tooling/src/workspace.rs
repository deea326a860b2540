//! Building the workspace's programs. Every entry point (`cargo xtask run`, `test`, `bench`
//! and the harness when a test runs alone) builds the same way ([`build_binaries`]), so cargo
//! resolves one feature set for every dependency and a warm build compiles each crate once
//! per profile, not once per command (`cargo xtask test` checks that the dev-dependencies add
//! no features either).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Which cargo profile to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    /// The profile whose output directory is `dir` (`.../target/release` is release).
    pub fn of_dir(dir: &Path) -> Self {
        if dir.file_name().is_some_and(|name| name == "release") {
            Profile::Release
        } else {
            Profile::Debug
        }
    }
}

/// The repository root (the workspace's directory; this crate is `<root>/xtask/tooling`).
pub fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// What cargo sets for the crate it runs (`cargo run`, a test binary), not settings of the
/// user's: left out of a nested cargo's environment.
const CRATE_ENVIRONMENT: &[&str] = &[
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_",
    "CARGO_BIN_",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// A cargo command in the repository root: the cargo that runs us (`$CARGO`), else `cargo`.
///
/// Without the variables cargo set for whoever runs it (xtask under `cargo run`, a test binary
/// under `cargo test`): build scripts watch some of them (ring's reruns when
/// `CARGO_PKG_NAME` or `CARGO_MANIFEST_DIR` changes), so a build from xtask and one from a test
/// would each find the other's output stale and compile ring and every crate above it again.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root());
    without_crate_environment(&mut cmd);
    cmd
}

/// Leaves the variables cargo set for whoever runs us out of `cmd`'s environment (see
/// [`cargo`]), for a cargo started some other way (`rustup run nightly cargo ...`).
pub fn without_crate_environment(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|name| CRATE_ENVIRONMENT.iter().any(|set| name.starts_with(set)))
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// `cargo build --workspace --lib --bins` for `profile`, with cargo's progress and
/// diagnostics on stderr. Returns every executable built, by name (`skiff-master`,
/// `skiff-node`, ...), at the path cargo reports, so any target-dir setting is honoured.
///
/// Every library and program, not only those a command runs: the test build has them all,
/// and a build with fewer is a different graph to cargo even with the same features (without
/// xtask, whose codegen needs syn, proc-macro2 and unicode-ident are host-only; without the
/// harness's build script, the host's serde_json differs), which gives proc-macros and every
/// crate above them (serde, tokio, kube, ...) other hashes: the tree would be compiled twice.
pub fn build_binaries(profile: Profile) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut cmd = cargo();
    cmd.args(["build", "--workspace", "--lib", "--bins"]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().context("starting cargo build")?;
    let stdout = child.stdout.take().context("cargo build stdout")?;
    let mut executables = BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo build output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && let (Some(name), Some(path)) =
                (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            executables.insert(name.to_owned(), PathBuf::from(path));
        }
    }
    let status = child.wait().context("waiting for cargo build")?;
    if !status.success() {
        bail!("cargo build --workspace --lib --bins failed ({status})");
    }
    Ok(executables)
}

/// The executable `name` from [`build_binaries`], or an error naming what was built.
pub fn binary(built: &BTreeMap<String, PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    built.get(name).cloned().with_context(|| {
        format!(
            "cargo build --workspace built no {name} (built: {:?})",
            built.keys().collect::<Vec<_>>()
        )
    })
}
