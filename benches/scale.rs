//! `cargo xtask bench scale`: the whole cluster at scale on this machine: a real
//! `skiff-master` (release build, every controller on) with hollow nodes
//! (`skiff-node --hollow N`, release build) that heartbeat and run their pods through the API.
//!
//! 1. **Heartbeats**: `--heartbeat-nodes` (100,000) hollow nodes register, then idle for
//!    `--idle-seconds` (120): Lease renewals per second, their p99 (the median of the
//!    per-second p99s, and the worst), nodes not Ready at the end, the master's CPU and
//!    peak RSS, the simulator's memory per node. Then the same nodes' heartbeats on plain
//!    tokio (`SKIFF_IO_URING=off`) for as long: renewals per simulator CPU-second on
//!    io_uring over those on tokio is `uring_vs_tokio` (goal 1.3).
//! 2. **C1M**: a fresh master, `--nodes` (50,000) hollow nodes, `--deployments` Deployments
//!    totalling `--pods` (1,000,000) replicas created through the API: the time until every
//!    pod is Running (so bound), and until every pod is gone once the Deployments are deleted;
//!    the busiest node's pod count (never over its 110).
//! 3. The same C1M on a real etcd (`--store both`, the default; `embedded` or `etcd` for one),
//!    with etcd's own CPU and peak RSS beside the master's.
//!
//! A phase that makes no progress for `--stall-seconds` stops and reports how far it got.
//! Last line: `RESULT scale nodes=... pods=... pods_running_per_s=... heartbeat_p99_ms=...
//! master_rss_mb=... master_cpu_cores=... hollow_bytes_per_node=... ...`.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use skiff::etcd::Etcd;
use skiff::hollow::HollowNodes;
use skiff::master::{Master, MasterOptions};
use skiff::process::{cpu_ticks, rss_kb, ticks_per_second};

#[derive(Parser, Debug)]
#[command(about = "hollow nodes: 100,000 heartbeating, a million pods through the API")]
struct Args {
    /// Hollow nodes of the heartbeat phase (0: skip it).
    #[arg(long, default_value_t = 100_000)]
    heartbeat_nodes: u32,
    /// Seconds the heartbeat phase idles (and the tokio comparison runs).
    #[arg(long, default_value_t = 120)]
    idle_seconds: u64,
    /// Hollow nodes of the C1M phase.
    #[arg(long, default_value_t = 50_000)]
    nodes: u32,
    /// Pods of the C1M phase (0: skip it).
    #[arg(long, default_value_t = 1_000_000)]
    pods: u32,
    /// Deployments the pods are spread over.
    #[arg(long, default_value_t = 100)]
    deployments: u32,
    /// Which stores run C1M: `embedded`, `etcd` or `both`.
    #[arg(long, default_value = "both")]
    store: String,
    /// A phase that makes no progress this long stops.
    #[arg(long, default_value_t = 120)]
    stall_seconds: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The master's flags: every controller, and a /26 for each of up to 262,144 nodes.
fn master_args() -> Vec<String> {
    vec![
        "--cluster-cidr=10.0.0.0/8".into(),
        "--node-cidr-mask-size=26".into(),
    ]
}

/// CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    cpu_ticks(pid).map_or(0.0, |ticks| ticks as f64 / ticks_per_second())
}

/// What one process used over a window: CPU seconds and peak RSS.
struct Usage {
    pid: u32,
    cpu_start: f64,
    peak_rss_kb: u64,
}

impl Usage {
    fn start(pid: u32) -> Usage {
        Usage {
            pid,
            cpu_start: cpu_seconds(pid),
            peak_rss_kb: rss_kb(pid).unwrap_or(0),
        }
    }

    fn sample(&mut self) {
        self.peak_rss_kb = self.peak_rss_kb.max(rss_kb(self.pid).unwrap_or(0));
    }

    fn cpu(&self) -> f64 {
        cpu_seconds(self.pid) - self.cpu_start
    }

    fn peak_rss_mb(&self) -> f64 {
        self.peak_rss_kb as f64 / 1024.0
    }
}

struct Heartbeats {
    register_per_s: f64,
    renewals_per_s: f64,
    p99_ms: f64,
    p99_worst_ms: f64,
    not_ready: usize,
    master_cpu_cores: f64,
    master_rss_mb: f64,
    hollow_bytes_per_node: f64,
    uring_per_cpu_s: f64,
    tokio_per_cpu_s: f64,
}

struct C1m {
    running: u64,
    running_per_s: f64,
    running_seconds: f64,
    gone_per_s: f64,
    most_pods_per_node: f64,
    master_cpu_cores: f64,
    master_rss_mb: f64,
    hollow_cpu_cores: f64,
    /// etcd's own CPU cores and peak RSS (MiB) while the pods started (on etcd only).
    etcd_usage: Option<(f64, f64)>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base_rss = hollow_base_rss()?;
    let heartbeats = if args.heartbeat_nodes > 0 {
        Some(heartbeats(&rt, &args, base_rss)?)
    } else {
        None
    };
    let mut results = Vec::new();
    if args.pods > 0 {
        for store in ["embedded", "etcd"] {
            if args.store == store || args.store == "both" {
                results.push((store, c1m(&rt, &args, store)?));
            }
        }
    }
    let mut line = format!("RESULT scale nodes={}", args.heartbeat_nodes);
    let first = results.first().map(|(_, c)| c);
    if let Some(c) = first {
        line += &format!(
            " pods={} c1m_nodes={} pods_running_per_s={:.0} running_s={:.1} gone_per_s={:.0} max_pods_per_node={:.0}",
            c.running,
            args.nodes,
            c.running_per_s,
            c.running_seconds,
            c.gone_per_s,
            c.most_pods_per_node
        );
    }
    if let Some(h) = &heartbeats {
        line += &format!(
            " heartbeat_p99_ms={:.1} heartbeat_p99_worst_ms={:.1} renewals_per_s={:.0} not_ready={} register_per_s={:.0} hollow_bytes_per_node={:.0} uring_renewals_per_cpu_s={:.0} tokio_renewals_per_cpu_s={:.0} uring_vs_tokio={:.2}",
            h.p99_ms,
            h.p99_worst_ms,
            h.renewals_per_s,
            h.not_ready,
            h.register_per_s,
            h.hollow_bytes_per_node,
            h.uring_per_cpu_s,
            h.tokio_per_cpu_s,
            h.uring_per_cpu_s / h.tokio_per_cpu_s.max(1e-9),
        );
    }
    // The master's figures: C1M's where it ran, else the heartbeat phase's.
    let (cpu, rss) = match (first, &heartbeats) {
        (Some(c), _) => (c.master_cpu_cores, c.master_rss_mb),
        (None, Some(h)) => (h.master_cpu_cores, h.master_rss_mb),
        (None, None) => (0.0, 0.0),
    };
    line += &format!(" master_cpu_cores={cpu:.2} master_rss_mb={rss:.0}");
    if let Some(h) = &heartbeats {
        line += &format!(
            " heartbeat_master_cpu_cores={:.2} heartbeat_master_rss_mb={:.0}",
            h.master_cpu_cores, h.master_rss_mb
        );
    }
    if let Some(c) = first {
        line += &format!(" hollow_cpu_cores={:.2}", c.hollow_cpu_cores);
    }
    if let Some((_, etcd)) = results.iter().find(|(store, _)| *store == "etcd") {
        line += &format!(
            " etcd_pods={} etcd_pods_running_per_s={:.0} etcd_gone_per_s={:.0} etcd_master_rss_mb={:.0}",
            etcd.running, etcd.running_per_s, etcd.gone_per_s, etcd.master_rss_mb
        );
        if let Some((cpu, rss)) = etcd.etcd_usage {
            line += &format!(" etcd_cpu_cores={cpu:.2} etcd_rss_mb={rss:.0}");
        }
        if let Some(embedded) = results.iter().find(|(store, _)| *store == "embedded") {
            line += &format!(
                " embedded_vs_etcd={:.2}",
                embedded.1.running_per_s / etcd.running_per_s.max(1e-9)
            );
        }
    }
    println!("{line}");
    Ok(())
}

/// The simulator's RSS with one node: what is not the nodes'.
fn hollow_base_rss() -> anyhow::Result<f64> {
    let master = Master::start(MasterOptions {
        extra_args: vec!["--scheduler=false".into(), "--controllers=".into()],
        ..Default::default()
    })?;
    let mut hollow = HollowNodes::start(&master, "base", 1, &[])?;
    hollow.wait_registered(Duration::from_secs(60))?;
    let report = hollow.wait_until(Duration::from_secs(10), |r| r.contains_key("rss_mb"))?;
    Ok(report["rss_mb"] * 1024.0 * 1024.0)
}

/// Phase 1: registration, idle heartbeats on io_uring, then on tokio.
fn heartbeats(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    base_rss: f64,
) -> anyhow::Result<Heartbeats> {
    let count = args.heartbeat_nodes;
    let master = Master::start(MasterOptions {
        extra_args: master_args(),
        ..Default::default()
    })?;
    let master_pid = master.pid().context("master pid")?;
    let started = Instant::now();
    let mut hollow = HollowNodes::start(&master, "hb", count, &[])?;
    hollow.wait_registered(Duration::from_secs(args.stall_seconds.max(60) * 10))?;
    let register_per_s = f64::from(count) / started.elapsed().as_secs_f64();
    eprintln!(
        "heartbeats: {count} hollow nodes registered in {:.1} s ({register_per_s:.0}/s)",
        started.elapsed().as_secs_f64()
    );
    let rss = hollow.report().get("rss_mb").copied().unwrap_or(0.0) * 1024.0 * 1024.0;
    let hollow_bytes_per_node = (rss - base_rss).max(0.0) / f64::from(count);
    // One renewal period for the renewals to spread out, then the window.
    std::thread::sleep(Duration::from_secs(12));
    let window = Duration::from_secs(args.idle_seconds);
    let (uring, mut master_usage) = idle_window(&mut hollow, master_pid, window)?;
    let master_cpu_cores = master_usage.cpu() / window.as_secs_f64();
    master_usage.sample();
    let not_ready = rt.block_on(not_ready_nodes(&master))?;
    eprintln!(
        "heartbeats on io_uring: {:.0} renewals/s, p99 {:.1} ms (worst second {:.1} ms), {:.0} renewals per simulator CPU-second; master {:.2} cores, {:.0} MiB; {not_ready} nodes not Ready",
        uring.renewals_per_s,
        uring.p99_ms,
        uring.p99_worst_ms,
        uring.per_cpu_s,
        master_cpu_cores,
        master_usage.peak_rss_mb()
    );
    hollow.stop();
    let mut tokio =
        HollowNodes::start_with_env(&master, "hb", count, &[], &[("SKIFF_IO_URING", "off")])?;
    tokio.wait_registered(Duration::from_secs(args.stall_seconds.max(60) * 10))?;
    std::thread::sleep(Duration::from_secs(12));
    let (on_tokio, _) = idle_window(&mut tokio, master_pid, window)?;
    eprintln!(
        "heartbeats on tokio: {:.0} renewals/s, p99 {:.1} ms, {:.0} renewals per simulator CPU-second",
        on_tokio.renewals_per_s, on_tokio.p99_ms, on_tokio.per_cpu_s
    );
    Ok(Heartbeats {
        register_per_s,
        renewals_per_s: uring.renewals_per_s,
        p99_ms: uring.p99_ms,
        p99_worst_ms: uring.p99_worst_ms,
        not_ready,
        master_cpu_cores,
        master_rss_mb: master_usage.peak_rss_mb(),
        hollow_bytes_per_node,
        uring_per_cpu_s: uring.per_cpu_s,
        tokio_per_cpu_s: on_tokio.per_cpu_s,
    })
}

struct Window {
    renewals_per_s: f64,
    p99_ms: f64,
    p99_worst_ms: f64,
    per_cpu_s: f64,
}

/// Watches the simulator's per-second reports for `window`.
fn idle_window(
    hollow: &mut HollowNodes,
    master_pid: u32,
    window: Duration,
) -> anyhow::Result<(Window, Usage)> {
    let hollow_pid = hollow.pid().context("hollow pid")?;
    let mut master = Usage::start(master_pid);
    let simulator = Usage::start(hollow_pid);
    let first = hollow.report();
    let start = Instant::now();
    let mut p99s = Vec::new();
    while start.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1));
        master.sample();
        if let Some(p99) = hollow.report().get("renew_p99_ms") {
            p99s.push(*p99);
        }
    }
    let last = hollow.report();
    let renewals = last.get("renewals").copied().unwrap_or(0.0)
        - first.get("renewals").copied().unwrap_or(0.0);
    p99s.sort_by(f64::total_cmp);
    Ok((
        Window {
            renewals_per_s: renewals / start.elapsed().as_secs_f64(),
            p99_ms: p99s.get(p99s.len() / 2).copied().unwrap_or(0.0),
            p99_worst_ms: p99s.last().copied().unwrap_or(0.0),
            per_cpu_s: renewals / simulator.cpu().max(1e-9),
        },
        master,
    ))
}

/// Hollow nodes whose Ready condition is not True, paging through the Nodes.
async fn not_ready_nodes(master: &Master) -> anyhow::Result<usize> {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, ListParams};
    let nodes: Api<Node> = Api::all(master.kube_client().await?);
    let mut params = ListParams::default()
        .labels("skiff.dev/hollow=true")
        .limit(5000);
    let mut not_ready = 0;
    loop {
        let page = nodes.list(&params).await?;
        not_ready += page
            .items
            .iter()
            .filter(|node| {
                !node
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(not_ready),
        }
    }
}

/// Phase 2 (and 3): a million pods on hollow nodes, on `store`.
fn c1m(rt: &tokio::runtime::Runtime, args: &Args, store: &str) -> anyhow::Result<C1m> {
    let etcd = if store == "etcd" {
        Some(Etcd::start()?)
    } else {
        None
    };
    let master = Master::start(MasterOptions {
        etcd_endpoints: etcd.iter().map(Etcd::endpoint).collect(),
        extra_args: master_args(),
        ..Default::default()
    })?;
    let master_pid = master.pid().context("master pid")?;
    let mut hollow = HollowNodes::start(&master, "c1m", args.nodes, &[])?;
    hollow.wait_registered(Duration::from_secs(args.stall_seconds.max(60) * 10))?;
    eprintln!("c1m ({store}): {} hollow nodes registered", args.nodes);
    let hollow_pid = hollow.pid().context("hollow pid")?;
    let mut master_usage = Usage::start(master_pid);
    let mut etcd_usage = etcd.as_ref().map(|etcd| Usage::start(etcd.pid()));
    let simulator = Usage::start(hollow_pid);
    let total = u64::from(args.pods);
    let started = Instant::now();
    rt.block_on(create_deployments(&master, args))?;
    eprintln!(
        "c1m ({store}): {} Deployments created in {:.1} s",
        args.deployments,
        started.elapsed().as_secs_f64()
    );
    let running = progress(
        &mut hollow,
        &mut master_usage,
        etcd_usage.as_mut(),
        args.stall_seconds,
        "running",
        |r| r.get("pods_running").copied().unwrap_or(0.0) as u64,
        total,
    )?;
    let running_seconds = started.elapsed().as_secs_f64();
    let report = hollow.report();
    let most_pods_per_node = report.get("pods_max_per_node").copied().unwrap_or(0.0);
    eprintln!(
        "c1m ({store}): {running} of {total} pods Running after {running_seconds:.1} s ({:.0}/s); busiest node {most_pods_per_node:.0} pods",
        running as f64 / running_seconds
    );
    let master_cpu_cores = master_usage.cpu() / running_seconds;
    let hollow_cpu_cores = simulator.cpu() / running_seconds;
    let etcd_usage = etcd_usage.map(|u| (u.cpu() / running_seconds, u.peak_rss_mb()));
    let deleting = Instant::now();
    rt.block_on(delete_deployments(&master))?;
    let deleted_before = report.get("pods_deleted").copied().unwrap_or(0.0) as u64;
    let gone = progress(
        &mut hollow,
        &mut master_usage,
        None,
        args.stall_seconds,
        "gone",
        |r| (r.get("pods_deleted").copied().unwrap_or(0.0) as u64).saturating_sub(deleted_before),
        running,
    )?;
    let gone_seconds = deleting.elapsed().as_secs_f64();
    eprintln!(
        "c1m ({store}): {gone} pods gone after {gone_seconds:.1} s ({:.0}/s); master peak RSS {:.0} MiB",
        gone as f64 / gone_seconds,
        master_usage.peak_rss_mb()
    );
    Ok(C1m {
        running,
        running_per_s: running as f64 / running_seconds,
        running_seconds,
        gone_per_s: gone as f64 / gone_seconds,
        most_pods_per_node,
        master_cpu_cores,
        master_rss_mb: master_usage.peak_rss_mb(),
        hollow_cpu_cores,
        etcd_usage,
    })
}

/// Waits until `count` of the report reaches `target`, or makes no progress for `stall`
/// seconds, sampling the master's (and the store's) memory; returns how far it got.
fn progress(
    hollow: &mut HollowNodes,
    master: &mut Usage,
    mut store: Option<&mut Usage>,
    stall: u64,
    what: &str,
    count: impl Fn(&std::collections::BTreeMap<String, f64>) -> u64,
    target: u64,
) -> anyhow::Result<u64> {
    let mut best = 0;
    let mut moved = Instant::now();
    let mut said = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        master.sample();
        if let Some(store) = store.as_mut() {
            store.sample();
        }
        let now = count(&hollow.report());
        if now > best {
            best = now;
            moved = Instant::now();
        }
        if best >= target {
            return Ok(best);
        }
        if moved.elapsed() > Duration::from_secs(stall) {
            eprintln!("{what}: stalled at {best} of {target}");
            return Ok(best);
        }
        if said.elapsed() > Duration::from_secs(10) {
            eprintln!("  {what}: {best} of {target}");
            said = Instant::now();
        }
    }
}

async fn create_deployments(master: &Master, args: &Args) -> anyhow::Result<()> {
    let http = master.http();
    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments",
        master.server_url()
    );
    let per = args.pods / args.deployments.max(1);
    for i in 0..args.deployments.max(1) {
        let replicas = if i + 1 == args.deployments.max(1) {
            args.pods - per * i
        } else {
            per
        };
        let name = format!("c1m-{i}");
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
                },
            },
        });
        let response = http.post(&url).json(&body).send().await?;
        anyhow::ensure!(
            response.status().as_u16() == 201,
            "creating {name}: {}",
            response.text().await?
        );
    }
    Ok(())
}

async fn delete_deployments(master: &Master) -> anyhow::Result<()> {
    let response = master
        .http()
        .delete(format!(
            "{}/apis/apps/v1/namespaces/default/deployments",
            master.server_url()
        ))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "deleting the Deployments: {}",
        response.text().await?
    );
    Ok(())
}
