//! What runs of a pod, read from the runtime by its labels: every container listed, the newest
//! two of each name inspected (the newest for the state, the one before for `lastState`).
//! The sync loop acts on it, the status is computed from it, a kill stops what it lists.

use std::collections::{BTreeMap, HashMap};

use super::logs::ContainerLogs;
use crate::runtime::{
    self, ContainerDetails, ContainerInfo, ContainerKind, ContainerPhase, ContainerRuntime,
    ContainerState, RuntimeError,
};

/// A pod's containers as they are.
#[derive(Debug, Default)]
pub struct Observed {
    /// Containers by kind and name, newest (highest restart count) first.
    pub groups: BTreeMap<(ContainerKind, String), Vec<ContainerInfo>>,
    /// Details of the newest and the one before, by container id.
    pub details: HashMap<String, ContainerDetails>,
}

impl Observed {
    /// The newest container of that name, in detail.
    pub fn latest(&self, kind: ContainerKind, name: &str) -> Option<&ContainerDetails> {
        let group = self.groups.get(&(kind, name.to_owned()))?;
        self.details.get(&group.first()?.id)
    }

    /// The one before the newest, in detail (its termination is the `lastState`).
    pub fn previous(&self, kind: ContainerKind, name: &str) -> Option<&ContainerDetails> {
        let group = self.groups.get(&(kind, name.to_owned()))?;
        self.details.get(&group.get(1)?.id)
    }

    /// The newest sandbox, if it runs.
    pub fn running_sandbox(&self) -> Option<&ContainerDetails> {
        self.latest(ContainerKind::Sandbox, runtime::SANDBOX_CONTAINER_NAME)
            .filter(|s| matches!(s.state, ContainerState::Running { .. }))
    }

    /// Every container listed.
    pub fn all(&self) -> impl Iterator<Item = &ContainerInfo> {
        self.groups.values().flatten()
    }

    /// An observation made of inspected containers only (tests).
    #[cfg(test)]
    pub fn from_details(details: Vec<ContainerDetails>) -> Self {
        let infos: Vec<ContainerInfo> = details.iter().map(|d| d.info.clone()).collect();
        Self {
            groups: groups(&infos),
            details: details
                .into_iter()
                .map(|d| (d.info.id.clone(), d))
                .collect(),
        }
    }
}

fn groups(listed: &[ContainerInfo]) -> BTreeMap<(ContainerKind, String), Vec<ContainerInfo>> {
    runtime::by_name(listed)
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().cloned().collect()))
        .collect()
}

/// Lists the containers of pod `uid` and inspects the newest two of each name. `inspected`
/// holds the details of the last observation: a container whose listed phase did not change
/// is not inspected again; it is replaced by this observation's details.
pub async fn observe<R: ContainerRuntime>(
    runtime: &R,
    logs: &ContainerLogs,
    uid: &str,
    inspected: &mut HashMap<String, ContainerDetails>,
) -> Result<Observed, RuntimeError> {
    let listed = runtime.list_pod_containers(Some(uid)).await?;
    let groups = groups(&listed);
    let mut details = HashMap::new();
    for group in groups.values() {
        for info in group.iter().take(2) {
            // Their output goes into their log files (started once per container).
            logs.ensure(info);
            let cached = inspected
                .get(&info.id)
                .filter(|d| d.info.phase == info.phase && info.phase != ContainerPhase::Unknown);
            let found = match cached {
                Some(d) => d.clone(),
                None => match runtime.inspect(&info.id).await {
                    Ok(d) => d,
                    // Removed between list and inspect.
                    Err(RuntimeError::NotFound(_)) => continue,
                    Err(err) => return Err(err),
                },
            };
            details.insert(info.id.clone(), found);
        }
    }
    *inspected = details.clone();
    Ok(Observed { groups, details })
}
