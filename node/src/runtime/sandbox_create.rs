//! Create and start a pod's sandbox: the pause container that owns the pod's network
//! namespace (its IP on the node's bridge network) and a shareable IPC namespace, which the
//! app containers then join.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use tracing::{info, warn};

use super::container_create::create_named;
use super::labels::Identity;
use super::{
    ContainerKind, ContainerPhase, DockerRuntime, RuntimeError, SANDBOX_CONTAINER_NAME,
    SandboxSpec, container_list, container_remove, container_start, labels, network,
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
    // The agent plumbs the pod's network itself, unless Docker must publish host ports.
    let plumbed = !spec.host_network && spec.host_ports.is_empty();
    let address = if plumbed {
        Some(network::take_address(runtime).await?)
    } else {
        None
    };
    let mut sandbox_labels = identity.labels();
    if let Some(ip) = address {
        sandbox_labels.insert(labels::POD_IP.to_owned(), ip.to_string());
    }
    let network_mode = if spec.host_network {
        String::from("host")
    } else if plumbed {
        String::from("none")
    } else {
        network::network_name(runtime.node())
    };
    let body = ContainerCreateBody {
        image: Some(PAUSE_IMAGE.to_owned()),
        // Docker refuses a hostname together with the host's network.
        hostname: (!spec.host_network).then(|| spec.hostname.clone()),
        labels: Some(sandbox_labels),
        network_disabled: plumbed.then_some(true),
        exposed_ports: (!port_bindings.is_empty()).then(|| port_bindings.keys().cloned().collect()),
        host_config: Some(HostConfig {
            network_mode: Some(network_mode),
            ipc_mode: Some(String::from("shareable")),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            security_opt: spec.seccomp.security_opt(),
            // The pause container prints nothing worth keeping.
            log_config: Some(HostConfigLogConfig {
                typ: Some(String::from("none")),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let started = start(runtime, &identity.docker_name(), body).await;
    if let Some(ip) = address {
        network::release_pending(runtime, ip);
    }
    let (id, pid) = started?;
    // The pod's namespace is the node's before any of its containers runs.
    if let (Some(pid), Some(node_netns)) = (pid, runtime.node_netns())
        && let Err(err) = node_netns.add_pod(&id, pid)
    {
        warn!(sandbox = %id, "adding the pod's network namespace to the node's: {err}");
    }
    Ok(id)
}

/// Creates and starts the sandbox and plumbs its network if its labels give it an address;
/// returns its id and, unless it is on the host's network, its process. A sandbox that did
/// not get that far is removed (its address with it).
async fn start(
    runtime: &DockerRuntime,
    name: &str,
    body: ContainerCreateBody,
) -> Result<(String, Option<u32>), RuntimeError> {
    let id = create_named(runtime, name, body).await?;
    let plumbed = async {
        container_start::start_container(runtime, &id).await?;
        let details = super::container_inspect::inspect(runtime, &id).await?;
        if let (Some(pid), Some(ip)) = (details.network_pid, details.plumbed_ip) {
            network::plumb(runtime, &id, pid, ip).await?;
        }
        if details.host_network {
            return Ok(None);
        }
        details.network_pid.map(Some).ok_or_else(|| {
            RuntimeError::Rejected(String::from("the sandbox stopped as it started"))
        })
    }
    .await;
    match plumbed {
        Ok(pid) => Ok((id, pid)),
        Err(err) => {
            if let Err(remove_err) = container_remove::remove_container(runtime, &id).await {
                warn!(sandbox = %id, "removing a sandbox that did not start: {remove_err}");
            }
            Err(err)
        }
    }
}

/// Makes the node's namespaces exactly the host's and those of this node's running sandboxes
/// (after an agent restart: sandboxes removed meanwhile go), and plumbs a running sandbox
/// whose network the agent had not plumbed yet.
pub(super) async fn retain_pod_networks(runtime: &DockerRuntime) -> Result<(), RuntimeError> {
    let mut running = Vec::new();
    for container in container_list::list_pod_containers(runtime, None).await? {
        if container.kind != ContainerKind::Sandbox || container.phase != ContainerPhase::Running {
            continue;
        }
        match super::container_inspect::inspect(runtime, &container.id).await {
            Ok(details) => {
                let Some(pid) = details.network_pid else {
                    continue;
                };
                // An agent that died between starting a sandbox and plumbing it.
                if let Some(ip) = details.plumbed_ip
                    && !network::has_interface(pid)
                {
                    info!(sandbox = %container.id, %ip, "plumbing a sandbox left without its network");
                    network::plumb(runtime, &container.id, pid, ip).await?;
                }
                running.push((container.id, pid));
            }
            Err(RuntimeError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    if let Some(node_netns) = runtime.node_netns() {
        node_netns.retain_pods(&running);
    }
    Ok(())
}
