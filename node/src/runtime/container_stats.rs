//! One container's resource usage, read from its cgroups as cAdvisor reads them for the
//! kubelet's Summary API (cgroup v1 and v2): CPU time, memory in use, working set, RSS and page
//! faults. The CPU rate is the change since the agent's previous reading of that container,
//! or, the first time, over a second reading a moment later.
//!
//! Docker's stats endpoint is not used: it waits for two samples a second apart, and it
//! fails outright for a container in a network namespace that Docker's networking did not
//! make, which is every pod container the agent plumbs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::query_parameters::InspectContainerOptions;

use super::{ContainerStats, DockerRuntime, RuntimeError};

/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The second reading of a container read for the first time comes this much later.
const FIRST_RATE_WINDOW: Duration = Duration::from_millis(250);
/// A previous reading older than this gives no rate; one taken sooner than the window gives
/// too coarse a rate.
const RATE_MAX_AGE: Duration = Duration::from_secs(60);
/// cgroup v1's "no limit" is a page-rounded i64::MAX; anything this large is no limit.
const NO_LIMIT: u64 = 1 << 62;

/// The last CPU reading of each container, for its rate.
#[derive(Debug, Default)]
pub(super) struct CpuReadings(Mutex<HashMap<String, CpuReading>>);

#[derive(Clone, Copy, Debug)]
struct CpuReading {
    at: Instant,
    usage_ns: u64,
}

impl CpuReadings {
    /// Records `reading` of `id` and returns the one before it, dropping readings of
    /// containers not read for a long time (gone, most likely).
    fn swap(&self, id: &str, at: Instant, usage_ns: u64) -> Option<CpuReading> {
        let mut readings = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        readings.retain(|_, r| at.saturating_duration_since(r.at) < RATE_MAX_AGE * 10);
        readings.insert(id.to_owned(), CpuReading { at, usage_ns })
    }
}

/// The usage of container `id` now (a container that does not run has none).
pub(super) async fn container_stats(
    runtime: &DockerRuntime,
    id: &str,
) -> Result<ContainerStats, RuntimeError> {
    let client = runtime.client().await?;
    let inspected = client
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|err| runtime.error(err))?;
    let Some(pid) = inspected
        .state
        .and_then(|s| s.pid)
        .and_then(|pid| u32::try_from(pid).ok())
        .filter(|pid| *pid > 0)
    else {
        return Ok(ContainerStats::default());
    };
    let read_error = |err: std::io::Error| {
        RuntimeError::Unexpected(format!("reading the cgroups of container {id}: {err}"))
    };
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(read_error)?;
    let cgroups = Cgroups::of(&membership, Path::new(CGROUP_ROOT)).ok_or_else(|| {
        RuntimeError::Unexpected(format!("container {id} is in no cgroup this agent reads"))
    })?;
    let mut stats = cgroups.read();
    let Some(usage_ns) = stats.usage_core_nanoseconds else {
        return Ok(stats);
    };
    let now = Instant::now();
    let previous = runtime.cpu_readings().swap(id, now, usage_ns);
    let previous = match previous {
        Some(p) if (FIRST_RATE_WINDOW / 2..RATE_MAX_AGE).contains(&now.duration_since(p.at)) => p,
        _ => {
            tokio::time::sleep(FIRST_RATE_WINDOW).await;
            let later = Instant::now();
            let Some(later_ns) = cgroups.cpu_usage_ns() else {
                return Ok(stats);
            };
            runtime.cpu_readings().swap(id, later, later_ns);
            stats.usage_core_nanoseconds = Some(later_ns);
            stats.usage_nano_cores = nano_cores(
                CpuReading { at: now, usage_ns },
                CpuReading {
                    at: later,
                    usage_ns: later_ns,
                },
            );
            return Ok(stats);
        }
    };
    stats.usage_nano_cores = nano_cores(previous, CpuReading { at: now, usage_ns });
    Ok(stats)
}

/// CPU used between two readings, in billionths of a core.
fn nano_cores(earlier: CpuReading, later: CpuReading) -> Option<u64> {
    let used = later.usage_ns.checked_sub(earlier.usage_ns)?;
    let wall = later.at.checked_duration_since(earlier.at)?.as_nanos();
    (wall > 0).then(|| u64::try_from(u128::from(used) * 1_000_000_000 / wall).unwrap_or(u64::MAX))
}

/// A process's cgroup directories.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cgroups {
    /// cgroup v1: one hierarchy per controller.
    V1 { cpuacct: PathBuf, memory: PathBuf },
    /// The unified hierarchy.
    V2(PathBuf),
}

impl Cgroups {
    /// From `/proc/<pid>/cgroup`: v1's `cpuacct` and `memory` hierarchies when there are
    /// (hybrid machines have both), else the unified one.
    fn of(membership: &str, root: &Path) -> Option<Self> {
        let mut cpuacct = None;
        let mut memory = None;
        let mut unified = None;
        for line in membership.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let relative = path.trim_start_matches('/');
            if controllers.is_empty() {
                unified = Some(root.join(relative));
                continue;
            }
            let dir = root.join(controllers).join(relative);
            for controller in controllers.split(',') {
                match controller {
                    "cpuacct" => cpuacct = Some(dir.clone()),
                    "memory" => memory = Some(dir.clone()),
                    _ => {}
                }
            }
        }
        match (cpuacct, memory, unified) {
            (Some(cpuacct), Some(memory), _) => Some(Self::V1 { cpuacct, memory }),
            (_, _, Some(unified)) => Some(Self::V2(unified)),
            _ => None,
        }
    }

    /// CPU time used so far, in nanoseconds.
    fn cpu_usage_ns(&self) -> Option<u64> {
        match self {
            Self::V1 { cpuacct, .. } => read_number(&cpuacct.join("cpuacct.usage")),
            Self::V2(dir) => key_values(&dir.join("cpu.stat"))
                .get("usage_usec")?
                .checked_mul(1000),
        }
    }

    /// Everything but the CPU rate.
    fn read(&self) -> ContainerStats {
        let (usage, limit, stat, names) = match self {
            Self::V1 { memory, .. } => (
                read_number(&memory.join("memory.usage_in_bytes")),
                read_number(&memory.join("memory.limit_in_bytes")),
                key_values(&memory.join("memory.stat")),
                [
                    "total_inactive_file",
                    "total_rss",
                    "total_pgfault",
                    "total_pgmajfault",
                ],
            ),
            Self::V2(dir) => (
                read_number(&dir.join("memory.current")),
                read_number(&dir.join("memory.max")),
                key_values(&dir.join("memory.stat")),
                ["inactive_file", "anon", "pgfault", "pgmajfault"],
            ),
        };
        let [inactive_file, rss, faults, major_faults] = names.map(|name| stat.get(name).copied());
        ContainerStats {
            usage_core_nanoseconds: self.cpu_usage_ns(),
            usage_nano_cores: None,
            memory_usage_bytes: usage,
            // As cAdvisor: what is in use less the page cache the kernel may reclaim first.
            memory_working_set_bytes: usage.map(|u| u.saturating_sub(inactive_file.unwrap_or(0))),
            memory_rss_bytes: rss,
            memory_limit_bytes: limit.filter(|l| *l < NO_LIMIT),
            page_faults: faults,
            major_page_faults: major_faults,
        }
    }
}

/// A file holding one number (`max` and anything unreadable: none).
fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A file of `name value` lines.
fn key_values(path: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_controllers_win_on_a_hybrid_machine_and_v2_stands_alone() {
        let root = Path::new("/cg");
        let hybrid = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/docker/abc\n";
        assert_eq!(
            Cgroups::of(hybrid, root),
            Some(Cgroups::V1 {
                cpuacct: PathBuf::from("/cg/cpu,cpuacct/docker/abc"),
                memory: PathBuf::from("/cg/memory/docker/abc"),
            })
        );
        assert_eq!(
            Cgroups::of("0::/system.slice/docker-abc.scope\n", root),
            Some(Cgroups::V2(PathBuf::from(
                "/cg/system.slice/docker-abc.scope"
            )))
        );
        assert_eq!(Cgroups::of("garbage", root), None);
    }

    #[test]
    fn v1_and_v2_files_give_the_same_figures() {
        let dir = tempfile::tempdir().expect("temp dir");
        let v1_cpu = dir.path().join("cpuacct");
        let v1_memory = dir.path().join("memory");
        let v2 = dir.path().join("unified");
        for d in [&v1_cpu, &v1_memory, &v2] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(v1_cpu.join("cpuacct.usage"), "3000000000\n").unwrap();
        std::fs::write(v1_memory.join("memory.usage_in_bytes"), "10000\n").unwrap();
        std::fs::write(
            v1_memory.join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        std::fs::write(
            v1_memory.join("memory.stat"),
            "cache 1\ntotal_inactive_file 4000\ntotal_rss 5000\ntotal_pgfault 7\ntotal_pgmajfault 1\n",
        )
        .unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 3000000\nuser_usec 1\n").unwrap();
        std::fs::write(v2.join("memory.current"), "10000\n").unwrap();
        std::fs::write(v2.join("memory.max"), "max\n").unwrap();
        std::fs::write(
            v2.join("memory.stat"),
            "anon 5000\ninactive_file 4000\npgfault 7\npgmajfault 1\n",
        )
        .unwrap();
        let v1 = Cgroups::V1 {
            cpuacct: v1_cpu,
            memory: v1_memory,
        }
        .read();
        let v2 = Cgroups::V2(v2).read();
        assert_eq!(v1, v2);
        assert_eq!(v1.usage_core_nanoseconds, Some(3_000_000_000));
        assert_eq!(v1.memory_working_set_bytes, Some(6_000));
        assert_eq!(v1.memory_rss_bytes, Some(5_000));
        assert_eq!(v1.memory_limit_bytes, None);
        assert_eq!((v1.page_faults, v1.major_page_faults), (Some(7), Some(1)));
        // A container whose cgroup is gone reads as nothing, not as zero.
        let gone = Cgroups::V2(dir.path().join("gone")).read();
        assert_eq!(gone, ContainerStats::default());
    }

    #[test]
    fn the_rate_is_the_cpu_time_over_the_wall_time_between_readings() {
        let at = Instant::now();
        let earlier = CpuReading {
            at,
            usage_ns: 2_500_000_000,
        };
        let later = CpuReading {
            at: at + Duration::from_secs(2),
            usage_ns: 3_500_000_000,
        };
        assert_eq!(nano_cores(earlier, later), Some(500_000_000));
        // A counter that went back (a restarted container) gives no rate.
        assert_eq!(
            nano_cores(
                later,
                CpuReading {
                    at: at + Duration::from_secs(3),
                    usage_ns: 1
                }
            ),
            None
        );
    }
}
