//! Killing a pod: its app and init containers get SIGTERM and up to the grace period to exit
//! (all at once), then the sandbox stops, then every container is removed, as Kubernetes'
//! `killPodWithSyncResult`. Each step is fine to repeat: the caller retries the whole kill
//! until the runtime lets it finish.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tracing::{debug, info};

use super::events::{EventType, Recorder};
use super::logs::ContainerLogs;
use super::observed::{Observed, observe};
use super::types::grace_period;
use crate::runtime::{
    ContainerDetails, ContainerKind, ContainerPhase, ContainerRuntime, RuntimeError,
};

/// Stops every running container of the pod: app and init containers with `grace`, then the
/// sandbox.
pub async fn stop_all<R: ContainerRuntime>(
    runtime: &R,
    observed: &Observed,
    grace: Duration,
) -> Result<(), RuntimeError> {
    let stops = observed
        .all()
        .filter(|c| c.phase == ContainerPhase::Running && c.kind != ContainerKind::Sandbox)
        .map(|c| runtime.stop_container(&c.id, grace));
    for result in futures::future::join_all(stops).await {
        result?;
    }
    for sandbox in observed
        .all()
        .filter(|c| c.phase == ContainerPhase::Running && c.kind == ContainerKind::Sandbox)
    {
        runtime.stop_container(&sandbox.id, Duration::ZERO).await?;
    }
    Ok(())
}

/// One attempt at stopping (grace period, then SIGKILL) and removing every container of pod
/// `uid`. `pod` is `None` for an orphan found by its labels only: its grace period is the one
/// its containers were created with.
pub async fn kill_pod<R: ContainerRuntime>(
    runtime: &R,
    logs: &ContainerLogs,
    recorder: &Recorder,
    uid: &str,
    pod: Option<&Pod>,
    inspected: &mut HashMap<String, ContainerDetails>,
) -> Result<(), RuntimeError> {
    let observed = observe(runtime, logs, uid, inspected).await?;
    let grace = match pod {
        Some(pod) => grace_period(pod),
        None => Duration::from_secs(
            observed
                .all()
                .map(|c| c.grace_seconds.clamp(0, 30) as u64)
                .max()
                .unwrap_or(0),
        ),
    };
    let name = pod
        .and_then(|p| p.metadata.name.clone())
        .or_else(|| observed.all().next().map(|c| c.pod.name.clone()))
        .unwrap_or_default();
    if observed.all().next().is_some() {
        info!(pod = %name, uid, grace_seconds = grace.as_secs(), "stopping the pod's containers");
        if let Some(pod) = pod {
            for container in observed
                .all()
                .filter(|c| c.phase == ContainerPhase::Running && c.kind != ContainerKind::Sandbox)
            {
                recorder.container_event(
                    pod,
                    &container.name,
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {}", container.name),
                );
            }
        }
    }
    stop_all(runtime, &observed, grace).await?;
    for container in observed.all() {
        runtime.remove_container(&container.id).await?;
    }
    debug!(pod = %name, uid, "pod terminated");
    Ok(())
}
