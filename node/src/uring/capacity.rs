//! The node's capacity (what it reports in `status.capacity`) and usage, read from /proc
//! through [`read_file`] (io_uring when the runtime has it).

use std::io;

use super::fs::read_file;

/// What the node offers: cpu and memory, as the kubelet reports them in `status.capacity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// CPUs this process may run on (affinity and cgroup quota), in millicores.
    pub cpu_millicores: u64,
    /// Total memory of the machine (`MemTotal`), in bytes.
    pub memory_bytes: u64,
}

impl Capacity {
    /// The cpu as a Kubernetes quantity: `"2"` for whole CPUs, else millicores (`"1500m"`).
    pub fn cpu_quantity(&self) -> String {
        if self.cpu_millicores.is_multiple_of(1000) {
            (self.cpu_millicores / 1000).to_string()
        } else {
            format!("{}m", self.cpu_millicores)
        }
    }

    /// The memory as a Kubernetes quantity in KiB, as the kubelet writes it (`"8041284Ki"`).
    pub fn memory_quantity(&self) -> String {
        format!("{}Ki", self.memory_bytes / 1024)
    }
}

/// The node's [`Capacity`]: CPUs from `sched_getaffinity`/cgroup quota (std's
/// `available_parallelism`), memory from `/proc/meminfo`.
pub async fn capacity() -> io::Result<Capacity> {
    let cpus = std::thread::available_parallelism()?.get() as u64;
    let meminfo = read_text("/proc/meminfo").await?;
    let memory = MemInfo::parse(&meminfo).ok_or_else(|| malformed("/proc/meminfo"))?;
    Ok(Capacity {
        cpu_millicores: cpus * 1000,
        memory_bytes: memory.total_bytes,
    })
}

/// One sample of the node's usage. CPU usage is a rate: take two samples and ask the later
/// one with [`Usage::cpu_millicores_since`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Cumulative CPU time counters of the machine (`/proc/stat`).
    pub cpu: CpuTimes,
    /// `MemTotal`, in bytes.
    pub memory_total_bytes: u64,
    /// `MemAvailable`, in bytes: what can be allocated without swapping.
    pub memory_available_bytes: u64,
}

impl Usage {
    /// Memory in use: total minus available (the kernel's own estimate of reclaimable pages).
    pub fn memory_used_bytes(&self) -> u64 {
        self.memory_total_bytes
            .saturating_sub(self.memory_available_bytes)
    }

    /// CPU used by the whole machine between `earlier` and this sample, in millicores
    /// (1000 = one CPU busy all the time). 0 if no time passed.
    pub fn cpu_millicores_since(&self, earlier: &Usage) -> u64 {
        self.cpu.millicores_since(&earlier.cpu)
    }
}

/// Cumulative CPU counters of all CPUs from the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent working: user, nice, system, irq, softirq, steal.
    pub busy: u64,
    /// All ticks: busy plus idle and iowait.
    pub total: u64,
    /// Online CPUs (`cpuN` lines).
    pub cpus: u32,
}

impl CpuTimes {
    /// Parses `/proc/stat`; `None` if it has no well-formed `cpu` line.
    pub fn parse(stat: &str) -> Option<CpuTimes> {
        let mut times = None;
        let mut cpus = 0u32;
        for line in stat.lines() {
            let mut fields = line.split_ascii_whitespace();
            match fields.next() {
                Some("cpu") => {
                    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest
                    // time is already part of user and nice.
                    let values: Vec<u64> = fields
                        .take(8)
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .ok()?;
                    let [user, nice, system, idle, iowait, irq, softirq, steal] =
                        <[u64; 8]>::try_from(pad(values)).ok()?;
                    let busy = user + nice + system + irq + softirq + steal;
                    times = Some((busy, busy + idle + iowait));
                }
                Some(name) if name.starts_with("cpu") => cpus += 1,
                _ => {}
            }
        }
        let (busy, total) = times?;
        Some(CpuTimes {
            busy,
            total,
            cpus: cpus.max(1),
        })
    }

    /// Millicores used between `earlier` and `self`.
    pub fn millicores_since(&self, earlier: &CpuTimes) -> u64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0;
        }
        let busy = self.busy.saturating_sub(earlier.busy).min(total);
        let millicores = u128::from(busy) * 1000 * u128::from(self.cpus) / u128::from(total);
        u64::try_from(millicores).unwrap_or(u64::MAX)
    }
}

/// Older kernels have fewer columns in `/proc/stat`; the missing ones count as 0.
fn pad(mut values: Vec<u64>) -> Vec<u64> {
    if values.len() >= 4 {
        values.resize(8, 0);
    }
    values
}

/// A sample of the node's [`Usage`] from `/proc/stat` and `/proc/meminfo`.
pub async fn usage() -> io::Result<Usage> {
    let stat = read_text("/proc/stat").await?;
    let meminfo = read_text("/proc/meminfo").await?;
    let cpu = CpuTimes::parse(&stat).ok_or_else(|| malformed("/proc/stat"))?;
    let memory = MemInfo::parse(&meminfo).ok_or_else(|| malformed("/proc/meminfo"))?;
    Ok(Usage {
        cpu,
        memory_total_bytes: memory.total_bytes,
        memory_available_bytes: memory.available_bytes,
    })
}

/// The fields of `/proc/meminfo` the node reports.
/// `MemAvailable` of a `/proc/meminfo` text, in bytes (estimated on kernels without it).
pub fn memory_available_bytes(meminfo: &str) -> Option<u64> {
    MemInfo::parse(meminfo).map(|memory| memory.available_bytes)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MemInfo {
    total_bytes: u64,
    available_bytes: u64,
}

impl MemInfo {
    /// `None` without `MemTotal`; without `MemAvailable` (kernels before 3.14) it is
    /// estimated as `MemFree + Buffers + Cached`.
    fn parse(meminfo: &str) -> Option<MemInfo> {
        let field = |name: &str| {
            meminfo.lines().find_map(|line| {
                let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                let mut parts = rest.split_ascii_whitespace();
                let value: u64 = parts.next()?.parse().ok()?;
                match parts.next() {
                    Some("kB") => value.checked_mul(1024),
                    None => Some(value),
                    Some(_) => None,
                }
            })
        };
        let total_bytes = field("MemTotal")?;
        let available_bytes = field("MemAvailable").unwrap_or_else(|| {
            ["MemFree", "Buffers", "Cached"]
                .iter()
                .filter_map(|name| field(name))
                .sum()
        });
        Some(MemInfo {
            total_bytes,
            available_bytes: available_bytes.min(total_bytes),
        })
    }
}

async fn read_text(path: &str) -> io::Result<String> {
    String::from_utf8(read_file(path).await?).map_err(|_| malformed(path))
}

fn malformed(path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{path} is not in the expected format"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 10 50 800 40 5 5 0 0 0\n\
                        cpu0 50 5 25 400 20 2 3 0 0 0\n\
                        cpu1 50 5 25 400 20 3 2 0 0 0\n\
                        intr 12345 0 0\n\
                        ctxt 999\n";

    #[test]
    fn parses_cpu_counters_and_online_cpus() {
        let times = CpuTimes::parse(STAT).expect("parse");
        assert_eq!(
            times,
            CpuTimes {
                busy: 170,
                total: 1010,
                cpus: 2
            }
        );
    }

    #[test]
    fn cpu_rate_is_busy_share_times_cpus() {
        let earlier = CpuTimes {
            busy: 100,
            total: 1000,
            cpus: 2,
        };
        // 50 of 200 ticks busy on 2 CPUs: half a CPU.
        let later = CpuTimes {
            busy: 150,
            total: 1200,
            cpus: 2,
        };
        assert_eq!(later.millicores_since(&earlier), 500);
        assert_eq!(earlier.millicores_since(&earlier), 0);
        // Counters never go backwards, but a bad sample must not underflow.
        assert_eq!(earlier.millicores_since(&later), 0);
    }

    #[test]
    fn rejects_stat_without_cpu_line() {
        assert_eq!(CpuTimes::parse("intr 1\nctxt 2\n"), None);
        assert_eq!(CpuTimes::parse("cpu 1 x 3 4\n"), None);
    }

    #[test]
    fn parses_meminfo_in_bytes() {
        let meminfo = "MemTotal:        8041284 kB\nMemFree:          100000 kB\n\
                       MemAvailable:    4000000 kB\nBuffers:            1000 kB\n";
        assert_eq!(
            MemInfo::parse(meminfo),
            Some(MemInfo {
                total_bytes: 8041284 * 1024,
                available_bytes: 4000000 * 1024
            })
        );
        let old_kernel = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n";
        assert_eq!(
            MemInfo::parse(old_kernel).map(|m| m.available_bytes),
            Some(310 * 1024)
        );
        assert_eq!(MemInfo::parse("MemFree: 1 kB\n"), None);
        assert_eq!(MemInfo::parse("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn quantities_look_like_the_kubelets() {
        let capacity = Capacity {
            cpu_millicores: 2000,
            memory_bytes: 8041284 * 1024 + 512,
        };
        assert_eq!(capacity.cpu_quantity(), "2");
        assert_eq!(capacity.memory_quantity(), "8041284Ki");
        let fractional = Capacity {
            cpu_millicores: 1500,
            ..capacity
        };
        assert_eq!(fractional.cpu_quantity(), "1500m");
    }

    #[test]
    fn reads_this_machine() {
        let (capacity, first, second) = crate::uring::block_on(async {
            let capacity = capacity().await.expect("capacity");
            let first = usage().await.expect("usage");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let second = usage().await.expect("usage");
            (capacity, first, second)
        });
        assert!(capacity.cpu_millicores >= 1000);
        assert!(capacity.memory_bytes > 64 << 20);
        assert_eq!(first.memory_total_bytes, capacity.memory_bytes);
        assert!(second.memory_used_bytes() <= second.memory_total_bytes);
        let cpu = second.cpu_millicores_since(&first);
        assert!(cpu <= u64::from(second.cpu.cpus) * 1000, "{cpu}");
    }
}
