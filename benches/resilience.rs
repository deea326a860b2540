//! Resilience (issue 13): a real skiff-master (release build, the API server alone) through
//! three faults in one run, each measured against the goal the issue sets for it.
//!
//! 1. Flood: `FLOOD_CLIENTS` (2,000) clients of a user (not `system:masters`), each its own
//!    HTTPS connection, against `--max-requests-inflight=100
//!    --max-mutating-requests-inflight=50`: half ConfigMap creates, half gets and lists of a
//!    small namespace, as fast as they are answered; a client refused with 429 waits the
//!    `Retry-After` seconds, as client-go does. Meanwhile the system's clients — a node
//!    (`system:node:n1`, renewing its Lease and reading its Node) and the scheduler
//!    (`system:kube-scheduler`, listing nodes and pods), each every 50 ms, on a runtime of
//!    their own — are timed. Counted: requests tried, 2xx, 429, 5xx (goal 0), other answers
//!    and transport errors; the system clients' p99 (goal: under 1 s) and failures. The same
//!    flood with the limits off (`=0`, a server without protection) gives
//!    `unprotected_system_p99_ms` and the ratio of the two.
//! 2. kill -9 under load: `WRITERS` admin clients create ConfigMaps on the embedded store; the
//!    master is killed with SIGKILL after `LOAD_BEFORE_FAULT`, started again on the same state
//!    dir (`restart_ms`: from spawn until `/readyz` answers 200, as the harness polls it), and
//!    every write that was answered 201 is read back (`lost_writes`, goal 0).
//! 3. etcd stopped under load: the master on a real etcd with writers running; etcd is killed
//!    for `RESILIENCE_ETCD_DOWN_SECONDS` (default 30) and started again on its data. Counted:
//!    error answers during the outage and the slowest of them (each should come within the
//!    master's 5 s etcd request deadline, not hang), the time from etcd's restart to the first
//!    acknowledged write (`etcd_recover_s`; `etcd_ready_s` is etcd's own start within it),
//!    and acknowledged writes lost.
//!
//! `RESILIENCE_BENCH_SECONDS` sets each flood's duration (default 20). The last line is
//! `RESULT resilience requests=... ok=... throttled_429=... errors_5xx=... system_p99_ms=...
//! acked_writes=... lost_writes=... restart_ms=... etcd_recover_s=...` and further keys.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff::etcd::Etcd;
use skiff::master::{Master, MasterOptions};

/// Concurrent clients of the flooding user.
const FLOOD_CLIENTS: usize = 2_000;
/// The limits of the protected flood.
const PROTECTED_LIMITS: [&str; 2] = [
    "--max-requests-inflight=100",
    "--max-mutating-requests-inflight=50",
];
/// ConfigMaps in the namespace the flood reads.
const SEED_CONFIGMAPS: usize = 20;
/// Between two requests of one system client.
const SYSTEM_EVERY: Duration = Duration::from_millis(50);
/// How long a client waits for an answer (the master answers 504 after its 60 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(70);
/// Writers in the kill -9 and etcd phases.
const WRITERS: usize = 12;
/// Write load before the fault.
const LOAD_BEFORE_FAULT: Duration = Duration::from_secs(3);
/// The master's deadline for one etcd request (master/src/store/etcd.rs): an error answer
/// during the outage should come within it, and a little scheduling slack.
const ETCD_DEADLINE: Duration = Duration::from_secs(5);
/// A writer's pause after an error answer (client-go backs off too).
const WRITER_BACKOFF: Duration = Duration::from_millis(200);

fn main() -> anyhow::Result<()> {
    let seconds = env_u64("RESILIENCE_BENCH_SECONDS", 20);
    let etcd_down = Duration::from_secs(env_u64("RESILIENCE_ETCD_DOWN_SECONDS", 30));
    raise_open_files_limit(FLOOD_CLIENTS as u64 * 2 + 1024)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let protected = runtime.block_on(flood(&PROTECTED_LIMITS, seconds))?;
    protected.print("flood, limits 100/50");
    let unprotected = runtime.block_on(flood(
        &[
            "--max-requests-inflight=0",
            "--max-mutating-requests-inflight=0",
        ],
        seconds,
    ))?;
    unprotected.print("flood, no limits");
    let kill9 = runtime.block_on(kill9_under_load())?;
    println!(
        "kill -9 under load: {} writes acknowledged, {} lost; restart (spawn to /readyz 200) {} ms",
        kill9.acked, kill9.lost, kill9.restart_ms
    );
    let etcd = runtime.block_on(etcd_outage(etcd_down))?;
    println!(
        "etcd down {} s under load: {} error answers ({}), slowest {} ms ({} the {} s deadline), \
         {} writes not answered; etcd back (healthy after {:.1} s), first acknowledged write \
         {:.1} s after its restart; {} writes acknowledged, {} lost",
        etcd_down.as_secs(),
        etcd.errors,
        breakdown(&etcd.error_kinds),
        etcd.error_max_ms,
        if etcd.prompt { "within" } else { "NOT within" },
        ETCD_DEADLINE.as_secs(),
        etcd.unanswered,
        etcd.ready_s,
        etcd.recover_s,
        etcd.acked,
        etcd.lost
    );
    println!(
        "RESULT resilience requests={} ok={} throttled_429={} errors_5xx={} system_p99_ms={:.1} \
         acked_writes={} lost_writes={} restart_ms={} etcd_recover_s={:.1} \
         flood_clients={FLOOD_CLIENTS} seconds={seconds} other_errors={} system_requests={} \
         system_failed={} system_max_ms={:.1} unprotected_system_p99_ms={:.1} \
         system_p99_unprotected_vs_protected={:.1} unprotected_errors_5xx={} \
         etcd_down_s={} etcd_errors={} etcd_error_max_ms={} etcd_ready_s={:.1} \
         etcd_acked_writes={} etcd_lost_writes={}",
        protected.tried,
        protected.ok,
        protected.throttled,
        protected.errors_5xx,
        protected.system_p99_ms,
        kill9.acked,
        kill9.lost,
        kill9.restart_ms,
        etcd.recover_s,
        protected.other + protected.failed,
        protected.system_requests,
        protected.system_failed,
        protected.system_max_ms,
        unprotected.system_p99_ms,
        unprotected.system_p99_ms / protected.system_p99_ms,
        unprotected.errors_5xx,
        etcd_down.as_secs(),
        etcd.errors,
        etcd.error_max_ms,
        etcd.ready_s,
        etcd.acked,
        etcd.lost,
    );
    Ok(())
}

// ---- 1. The flood ----

/// The flood's answers, counted as they come.
#[derive(Default)]
struct Tally {
    tried: AtomicU64,
    ok: AtomicU64,
    throttled: AtomicU64,
    errors_5xx: AtomicU64,
    /// Other answers (4xx but 429).
    other: AtomicU64,
    /// No answer: connection refused or reset, timed out, body cut off.
    failed: AtomicU64,
    /// What the answers that were not 2xx or 429 were, and the transport errors.
    kinds: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn note(&self, kind: String) {
        *self
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }
}

/// What one flood measured.
struct FloodRun {
    seconds: f64,
    tried: u64,
    ok: u64,
    throttled: u64,
    errors_5xx: u64,
    other: u64,
    failed: u64,
    kinds: BTreeMap<String, u64>,
    system_requests: usize,
    system_failed: u64,
    system_failures: BTreeMap<String, u64>,
    system_p50_ms: f64,
    system_p99_ms: f64,
    system_max_ms: f64,
}

impl FloodRun {
    fn print(&self, name: &str) {
        println!(
            "{name}: {FLOOD_CLIENTS} clients, {:.0} s: {} requests, {} 2xx, {} 429, {} 5xx, \
             {} other answers, {} without answer{}; system clients: {} requests, p50 {:.1} ms, \
             p99 {:.1} ms, max {:.1} ms, {} failed{}",
            self.seconds,
            self.tried,
            self.ok,
            self.throttled,
            self.errors_5xx,
            self.other,
            self.failed,
            if self.kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", breakdown(&self.kinds))
            },
            self.system_requests,
            self.system_p50_ms,
            self.system_p99_ms,
            self.system_max_ms,
            self.system_failed,
            if self.system_failures.is_empty() {
                String::new()
            } else {
                format!(" ({})", breakdown(&self.system_failures))
            },
        );
    }
}

/// A master with `limits`, flooded for `seconds` while the system's clients are timed.
async fn flood(limits: &[&str], seconds: u64) -> anyhow::Result<FloodRun> {
    let mut extra_args = api_only();
    extra_args.extend(limits.iter().map(|l| l.to_string()));
    let master = Master::start(MasterOptions {
        extra_args,
        ..Default::default()
    })?;
    let admin = master.http();
    let base = master.server_url().to_owned();
    for namespace in ["flood", "seed"] {
        post(
            &admin,
            &format!("{base}/api/v1/namespaces"),
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )
        .await?;
    }
    for i in 0..SEED_CONFIGMAPS {
        post(
            &admin,
            &format!("{base}/api/v1/namespaces/seed/configmaps"),
            &configmap(&format!("seed-{i}"), 512),
        )
        .await?;
    }
    post(
        &admin,
        &format!("{base}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "flooder"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "flooder"}]}),
    )
    .await?;
    // The node's own objects, made by the admin as a kubelet's registration would.
    post(
        &admin,
        &format!("{base}/api/v1/nodes"),
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
    )
    .await?;
    post(
        &admin,
        &format!("{base}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"),
        &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}),
    )
    .await?;
    let (cert, key) = master.client_certificate("system:node:n1", &["system:nodes"])?;
    let node = master.http_with_certificate(&cert, &key)?;
    let (cert, key) = master.client_certificate("system:kube-scheduler", &[])?;
    let scheduler = master.http_with_certificate(&cert, &key)?;
    // One client (one connection) per flooding client, as 2,000 processes would have.
    let (cert, key) = master.client_certificate("flooder", &[])?;
    let flooders = (0..FLOOD_CLIENTS)
        .map(|_| master.http_with_certificate(&cert, &key))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let flood: Vec<_> = flooders
        .into_iter()
        .enumerate()
        .map(|(client, http)| {
            tokio::spawn(flood_client(
                http,
                base.clone(),
                client,
                tally.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let system = system_clients(node, scheduler, base, stop.clone());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let system = tokio::task::spawn_blocking(move || system.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the system clients' thread panicked"))??;
    // Requests under way when the flood stops still count.
    let joined = tokio::time::timeout(CLIENT_TIMEOUT, futures::future::join_all(flood)).await;
    anyhow::ensure!(joined.is_ok(), "flood clients still busy after the stop");
    let seconds = started.elapsed().as_secs_f64();

    let mut latencies = system.latencies_ms;
    latencies.sort_by(f64::total_cmp);
    let count = |n: &AtomicU64| n.load(Ordering::Relaxed);
    Ok(FloodRun {
        seconds,
        tried: count(&tally.tried),
        ok: count(&tally.ok),
        throttled: count(&tally.throttled),
        errors_5xx: count(&tally.errors_5xx),
        other: count(&tally.other),
        failed: count(&tally.failed),
        kinds: std::mem::take(&mut *tally.kinds.lock().unwrap_or_else(|e| e.into_inner())),
        system_requests: latencies.len() + system.failed as usize,
        system_failed: system.failed,
        system_failures: system.failures,
        system_p50_ms: percentile(&latencies, 0.5),
        system_p99_ms: percentile(&latencies, 0.99),
        system_max_ms: latencies.last().copied().unwrap_or(f64::NAN),
    })
}

/// One flooding client: creates, gets and lists until `stop`, waiting out 429s.
async fn flood_client(
    http: reqwest::Client,
    base: String,
    client: usize,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let request = match (client + i) % 4 {
            0 | 2 => http
                .post(format!("{base}/api/v1/namespaces/flood/configmaps"))
                .json(&configmap(&format!("flood-{client}-{i}"), 512)),
            1 => http.get(format!(
                "{base}/api/v1/namespaces/seed/configmaps/seed-{}",
                (client + i) % SEED_CONFIGMAPS
            )),
            _ => http.get(format!("{base}/api/v1/namespaces/seed/configmaps")),
        };
        tally.tried.fetch_add(1, Ordering::Relaxed);
        let answer = match request.timeout(CLIENT_TIMEOUT).send().await {
            Ok(answer) => answer,
            Err(e) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                tally.note(transport_error(&e));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let status = answer.status();
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        if let Err(e) = answer.bytes().await {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            tally.note(transport_error(&e));
            continue;
        }
        if status.is_success() {
            tally.ok.fetch_add(1, Ordering::Relaxed);
        } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            tally.throttled.fetch_add(1, Ordering::Relaxed);
            // As client-go: wait what Retry-After says.
            tokio::time::sleep(Duration::from_secs(retry_after)).await;
        } else {
            if status.is_server_error() {
                tally.errors_5xx.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.other.fetch_add(1, Ordering::Relaxed);
            }
            tally.note(status.as_u16().to_string());
        }
    }
}

/// What the system's clients saw.
struct SystemRun {
    latencies_ms: Vec<f64>,
    failed: u64,
    failures: BTreeMap<String, u64>,
}

/// The node and the scheduler, on a thread and runtime of their own (as separate processes
/// would be: the flood's 2,000 tasks do not delay them in this process), until `stop`.
fn system_clients(
    node: reqwest::Client,
    scheduler: reqwest::Client,
    base: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<SystemRun>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let lease =
                format!("{base}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1");
            let node_object = format!("{base}/api/v1/nodes/n1");
            let nodes = format!("{base}/api/v1/nodes");
            let pods = format!("{base}/api/v1/pods");
            let node_requests = {
                let stop = stop.clone();
                async move {
                    let mut run = SystemRun::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let request = if i.is_multiple_of(2) {
                            // The kubelet's renewal: a merge patch of renewTime.
                            node.patch(&lease)
                                .header("Content-Type", "application/merge-patch+json")
                                .body(json!({"spec": {"renewTime": now_micro_time()}}).to_string())
                        } else {
                            node.get(&node_object)
                        };
                        run.time(request).await;
                    }
                    run
                }
            };
            let scheduler_requests = async move {
                let mut run = SystemRun::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let request = if i.is_multiple_of(2) {
                        scheduler.get(&nodes)
                    } else {
                        scheduler.get(&pods)
                    };
                    run.time(request).await;
                }
                run
            };
            let (mut node_run, scheduler_run) = tokio::join!(node_requests, scheduler_requests);
            node_run.latencies_ms.extend(scheduler_run.latencies_ms);
            node_run.failed += scheduler_run.failed;
            for (kind, n) in scheduler_run.failures {
                *node_run.failures.entry(kind).or_default() += n;
            }
            Ok(node_run)
        })
    })
}

impl SystemRun {
    fn new() -> SystemRun {
        SystemRun {
            latencies_ms: Vec::new(),
            failed: 0,
            failures: BTreeMap::new(),
        }
    }

    /// Sends `request`, times it to the end of its body, and paces the next one.
    async fn time(&mut self, request: reqwest::RequestBuilder) {
        let started = Instant::now();
        let outcome = match request.timeout(CLIENT_TIMEOUT).send().await {
            Ok(answer) if answer.status().is_success() => match answer.bytes().await {
                Ok(_) => Ok(()),
                Err(e) => Err(transport_error(&e)),
            },
            Ok(answer) => Err(answer.status().as_u16().to_string()),
            Err(e) => Err(transport_error(&e)),
        };
        match outcome {
            Ok(()) => self
                .latencies_ms
                .push(started.elapsed().as_secs_f64() * 1000.0),
            Err(kind) => {
                self.failed += 1;
                *self.failures.entry(kind).or_default() += 1;
            }
        }
        tokio::time::sleep(SYSTEM_EVERY.saturating_sub(started.elapsed())).await;
    }
}

// ---- 2. kill -9 under load ----

struct Kill9Run {
    acked: usize,
    lost: usize,
    restart_ms: u128,
}

async fn kill9_under_load() -> anyhow::Result<Kill9Run> {
    let mut master = Master::start(MasterOptions {
        extra_args: api_only(),
        ..Default::default()
    })?;
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps",
        master.server_url()
    );
    let http = master.http();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let name = format!("w{writer}-{i}");
                    let answer = http
                        .post(&url)
                        .json(&configmap(&name, 512))
                        .timeout(CLIENT_TIMEOUT)
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status() == reqwest::StatusCode::CREATED => acked.push(name),
                        // The master is gone: what was answered 201 is all there is.
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(LOAD_BEFORE_FAULT).await;
    master.kill9();
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await?);
    }
    let spawned = Instant::now();
    master.restart()?;
    let restart_ms = spawned.elapsed().as_millis();
    let stored = names(&master.http(), &url).await?;
    let lost = acked.iter().filter(|n| !stored.contains(*n)).count();
    Ok(Kill9Run {
        acked: acked.len(),
        lost,
        restart_ms,
    })
}

// ---- 3. etcd stopped under load ----

struct EtcdRun {
    acked: usize,
    lost: usize,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    error_max_ms: u128,
    /// Every error answer came within the store deadline (and slack).
    prompt: bool,
    /// Writes with no answer at all within `CLIENT_TIMEOUT`.
    unanswered: u64,
    ready_s: f64,
    recover_s: f64,
}

/// One write of the etcd phase.
struct Write {
    sent: Instant,
    answered: Instant,
    /// The name if answered 201, else what the answer was.
    outcome: Result<String, String>,
}

async fn etcd_outage(down: Duration) -> anyhow::Result<EtcdRun> {
    let mut etcd = tokio::task::spawn_blocking(Etcd::start).await??;
    let master = Master::start(MasterOptions {
        etcd_endpoints: vec![etcd.endpoint()],
        extra_args: api_only(),
        ..Default::default()
    })?;
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps",
        master.server_url()
    );
    let http = master.http();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Vec::<Write>::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (http, url, stop, writes) =
                (http.clone(), url.clone(), stop.clone(), writes.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let name = format!("e{writer}-{i}");
                    let sent = Instant::now();
                    let answer = http
                        .post(&url)
                        .json(&configmap(&name, 512))
                        .timeout(CLIENT_TIMEOUT)
                        .send()
                        .await;
                    let outcome = match answer {
                        Ok(r) if r.status() == reqwest::StatusCode::CREATED => Ok(name),
                        Ok(r) => Err(r.status().as_u16().to_string()),
                        Err(e) => Err(transport_error(&e)),
                    };
                    let failed = outcome.is_err();
                    writes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Write {
                            sent,
                            answered: Instant::now(),
                            outcome,
                        });
                    if failed {
                        tokio::time::sleep(WRITER_BACKOFF).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(LOAD_BEFORE_FAULT).await;
    let stopped = Instant::now();
    etcd.stop();
    tokio::time::sleep(down).await;
    let resumed = Instant::now();
    let _etcd = tokio::task::spawn_blocking(move || etcd.resume().map(|()| etcd)).await??;
    let ready_s = resumed.elapsed().as_secs_f64();
    // Until a write is acknowledged after etcd's restart (or a minute passes).
    let first_ok = |writes: &[Write]| {
        writes
            .iter()
            .filter(|w| w.outcome.is_ok() && w.answered > resumed)
            .map(|w| w.answered)
            .min()
    };
    let recovered = loop {
        if let Some(at) = first_ok(&writes.lock().unwrap_or_else(|e| e.into_inner())) {
            break Some(at);
        }
        if resumed.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    futures::future::join_all(writers).await;
    let writes = std::mem::take(&mut *writes.lock().unwrap_or_else(|e| e.into_inner()));
    let recovered = recovered.ok_or_else(|| {
        anyhow::anyhow!("no write was acknowledged within 60 s of etcd's restart")
    })?;

    // The outage as writers saw it: answers from etcd's stop to the first acknowledged write.
    let mut errors = 0;
    let mut error_kinds = BTreeMap::new();
    let mut error_max = Duration::ZERO;
    let mut unanswered = 0;
    for write in &writes {
        if let Err(kind) = &write.outcome
            && write.answered >= stopped
            && write.answered <= recovered
        {
            if kind.starts_with("timed out") {
                unanswered += 1;
            } else {
                errors += 1;
                error_max = error_max.max(write.answered - write.sent);
            }
            *error_kinds.entry(kind.clone()).or_default() += 1;
        }
    }
    let acked: Vec<&String> = writes
        .iter()
        .filter_map(|w| w.outcome.as_ref().ok())
        .collect();
    let stored = names(&master.http(), &url).await?;
    let lost = acked.iter().filter(|n| !stored.contains(**n)).count();
    Ok(EtcdRun {
        acked: acked.len(),
        lost,
        errors,
        error_kinds,
        error_max_ms: error_max.as_millis(),
        prompt: unanswered == 0 && error_max <= ETCD_DEADLINE + Duration::from_secs(1),
        unanswered,
        ready_s,
        recover_s: (recovered - resumed).as_secs_f64(),
    })
}

// ---- Helpers ----

/// The API server alone: no scheduler or controllers writing beside the load.
fn api_only() -> Vec<String> {
    vec![
        String::from("--scheduler=false"),
        String::from("--controllers="),
    ]
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// 2,000 connections need as many descriptors here and in the master (which inherits the
/// limit): the soft limit is raised toward the hard one if it is lower than `wanted`.
fn raise_open_files_limit(wanted: u64) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        anyhow::ensure!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0,
            "getrlimit: {}",
            std::io::Error::last_os_error()
        );
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            anyhow::ensure!(
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0,
                "setrlimit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    anyhow::ensure!(
        limit.rlim_cur >= wanted,
        "open files limited to {} (hard limit), {wanted} wanted",
        limit.rlim_cur
    );
    Ok(())
}

fn configmap(name: &str, size: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"v": "x".repeat(size)}})
}

/// POSTs `body`, which must be answered 201.
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<()> {
    let answer = http.post(url).json(body).send().await?;
    let status = answer.status();
    anyhow::ensure!(
        status == reqwest::StatusCode::CREATED,
        "POST {url}: {status} {}",
        answer.text().await.unwrap_or_default()
    );
    Ok(())
}

/// The names of every object a list at `url` holds, page by page.
async fn names(http: &reqwest::Client, url: &str) -> anyhow::Result<HashSet<String>> {
    let mut names = HashSet::new();
    let mut next = String::new();
    loop {
        let answer = http
            .get(url)
            .query(&[("limit", "500"), ("continue", next.as_str())])
            .send()
            .await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "GET {url}: {}",
            answer.status()
        );
        let page: Value = answer.json().await?;
        for item in page["items"].as_array().into_iter().flatten() {
            if let Some(name) = item["metadata"]["name"].as_str() {
                names.insert(name.to_owned());
            }
        }
        match page["metadata"]["continue"].as_str() {
            Some(token) if !token.is_empty() => next = token.to_owned(),
            _ => return Ok(names),
        }
    }
}

/// A transport error in a few words, for the tallies.
fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        String::from("timed out")
    } else if e.is_connect() {
        String::from("connect failed")
    } else if e.is_body() || e.is_decode() {
        String::from("body cut off")
    } else {
        String::from("connection failed")
    }
}

/// `kind: n, kind: n` in one line.
fn breakdown(kinds: &BTreeMap<String, u64>) -> String {
    kinds
        .iter()
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Now as an RFC 3339 MicroTime.
fn now_micro_time() -> String {
    k8s_openapi::chrono::Utc::now()
        .to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Micros, true)
}
