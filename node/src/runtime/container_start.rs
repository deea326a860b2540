//! Start a created container.

use bollard::query_parameters::StartContainerOptions;

use super::{DockerRuntime, RuntimeError};

/// Starts container `id`; starting a running container is fine (Docker answers 304).
pub(super) async fn start_container(runtime: &DockerRuntime, id: &str) -> Result<(), RuntimeError> {
    let client = runtime.client().await?;
    client
        .start_container(id, None::<StartContainerOptions>)
        .await
        .map_err(|err| runtime.error(err))
}
