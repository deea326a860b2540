//! `GET /metrics`: the agent's figures in the Prometheus text format, under the kubelet's
//! metric names where it has one (`kubelet_running_pods`, `kubelet_running_containers`,
//! `kubelet_desired_pods`, `kubelet_node_name`) and the usual `process_*` figures.
//!
//! Everything is read when scraped (the runtime's container list, the pod view, /proc), so
//! the figures are never stale and nothing keeps counting between scrapes.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::debug;

use super::ServerState;
use super::proc_usage::{self, ProcessFigures};
use crate::kubelet::types::is_static_pod;
use crate::runtime::{ContainerKind, ContainerPhase, ContainerRuntime};

/// What one scrape reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentFigures {
    /// The node's name.
    pub node: String,
    /// Pods with a running sandbox; `None` when the runtime could not be asked.
    pub running_pods: Option<u64>,
    /// App and init containers by state (`running`, `exited`, `created`, `unknown`).
    pub containers_by_state: BTreeMap<&'static str, u64>,
    /// Desired pods from manifests.
    pub desired_static_pods: u64,
    /// Desired pods from the API.
    pub desired_api_pods: u64,
    /// The agent's process.
    pub process: ProcessFigures,
    /// Tasks alive in the agent's async runtime (pod workers, probes, sessions).
    pub tasks: u64,
    /// Pod workers that panicked and were replaced.
    pub pod_worker_restarts: u64,
    /// Connections translated per Service frontend (`10.96.0.10:53/UDP`), when the agent
    /// load-balances Services.
    pub service_connections: BTreeMap<String, u64>,
}

type Labels = Vec<(String, String)>;

impl AgentFigures {
    /// The Prometheus text exposition of these figures.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        let node_name = Family::<Labels, Gauge>::default();
        node_name
            .get_or_create(&vec![(String::from("node"), self.node.clone())])
            .set(1);
        registry.register(
            "kubelet_node_name",
            "The node's name. The count is always 1.",
            node_name,
        );
        if let Some(running) = self.running_pods {
            let pods = Gauge::<i64>::default();
            pods.set(gauge_value(running));
            registry.register(
                "kubelet_running_pods",
                "Number of pods that have a running pod sandbox",
                pods,
            );
            let containers = Family::<Labels, Gauge>::default();
            for state in ["running", "exited", "created", "unknown"] {
                let count = self.containers_by_state.get(state).copied().unwrap_or(0);
                containers
                    .get_or_create(&vec![(String::from("container_state"), state.to_owned())])
                    .set(gauge_value(count));
            }
            registry.register(
                "kubelet_running_containers",
                "Number of containers currently running",
                containers,
            );
        }
        let desired = Family::<Labels, Gauge>::default();
        for (is_static, count) in [
            ("true", self.desired_static_pods),
            ("false", self.desired_api_pods),
        ] {
            desired
                .get_or_create(&vec![(String::from("static"), is_static.to_owned())])
                .set(gauge_value(count));
        }
        registry.register(
            "kubelet_desired_pods",
            "The number of pods the kubelet is being instructed to run. static is true if the pod is not from the apiserver.",
            desired,
        );
        if !self.service_connections.is_empty() {
            let connections = Family::<Labels, Counter>::default();
            for (frontend, count) in &self.service_connections {
                connections
                    .get_or_create(&vec![(String::from("frontend"), frontend.clone())])
                    .inc_by(*count);
            }
            registry.register(
                "skiff_proxy_service_connections",
                "Connections (and unconnected UDP sends) the eBPF programs sent to a backend, per Service frontend",
                connections,
            );
        }
        let tasks = Gauge::<i64>::default();
        tasks.set(gauge_value(self.tasks));
        registry.register(
            "skiff_agent_tasks",
            "Tasks alive in the agent's async runtime (pod workers, probes, sessions)",
            tasks,
        );
        let restarts = Counter::<u64>::default();
        restarts.inc_by(self.pod_worker_restarts);
        registry.register(
            "skiff_pod_worker_restarts",
            "Pod workers that panicked and were replaced by a new one after a back-off",
            restarts,
        );
        let process = &self.process;
        let cpu = Counter::<f64, AtomicU64>::default();
        cpu.inc_by(process.cpu_seconds);
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            cpu,
        );
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                process.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                process.virtual_bytes as f64,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                process.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                process.open_fds as f64,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                process.max_fds as f64,
            ),
        ] {
            let gauge = Gauge::<f64, AtomicU64>::default();
            gauge.set(value);
            registry.register(name, help, gauge);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

fn gauge_value(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The handler.
pub(super) async fn metrics<R: ContainerRuntime>(State(state): State<ServerState<R>>) -> Response {
    let mut figures = AgentFigures {
        node: state.node_name.clone(),
        process: proc_usage::process().await,
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks() as u64,
        pod_worker_restarts: state.pods.worker_restarts(),
        ..Default::default()
    };
    for pod in state.pods.pods() {
        if is_static_pod(&pod) {
            figures.desired_static_pods += 1;
        } else {
            figures.desired_api_pods += 1;
        }
    }
    match state.runtime.list_pod_containers(None).await {
        Ok(containers) => {
            let mut running_pods = 0;
            for container in &containers {
                let state = match container.phase {
                    ContainerPhase::Running => "running",
                    ContainerPhase::Exited => "exited",
                    ContainerPhase::Created => "created",
                    ContainerPhase::Unknown => "unknown",
                };
                if container.kind == ContainerKind::Sandbox {
                    running_pods += u64::from(state == "running");
                } else {
                    *figures.containers_by_state.entry(state).or_default() += 1;
                }
            }
            figures.running_pods = Some(running_pods);
        }
        // The process figures are still worth having while Docker is down.
        Err(err) => debug!("metrics without the runtime's containers: {err}"),
    }
    // The pinned maps, when this node load-balances Services (absent otherwise: no figures).
    if let Ok(frontends) = crate::proxy::dump::read(&state.node_name) {
        figures.service_connections = frontends
            .iter()
            .map(|view| (view.name(), view.connections))
            .collect();
    }
    let mut response = (StatusCode::OK, figures.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_kubelets_metric_names() {
        let figures = AgentFigures {
            node: String::from("node-1"),
            running_pods: Some(2),
            containers_by_state: BTreeMap::from([("running", 3), ("exited", 1)]),
            desired_static_pods: 1,
            desired_api_pods: 2,
            process: ProcessFigures {
                cpu_seconds: 1.5,
                resident_bytes: 1024,
                virtual_bytes: 4096,
                start_time_seconds: 1_700_000_000.0,
                open_fds: 12,
                max_fds: 1024,
            },
            service_connections: BTreeMap::from([(String::from("10.96.0.10:53/UDP"), 7)]),
            tasks: 42,
            pod_worker_restarts: 2,
        };
        let text = figures.render();
        for line in [
            "kubelet_node_name{node=\"node-1\"} 1",
            "# TYPE kubelet_running_pods gauge",
            "kubelet_running_pods 2",
            "kubelet_running_containers{container_state=\"running\"} 3",
            "kubelet_running_containers{container_state=\"exited\"} 1",
            "kubelet_running_containers{container_state=\"created\"} 0",
            "kubelet_desired_pods{static=\"true\"} 1",
            "kubelet_desired_pods{static=\"false\"} 2",
            "# TYPE process_cpu_seconds counter",
            "process_cpu_seconds_total 1.5",
            "process_resident_memory_bytes 1024.0",
            "process_open_fds 12.0",
            "skiff_agent_tasks 42",
            "skiff_pod_worker_restarts_total 2",
            "skiff_proxy_service_connections_total{frontend=\"10.96.0.10:53/UDP\"} 7",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in:\n{text}"
            );
        }
    }

    #[test]
    fn without_the_runtime_only_its_figures_are_missing() {
        let text = AgentFigures {
            node: String::from("n"),
            ..Default::default()
        }
        .render();
        assert!(!text.contains("kubelet_running_pods"), "{text}");
        assert!(text.contains("process_cpu_seconds_total"), "{text}");
    }
}
