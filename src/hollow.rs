//! Hollow nodes for tests and benchmarks: a `skiff-node --hollow N` process against a
//! [`Master`], whose report lines (stdout) are read back as figures.
//!
//! The process is stopped when the [`HollowNodes`] is dropped; its Nodes stay in the API, as
//! a stopped kubelet's do.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use skiff_tooling::process;

use crate::binaries;
use crate::master::Master;
use crate::node::NODE_BIN_ENV;

/// How long the process gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running `skiff-node --hollow N`; stopped when dropped.
pub struct HollowNodes {
    count: u32,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl HollowNodes {
    /// Starts `count` hollow nodes named `<prefix>-<i>` for `master`, with `extra_args` for
    /// `skiff-node` (e.g. `--hollow-pod-start-delay=1s`); they report every second. Does not
    /// wait for them: see [`HollowNodes::wait_registered`].
    pub fn start(
        master: &Master,
        prefix: &str,
        count: u32,
        extra_args: &[&str],
    ) -> anyhow::Result<HollowNodes> {
        HollowNodes::start_with_env(master, prefix, count, extra_args, &[])
    }

    /// As [`HollowNodes::start`], with `env` set for the process (`SKIFF_IO_URING=off`: the
    /// heartbeats on plain tokio).
    pub fn start_with_env(
        master: &Master,
        prefix: &str,
        count: u32,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<HollowNodes> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-hollow-")
            .tempdir()
            .context("creating the hollow nodes' directory")?;
        let binary = binaries::binary("skiff-node", NODE_BIN_ENV)?;
        let mut cmd = Command::new(&binary);
        cmd.arg("--kubeconfig")
            .arg(master.kubeconfig_path())
            .arg("--node-name")
            .arg(prefix)
            .arg("--hollow")
            .arg(count.to_string())
            .arg("--hollow-report-seconds=1")
            .args(extra_args)
            .envs(env.iter().copied())
            .env("RUST_LIB_BACKTRACE", "0");
        let log_path = dir.path().join("hollow.log");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(log, "=== skiff test harness: starting {cmd:?}")?;
        let report =
            std::fs::File::create(dir.path().join("report")).context("creating the report file")?;
        cmd.stdin(Stdio::null()).stdout(report).stderr(log);
        let child = process::spawn_tied(cmd).context("starting skiff-node --hollow")?;
        Ok(HollowNodes {
            count,
            dir,
            child: Some(child),
        })
    }

    /// How many nodes it runs.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The simulator's log (stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hollow.log")
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        process::log_tail(&self.log_path(), 40)
    }

    /// The figures of the newest report line (`renewals`, `renew_p99_ms`, `pods_running`,
    /// `rss_mb`, ...); empty before the first.
    pub fn report(&self) -> BTreeMap<String, f64> {
        let text = std::fs::read_to_string(self.dir.path().join("report")).unwrap_or_default();
        text.lines()
            .rev()
            .find(|line| line.starts_with("hollow "))
            .map(parse_report)
            .unwrap_or_default()
    }

    /// Waits until every node has registered (`registered=N` reported), failing with the
    /// log's tail when the process exits or `timeout` passes.
    pub fn wait_registered(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let count = f64::from(self.count);
        self.wait_until(timeout, |report| {
            report.get("registered").copied() == Some(count)
        })
        .map(drop)
        .context("waiting for the hollow nodes to register")
    }

    /// Waits until the newest report satisfies `done`; fails when the process exits or
    /// `timeout` passes.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&BTreeMap<String, f64>) -> bool,
    ) -> anyhow::Result<BTreeMap<String, f64>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let report = self.report();
            if done(&report) {
                return Ok(report);
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "skiff-node --hollow exited ({status}); last report {report:?}\n--- log ---\n{}",
                    self.log_tail()
                );
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "not within {timeout:?}; last report {report:?}\n--- log ---\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the simulator (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::stop(&mut child, STOP_GRACE);
        }
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `hollow key=value key=value ...` as numbers (values that are not are left out).
fn parse_report(line: &str) -> BTreeMap<String, f64> {
    line.split_whitespace()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_parse_to_figures() {
        let report = parse_report("hollow nodes=3 registered=2 renew_p99_ms=1.25 odd=x");
        assert_eq!(report["nodes"], 3.0);
        assert_eq!(report["registered"], 2.0);
        assert_eq!(report["renew_p99_ms"], 1.25);
        assert!(!report.contains_key("odd"));
    }
}
