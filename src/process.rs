//! Figures of a running process from /proc, for the benchmarks: CPU time and resident memory.

use anyhow::Context;

/// utime + stime of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("malformed /proc/<pid>/stat")?
        .1
        .split_whitespace()
        .collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n)
            .and_then(|v| v.parse().ok())
            .context("malformed /proc/<pid>/stat")
    };
    // utime and stime are fields 14 and 15 of stat; the state (field 3) is index 0 here.
    Ok(field(11)? + field(12)?)
}

/// Clock ticks per second (`CLK_TCK`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// VmRSS of `pid` in KiB.
pub fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}
