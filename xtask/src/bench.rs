//! `cargo xtask bench <name>`: runs one benchmark in release mode. Each prints a
//! `RESULT <name> key=value ...` line last (see DESIGN.md, "Benchmarks").

use std::process::ExitCode;

use anyhow::bail;

use skiff_tooling::workspace::{self, Profile};

use crate::cargo;
use crate::{setup, step};

/// A benchmark users can run by name.
struct Bench {
    /// The name on the command line.
    name: &'static str,
    /// The `[[bench]]` target (of the root package) that implements it.
    target: &'static str,
    /// Whether it starts a real skiff-master (built in release mode first).
    starts_master: bool,
    /// One line for the list.
    about: &'static str,
}

/// Every benchmark, as listed by `cargo xtask bench`.
const BENCHES: &[Bench] = &[
    Bench {
        name: "api",
        target: "api",
        starts_master: true,
        about: "API server throughput and latency against a real skiff-master",
    },
    Bench {
        name: "overload",
        target: "overload",
        starts_master: true,
        about: "a node's Lease renewals under a user's flood of lists, in-flight limits on vs off",
    },
    Bench {
        name: "resilience",
        target: "resilience",
        starts_master: true,
        about: "2,000 clients vs in-flight limits, kill -9 under writes, etcd stopped 30 s",
    },
    Bench {
        name: "scale",
        target: "scale",
        starts_master: true,
        about: "hollow nodes: 100,000 heartbeating, a million pods through the API (embedded vs etcd)",
    },
    Bench {
        name: "store",
        target: "store",
        starts_master: false,
        about: "store writes and watches: embedded store vs etcd",
    },
    Bench {
        name: "scheduler",
        target: "scheduler_perf",
        starts_master: true,
        about: "pods bound per second and create-to-bound p99 on N nodes (SchedulingBasic)",
    },
    Bench {
        name: "schedule-one",
        target: "scheduler",
        starts_master: false,
        about: "one scheduling decision (filter + score every node) at 500/5k/50k nodes",
    },
    Bench {
        name: "node",
        target: "node",
        starts_master: true,
        about: "node agent: 30-pod startup, idle RSS/CPU, lease renewal io_uring vs tokio",
    },
    Bench {
        name: "probes",
        target: "probes",
        starts_master: true,
        about: "node agent: CPU with 100 pods probed every second vs the same pods unprobed",
    },
    Bench {
        name: "controllers",
        target: "controllers",
        starts_master: true,
        about: "Deployments, DaemonSets and Jobs: 10,000 pods made by the controllers and bound",
    },
    Bench {
        name: "proxy",
        target: "proxy",
        starts_master: false,
        about: "Service load balancing: eBPF and iptables vs straight to the pod, sync and update times",
    },
];

/// Runs benchmark `name` with `args` passed to it; without a name, lists them.
pub fn run(name: Option<&str>, args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(name) = name else {
        eprintln!(
            "benchmarks (cargo xtask bench <name> [args...]):\n{}",
            list()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let Some(bench) = BENCHES.iter().find(|bench| bench.name == name) else {
        bail!("unknown benchmark {name:?}; known ones:\n{}", list());
    };
    step("setup");
    setup::run()?;
    if bench.starts_master {
        step("building the workspace (release)");
        workspace::build_binaries(Profile::Release)?;
    }
    step(&format!("benchmark {}", bench.name));
    // `--workspace`: the same feature set as every other build (see skiff_tooling::workspace).
    let mut cargo_args = vec!["bench", "--workspace", "--bench", bench.target, "--"];
    cargo_args.extend(args.iter().map(String::as_str));
    let status = cargo::run(&cargo_args)?;
    Ok(cargo::exit_code(status))
}

/// The known benchmarks, one per line.
fn list() -> String {
    BENCHES
        .iter()
        .map(|bench| format!("  {:<13} {}", bench.name, bench.about))
        .collect::<Vec<_>>()
        .join("\n")
}
