//! What /proc says about the machine and the agent's own process: the node's CPU time and
//! memory for `/stats/summary`, the process figures for `/metrics`. Parsing is kept apart
//! from reading, so it is unit-tested on fixed text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The clock tick /proc counts CPU time in (`USER_HZ`: 100 in the kernel's ABI).
const USER_HZ: u64 = 100;

/// The node's CPU time since boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTime {
    /// Nanoseconds of CPU time spent working (all CPUs, idle and iowait excluded).
    pub busy_nanoseconds: u64,
}

/// The node's memory, as the kubelet reports the root cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeMemory {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// Memory in use, page cache included (`MemTotal - MemFree`).
    pub usage_bytes: u64,
    /// In use minus the inactive page cache.
    pub working_set_bytes: u64,
    /// Anonymous memory (`AnonPages`).
    pub rss_bytes: u64,
    /// Page faults since boot.
    pub page_faults: u64,
    /// Major page faults since boot.
    pub major_page_faults: u64,
}

impl NodeMemory {
    /// What is left before the kubelet's working-set eviction would see the node full.
    pub fn available_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.working_set_bytes)
    }
}

/// The agent's own process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The file descriptor limit.
    pub max_fds: u64,
}

/// The node's CPU time now.
pub async fn cpu_time() -> Option<CpuTime> {
    parse_cpu_time(&read("/proc/stat").await)
}

/// The node's memory now.
pub async fn node_memory() -> Option<NodeMemory> {
    parse_memory(&read("/proc/meminfo").await, &read("/proc/vmstat").await)
}

/// When the machine booted.
pub async fn boot_time() -> Option<SystemTime> {
    parse_boot_time(&read("/proc/stat").await)
}

/// The agent process's figures now.
pub async fn process() -> ProcessFigures {
    let boot = boot_time().await.unwrap_or(UNIX_EPOCH);
    let mut figures =
        parse_process_stat(&read("/proc/self/stat").await, boot, page_size()).unwrap_or_default();
    figures.open_fds = tokio::task::spawn_blocking(|| {
        std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count() as u64)
    })
    .await
    .unwrap_or(0);
    figures.max_fds = parse_max_open_files(&read("/proc/self/limits").await).unwrap_or(0);
    figures
}

/// The page size /proc/self/stat counts resident memory in.
fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

async fn read(path: &str) -> String {
    tokio::fs::read_to_string(path).await.unwrap_or_default()
}

/// The `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal ...
pub fn parse_cpu_time(stat: &str) -> Option<CpuTime> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // Idle (3) and iowait (4) are not work; guest time is counted in user already.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| *t)
        .sum();
    Some(CpuTime {
        busy_nanoseconds: busy.saturating_mul(1_000_000_000 / USER_HZ),
    })
}

/// The boot time (`btime`) of /proc/stat.
pub fn parse_boot_time(stat: &str) -> Option<SystemTime> {
    let seconds = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// The node's memory from /proc/meminfo and /proc/vmstat.
pub fn parse_memory(meminfo: &str, vmstat: &str) -> Option<NodeMemory> {
    let kib = |name: &str| {
        meminfo.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            let number: u64 = value.split_whitespace().next()?.parse().ok()?;
            Some(number.saturating_mul(1024))
        })
    };
    let count = |name: &str| {
        vmstat.lines().find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok())?
        })
    };
    let total = kib("MemTotal")?;
    let usage = total.saturating_sub(kib("MemFree").unwrap_or(0));
    Some(NodeMemory {
        total_bytes: total,
        usage_bytes: usage,
        working_set_bytes: usage.saturating_sub(kib("Inactive(file)").unwrap_or(0)),
        rss_bytes: kib("AnonPages").unwrap_or(0),
        page_faults: count("pgfault").unwrap_or(0),
        major_page_faults: count("pgmajfault").unwrap_or(0),
    })
}

/// /proc/self/stat: CPU times (fields 14, 15), start time (22), virtual and resident size
/// (23, 24). The command (field 2) may hold spaces and parentheses: fields are counted after
/// its last `)`.
pub fn parse_process_stat(stat: &str, boot: SystemTime, page_size: u64) -> Option<ProcessFigures> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first after the command.
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n.checked_sub(3)?)?.parse().ok() };
    let ticks = |t: u64| t as f64 / USER_HZ as f64;
    let boot_seconds = boot
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Some(ProcessFigures {
        cpu_seconds: ticks(field(14)? + field(15)?),
        start_time_seconds: boot_seconds + ticks(field(22)?),
        virtual_bytes: field(23)?,
        resident_bytes: field(24)?.saturating_mul(page_size),
        open_fds: 0,
        max_fds: 0,
    })
}

/// The soft `Max open files` limit of /proc/self/limits.
pub fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str =
        "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nbtime 1700000000\n";

    #[test]
    fn cpu_time_counts_work_only() {
        // user + nice + system + irq + softirq + steal = 160 ticks = 1.6 s.
        assert_eq!(
            parse_cpu_time(STAT),
            Some(CpuTime {
                busy_nanoseconds: 1_600_000_000
            })
        );
        assert_eq!(parse_cpu_time("garbage"), None);
        assert_eq!(
            parse_boot_time(STAT),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }

    #[test]
    fn memory_is_the_root_cgroups_view() {
        let meminfo = "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\nInactive(file):  300 kB\nAnonPages:       250 kB\n";
        let vmstat = "pgfault 42\npgmajfault 3\n";
        let memory = parse_memory(meminfo, vmstat).expect("parses");
        assert_eq!(
            memory,
            NodeMemory {
                total_bytes: 1_024_000,
                usage_bytes: 819_200,
                working_set_bytes: 512_000,
                rss_bytes: 256_000,
                page_faults: 42,
                major_page_faults: 3,
            }
        );
        assert_eq!(memory.available_bytes(), 512_000);
        assert_eq!(parse_memory("", ""), None);
    }

    #[test]
    fn process_stat_survives_odd_command_names() {
        let stat = "1234 (skiff (node) x) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 8 0 500 104857600 2560 18446744073709551615";
        let figures =
            parse_process_stat(stat, UNIX_EPOCH + Duration::from_secs(1000), 4096).expect("parses");
        assert_eq!(figures.cpu_seconds, 3.0);
        assert_eq!(figures.start_time_seconds, 1005.0);
        assert_eq!(figures.virtual_bytes, 104_857_600);
        assert_eq!(figures.resident_bytes, 2560 * 4096);
        assert_eq!(parse_process_stat("no parens", UNIX_EPOCH, 4096), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
    }
}
