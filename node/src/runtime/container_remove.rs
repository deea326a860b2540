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
    match client.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(err) => match runtime.error(err) {
            RuntimeError::NotFound(_) => Ok(()),
            // "removal of container ... is already in progress"
            RuntimeError::Conflict(message) if message.contains("already in progress") => Ok(()),
            other => Err(other),
        },
    }
}
