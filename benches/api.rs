//! `cargo xtask bench api`: create throughput and latency of the API server over HTTPS, with
//! watchers that must each receive every event in order, for the embedded store and etcd side
//! by side in one run.
//!
//! With `--per-node`, watcher `k` watches with `fieldSelector=spec.nodeName=node-k` (the shape
//! kubelets give) and pod `i` is created on `node-(i % watchers)`, so each watcher sees its
//! share of the pods and the API server filters every event for every watcher.
//!
//! With `--encoding protobuf` the clients speak as client-go configured for protobuf does
//! (kube-controller-manager, the scheduler, most operators): pods are created with protobuf
//! bodies and every watcher asks for `application/vnd.kubernetes.protobuf` and decodes the
//! length-prefixed `WatchEvent` frames; `all` runs JSON and protobuf side by side.
//!
//! Last lines: `RESULT api store=<store> encoding=<json|protobuf> ... watchers=<n>
//! selector=<none|node> creates_per_s=... p50_ms=... p99_ms=... watch_events_lost=0`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
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
    /// What the clients speak: json, protobuf or all (side by side).
    #[arg(long, value_enum, default_value_t = EncodingChoice::All)]
    encoding: EncodingChoice,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EncodingChoice {
    Json,
    Protobuf,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

    fn name(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Protobuf => "protobuf",
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Protobuf => Self::PROTOBUF,
        }
    }
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
    let encodings: &[Encoding] = match args.encoding {
        EncodingChoice::Json => &[Encoding::Json],
        EncodingChoice::Protobuf => &[Encoding::Protobuf],
        EncodingChoice::All => &[Encoding::Json, Encoding::Protobuf],
    };
    let mut results = Vec::new();
    // The API server alone: a scheduler would add a status write and an Event per pod (none
    // of the pods can be placed: there are no nodes).
    let api_only = || {
        vec![
            String::from("--scheduler=false"),
            String::from("--controllers="),
        ]
    };
    for &encoding in encodings {
        if args.store == "all" || args.store == "embedded" {
            let master = Master::start(MasterOptions {
                extra_args: api_only(),
                ..Default::default()
            })?;
            let outcome = rt.block_on(run(&master, &args, encoding))?;
            results.push(("embedded", encoding, outcome));
        }
        if args.store == "all" || args.store == "etcd" {
            match Etcd::start() {
                Ok(etcd) => {
                    let master = Master::start(MasterOptions {
                        etcd_endpoints: vec![etcd.endpoint()],
                        extra_args: api_only(),
                        ..Default::default()
                    })?;
                    let outcome = rt.block_on(run(&master, &args, encoding))?;
                    results.push(("etcd", encoding, outcome));
                }
                Err(e) => eprintln!("skipping etcd: {e:#}"),
            }
        }
    }
    let find = |store: &str, encoding: Encoding| {
        results
            .iter()
            .find(|(s, e, _)| *s == store && *e == encoding)
            .map(|(_, _, o)| o)
    };
    for &encoding in encodings {
        if let (Some(embedded), Some(etcd)) = (find("embedded", encoding), find("etcd", encoding)) {
            println!(
                "{}: embedded vs etcd: {:.1}x the creates/s, p99 {:.2} ms vs {:.2} ms",
                encoding.name(),
                embedded.creates_per_s / etcd.creates_per_s.max(f64::MIN_POSITIVE),
                embedded.p99_ms,
                etcd.p99_ms
            );
        }
    }
    for store in ["embedded", "etcd"] {
        if let (Some(json), Some(protobuf)) =
            (find(store, Encoding::Json), find(store, Encoding::Protobuf))
        {
            println!(
                "{store}: protobuf vs json: {:.2}x the creates/s, p99 {:.2} ms vs {:.2} ms",
                protobuf.creates_per_s / json.creates_per_s.max(f64::MIN_POSITIVE),
                protobuf.p99_ms,
                json.p99_ms
            );
        }
    }
    for (store, encoding, o) in &results {
        eprintln!(
            "{store}/{}: max latency {:.2} ms, out-of-order events {}",
            encoding.name(),
            o.max_ms,
            o.out_of_order
        );
        println!(
            "RESULT api store={store} encoding={} pods={} clients={} watchers={} selector={} creates_per_s={:.0} p50_ms={:.2} p99_ms={:.2} watch_events_lost={}",
            encoding.name(),
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

async fn run(master: &Master, args: &Args, encoding: Encoding) -> anyhow::Result<Outcome> {
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
            .header("Accept", encoding.media_type())
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
                let mut taken = 0;
                while let Some((event, used)) = next_event(encoding, &buf[taken..]) {
                    taken += used;
                    let Some(rv) = event else { continue };
                    if rv <= last {
                        out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    last = rv;
                    count += 1;
                    received.fetch_add(1, Ordering::Relaxed);
                }
                buf.drain(..taken);
            }
        }));
    }

    let per_node = args.per_node.then_some(args.watchers.max(1));
    let body = |i: usize| {
        let node = per_node.map(|nodes| format!("node-{}", i % nodes));
        match encoding {
            Encoding::Json => json_pod(i, node).into_bytes(),
            Encoding::Protobuf => protobuf_pod(i, node),
        }
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
        let mine: Vec<Vec<u8>> = (0..args.pods)
            .filter(|i| i % args.clients == k)
            .map(body)
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(mine.len());
            for b in mine {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("Content-Type", encoding.media_type())
                    .header("Accept", encoding.media_type())
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

fn json_pod(i: usize, node: Option<String>) -> String {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i}"), "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "registry.local/app:1.0", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}});
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod.to_string()
}

/// The same pod as `json_pod`, as client-go writes it: `k8s\0` and a `runtime.Unknown`.
fn protobuf_pod(i: usize, node: Option<String>) -> Vec<u8> {
    let quantity = |q: &str| Quantity {
        string: Some(q.into()),
    };
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some(format!("pod-{i}")),
            labels: [("app".to_owned(), "bench".to_owned())].into(),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: Some("c".into()),
                image: Some("registry.local/app:1.0".into()),
                resources: Some(core::ResourceRequirements {
                    requests: [
                        ("cpu".to_owned(), quantity("100m")),
                        ("memory".to_owned(), quantity("64Mi")),
                    ]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            node_name: node,
            ..Default::default()
        }),
        ..Default::default()
    };
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
        }),
        raw: Some(pod.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

/// The next whole watch event at the start of `buf` and the bytes it took: `Some(rv)` for an
/// ADDED event (the pod's `resourceVersion`), `None` for any other. `None` overall until a
/// whole event has arrived.
fn next_event(encoding: Encoding, buf: &[u8]) -> Option<(Option<u64>, usize)> {
    match encoding {
        Encoding::Json => {
            let end = buf.iter().position(|b| *b == b'\n')?;
            let line = &buf[..=end];
            let added = line.starts_with(b"{\"type\":\"ADDED\"");
            Some((added.then(|| resource_version(line)), end + 1))
        }
        Encoding::Protobuf => {
            // A 4-byte big-endian length, then a `WatchEvent` whose object is `k8s\0` and a
            // `runtime.Unknown` around the pod: read down to the resourceVersion and no
            // further, as the JSON watchers scan their lines for it, so both sides of the
            // comparison spend alike on the client.
            let length = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
            let frame = buf.get(4..4 + length)?;
            let rv = WatchEventHead::decode(frame)
                .ok()
                .filter(|event| event.r#type.as_deref() == Some("ADDED"))
                .and_then(|event| {
                    let raw = event.object?.raw?;
                    let unknown = UnknownHead::decode(raw.strip_prefix(b"k8s\0")?).ok()?;
                    let pod = ObjectHead::decode(unknown.raw?.as_slice()).ok()?;
                    pod.metadata?.resource_version?.parse().ok()
                });
            Some((rv, 4 + length))
        }
    }
}

/// The head of `meta.v1.WatchEvent`: its type and object (prost skips the rest).
#[derive(Clone, PartialEq, prost::Message)]
struct WatchEventHead {
    #[prost(string, optional, tag = "1")]
    r#type: Option<String>,
    #[prost(message, optional, tag = "2")]
    object: Option<RawExtensionHead>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawExtensionHead {
    #[prost(bytes = "vec", optional, tag = "1")]
    raw: Option<Vec<u8>>,
}

/// `runtime.Unknown`'s raw message.
#[derive(Clone, PartialEq, prost::Message)]
struct UnknownHead {
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
}

/// An object's metadata, of which only the resourceVersion is read.
#[derive(Clone, PartialEq, prost::Message)]
struct ObjectHead {
    #[prost(message, optional, tag = "1")]
    metadata: Option<MetaHead>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MetaHead {
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
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
