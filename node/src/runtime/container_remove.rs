//! Remove a container (and its anonymous volumes).

use bollard::query_parameters::RemoveContainerOptions;

use super::{DockerRuntime, RuntimeError};

/// Removes container `id`, killing it if it still runs; fine if it is gone already.
pub(super) async fn remove_container(
    runtime: &DockerRuntime,
    id: &str,
) -> Result<(), RuntimeError> {
    let client = runtime.client().await?;
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    let removed = match client.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(err) => match runtime.error(err) {
            RuntimeError::NotFound(_) => Ok(()),
            // "removal of container ... is already in progress"
            RuntimeError::Conflict(message) if message.contains("already in progress") => Ok(()),
            other => Err(other),
        },
    };
    // A sandbox's network namespace is gone with it.
    if removed.is_ok()
        && let Some(node_netns) = runtime.node_netns()
    {
        node_netns.remove_pod(id);
    }
    removed
}
