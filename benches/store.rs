//! Store write benchmarks: the embedded store (redb, group commit) beside a real etcd.
//!
//! Criterion measures one create's latency and a burst of 1,000 concurrent creates (which the
//! embedded store commits in a few group commits). Then a fixed-time load — 64 tasks creating
//! keys as fast as acknowledged — gives throughput and latency percentiles, and the last line
//! is `RESULT store ...` with both backends side by side and their ratio. etcd runs only when
//! `/usr/bin/etcd` exists. `STORE_BENCH_SECONDS` sets the load's duration (default 5).
//!
//! First, recovery after a crash: a child process fills an embedded store with
//! `REOPEN_KEYS` keys and dies (`_exit`, the file never closed, as kill -9 leaves it); the
//! time to open that store (redb repairs it) is set beside the time to open it again after a
//! clean close, and beside etcd's time to be healthy again after SIGKILL with as many keys:
//! `RESULT store_reopen ...`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use skiff::etcd::Etcd;
use skiff_master::store::Store;
use skiff_master::store::embedded::EmbeddedStore;
use skiff_master::store::etcd::EtcdStore;
use tokio::runtime::Runtime;

/// Concurrent creates per burst.
const BURST: usize = 1_000;
/// Concurrent clients of the throughput load.
const CLIENTS: usize = 64;

/// Keys in the store that is crashed and opened again.
const REOPEN_KEYS: usize = 100_000;

/// Fills `store` with [`REOPEN_KEYS`] keys from `CLIENTS` tasks.
async fn fill(store: Arc<dyn Store>) {
    let keys = Arc::new(Keys(AtomicU64::new(0)));
    let per_client = REOPEN_KEYS / CLIENTS;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (store, keys) = (store.clone(), keys.clone());
            tokio::spawn(async move {
                for _ in 0..per_client {
                    store.create(&keys.next(), pod_value()).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Opening an embedded store after a crash and after a clean close, and etcd's restart after
/// SIGKILL, with [`REOPEN_KEYS`] keys: (crash ms, clean ms, etcd ms). Runs before any thread
/// is started: it forks.
fn reopen_times() -> (f64, f64, Option<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crashed");
    // SAFETY: no other thread exists yet in this process; the child only runs its own
    // runtime and leaves with `_exit`.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path).unwrap());
        runtime.block_on(fill(store.clone()));
        // Dies with the file open, as kill -9 leaves it.
        // SAFETY: ends this (child) process at once; nothing runs after it.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    let started = Instant::now();
    let store = EmbeddedStore::open(&path).unwrap();
    let crash_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(store);
    let started = Instant::now();
    let store = EmbeddedStore::open(&path).unwrap();
    let clean_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(store);
    let etcd_ms = Path::new("/usr/bin/etcd").exists().then(|| {
        let mut server = Etcd::start().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(
            runtime
                .block_on(EtcdStore::connect(&[server.endpoint()]))
                .unwrap(),
        );
        runtime.block_on(fill(store));
        server.stop();
        let started = Instant::now();
        server.resume().unwrap();
        started.elapsed().as_secs_f64() * 1000.0
    });
    (crash_ms, clean_ms, etcd_ms)
}

/// A value the size of a small pod's JSON.
fn pod_value() -> Bytes {
    Bytes::from(vec![b'x'; 1_500])
}

/// Unique key numbers across all iterations of one backend.
struct Keys(AtomicU64);

impl Keys {
    fn next(&self) -> String {
        format!(
            "/registry/pods/bench/pod-{:09}",
            self.0.fetch_add(1, Ordering::Relaxed)
        )
    }
}

fn bench_backend(c: &mut Criterion, runtime: &Runtime, name: &str, store: Arc<dyn Store>) {
    let keys = Arc::new(Keys(AtomicU64::new(0)));
    let value = pod_value();
    let mut group = c.benchmark_group(format!("store/{name}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    group.throughput(Throughput::Elements(1));
    group.bench_function("create", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    store.create(&keys.next(), value.clone()).await.unwrap();
                }
                started.elapsed()
            })
        })
    });

    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function(format!("create_{BURST}_concurrent"), |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..BURST)
                        .map(|_| {
                            let store = store.clone();
                            let key = keys.next();
                            let value = value.clone();
                            tokio::spawn(async move { store.create(&key, value).await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap().unwrap();
                    }
                    total += started.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

/// What the fixed-time load measured.
struct Load {
    creates_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `CLIENTS` tasks creating distinct keys for `duration`, each waiting for its acknowledgement.
fn load(runtime: &Runtime, store: Arc<dyn Store>, duration: Duration) -> Load {
    runtime.block_on(async {
        let value = pod_value();
        let started = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let store = store.clone();
                let value = value.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = 0u64;
                    while started.elapsed() < duration {
                        let key = format!("/registry/pods/load/c{client:02}-{i:09}");
                        i += 1;
                        let sent = Instant::now();
                        store.create(&key, value.clone()).await.unwrap();
                        latencies.push(sent.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        let percentile = |p: f64| {
            let index = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
            latencies[index].as_secs_f64() * 1e3
        };
        Load {
            creates_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
        }
    })
}

fn main() {
    let (crash_ms, clean_ms, etcd_ms) = reopen_times();
    let mut criterion = Criterion::default().configure_from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let seconds = std::env::var("STORE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);

    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&dir.path().join("bench")).unwrap());
    bench_backend(&mut criterion, &runtime, "embedded", embedded);
    // A fresh store for the load, so criterion's keys do not weigh on it.
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("load")).unwrap());
    let embedded = load(&runtime, embedded, duration);

    let etcd = if Path::new("/usr/bin/etcd").exists() {
        let server = Etcd::start().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            runtime
                .block_on(EtcdStore::connect(&[server.endpoint()]))
                .unwrap(),
        );
        bench_backend(&mut criterion, &runtime, "etcd", store.clone());
        let server2 = Etcd::start().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            runtime
                .block_on(EtcdStore::connect(&[server2.endpoint()]))
                .unwrap(),
        );
        let result = load(&runtime, store, duration);
        drop(server);
        drop(server2);
        Some(result)
    } else {
        eprintln!("etcd not installed (run `cargo xtask setup`): embedded store only");
        None
    };
    criterion.final_summary();

    let mut reopen = format!(
        "RESULT store_reopen keys={REOPEN_KEYS} embedded_after_crash_ms={crash_ms:.0} \
         embedded_after_clean_close_ms={clean_ms:.0} crash_vs_clean={:.2}",
        crash_ms / clean_ms
    );
    if let Some(etcd_ms) = etcd_ms {
        reopen += &format!(
            " etcd_after_sigkill_ms={etcd_ms:.0} embedded_crash_vs_etcd={:.2}",
            crash_ms / etcd_ms
        );
    }
    println!("{reopen}");
    let mut line = format!(
        "RESULT store clients={CLIENTS} seconds={seconds} embedded_creates_per_s={:.0} \
         embedded_p50_ms={:.2} embedded_p99_ms={:.2}",
        embedded.creates_per_s, embedded.p50_ms, embedded.p99_ms
    );
    if let Some(etcd) = etcd {
        line += &format!(
            " etcd_creates_per_s={:.0} etcd_p50_ms={:.2} etcd_p99_ms={:.2} \
             embedded_vs_etcd_throughput={:.2}",
            etcd.creates_per_s,
            etcd.p50_ms,
            etcd.p99_ms,
            embedded.creates_per_s / etcd.creates_per_s
        );
    }
    println!("{line}");
}
