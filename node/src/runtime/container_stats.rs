//! One container's resource usage, from Docker's stats endpoint (one sample, with the one
//! Docker took about a second before it, so the CPU rate is real and not a guess).

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptions;
use futures::StreamExt;

use super::{ContainerStats, DockerRuntime, RuntimeError};

/// The usage of container `id` now.
pub(super) async fn container_stats(
    runtime: &DockerRuntime,
    id: &str,
) -> Result<ContainerStats, RuntimeError> {
    let client = runtime.client().await?;
    let options = StatsOptions {
        stream: false,
        one_shot: false,
    };
    let sample = client
        .stats(id, Some(options))
        .next()
        .await
        .ok_or_else(|| RuntimeError::Unexpected(format!("no stats for container {id}")))?
        .map_err(|err| runtime.error(err))?;
    Ok(from_docker(&sample))
}

/// Docker's sample as [`ContainerStats`]; cgroup v1 and v2 name the memory counters apart.
pub fn from_docker(sample: &ContainerStatsResponse) -> ContainerStats {
    let cpu = sample.cpu_stats.as_ref();
    let precpu = sample.precpu_stats.as_ref();
    let total = |stats: Option<&bollard::models::ContainerCpuStats>| {
        stats
            .and_then(|s| s.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
    };
    let usage_core_nanoseconds = total(cpu);
    // Docker's system usage is the nanoseconds of every CPU: divided by the CPUs, wall time.
    let usage_nano_cores = (|| {
        let used = total(cpu)?.checked_sub(total(precpu)?)?;
        let system = cpu?
            .system_cpu_usage?
            .checked_sub(precpu?.system_cpu_usage?)?;
        let cpus = u64::from(cpu?.online_cpus.filter(|n| *n > 0)?);
        (system > 0).then(|| {
            let rate = used as f64 * cpus as f64 / system as f64;
            (rate * 1e9) as u64
        })
    })();
    let memory = sample.memory_stats.as_ref();
    let counter = |names: &[&str]| {
        let stats = memory?.stats.as_ref()?;
        names.iter().find_map(|name| stats.get(*name).copied())
    };
    let usage_bytes = memory.and_then(|m| m.usage);
    let inactive_file = counter(&["total_inactive_file", "inactive_file"]).unwrap_or(0);
    ContainerStats {
        usage_core_nanoseconds,
        usage_nano_cores,
        memory_usage_bytes: usage_bytes,
        memory_working_set_bytes: usage_bytes.map(|u| u.saturating_sub(inactive_file)),
        memory_rss_bytes: counter(&["total_rss", "rss", "anon"]),
        memory_limit_bytes: memory.and_then(|m| m.limit).filter(|l| *l > 0),
        page_faults: counter(&["total_pgfault", "pgfault"]),
        major_page_faults: counter(&["total_pgmajfault", "pgmajfault"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rate_and_working_set_come_from_the_two_samples() {
        let sample: ContainerStatsResponse = serde_json::from_value(serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000u64}, "system_cpu_usage": 20_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000u64}, "system_cpu_usage": 18_000_000_000u64, "online_cpus": 2},
            "memory_stats": {"usage": 10_000, "limit": 1_000_000, "stats": {"total_inactive_file": 4_000, "total_rss": 5_000, "total_pgfault": 7, "total_pgmajfault": 1}},
        }))
        .expect("sample");
        let stats = from_docker(&sample);
        assert_eq!(stats.usage_core_nanoseconds, Some(3_000_000_000));
        // 0.5 s of CPU over 1 s of wall time (2 s of system time on 2 CPUs).
        assert_eq!(stats.usage_nano_cores, Some(500_000_000));
        assert_eq!(stats.memory_usage_bytes, Some(10_000));
        assert_eq!(stats.memory_working_set_bytes, Some(6_000));
        assert_eq!(stats.memory_rss_bytes, Some(5_000));
        assert_eq!(stats.page_faults, Some(7));
        assert_eq!(stats.major_page_faults, Some(1));
    }

    #[test]
    fn a_stopped_or_one_shot_sample_has_no_rate() {
        let sample: ContainerStatsResponse = serde_json::from_value(serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 0}},
            "precpu_stats": {},
            "memory_stats": {},
        }))
        .expect("sample");
        let stats = from_docker(&sample);
        assert_eq!(stats.usage_nano_cores, None);
        assert_eq!(stats.memory_working_set_bytes, None);
    }
}
