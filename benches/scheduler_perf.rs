//! `cargo xtask bench scheduler [--nodes 5000] [--pods 50000] [--store embedded|etcd]`: the
//! analog of Kubernetes' scheduler_perf SchedulingBasic against a real `skiff-master` (release
//! build, scheduler inside, embedded store or a real etcd).
//!
//! It creates the nodes as Node objects with status (no agents: Ready, allocatable cpu, memory
//! and pods; four sizes, every tenth node tainted), then creates the pods through the API from
//! 64 concurrent clients (kube's pod-default: 100m CPU, 500Mi), while a watch notes when each
//! is bound. Throughput is pods bound per second from the first create to the last binding;
//! latency is each pod's create-to-bound time. Then every pod is checked bound and no node
//! over-committed or given a pod that does not tolerate its taint.
//!
//! The comparison, in the same run: a second master without the scheduler takes the same
//! creates, which bounds what any scheduler behind this API server can bind.
//!
//! Last line: `RESULT scheduler nodes=... pods=... pods_per_s=... p99_ms=... overcommitted=0
//! unbound=0 ... api_only_creates_per_s=... vs_api_only=...` (`--no-baseline` skips the
//! comparison).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use skiff::etcd::Etcd;
use skiff::master::{Master, MasterOptions};
use skiff_api::quantity::quantity_nanos;

#[path = "support/mod.rs"]
mod support;
use support::{post_all, watch_pods};

#[derive(Parser, Debug)]
#[command(about = "scheduler throughput against a real skiff-master (SchedulingBasic)")]
struct Args {
    /// Nodes to create.
    #[arg(long, default_value_t = 5_000)]
    nodes: usize,
    /// Pods to create and schedule.
    #[arg(long, default_value_t = 50_000)]
    pods: usize,
    /// The store: embedded or etcd.
    #[arg(long, default_value = "embedded")]
    store: String,
    /// Concurrent clients creating pods (each its own HTTPS connection).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Give up when no pod was bound for this many seconds.
    #[arg(long, default_value_t = 60)]
    stall_seconds: u64,
    /// Skip the comparison run (the same creates on a master without scheduler).
    #[arg(long)]
    no_baseline: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const NAMESPACE: &str = "sched-bench";
const TAINT_EVERY: usize = 10;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = {
        let (_etcd, master) = start(&args, &[])?;
        rt.block_on(run(&master, &args))?
    };
    // The comparison: what the API server alone does with the same creates.
    let baseline = if args.no_baseline {
        None
    } else {
        let (_etcd, master) = start(&args, &["--scheduler=false"])?;
        Some(rt.block_on(creates_only(&master, &args))?)
    };
    eprintln!(
        "created {} pods in {:.1} s ({:.0}/s); last bound after {:.1} s; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.pods,
        outcome.create_seconds,
        args.pods as f64 / outcome.create_seconds,
        outcome.bind_seconds,
        outcome.p50_ms,
        outcome.p99_ms,
        outcome.max_ms,
    );
    let comparison = match baseline {
        Some(creates_per_s) => {
            eprintln!(
                "without the scheduler the same creates ran at {creates_per_s:.0}/s: pods are bound at {:.2}x the rate the API server takes creates alone",
                outcome.pods_per_s / creates_per_s
            );
            format!(
                " api_only_creates_per_s={creates_per_s:.0} vs_api_only={:.2}",
                outcome.pods_per_s / creates_per_s
            )
        }
        None => String::new(),
    };
    println!(
        "RESULT scheduler nodes={} pods={} pods_per_s={:.0} p99_ms={:.1} overcommitted={} unbound={} untolerated={} creates_per_s={:.0}{comparison} store={}",
        args.nodes,
        args.pods,
        outcome.pods_per_s,
        outcome.p99_ms,
        outcome.overcommitted,
        outcome.unbound,
        outcome.untolerated,
        args.pods as f64 / outcome.create_seconds,
        args.store,
    );
    Ok(())
}

/// A master (and its etcd, for `--store etcd`) with `extra_args`.
fn start(args: &Args, extra_args: &[&str]) -> anyhow::Result<(Option<Etcd>, Master)> {
    // As in Kubernetes' scheduler_perf, no controller runs beside the API server and the
    // scheduler (node IPAM would write to every fake Node, node lifecycle taint them all).
    let extra_args = ["--allocate-node-cidrs=false", "--controllers="]
        .iter()
        .chain(extra_args)
        .map(|a| a.to_string())
        .collect();
    match args.store.as_str() {
        "embedded" => Ok((
            None,
            Master::start(MasterOptions {
                extra_args,
                ..Default::default()
            })?,
        )),
        "etcd" => {
            let etcd = Etcd::start()?;
            let master = Master::start(MasterOptions {
                etcd_endpoints: vec![etcd.endpoint()],
                extra_args,
                ..Default::default()
            })?;
            Ok((Some(etcd), master))
        }
        other => anyhow::bail!("--store must be embedded or etcd, not {other:?}"),
    }
}

/// Creates the same pods on a master without scheduler; returns creates per second.
async fn creates_only(master: &Master, args: &Args) -> anyhow::Result<f64> {
    let base = master.server_url();
    let r = master
        .http()
        .post(format!("{base}/api/v1/namespaces"))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "namespace: {}", r.text().await?);
    let started = Instant::now();
    post_all(
        master,
        &format!("{base}/api/v1/namespaces/{NAMESPACE}/pods"),
        (0..args.pods).map(pod).collect(),
        args.clients,
    )
    .await?;
    Ok(args.pods as f64 / started.elapsed().as_secs_f64())
}

struct Outcome {
    pods_per_s: f64,
    create_seconds: f64,
    bind_seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    overcommitted: usize,
    unbound: usize,
    untolerated: usize,
}

/// Node `i`: four sizes, every tenth tainted, Ready, no agent behind it.
fn node(i: usize) -> Value {
    let (cpu, gib) = [(4, 16), (8, 32), (16, 64), (32, 128)][i % 4];
    let name = node_name(i);
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
            "node.kubernetes.io/instance-type": format!("m.{cpu}xlarge"),
        }},
        "status": {
            "capacity": {"cpu": cpu.to_string(), "memory": format!("{gib}Gi"), "pods": "110"},
            "allocatable": {"cpu": cpu.to_string(), "memory": format!("{gib}Gi"), "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    });
    if i % TAINT_EVERY == TAINT_EVERY - 1 {
        node["spec"] =
            json!({"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]});
    }
    node
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// Pod `i`, as scheduler_perf's pod-default.
fn pod(i: usize) -> String {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:06}"), "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
            "ports": [{"containerPort": 80}],
            "resources": {"requests": {"cpu": "100m", "memory": "500Mi"},
                          "limits": {"cpu": "100m", "memory": "500Mi"}}}]},
    })
    .to_string()
}

fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("pod-")?.parse().ok()
}

async fn run(master: &Master, args: &Args) -> anyhow::Result<Outcome> {
    let base = master.server_url().to_string();
    let http = master.http();
    let r = http
        .post(format!("{base}/api/v1/namespaces"))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "namespace: {}", r.text().await?);

    let t = Instant::now();
    post_all(
        master,
        &format!("{base}/api/v1/nodes"),
        (0..args.nodes).map(|i| node(i).to_string()).collect(),
        args.clients,
    )
    .await?;
    eprintln!(
        "created {} nodes in {:.1} s",
        args.nodes,
        t.elapsed().as_secs_f64()
    );

    // The watch that sees each binding, from before the first pod.
    let pods_url = format!("{base}/api/v1/namespaces/{NAMESPACE}/pods");
    let bound_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; args.pods]));
    let bound = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let bound_at = bound_at.clone();
        let bound = bound.clone();
        watch_pods(master, &pods_url, move |name, on_node| {
            if let (true, Some(i)) = (on_node, pod_index(name)) {
                let now = Instant::now();
                let mut times = bound_at.lock().expect("bound times");
                if let Some(slot @ None) = times.get_mut(i) {
                    *slot = Some(now);
                    bound.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await?
    };

    let started = Instant::now();
    let progress = {
        let bound = bound.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!(
                    "{:>5.1} s: {} bound",
                    started.elapsed().as_secs_f64(),
                    bound.load(Ordering::Relaxed)
                );
            }
        })
    };
    let create_starts = post_all(
        master,
        &pods_url,
        (0..args.pods).map(pod).collect(),
        args.clients,
    )
    .await?;
    let create_seconds = started.elapsed().as_secs_f64();

    let mut last_count = bound.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    while last_count < args.pods
        && last_progress.elapsed() < Duration::from_secs(args.stall_seconds)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let count = bound.load(Ordering::Relaxed);
        if count != last_count {
            last_count = count;
            last_progress = Instant::now();
        }
    }
    watcher.abort();
    progress.abort();
    let times = bound_at.lock().expect("bound times").clone();
    let first = create_starts.iter().min().copied().unwrap_or(started);
    let last = times.iter().flatten().max().copied().unwrap_or(first);
    let mut latencies: Vec<f64> = times
        .iter()
        .zip(&create_starts)
        .filter_map(|(b, c)| b.map(|b| b.saturating_duration_since(*c).as_secs_f64() * 1e3))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let bound_count = times.iter().flatten().count();
    let (overcommitted, unbound, untolerated) = verify(master, args).await?;
    Ok(Outcome {
        pods_per_s: bound_count as f64 / last.duration_since(first).as_secs_f64().max(1e-9),
        create_seconds,
        bind_seconds: last.duration_since(first).as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        overcommitted,
        unbound,
        untolerated,
    })
}

/// Lists every pod and node: how many nodes are over-committed (cpu, memory or pod count),
/// how many pods are unbound, how many sit on a tainted node.
async fn verify(master: &Master, args: &Args) -> anyhow::Result<(usize, usize, usize)> {
    let base = master.server_url();
    let http = master.http();
    let pods: Value = http
        .get(format!("{base}/api/v1/namespaces/{NAMESPACE}/pods"))
        .timeout(Duration::from_secs(300))
        .send()
        .await?
        .json()
        .await?;
    let nodes: Value = http
        .get(format!("{base}/api/v1/nodes"))
        .timeout(Duration::from_secs(300))
        .send()
        .await?
        .json()
        .await?;
    let quantity = |v: &Value| v.as_str().and_then(|q| quantity_nanos(q).ok()).unwrap_or(0);
    let mut used: HashMap<String, (i128, i128, i128)> = HashMap::new();
    let mut unbound = 0;
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(
        items.len() == args.pods,
        "listed {} pods, created {}",
        items.len(),
        args.pods
    );
    for p in &items {
        let Some(node) = p["spec"]["nodeName"].as_str() else {
            unbound += 1;
            continue;
        };
        let entry = used.entry(node.to_string()).or_default();
        entry.2 += 1_000_000_000;
        for c in p["spec"]["containers"].as_array().into_iter().flatten() {
            entry.0 += quantity(&c["resources"]["requests"]["cpu"]);
            entry.1 += quantity(&c["resources"]["requests"]["memory"]);
        }
    }
    let mut overcommitted = 0;
    let mut untolerated = 0;
    for n in nodes["items"].as_array().into_iter().flatten() {
        let name = n["metadata"]["name"].as_str().unwrap_or("");
        let alloc = &n["status"]["allocatable"];
        let (cpu, memory, count) = used.get(name).copied().unwrap_or_default();
        if cpu > quantity(&alloc["cpu"])
            || memory > quantity(&alloc["memory"])
            || count > quantity(&alloc["pods"])
        {
            overcommitted += 1;
        }
        if n["spec"]["taints"].is_array() && count > 0 {
            untolerated += (count / 1_000_000_000) as usize;
        }
    }
    Ok((overcommitted, unbound, untolerated))
}
