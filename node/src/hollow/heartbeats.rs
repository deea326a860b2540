//! The hollow nodes' heartbeats: every node's Lease renewed each `lease_interval` and its
//! status written each `status_interval`, over a few persistent connections instead of one
//! per node.
//!
//! Connection `c` of `k` carries nodes `c`, `c + k`, `c + 2k`, ...; it spreads their renewals
//! over the period's slots of [`SLOT`] (100 ms), so the API server sees a steady rate, as it
//! does from real kubelets started at random times ([`Schedule`]). A connection that falls
//! behind renews the late ones at once, one after the other.
//!
//! Two ways to carry them, as the agent's heartbeat has two transports:
//! - on io_uring, one [`HeartbeatRing`] on a thread of its own ([`run_on_ring`]): every
//!   connection works on the same slot at the same time, so one `io_uring_enter` submits the
//!   sends of many connections and reaps their answers;
//! - on tokio (`SKIFF_IO_URING=off`, or no io_uring), a task per connection with the agent's
//!   [`HeartbeatConnection`] ([`Heartbeats::run`]): a `send` and a `recv` per request and an
//!   `epoll_wait` per wake-up.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::nodes::{Facts, HollowNode};
use super::stats::{Stats, Tally};
use crate::kubelet::register;
use crate::uring::heartbeat::{Next, Request, Requests};
use crate::uring::{
    ApiResponse, ConnectionError, HeartbeatConnection, HeartbeatRing, HeartbeatSettings, Transport,
};

/// The granularity of the renewal schedule: every connection renews the nodes of a slot
/// together.
const SLOT: Duration = Duration::from_millis(100);
/// How often the ring's thread hands its counts to the simulator's [`Stats`].
const TALLY_PERIOD: Duration = Duration::from_millis(100);

/// When connection `c` of `k` renews which of its nodes, and after which renewals it writes
/// the node's status.
pub(super) struct Schedule {
    /// The connection's nodes (indexes into all nodes).
    shard: Vec<usize>,
    slots: usize,
    /// A node's status is written every `status_rounds`-th round.
    status_rounds: usize,
    first: Instant,
    lease_interval: Duration,
}

impl Schedule {
    pub(super) fn new(
        nodes: usize,
        connection: usize,
        connections: usize,
        lease_interval: Duration,
        status_interval: Duration,
        first: Instant,
    ) -> Schedule {
        Schedule {
            shard: (connection..nodes).step_by(connections.max(1)).collect(),
            slots: (lease_interval.as_millis() / SLOT.as_millis()).max(1) as usize,
            status_rounds: (status_interval.as_millis() / lease_interval.as_millis().max(1))
                .clamp(1, u128::from(u32::MAX)) as usize,
            first,
            lease_interval,
        }
    }

    /// How many nodes the connection carries.
    pub(super) fn len(&self) -> usize {
        self.shard.len()
    }

    /// The node at `position` of the shard, and when its renewal of `round` is due:
    /// position p of n in slot p * slots / n of the round.
    pub(super) fn at(&self, round: usize, position: usize) -> (usize, Instant) {
        let slot = u32::try_from(position * self.slots / self.len().max(1)).unwrap_or(u32::MAX);
        let round = u32::try_from(round).unwrap_or(u32::MAX);
        let start = self.first + self.lease_interval.saturating_mul(round);
        (self.shard[position], start + SLOT.saturating_mul(slot))
    }

    /// Whether node `index`'s status is written after its renewal of `round` (a node's in a
    /// round of its own, so the status writes spread over the rounds).
    pub(super) fn writes_status(&self, round: usize, index: usize) -> bool {
        round.wrapping_add(index).is_multiple_of(self.status_rounds)
    }
}

/// What every heartbeat connection shares.
#[derive(Clone)]
pub(super) struct Heartbeats {
    pub(super) client: kube::Client,
    pub(super) settings: HeartbeatSettings,
    pub(super) nodes: Rc<[HollowNode]>,
    pub(super) facts: Facts,
    pub(super) lease_interval: Duration,
    pub(super) lease_duration_seconds: i32,
    pub(super) status_interval: Duration,
    pub(super) stats: Rc<Stats>,
}

impl Heartbeats {
    /// Runs connection `connection` of `connections` on tokio, forever.
    pub(super) async fn run(self, connection: u32, connections: u32) {
        let mut conn = match HeartbeatConnection::new(Transport::Tokio, &self.settings) {
            Ok(conn) => conn,
            Err(err) => {
                warn!("hollow heartbeat connection {connection}: {err}");
                return;
            }
        };
        // The connections are spawned together: their slots start at the same instants.
        let schedule = Schedule::new(
            self.nodes.len(),
            connection as usize,
            connections as usize,
            self.lease_interval,
            self.status_interval,
            Instant::now(),
        );
        if schedule.len() == 0 {
            return;
        }
        for round in 0usize.. {
            for position in 0..schedule.len() {
                let (index, at) = schedule.at(round, position);
                // Behind schedule: on at once, without a timer.
                if Instant::now() < at {
                    tokio::time::sleep_until(at.into()).await;
                }
                let node = &self.nodes[index];
                let started = Instant::now();
                let renewed = conn.renew_lease_of(&node.name, Utc::now()).await;
                self.renewed(index, renewed, started.elapsed()).await;
                if schedule.writes_status(round, index) {
                    let patch = self.facts.status_patch(&node.name, node.index, Utc::now());
                    let written = conn.update_node_status_of(&node.name, &patch).await;
                    if let Err(err) = &written {
                        debug!(node = %node.name, "writing the node status: {err}");
                    }
                    self.stats.status_written(written.is_ok());
                }
            }
        }
    }

    /// Counts a renewal of node `index`; a Lease deleted meanwhile (by a user, or the
    /// master's garbage collector) is made anew.
    async fn renewed(
        &self,
        index: usize,
        renewed: Result<ApiResponse, ConnectionError>,
        took: Duration,
    ) {
        let node = &self.nodes[index];
        match renewed {
            Ok(_) => self.stats.renewed(took),
            Err(err) if err.is_not_found() => {
                let started = Instant::now();
                let created = register::ensure_lease(
                    &self.client,
                    &node.name,
                    &node.uid,
                    self.lease_duration_seconds,
                )
                .await;
                match created {
                    Ok(()) => self.stats.renewed(took + started.elapsed()),
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
}

/// What the ring's thread tells the simulator.
enum Report {
    /// Counts and latencies since the last report.
    Tally(Tally),
    /// Node `index`'s Lease is gone: to be made anew (counted as its renewal).
    LeaseMissing(usize, Duration),
}

/// Runs the heartbeats of `connections` connections on a [`HeartbeatRing`] on a thread of
/// its own, until the returned guard is dropped; `None` (with a warning) when the ring cannot
/// be made, for the caller to run them on tokio instead.
pub(super) fn run_on_ring(heartbeats: &Heartbeats, connections: u32) -> Option<StopOnDrop> {
    let settings = heartbeats.settings.clone();
    let connections = connections as usize;
    let names: Vec<String> = heartbeats.nodes.iter().map(|n| n.name.clone()).collect();
    let addresses: Vec<u32> = heartbeats.nodes.iter().map(|n| n.index).collect();
    let facts = heartbeats.facts.clone();
    let (reports, mut received) = mpsc::unbounded_channel();
    let (started, ready) = std::sync::mpsc::sync_channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let (lease_interval, status_interval) = (heartbeats.lease_interval, heartbeats.status_interval);
    let spawned = std::thread::Builder::new()
        .name("hollow-heartbeats".into())
        .spawn(move || {
            // The ring is made on the thread that submits to it (a single issuer).
            let mut ring = match HeartbeatRing::new(&settings, connections) {
                Ok(ring) => {
                    let _ = started.send(Ok(()));
                    ring
                }
                Err(err) => {
                    let _ = started.send(Err(err));
                    return;
                }
            };
            // Every connection's slots start at the same instants.
            let first = Instant::now();
            let schedules = (0..connections)
                .map(|c| {
                    Schedule::new(
                        names.len(),
                        c,
                        connections,
                        lease_interval,
                        status_interval,
                        first,
                    )
                })
                .collect();
            let mut schedule = RingSchedule::new(schedules, names, addresses, facts, reports);
            if let Err(err) = ring.run(&mut schedule, &stopped) {
                warn!("the hollow heartbeat ring failed: {err}");
            }
        });
    if let Err(err) = spawned {
        warn!("no thread for the hollow heartbeat ring: {err}");
        return None;
    }
    match ready.recv() {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            warn!("no hollow heartbeat ring, heartbeats on tokio: {err}");
            return None;
        }
        Err(_) => return None,
    }
    let heartbeats = heartbeats.clone();
    crate::uring::spawn(async move {
        while let Some(report) = received.recv().await {
            match report {
                Report::Tally(tally) => heartbeats.stats.add(tally),
                Report::LeaseMissing(index, took) => {
                    let not_found = ConnectionError::Status {
                        status: 404,
                        message: String::new(),
                    };
                    heartbeats.renewed(index, Err(not_found), took).await;
                }
            }
        }
    });
    Some(StopOnDrop(stop))
}

/// Stops the ring's thread when dropped.
pub(super) struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The renewal schedule as the ring asks for it: each connection's place in its
/// [`Schedule`] and the request it has in flight.
struct RingSchedule {
    schedules: Vec<Schedule>,
    progress: Vec<Progress>,
    names: Vec<String>,
    /// Each node's number (for its address in the status).
    addresses: Vec<u32>,
    facts: Facts,
    /// The status patch being sent; reused.
    patch: Vec<u8>,
    tally: Tally,
    tallied: Instant,
    reports: mpsc::UnboundedSender<Report>,
}

/// Where a connection is in its schedule.
#[derive(Default)]
struct Progress {
    round: usize,
    position: usize,
    /// The node whose status is written next, before the next renewal.
    status_due: Option<usize>,
    in_flight: Option<Work>,
}

#[derive(Clone, Copy)]
enum Work {
    Renewal(usize),
    Status(usize),
}

impl RingSchedule {
    fn new(
        schedules: Vec<Schedule>,
        names: Vec<String>,
        addresses: Vec<u32>,
        facts: Facts,
        reports: mpsc::UnboundedSender<Report>,
    ) -> RingSchedule {
        RingSchedule {
            progress: schedules.iter().map(|_| Progress::default()).collect(),
            schedules,
            names,
            addresses,
            facts,
            patch: Vec::new(),
            tally: Tally::default(),
            tallied: Instant::now(),
            reports,
        }
    }

    fn report(&self, report: Report) {
        let _ = self.reports.send(report);
    }
}

impl Requests for RingSchedule {
    fn next(&mut self, connection: usize, now: Instant) -> Next<'_> {
        if now.duration_since(self.tallied) >= TALLY_PERIOD {
            self.tallied = now;
            let tally = std::mem::take(&mut self.tally);
            self.report(Report::Tally(tally));
        }
        let (Some(schedule), Some(progress)) = (
            self.schedules.get(connection),
            self.progress.get_mut(connection),
        ) else {
            return Next::At(now + TALLY_PERIOD);
        };
        if schedule.len() == 0 {
            return Next::At(now + TALLY_PERIOD);
        }
        if let Some(index) = progress.status_due {
            progress.in_flight = Some(Work::Status(index));
            self.patch =
                self.facts
                    .status_patch(&self.names[index], self.addresses[index], Utc::now());
            return Next::Send(Request::NodeStatus {
                node: &self.names[index],
                patch: &self.patch,
            });
        }
        let (index, at) = schedule.at(progress.round, progress.position);
        if at > now {
            return Next::At(at.min(self.tallied + TALLY_PERIOD));
        }
        progress.in_flight = Some(Work::Renewal(index));
        Next::Send(Request::RenewLease {
            node: &self.names[index],
            at: Utc::now(),
        })
    }

    fn done(
        &mut self,
        connection: usize,
        outcome: Result<ApiResponse, ConnectionError>,
        took: Duration,
    ) {
        let (Some(schedule), Some(progress)) = (
            self.schedules.get(connection),
            self.progress.get_mut(connection),
        ) else {
            return;
        };
        match progress.in_flight.take() {
            Some(Work::Renewal(index)) => {
                if schedule.writes_status(progress.round, index) {
                    progress.status_due = Some(index);
                }
                progress.position += 1;
                if progress.position == schedule.len() {
                    progress.position = 0;
                    progress.round += 1;
                }
                match outcome {
                    Ok(_) => self.tally.renewed(took),
                    Err(err) if err.is_not_found() => {
                        self.report(Report::LeaseMissing(index, took))
                    }
                    Err(err) => {
                        debug!(node = %self.names[index], "renewing the lease: {err}");
                        self.tally.renew_errors += 1;
                    }
                }
            }
            Some(Work::Status(index)) => {
                progress.status_due = None;
                match outcome {
                    Ok(_) => self.tally.status_updates += 1,
                    Err(err) => {
                        debug!(node = %self.names[index], "writing the node status: {err}");
                        self.tally.status_errors += 1;
                    }
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connections_nodes_spread_over_the_slots_of_a_round() {
        let first = Instant::now();
        let second = Duration::from_secs(1);
        // 10 nodes over 3 connections: connection 1 has nodes 1, 4, 7.
        let schedule = Schedule::new(10, 1, 3, 10 * second, 60 * second, first);
        assert_eq!(schedule.len(), 3);
        let round0: Vec<_> = (0..3).map(|p| schedule.at(0, p)).collect();
        assert_eq!(
            round0,
            [
                (1, first),
                (4, first + Duration::from_millis(3300)),
                (7, first + Duration::from_millis(6600)),
            ]
        );
        assert_eq!(
            schedule.at(2, 1),
            (4, first + 20 * second + Duration::from_millis(3300))
        );
        // A status write every 6th round, a node's own.
        let rounds: Vec<usize> = (0..13).filter(|&r| schedule.writes_status(r, 4)).collect();
        assert_eq!(rounds, [2, 8]);
        // More connections than nodes: some carry none.
        assert_eq!(
            Schedule::new(2, 5, 8, 10 * second, 60 * second, first).len(),
            0
        );
    }

    #[test]
    fn the_ring_schedule_renews_in_order_and_writes_status_after_the_renewal() {
        let first = Instant::now() - Duration::from_secs(100);
        let second = Duration::from_secs(1);
        let (reports, mut received) = mpsc::unbounded_channel();
        let mut ring = RingSchedule::new(
            vec![Schedule::new(2, 0, 1, 10 * second, 10 * second, first)],
            vec!["h-0".into(), "h-1".into()],
            vec![0, 1],
            Facts::new(4, 1 << 30),
            reports,
        );
        let ok = || {
            Ok(ApiResponse {
                status: 200,
                body: Vec::new(),
            })
        };
        let now = Instant::now();
        // Late by many rounds: everything is due at once; every round writes status.
        let mut sent = Vec::new();
        for _ in 0..4 {
            match ring.next(0, now) {
                Next::Send(Request::RenewLease { node, .. }) => sent.push(format!("lease {node}")),
                Next::Send(Request::NodeStatus { node, patch }) => {
                    assert!(!patch.is_empty());
                    sent.push(format!("status {node}"));
                }
                Next::At(_) => panic!("due"),
            }
            ring.done(0, ok(), Duration::from_millis(2));
        }
        assert_eq!(sent, ["lease h-0", "status h-0", "lease h-1", "status h-1"]);
        // A missing Lease goes to the simulator to be made anew; other errors are counted.
        assert!(matches!(
            ring.next(0, now),
            Next::Send(Request::RenewLease { node: "h-0", .. })
        ));
        let missing = ConnectionError::Status {
            status: 404,
            message: String::new(),
        };
        ring.done(0, Err(missing), Duration::ZERO);
        assert!(matches!(
            received.try_recv(),
            Ok(Report::LeaseMissing(0, _))
        ));
        assert!(matches!(
            ring.next(0, now),
            Next::Send(Request::NodeStatus { node: "h-0", .. })
        ));
        ring.done(0, Err(ConnectionError::Closed), Duration::ZERO);
        assert_eq!(ring.tally.renewals.len(), 2);
        assert_eq!(
            (ring.tally.status_updates, ring.tally.status_errors),
            (2, 1)
        );
    }
}
