//! Stop a container the Kubernetes way: SIGTERM, wait up to the grace period, then SIGKILL.
//!
//! Not Docker's own `stop`: its wait is one HTTP request, which a long grace period would
//! hold open past the client's timeout; here the agent waits itself.

use std::time::Duration;

use bollard::query_parameters::KillContainerOptions;
use tokio::time::Instant;

use super::{ContainerPhase, DockerRuntime, RuntimeError, container_inspect};

/// How often to look whether the container has exited during the grace period.
const POLL: Duration = Duration::from_millis(100);

/// Stops container `id`; fine if it is not running or gone.
pub(super) async fn stop_container(
    runtime: &DockerRuntime,
    id: &str,
    grace: Duration,
) -> Result<(), RuntimeError> {
    if !grace.is_zero() {
        match kill(runtime, id, "SIGTERM").await {
            Ok(()) => {}
            Err(RuntimeError::NotFound(_)) => return Ok(()),
            // 409: not running.
            Err(RuntimeError::Conflict(_)) => return Ok(()),
            Err(err) => return Err(err),
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match container_inspect::inspect(runtime, id).await {
                Ok(details) if details.info.phase != ContainerPhase::Running => return Ok(()),
                Err(RuntimeError::NotFound(_)) => return Ok(()),
                Ok(_) | Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }
    match kill(runtime, id, "SIGKILL").await {
        Ok(()) | Err(RuntimeError::NotFound(_) | RuntimeError::Conflict(_)) => Ok(()),
        Err(err) => Err(err),
    }
}

async fn kill(runtime: &DockerRuntime, id: &str, signal: &str) -> Result<(), RuntimeError> {
    let client = runtime.client().await?;
    let options = KillContainerOptions {
        signal: signal.to_owned(),
    };
    client
        .kill_container(id, Some(options))
        .await
        .map_err(|err| runtime.error(err))
}
