//! `cargo xtask bench controllers [--nodes 100] [--deployments 30] [--daemonsets 10]
//! [--jobs 20]`: the workload controllers making pods at scale, against a real `skiff-master`
//! (release build, embedded store, scheduler inside).
//!
//! It creates the nodes as Node objects with status (no agents: Ready, room for 1000 pods
//! each), then, at once, Deployments of 200 replicas, DaemonSets (one pod per node) and Jobs
//! of parallelism 150: 10,000 pods with the defaults. The controllers (replicaset,
//! deployment, daemonset, job) make every pod through the API and the scheduler binds them;
//! nothing runs them. A watch notes when each pod is created and bound. Throughput is pods
//! bound per second from the first workload create to the last binding; the master's CPU
//! (API server, scheduler and controllers, one process) is read from /proc over the run. Then
//! every Deployment, DaemonSet and Job is checked to have exactly its pods, each DaemonSet
//! one on every node.
//!
//! The comparison, in the same run: a second master takes the same number of pods created
//! directly through the API from 64 concurrent clients (no controller in between), and its
//! scheduler binds them: what any controller behind this API server can reach.
//!
//! Last line: `RESULT controllers pods=10000 pods_per_s=... created_per_s=... cpu_s=...
//! direct_pods_per_s=... direct_cpu_s=... vs_direct=... wrong=0` (goal: pods_per_s >= 5000;
//! `--no-baseline` skips the comparison).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use skiff::master::{Master, MasterOptions};
use skiff::process::{cpu_ticks, ticks_per_second};

#[path = "support/mod.rs"]
mod support;
use support::{post_all, watch_pods};

#[derive(Parser, Debug)]
#[command(about = "workload controllers making and the scheduler binding 10,000 pods")]
struct Args {
    /// Nodes to create (agent-less Node objects).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Deployments of `--replicas` pods.
    #[arg(long, default_value_t = 30)]
    deployments: usize,
    /// Replicas of each Deployment.
    #[arg(long, default_value_t = 200)]
    replicas: usize,
    /// DaemonSets (a pod on every node each).
    #[arg(long, default_value_t = 10)]
    daemonsets: usize,
    /// Jobs of `--parallelism` pods.
    #[arg(long, default_value_t = 20)]
    jobs: usize,
    /// Parallelism (and completions) of each Job.
    #[arg(long, default_value_t = 150)]
    parallelism: usize,
    /// Concurrent clients for the nodes and the comparison's creates.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Give up when no pod was created or bound for this many seconds.
    #[arg(long, default_value_t = 60)]
    stall_seconds: u64,
    /// Skip the comparison run (the same number of pods created directly).
    #[arg(long)]
    no_baseline: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn pods(&self) -> usize {
        self.deployments * self.replicas
            + self.daemonsets * self.nodes
            + self.jobs * self.parallelism
    }
}

const NAMESPACE: &str = "controllers-bench";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let pods = args.pods();
    let outcome = {
        let master = start(&["--controllers=replicaset,deployment,daemonset,job"])?;
        rt.block_on(run(&master, &args, Workload::Controllers))?
    };
    anyhow::ensure!(
        outcome.bound == pods,
        "{} of {pods} pods were bound",
        outcome.bound
    );
    eprintln!(
        "controllers: {pods} pods created in {:.1} s and bound in {:.1} s ({:.0}/s); master CPU {:.1} s; {} workloads with wrong pods",
        outcome.created_seconds,
        outcome.bound_seconds,
        outcome.pods_per_s(),
        outcome.cpu_seconds,
        outcome.wrong,
    );
    let comparison = if args.no_baseline {
        String::new()
    } else {
        let master = start(&["--controllers="])?;
        let direct = rt.block_on(run(&master, &args, Workload::Direct))?;
        eprintln!(
            "direct: {pods} pods created by {} clients in {:.1} s and bound in {:.1} s ({:.0}/s); master CPU {:.1} s",
            args.clients,
            direct.created_seconds,
            direct.bound_seconds,
            direct.pods_per_s(),
            direct.cpu_seconds,
        );
        format!(
            " direct_pods_per_s={:.0} direct_cpu_s={:.1} vs_direct={:.2}",
            direct.pods_per_s(),
            direct.cpu_seconds,
            outcome.pods_per_s() / direct.pods_per_s().max(1e-9)
        )
    };
    println!(
        "RESULT controllers pods={pods} pods_per_s={:.0} created_per_s={:.0} cpu_s={:.1}{comparison} wrong={} nodes={} deployments={} daemonsets={} jobs={}",
        outcome.pods_per_s(),
        pods as f64 / outcome.created_seconds.max(1e-9),
        outcome.cpu_seconds,
        outcome.wrong,
        args.nodes,
        args.deployments,
        args.daemonsets,
        args.jobs,
    );
    Ok(())
}

/// A master on the embedded store with the scheduler and `extra_args`. Node IPAM and the node
/// lifecycle controller stay off: they would write to every fake Node, and taint them all
/// once no agent renews their leases.
fn start(extra_args: &[&str]) -> anyhow::Result<Master> {
    let extra_args = ["--allocate-node-cidrs=false"]
        .iter()
        .chain(extra_args)
        .map(|a| a.to_string())
        .collect();
    Master::start(MasterOptions {
        extra_args,
        ..Default::default()
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// Deployments, DaemonSets and Jobs: the controllers make the pods.
    Controllers,
    /// The same number of pods created directly.
    Direct,
}

struct Outcome {
    bound: usize,
    created_seconds: f64,
    bound_seconds: f64,
    cpu_seconds: f64,
    wrong: usize,
}

impl Outcome {
    fn pods_per_s(&self) -> f64 {
        self.bound as f64 / self.bound_seconds.max(1e-9)
    }
}

/// Node `i`: Ready, room for 1000 pods, no agent behind it.
fn node(i: usize) -> Value {
    let name = format!("node-{i:04}");
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    })
}

/// A pod template labelled `app`.
fn template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]},
    })
}

/// The workload objects: (collection under the namespace, body).
fn workloads(args: &Args) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for i in 0..args.deployments {
        let app = format!("deploy-{i}");
        out.push((
            "apis/apps/v1/namespaces/controllers-bench/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": app, "namespace": NAMESPACE},
                   "spec": {"replicas": args.replicas, "selector": {"matchLabels": {"app": app}},
                            "template": template(&app)}})
            .to_string(),
        ));
    }
    for i in 0..args.daemonsets {
        let app = format!("daemon-{i}");
        out.push((
            "apis/apps/v1/namespaces/controllers-bench/daemonsets",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                   "metadata": {"name": app, "namespace": NAMESPACE},
                   "spec": {"selector": {"matchLabels": {"app": app}}, "template": template(&app)}})
            .to_string(),
        ));
    }
    for i in 0..args.jobs {
        let app = format!("job-{i}");
        let mut template = template(&app);
        template["spec"]["restartPolicy"] = json!("Never");
        out.push((
            "apis/batch/v1/namespaces/controllers-bench/jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": app, "namespace": NAMESPACE},
                   "spec": {"parallelism": args.parallelism, "completions": args.parallelism,
                            "template": template}})
            .to_string(),
        ));
    }
    out
}

/// When each pod was first seen, and first seen bound.
#[derive(Default)]
struct Seen {
    created: HashMap<String, Instant>,
    bound: HashMap<String, Instant>,
}

async fn run(master: &Master, args: &Args, workload: Workload) -> anyhow::Result<Outcome> {
    let base = master.server_url().to_string();
    let http = master.http();
    let r = http
        .post(format!("{base}/api/v1/namespaces"))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "namespace: {}", r.text().await?);
    post_all(
        master,
        &format!("{base}/api/v1/nodes"),
        (0..args.nodes).map(|i| node(i).to_string()).collect(),
        args.clients,
    )
    .await?;

    // The watch that sees each pod made and bound, from before the first workload.
    let pods_url = format!("{base}/api/v1/namespaces/{NAMESPACE}/pods");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watcher = {
        let seen = seen.clone();
        watch_pods(master, &pods_url, move |name, on_node| {
            let now = Instant::now();
            let mut seen = seen.lock().expect("seen");
            seen.created.entry(name.to_owned()).or_insert(now);
            if on_node {
                seen.bound.entry(name.to_owned()).or_insert(now);
            }
        })
        .await?
    };

    let pid = master
        .pid()
        .ok_or_else(|| anyhow::anyhow!("no master pid"))?;
    let ticks_before = cpu_ticks(pid)?;
    let started = Instant::now();
    match workload {
        Workload::Controllers => {
            let mut by_collection: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (collection, body) in workloads(args) {
                by_collection.entry(collection).or_default().push(body);
            }
            // Each kind's objects at once, the kinds one after another.
            for (collection, bodies) in by_collection {
                post_all(master, &format!("{base}/{collection}"), bodies, 8).await?;
            }
        }
        Workload::Direct => {
            let pods = (0..args.pods())
                .map(|i| {
                    json!({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": format!("pod-{i:05}"), "namespace": NAMESPACE,
                                        "labels": {"app": "direct"}},
                           "spec": template("direct")["spec"]})
                    .to_string()
                })
                .collect();
            post_all(master, &pods_url, pods, args.clients).await?;
        }
    }

    let total = args.pods();
    let mut last = (0, 0);
    let mut last_progress = Instant::now();
    let mut last_report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let counts = {
            let seen = seen.lock().expect("seen");
            (seen.created.len(), seen.bound.len())
        };
        if counts.1 >= total || last_progress.elapsed() > Duration::from_secs(args.stall_seconds) {
            break;
        }
        if counts != last {
            last = counts;
            last_progress = Instant::now();
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "{:>5.1} s: {} created, {} bound",
                started.elapsed().as_secs_f64(),
                counts.0,
                counts.1
            );
            last_report = Instant::now();
        }
    }
    let cpu_seconds = (cpu_ticks(pid)? - ticks_before) as f64 / ticks_per_second();
    watcher.abort();
    // What the run cost the API server, by verb and resource (the most first).
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut requests: Vec<(u64, String)> = metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| {
            let (labels, count) = l.rsplit_once(' ')?;
            Some((
                count.parse().ok()?,
                labels
                    .trim_start_matches("apiserver_request_total")
                    .to_owned(),
            ))
        })
        .collect();
    requests.sort_by(|a, b| b.cmp(a));
    for (count, labels) in requests.iter().take(12) {
        eprintln!("  {count:>7} {labels}");
    }
    let wrong = match workload {
        Workload::Controllers => verify(master, args).await?,
        Workload::Direct => 0,
    };
    let seen = seen.lock().expect("seen");
    let last_of = |times: &HashMap<String, Instant>| {
        times
            .values()
            .max()
            .map_or(0.0, |t| t.duration_since(started).as_secs_f64())
    };
    Ok(Outcome {
        bound: seen.bound.len(),
        created_seconds: last_of(&seen.created),
        bound_seconds: last_of(&seen.bound),
        cpu_seconds,
        wrong,
    })
}

/// How many workloads do not have exactly their pods: each Deployment its replicas, each Job
/// its parallelism, each DaemonSet one pod on every node.
async fn verify(master: &Master, args: &Args) -> anyhow::Result<usize> {
    let base = master.server_url();
    let list: Value = master
        .http()
        .get(format!("{base}/api/v1/namespaces/{NAMESPACE}/pods"))
        .send()
        .await?
        .json()
        .await?;
    let mut by_app: HashMap<String, Vec<String>> = HashMap::new();
    for pod in list["items"].as_array().into_iter().flatten() {
        let app = pod["metadata"]["labels"]["app"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let node = pod["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        by_app.entry(app).or_default().push(node);
    }
    let count = |app: &str| by_app.get(app).map_or(0, Vec::len);
    let mut wrong = 0;
    for i in 0..args.deployments {
        wrong += usize::from(count(&format!("deploy-{i}")) != args.replicas);
    }
    for i in 0..args.jobs {
        wrong += usize::from(count(&format!("job-{i}")) != args.parallelism);
    }
    for i in 0..args.daemonsets {
        let nodes: HashSet<&String> = by_app
            .get(&format!("daemon-{i}"))
            .into_iter()
            .flatten()
            .collect();
        wrong +=
            usize::from(count(&format!("daemon-{i}")) != args.nodes || nodes.len() != args.nodes);
    }
    Ok(wrong)
}
