//! One scheduling decision — every filter over every node, every feasible node scored — at
//! 500, 5,000 and 50,000 heterogeneous nodes, without a cluster: the decision is a pure
//! function over the scheduler's cache.
//!
//! The nodes are mixed: six sizes (2 to 64 CPUs), 10% tainted (three different taints), a
//! zone and an instance-type label each, 5% cordoned or not Ready, and some nearly full
//! (already running pods that leave a few hundred millicores). Three pods are decided: a plain
//! one, one with a node selector and a toleration, and a replica of a Service whose other
//! replicas already run on a thousand nodes (so spreading is scored too).
//!
//! Last line: `RESULT schedule_one nodes=... plain_us=... selector_us=... spread_us=...`
//! with the mean per decision at each size (goal: <= 20 us at 5,000 nodes, <= 250 us at
//! 50,000).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use skiff_master::scheduler::cache::{NodeCache, ServiceInfo};
use skiff_master::scheduler::node_info::{NodeInfo, Readiness};
use skiff_master::scheduler::pod_info::{PodInfo, Resources, Taint, TaintEffect, Toleration};
use skiff_master::scheduler::schedule_one::{Scratch, schedule_one};
use skiff_master::scheduler::score::ScoreWeights;

const SIZES: [usize; 3] = [500, 5_000, 50_000];
const GIB: i64 = 1 << 30;

/// A small deterministic generator, so every run builds the same cluster.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn pod(uid: &str, milli_cpu: i64, memory: i64) -> PodInfo {
    PodInfo {
        uid: uid.to_string(),
        namespace: "bench".to_string(),
        name: uid.to_string(),
        scheduler_name: "default-scheduler".to_string(),
        requests: Resources {
            milli_cpu,
            memory,
            scalar: Vec::new(),
        },
        non_zero_milli_cpu: milli_cpu.max(100),
        non_zero_memory: memory.max(200 << 20),
        ..Default::default()
    }
}

/// A heterogeneous cluster of `n` nodes with pods on them.
fn cluster(n: usize) -> NodeCache {
    let mut rng = Rng(0x5eed_1234_abcd_0001 ^ n as u64);
    let mut cache = NodeCache::new();
    cache.apply_service(ServiceInfo {
        namespace: "bench".to_string(),
        name: "web".to_string(),
        selector: BTreeMap::from([("app".to_string(), "web".to_string())]),
    });
    let sizes = [2i64, 4, 8, 16, 32, 64];
    let taints = [
        ("dedicated", "gpu"),
        ("dedicated", "infra"),
        ("spot", "true"),
    ];
    for i in 0..n {
        let cpus = sizes[rng.below(sizes.len() as u64) as usize];
        let name = format!("node-{i:05}");
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.clone()),
            (
                "topology.kubernetes.io/zone".to_string(),
                format!("zone-{}", rng.below(3)),
            ),
            (
                "node.kubernetes.io/instance-type".to_string(),
                format!("m.{cpus}xlarge"),
            ),
        ]);
        if rng.below(4) == 0 {
            labels.insert("disktype".to_string(), "ssd".to_string());
        }
        let mut node = NodeInfo {
            name: name.clone(),
            allocatable: Resources {
                milli_cpu: cpus * 1000 - 100,
                memory: cpus * 4 * GIB - GIB / 2,
                scalar: Vec::new(),
            },
            allocatable_pods: 110,
            labels,
            taints: Vec::new(),
            unschedulable: false,
            readiness: Readiness::Ready,
        };
        if rng.below(10) == 0 {
            let (key, value) = taints[rng.below(taints.len() as u64) as usize];
            node.taints.push(Taint {
                key: key.to_string(),
                value: value.to_string(),
                effect: TaintEffect::NoSchedule,
            });
        }
        match rng.below(40) {
            0 => node.unschedulable = true,
            1 => node.readiness = Readiness::NotReady,
            _ => {}
        }
        let alloc_cpu = node.allocatable.milli_cpu;
        let alloc_mem = node.allocatable.memory;
        cache.apply_node(node);
        // Some nodes nearly full, the rest partly used.
        let fill = if rng.below(10) == 0 {
            0.97
        } else {
            rng.below(60) as f64 / 100.0
        };
        let used_cpu = (alloc_cpu as f64 * fill) as i64;
        let pods = 1 + rng.below(8) as i64;
        for p in 0..pods {
            let mut running = pod(
                &format!("{name}-p{p}"),
                used_cpu / pods,
                (alloc_mem as f64 * fill) as i64 / pods,
            );
            running.node_name = Some(name.clone());
            if i % (n / 1000).max(1) == 0 && p == 0 {
                running.labels = [("app", "web")].into_iter().collect();
            }
            cache.apply_pod(Arc::new(running));
        }
    }
    cache
}

/// The three pods decided at each size.
fn pods() -> [(&'static str, PodInfo); 3] {
    let plain = pod("plain", 500, GIB);
    let mut selector = pod("selector", 1000, 2 * GIB);
    selector
        .node_selector
        .push(("disktype".to_string(), "ssd".to_string()));
    selector.tolerations.push(Toleration {
        key: "spot".to_string(),
        exists: true,
        value: String::new(),
        effect: Some(TaintEffect::NoSchedule),
    });
    let mut spread = pod("spread", 250, GIB / 2);
    spread.labels = [("app", "web")].into_iter().collect();
    [("plain", plain), ("selector", selector), ("spread", spread)]
}

/// Mean time of one decision, measured outside criterion for the RESULT line.
fn mean_decision(cache: &NodeCache, pod: &PodInfo, weights: &ScoreWeights) -> Duration {
    let mut scratch = Scratch::default();
    let budget = Duration::from_millis(500);
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < budget || n < 10 {
        let d = schedule_one(cache, pod, weights, &mut scratch);
        assert!(d.is_ok(), "the bench pods fit somewhere");
        black_box(d.ok());
        n += 1;
    }
    started.elapsed() / n
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let weights = ScoreWeights::default();
    let mut results = Vec::new();
    for n in SIZES {
        let cache = cluster(n);
        let mut group = criterion.benchmark_group(format!("schedule_one/{n}_nodes"));
        for (name, pod) in pods() {
            let mut scratch = Scratch::default();
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| black_box(schedule_one(&cache, &pod, &weights, &mut scratch).ok()))
            });
        }
        group.finish();
        let means: Vec<(&str, Duration)> = pods()
            .iter()
            .map(|(name, pod)| (*name, mean_decision(&cache, pod, &weights)))
            .collect();
        results.push((n, means));
    }
    criterion.final_summary();
    for (n, means) in &results {
        let fields: Vec<String> = means
            .iter()
            .map(|(name, d)| format!("{name}_us={:.1}", d.as_secs_f64() * 1e6))
            .collect();
        println!("RESULT schedule_one nodes={n} {}", fields.join(" "));
    }
    let summary: Vec<String> = results
        .iter()
        .map(|(n, means)| {
            let worst = means.iter().map(|(_, d)| *d).max().unwrap_or_default();
            format!("nodes{n}_us={:.1}", worst.as_secs_f64() * 1e6)
        })
        .collect();
    println!(
        "RESULT schedule_one {} goal_5000_us=20 goal_50000_us=250",
        summary.join(" ")
    );
}
