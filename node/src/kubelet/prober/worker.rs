//! One probe of one container: wait `initialDelaySeconds` after the container started, then
//! probe every `periodSeconds`; `successThreshold` passes in a row make the result Success,
//! `failureThreshold` failures in a row make it Failure. Every failed probe is an `Unhealthy`
//! event. A passed startup probe, and a failed liveness or startup probe (its container is
//! about to be killed), end the worker; a readiness probe keeps going.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::Notify;

use super::handlers::{self, Target, Verdict};
use super::{ProbeKind, ProbeResult, ProbeResults};
use crate::kubelet::event_recorder::{EventType, Recorder};
use crate::runtime::ContainerRuntime;

/// A worker's parts.
pub struct Worker<R> {
    pub runtime: Arc<R>,
    pub http: reqwest::Client,
    pub recorder: Recorder,
    pub pod: Arc<Pod>,
    pub container: Container,
    pub kind: ProbeKind,
    pub probe: Probe,
    pub container_id: String,
    pub started_at: Option<DateTime<Utc>>,
    pub pod_ip: String,
    pub results: Arc<Mutex<ProbeResults>>,
    pub changed: Arc<Notify>,
}

impl<R: ContainerRuntime> Worker<R> {
    /// Probes until the result is final (see the module's notes) or the task is aborted.
    pub async fn run(self) {
        let probe = &self.probe;
        let seconds = |value: Option<i32>, default: i32| {
            skiff_api::time::seconds(value.unwrap_or(default).into())
        };
        let initial_delay = seconds(probe.initial_delay_seconds, 0);
        let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
        let success_threshold = probe.success_threshold.unwrap_or(1).max(1) as u32;
        let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1) as u32;
        let since_start = self
            .started_at
            .and_then(|t| (Utc::now() - t).to_std().ok())
            .unwrap_or_default();
        if let Some(wait) = initial_delay.checked_sub(since_start) {
            tokio::time::sleep(wait).await;
        }
        let target = Target {
            container: &self.container,
            container_id: &self.container_id,
            pod_ip: &self.pod_ip,
        };
        let (mut passes, mut failures) = (0u32, 0u32);
        loop {
            match handlers::run(self.runtime.as_ref(), &self.http, probe, &target).await {
                Verdict::Pass => {
                    failures = 0;
                    passes = passes.saturating_add(1);
                    if passes >= success_threshold {
                        self.set(ProbeResult::Success);
                        if self.kind == ProbeKind::Startup {
                            return;
                        }
                    }
                }
                Verdict::Fail(message) => {
                    passes = 0;
                    failures = failures.saturating_add(1);
                    self.recorder.container_event(
                        &self.pod,
                        &self.container.name,
                        EventType::Warning,
                        "Unhealthy",
                        format!("{} probe failed: {message}", self.kind.title()),
                    );
                    if failures >= failure_threshold {
                        self.set(ProbeResult::Failure);
                        if self.kind != ProbeKind::Readiness {
                            // Held until the container is replaced.
                            return;
                        }
                    }
                }
            }
            tokio::time::sleep(period).await;
        }
    }

    /// Records `result`, waking the pod's worker when it changed.
    fn set(&self, result: ProbeResult) {
        let changed = self
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set(&self.container.name, self.kind, &self.container_id, result);
        if changed {
            self.changed.notify_one();
        }
    }
}
