//! `cargo xtask fuzz [target] [--seconds N]`: runs the fuzz targets of `fuzz/` (cargo-fuzz and
//! libFuzzer, on nightly) for N seconds each; without a name, every one in turn (one at a
//! time: a fuzzer keeps a core busy). The targets are built once, before the first runs.
//!
//! Each target's corpus grows in `fuzz/corpus/<target>` (not committed), started from the
//! seeds committed in `fuzz/seeds/<target>`, and libFuzzer splices in the tokens of
//! `fuzz/kubernetes.dict` (kinds, fields, patch directives, operators, suffixes). A crash, a
//! broken invariant, a timeout or a runaway allocation leaves the input in
//! `fuzz/artifacts/<target>/` and fails the command with its path. Fixed crashes are kept as
//! ordinary unit tests beside the code they fixed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use skiff_tooling::workspace;

use crate::{setup, step};

/// How long `cargo xtask fuzz` runs each target unless told.
pub const DEFAULT_SECONDS: u64 = 60;

/// How long `cargo xtask test` (CI) runs each target: enough to catch a regression of a
/// fixed crash (its input is in the seeds) and shallow new ones, short enough for CI.
pub const CI_SECONDS: u64 = 10;

/// A single input slower than this is a finding (libFuzzer's `-timeout`): a request body that
/// keeps the API server busy for seconds is a denial of service.
const INPUT_TIMEOUT_SECONDS: u64 = 20;

/// Sets up what fuzzing needs (nightly, cargo-fuzz), then runs `target`, or every target, for
/// `seconds` each.
pub fn run(target: Option<&str>, seconds: u64) -> anyhow::Result<()> {
    step("setup");
    setup::run()?;
    run_targets(target, seconds)
}

/// Builds and runs `target`, or every target, for `seconds` each; fails naming every crashing
/// input found.
pub fn run_targets(target: Option<&str>, seconds: u64) -> anyhow::Result<()> {
    let all = targets()?;
    let chosen: Vec<&str> = match target {
        None => all.iter().map(String::as_str).collect(),
        Some(name) if all.iter().any(|t| t == name) => vec![name],
        Some(name) => bail!(
            "unknown fuzz target {name:?}; known ones: {}",
            all.join(", ")
        ),
    };
    step("building the fuzz targets (nightly, libFuzzer, AddressSanitizer)");
    let mut build = cargo_fuzz();
    build.arg("build");
    build.args(target);
    setup::run_visible(&mut build)?;
    let mut outcomes = Vec::new();
    for name in chosen {
        step(&format!("fuzzing {name} for {seconds} s"));
        outcomes.push(fuzz(name, seconds)?);
    }
    eprintln!(
        "\n{:<20} {:>14} {:>8}  result",
        "target", "executions", "seconds"
    );
    for outcome in &outcomes {
        let executions = outcome
            .executions
            .map_or_else(|| String::from("-"), |n| n.to_string());
        let result = match &outcome.crash {
            None => String::from("ok"),
            Some(input) => format!("CRASH {}", input.display()),
        };
        eprintln!(
            "{:<20} {executions:>14} {seconds:>8}  {result}",
            outcome.target
        );
    }
    let crashes: Vec<String> = outcomes
        .iter()
        .filter_map(|outcome| {
            let input = outcome.crash.as_ref()?;
            Some(format!(
                "{}: {} (reproduce: cargo +nightly fuzz run {} {})",
                outcome.target,
                input.display(),
                outcome.target,
                input.display()
            ))
        })
        .collect();
    if !crashes.is_empty() {
        bail!("fuzzing found crashes:\n  {}", crashes.join("\n  "));
    }
    Ok(())
}

/// What one run of one target came to.
struct Outcome {
    target: String,
    /// libFuzzer's `stat::number_of_executed_units` (absent after a crash).
    executions: Option<u64>,
    /// The input that crashed it, if one did.
    crash: Option<PathBuf>,
}

/// Runs one target for `seconds` on its corpus and seeds.
fn fuzz(target: &str, seconds: u64) -> anyhow::Result<Outcome> {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let mut cmd = cargo_fuzz();
    // libFuzzer adds what it finds to the first directory only: the seeds stay as committed.
    cmd.args(["run", target]).arg(&corpus);
    let seeds = dir.join("seeds").join(target);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.args([
        "--".to_owned(),
        format!("-max_total_time={seconds}"),
        format!("-timeout={INPUT_TIMEOUT_SECONDS}"),
        "-print_final_stats=1".to_owned(),
    ]);
    cmd.arg(format!("-dict={}", dir.join("kubernetes.dict").display()));
    cmd.stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting cargo fuzz run {target}"))?;
    let stderr = child.stderr.take().context("cargo fuzz stderr")?;
    let mut executions = None;
    let mut crash = None;
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading libFuzzer's output")?;
        if let Some(count) = line.strip_prefix("stat::number_of_executed_units:") {
            executions = count.trim().parse().ok();
        }
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            crash = Some(workspace::root().join(path.trim()));
        }
        if !is_progress(&line) {
            eprintln!("{line}");
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for cargo fuzz run {target}"))?;
    if !status.success() && crash.is_none() {
        bail!("cargo fuzz run {target} failed ({status}) without a crashing input");
    }
    Ok(Outcome {
        target: target.to_owned(),
        executions,
        crash,
    })
}

/// Whether a libFuzzer line only reports progress (`#1234\tNEW cov: ...`): thousands of them
/// in the first seconds, so they are not echoed.
fn is_progress(line: &str) -> bool {
    line.strip_prefix('#').is_some_and(|rest| {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        ["\tNEW", "\tREDUCE", "\tpulse", "\tINITED", "\tRELOAD"]
            .iter()
            .any(|kind| rest.starts_with(kind))
    })
}

/// The fuzz targets `fuzz/Cargo.toml` declares (`cargo fuzz list`).
fn targets() -> anyhow::Result<Vec<String>> {
    let out = cargo_fuzz()
        .arg("list")
        .output()
        .context("running cargo fuzz list")?;
    if !out.status.success() {
        bail!(
            "cargo fuzz list failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// `cargo fuzz` on nightly (libFuzzer's instrumentation needs it) in the repository root.
fn cargo_fuzz() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(workspace::root());
    workspace::without_crate_environment(&mut cmd);
    cmd
}

/// The fuzz crate's directory.
fn fuzz_dir() -> PathBuf {
    workspace::root().join("fuzz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_not_echoed_but_findings_are() {
        assert!(is_progress("#1024\tNEW    cov: 812 ft: 1204 corp: 31/2Kb"));
        assert!(is_progress("#65536\tpulse  cov: 900 ft: 1500 corp: 40/3Kb"));
        assert!(!is_progress(
            "#1000000\tDONE   cov: 900 ft: 1500 corp: 40/3Kb"
        ));
        assert!(!is_progress("==123== ERROR: libFuzzer: deadly signal"));
        assert!(!is_progress("stat::number_of_executed_units: 1000000"));
    }
}
