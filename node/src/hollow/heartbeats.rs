//! The hollow nodes' heartbeats: every node's Lease renewed each `lease_interval` and its
//! status written each `status_interval`, over a few persistent connections (the agent's own
//! [`HeartbeatConnection`], on io_uring) instead of one per node.
//!
//! Connection `c` of `k` carries nodes `c`, `c + k`, `c + 2k`, ...; it spreads their renewals
//! over the period's slots of [`SLOT`] (100 ms), so the API server sees a steady rate, as it
//! does from real kubelets started at random times. Every connection works on the same
//! slot at the same time: their requests are ready together, and on io_uring one
//! `io_uring_enter` submits the writes (and reaps the reads) of all of them, where tokio makes
//! a `send` and a `recv` (and an `epoll_wait`) per connection. A connection that falls behind
//! renews the late ones at once, one after the other.

use std::rc::Rc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::nodes::{Facts, HollowNode};
use super::stats::Stats;
use crate::kubelet::register;
use crate::uring::{HeartbeatConnection, HeartbeatSettings, Transport};

/// The granularity of the renewal schedule: every connection renews the nodes of a slot
/// together.
const SLOT: Duration = Duration::from_millis(100);

/// What every heartbeat connection shares.
#[derive(Clone)]
pub(super) struct Heartbeats {
    pub(super) client: kube::Client,
    pub(super) settings: HeartbeatSettings,
    pub(super) transport: Transport,
    pub(super) nodes: Rc<[HollowNode]>,
    pub(super) facts: Facts,
    pub(super) lease_interval: Duration,
    pub(super) lease_duration_seconds: i32,
    pub(super) status_interval: Duration,
    pub(super) stats: Rc<Stats>,
}

impl Heartbeats {
    /// Runs connection `connection` of `connections` forever.
    pub(super) async fn run(self, connection: u32, connections: u32) {
        let mut conn = match HeartbeatConnection::new(self.transport, &self.settings) {
            Ok(conn) => conn,
            Err(err) => {
                warn!("hollow heartbeat connection {connection}: {err}");
                return;
            }
        };
        let shard: Vec<usize> = (connection as usize..self.nodes.len())
            .step_by(connections as usize)
            .collect();
        if shard.is_empty() {
            return;
        }
        // Status writes every `status_rounds`-th round, a node's in a round of its own.
        let status_rounds = (self.status_interval.as_millis()
            / self.lease_interval.as_millis().max(1))
        .clamp(1, u128::from(u32::MAX)) as usize;
        let count = shard.len();
        let slots = (self.lease_interval.as_millis() / SLOT.as_millis()).max(1) as usize;
        // The connections are spawned together: their slots start at the same instants.
        let first = Instant::now();
        for round in 0usize.. {
            let start = first + self.lease_interval * u32::try_from(round).unwrap_or(u32::MAX);
            for (position, &index) in shard.iter().enumerate() {
                // Position p of n is renewed in slot p * slots / n.
                let slot = u32::try_from(position * slots / count).unwrap_or(u32::MAX);
                let at = start + SLOT * slot;
                // Behind schedule: on at once, without a timer.
                if Instant::now() < at {
                    tokio::time::sleep_until(at).await;
                }
                let node = &self.nodes[index];
                self.renew(&mut conn, node).await;
                if (round + index) % status_rounds == 0 {
                    self.write_status(&mut conn, node).await;
                }
            }
        }
    }

    async fn renew(&self, conn: &mut HeartbeatConnection, node: &HollowNode) {
        let started = std::time::Instant::now();
        match conn.renew_lease_of(&node.name, Utc::now()).await {
            Ok(_) => self.stats.renewed(started.elapsed()),
            Err(err) if err.is_not_found() => {
                // Deleted meanwhile (by a user, or the master's garbage collector): made anew.
                let created = register::ensure_lease(
                    &self.client,
                    &node.name,
                    &node.uid,
                    self.lease_duration_seconds,
                )
                .await;
                match created {
                    Ok(()) => self.stats.renewed(started.elapsed()),
                    Err(err) => {
                        debug!(node = %node.name, "creating the lease: {err}");
                        self.stats.renew_failed();
                    }
                }
            }
            Err(err) => {
                debug!(node = %node.name, "renewing the lease: {err}");
                self.stats.renew_failed();
            }
        }
    }

    async fn write_status(&self, conn: &mut HeartbeatConnection, node: &HollowNode) {
        let patch = self.facts.status_patch(&node.name, node.index, Utc::now());
        let result = conn.update_node_status_of(&node.name, &patch).await;
        if let Err(err) = &result {
            debug!(node = %node.name, "writing the node status: {err}");
        }
        self.stats.status_written(result.is_ok());
    }
}
