//! Probes, as the kubelet's prober manager runs them: for every running container, one worker
//! per probe it declares (liveness, readiness, startup), each running its handler (exec,
//! httpGet, tcpSocket, grpc; `handlers`) from the agent against the pod's IP with
//! Kubernetes' timing (`worker`).
//!
//! Results are kept per container id, so a restarted container starts from the initial
//! results again (readiness: not ready; liveness: alive; startup: not started). A startup
//! probe holds the other two back: their workers start once it has passed. A changed result
//! wakes the pod's worker, whose sync reads them: readiness gates the container's `ready`
//! (and so the pod's Ready condition and its Endpoints), a failed liveness or startup probe
//! has the container killed and restarted as its restart policy says.
//!
//! The workers belong to the pod's worker ([`PodProbes`]) and are aborted with it or when
//! their container stops, so no probe outlives what it probes.

mod handlers;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::Notify;

use super::event_recorder::Recorder;
use super::observed::Observed;
use crate::runtime::{ContainerKind, ContainerRuntime, ContainerState};

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Restarts the container when it fails.
    Liveness,
    /// Gates the container's readiness.
    Readiness,
    /// Holds the other two back until it passes; restarts the container when it fails.
    Startup,
}

impl ProbeKind {
    /// The name Kubernetes' events use (`Liveness probe failed: ...`).
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// This probe of `container`, if it has one.
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Startup => container.startup_probe.as_ref(),
        }
    }
}

/// A probe's result after its thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// `successThreshold` probes in a row passed.
    Success,
    /// `failureThreshold` probes in a row failed.
    Failure,
}

/// The results of a pod's probes, by container name and probe, each for one container id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeResults(HashMap<(String, ProbeKind), (String, ProbeResult)>);

impl ProbeResults {
    /// The result of probe `kind` of container `name` for container id `id`, if any yet.
    pub fn get(&self, name: &str, kind: ProbeKind, id: &str) -> Option<ProbeResult> {
        self.0
            .get(&(name.to_owned(), kind))
            .filter(|(for_id, _)| for_id == id)
            .map(|(_, result)| *result)
    }

    /// Whether container `spec`, running as `id`, has started: it has no startup probe or
    /// that probe passed.
    pub fn started(&self, spec: &Container, id: &str) -> bool {
        spec.startup_probe.is_none()
            || self.get(&spec.name, ProbeKind::Startup, id) == Some(ProbeResult::Success)
    }

    /// Whether container `spec`, running as `id`, is ready: started, and without a readiness
    /// probe or with one that passed.
    pub fn ready(&self, spec: &Container, id: &str) -> bool {
        self.started(spec, id)
            && (spec.readiness_probe.is_none()
                || self.get(&spec.name, ProbeKind::Readiness, id) == Some(ProbeResult::Success))
    }

    /// The probe that failed in a way that restarts container `name` running as `id`.
    pub fn fatal(&self, name: &str, id: &str) -> Option<ProbeKind> {
        [ProbeKind::Startup, ProbeKind::Liveness]
            .into_iter()
            .find(|kind| self.get(name, *kind, id) == Some(ProbeResult::Failure))
    }

    fn set(&mut self, name: &str, kind: ProbeKind, id: &str, result: ProbeResult) -> bool {
        let entry = (id.to_owned(), result);
        self.0.insert((name.to_owned(), kind), entry.clone()) != Some(entry)
    }

    fn forget(&mut self, name: &str, kind: ProbeKind) {
        self.0.remove(&(name.to_owned(), kind));
    }
}

/// What every pod's probes share: the HTTP client of httpGet probes.
#[derive(Clone)]
pub struct Prober {
    http: reqwest::Client,
}

impl Prober {
    /// The kubelet's prober: HTTP without keep-alive, certificates not verified, redirects
    /// followed on the same host only.
    pub fn new() -> Result<Self, String> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt
                .previous()
                .first()
                .is_some_and(|first| first.host_str() == attempt.url().host_str());
            if attempt.previous().len() >= 10 || !same_host {
                // Kubernetes counts a redirect elsewhere as success (with a warning).
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .pool_max_idle_per_host(0)
            .redirect(redirects)
            .no_proxy()
            .build()
            .map_err(|err| format!("the probes' HTTP client: {err}"))?;
        Ok(Self { http })
    }
}

/// The probe workers of one pod and their results.
pub struct PodProbes {
    results: Arc<Mutex<ProbeResults>>,
    changed: Arc<Notify>,
    workers: HashMap<(String, ProbeKind), Running>,
}

/// A worker and what it probes; aborted when dropped.
struct Running {
    container_id: String,
    probe: Probe,
    pod_ip: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Default for PodProbes {
    fn default() -> Self {
        Self {
            results: Arc::default(),
            changed: Arc::new(Notify::new()),
            workers: HashMap::new(),
        }
    }
}

/// What the probe workers of a pod use.
pub struct ProbeContext<'a, R> {
    /// Runs exec probes.
    pub runtime: &'a Arc<R>,
    /// HTTP probes.
    pub prober: &'a Prober,
    /// `Unhealthy` events.
    pub recorder: &'a Recorder,
}

impl PodProbes {
    /// The results now.
    pub fn results(&self) -> ProbeResults {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Signalled when a result changes.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Stops every worker and forgets the results (a finished pod).
    pub fn stop(&mut self) {
        self.workers.clear();
        *self.results.lock().unwrap_or_else(PoisonError::into_inner) = ProbeResults::default();
    }

    /// How many workers run (tests).
    #[cfg(test)]
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Starts and stops workers so that every probe of every running app container of `pod`
    /// has exactly one, for its current container id: liveness and readiness only once the
    /// container has started.
    pub fn update<R: ContainerRuntime>(
        &mut self,
        ctx: &ProbeContext<'_, R>,
        pod: &Pod,
        observed: &Observed,
        pod_ip: &str,
    ) {
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let results = self.results();
        let mut wanted = Vec::new();
        for container in containers {
            let Some(details) = observed.latest(ContainerKind::App, &container.name) else {
                continue;
            };
            let ContainerState::Running { started_at } = details.state else {
                continue;
            };
            let id = details.info.id.as_str();
            let started = results.started(container, id);
            for kind in [
                ProbeKind::Startup,
                ProbeKind::Liveness,
                ProbeKind::Readiness,
            ] {
                let Some(probe) = kind.of(container) else {
                    continue;
                };
                // A passed startup probe is done; the other two wait for it.
                let due = match kind {
                    ProbeKind::Startup => !started,
                    _ => started,
                };
                if due && !pod_ip.is_empty() {
                    wanted.push((container, kind, probe, id.to_owned(), started_at));
                }
            }
        }
        let keys: Vec<(String, ProbeKind)> = wanted
            .iter()
            .map(|(c, kind, ..)| (c.name.clone(), *kind))
            .collect();
        self.workers.retain(|key, _| keys.contains(key));
        let mut shared_pod: Option<Arc<Pod>> = None;
        for (container, kind, probe, id, started_at) in wanted {
            let key = (container.name.clone(), kind);
            if let Some(running) = self.workers.get(&key)
                && running.container_id == id
                && running.probe == *probe
                && running.pod_ip == pod_ip
            {
                continue;
            }
            let worker = worker::Worker {
                runtime: ctx.runtime.clone(),
                http: ctx.prober.http.clone(),
                recorder: ctx.recorder.clone(),
                pod: shared_pod
                    .get_or_insert_with(|| Arc::new(pod.clone()))
                    .clone(),
                container: container.clone(),
                kind,
                probe: probe.clone(),
                container_id: id.clone(),
                started_at,
                pod_ip: pod_ip.to_owned(),
                results: self.results.clone(),
                changed: self.changed.clone(),
            };
            self.workers.insert(
                key,
                Running {
                    container_id: id,
                    probe: probe.clone(),
                    pod_ip: pod_ip.to_owned(),
                    task: tokio::spawn(worker.run()),
                },
            );
        }
        // Results of containers no longer probed go (a restarted container starts afresh).
        let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        let stale: Vec<(String, ProbeKind)> = results
            .0
            .iter()
            .filter(|((name, kind), (id, _))| {
                let current = observed
                    .latest(ContainerKind::App, name)
                    .filter(|d| matches!(d.state, ContainerState::Running { .. }))
                    .map(|d| d.info.id.as_str());
                current != Some(id.as_str())
                    || !containers
                        .iter()
                        .any(|c| c.name == *name && kind.of(c).is_some())
            })
            .map(|(key, _)| key.clone())
            .collect();
        for (name, kind) in stale {
            results.forget(&name, kind);
        }
    }
}

/// The time a probe may take (`timeoutSeconds`, at least one second).
fn timeout_of(probe: &Probe) -> Duration {
    skiff_api::time::seconds(probe.timeout_seconds.unwrap_or(1).into()).max(Duration::from_secs(1))
}
