//! Running cargo from xtask: builds (with cargo's own output visible) and test/bench runs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus, Stdio};

use anyhow::{Context, bail};

use crate::repo_root;

/// Which cargo profile to build.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// A cargo command in the repository root, using the cargo that runs xtask.
fn command() -> Command {
    // cargo sets CARGO for the programs it runs; fall back to PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root());
    cmd
}

/// Runs `cargo <args>` with inherited output and returns its exit status.
pub fn run(args: &[&str]) -> anyhow::Result<ExitStatus> {
    command()
        .args(args)
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))
}

/// The exit code to leave with for a child's status (a signal counts as failure).
pub fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

/// Builds the `skiff-master` binary and returns its path.
pub fn build_master(profile: Profile) -> anyhow::Result<PathBuf> {
    build_bin("skiff-master", "skiff-master", profile)
}

/// Builds binary `bin` of package `package`, showing cargo's progress and diagnostics, and
/// returns the path cargo reports for the executable (so any target dir setting is honoured).
fn build_bin(package: &str, bin: &str, profile: Profile) -> anyhow::Result<PathBuf> {
    let mut cmd = command();
    cmd.args(["build", "-p", package, "--bin", bin]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    // JSON messages on stdout name the artifact; progress and rendered diagnostics still go
    // to stderr, which the user sees.
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().context("starting cargo build")?;
    let stdout = child.stdout.take().context("cargo build stdout")?;
    let mut executable = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo build output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == bin
            && let Some(path) = msg["executable"].as_str()
        {
            executable = Some(PathBuf::from(path));
        }
    }
    let status = child.wait().context("waiting for cargo build")?;
    if !status.success() {
        bail!("cargo build -p {package} failed ({status})");
    }
    executable.with_context(|| format!("cargo build -p {package} reported no executable {bin}"))
}
