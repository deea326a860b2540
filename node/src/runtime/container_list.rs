//! List the containers of one pod, or of every pod of this node, by their labels.

use std::collections::HashMap;

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::ListContainersOptions;

use super::{ContainerInfo, ContainerPhase, DockerRuntime, RuntimeError, labels};

/// All containers (running or not) labelled with this node and, if given, this pod uid.
pub(super) async fn list_pod_containers(
    runtime: &DockerRuntime,
    pod_uid: Option<&str>,
) -> Result<Vec<ContainerInfo>, RuntimeError> {
    let client = runtime.client().await?;
    let mut label_filters = vec![format!("{}={}", labels::NODE, runtime.node())];
    if let Some(uid) = pod_uid {
        label_filters.push(format!("{}={uid}", labels::POD_UID));
    }
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(String::from("label"), label_filters)])),
        ..Default::default()
    };
    let summaries = client
        .list_containers(Some(options))
        .await
        .map_err(|err| runtime.error(err))?;
    Ok(summaries
        .into_iter()
        .filter_map(|summary| {
            let id = summary.id?;
            let labels = summary.labels.unwrap_or_default();
            let phase = match summary.state {
                Some(ContainerSummaryStateEnum::CREATED) => ContainerPhase::Created,
                Some(
                    ContainerSummaryStateEnum::RUNNING
                    | ContainerSummaryStateEnum::PAUSED
                    | ContainerSummaryStateEnum::RESTARTING,
                ) => ContainerPhase::Running,
                Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD) => {
                    ContainerPhase::Exited
                }
                _ => ContainerPhase::Unknown,
            };
            labels::parse(&id, &labels, phase, summary.created.unwrap_or(0))
        })
        .collect())
}
