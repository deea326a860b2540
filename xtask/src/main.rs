//! `cargo xtask` — skiff's entry points for users and CI.
//!
//! - `setup`: installs what the project needs on a Debian 12 machine (idempotent).
//! - `run`: builds and starts a cluster, prints the `KUBECONFIG` to use, stops it on Ctrl-C.
//! - `node start|stop|kill <name>`: takes one node of the running cluster down or back up.
//! - `test`: the whole test suite (what CI runs), the fuzz targets briefly at the end.
//! - `bench <name>`: one of the benchmarks.
//! - `fuzz [target] [--seconds N]`: the fuzz targets of `fuzz/` (cargo-fuzz, libFuzzer).
//! - `codegen [--check]`: writes (or checks) the tables generated from Kubernetes' API.

mod bench;
mod cargo;
mod codegen;
mod features;
mod fuzz;
mod process;
mod run;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use skiff_tooling::workspace::{self, Profile};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "skiff: set up, run, test and benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what skiff needs (etcd, kubectl check); skips what is present. Needs root to install.
    Setup,
    /// Build and start a cluster (state in <repo>/.skiff); runs until Ctrl-C.
    Run {
        /// Store state in a local etcd (started here, data in .skiff/etcd) instead of the
        /// embedded store.
        #[arg(long)]
        etcd: bool,
        /// How many masters: more than one run on an etcd cluster of as many members (the
        /// embedded store serves one master), with leader election, behind an API balancer
        /// on 127.0.0.1:6443 that the kubeconfig and the agents fail over through.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
        masters: u16,
        /// Build and run the release binaries (default: debug, faster to build).
        #[arg(long)]
        release: bool,
        /// How many node agents to start (the first is named after the host and runs the
        /// static pods of .skiff/manifests).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// How the agents load-balance Services: ebpf, iptables (kube-proxy's rules) or none.
        #[arg(long, default_value = "ebpf", value_parser = ["ebpf", "iptables", "none"])]
        proxy_mode: String,
        /// The first node's name (the others get `-2`, `-3`, ...); default: the host's name.
        #[arg(long)]
        node_name: Option<String>,
        /// Where the cluster keeps its state (default: <repo>/.skiff).
        #[arg(long, env = "SKIFF_STATE_DIR")]
        state_dir: Option<std::path::PathBuf>,
    },
    /// Start, stop or kill one node agent of the running `cargo xtask run`.
    Node {
        /// start, stop (SIGTERM) or kill (SIGKILL).
        #[arg(value_parser = ["start", "stop", "kill"])]
        action: String,
        /// The node's name.
        name: String,
        /// The run's state directory (default: <repo>/.skiff).
        #[arg(long, env = "SKIFF_STATE_DIR")]
        state_dir: Option<std::path::PathBuf>,
    },
    /// Run the whole test suite: setup, build skiff-master, `cargo test --workspace`, then
    /// every fuzz target for a few seconds (only when no arguments narrow the tests).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter, `-- --nocapture`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a benchmark: `cargo xtask bench api [criterion args...]`; no name lists them.
    Bench {
        /// Which benchmark (omit to list them).
        name: Option<String>,
        /// Arguments passed to the benchmark binary.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fuzz a target for N seconds: `cargo xtask fuzz quantity --seconds 300`; no name runs
    /// every target (decode_json, decode_yaml, decode_protobuf, strategic_merge, json_patch,
    /// merge_patch, label_selector, field_selector, quantity, static_pod_manifest) in turn.
    Fuzz {
        /// Which target (omit to run them all, one after another).
        target: Option<String>,
        /// How long to run each target.
        #[arg(long, default_value_t = fuzz::DEFAULT_SECONDS)]
        seconds: u64,
    },
    /// Generate the tables kept of Kubernetes' API types (the protobuf schema, the
    /// strategic-merge patch strategies) from their inputs; `--check` only checks them.
    Codegen(codegen::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run().map(|()| ExitCode::SUCCESS),
        Command::Run {
            etcd,
            masters,
            release,
            nodes,
            proxy_mode,
            node_name,
            state_dir,
        } => run::run(run::Options {
            etcd,
            masters: usize::from(masters),
            release,
            nodes,
            proxy_mode,
            node_name,
            state_dir: state_dir.unwrap_or_else(|| workspace::root().join(".skiff")),
        }),
        Command::Node {
            action,
            name,
            state_dir,
        } => run::node(
            &action,
            &name,
            &state_dir.unwrap_or_else(|| workspace::root().join(".skiff")),
        ),
        Command::Test { args: _ } => {
            // Everything after `test`, verbatim: clap drops a leading `--`, which `cargo
            // test -- --nocapture` needs.
            let args: Vec<String> = std::env::args().skip(2).collect();
            test(&args)
        }
        Command::Bench { name, args } => bench::run(name.as_deref(), &args),
        Command::Fuzz { target, seconds } => {
            fuzz::run(target.as_deref(), seconds).map(|()| ExitCode::SUCCESS)
        }
        Command::Codegen(args) => codegen::run(&args, &workspace::root()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask test`: setup, build the master binary the end-to-end tests start, run all tests;
/// then, for the whole suite (no `args`), every fuzz target for [`fuzz::CI_SECONDS`].
fn test(args: &[String]) -> anyhow::Result<ExitCode> {
    step("setup");
    setup::run()?;
    step("docker");
    run::ensure_dockerd(&workspace::root().join(".skiff"))?;
    step("one feature set for every build");
    features::check()?;
    step("building the workspace (debug)");
    workspace::build_binaries(Profile::Debug)?;
    step("cargo test --workspace");
    let mut test_args = vec!["test", "--workspace"];
    test_args.extend(args.iter().map(String::as_str));
    let status = cargo::run(&test_args)?;
    if !args.is_empty() {
        return Ok(cargo::exit_code(status));
    }
    // After a failed test too: CI reports both.
    let fuzzed = fuzz::run_targets(None, fuzz::CI_SECONDS);
    if !status.success() {
        if let Err(err) = fuzzed {
            eprintln!("error: {err:#}");
        }
        return Ok(cargo::exit_code(status));
    }
    fuzzed.map(|()| ExitCode::SUCCESS)
}

/// Prints the name of the step that starts now.
fn step(what: &str) {
    eprintln!("\n▶ {what}");
}
