//! Overload: a user's flood of writes against a node's Lease renewals, on a real skiff-master
//! with its in-flight limits and, side by side in the same run, with them off
//! (`--max-mutating-requests-inflight=0`, what a server without protection does).
//!
//! The flood: `FLOOD_CLIENTS` connections of a user (not `system:masters`) creating
//! ConfigMaps of 10 KiB as fast as they are answered. The node: one renewal of its Lease (a
//! merge patch, as the kubelet's) every 50 ms with the node's client certificate; both are
//! mutating requests and meet in the same limit, where the node may take the seats kept for
//! the system. Measured: the node's renewal latency (p50, p99) and how many of its renewals
//! failed, the flood's answered writes per second and its 429s per second (a refused client
//! waits the second `Retry-After` asks, as client-go does). The last line is `RESULT overload ...`
//! with both runs and the ratio of the node's p99 without and with protection.
//! `OVERLOAD_BENCH_SECONDS` sets each run's duration (default 10).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use skiff::master::{Master, MasterOptions};

/// Connections of the flooding user.
const FLOOD_CLIENTS: usize = 64;
/// Between two Lease renewals.
const RENEW_EVERY: Duration = Duration::from_millis(50);

/// What one run measured.
struct Run {
    renew_p50_ms: f64,
    renew_p99_ms: f64,
    renew_failed: u64,
    flood_ok_per_s: f64,
    flood_refused_per_s: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn run(limits: &[&str], seconds: u64) -> anyhow::Result<Run> {
    let mut extra_args = vec![
        String::from("--scheduler=false"),
        String::from("--controllers="),
    ];
    extra_args.extend(limits.iter().map(|l| l.to_string()));
    let master = Master::start(MasterOptions {
        extra_args,
        ..Default::default()
    })?;
    let admin = master.http();
    let base = master.server_url().to_owned();
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "flooder"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "flooder"}]});
    let bound = admin
        .post(format!(
            "{base}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        ))
        .json(&binding)
        .send()
        .await?;
    anyhow::ensure!(
        bound.status() == 201,
        "binding the flooder: {}",
        bound.status()
    );
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}});
    let (cert, key) = master.client_certificate("system:node:n1", &["system:nodes"])?;
    let node = master.http_with_certificate(&cert, &key)?;
    let created = node
        .post(format!(
            "{base}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        ))
        .json(&lease)
        .send()
        .await?;
    anyhow::ensure!(
        created.status() == 201,
        "creating the Lease: {}",
        created.status()
    );
    let (cert, key) = master.client_certificate("flooder", &[])?;
    let flooder = master.http_with_certificate(&cert, &key)?;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let data = "x".repeat(10 * 1024);
    let flood: Vec<_> = (0..FLOOD_CLIENTS)
        .map(|client| {
            let flooder = flooder.clone();
            let data = data.clone();
            let url = format!("{base}/api/v1/namespaces/default/configmaps");
            let (stop, answered, refused, failed) = (
                stop.clone(),
                answered.clone(),
                refused.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("flood-{client}-{i}")}, "data": {"v": data}});
                    match flooder.post(&url).json(&body).send().await {
                        // As client-go: wait what Retry-After says.
                        Ok(r) if r.status() == 429 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Ok(r) if r.status() == 201 => {
                            if r.bytes().await.is_ok() {
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(r) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let _ = r.bytes().await;
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut renew_failed = 0u64;
    let url = format!("{base}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1");
    while started.elapsed() < Duration::from_secs(seconds) {
        let t = Instant::now();
        let renewal = json!({"spec": {"renewTime": chrono_now()}});
        let answer = node
            .patch(&url)
            .header("Content-Type", "application/merge-patch+json")
            .body(renewal.to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == 200 => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
            _ => renew_failed += 1,
        }
        tokio::time::sleep(RENEW_EVERY.saturating_sub(t.elapsed())).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.abort();
    }
    latencies.sort_by(f64::total_cmp);
    let flood_failed = failed.load(Ordering::Relaxed);
    anyhow::ensure!(
        flood_failed == 0,
        "{flood_failed} lists of the flood failed (not 200 or 429)"
    );
    Ok(Run {
        renew_p50_ms: percentile(&latencies, 0.5),
        renew_p99_ms: percentile(&latencies, 0.99),
        renew_failed,
        flood_ok_per_s: answered.load(Ordering::Relaxed) as f64 / elapsed,
        flood_refused_per_s: refused.load(Ordering::Relaxed) as f64 / elapsed,
    })
}

/// Now as an RFC 3339 MicroTime.
fn chrono_now() -> String {
    k8s_openapi::chrono::Utc::now()
        .to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Micros, true)
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("OVERLOAD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let protected = runtime.block_on(run(
        &[
            "--max-requests-inflight=400",
            "--max-mutating-requests-inflight=12",
        ],
        seconds,
    ))?;
    let unprotected = runtime.block_on(run(
        &[
            "--max-requests-inflight=400",
            "--max-mutating-requests-inflight=0",
        ],
        seconds,
    ))?;
    for (name, run) in [("protected", &protected), ("unprotected", &unprotected)] {
        println!(
            "{name}: node renewal p50 {:.2} ms p99 {:.2} ms ({} failed); flood {:.0} writes/s answered, {:.0}/s refused",
            run.renew_p50_ms,
            run.renew_p99_ms,
            run.renew_failed,
            run.flood_ok_per_s,
            run.flood_refused_per_s
        );
    }
    println!(
        "RESULT overload flood_clients={FLOOD_CLIENTS} seconds={seconds} \
         protected_renew_p50_ms={:.2} protected_renew_p99_ms={:.2} protected_renew_failed={} \
         protected_flood_ok_per_s={:.0} protected_flood_429_per_s={:.0} \
         unprotected_renew_p50_ms={:.2} unprotected_renew_p99_ms={:.2} unprotected_renew_failed={} \
         unprotected_flood_ok_per_s={:.0} renew_p99_unprotected_vs_protected={:.1}",
        protected.renew_p50_ms,
        protected.renew_p99_ms,
        protected.renew_failed,
        protected.flood_ok_per_s,
        protected.flood_refused_per_s,
        unprotected.renew_p50_ms,
        unprotected.renew_p99_ms,
        unprotected.renew_failed,
        unprotected.flood_ok_per_s,
        unprotected.renew_p99_ms / protected.renew_p99_ms
    );
    Ok(())
}
