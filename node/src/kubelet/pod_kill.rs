//! Killing a pod: its app and init containers get SIGTERM and up to the grace period to exit
//! (all at once), then the sandbox stops, then every container is removed, as Kubernetes'
//! `killPodWithSyncResult`. Each step is fine to repeat: the caller retries the whole kill
//! until the runtime lets it finish.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tracing::{debug, info};

use super::event_recorder::{EventType, Recorder};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::test_support::Harness;
    use crate::runtime::fake::{Call, container};
    use crate::runtime::{ContainerState, PodRef, SANDBOX_CONTAINER_NAME};

    #[tokio::test]
    async fn an_orphan_is_stopped_with_the_grace_period_it_was_created_with_then_removed() {
        let h = Harness::new();
        let pod = PodRef {
            uid: String::from("gone"),
            name: String::from("old"),
            namespace: String::from("default"),
        };
        let running = || ContainerState::Running { started_at: None };
        // Each container carries the grace period its pod had; the longest counts.
        let mut sandbox = container(
            &pod,
            ContainerKind::Sandbox,
            SANDBOX_CONTAINER_NAME,
            0,
            "",
            running(),
        );
        sandbox.info.grace_seconds = 2;
        h.runtime.insert(sandbox);
        let mut app = container(&pod, ContainerKind::App, "app", 0, "", running());
        app.info.grace_seconds = 7;
        h.runtime.insert(app);

        let ctx = &h.ctx;
        kill_pod(
            ctx.runtime.as_ref(),
            &ctx.logs,
            &ctx.recorder,
            "gone",
            None,
            &mut HashMap::new(),
        )
        .await
        .expect("kill");
        assert_eq!(
            h.runtime.calls(),
            vec![
                Call::Stop(String::from("app.0"), Duration::from_secs(7)),
                Call::Stop(String::from("POD.0"), Duration::ZERO),
                Call::Remove(String::from("POD.0")),
                Call::Remove(String::from("app.0")),
            ]
        );
    }

    #[tokio::test]
    async fn a_kill_that_the_runtime_interrupts_fails_and_can_be_repeated() {
        let h = Harness::new();
        let pod = PodRef {
            uid: String::from("u1"),
            name: String::from("web"),
            namespace: String::from("default"),
        };
        h.runtime.insert(container(
            &pod,
            ContainerKind::App,
            "app",
            0,
            "",
            ContainerState::Running { started_at: None },
        ));
        let ctx = &h.ctx;
        let kill = async || {
            kill_pod(
                ctx.runtime.as_ref(),
                &ctx.logs,
                &ctx.recorder,
                "u1",
                None,
                &mut HashMap::new(),
            )
            .await
        };
        h.runtime.set_down(true);
        assert!(matches!(kill().await, Err(RuntimeError::Unavailable(_))));
        h.runtime.set_down(false);
        kill().await.expect("kill");
        assert!(h.runtime.containers().is_empty());
    }
}
