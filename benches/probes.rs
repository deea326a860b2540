//! `cargo xtask bench probes`: what probing costs the node agent. N pods (default 100) serving
//! HTTP on one node, first without probes, then made again with an httpGet readiness probe and
//! a tcpSocket liveness probe each, every second (2N probes a second); the agent's CPU over the
//! same period in both. The kubelet itself is not on this machine: the comparison is the same
//! agent with the same pods, unprobed.
//!
//! Last line: `RESULT probes pods=100 probes_per_s=200 unprobed_cpu_pct=... probed_cpu_pct=...
//! probe_cpu_us=...` (`probe_cpu_us`: the agent's extra CPU per probe).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use skiff::images::{WORKLOAD_BINARY, WORKLOAD_IMAGE};
use skiff::master::{Master, MasterOptions};
use skiff::node::{NodeAgent, NodeOptions};
use skiff::process::{cpu_ticks, ticks_per_second};
use skiff_node::runtime::{DEFAULT_DOCKER_HOST, DockerRuntime};

#[derive(Parser, Debug)]
#[command(about = "node agent: CPU with N pods probed every second vs unprobed")]
struct Args {
    /// Pods on the node.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Seconds the agent's CPU is measured over, each way.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const NODE: &str = "probe-bench";
const POD_CIDR: &str = "10.244.229.0/24";
/// How long the pods may take to be Ready (or gone).
const TIMEOUT: Duration = Duration::from_secs(300);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let master = Master::start(MasterOptions::default())?;
    let agent = NodeAgent::start(&master, NodeOptions::new(NODE, POD_CIDR))?;
    let pid = agent.pid().context("the agent is not running")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(
        DockerRuntime::new(DEFAULT_DOCKER_HOST, "bench")
            .ensure_image_from_binary(WORKLOAD_IMAGE, WORKLOAD_BINARY),
    )?;
    let pods: Api<Pod> = Api::namespaced(rt.block_on(master.kube_client())?, "default");
    let period = Duration::from_secs(args.seconds);

    let mut cpu = Vec::new();
    for probed in [false, true] {
        let started = Instant::now();
        rt.block_on(create_pods(&pods, args.pods, probed))?;
        println!(
            "{} pods {} Running and Ready in {:.1} s",
            args.pods,
            if probed {
                "with probes"
            } else {
                "without probes"
            },
            started.elapsed().as_secs_f64()
        );
        // Let the last status writes and events settle.
        std::thread::sleep(Duration::from_secs(10));
        let share = cpu_share(pid, period)?;
        println!(
            "agent CPU over {} s: {:.2}% of a core",
            args.seconds,
            share * 100.0
        );
        cpu.push(share);
        rt.block_on(delete_pods(&pods))?;
    }
    drop(agent);
    drop(master);
    let probes_per_s = 2 * args.pods;
    let (unprobed, probed) = (cpu[0], cpu[1]);
    let per_probe_us = (probed - unprobed).max(0.0) / probes_per_s as f64 * 1e6;
    println!(
        "RESULT probes pods={} probes_per_s={probes_per_s} unprobed_cpu_pct={:.2} probed_cpu_pct={:.2} probe_cpu_us={per_probe_us:.1}",
        args.pods,
        unprobed * 100.0,
        probed * 100.0,
    );
    Ok(())
}

/// Creates `count` pods serving HTTP (with probes when `probed`) and waits until all are Ready.
async fn create_pods(pods: &Api<Pod>, count: usize, probed: bool) -> anyhow::Result<()> {
    for i in 0..count {
        let mut container = json!({
            "name": "app",
            "image": WORKLOAD_IMAGE,
            "args": ["serve", "8080", "/"],
        });
        if probed {
            container["readinessProbe"] =
                json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1});
            container["livenessProbe"] = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1});
        }
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": format!("probed-{i}"), "labels": {"bench": "probes"}},
            "spec": {
                "nodeName": NODE,
                "containers": [container],
                "terminationGracePeriodSeconds": 0,
            },
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let list = pods
            .list(&ListParams::default().labels("bench=probes"))
            .await?;
        let ready = list.items.iter().filter(|p| ready(p)).count();
        if ready == count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {count} pods Ready in {TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn delete_pods(pods: &Api<Pod>) -> anyhow::Result<()> {
    let selector = ListParams::default().labels("bench=probes");
    pods.delete_collection(&DeleteParams::default().grace_period(0), &selector)
        .await?;
    let deadline = Instant::now() + TIMEOUT;
    while !pods.list(&selector).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("the pods were not gone in {TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The agent's CPU over `period`, in cores.
fn cpu_share(pid: u32, period: Duration) -> anyhow::Result<f64> {
    let start_ticks = cpu_ticks(pid)?;
    let start = Instant::now();
    std::thread::sleep(period);
    let ticks = cpu_ticks(pid)? - start_ticks;
    Ok(ticks as f64 / ticks_per_second() / start.elapsed().as_secs_f64())
}
