//! `cargo xtask bench proxy`: Service load balancing in eBPF and in kube-proxy's iptables
//! mode against connecting straight to the pod, in one run, for S = 100, 1,000 and 10,000
//! Services of 10 endpoints each.
//!
//! The backends are 10 TCP servers (ports 8080-8089) in a network namespace the benchmark
//! makes (`skiff-bench-proxy`, reached over a veth: 10.201.0.1 on the host, 10.201.0.2
//! inside), so every connection stays on this machine. The Services get ClusterIPs in
//! 10.101.0.0/18, routed `unreachable` for the eBPF measurements (the socket programs
//! translate before the route lookup) and into the bench's own veth for the iptables ones
//! (nat OUTPUT's DNAT comes after it; an untranslated packet ends in the bench's namespace);
//! every address sent to is checked with `ip route get` first. For each S, one mode's
//! programs or rules are removed before the other's are measured:
//! 1. short TCP connections per second (connect, a small request and answer, close) and their
//!    p99, to the last Service's ClusterIP through the eBPF programs, through the iptables
//!    rules, and straight to the pods with neither;
//! 2. the time to program all S x 10 (eBPF: the agent's table and map writes; iptables: the
//!    agent's full sync, one `iptables-restore`);
//! 3. the time for one endpoint change to take effect (its map writes; its partial sync).
//!
//! Last line: `RESULT proxy services=10000 ebpf_vs_direct=... iptables_vs_direct=...
//! ebpf_sync_ms=... iptables_sync_ms=... ebpf_update_ms=... iptables_update_ms=...
//! ebpf_conns_per_s=... iptables_conns_per_s=... direct_conns_per_s=... ebpf_p99_ms=...
//! iptables_p99_ms=... direct_p99_ms=...`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ipnet::Ipv4Net;
use skiff::netns::{NetworkNamespace, ip};
use skiff_node::proxy::datapath::{self, Datapath, MapSizes};
use skiff_node::proxy::frontends::{BackendAddress, Balancing, Frontend, Protocol};
use skiff_node::proxy::iptables::{Rules, Wanted};
use skiff_node::proxy::iptables_restore;
use skiff_node::proxy::route;
use skiff_node::proxy::table::{ServiceName, Table};

const NETNS: &str = "skiff-bench-proxy";
const HOST_SIDE: &str = "skbp0";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
const SERVICE_CIDR: &str = "10.101.0.0/18";
const FIRST_PORT: u16 = 8080;
const ENDPOINTS: u16 = 10;
/// The node name the bench's maps are pinned under, and its iptables chains named after.
const NODE: &str = "bench-proxy";
/// The cluster CIDR of the iptables rules: the host's own traffic is masqueraded, as
/// kube-proxy does it for a client on the node.
const CLUSTER_CIDR: &str = "10.244.0.0/16";

#[derive(Parser, Debug)]
#[command(about = "eBPF and iptables Service load balancing vs connecting straight to the pod")]
struct Args {
    /// Service counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100, 1_000, 10_000])]
    services: Vec<u32>,
    /// Seconds of connections per measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Concurrent connecting clients.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.services.iter().all(|s| (1..=16_000).contains(s)),
        "--services: 1 to 16,000 each (the Service CIDR is a /18)"
    );
    // The backends' namespace, joined by the veth pair skbp0/skbp1 on 10.201.0.0/24.
    let mut netns = NetworkNamespace::create(NETNS)?;
    netns.link("skbp", 201)?;
    let stop = Arc::new(AtomicBool::new(false));
    let servers = serve_in_netns(stop.clone())?;
    let cidr: Ipv4Net = SERVICE_CIDR.parse()?;
    route::keep_local(cidr)?;
    // Whatever an earlier, killed run left.
    datapath::cleanup(NODE)?;
    iptables_restore::remove_rules(NODE)?;
    let outcome = measure_all(&args, cidr);
    stop.store(true, Ordering::Relaxed);
    let _ = TcpStream::connect_timeout(
        &SocketAddr::from((POD_IP, FIRST_PORT)),
        Duration::from_millis(200),
    );
    drop(servers);
    datapath::cleanup(NODE)?;
    iptables_restore::remove_rules(NODE)?;
    // Back to `unreachable`, should the iptables phase have stopped half way.
    route::keep_local(cidr)?;
    let results = outcome?;
    for r in &results {
        let vs = |rate: &Rate| rate.per_s / r.direct.per_s.max(f64::MIN_POSITIVE);
        println!(
            "services={}: eBPF {:.0} conn/s (p99 {:.2} ms, {:.2}x), iptables {:.0} conn/s (p99 {:.2} ms, {:.2}x), direct {:.0} conn/s (p99 {:.2} ms); programmed: eBPF {:.1} ms, iptables {:.1} ms; one endpoint change: eBPF {:.3} ms, iptables {:.1} ms",
            r.services,
            r.ebpf.per_s,
            r.ebpf.p99_ms,
            vs(&r.ebpf),
            r.iptables.per_s,
            r.iptables.p99_ms,
            vs(&r.iptables),
            r.direct.per_s,
            r.direct.p99_ms,
            r.ebpf_sync_ms,
            r.iptables_sync_ms,
            r.ebpf_update_ms,
            r.iptables_update_ms
        );
    }
    let last = results.last().context("no measurement")?;
    let vs = |rate: &Rate| rate.per_s / last.direct.per_s.max(f64::MIN_POSITIVE);
    println!(
        "RESULT proxy services={} ebpf_vs_direct={:.2} iptables_vs_direct={:.2} ebpf_sync_ms={:.1} iptables_sync_ms={:.1} ebpf_update_ms={:.3} iptables_update_ms={:.1} ebpf_conns_per_s={:.0} iptables_conns_per_s={:.0} direct_conns_per_s={:.0} ebpf_p99_ms={:.2} iptables_p99_ms={:.2} direct_p99_ms={:.2}",
        last.services,
        vs(&last.ebpf),
        vs(&last.iptables),
        last.ebpf_sync_ms,
        last.iptables_sync_ms,
        last.ebpf_update_ms,
        last.iptables_update_ms,
        last.ebpf.per_s,
        last.iptables.per_s,
        last.direct.per_s,
        last.ebpf.p99_ms,
        last.iptables.p99_ms,
        last.direct.p99_ms
    );
    Ok(())
}

struct Measured {
    services: u32,
    ebpf: Rate,
    iptables: Rate,
    direct: Rate,
    ebpf_sync_ms: f64,
    ebpf_update_ms: f64,
    iptables_sync_ms: f64,
    iptables_update_ms: f64,
}

/// The last Service's frontends with one endpoint moved to another port: an endpoint change.
fn moved(frontends: &Wanted) -> Wanted {
    let mut moved = frontends.clone();
    for balancing in moved.values_mut() {
        balancing.backends[0].port = FIRST_PORT + ENDPOINTS - 1;
        balancing.backends.sort();
        balancing.backends.dedup();
    }
    moved
}

/// The iptables measurements for `services`: full sync, one endpoint change, connections to
/// `target`. The Service CIDR is routed into the bench's veth meanwhile, and `unreachable`
/// again (rules removed) after.
fn measure_iptables(
    args: &Args,
    cidr: Ipv4Net,
    services: &[(ServiceName, Wanted)],
    target: Ipv4Addr,
) -> anyhow::Result<(f64, f64, Vec<Rate>)> {
    // The route first, to the bench's own namespace: no rule is written while the CIDR
    // could leave the machine.
    ip(&[
        "route",
        "replace",
        &cidr.to_string(),
        "dev",
        HOST_SIDE,
        "src",
        &HOST_IP.to_string(),
    ])?;
    let outcome = (|| -> anyhow::Result<(f64, f64, Vec<Rate>)> {
        let mut rules = Rules::new(NODE, CLUSTER_CIDR.parse()?, cidr);
        let started = Instant::now();
        let live = iptables_restore::live_chains(rules.chains())?;
        for input in rules.full_sync(services.iter().cloned(), &live) {
            iptables_restore::restore(&input)?;
        }
        let sync_ms = started.elapsed().as_secs_f64() * 1000.0;
        iptables_restore::ensure_jumps(rules.chains())?;
        let (name, frontends) = services.last().context("no Service")?;
        let moved = moved(frontends);
        let mut update_ms = f64::MAX;
        for wanted in [&moved, frontends, &moved, frontends] {
            let started = Instant::now();
            let input = rules
                .update([(name.clone(), wanted.clone())])
                .context("an endpoint change writes rules")?;
            iptables_restore::restore(&input)?;
            update_ms = update_ms.min(started.elapsed().as_secs_f64() * 1000.0);
        }
        skiff::network::ensure_stays_local(target)?;
        let rates = (0..2)
            .map(|_| connections(&[SocketAddr::from((target, 80))], args))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((sync_ms, update_ms, rates))
    })();
    iptables_restore::remove_rules(NODE)?;
    route::keep_local(cidr)?;
    outcome
}

fn measure_all(args: &Args, cidr: Ipv4Net) -> anyhow::Result<Vec<Measured>> {
    let sizes = MapSizes::default();
    let mut results = Vec::new();
    for &count in &args.services {
        let mut datapath = Datapath::load(NODE, sizes, &[])?;
        let mut table = Table::new(sizes.services as usize, sizes.backends as usize);
        let services = services(cidr, count);
        let started = Instant::now();
        for (name, frontends) in &services {
            let (writes, errors) = table.update(name, frontends);
            anyhow::ensure!(errors.is_empty(), "{errors:?}");
            datapath.apply(&writes)?;
        }
        let ebpf_sync_ms = started.elapsed().as_secs_f64() * 1000.0;
        // One endpoint of the last Service moves to another port and back, timed each way.
        let (name, frontends) = services.last().context("no Service")?;
        let moved = moved(frontends);
        let mut ebpf_update_ms = f64::MAX;
        for wanted in [&moved, frontends, &moved, frontends] {
            let started = Instant::now();
            let (writes, _) = table.update(name, wanted);
            datapath.apply(&writes)?;
            ebpf_update_ms = ebpf_update_ms.min(started.elapsed().as_secs_f64() * 1000.0);
        }
        let target = frontends.keys().next().context("a frontend")?.address;
        skiff::network::ensure_stays_local(target)?;
        // Straight to the pods, spread over the same 10 endpoints.
        let pods: Vec<SocketAddr> = (0..ENDPOINTS)
            .map(|i| SocketAddr::from((POD_IP, FIRST_PORT + i)))
            .collect();
        // Alternate, so a change in the machine's load touches both alike.
        let mut ebpf = Vec::new();
        let mut direct = Vec::new();
        for _ in 0..2 {
            ebpf.push(connections(&[SocketAddr::from((target, 80))], args)?);
            direct.push(connections(&pods, args)?);
        }
        drop(datapath);
        datapath::cleanup(NODE)?;
        // The eBPF programs are gone before the iptables rules come, and the other way round.
        let (iptables_sync_ms, iptables_update_ms, iptables) =
            measure_iptables(args, cidr, &services, target)?;
        direct.push(connections(&pods, args)?);
        results.push(Measured {
            services: count,
            ebpf: Rate::combine(&ebpf),
            iptables: Rate::combine(&iptables),
            direct: Rate::combine(&direct),
            ebpf_sync_ms,
            ebpf_update_ms,
            iptables_sync_ms,
            iptables_update_ms,
        });
    }
    Ok(results)
}

/// `count` Services `bench/svc-<i>`, ClusterIP the i-th address of `cidr` (from .1), port 80,
/// each with the 10 endpoints.
fn services(cidr: Ipv4Net, count: u32) -> Vec<(ServiceName, Wanted)> {
    let base = u32::from(cidr.network());
    let backends: Vec<BackendAddress> = (0..ENDPOINTS)
        .map(|i| BackendAddress {
            address: POD_IP,
            port: FIRST_PORT + i,
            protocol: Protocol::Tcp,
        })
        .collect();
    (1..=count)
        .map(|i| {
            let frontend = Frontend {
                address: Ipv4Addr::from(base + i),
                port: 80,
                protocol: Protocol::Tcp,
            };
            let balancing = Balancing {
                backends: backends.clone(),
                affinity_timeout_s: None,
                node_port: false,
            };
            (
                (String::from("bench"), format!("svc-{i}")),
                BTreeMap::from([(frontend, balancing)]),
            )
        })
        .collect()
}

struct Rate {
    per_s: f64,
    p99_ms: f64,
}

impl Rate {
    fn combine(rates: &[Rate]) -> Rate {
        let n = rates.len().max(1) as f64;
        Rate {
            per_s: rates.iter().map(|r| r.per_s).sum::<f64>() / n,
            p99_ms: rates.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
        }
    }
}

/// Short connections to `targets` in turn from `args.clients` threads for `args.seconds`.
fn connections(targets: &[SocketAddr], args: &Args) -> anyhow::Result<Rate> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let threads: Vec<_> = (0..args.clients)
        .map(|client| {
            let targets = targets.to_vec();
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut latencies = Vec::new();
                let mut buf = [0u8; 64];
                for to in targets.iter().cycle().skip(client) {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let to = *to;
                    let started = Instant::now();
                    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                        .with_context(|| format!("connecting to {to}"))?;
                    stream.write_all(b"ping\n")?;
                    let mut got = 0;
                    while got < 5 {
                        let n = stream.read(&mut buf[got..])?;
                        if n == 0 {
                            bail!("{to} closed before answering");
                        }
                        got += n;
                    }
                    drop(stream);
                    latencies.push(started.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for thread in threads {
        latencies.extend(
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??,
        );
    }
    anyhow::ensure!(
        !latencies.is_empty(),
        "no connection to {targets:?} completed"
    );
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    Ok(Rate {
        per_s: latencies.len() as f64 / args.seconds as f64,
        p99_ms: p99.as_secs_f64() * 1000.0,
    })
}

/// The 10 backends: a thread per port that enters the namespace (setns affects the calling
/// thread only), listens on POD_IP and answers each connection's first line with `pong\n`.
fn serve_in_netns(stop: Arc<AtomicBool>) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut threads = Vec::new();
    for port in FIRST_PORT..FIRST_PORT + ENDPOINTS {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let listener = (|| -> anyhow::Result<TcpListener> {
                skiff::netns::enter(NETNS)?;
                Ok(TcpListener::bind((POD_IP, port))?)
            })();
            let listener = match listener {
                Ok(listener) => {
                    let _ = ready_tx.send(Ok(()));
                    listener
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(format!("{err:#}")));
                    return;
                }
            };
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 64];
                if conn.read(&mut buf).is_ok() {
                    let _ = conn.write_all(b"pong\n");
                }
            }
        }));
        ready_rx
            .recv()
            .context("a backend thread ended")?
            .map_err(|e| anyhow::anyhow!("backend on port {port}: {e}"))?;
    }
    Ok(threads)
}
