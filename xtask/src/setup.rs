//! `cargo xtask setup`: installs what skiff needs on a Debian 12 machine, skipping what is
//! already there. Each need is one [`Requirement`] in [`REQUIREMENTS`]; adding one is one entry.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// One thing the project needs on the machine.
struct Requirement {
    /// The name users know it by.
    name: &'static str,
    /// `Some(version or description)` when it is present and usable, `None` when missing.
    check: fn() -> Option<String>,
    /// How to get it when it is missing.
    install: Install,
}

/// How a missing requirement is installed.
enum Install {
    /// These Debian packages provide it.
    Apt(&'static [&'static str]),
    /// `rustup <args>` provides it.
    Rustup(&'static [&'static str]),
    /// `cargo install <args>` with `env` set builds it.
    Cargo {
        args: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
    },
    /// It cannot be installed from here; the text tells the user what to do.
    Manual(&'static str),
}

/// Where Debian's LLVM 22 lives (bpf-linker links eBPF objects with it).
const LLVM_22: &str = "/usr/lib/llvm-22";

/// Everything the project needs, in install order.
const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        // etcd-client compiles etcd's gRPC definitions at build time.
        name: "protoc",
        check: protoc_version,
        install: Install::Apt(&["protobuf-compiler"]),
    },
    Requirement {
        name: "etcd",
        check: etcd_version,
        install: Install::Apt(&["etcd-server"]),
    },
    Requirement {
        // The node agent's container runtime; `run` and the tests start dockerd when needed.
        name: "docker",
        check: dockerd_version,
        install: Install::Apt(&["docker.io"]),
    },
    Requirement {
        // The iptables proxy mode clears the UDP flows of removed backends with it, as
        // kube-proxy does.
        name: "conntrack",
        check: conntrack_version,
        install: Install::Apt(&["conntrack"]),
    },
    Requirement {
        // The agent plumbs each pod's veth and address with `ip` (iproute2).
        name: "iproute2",
        check: iproute2_version,
        install: Install::Apt(&["iproute2"]),
    },
    Requirement {
        // The README's tour reaches a Service from the host with it.
        name: "curl",
        check: curl_version,
        install: Install::Apt(&["curl"]),
    },
    Requirement {
        // The tests make a user's certificate as the RBAC tutorials do (`openssl x509 -req`,
        // an X.509 version 1 certificate).
        name: "openssl",
        check: openssl_version,
        install: Install::Apt(&["openssl"]),
    },
    Requirement {
        // The shell image `skiff/busybox:1` of the tour and the tests (a static busybox: sh,
        // httpd, wget, tar for `kubectl cp`, ...).
        name: "busybox-static",
        check: busybox_static,
        install: Install::Apt(&["busybox-static"]),
    },
    Requirement {
        // node/build.rs links the pause and test workload programs statically.
        name: "static C toolchain",
        check: static_cc,
        install: Install::Apt(&["gcc", "libc6-dev"]),
    },
    Requirement {
        // The eBPF programs and the fuzz targets (`cargo xtask fuzz`) are built with nightly.
        name: "nightly",
        check: nightly_version,
        install: Install::Rustup(&["toolchain", "install", "nightly", "--profile", "minimal"]),
    },
    Requirement {
        // The eBPF programs (node-ebpf/) are built by node/build.rs with nightly's
        // `-Z build-std=core`, which needs the standard library's sources.
        name: "nightly rust-src",
        check: nightly_rust_src,
        install: Install::Rustup(&["component", "add", "rust-src", "--toolchain", "nightly"]),
    },
    Requirement {
        name: "LLVM 22",
        check: llvm_22,
        install: Install::Apt(&[
            "llvm-22-dev",
            "libpolly-22-dev",
            "libzstd-dev",
            "zlib1g-dev",
        ]),
    },
    Requirement {
        // Links the eBPF programs; built against Debian's LLVM 22 (nightly's LLVM).
        name: "bpf-linker",
        check: bpf_linker_version,
        install: Install::Cargo {
            args: &[
                "bpf-linker",
                "--version",
                "0.13.0",
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ],
            env: &[("LLVM_PREFIX", LLVM_22), ("LLVM_SYS_221_PREFIX", LLVM_22)],
        },
    },
    Requirement {
        // Builds and runs the fuzz targets (fuzz/, libFuzzer) for `cargo xtask fuzz`.
        name: "cargo-fuzz",
        check: cargo_fuzz_version,
        install: Install::Cargo {
            args: &["cargo-fuzz", "--version", "0.13.2", "--locked"],
            env: &[],
        },
    },
    Requirement {
        name: "kubectl",
        check: kubectl_version,
        install: Install::Manual(
            "kubectl v1.32 is expected at /usr/bin/kubectl (it comes preinstalled on skiff's \
             machines); the end-to-end tests and `cargo xtask run` need it",
        ),
    },
];

/// Checks every requirement and installs the missing ones.
pub fn run() -> anyhow::Result<()> {
    let mut apt = Apt::default();
    let mut unresolved = Vec::new();
    for req in REQUIREMENTS {
        if let Some(version) = (req.check)() {
            eprintln!("✓ {} {version} already installed", req.name);
            continue;
        }
        match req.install {
            Install::Apt(packages) => {
                eprintln!("installing {} ...", packages.join(" "));
                apt.install(packages)?;
                installed(req)?;
            }
            Install::Rustup(args) => {
                eprintln!("rustup {} ...", args.join(" "));
                run_visible(Command::new("rustup").args(args))?;
                installed(req)?;
            }
            Install::Cargo { args, env } => {
                eprintln!("cargo install {} (a few minutes) ...", args.join(" "));
                run_visible(
                    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                        .arg("install")
                        .args(args)
                        .envs(env.iter().copied()),
                )?;
                installed(req)?;
            }
            Install::Manual(hint) => {
                eprintln!("✗ {} is missing: {hint}", req.name);
                unresolved.push(req.name);
            }
        }
    }
    if !unresolved.is_empty() {
        bail!(
            "setup incomplete: {} missing (see above)",
            unresolved.join(", ")
        );
    }
    Ok(())
}

/// Fails unless `req` is usable now that it was installed.
fn installed(req: &Requirement) -> anyhow::Result<()> {
    match (req.check)() {
        Some(version) => {
            eprintln!("✓ {} {version} installed", req.name);
            Ok(())
        }
        None => bail!("installed {} but it is still not usable", req.name),
    }
}

/// Runs `command` with its output visible; fails unless it succeeds.
pub fn run_visible(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// apt-get, with the package lists refreshed once per setup run and only when needed.
#[derive(Default)]
struct Apt {
    updated: bool,
}

impl Apt {
    fn install(&mut self, packages: &[&str]) -> anyhow::Result<()> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            bail!(
                "installing {0} needs root: run `cargo xtask setup` as root, or \
                 `sudo apt-get install -y {0}`",
                packages.join(" ")
            );
        }
        if !self.updated {
            apt_get(&["update"])?;
            self.updated = true;
        }
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend_from_slice(packages);
        apt_get(&args)
    }
}

/// Runs `apt-get <args>` non-interactively with its output visible.
fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get (is this a Debian machine?)")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The version of `/usr/bin/etcd` ("3.4.23"), if it runs.
fn etcd_version() -> Option<String> {
    let out = version_output("/usr/bin/etcd", &["--version"])?;
    // "etcd Version: 3.4.23\nGit SHA: ..."
    field(&out, "etcd Version:").or(Some(String::from("(unknown version)")))
}

/// The version of `/usr/sbin/dockerd` ("20.10.24+dfsg1"), if it runs.
fn dockerd_version() -> Option<String> {
    let out = version_output("/usr/sbin/dockerd", &["--version"])?;
    // "Docker version 20.10.24+dfsg1, build 297e128"
    out.strip_prefix("Docker version ")
        .and_then(|rest| rest.split(',').next())
        .map(|v| v.trim().to_owned())
        .or(Some(String::from("(unknown version)")))
}

/// `cc` and the static C library, if both are there (gcc's version).
fn static_cc() -> Option<String> {
    let static_libc = [
        "/usr/lib/x86_64-linux-gnu/libc.a",
        "/usr/lib/aarch64-linux-gnu/libc.a",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if !static_libc {
        return None;
    }
    let out = version_output("/usr/bin/cc", &["--version"])?;
    out.lines().next().map(str::to_owned)
}

/// The version of `/usr/bin/protoc` ("3.21.12"), if it runs.
/// The version line of `/usr/sbin/conntrack` ("conntrack v1.4.7 (conntrack-tools)").
fn conntrack_version() -> Option<String> {
    let out = version_output("/usr/sbin/conntrack", &["--version"])?;
    Some(out.trim().to_owned())
}

fn iproute2_version() -> Option<String> {
    let out = version_output("/usr/sbin/ip", &["-V"])?;
    Some(out.trim().to_owned())
}

/// The version of `curl` ("7.88.1", from "curl 7.88.1 (x86_64-pc-linux-gnu) ...").
fn curl_version() -> Option<String> {
    let out = version_output("/usr/bin/curl", &["--version"])?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

fn openssl_version() -> Option<String> {
    let out = version_output("/usr/bin/openssl", &["version"])?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

/// Debian's static busybox (`/bin/busybox`; the dynamic `busybox` package does not do).
fn busybox_static() -> Option<String> {
    let out = Command::new("/bin/busybox").arg("--help").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?.trim().to_owned();
    let file = std::fs::read("/bin/busybox").ok()?;
    // A static ELF has no interpreter (PT_INTERP) section name in it.
    let dynamic = file.windows(14).any(|w| w == b"/lib64/ld-linu");
    (!dynamic && first.starts_with("BusyBox")).then_some(first)
}

fn protoc_version() -> Option<String> {
    let out = version_output("/usr/bin/protoc", &["--version"])?;
    // "libprotoc 3.21.12"
    field(&out, "libprotoc").or(Some(String::from("(unknown version)")))
}

/// The client version of `/usr/bin/kubectl` ("v1.32.4"), if it runs.
fn kubectl_version() -> Option<String> {
    let out = version_output("/usr/bin/kubectl", &["version", "--client"])?;
    // "Client Version: v1.32.4\nKustomize Version: ..."
    field(&out, "Client Version:").or(Some(String::from("(unknown version)")))
}

/// Nightly's version (`rustc 1.97.0-nightly (...)`), if the toolchain is installed.
fn nightly_version() -> Option<String> {
    let out = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Nightly's version, if its `rust-src` component is installed.
fn nightly_rust_src() -> Option<String> {
    let out = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .ok()?;
    let listed = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !listed.lines().any(|line| line.starts_with("rust-src")) {
        return None;
    }
    nightly_version()
}

/// cargo-fuzz's version (`cargo-fuzz 0.13.2`), if `cargo fuzz` runs.
fn cargo_fuzz_version() -> Option<String> {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["fuzz", "--version"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// LLVM 22's version, if its development files (libLLVM, Polly) are installed.
fn llvm_22() -> Option<String> {
    let polly = Path::new(LLVM_22).join("lib/libPolly.a");
    if !polly.exists() {
        return None;
    }
    let config = format!("{LLVM_22}/bin/llvm-config");
    version_output(&config, &["--version"]).map(|v| v.trim().to_owned())
}

/// bpf-linker's version, if cargo installed it.
fn bpf_linker_version() -> Option<String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let linker = home.join("bin/bpf-linker");
    let out = version_output(linker.to_str()?, &["--version"])?;
    Some(out.trim().to_owned())
}

/// Stdout of `program args` when the program exists and exits successfully.
fn version_output(program: &str, args: &[&str]) -> Option<String> {
    if !Path::new(program).exists() {
        return None;
    }
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rest of the first line of `text` that starts with `prefix`, trimmed.
fn field(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .map(|value| value.trim().to_owned())
}
