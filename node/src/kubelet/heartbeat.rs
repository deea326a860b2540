//! The node's heartbeat: the Lease renewed every `--lease-seconds` (10 s) and the Node status
//! written every `--node-status-seconds` (60 s) or at once when it changes (Docker down or
//! back).
//!
//! The two writes go through the [`Heartbeat`] trait: they are the agent's hottest API calls,
//! and the io_uring module (`crate::uring::UringHeartbeat`) implements them over its own
//! persistent HTTPS connection (io_uring, or plain tokio where io_uring is missing).
//! The trait's futures need not be `Send` (tokio-uring's are not): the loop runs as a local
//! task.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::NodeStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::sync::watch;
use tracing::{info, warn};

use super::node_facts::NodeFacts;
use super::node_status::{self, RuntimeHealth};
use super::register;

/// What a heartbeat write can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// The object does not exist (the lease or node was deleted).
    #[error("not found")]
    NotFound,
    /// The API server answered with an error.
    #[error("API server error {code}: {message}")]
    Api {
        /// HTTP status.
        code: u16,
        /// The Status message.
        message: String,
    },
    /// The API server could not be reached.
    #[error("API server unreachable: {0}")]
    Transport(String),
}

/// The node's two periodic writes to the API server.
pub trait Heartbeat {
    /// Renews the node's Lease in `kube-node-lease`: a merge patch of `spec.renewTime` (and
    /// holder and duration, which never change). [`HeartbeatError::NotFound`] makes the
    /// caller create the lease.
    fn renew_lease(
        &self,
        renew_time: &MicroTime,
    ) -> impl Future<Output = Result<(), HeartbeatError>>;

    /// Writes the Node's status (`nodes/<name>/status`, merge patch).
    fn update_node_status(
        &self,
        status: &NodeStatus,
    ) -> impl Future<Output = Result<(), HeartbeatError>>;
}

/// What the heartbeat loop needs.
pub struct HeartbeatLoop<H> {
    /// The writes.
    pub heartbeat: H,
    /// For creating a missing lease.
    pub client: kube::Client,
    /// This node.
    pub node: String,
    /// The Node's uid (the lease's owner).
    pub node_uid: String,
    /// Lease renewal period.
    pub lease_interval: Duration,
    /// Lease duration written into the lease.
    pub lease_seconds: i32,
    /// Status period when nothing changes.
    pub status_interval: Duration,
    /// Machine facts.
    pub facts: NodeFacts,
    /// The port of the agent's own endpoint (`status.daemonEndpoints`), 0 if none.
    pub daemon_port: i32,
    /// The runtime's health, which the Ready condition follows.
    pub health: watch::Receiver<RuntimeHealth>,
}

impl<H: Heartbeat> HeartbeatLoop<H> {
    /// Runs forever: renews the lease and writes the status, retrying failed writes on the
    /// next tick (the lease) or within seconds (the status). Logs once per outage.
    pub async fn run(mut self) {
        let mut lease_tick = tokio::time::interval(self.lease_interval);
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported: Option<NodeStatus> = None;
        let mut next_status = tokio::time::Instant::now();
        let mut status_failures = 0u32;
        let mut lease_ok = true;
        loop {
            tokio::select! {
                _ = lease_tick.tick() => {
                    match self.renew().await {
                        Ok(()) if !lease_ok => {
                            info!("lease renewals succeed again");
                            lease_ok = true;
                            // While we were silent the master may have marked the node
                            // Unknown: report the status now rather than at the next period.
                            reported = None;
                        }
                        Err(err) if lease_ok => {
                            warn!("renewing the node lease: {err}; retrying every {:?}", self.lease_interval);
                            lease_ok = false;
                        }
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(next_status) => {}
                changed = self.health.changed() => {
                    if changed.is_err() {
                        // The runtime monitor is gone: the agent is shutting down.
                        return;
                    }
                }
            }
            let health = self.health.borrow_and_update().clone();
            let status =
                node_status::node_status(&self.facts, &health, self.daemon_port, reported.as_ref());
            let due = tokio::time::Instant::now() >= next_status;
            let changed = reported
                .as_ref()
                .is_none_or(|old| node_status::changed(old, &status));
            if !due && !changed {
                continue;
            }
            match self.heartbeat.update_node_status(&status).await {
                Ok(()) => {
                    if status_failures > 0 {
                        info!("node status updates succeed again");
                    }
                    status_failures = 0;
                    reported = Some(status);
                    next_status = tokio::time::Instant::now() + self.status_interval;
                }
                Err(err) => {
                    if status_failures == 0 {
                        warn!("updating the node status: {err}; retrying");
                    }
                    status_failures += 1;
                    let backoff = Duration::from_secs(1 << status_failures.min(4));
                    next_status = tokio::time::Instant::now() + backoff.min(self.status_interval);
                }
            }
        }
    }

    /// One renewal; creates the lease when it is missing.
    async fn renew(&self) -> Result<(), String> {
        match self.heartbeat.renew_lease(&MicroTime(Utc::now())).await {
            Ok(()) => Ok(()),
            Err(HeartbeatError::NotFound) => {
                register::ensure_lease(&self.client, &self.node, &self.node_uid, self.lease_seconds)
                    .await
                    .map_err(|err| err.to_string())
            }
            Err(err) => Err(err.to_string()),
        }
    }
}
