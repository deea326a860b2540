//! `sync_pod`: one reconcile of a pod against its containers, idempotent. It reads what runs
//! (by labels), closes the gap to the spec, and returns the status and when to look again:
//!
//! 1. a finished pod (by restart policy) gets its sandbox stopped and nothing restarted;
//! 2. no running sandbox: stop what ran in the old one, create a new sandbox (pod IP);
//! 3. init containers, one at a time, each to completion;
//! 4. app containers: start missing ones, restart exited ones as the restart policy says with
//!    the crash-loop back-off (the delay follows from the restart count and exit time stored
//!    on the containers, so it survives agent restarts), replace ones whose spec changed.
//!
//! Failures that concern one container (image missing, Docker refusing the spec, a start that
//! fails) become its waiting reason with a retry back-off; only an unreachable Docker fails
//! the whole sync.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use tokio::time::Instant;
use tracing::{debug, info};

use super::backoff::{self, RestartPolicy};
use super::container_config::{self, ConfigInputs};
use super::event_recorder::{EventType, Recorder};
use super::logs::ContainerLogs;
use super::observed::{Observed, observe};
use super::pod_kill::stop_all;
use super::pod_status::{self, StatusInputs, Waiting};
use super::prober::{PodProbes, ProbeContext, ProbeKind, ProbeResults, Prober};
use super::types::{grace_period, pod_ref};
use super::volumes::HostVolume;
use super::{dns, etc_hosts, paths, volumes};
use crate::runtime::{
    ContainerDetails, ContainerKind, ContainerRuntime, ContainerState, HostPort, PodRef,
    RuntimeError, SANDBOX_CONTAINER_NAME, SandboxSpec, Seccomp,
};

/// What a sync reads besides the pod and its [`SyncState`]; shared by every pod's worker.
pub struct SyncContext<R> {
    /// The container runtime.
    pub runtime: Arc<R>,
    /// ConfigMaps and Secrets (volumes and environment variables).
    pub client: kube::Client,
    /// Events about the pod and its containers.
    pub recorder: Recorder,
    /// The containers' log files (a copier per started container).
    pub logs: ContainerLogs,
    /// This node's IP.
    pub host_ip: String,
    /// The node's CPUs (a missing CPU limit in the downward API).
    pub node_cpus: u64,
    /// The node's memory (a missing memory limit in the downward API).
    pub node_memory_bytes: u64,
    /// The agent's directory (pod volumes).
    pub root_dir: PathBuf,
    /// Whether images may be pulled from registries.
    pub allow_image_pull: bool,
    /// What pods' resolv.conf is made from.
    pub dns: dns::ClusterDns,
    /// What the pods' probes share.
    pub prober: Prober,
    /// The ServiceAccount tokens of projected volumes.
    pub tokens: super::token_manager::TokenManager,
}

/// What a pod's syncs remember between them: errors with their retry back-off, and details of
/// containers whose state cannot have changed. Everything else is read afresh each sync.
#[derive(Default)]
pub struct SyncState {
    /// Why a container is not running, by container name.
    pub waiting: HashMap<String, Waiting>,
    /// Consecutive failures, by container name.
    pub failures: HashMap<String, u32>,
    /// When to retry, by container name.
    pub retry_at: HashMap<String, Instant>,
    /// Consecutive failures to create the sandbox.
    pub sandbox_failures: u32,
    /// When to retry the sandbox.
    pub sandbox_retry_at: Option<Instant>,
    /// Details of the containers seen at the last sync.
    pub inspected: HashMap<String, ContainerDetails>,
    /// The status last computed.
    pub last_status: Option<PodStatus>,
    /// Whether this worker computed the pod's status already (else the API's phase counts).
    pub owns_status: bool,
    /// Exited containers whose back-off event was recorded.
    pub backoff_reported: HashSet<String>,
    /// The pod's probes and their results.
    pub probes: PodProbes,
}

impl SyncState {
    /// Time until the earliest pending retry.
    pub fn next_retry(&self) -> Option<Duration> {
        let now = Instant::now();
        self.retry_at
            .values()
            .copied()
            .chain(self.sandbox_retry_at)
            .filter(|at| *at > now)
            .min()
            .map(|at| at - now)
    }
}

/// What one sync produced.
pub struct SyncOutcome {
    /// The pod's status now (`None`: leave the API's as it is).
    pub status: Option<PodStatus>,
    /// Sync again after this long at the latest (a back-off ending); `None`: on events and
    /// the periodic resync only.
    pub requeue: Option<Duration>,
}

/// Reconciles `pod` once.
pub async fn sync_pod<R: ContainerRuntime>(
    ctx: &SyncContext<R>,
    pod: &Pod,
    state: &mut SyncState,
) -> Result<SyncOutcome, RuntimeError> {
    let pod_ref = pod_ref(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = RestartPolicy::parse(spec.restart_policy.as_deref());
    let host_network = spec.host_network.unwrap_or(false);
    let mut observed = observe(
        ctx.runtime.as_ref(),
        &ctx.logs,
        &pod_ref.uid,
        &mut state.inspected,
    )
    .await?;

    // The API says it is finished: nothing runs again (e.g. after an agent restart).
    let api_phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(api_phase, Some("Succeeded" | "Failed")) && !state.owns_status {
        state.probes.stop();
        stop_all(ctx.runtime.as_ref(), &observed, Duration::ZERO).await?;
        return Ok(SyncOutcome {
            status: None,
            requeue: None,
        });
    }

    let status_now = |observed: &Observed, state: &SyncState| {
        pod_status::compute(&StatusInputs {
            pod,
            observed,
            probes: &state.probes.results(),
            waiting: &state.waiting,
            host_ip: &ctx.host_ip,
            host_network,
            previous: state.last_status.as_ref(),
            now: Utc::now(),
        })
    };

    // 1. A finished pod: stop its sandbox, restart nothing.
    let status = status_now(&observed, state);
    if status
        .phase
        .as_deref()
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
    {
        state.probes.stop();
        if let Some(sandbox) = observed.running_sandbox() {
            ctx.runtime
                .stop_container(&sandbox.info.id, Duration::ZERO)
                .await?;
        }
        state.owns_status = true;
        return Ok(SyncOutcome {
            status: Some(status),
            requeue: None,
        });
    }
    state.owns_status = true;

    // 2. The sandbox.
    let mut acted = false;
    let sandbox_id = match observed.running_sandbox() {
        Some(sandbox) => sandbox.info.id.clone(),
        None => {
            acted = true;
            match create_sandbox(ctx, pod, &pod_ref, &observed, state).await? {
                Some(id) => id,
                None => {
                    return Ok(SyncOutcome {
                        status: Some(status_now(&observed, state)),
                        requeue: state.next_retry(),
                    });
                }
            }
        }
    };
    if acted {
        observed = observe(
            ctx.runtime.as_ref(),
            &ctx.logs,
            &pod_ref.uid,
            &mut state.inspected,
        )
        .await?;
    }
    let pod_ip = if host_network {
        ctx.host_ip.clone()
    } else {
        observed
            .running_sandbox()
            .and_then(|s| s.ip.clone())
            .unwrap_or_default()
    };
    let mut sync = ContainerSync {
        ctx,
        pod,
        pod_ref: &pod_ref,
        policy,
        sandbox_id: &sandbox_id,
        pod_ip: &pod_ip,
        volumes: None,
        resolv_conf: None,
        etc_hosts: None,
        probe_results: state.probes.results(),
        requeue: None,
        acted: false,
    };

    // 3. Init containers, in order, each to completion.
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let mut init_done = true;
    for container in &init_specs {
        let latest = observed
            .latest(ContainerKind::Init, &container.name)
            .cloned();
        if let Some(ContainerState::Exited(t)) = latest.as_ref().map(|d| &d.state)
            && t.exit_code == 0
        {
            continue;
        }
        init_done = false;
        if policy == RestartPolicy::Never
            && matches!(
                latest.as_ref().map(|d| &d.state),
                Some(ContainerState::Exited(_))
            )
        {
            break;
        }
        sync.container(container, ContainerKind::Init, &observed, state)
            .await?;
        break;
    }

    // 4. App containers.
    if init_done {
        for container in &spec.containers {
            sync.container(container, ContainerKind::App, &observed, state)
                .await?;
        }
    }
    // A running pod's configMap and secret volumes follow their objects (those just prepared
    // for a container start are fresh already); a failure keeps what they had.
    if sync.volumes.is_none()
        && volumes::has_api_data(pod)
        && let Err(message) = volumes::prepare(ctx, pod).await
    {
        debug!(pod = %pod_ref.name, namespace = %pod_ref.namespace, "refreshing volumes: {message}");
    }
    let requeue = sync.requeue;
    if sync.acted {
        observed = observe(
            ctx.runtime.as_ref(),
            &ctx.logs,
            &pod_ref.uid,
            &mut state.inspected,
        )
        .await?;
    }
    let probe_context = ProbeContext {
        runtime: &ctx.runtime,
        prober: &ctx.prober,
        recorder: &ctx.recorder,
    };
    state.probes.update(&probe_context, pod, &observed, &pod_ip);
    let status = status_now(&observed, state);
    // An ErrImagePull shows briefly, then ImagePullBackOff, as in Kubernetes.
    let requeue = [requeue, state.next_retry()].into_iter().flatten().min();
    Ok(SyncOutcome {
        status: Some(status),
        requeue,
    })
}

/// Replaces a missing or dead sandbox: stops the containers that ran in the old one, removes
/// old sandboxes and starts a new one. `None` when Docker refused it (the reason is recorded).
async fn create_sandbox<R: ContainerRuntime>(
    ctx: &SyncContext<R>,
    pod: &Pod,
    pod_ref: &PodRef,
    observed: &Observed,
    state: &mut SyncState,
) -> Result<Option<String>, RuntimeError> {
    if let Some(retry_at) = state.sandbox_retry_at
        && retry_at > Instant::now()
    {
        return Ok(None);
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let grace = grace_period(pod);
    // Containers in the old sandbox's namespaces lose their network with it.
    let had_sandbox = observed.all().any(|c| c.kind == ContainerKind::Sandbox);
    if had_sandbox {
        info!(pod = %pod_ref.name, namespace = %pod_ref.namespace, "sandbox is gone; recreating the pod's containers");
        stop_all(ctx.runtime.as_ref(), observed, grace).await?;
        for sandbox in observed.all().filter(|c| c.kind == ContainerKind::Sandbox) {
            ctx.runtime.remove_container(&sandbox.id).await?;
        }
    }
    let attempt = observed
        .groups
        .get(&(ContainerKind::Sandbox, SANDBOX_CONTAINER_NAME.to_owned()))
        .and_then(|g| g.first())
        .map_or(0, |s| s.attempt + 1);
    let host_ports = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
            Some(HostPort {
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect();
    let sandbox = SandboxSpec {
        pod: pod_ref.clone(),
        attempt,
        hostname: etc_hosts::pod_hostname(pod),
        host_ports,
        grace_seconds: grace.as_secs() as i64,
        host_network: spec.host_network.unwrap_or(false),
        // The pause container runs under the pod's filter (a Localhost profile is for the
        // app containers; the runtime's default serves pause).
        seccomp: match spec
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
        {
            Some(profile) if profile.type_ != "Unconfined" => Seccomp::RuntimeDefault,
            _ => Seccomp::Unconfined,
        },
    };
    match ctx.runtime.create_sandbox(&sandbox).await {
        Ok(id) => {
            state.sandbox_failures = 0;
            state.sandbox_retry_at = None;
            Ok(Some(id))
        }
        Err(err @ RuntimeError::Unavailable(_)) => Err(err),
        Err(err) => {
            state.sandbox_failures += 1;
            let delay = backoff::nth(state.sandbox_failures);
            state.sandbox_retry_at = Some(Instant::now() + delay);
            let message = format!("failed to create the pod sandbox: {err}");
            ctx.recorder.pod_event(
                pod,
                EventType::Warning,
                "FailedCreatePodSandBox",
                message.clone(),
            );
            for container in &spec.containers {
                state.waiting.insert(
                    container.name.clone(),
                    Waiting {
                        reason: String::from("ContainerCreating"),
                        message: message.clone(),
                    },
                );
            }
            Ok(None)
        }
    }
}

/// The part of a sync that handles single containers.
struct ContainerSync<'a, R> {
    ctx: &'a SyncContext<R>,
    pod: &'a Pod,
    pod_ref: &'a PodRef,
    policy: RestartPolicy,
    sandbox_id: &'a str,
    pod_ip: &'a str,
    /// The pod's volumes on the host, prepared on the first container start of this sync.
    volumes: Option<HashMap<String, HostVolume>>,
    /// The pod's resolv.conf on the host, written with the volumes (`None`: the runtime's).
    resolv_conf: Option<PathBuf>,
    /// The pod's hosts file on the host, written with the volumes.
    etc_hosts: Option<PathBuf>,
    /// The probes' results when the sync began.
    probe_results: ProbeResults,
    requeue: Option<Duration>,
    acted: bool,
}

impl<R: ContainerRuntime> ContainerSync<'_, R> {
    /// Brings one container to what the spec and restart policy want.
    async fn container(
        &mut self,
        container: &Container,
        kind: ContainerKind,
        observed: &Observed,
        state: &mut SyncState,
    ) -> Result<(), RuntimeError> {
        let hash = container_config::container_hash(container);
        let latest = observed.latest(kind, &container.name).cloned();
        let attempt = observed
            .groups
            .get(&(kind, container.name.clone()))
            .and_then(|g| g.first())
            .map(|c| c.attempt);
        let next_attempt = attempt.map_or(0, |a| a + 1);
        let restarts = |code: i32| match kind {
            ContainerKind::Init => code != 0 && self.policy != RestartPolicy::Never,
            _ => self.policy.restarts(code),
        };
        match latest.as_ref().map(|d| (&d.state, d)) {
            None => {
                self.start_new(container, kind, 0, &hash, observed, state)
                    .await
            }
            Some((ContainerState::Running { .. }, details)) => {
                if let Some(kind) = self.probe_results.fatal(&container.name, &details.info.id) {
                    return self.kill_unhealthy(container, kind, &details.info.id).await;
                }
                if details.info.spec_hash == hash || details.info.spec_hash.is_empty() {
                    return Ok(());
                }
                info!(pod = %self.pod_ref.name, container = %container.name, "container spec changed; restarting it");
                self.ctx.recorder.container_event(
                    self.pod,
                    &container.name,
                    EventType::Normal,
                    "Killing",
                    format!(
                        "Container {} definition changed, will be restarted",
                        container.name
                    ),
                );
                self.ctx
                    .runtime
                    .stop_container(&details.info.id, grace_period(self.pod))
                    .await?;
                self.acted = true;
                self.start_new(container, kind, next_attempt, &hash, observed, state)
                    .await
            }
            Some((ContainerState::Created, details)) => {
                // Created by an earlier sync that did not get to start it.
                self.start(container, &details.info.id.clone(), state).await
            }
            Some((ContainerState::Exited(t), details)) => {
                if !restarts(t.exit_code) {
                    return Ok(());
                }
                let delay =
                    backoff::crash_loop_delay(details.info.attempt, t.started_at, t.finished_at);
                let exited_at = t.finished_at.unwrap_or_else(|| {
                    chrono::DateTime::from_timestamp(details.info.created, 0).unwrap_or_default()
                });
                let ready_at = exited_at + chrono::Duration::from_std(delay).unwrap_or_default();
                let wait = (ready_at - Utc::now()).to_std().unwrap_or_default();
                if !wait.is_zero() {
                    if !state.backoff_reported.contains(&details.info.id) {
                        state.backoff_reported.insert(details.info.id.clone());
                        self.ctx.recorder.container_event(
                            self.pod,
                            &container.name,
                            EventType::Warning,
                            "BackOff",
                            format!(
                                "Back-off restarting failed container {} in pod {}",
                                container.name, self.pod_ref.name
                            ),
                        );
                    }
                    self.wake_in(wait);
                    return Ok(());
                }
                self.start_new(container, kind, next_attempt, &hash, observed, state)
                    .await
            }
            Some((ContainerState::Unknown(what), _)) => {
                debug!(container = %container.name, "container in unknown state {what:?}");
                self.wake_in(Duration::from_secs(5));
                Ok(())
            }
        }
    }

    /// Kills a container whose liveness or startup probe failed; the next sync restarts it
    /// as the restart policy says.
    async fn kill_unhealthy(
        &mut self,
        container: &Container,
        kind: ProbeKind,
        id: &str,
    ) -> Result<(), RuntimeError> {
        let name = kind.title().to_lowercase();
        info!(pod = %self.pod_ref.name, container = %container.name, "container failed its {name} probe; killing it");
        self.ctx.recorder.container_event(
            self.pod,
            &container.name,
            EventType::Normal,
            "Killing",
            format!(
                "Container {} failed {name} probe, will be restarted",
                container.name
            ),
        );
        // The probe's own grace period wins over the pod's.
        let grace = kind
            .of(container)
            .and_then(|p| p.termination_grace_period_seconds)
            .map_or_else(|| grace_period(self.pod), skiff_api::time::seconds);
        self.ctx.runtime.stop_container(id, grace).await?;
        self.acted = true;
        self.wake_in(Duration::ZERO);
        Ok(())
    }

    fn wake_in(&mut self, delay: Duration) {
        self.requeue = Some(self.requeue.map_or(delay, |r| r.min(delay)));
    }

    /// Creates and starts instance `attempt` of the container.
    async fn start_new(
        &mut self,
        container: &Container,
        kind: ContainerKind,
        attempt: u32,
        hash: &str,
        observed: &Observed,
        state: &mut SyncState,
    ) -> Result<(), RuntimeError> {
        let name = container.name.clone();
        if let Some(retry) = state.retry_at.get(&name)
            && *retry > Instant::now()
        {
            // Still backing off from an error; ErrImagePull turns into ImagePullBackOff.
            if let Some(waiting) = state.waiting.get_mut(&name)
                && waiting.reason == "ErrImagePull"
            {
                waiting.reason = String::from("ImagePullBackOff");
                waiting.message = format!(
                    "Back-off pulling image \"{}\"",
                    container.image.as_deref().unwrap_or("")
                );
            }
            self.wake_in(retry.saturating_duration_since(Instant::now()));
            return Ok(());
        }
        if let Err(waiting) = self.ensure_image(container).await? {
            self.fail(container, state, waiting, true);
            return Ok(());
        }
        if self.volumes.is_none() {
            let root = &self.ctx.root_dir;
            let prepared = volumes::prepare(self.ctx, self.pod)
                .await
                .and_then(|prepared| {
                    let resolv_conf = dns::write_pod_resolv_conf(self.pod, &self.ctx.dns, root)?;
                    let etc_hosts =
                        etc_hosts::write(self.pod, self.pod_ip, &self.ctx.dns.domain, root)?;
                    Ok((prepared, resolv_conf, etc_hosts))
                });
            match prepared {
                Ok((prepared, resolv_conf, etc_hosts)) => {
                    self.volumes = Some(prepared);
                    self.resolv_conf = resolv_conf;
                    self.etc_hosts = Some(etc_hosts);
                }
                Err(message) => {
                    let waiting = Waiting {
                        reason: String::from("CreateContainerConfigError"),
                        message,
                    };
                    self.fail(container, state, waiting, false);
                    return Ok(());
                }
            }
        }
        let inputs = ConfigInputs {
            pod: self.pod,
            pod_ref: self.pod_ref,
            container,
            init: kind == ContainerKind::Init,
            attempt,
            spec_hash: hash,
            sandbox_id: self.sandbox_id,
            pod_ip: self.pod_ip,
            host_ip: &self.ctx.host_ip,
            node_cpus: self.ctx.node_cpus,
            node_memory_bytes: self.ctx.node_memory_bytes,
            volumes: self.volumes.as_ref().map_or(&EMPTY_VOLUMES, |v| v),
            resolv_conf: self.resolv_conf.as_deref(),
            etc_hosts: self.etc_hosts.as_deref(),
            seccomp_dir: &paths::seccomp_dir(&self.ctx.root_dir),
        };
        let spec = match container_config::build(&self.ctx.client, &inputs).await {
            Ok(spec) => spec,
            Err(message) => {
                let waiting = Waiting {
                    reason: String::from("CreateContainerConfigError"),
                    message,
                };
                self.fail(container, state, waiting, false);
                return Ok(());
            }
        };
        let id = match self.ctx.runtime.create_container(&spec).await {
            Ok(id) => id,
            Err(err @ RuntimeError::Unavailable(_)) => return Err(err),
            Err(RuntimeError::ImageNotPresent(message)) => {
                let waiting = Waiting {
                    reason: String::from("ErrImagePull"),
                    message,
                };
                self.fail(container, state, waiting, true);
                return Ok(());
            }
            Err(err) => {
                let waiting = Waiting {
                    reason: String::from("CreateContainerError"),
                    message: err.to_string(),
                };
                self.fail(container, state, waiting, false);
                return Ok(());
            }
        };
        self.acted = true;
        self.ctx.recorder.container_event(
            self.pod,
            &name,
            EventType::Normal,
            "Created",
            format!("Created container {name}"),
        );
        self.start(container, &id, state).await?;
        // Keep the newest and the one before (for `lastState` and previous logs).
        let group = observed
            .groups
            .get(&(kind, name.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for old in group.iter().skip(1) {
            if old.id != id {
                self.ctx.runtime.remove_container(&old.id).await?;
            }
        }
        Ok(())
    }

    /// Starts a created container; a refusal becomes the container's waiting reason.
    async fn start(
        &mut self,
        container: &Container,
        id: &str,
        state: &mut SyncState,
    ) -> Result<(), RuntimeError> {
        self.acted = true;
        match self.ctx.runtime.start_container(id).await {
            Ok(()) => {
                state.waiting.remove(&container.name);
                state.failures.remove(&container.name);
                state.retry_at.remove(&container.name);
                self.ctx.recorder.container_event(
                    self.pod,
                    &container.name,
                    EventType::Normal,
                    "Started",
                    format!("Started container {}", container.name),
                );
                Ok(())
            }
            Err(err @ RuntimeError::Unavailable(_)) => Err(err),
            Err(err) => {
                // Docker leaves the container "created" with the error; it counts as a crash
                // (exit 128), so the crash-loop back-off applies to the next start.
                state.waiting.remove(&container.name);
                self.ctx.recorder.container_event(
                    self.pod,
                    &container.name,
                    EventType::Warning,
                    "Failed",
                    format!("Error: {err}"),
                );
                self.wake_in(Duration::from_secs(1));
                Ok(())
            }
        }
    }

    /// `Ok(Err(waiting))` when the image is not there and cannot be had.
    async fn ensure_image(
        &mut self,
        container: &Container,
    ) -> Result<Result<(), Waiting>, RuntimeError> {
        let image = container.image.clone().unwrap_or_default();
        if image.is_empty() {
            return Ok(Err(Waiting {
                reason: String::from("InvalidImageName"),
                message: String::from("the container has no image"),
            }));
        }
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).to_owned());
        let present = self.ctx.runtime.image_present(&image).await?;
        if present && (policy != "Always" || !self.ctx.allow_image_pull) {
            self.ctx.recorder.container_event(
                self.pod,
                &container.name,
                EventType::Normal,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(Ok(()));
        }
        if policy == "Never" {
            return Ok(Err(Waiting {
                reason: String::from("ErrImageNeverPull"),
                message: format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                ),
            }));
        }
        if !self.ctx.allow_image_pull {
            return Ok(Err(Waiting {
                reason: String::from("ErrImagePull"),
                message: format!(
                    "image \"{image}\" is not present on this node and pulling is disabled \
                     (skiff-node --allow-image-pull): build or load it locally"
                ),
            }));
        }
        self.ctx.recorder.container_event(
            self.pod,
            &container.name,
            EventType::Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        match self.ctx.runtime.pull_image(&image).await {
            Ok(()) => {
                self.ctx.recorder.container_event(
                    self.pod,
                    &container.name,
                    EventType::Normal,
                    "Pulled",
                    format!("Successfully pulled image \"{image}\""),
                );
                Ok(Ok(()))
            }
            Err(err @ RuntimeError::Unavailable(_)) => Err(err),
            Err(err) => Ok(Err(Waiting {
                reason: String::from("ErrImagePull"),
                message: format!("pulling image \"{image}\": {err}"),
            })),
        }
    }

    /// Records a container error with its retry back-off.
    fn fail(
        &mut self,
        container: &Container,
        state: &mut SyncState,
        waiting: Waiting,
        image: bool,
    ) {
        let name = container.name.clone();
        let failures = state.failures.entry(name.clone()).or_insert(0);
        *failures += 1;
        let delay = backoff::nth(*failures);
        state.retry_at.insert(name.clone(), Instant::now() + delay);
        self.ctx.recorder.container_event(
            self.pod,
            &name,
            EventType::Warning,
            "Failed",
            format!("Error: {}: {}", waiting.reason, waiting.message),
        );
        state.waiting.insert(name, waiting);
        // ErrImagePull shows for a moment, then the back-off reason.
        self.wake_in(if image { Duration::from_secs(1) } else { delay });
    }
}

static EMPTY_VOLUMES: std::sync::LazyLock<HashMap<String, HostVolume>> =
    std::sync::LazyLock::new(HashMap::new);

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (Kubernetes' default).
fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    if image.contains('@') {
        "IfNotPresent"
    } else {
        match last.rsplit_once(':') {
            Some((_, "latest")) | None => "Always",
            Some(_) => "IfNotPresent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::test_support::{Harness, pod};
    use crate::runtime::fake::{Call, container, exited};

    fn ids(calls: &[&str]) -> Vec<String> {
        calls.iter().map(|c| (*c).to_owned()).collect()
    }

    fn calls(h: &Harness) -> Vec<String> {
        h.runtime
            .take_calls()
            .into_iter()
            .map(|call| match call {
                Call::CreateSandbox(id) => format!("create sandbox {id}"),
                Call::Create(id) => format!("create {id}"),
                Call::Start(id) => format!("start {id}"),
                Call::Stop(id, grace) => format!("stop {id} {}s", grace.as_secs()),
                Call::Remove(id) => format!("remove {id}"),
                Call::Pull(image) => format!("pull {image}"),
            })
            .collect()
    }

    /// The spec hash of container `name` of `pod` (what sync compares with the label).
    fn hash_of(pod: &Pod, name: &str) -> String {
        let spec = pod.spec.as_ref().expect("spec");
        let container = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .expect("container");
        container_config::container_hash(container)
    }

    fn running() -> ContainerState {
        ContainerState::Running {
            started_at: Some(Utc::now()),
        }
    }

    fn ago(seconds: i64) -> chrono::DateTime<Utc> {
        Utc::now() - chrono::Duration::seconds(seconds)
    }

    /// The waiting reason of the first app container in `status`.
    fn waiting_reason(status: &PodStatus) -> Option<String> {
        status.container_statuses.as_ref()?[0]
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .reason
            .clone()
    }

    #[tokio::test]
    async fn a_new_pod_gets_its_sandbox_then_its_app_containers_in_order() {
        let mut h = Harness::new();
        let pod = pod("Always", &[], &["a", "b"]);
        let mut state = SyncState::default();
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(
            calls(&h),
            ids(&[
                "create sandbox POD.0",
                "create a.0",
                "start a.0",
                "create b.0",
                "start b.0"
            ])
        );
        let status = outcome.status.expect("a status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.0.2"));
        assert_eq!(
            h.event_reasons(),
            ids(&[
                "Pulled", "Created", "Started", "Pulled", "Created", "Started"
            ])
        );

        // Everything runs as the spec says: the next sync changes nothing.
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), Vec::<String>::new());
    }

    #[tokio::test]
    async fn init_containers_run_to_completion_before_the_app_containers() {
        let h = Harness::new();
        let pod = pod("Always", &["setup"], &["app"]);
        let mut state = SyncState::default();
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(
            calls(&h),
            ids(&["create sandbox POD.0", "create setup.0", "start setup.0"])
        );
        assert_eq!(
            outcome.status.and_then(|s| s.phase).as_deref(),
            Some("Pending")
        );

        // Still running: the app container waits.
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), Vec::<String>::new());

        // A failed init container runs again (its first failure without back-off)...
        h.runtime.exit("setup.0", 1, Utc::now());
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), ids(&["create setup.1", "start setup.1"]));

        // ...and once it succeeded, the app container starts.
        h.runtime.exit("setup.1", 0, Utc::now());
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), ids(&["create app.0", "start app.0"]));
    }

    #[tokio::test]
    async fn an_exited_container_waits_out_its_crash_loop_back_off_under_restart_policy_always() {
        let mut h = Harness::new();
        let pod = pod("Always", &[], &["app"]);
        let (pod_ref, hash) = (pod_ref(&pod), hash_of(&pod, "app"));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::Sandbox,
            SANDBOX_CONTAINER_NAME,
            0,
            "",
            running(),
        ));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::App,
            "app",
            0,
            &hash,
            exited(0, ago(60)),
        ));
        // The second run (restart count 1) exited 2 s ago: its back-off is 10 s.
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::App,
            "app",
            1,
            &hash,
            exited(0, ago(2)),
        ));
        let mut state = SyncState::default();
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), Vec::<String>::new(), "restarted during back-off");
        let requeue = outcome.requeue.expect("a wake-up when the back-off ends");
        assert!(
            requeue > Duration::from_secs(6) && requeue <= Duration::from_secs(8),
            "{requeue:?}"
        );
        let status = outcome.status.expect("a status");
        assert_eq!(waiting_reason(&status).as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(h.event_reasons(), ids(&["BackOff"]));

        // The back-off event is recorded once per exited container.
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(h.event_reasons(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_exited_container_restarts_when_its_back_off_is_over_keeping_one_previous() {
        let h = Harness::new();
        let pod = pod("Always", &[], &["app"]);
        let (pod_ref, hash) = (pod_ref(&pod), hash_of(&pod, "app"));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::Sandbox,
            SANDBOX_CONTAINER_NAME,
            0,
            "",
            running(),
        ));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::App,
            "app",
            0,
            &hash,
            exited(1, ago(60)),
        ));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::App,
            "app",
            1,
            &hash,
            exited(1, ago(11)),
        ));
        let mut state = SyncState::default();
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        // The new instance, then the oldest goes (the one before stays for `lastState`).
        assert_eq!(
            calls(&h),
            ids(&["create app.2", "start app.2", "remove app.0"])
        );
        let status = outcome.status.expect("a status");
        let app = &status.container_statuses.expect("container statuses")[0];
        assert_eq!(app.restart_count, 2);
        assert!(
            app.state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_container_that_succeeded_under_on_failure_stays_down_and_the_sandbox_stops() {
        let h = Harness::new();
        let pod = pod("OnFailure", &[], &["app"]);
        let (pod_ref, hash) = (pod_ref(&pod), hash_of(&pod, "app"));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::Sandbox,
            SANDBOX_CONTAINER_NAME,
            0,
            "",
            running(),
        ));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::App,
            "app",
            0,
            &hash,
            exited(0, ago(60)),
        ));
        let mut state = SyncState::default();
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), ids(&["stop POD.0 0s"]));
        assert_eq!(
            outcome.status.and_then(|s| s.phase).as_deref(),
            Some("Succeeded")
        );
        assert_eq!(outcome.requeue, None);
    }

    #[tokio::test]
    async fn a_container_whose_spec_changed_is_stopped_and_replaced() {
        let mut h = Harness::new();
        let pod = pod("Always", &[], &["app"]);
        let pod_ref = pod_ref(&pod);
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::Sandbox,
            SANDBOX_CONTAINER_NAME,
            0,
            "",
            running(),
        ));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::App,
            "app",
            0,
            "an-older-spec",
            running(),
        ));
        let mut state = SyncState::default();
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(
            calls(&h),
            ids(&["stop app.0 5s", "create app.1", "start app.1"])
        );
        assert_eq!(
            h.event_reasons(),
            ids(&["Killing", "Pulled", "Created", "Started"])
        );
    }

    #[tokio::test]
    async fn a_dead_sandbox_is_replaced_and_the_app_containers_follow_it() {
        let h = Harness::new();
        let pod = pod("Always", &[], &["app"]);
        let (pod_ref, hash) = (pod_ref(&pod), hash_of(&pod, "app"));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::Sandbox,
            SANDBOX_CONTAINER_NAME,
            0,
            "",
            exited(137, ago(5)),
        ));
        h.runtime.insert(container(
            &pod_ref,
            ContainerKind::App,
            "app",
            0,
            &hash,
            running(),
        ));
        let mut state = SyncState::default();
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(
            calls(&h),
            ids(&[
                "stop app.0 5s",
                "remove POD.0",
                "create sandbox POD.1",
                "create app.1",
                "start app.1"
            ])
        );
    }

    #[tokio::test]
    async fn a_missing_image_that_may_not_be_pulled_is_the_containers_waiting_reason() {
        let h = Harness::new();
        let mut pod = pod("Always", &[], &["app"]);
        if let Some(spec) = pod.spec.as_mut() {
            spec.containers[0].image = Some(String::from("skiff/missing:1"));
        }
        let mut state = SyncState::default();
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), ids(&["create sandbox POD.0"]));
        let status = outcome.status.expect("a status");
        assert_eq!(waiting_reason(&status).as_deref(), Some("ErrImagePull"));
        assert_eq!(outcome.requeue, Some(Duration::from_secs(1)));

        // Until its retry, the image's back-off shows.
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), Vec::<String>::new());
        let status = outcome.status.expect("a status");
        assert_eq!(waiting_reason(&status).as_deref(), Some("ImagePullBackOff"));
    }

    #[tokio::test]
    async fn a_refused_sandbox_is_retried_only_after_its_back_off() {
        let mut h = Harness::new();
        let pod = pod("Always", &[], &["app"]);
        h.runtime.refuse_sandboxes(Some("no address left"));
        let mut state = SyncState::default();
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        let status = outcome.status.expect("a status");
        assert_eq!(
            waiting_reason(&status).as_deref(),
            Some("ContainerCreating")
        );
        let requeue = outcome.requeue.expect("a retry");
        assert!(requeue > Duration::from_secs(9), "{requeue:?}");
        assert_eq!(h.event_reasons(), ids(&["FailedCreatePodSandBox"]));

        h.runtime.refuse_sandboxes(None);
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), Vec::<String>::new(), "retried during back-off");
    }

    #[tokio::test]
    async fn an_unreachable_runtime_fails_the_whole_sync() {
        let h = Harness::new();
        h.runtime.set_down(true);
        let result = sync_pod(
            &h.ctx,
            &pod("Always", &[], &["app"]),
            &mut SyncState::default(),
        )
        .await;
        assert!(matches!(result, Err(RuntimeError::Unavailable(_))));
    }

    #[test]
    fn pull_policy_defaults_like_kubernetes() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("skiff/pause:1"), "IfNotPresent");
        assert_eq!(default_pull_policy("reg:5000/app"), "Always");
        assert_eq!(default_pull_policy("app@sha256:abc"), "IfNotPresent");
    }

    /// Gives container `app` of `pod` the probe `field` (`livenessProbe`, ...) running an exec.
    fn with_probe(pod: &mut Pod, field: &str, probe: serde_json::Value) {
        let container = &mut pod.spec.as_mut().expect("spec").containers[0];
        let mut json = serde_json::to_value(&*container).expect("container");
        json[field] = probe;
        *container = serde_json::from_value(json).expect("container with a probe");
    }

    fn app_status(status: &PodStatus) -> (bool, Option<bool>) {
        let app = &status.container_statuses.as_ref().expect("statuses")[0];
        (app.ready, app.started)
    }

    fn condition(status: &PodStatus, type_: &str) -> String {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.clone())
            .unwrap_or_default()
    }

    /// Waits until a probe result of the pod changes.
    async fn probe_result_changes(state: &SyncState) {
        let changed = state.probes.changed();
        tokio::time::timeout(Duration::from_secs(60), changed.notified())
            .await
            .expect("a probe result changes");
    }

    #[tokio::test]
    async fn a_readiness_probe_gates_the_containers_readiness_and_the_pods_ready_condition() {
        let h = Harness::new();
        let mut pod = pod("Always", &[], &["app"]);
        let probe = serde_json::json!({"exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 1});
        with_probe(&mut pod, "readinessProbe", probe);
        h.runtime.set_exec_code("app.0", 1);
        let mut state = SyncState::default();
        let status = sync_pod(&h.ctx, &pod, &mut state)
            .await
            .expect("sync")
            .status;
        let status = status.expect("a status");
        // Running but not ready before the first probe...
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(app_status(&status), (false, Some(true)));
        assert_eq!(condition(&status, "Ready"), "False");
        // ...and after it failed.
        probe_result_changes(&state).await;
        let status = sync_pod(&h.ctx, &pod, &mut state)
            .await
            .expect("sync")
            .status;
        assert_eq!(app_status(&status.expect("a status")), (false, Some(true)));

        h.runtime.set_exec_code("app.0", 0);
        probe_result_changes(&state).await;
        let status = sync_pod(&h.ctx, &pod, &mut state)
            .await
            .expect("sync")
            .status;
        let status = status.expect("a status");
        assert_eq!(app_status(&status), (true, Some(true)));
        assert_eq!(condition(&status, "Ready"), "True");
        assert_eq!(condition(&status, "ContainersReady"), "True");
        // A readiness failure never restarts anything.
        assert_eq!(
            calls(&h),
            ids(&["create sandbox POD.0", "create app.0", "start app.0"])
        );
    }

    #[tokio::test]
    async fn a_failed_liveness_probe_kills_the_container_with_the_probes_grace_and_it_restarts() {
        let mut h = Harness::new();
        let mut pod = pod("Always", &[], &["app"]);
        let probe = serde_json::json!({
            "exec": {"command": ["check"]},
            "periodSeconds": 1,
            "failureThreshold": 2,
            "terminationGracePeriodSeconds": 2,
        });
        with_probe(&mut pod, "livenessProbe", probe);
        h.runtime.set_exec_code("app.0", 1);
        let mut state = SyncState::default();
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        h.event_reasons();
        calls(&h);

        probe_result_changes(&state).await;
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), ids(&["stop app.0 2s"]));
        // One Unhealthy event per failed probe (counted on one Event), then the kill.
        assert_eq!(
            h.event_reasons(),
            ids(&["Unhealthy", "Unhealthy", "Killing"])
        );

        // The next sync restarts it (its first restart has no back-off), probed afresh.
        let outcome = sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(calls(&h), ids(&["create app.1", "start app.1"]));
        assert_eq!(state.probes.results().fatal("app", "app.1"), None);
        let status = outcome.status.expect("a status");
        let app = &status.container_statuses.expect("statuses")[0];
        assert_eq!(app.restart_count, 1);
    }

    #[tokio::test]
    async fn a_startup_probe_holds_back_liveness_and_readiness_until_it_passes() {
        let h = Harness::new();
        let mut pod = pod("Always", &[], &["app"]);
        let exec = serde_json::json!({"command": ["check"]});
        with_probe(
            &mut pod,
            "startupProbe",
            serde_json::json!({"exec": exec, "periodSeconds": 1, "failureThreshold": 100}),
        );
        with_probe(
            &mut pod,
            "livenessProbe",
            serde_json::json!({"exec": exec, "periodSeconds": 1, "failureThreshold": 1}),
        );
        h.runtime.set_exec_code("app.0", 1);
        let mut state = SyncState::default();
        let status = sync_pod(&h.ctx, &pod, &mut state)
            .await
            .expect("sync")
            .status;
        assert_eq!(app_status(&status.expect("a status")), (false, Some(false)));
        // Only the startup probe runs; the failing liveness probe waits for it.
        assert_eq!(state.probes.worker_count(), 1);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let status = sync_pod(&h.ctx, &pod, &mut state)
            .await
            .expect("sync")
            .status;
        assert_eq!(app_status(&status.expect("a status")), (false, Some(false)));
        calls(&h);

        h.runtime.set_exec_code("app.0", 0);
        probe_result_changes(&state).await;
        let status = sync_pod(&h.ctx, &pod, &mut state)
            .await
            .expect("sync")
            .status;
        // Started, and ready (no readiness probe); now the liveness probe runs instead.
        assert_eq!(app_status(&status.expect("a status")), (true, Some(true)));
        assert_eq!(state.probes.worker_count(), 1);
        assert_eq!(calls(&h), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_finished_pods_probes_stop() {
        let h = Harness::new();
        let mut pod = pod("Never", &[], &["app"]);
        let probe = serde_json::json!({"exec": {"command": ["check"]}, "periodSeconds": 1});
        with_probe(&mut pod, "readinessProbe", probe);
        let mut state = SyncState::default();
        sync_pod(&h.ctx, &pod, &mut state).await.expect("sync");
        assert_eq!(state.probes.worker_count(), 1);
        h.runtime.exit("app.0", 0, Utc::now());
        let status = sync_pod(&h.ctx, &pod, &mut state)
            .await
            .expect("sync")
            .status;
        assert_eq!(status.and_then(|s| s.phase).as_deref(), Some("Succeeded"));
        assert_eq!(state.probes.worker_count(), 0);
    }
}
