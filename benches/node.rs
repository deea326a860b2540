//! `cargo xtask bench node`: the node agent against a real skiff-master and the machine's
//! Docker, in three parts:
//!
//! 1. pod startup: N pods (default 30, the pause image, as Kubernetes' pod startup tests use)
//!    created at once on one node; create-to-Running-and-Ready latency, p50 and p99. Beside it,
//!    the floor any Docker-based kubelet has: the same N sandbox + app container pairs made
//!    directly through Docker's API (create and start the sandbox on the node's bridge, then
//!    the app container in its network and IPC namespaces), all at once;
//! 2. footprint: the agent's RSS and CPU while it idles with those pods, over 60 s;
//! 3. one Lease renewal on the agent's persistent io_uring connection vs the same renewal over
//!    a plain tokio `TcpStream`, side by side on one thread, alternating rounds.
//!
//! Last line: `RESULT node pods=30 startup_p50_ms=... startup_p99_ms=... docker_p50_ms=...
//! docker_p99_ms=... rss_mb=... idle_cpu_pct=... renew_us_uring=... renew_us_tokio=...`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use skiff::master::{Master, MasterOptions};
use skiff::node::{NodeAgent, NodeOptions};
use skiff::process::{self, cpu_ticks, rss_kb};
use skiff_node::images::PAUSE_IMAGE;
use skiff_node::uring::{self, HeartbeatConnection, HeartbeatSettings, RenewalCost, Transport};

#[derive(Parser, Debug)]
#[command(about = "node agent: pod startup, idle footprint, lease renewal cost")]
struct Args {
    /// Pods created at once on the node.
    #[arg(long, default_value_t = 30)]
    pods: usize,
    /// Seconds the idle footprint is measured over.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Renewals per round; rounds alternate between the two transports.
    #[arg(long, default_value_t = 500)]
    renewals: u32,
    /// Rounds per transport (the median round counts).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const NODE: &str = "bench-node";
const POD_CIDR: &str = "10.244.230.0/24";
/// How long the pods may take to run before the benchmark gives up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let master = Master::start(MasterOptions::default())?;
    let agent = NodeAgent::start(&master, NodeOptions::new(NODE, POD_CIDR))?;
    let pid = agent.pid().context("the agent is not running")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let docker = rt.block_on(docker_startup(args.pods))?;
    let docker_p50 = percentile(&docker, 0.50);
    let docker_p99 = percentile(&docker, 0.99);
    println!(
        "docker alone: {} sandbox + app pairs started, p50 {docker_p50:.0} ms, p99 {docker_p99:.0} ms",
        docker.len()
    );

    let client = rt.block_on(master.kube_client())?;
    let startup = rt.block_on(pod_startup(client, args.pods))?;
    let p50 = percentile(&startup, 0.50);
    let p99 = percentile(&startup, 0.99);
    println!(
        "startup: {} pods Running and Ready, create-to-running p50 {p50:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
        startup.len(),
        startup.last().copied().unwrap_or_default()
    );

    // Let the last status writes and events settle, then watch the idle agent.
    std::thread::sleep(Duration::from_secs(5));
    let footprint = idle_footprint(pid, Duration::from_secs(args.idle_seconds))?;
    println!(
        "footprint over {} s with {} pods: RSS {:.1} MB (peak {:.1} MB), CPU {:.3}% of a core",
        args.idle_seconds, args.pods, footprint.rss_mb, footprint.peak_rss_mb, footprint.cpu_pct
    );

    let kubeconfig = kube::config::Kubeconfig::read_from(master.kubeconfig_path())?;
    // The agent's own lease: a renewal here is exactly the one the agent makes.
    let settings = HeartbeatSettings::from_kubeconfig(&kubeconfig, NODE, 40)?;
    let costs = renewal_costs(&settings, args.renewals, args.rounds)?;
    let uring = &costs[&Transport::IoUring];
    let tokio = &costs[&Transport::Tokio];
    for (name, cost) in [("io_uring", uring), ("tokio", tokio)] {
        println!(
            "renewal over {name}: {:.1} us wall, {:.1} us agent CPU (median of {} rounds of {})",
            micros(cost.wall),
            micros(cost.cpu),
            args.rounds,
            cost.renewals
        );
    }
    // Keep the agent's log for a look at where the time went.
    let kept = std::env::temp_dir().join("skiff-bench-node-agent.log");
    if std::fs::copy(agent.log_path(), &kept).is_ok() {
        println!("the agent's log: {}", kept.display());
    }
    drop(agent);
    drop(master);
    println!(
        "RESULT node pods={} startup_p50_ms={p50:.0} startup_p99_ms={p99:.0} docker_p50_ms={docker_p50:.0} docker_p99_ms={docker_p99:.0} vs_docker_p99={:.2} rss_mb={:.1} idle_cpu_pct={:.3} renew_us_uring={:.1} renew_us_tokio={:.1} renew_cpu_us_uring={:.1} renew_cpu_us_tokio={:.1} uring_vs_tokio={:.2}",
        args.pods,
        p99 / docker_p99,
        footprint.rss_mb,
        footprint.cpu_pct,
        micros(uring.wall),
        micros(tokio.wall),
        micros(uring.cpu),
        micros(tokio.cpu),
        uring.wall.as_secs_f64() / tokio.wall.as_secs_f64(),
    );
    Ok(())
}

/// Creates `count` pods on the node at once and returns each one's create-to-Running-and-Ready
/// latency in ms, sorted.
async fn pod_startup(client: kube::Client, count: usize) -> anyhow::Result<Vec<f64>> {
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // Watch first, so no transition is missed.
    let watch_params = WatchParams::default().fields(&format!("spec.nodeName={NODE}"));
    let mut events = pods.watch(&watch_params, "0").await?.boxed();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let creates = (0..count).map(|i| {
        let pods = pods.clone();
        async move {
            let pod: Pod = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": format!("startup-{i}")},
                "spec": {
                    "nodeName": NODE,
                    "containers": [{"name": "app", "image": PAUSE_IMAGE}],
                    "terminationGracePeriodSeconds": 0,
                },
            }))?;
            let start = Instant::now();
            pods.create(&PostParams::default(), &pod).await?;
            anyhow::Ok((format!("startup-{i}"), start))
        }
    });
    for (name, start) in futures::future::try_join_all(creates).await? {
        created.insert(name, start);
    }
    let mut latencies: HashMap<String, f64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    while latencies.len() < count {
        let event = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .with_context(|| {
                format!(
                    "only {} of {count} pods ran within {STARTUP_TIMEOUT:?}",
                    latencies.len()
                )
            })??;
        let Some(event) = event else {
            bail!("the pod watch ended");
        };
        let pod = match event {
            WatchEvent::Added(pod) | WatchEvent::Modified(pod) => pod,
            WatchEvent::Error(err) => bail!("pod watch: {}", err.message),
            _ => continue,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(start) = created.get(&name)
            && running_and_ready(&pod)
        {
            latencies
                .entry(name)
                .or_insert_with(|| start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut latencies: Vec<f64> = latencies.into_values().collect();
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// Starts `count` sandbox + app container pairs straight through Docker's API, all at once,
/// on the bench node's bridge network; returns each pair's time to both started in ms, sorted.
/// Removes them afterwards.
async fn docker_startup(count: usize) -> anyhow::Result<Vec<f64>> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};

    let docker = bollard::Docker::connect_with_unix_defaults()?;
    let network = format!("skiff-{NODE}");
    let remove_all = || async {
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        for i in 0..count {
            for part in ["app", "pause"] {
                let name = format!("skiff-bench-docker-{i}-{part}");
                let _ = docker.remove_container(&name, Some(remove.clone())).await;
            }
        }
    };
    // Left over by an interrupted run.
    remove_all().await;
    let pairs = (0..count).map(|i| {
        let docker = docker.clone();
        let network = network.clone();
        async move {
            let start = Instant::now();
            let create = |name: String, body: ContainerCreateBody| {
                let docker = docker.clone();
                async move {
                    let options = CreateContainerOptionsBuilder::new().name(&name).build();
                    let id = docker.create_container(Some(options), body).await?.id;
                    docker.start_container(&id, None).await?;
                    anyhow::Ok(id)
                }
            };
            let sandbox = create(
                format!("skiff-bench-docker-{i}-pause"),
                ContainerCreateBody {
                    image: Some(PAUSE_IMAGE.to_owned()),
                    host_config: Some(HostConfig {
                        network_mode: Some(network),
                        ipc_mode: Some(String::from("shareable")),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await?;
            create(
                format!("skiff-bench-docker-{i}-app"),
                ContainerCreateBody {
                    image: Some(PAUSE_IMAGE.to_owned()),
                    host_config: Some(HostConfig {
                        network_mode: Some(format!("container:{sandbox}")),
                        ipc_mode: Some(format!("container:{sandbox}")),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await?;
            anyhow::Ok(start.elapsed().as_secs_f64() * 1e3)
        }
    });
    let results = futures::future::join_all(pairs).await;
    remove_all().await;
    let mut latencies = results.into_iter().collect::<anyhow::Result<Vec<f64>>>()?;
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

fn running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

struct Footprint {
    rss_mb: f64,
    peak_rss_mb: f64,
    cpu_pct: f64,
}

/// The agent's RSS (sampled each second; the last sample) and its CPU share over `period`.
fn idle_footprint(pid: u32, period: Duration) -> anyhow::Result<Footprint> {
    let start_ticks = cpu_ticks(pid)?;
    let start = Instant::now();
    let mut rss = rss_kb(pid)?;
    let mut peak_kb = rss;
    while start.elapsed() < period {
        std::thread::sleep(Duration::from_secs(1));
        rss = rss_kb(pid)?;
        peak_kb = peak_kb.max(rss);
    }
    let ticks = cpu_ticks(pid)? - start_ticks;
    let ticks_per_s = process::ticks_per_second();
    Ok(Footprint {
        rss_mb: rss as f64 / 1024.0,
        peak_rss_mb: peak_kb as f64 / 1024.0,
        cpu_pct: ticks as f64 / ticks_per_s / start.elapsed().as_secs_f64() * 100.0,
    })
}

/// The median round's cost per transport: rounds alternate io_uring and tokio on one io_uring
/// runtime thread, so both see the same machine and the same API server.
fn renewal_costs(
    settings: &HeartbeatSettings,
    renewals: u32,
    rounds: usize,
) -> anyhow::Result<HashMap<Transport, RenewalCost>> {
    let settings = settings.clone();
    std::thread::spawn(move || {
        let runtime = uring::Executor::new()?;
        if !runtime.is_io_uring() {
            bail!("io_uring is not available on this machine: nothing to compare");
        }
        runtime.block_on(async move {
            let transports = [Transport::IoUring, Transport::Tokio];
            let mut conns = Vec::new();
            for transport in transports {
                conns.push(HeartbeatConnection::new(transport, &settings)?);
            }
            let mut samples: HashMap<Transport, Vec<RenewalCost>> = HashMap::new();
            for _ in 0..rounds {
                for (transport, conn) in transports.iter().zip(conns.iter_mut()) {
                    let cost = uring::measure_renewals(conn, renewals).await?;
                    samples.entry(*transport).or_default().push(cost);
                }
            }
            Ok(samples
                .into_iter()
                .map(|(transport, mut costs)| {
                    costs.sort_by_key(|c| c.wall);
                    (transport, costs[costs.len() / 2])
                })
                .collect())
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the renewal thread panicked"))?
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
