//! `GET /stats/summary`: the kubelet's Summary API (`stats/v1alpha1` `Summary`), the figures
//! metrics-server and `kubectl top` read: the node's CPU and memory from /proc, and per pod
//! the CPU and memory of its running containers from the runtime (Docker's stats).
//!
//! A CPU rate needs two samples: the node's are taken at the start and the end of the request
//! (at least [`MIN_CPU_WINDOW`] apart), a container's come from Docker, which samples twice a
//! second apart. A pod's figures are the sum of its containers' (the kubelet reads the pod's
//! cgroup; the pause container's share is negligible). Only CPU and memory are reported, so
//! `only_cpu_and_memory=true` changes nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::join_all;
use serde_json::{Map, Value, json};
use tracing::debug;

use super::ServerState;
use super::proc_usage::{self, NodeMemory};
use crate::runtime::{ContainerKind, ContainerPhase, ContainerRuntime, ContainerStats, PodRef};

/// The shortest time the node's CPU rate is measured over.
const MIN_CPU_WINDOW: Duration = Duration::from_millis(200);

/// The node's figures of one request.
#[derive(Clone, Debug, Default)]
pub struct NodeSample {
    /// The node's name.
    pub name: String,
    /// When the machine booted.
    pub start_time: Option<DateTime<Utc>>,
    /// When the figures were read.
    pub time: DateTime<Utc>,
    /// CPU time since boot, nanoseconds.
    pub usage_core_nanoseconds: Option<u64>,
    /// CPU used during the request, billionths of a core.
    pub usage_nano_cores: Option<u64>,
    /// Memory.
    pub memory: Option<NodeMemory>,
}

/// One pod's figures.
#[derive(Clone, Debug)]
pub struct PodSample {
    /// The pod.
    pub pod: PodRef,
    /// When the pod started (its status' `startTime`, else its sandbox's creation).
    pub start_time: Option<DateTime<Utc>>,
    /// Its running containers.
    pub containers: Vec<ContainerSample>,
}

/// One container's figures.
#[derive(Clone, Debug)]
pub struct ContainerSample {
    /// Its name in the pod.
    pub name: String,
    /// When it was created.
    pub start_time: Option<DateTime<Utc>>,
    /// Its usage (empty when the runtime could not say).
    pub stats: ContainerStats,
}

/// The handler.
pub(super) async fn summary<R: ContainerRuntime>(State(state): State<ServerState<R>>) -> Response {
    let started = Instant::now();
    let cpu_before = proc_usage::cpu_time().await;
    let pods = pod_samples(&state).await;
    if let Some(left) = MIN_CPU_WINDOW.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let cpu_after = proc_usage::cpu_time().await;
    let window = started.elapsed();
    let usage_nano_cores = cpu_before.zip(cpu_after).and_then(|(before, after)| {
        let busy = after
            .busy_nanoseconds
            .checked_sub(before.busy_nanoseconds)?;
        let wall = window.as_nanos().max(1);
        u64::try_from(u128::from(busy) * 1_000_000_000 / wall).ok()
    });
    let node = NodeSample {
        name: state.node_name.clone(),
        start_time: proc_usage::boot_time().await.map(DateTime::<Utc>::from),
        time: Utc::now(),
        usage_core_nanoseconds: cpu_after.map(|c| c.busy_nanoseconds),
        usage_nano_cores,
        memory: proc_usage::node_memory().await,
    };
    let body = serde_json::to_vec(&summary_json(&node, &pods)).unwrap_or_default();
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The pods with containers on this node, their running containers' stats read at once.
async fn pod_samples<R: ContainerRuntime>(state: &ServerState<R>) -> Vec<PodSample> {
    let containers = match state.runtime.list_pod_containers(None).await {
        Ok(containers) => containers,
        Err(err) => {
            debug!("stats summary without pods: {err}");
            return Vec::new();
        }
    };
    let start_times: BTreeMap<String, DateTime<Utc>> = state
        .pods
        .pods()
        .into_iter()
        .filter_map(|pod| {
            let uid = pod.metadata.uid?;
            Some((uid, pod.status?.start_time?.0))
        })
        .collect();
    let mut pods: BTreeMap<String, PodSample> = BTreeMap::new();
    let mut running = Vec::new();
    for container in containers {
        let pod = pods
            .entry(container.pod.uid.clone())
            .or_insert_with(|| PodSample {
                pod: container.pod.clone(),
                start_time: start_times.get(&container.pod.uid).copied(),
                containers: Vec::new(),
            });
        match container.kind {
            ContainerKind::Sandbox => {
                pod.start_time = pod.start_time.or_else(|| unix_time(container.created));
            }
            _ if container.phase == ContainerPhase::Running => running.push(container),
            _ => {}
        }
    }
    let stats = join_all(running.iter().map(|c| state.runtime.stats(&c.id))).await;
    for (container, stats) in running.into_iter().zip(stats) {
        let stats = stats.unwrap_or_else(|err| {
            debug!(container = %container.id, "no stats: {err}");
            ContainerStats::default()
        });
        if let Some(pod) = pods.get_mut(&container.pod.uid) {
            pod.containers.push(ContainerSample {
                name: container.name,
                start_time: unix_time(container.created),
                stats,
            });
        }
    }
    let mut pods: Vec<PodSample> = pods.into_values().collect();
    pods.sort_by(|a, b| (&a.pod.namespace, &a.pod.name).cmp(&(&b.pod.namespace, &b.pod.name)));
    for pod in &mut pods {
        pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    pods
}

fn unix_time(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0).filter(|t| t.timestamp() > 0)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The Summary as JSON.
pub fn summary_json(node: &NodeSample, pods: &[PodSample]) -> Value {
    let now = time(node.time);
    let mut node_json = json!({
        "nodeName": node.name,
        "cpu": cpu_json(&now, node.usage_nano_cores, node.usage_core_nanoseconds),
    });
    if let Some(start) = node.start_time {
        node_json["startTime"] = json!(time(start));
    }
    if let Some(memory) = node.memory {
        node_json["memory"] = json!({
            "time": now,
            "availableBytes": memory.available_bytes(),
            "usageBytes": memory.usage_bytes,
            "workingSetBytes": memory.working_set_bytes,
            "rssBytes": memory.rss_bytes,
            "pageFaults": memory.page_faults,
            "majorPageFaults": memory.major_page_faults,
        });
    }
    let pods: Vec<Value> = pods.iter().map(|pod| pod_json(&now, pod)).collect();
    json!({"node": node_json, "pods": pods})
}

fn pod_json(now: &str, pod: &PodSample) -> Value {
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| {
            let mut container = json!({
                "name": c.name,
                "cpu": cpu_json(now, c.stats.usage_nano_cores, c.stats.usage_core_nanoseconds),
                "memory": memory_json(now, &c.stats),
            });
            if let Some(start) = c.start_time {
                container["startTime"] = json!(time(start));
            }
            container
        })
        .collect();
    let sum = |field: fn(&ContainerStats) -> Option<u64>| {
        pod.containers
            .iter()
            .filter_map(|c| field(&c.stats))
            .reduce(u64::saturating_add)
    };
    let total = ContainerStats {
        usage_core_nanoseconds: sum(|s| s.usage_core_nanoseconds),
        usage_nano_cores: sum(|s| s.usage_nano_cores),
        memory_usage_bytes: sum(|s| s.memory_usage_bytes),
        memory_working_set_bytes: sum(|s| s.memory_working_set_bytes),
        memory_rss_bytes: sum(|s| s.memory_rss_bytes),
        memory_limit_bytes: None,
        page_faults: sum(|s| s.page_faults),
        major_page_faults: sum(|s| s.major_page_faults),
    };
    let mut json = json!({
        "podRef": {"name": pod.pod.name, "namespace": pod.pod.namespace, "uid": pod.pod.uid},
        "containers": containers,
        "cpu": cpu_json(now, total.usage_nano_cores, total.usage_core_nanoseconds),
        "memory": memory_json(now, &total),
    });
    if let Some(start) = pod.start_time {
        json["startTime"] = json!(time(start));
    }
    json
}

/// `CPUStats`: absent figures are left out, as the kubelet omits unknown ones.
fn cpu_json(now: &str, nano_cores: Option<u64>, core_nanoseconds: Option<u64>) -> Value {
    let mut cpu = Map::new();
    cpu.insert(String::from("time"), json!(now));
    if let Some(v) = nano_cores {
        cpu.insert(String::from("usageNanoCores"), json!(v));
    }
    if let Some(v) = core_nanoseconds {
        cpu.insert(String::from("usageCoreNanoSeconds"), json!(v));
    }
    Value::Object(cpu)
}

/// `MemoryStats`; `availableBytes` only under a limit, as the kubelet reports it.
fn memory_json(now: &str, stats: &ContainerStats) -> Value {
    let mut memory = Map::new();
    memory.insert(String::from("time"), json!(now));
    let available = stats
        .memory_limit_bytes
        .zip(stats.memory_working_set_bytes)
        .map(|(limit, working_set)| limit.saturating_sub(working_set));
    for (name, value) in [
        ("availableBytes", available),
        ("usageBytes", stats.memory_usage_bytes),
        ("workingSetBytes", stats.memory_working_set_bytes),
        ("rssBytes", stats.memory_rss_bytes),
        ("pageFaults", stats.page_faults),
        ("majorPageFaults", stats.major_page_faults),
    ] {
        if let Some(value) = value {
            memory.insert(String::from(name), json!(value));
        }
    }
    Value::Object(memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(nano_cores: u64, working_set: u64) -> ContainerStats {
        ContainerStats {
            usage_core_nanoseconds: Some(nano_cores * 10),
            usage_nano_cores: Some(nano_cores),
            memory_usage_bytes: Some(working_set * 2),
            memory_working_set_bytes: Some(working_set),
            memory_rss_bytes: Some(working_set / 2),
            memory_limit_bytes: Some(working_set * 4),
            page_faults: Some(1),
            major_page_faults: Some(0),
        }
    }

    #[test]
    fn the_summary_has_the_node_and_each_pod_with_its_containers() {
        let at = |s| DateTime::from_timestamp(s, 0).expect("time");
        let node = NodeSample {
            name: String::from("node-1"),
            start_time: Some(at(1_700_000_000)),
            time: at(1_700_000_100),
            usage_core_nanoseconds: Some(5_000),
            usage_nano_cores: Some(250_000_000),
            memory: Some(NodeMemory {
                total_bytes: 1000,
                usage_bytes: 600,
                working_set_bytes: 400,
                rss_bytes: 300,
                page_faults: 9,
                major_page_faults: 1,
            }),
        };
        let pod = PodSample {
            pod: PodRef {
                uid: String::from("u1"),
                name: String::from("web"),
                namespace: String::from("default"),
            },
            start_time: Some(at(1_700_000_050)),
            containers: vec![
                ContainerSample {
                    name: String::from("app"),
                    start_time: Some(at(1_700_000_051)),
                    stats: stats(100, 1000),
                },
                ContainerSample {
                    name: String::from("sidecar"),
                    start_time: None,
                    stats: stats(50, 500),
                },
            ],
        };
        let summary = summary_json(&node, &[pod]);
        assert_eq!(
            summary["node"],
            json!({
                "nodeName": "node-1",
                "startTime": "2023-11-14T22:13:20Z",
                "cpu": {"time": "2023-11-14T22:15:00Z", "usageNanoCores": 250_000_000, "usageCoreNanoSeconds": 5_000},
                "memory": {"time": "2023-11-14T22:15:00Z", "availableBytes": 600, "usageBytes": 600, "workingSetBytes": 400, "rssBytes": 300, "pageFaults": 9, "majorPageFaults": 1},
            })
        );
        let pod = &summary["pods"][0];
        assert_eq!(
            pod["podRef"],
            json!({"name": "web", "namespace": "default", "uid": "u1"})
        );
        assert_eq!(pod["startTime"], "2023-11-14T22:14:10Z");
        assert_eq!(pod["cpu"]["usageNanoCores"], 150);
        assert_eq!(pod["memory"]["workingSetBytes"], 1500);
        assert!(pod["memory"].get("availableBytes").is_none(), "{pod}");
        assert_eq!(pod["containers"][0]["name"], "app");
        assert_eq!(pod["containers"][0]["startTime"], "2023-11-14T22:14:11Z");
        assert_eq!(pod["containers"][0]["memory"]["availableBytes"], 3000);
        assert_eq!(pod["containers"][1]["cpu"]["usageCoreNanoSeconds"], 500);
        assert!(pod["containers"][1].get("startTime").is_none());
    }

    #[test]
    fn unknown_figures_are_left_out() {
        let summary = summary_json(&NodeSample::default(), &[]);
        assert_eq!(summary["pods"], json!([]));
        assert!(summary["node"].get("memory").is_none());
        assert!(summary["node"]["cpu"].get("usageNanoCores").is_none());
    }
}
