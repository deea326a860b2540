//! Hollow nodes: N simulated kubelets in one process (`skiff-node --hollow N`), for seeing the
//! whole cluster at scale on one machine, as Kubernetes' kubemark and KWOK do.
//!
//! Each hollow node is a Node the real API server knows: it registers with capacity, renews
//! its Lease every `--lease-seconds` (10 s), writes its status every `--node-status-seconds`
//! (60 s), moves each pod bound to it to Running (pod IP from its podCIDR, conditions,
//! container statuses) after `--hollow-pod-start-delay`, and deletes it once it is gracefully
//! deleted, all through the API server as a kubelet does. What the N nodes share:
//!
//! - `--hollow-connections` persistent HTTPS connections carrying every node's Lease renewals
//!   and status writes, on one io_uring ring that a thread of their own sleeps in
//!   ([`heartbeats`]): many connections' submissions go to the kernel in one `io_uring_enter`;
//! - one watch of every bound pod, demultiplexed by node name ([`pods`]);
//! - one API client (its connection pool) for registration and pod writes, and one credential
//!   (the kubeconfig's) for all of them.
//!
//! How it differs from N real agents: no containers, no Docker, no probes, no volumes, no
//! logs or exec (a hollow node's address is on loopback, `127.1.0.0` upward, where nothing
//! listens), no static pods and no Service proxy; containers never exit, so Jobs' pods run
//! until deleted; and the node authorizer sees one identity instead of one per node.

mod heartbeats;
mod nodes;
mod pods;
mod stats;

use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt as _;
use tracing::info;

pub use nodes::{HollowNode, address, node_name};
pub use stats::Stats;

use crate::uring::{self, HeartbeatSettings, Transport};

/// Bytes of memory one hollow node is estimated to need, its share of the pods included
/// (measured: `cargo xtask bench scale` reports `hollow_bytes_per_node`); the count
/// is refused up front when the estimate does not fit.
pub const BYTES_PER_NODE: u64 = 16 * 1024;
/// The simulator's own memory besides its nodes.
const BASE_BYTES: u64 = 64 << 20;
/// Registrations (and pod writes) in flight at once.
pub const API_CONCURRENCY: usize = 64;

/// What the simulator runs.
#[derive(Clone, Debug)]
pub struct HollowConfig {
    /// How many nodes.
    pub count: u32,
    /// Node names are `<prefix>-<index>`.
    pub prefix: String,
    /// Lease renewal period.
    pub lease_interval: Duration,
    /// `leaseDurationSeconds` of each Lease.
    pub lease_duration_seconds: i32,
    /// Node status period.
    pub status_interval: Duration,
    /// Time from a pod's binding to its status saying Running.
    pub pod_start_delay: Duration,
    /// Persistent connections carrying the heartbeats.
    pub connections: u32,
    /// Seconds between report lines on stdout (0: none).
    pub report_interval: Duration,
    /// Each node's capacity: CPUs.
    pub cpus: u64,
    /// Each node's capacity: memory in bytes.
    pub memory_bytes: u64,
}

/// Refuses a count the machine cannot hold: more than the memory estimate allows (with the
/// estimate in the error), more than the loopback addresses, or none.
pub fn check_count(count: u32, mem_available: u64) -> Result<(), String> {
    if count == 0 {
        return Err("--hollow needs at least one node".into());
    }
    if count > nodes::MAX_NODES {
        return Err(format!(
            "--hollow {count}: at most {} hollow nodes have a loopback address of their own",
            nodes::MAX_NODES
        ));
    }
    let estimate = u64::from(count)
        .saturating_mul(BYTES_PER_NODE)
        .saturating_add(BASE_BYTES);
    if estimate > mem_available {
        return Err(format!(
            "--hollow {count}: the simulator would need about {} MiB ({} KiB per node), but only {} MiB are available",
            estimate >> 20,
            BYTES_PER_NODE >> 10,
            mem_available >> 20
        ));
    }
    Ok(())
}

/// `MemAvailable` of /proc/meminfo, in bytes.
pub fn mem_available() -> anyhow::Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    uring::capacity::memory_available_bytes(&meminfo).context("/proc/meminfo has no MemTotal")
}

/// Registers the nodes, then runs their heartbeats and pods until `shutdown` resolves.
/// `settings` is the kubeconfig's (its node name is not used).
pub async fn run(
    client: kube::Client,
    settings: HeartbeatSettings,
    config: HollowConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let stats = Rc::new(Stats::default());
    let transport = Transport::preferred();
    info!(
        count = config.count,
        transport = transport.name(),
        connections = config.connections,
        "starting hollow nodes"
    );
    let facts = nodes::Facts::new(config.cpus, config.memory_bytes);
    let registered: Vec<anyhow::Result<HollowNode>> = futures::stream::iter(0..config.count)
        .map(|index| {
            nodes::register(
                &client,
                &facts,
                &config.prefix,
                index,
                config.lease_duration_seconds,
                &stats,
            )
        })
        .buffered(API_CONCURRENCY)
        .collect()
        .await;
    let nodes: Rc<[HollowNode]> = registered
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?
        .into();
    info!(count = nodes.len(), "hollow nodes registered");
    let heartbeats = heartbeats::Heartbeats {
        client: client.clone(),
        settings,
        nodes: nodes.clone(),
        facts,
        lease_interval: config.lease_interval,
        lease_duration_seconds: config.lease_duration_seconds,
        status_interval: config.status_interval,
        stats: stats.clone(),
    };
    let connections = config.connections.clamp(1, config.count);
    let ring = match transport {
        Transport::IoUring => heartbeats::run_on_ring(&heartbeats, connections),
        Transport::Tokio => None,
    };
    if ring.is_none() {
        for connection in 0..connections {
            uring::spawn(heartbeats.clone().run(connection, connections));
        }
    }
    if !config.report_interval.is_zero() {
        let nodes = nodes.clone();
        let most_pods = move || {
            nodes
                .iter()
                .map(|node| node.pod_ips.borrow().len())
                .max()
                .unwrap_or(0)
        };
        uring::spawn(stats::report(
            stats.clone(),
            config.count,
            config.report_interval,
            most_pods,
        ));
    }
    let pods = pods::Pods::new(client, config.prefix, nodes, config.pod_start_delay, stats);
    tokio::select! {
        result = pods.run() => result,
        () = shutdown => Ok(()),
    }
}

/// The executor [`run`] runs on: io_uring (plain tokio where io_uring is missing or
/// `SKIFF_IO_URING=off`). The heartbeats have a ring of their own ([`heartbeats`]).
pub fn executor() -> std::io::Result<uring::Executor> {
    uring::Executor::new()
}
