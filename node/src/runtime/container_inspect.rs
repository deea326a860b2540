//! Inspect one container: its state with times and exit code, its image id and, for a
//! sandbox, its IP on the node network (the agent's, from its labels, or Docker's).

use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::InspectContainerOptions;
use chrono::{DateTime, Utc};

use super::{
    ContainerDetails, ContainerPhase, ContainerState, DockerRuntime, RuntimeError, Termination,
    labels,
};

/// The details of container `id`.
pub(super) async fn inspect(
    runtime: &DockerRuntime,
    id: &str,
) -> Result<ContainerDetails, RuntimeError> {
    let client = runtime.client().await?;
    let response = client
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|err| runtime.error(err))?;
    let container_labels = response
        .config
        .as_ref()
        .and_then(|config| config.labels.clone())
        .unwrap_or_default();
    let docker_state = response.state.unwrap_or_default();
    let host_network = response
        .host_config
        .as_ref()
        .and_then(|config| config.network_mode.as_deref())
        .is_some_and(|mode| mode == "host");
    let network_pid = docker_state
        .pid
        .and_then(|pid| u32::try_from(pid).ok())
        .filter(|pid| *pid > 0 && !host_network);
    let started_at = docker_time(docker_state.started_at.as_deref());
    let finished_at = docker_time(docker_state.finished_at.as_deref());
    let (phase, state) = match docker_state.status {
        Some(ContainerStateStatusEnum::CREATED) => {
            // A failed start leaves the container "created" with the reason in `Error`.
            match docker_state.error.filter(|e| !e.is_empty()) {
                Some(error) => (
                    ContainerPhase::Exited,
                    ContainerState::Exited(Termination {
                        exit_code: exit_code(docker_state.exit_code).max(128),
                        oom_killed: false,
                        started_at: None,
                        finished_at,
                        error: Some(error),
                    }),
                ),
                None => (ContainerPhase::Created, ContainerState::Created),
            }
        }
        Some(
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::RESTARTING,
        ) => (
            ContainerPhase::Running,
            ContainerState::Running { started_at },
        ),
        Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => (
            ContainerPhase::Exited,
            ContainerState::Exited(Termination {
                exit_code: exit_code(docker_state.exit_code),
                oom_killed: docker_state.oom_killed.unwrap_or(false),
                started_at,
                finished_at,
                error: docker_state.error.filter(|e| !e.is_empty()),
            }),
        ),
        other => (
            ContainerPhase::Unknown,
            ContainerState::Unknown(other.map(|s| s.to_string()).unwrap_or_default()),
        ),
    };
    let created = response
        .created
        .as_deref()
        .and_then(|t| docker_time(Some(t)))
        .map_or(0, |t| t.timestamp());
    let info = labels::parse(id, &container_labels, phase, created)
        .ok_or_else(|| RuntimeError::NotFound(format!("container {id} is not a pod's")))?;
    let plumbed_ip = container_labels
        .get(labels::POD_IP)
        .and_then(|ip| ip.parse().ok());
    let ip = plumbed_ip
        .map(|ip: std::net::Ipv4Addr| ip.to_string())
        .or_else(|| {
            response
                .network_settings
                .and_then(|settings| settings.networks)
                .and_then(|networks| {
                    networks
                        .into_values()
                        .filter_map(|endpoint| endpoint.ip_address)
                        .find(|ip| !ip.is_empty())
                })
        });
    Ok(ContainerDetails {
        info,
        state,
        image_id: response.image.unwrap_or_default(),
        ip,
        plumbed_ip,
        host_network,
        network_pid,
    })
}

/// Docker's RFC 3339 times; its zero time (`0001-01-01T00:00:00Z`) means "never".
fn docker_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    let time = DateTime::parse_from_rfc3339(text?)
        .ok()?
        .with_timezone(&Utc);
    (time.timestamp() > 0).then_some(time)
}

fn exit_code(code: Option<i64>) -> i32 {
    code.and_then(|c| i32::try_from(c).ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_zero_time_is_never() {
        assert_eq!(docker_time(Some("0001-01-01T00:00:00Z")), None);
        assert!(docker_time(Some("2024-05-01T10:00:00.123456789Z")).is_some());
        assert_eq!(docker_time(Some("garbage")), None);
    }
}
