//! The official Kubernetes Python client, installed as its users install it: a venv with
//! `pip install kubernetes`, made once under the target directory and reused by later runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};

/// The client's major version the tests are written against (37.x: Kubernetes 1.33 API).
const CLIENT_REQUIREMENT: &str = "kubernetes>=37,<38";

/// Serialises venv creation between the tests of one binary.
static INSTALL: Mutex<()> = Mutex::new(());

/// The venv's `python`, with the `kubernetes` package installed in `<dir>/kubernetes-venv`.
pub fn client_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = dir.join("kubernetes-venv");
    let python = venv.join("bin/python");
    // The marker is written only after pip succeeded, so a half-made venv is made again.
    let marker = venv.join(".installed");
    if marker.exists() {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        CLIENT_REQUIREMENT,
    ]))?;
    std::fs::write(&marker, CLIENT_REQUIREMENT)
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(python)
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
