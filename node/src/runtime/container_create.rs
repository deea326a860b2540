//! Create (not start) an app or init container joined to its pod's sandbox: the sandbox's
//! network and IPC namespaces (and PID namespace with `shareProcessNamespace`), the pod's
//! volumes as bind mounts, resource limits as Docker limits.

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions};

use super::labels::Identity;
use super::{ContainerKind, ContainerSpec, DockerRuntime, RuntimeError};

/// The CFS period Kubernetes uses for CPU limits (100 ms).
const CPU_PERIOD_US: i64 = 100_000;

/// Creates the container; returns its id.
pub(super) async fn create_container(
    runtime: &DockerRuntime,
    spec: &ContainerSpec,
) -> Result<String, RuntimeError> {
    let pod = spec
        .pod
        .as_ref()
        .ok_or_else(|| RuntimeError::Rejected(format!("container {} has no pod", spec.name)))?;
    let identity = Identity {
        node: runtime.node(),
        pod,
        kind: if spec.init {
            ContainerKind::Init
        } else {
            ContainerKind::App
        },
        name: &spec.name,
        attempt: spec.attempt,
        spec_hash: &spec.spec_hash,
        image: &spec.image,
        grace_seconds: spec.grace_seconds,
    };
    let sandbox = format!("container:{}", spec.sandbox_id);
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        cmd: spec.cmd.clone(),
        env: Some(spec.env.clone()),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        labels: Some(identity.labels()),
        // No exposed ports: Docker refuses them in another container's network namespace
        // (the sandbox publishes host ports).
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin),
        stdin_once: Some(spec.stdin_once),
        host_config: Some(HostConfig {
            network_mode: Some(sandbox.clone()),
            ipc_mode: Some(sandbox.clone()),
            pid_mode: spec.share_pid.then_some(sandbox),
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            memory: spec.memory_limit,
            // No swap beyond the limit, as Kubernetes.
            memory_swap: spec.memory_limit,
            cpu_period: spec.cpu_limit_millis.map(|_| CPU_PERIOD_US),
            cpu_quota: spec
                .cpu_limit_millis
                .map(|millis| (millis * CPU_PERIOD_US / 1000).max(1000)),
            cpu_shares: spec
                .cpu_request_millis
                .map(|millis| (millis * 1024 / 1000).max(2)),
            privileged: Some(spec.privileged),
            cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
            cap_drop: (!spec.cap_drop.is_empty()).then(|| spec.cap_drop.clone()),
            readonly_rootfs: Some(spec.read_only_root),
            security_opt: spec.seccomp.security_opt(),
            log_config: Some(docker_log_config()),
            ..Default::default()
        }),
        ..Default::default()
    };
    create_named(runtime, &identity.docker_name(), body).await
}

/// Docker keeps its own bounded copy of the output (json-file, at most 2 x 10 MB): the agent
/// copies it into the pod's log files from there, and catches up on what was written while
/// it was down.
fn docker_log_config() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some(String::from("json-file")),
        config: Some(
            [("max-size", "10m"), ("max-file", "2")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
    }
}

/// Creates a container called `name`; if one with that name exists (an earlier attempt that
/// got that far), returns its id instead of failing.
pub(super) async fn create_named(
    runtime: &DockerRuntime,
    name: &str,
    body: ContainerCreateBody,
) -> Result<String, RuntimeError> {
    let client = runtime.client().await?;
    let options = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    match client.create_container(Some(options), body).await {
        Ok(response) => Ok(response.id),
        Err(err) => match runtime.error(err) {
            RuntimeError::Conflict(_) => {
                let existing = client
                    .inspect_container(name, None::<InspectContainerOptions>)
                    .await
                    .map_err(|err| runtime.error(err))?;
                existing
                    .id
                    .ok_or_else(|| RuntimeError::Unexpected(format!("container {name} has no id")))
            }
            // Docker answers 404 "No such image" when the image is missing.
            RuntimeError::NotFound(message) if message.contains("image") => {
                Err(RuntimeError::ImageNotPresent(message))
            }
            other => Err(other),
        },
    }
}
