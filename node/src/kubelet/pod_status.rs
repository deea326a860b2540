//! A pod's status from what runs: phase, IPs, conditions and one status per container (state
//! with reason, last state, restart count, ids, readiness), computed the way the kubelet does
//! (`getPhase`, `generateAPIPodStatus`). Pure: the same observation gives the same status.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::backoff::{self, RestartPolicy};
use super::observed::Observed;
use super::prober::ProbeResults;
use crate::runtime::{ContainerDetails, ContainerKind, ContainerState, Termination};

/// Why a container is not running, as the status shows it (`ErrImagePull`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// Kubernetes' reason.
    pub reason: String,
    /// The details.
    pub message: String,
}

/// What the status is computed from.
pub struct StatusInputs<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its containers as they are.
    pub observed: &'a Observed,
    /// Its probes' results.
    pub probes: &'a ProbeResults,
    /// Errors the worker met per container name (image, config, create, start).
    pub waiting: &'a HashMap<String, Waiting>,
    /// The node's IP.
    pub host_ip: &'a str,
    /// The pod's IP when it uses the host's network.
    pub host_network: bool,
    /// The status reported before (keeps transition times and the start time).
    pub previous: Option<&'a PodStatus>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The pod's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not all containers started yet.
    Pending,
    /// Running (or restarting).
    Running,
    /// All containers ended successfully and will not restart.
    Succeeded,
    /// All containers ended, at least one failed, and none will restart.
    Failed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    /// Whether the pod is done for good.
    pub fn terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// The status of `inputs.pod`.
pub fn compute(inputs: &StatusInputs<'_>) -> PodStatus {
    let pod = inputs.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = RestartPolicy::parse(spec.restart_policy.as_deref());
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let init = init_state(inputs, &init_specs, policy);
    let init_statuses: Vec<ContainerStatus> = init_specs
        .iter()
        .map(|c| container_status(inputs, c, ContainerKind::Init, policy))
        .collect();
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            let mut status = container_status(inputs, c, ContainerKind::App, policy);
            if init != InitState::Done
                && status
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .is_some()
                && status
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_none()
            {
                status.state = Some(waiting("PodInitializing", ""));
            }
            status
        })
        .collect();

    let phase = phase(&statuses, policy, init);
    let sandbox_ip = if inputs.host_network {
        Some(inputs.host_ip.to_owned())
    } else {
        inputs.observed.running_sandbox().and_then(|s| s.ip.clone())
    };
    let sandbox_ready = sandbox_ip.is_some();
    let ready_containers = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let incomplete_init: Vec<&str> = init_statuses
        .iter()
        .filter(|s| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_none_or(|t| t.exit_code != 0)
        })
        .map(|s| s.name.as_str())
        .collect();

    let previous_conditions = inputs
        .previous
        .and_then(|p| p.conditions.clone())
        .unwrap_or_default();
    let condition = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let transition = previous_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(inputs.now));
        PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
            message,
            last_transition_time: Some(transition),
            last_probe_time: None,
        }
    };
    let completed = phase == Phase::Succeeded;
    let (ready_reason, ready_message) = if ready_containers {
        (None, None)
    } else if completed {
        (Some("PodCompleted"), None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let initialized = init == InitState::Done || completed;
    let conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, None),
        if initialized {
            condition(
                "Initialized",
                true,
                completed.then_some("PodCompleted"),
                None,
            )
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    incomplete_init.join(" ")
                )),
            )
        },
        condition(
            "Ready",
            ready_containers,
            ready_reason,
            ready_message.clone(),
        ),
        condition(
            "ContainersReady",
            ready_containers,
            ready_reason,
            ready_message,
        ),
        condition("PodScheduled", true, None, None),
    ];

    let start_time = inputs
        .previous
        .and_then(|p| p.start_time.clone())
        .or_else(|| pod.status.as_ref().and_then(|s| s.start_time.clone()))
        .unwrap_or(Time(inputs.now));
    // A finished pod keeps the IP it had.
    let pod_ip = sandbox_ip.or_else(|| {
        phase
            .terminal()
            .then(|| inputs.previous.and_then(|p| p.pod_ip.clone()))
            .flatten()
    });
    PodStatus {
        phase: Some(phase.as_str().to_owned()),
        conditions: Some(conditions),
        host_ip: Some(inputs.host_ip.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: inputs.host_ip.to_owned(),
        }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: Some(start_time),
        qos_class: Some(skiff_api::pod::qos_class(&spec).to_owned()),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        ..Default::default()
    }
}

/// Where the init containers stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitState {
    /// All ran to completion (or there are none).
    Done,
    /// One is running or will be (re)started.
    Running,
    /// One failed and the pod does not restart it.
    Failed,
}

/// Where the init containers of the pod stand.
pub fn init_state(
    inputs: &StatusInputs<'_>,
    init_specs: &[Container],
    policy: RestartPolicy,
) -> InitState {
    for container in init_specs {
        match inputs
            .observed
            .latest(ContainerKind::Init, &container.name)
            .map(|d| &d.state)
        {
            Some(ContainerState::Exited(t)) if t.exit_code == 0 => continue,
            Some(ContainerState::Exited(_)) if policy == RestartPolicy::Never => {
                return InitState::Failed;
            }
            _ => return InitState::Running,
        }
    }
    InitState::Done
}

/// Kubernetes' `getPhase`.
fn phase(statuses: &[ContainerStatus], policy: RestartPolicy, init: InitState) -> Phase {
    match init {
        InitState::Failed => return Phase::Failed,
        InitState::Running => return Phase::Pending,
        InitState::Done => {}
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for status in statuses {
        let state = status.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(terminated) = &state.terminated {
            stopped += 1;
            if terminated.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            let restarting = status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref());
            match restarting {
                Some(_) => stopped += 1,
                None => waiting += 1,
            }
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        Phase::Pending
    } else if running > 0 {
        Phase::Running
    } else if stopped > 0 {
        match policy {
            RestartPolicy::Always => Phase::Running,
            _ if stopped == succeeded => Phase::Succeeded,
            RestartPolicy::Never => Phase::Failed,
            RestartPolicy::OnFailure => Phase::Running,
        }
    } else {
        Phase::Pending
    }
}

/// The status of one container.
fn container_status(
    inputs: &StatusInputs<'_>,
    spec: &Container,
    kind: ContainerKind,
    policy: RestartPolicy,
) -> ContainerStatus {
    let latest = inputs.observed.latest(kind, &spec.name);
    let previous = inputs.observed.previous(kind, &spec.name);
    let image = spec.image.clone().unwrap_or_default();
    let mut status = ContainerStatus {
        name: spec.name.clone(),
        image: image.clone(),
        image_id: String::new(),
        restart_count: latest.map_or(0, |d| i32::try_from(d.info.attempt).unwrap_or(i32::MAX)),
        ready: false,
        started: Some(false),
        ..Default::default()
    };
    if let Some(details) = latest {
        status.container_id = Some(format!("docker://{}", details.info.id));
        status.image_id = image_id(details);
    }
    let error = inputs.waiting.get(&spec.name);
    // Init containers that succeeded are not restarted, whatever the policy.
    let restarts = |code: i32| match kind {
        ContainerKind::Init => code != 0 && policy != RestartPolicy::Never,
        _ => policy.restarts(code),
    };
    match latest.map(|d| &d.state) {
        Some(ContainerState::Running { started_at }) => {
            status.state = Some(ApiState {
                running: Some(ContainerStateRunning {
                    started_at: started_at.map(Time),
                }),
                ..Default::default()
            });
            let id = latest.map_or("", |d| d.info.id.as_str());
            let started = inputs.probes.started(spec, id);
            status.ready = kind == ContainerKind::App && inputs.probes.ready(spec, id);
            status.started = Some(started);
            status.last_state = previous.and_then(terminated_state);
        }
        Some(ContainerState::Exited(termination)) if restarts(termination.exit_code) => {
            let delay = backoff::crash_loop_delay(
                latest.map_or(0, |d| d.info.attempt),
                termination.started_at,
                termination.finished_at,
            );
            let ready_at = termination
                .finished_at
                .map(|t| t + chrono::Duration::from_std(delay).unwrap_or_default());
            let in_backoff = ready_at.is_some_and(|t| t > inputs.now);
            status.last_state = latest.and_then(terminated_state);
            status.state = Some(match error {
                Some(error) => waiting(&error.reason, &error.message),
                None if in_backoff => {
                    let pod_name = inputs.pod.metadata.name.as_deref().unwrap_or("");
                    let namespace = inputs.pod.metadata.namespace.as_deref().unwrap_or("");
                    let uid = inputs.pod.metadata.uid.as_deref().unwrap_or("");
                    waiting(
                        "CrashLoopBackOff",
                        &format!(
                            "back-off {}s restarting failed container={} pod={pod_name}_{namespace}({uid})",
                            delay.as_secs(),
                            spec.name
                        ),
                    )
                }
                // About to be restarted: it shows as terminated until then.
                None => latest
                    .and_then(terminated_state)
                    .unwrap_or_else(|| waiting("ContainerCreating", "")),
            });
        }
        Some(ContainerState::Exited(_)) => {
            status.state = latest.and_then(terminated_state);
            status.last_state = previous.and_then(terminated_state);
        }
        Some(ContainerState::Created) | Some(ContainerState::Unknown(_)) | None => {
            status.state = Some(match error {
                Some(error) => waiting(&error.reason, &error.message),
                None => waiting("ContainerCreating", ""),
            });
            status.last_state = previous.and_then(terminated_state);
        }
    }
    status
}

fn waiting(reason: &str, message: &str) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message: (!message.is_empty()).then(|| message.to_owned()),
        }),
        ..Default::default()
    }
}

/// The `terminated` state of an exited container.
fn terminated_state(details: &ContainerDetails) -> Option<ApiState> {
    let ContainerState::Exited(t) = &details.state else {
        return None;
    };
    Some(ApiState {
        terminated: Some(terminated(t, &details.info.id)),
        ..Default::default()
    })
}

fn terminated(t: &Termination, id: &str) -> ContainerStateTerminated {
    let reason = if t.oom_killed {
        "OOMKilled"
    } else if t.error.is_some() {
        "StartError"
    } else if t.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(reason.to_owned()),
        message: t.error.clone(),
        started_at: t.started_at.map(Time),
        finished_at: t.finished_at.map(Time),
        container_id: Some(format!("docker://{id}")),
        signal: None,
    }
}

/// `docker-pullable://`-style image id as the dockershim reported it.
fn image_id(details: &ContainerDetails) -> String {
    if details.image_id.is_empty() {
        String::new()
    } else {
        format!("docker://{}", details.image_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerInfo, ContainerPhase, PodRef};

    fn pod(policy: &str, containers: &[&str]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {
                "restartPolicy": policy,
                "containers": containers.iter().map(|n| serde_json::json!({"name": n, "image": "img"})).collect::<Vec<_>>(),
            },
        }))
        .expect("pod")
    }

    fn details(
        name: &str,
        kind: ContainerKind,
        attempt: u32,
        state: ContainerState,
    ) -> ContainerDetails {
        ContainerDetails {
            info: ContainerInfo {
                id: format!("{name}-{attempt}"),
                pod: PodRef {
                    uid: "u1".into(),
                    name: "web".into(),
                    namespace: "default".into(),
                },
                kind,
                name: name.to_owned(),
                attempt,
                spec_hash: String::new(),
                image: "img".into(),
                phase: match state {
                    ContainerState::Running { .. } => ContainerPhase::Running,
                    ContainerState::Exited(_) => ContainerPhase::Exited,
                    _ => ContainerPhase::Created,
                },
                created: 0,
                grace_seconds: 30,
            },
            state,
            image_id: "sha256:abc".into(),
            ip: (kind == ContainerKind::Sandbox).then(|| "10.244.0.2".to_owned()),
            plumbed_ip: None,
            host_network: false,
            network_pid: None,
        }
    }

    fn exited(code: i32, finished: DateTime<Utc>) -> ContainerState {
        ContainerState::Exited(Termination {
            exit_code: code,
            oom_killed: false,
            started_at: Some(finished - chrono::Duration::seconds(1)),
            finished_at: Some(finished),
            error: None,
        })
    }

    fn status_of(pod: &Pod, observed: &Observed, now: DateTime<Utc>) -> PodStatus {
        compute(&StatusInputs {
            probes: &ProbeResults::default(),
            pod,
            observed,
            waiting: &HashMap::new(),
            host_ip: "192.168.1.5",
            host_network: false,
            previous: None,
            now,
        })
    }

    fn sandbox() -> ContainerDetails {
        details(
            "POD",
            ContainerKind::Sandbox,
            0,
            ContainerState::Running { started_at: None },
        )
    }

    #[test]
    fn running_pod_is_ready_with_its_ip() {
        let now = Utc::now();
        let pod = pod("Always", &["app"]);
        let observed = Observed::from_details(vec![
            sandbox(),
            details(
                "app",
                ContainerKind::App,
                0,
                ContainerState::Running {
                    started_at: Some(now),
                },
            ),
        ]);
        let status = status_of(&pod, &observed, now);
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.0.2"));
        let app = &status.container_statuses.as_ref().expect("statuses")[0];
        assert!(app.ready);
        assert_eq!(app.container_id.as_deref(), Some("docker://app-0"));
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn crashed_container_shows_crash_loop_back_off() {
        let now = Utc::now();
        let pod = pod("Always", &["app"]);
        let observed = Observed::from_details(vec![
            sandbox(),
            details("app", ContainerKind::App, 1, exited(1, now)),
            details(
                "app",
                ContainerKind::App,
                0,
                exited(1, now - chrono::Duration::seconds(5)),
            ),
        ]);
        let status = status_of(&pod, &observed, now);
        let app = &status.container_statuses.as_ref().expect("statuses")[0];
        assert_eq!(app.restart_count, 1);
        let waiting = app
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .expect("waiting");
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        assert!(
            waiting
                .message
                .as_deref()
                .unwrap_or("")
                .contains("back-off 10s")
        );
        let last = app
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("last");
        assert_eq!(last.exit_code, 1);
        assert_eq!(status.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn finished_pods_succeed_or_fail_by_policy() {
        let now = Utc::now();
        let observed = Observed::from_details(vec![
            sandbox(),
            details("a", ContainerKind::App, 0, exited(0, now)),
            details("b", ContainerKind::App, 0, exited(2, now)),
        ]);
        let status = status_of(&pod("Never", &["a", "b"]), &observed, now);
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let observed = Observed::from_details(vec![
            sandbox(),
            details("a", ContainerKind::App, 0, exited(0, now)),
        ]);
        let status = status_of(&pod("OnFailure", &["a"]), &observed, now);
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        let a = &status.container_statuses.as_ref().expect("statuses")[0];
        let terminated = a
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated");
        assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    }

    #[test]
    fn image_errors_keep_the_pod_pending() {
        let now = Utc::now();
        let pod = pod("Always", &["app"]);
        let observed = Observed::from_details(vec![sandbox()]);
        let waiting = HashMap::from([(
            String::from("app"),
            Waiting {
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image".into(),
            },
        )]);
        let status = compute(&StatusInputs {
            probes: &ProbeResults::default(),
            pod: &pod,
            observed: &observed,
            waiting: &waiting,
            host_ip: "192.168.1.5",
            host_network: false,
            previous: None,
            now,
        });
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let app = &status.container_statuses.as_ref().expect("statuses")[0];
        let reason = app
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone());
        assert_eq!(reason.as_deref(), Some("ImagePullBackOff"));
    }
}
