//! Create and start a pod's sandbox: the pause container that owns the pod's network
//! namespace (its IP on the node's bridge network) and a shareable IPC namespace, which the
//! app containers then join.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use tracing::warn;

use super::container_create::create_named;
use super::labels::Identity;
use super::{
    ContainerKind, ContainerPhase, DockerRuntime, RuntimeError, SANDBOX_CONTAINER_NAME,
    SandboxSpec, container_list, container_start, network,
};
use crate::images::PAUSE_IMAGE;

/// Creates (or finds, if an earlier attempt got that far) and starts the sandbox; returns its
/// container id.
pub(super) async fn create_sandbox(
    runtime: &DockerRuntime,
    spec: &SandboxSpec,
) -> Result<String, RuntimeError> {
    let identity = Identity {
        node: runtime.node(),
        pod: &spec.pod,
        kind: ContainerKind::Sandbox,
        name: SANDBOX_CONTAINER_NAME,
        attempt: spec.attempt,
        spec_hash: "",
        image: PAUSE_IMAGE,
        grace_seconds: spec.grace_seconds,
    };
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.host_ports {
        port_bindings
            .entry(format!("{}/{}", port.container_port, port.protocol))
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(port.host_ip.clone()),
                host_port: Some(port.host_port.to_string()),
            });
    }
    let body = ContainerCreateBody {
        image: Some(PAUSE_IMAGE.to_owned()),
        // Docker refuses a hostname together with the host's network.
        hostname: (!spec.host_network).then(|| spec.hostname.clone()),
        labels: Some(identity.labels()),
        exposed_ports: (!port_bindings.is_empty()).then(|| port_bindings.keys().cloned().collect()),
        host_config: Some(HostConfig {
            network_mode: Some(if spec.host_network {
                String::from("host")
            } else {
                network::network_name(runtime.node())
            }),
            ipc_mode: Some(String::from("shareable")),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
            // The pause container prints nothing worth keeping.
            log_config: Some(HostConfigLogConfig {
                typ: Some(String::from("none")),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = create_named(runtime, &identity.docker_name(), body).await?;
    container_start::start_container(runtime, &id).await?;
    // The pod's namespace is the node's before any of its containers runs.
    if !spec.host_network
        && let Some(node_netns) = runtime.node_netns()
    {
        match pod_network_pid(runtime, &id).await? {
            Some(pid) => {
                if let Err(err) = node_netns.add_pod(&id, pid) {
                    warn!(sandbox = %id, "adding the pod's network namespace to the node's: {err}");
                }
            }
            None => warn!(sandbox = %id, "the sandbox stopped as it started"),
        }
    }
    Ok(id)
}

/// The process of sandbox `id` when it runs in a pod network namespace of its own (not the
/// host's).
async fn pod_network_pid(runtime: &DockerRuntime, id: &str) -> Result<Option<u32>, RuntimeError> {
    Ok(super::container_inspect::inspect(runtime, id)
        .await?
        .network_pid)
}

/// Makes the node's namespaces exactly the host's and those of this node's running sandboxes
/// (after an agent restart: sandboxes removed meanwhile go).
pub(super) async fn retain_pod_networks(runtime: &DockerRuntime) -> Result<(), RuntimeError> {
    let Some(node_netns) = runtime.node_netns() else {
        return Ok(());
    };
    let mut running = Vec::new();
    for container in container_list::list_pod_containers(runtime, None).await? {
        if container.kind != ContainerKind::Sandbox || container.phase != ContainerPhase::Running {
            continue;
        }
        match pod_network_pid(runtime, &container.id).await {
            Ok(Some(pid)) => running.push((container.id, pid)),
            Ok(None) | Err(RuntimeError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    node_netns.retain_pods(&running);
    Ok(())
}
