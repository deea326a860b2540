//! `cargo xtask bench api`: create throughput and latency of the API server over HTTPS, with
//! watchers that must each receive every event in order, for the embedded store and etcd side
//! by side in one run.
//!
//! With `--per-node`, watcher `k` watches with `fieldSelector=spec.nodeName=node-k` (the shape
//! kubelets give) and pod `i` is created on `node-(i % watchers)`, so each watcher sees its
//! share of the pods and the API server filters every event for every watcher.
//!
//! Last lines: `RESULT api store=<store> ... watchers=<n> selector=<none|node> creates_per_s=...
//! p50_ms=... p99_ms=... watch_events_lost=0`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use skiff::etcd::Etcd;
use skiff::master::{Master, MasterOptions};

#[derive(Parser, Debug)]
#[command(about = "API server create throughput with watchers")]
struct Args {
    /// Pods to create.
    #[arg(long, default_value_t = 20_000)]
    pods: usize,
    /// Concurrent clients (each its own HTTPS connection).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Watchers, each of which must see every create in order.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Each watcher watches the pods of one node (`spec.nodeName=node-k`), as kubelets do.
    #[arg(long)]
    per_node: bool,
    /// Which stores: embedded, etcd or all.
    #[arg(long, default_value = "all")]
    store: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Outcome {
    creates_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    lost: u64,
    out_of_order: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    // The API server alone: a scheduler would add a status write and an Event per pod (none
    // of the pods can be placed: there are no nodes).
    let api_only = || {
        vec![
            String::from("--scheduler=false"),
            String::from("--controllers="),
        ]
    };
    if args.store == "all" || args.store == "embedded" {
        let master = Master::start(MasterOptions {
            extra_args: api_only(),
            ..Default::default()
        })?;
        let outcome = rt.block_on(run(&master, &args))?;
        results.push(("embedded", outcome));
    }
    if args.store == "all" || args.store == "etcd" {
        match Etcd::start() {
            Ok(etcd) => {
                let master = Master::start(MasterOptions {
                    etcd_endpoints: vec![etcd.endpoint()],
                    extra_args: api_only(),
                    ..Default::default()
                })?;
                let outcome = rt.block_on(run(&master, &args))?;
                results.push(("etcd", outcome));
            }
            Err(e) => eprintln!("skipping etcd: {e:#}"),
        }
    }
    if let [(_, embedded), (_, etcd)] = results.as_slice() {
        println!(
            "embedded vs etcd: {:.1}x the creates/s, p99 {:.2} ms vs {:.2} ms",
            embedded.creates_per_s / etcd.creates_per_s.max(f64::MIN_POSITIVE),
            embedded.p99_ms,
            etcd.p99_ms
        );
    }
    for (store, o) in &results {
        eprintln!(
            "{store}: max latency {:.2} ms, out-of-order events {}",
            o.max_ms, o.out_of_order
        );
        println!(
            "RESULT api store={store} pods={} clients={} watchers={} selector={} creates_per_s={:.0} p50_ms={:.2} p99_ms={:.2} watch_events_lost={}",
            args.pods,
            args.clients,
            args.watchers,
            if args.per_node { "node" } else { "none" },
            o.creates_per_s,
            o.p50_ms,
            o.p99_ms,
            o.lost + o.out_of_order
        );
    }
    Ok(())
}

async fn run(master: &Master, args: &Args) -> anyhow::Result<Outcome> {
    let base = master.server_url().to_string();
    let ns_url = format!("{base}/api/v1/namespaces");
    let http = master.http();
    let r = http
        .post(&ns_url)
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "creating namespace: {}",
        r.text().await?
    );
    let pods_url = format!("{ns_url}/bench/pods");
    let list: Value = http.get(&pods_url).send().await?.json().await?;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();

    // Watchers: count ADDED events and check their resourceVersions only increase.
    let received = Arc::new(AtomicU64::new(0));
    let out_of_order = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    // Each watcher its own client and connection, as each kubelet has.
    let mut want_total = 0u64;
    for k in 0..args.watchers {
        let (selector, want) = if args.per_node {
            let mine = (0..args.pods).filter(|i| i % args.watchers == k).count();
            (
                format!("&fieldSelector=spec.nodeName%3Dnode-{k}"),
                mine as u64,
            )
        } else {
            (String::new(), args.pods as u64)
        };
        want_total += want;
        let resp = master
            .http()
            .get(format!(
                "{pods_url}?watch=1&resourceVersion={from}&timeoutSeconds=600{selector}"
            ))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "watch: {}", resp.status());
        let received = received.clone();
        let out_of_order = out_of_order.clone();
        watchers.push(tokio::spawn(async move {
            let mut stream = resp.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            let (mut last, mut count) = (0u64, 0u64);
            while count < want {
                let Some(Ok(chunk)) = stream.next().await else {
                    break;
                };
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    if !line.starts_with(b"{\"type\":\"ADDED\"") {
                        continue;
                    }
                    let rv = resource_version(&line);
                    if rv <= last {
                        out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    last = rv;
                    count += 1;
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let per_node = args.per_node.then_some(args.watchers.max(1));
    let body = |i: usize| {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i}"), "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "registry.local/app:1.0", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}});
        if let Some(nodes) = per_node {
            pod["spec"]["nodeName"] = json!(format!("node-{}", i % nodes));
        }
        pod.to_string()
    };
    // Warm each client's connection (TLS handshake) before the clock starts.
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let c = master.http();
        c.get(format!("{base}/readyz")).send().await?;
        clients.push(c);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (k, client) in clients.into_iter().enumerate() {
        let url = pods_url.clone();
        let mine: Vec<String> = (0..args.pods)
            .filter(|i| i % args.clients == k)
            .map(body)
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(mine.len());
            for b in mine {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(b)
                    .send()
                    .await?;
                let status = r.status();
                let _ = r.bytes().await?;
                anyhow::ensure!(status.as_u16() == 201, "create failed: {status}");
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(args.pods);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let want = want_total;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in watchers {
        w.abort();
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    Ok(Outcome {
        creates_per_s: args.pods as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        lost: want.saturating_sub(received.load(Ordering::Relaxed)),
        out_of_order: out_of_order.load(Ordering::Relaxed),
    })
}

/// The `resourceVersion` of the object in one watch event line.
fn resource_version(line: &[u8]) -> u64 {
    const KEY: &[u8] = b"\"resourceVersion\":\"";
    let Some(at) = line.windows(KEY.len()).position(|w| w == KEY) else {
        return 0;
    };
    line[at + KEY.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
}
