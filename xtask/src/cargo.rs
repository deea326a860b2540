//! Running cargo from xtask with its output visible (builds are in
//! [`skiff_tooling::workspace`], shared with the test harness).

use std::process::{ExitCode, ExitStatus};

use anyhow::Context;
use skiff_tooling::workspace;

/// Runs `cargo <args>` in the repository root with inherited output; returns its status.
pub fn run(args: &[&str]) -> anyhow::Result<ExitStatus> {
    workspace::cargo()
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
