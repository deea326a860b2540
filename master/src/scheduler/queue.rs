//! The scheduling queue, after kube-scheduler's: pods waiting to be scheduled in the active
//! queue (highest `spec.priority` first, then arrival order); pods that did not fit wait as
//! unschedulable until the cluster changes (a node added or changed, a pod deleted), then retry
//! after their backoff (1 s, doubling per attempt, at most 10 s); a failed binding retries after
//! its backoff. Nothing is retried in a hot loop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pod_info::PodInfo;

/// Queue timing.
#[derive(Clone, Copy, Debug)]
pub struct QueueConfig {
    /// Backoff after the first failed attempt.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// An unschedulable pod is retried after this long even if nothing changed.
    pub max_unschedulable: Duration,
}

impl Default for QueueConfig {
    /// kube-scheduler's: 1 s, 10 s, 5 min.
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the active queue, waiting its turn.
    Active,
    /// Waiting for its backoff to end.
    Backoff(Instant),
    /// Did not fit; waits for a change in the cluster (since the instant given).
    Unschedulable(Instant),
    /// Popped: being decided or bound.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    info: Arc<PodInfo>,
    state: State,
    /// Order within a priority; renewed whenever the pod re-enters the active queue.
    seq: u64,
    attempts: u32,
    last_attempt: Option<Instant>,
    /// When the pod was first queued.
    added: Instant,
}

/// Counts by state, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLengths {
    /// Waiting their turn.
    pub active: usize,
    /// Waiting for backoff.
    pub backoff: usize,
    /// Waiting for the cluster to change.
    pub unschedulable: usize,
    /// Being decided or bound.
    pub in_flight: usize,
}

/// Pods waiting to be scheduled.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    config: QueueConfig,
    entries: HashMap<String, Entry>,
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    /// Pods marked unschedulable (some may have moved on since), so a cluster change costs
    /// in proportion to them, not to every pod waiting.
    unschedulable: HashSet<String>,
    next_seq: u64,
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Adds a new unbound pod, or updates one already queued. An update to a pod waiting as
    /// unschedulable retries it (after its backoff): its tolerations or selector may have
    /// changed. A status-only change (e.g. the scheduler's own condition) does not.
    pub fn add(&mut self, info: Arc<PodInfo>, now: Instant) {
        let Some(entry) = self.entries.get_mut(&info.uid) else {
            let uid = info.uid.clone();
            let priority = info.priority;
            let seq = self.bump();
            self.entries.insert(
                uid.clone(),
                Entry {
                    info,
                    state: State::Active,
                    seq,
                    attempts: 0,
                    last_attempt: None,
                    added: now,
                },
            );
            self.active.push((priority, Reverse(seq), uid));
            return;
        };
        let relevant = !same_for_scheduling(&entry.info, &info);
        entry.info = info;
        if relevant && matches!(entry.state, State::Unschedulable(_)) {
            let uid = entry.info.uid.clone();
            self.requeue(&uid, now);
        } else if relevant && entry.state == State::Active {
            // Priority may have changed: queue it again (the old heap entry goes stale).
            let uid = entry.info.uid.clone();
            self.activate(&uid);
        }
    }

    /// Removes a pod (bound, deleted, or no longer this scheduler's).
    pub fn remove(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// Keeps only the pods `keep` accepts (by uid), e.g. after a re-list.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|uid, _| keep(uid));
    }

    /// Retries one unschedulable pod after its backoff (its condition could not be written).
    pub fn retry_unschedulable(&mut self, uid: &str, now: Instant) {
        if self
            .entries
            .get(uid)
            .is_some_and(|e| matches!(e.state, State::Unschedulable(_)))
        {
            self.requeue(uid, now);
        }
    }

    /// When the pod was first queued and how many times it has been popped.
    pub fn history(&self, uid: &str) -> Option<(Instant, u32)> {
        self.entries.get(uid).map(|e| (e.added, e.attempts))
    }

    /// Whether the pod is queued in any state.
    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// The next pod to schedule, if one is ready: the highest priority, then the earliest.
    pub fn pop(&mut self, now: Instant) -> Option<Arc<PodInfo>> {
        self.flush_backoff(now);
        while let Some((_, Reverse(seq), uid)) = self.active.pop() {
            let Some(entry) = self.entries.get_mut(&uid) else {
                continue;
            };
            if entry.state != State::Active || entry.seq != seq {
                continue;
            }
            entry.state = State::InFlight;
            entry.attempts += 1;
            entry.last_attempt = Some(now);
            return Some(entry.info.clone());
        }
        None
    }

    /// The popped pod fits nowhere: it waits for the cluster to change.
    pub fn mark_unschedulable(&mut self, uid: &str, now: Instant) {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.state = State::Unschedulable(now);
            self.unschedulable.insert(uid.to_string());
        }
    }

    /// The popped pod's binding failed: retry it after its backoff.
    pub fn retry_after_backoff(&mut self, uid: &str, now: Instant) {
        if self.entries.contains_key(uid) {
            self.start_backoff(uid, now);
        }
    }

    /// Something changed that may let unschedulable pods fit: retry each after its backoff.
    pub fn move_all_to_active_or_backoff(&mut self, now: Instant) {
        for uid in std::mem::take(&mut self.unschedulable) {
            if self.is_unschedulable(&uid, |_| true) {
                self.requeue(&uid, now);
            }
        }
    }

    /// Retries pods unschedulable for longer than the configured limit, changed or not.
    pub fn flush_unschedulable_leftover(&mut self, now: Instant) {
        let limit = self.config.max_unschedulable;
        let waiting = std::mem::take(&mut self.unschedulable);
        for uid in waiting {
            if self.is_unschedulable(&uid, |since| now.duration_since(since) >= limit) {
                self.requeue(&uid, now);
            } else if self.is_unschedulable(&uid, |_| true) {
                self.unschedulable.insert(uid);
            }
        }
    }

    /// Whether a pod can be popped now.
    pub fn has_ready(&mut self, now: Instant) -> bool {
        self.flush_backoff(now);
        // Drop stale heap entries (removed or requeued pods) from the top until a live one.
        while let Some((_, Reverse(seq), uid)) = self.active.peek() {
            let live = self
                .entries
                .get(uid)
                .is_some_and(|e| e.state == State::Active && e.seq == *seq);
            if live {
                return true;
            }
            self.active.pop();
        }
        false
    }

    /// When the next backoff ends, if any pod is backing off.
    pub fn next_backoff_end(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _, _))| *at)
    }

    /// How many pods are in each state.
    pub fn lengths(&self) -> QueueLengths {
        let mut l = QueueLengths::default();
        for e in self.entries.values() {
            match e.state {
                State::Active => l.active += 1,
                State::Backoff(_) => l.backoff += 1,
                State::Unschedulable(_) => l.unschedulable += 1,
                State::InFlight => l.in_flight += 1,
            }
        }
        l
    }

    fn is_unschedulable(&self, uid: &str, since: impl Fn(Instant) -> bool) -> bool {
        self.entries
            .get(uid)
            .is_some_and(|e| matches!(e.state, State::Unschedulable(t) if since(t)))
    }

    fn backoff_duration(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.config
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.config.max_backoff)
    }

    /// To the active queue if its backoff is over, else to the backoff queue.
    fn requeue(&mut self, uid: &str, now: Instant) {
        let Some(entry) = self.entries.get(uid) else {
            return;
        };
        let ends = entry
            .last_attempt
            .map(|t| t + self.backoff_duration(entry.attempts));
        match ends {
            Some(ends) if ends > now => self.start_backoff(uid, now),
            _ => self.activate(uid),
        }
    }

    fn start_backoff(&mut self, uid: &str, now: Instant) {
        let Some(entry) = self.entries.get(uid) else {
            return;
        };
        let from = entry.last_attempt.unwrap_or(now);
        let ends = from + self.backoff_duration(entry.attempts);
        let seq = self.bump();
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.state = State::Backoff(ends);
            entry.seq = seq;
        }
        self.backoff.push(Reverse((ends, seq, uid.to_string())));
    }

    fn activate(&mut self, uid: &str) {
        let seq = self.bump();
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.state = State::Active;
            entry.seq = seq;
            self.active
                .push((entry.info.priority, Reverse(seq), uid.to_string()));
        }
    }

    fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((at, seq, _))) = self.backoff.peek() {
            if *at > now {
                break;
            }
            let seq = *seq;
            let Some(Reverse((_, _, uid))) = self.backoff.pop() else {
                break;
            };
            let current = self
                .entries
                .get(&uid)
                .is_some_and(|e| matches!(e.state, State::Backoff(_)) && e.seq == seq);
            if current {
                self.activate(&uid);
            }
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

/// Whether two versions of a pod schedule the same: everything but the resourceVersion and
/// the status the scheduler itself writes.
fn same_for_scheduling(a: &PodInfo, b: &PodInfo) -> bool {
    let strip = |p: &PodInfo| PodInfo {
        resource_version: String::new(),
        scheduled_condition: None,
        ..p.clone()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            uid: uid.into(),
            name: uid.into(),
            priority,
            ..Default::default()
        })
    }

    fn uids(q: &mut SchedulingQueue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| q.pop(now).map(|p| p.uid.clone())).collect()
    }

    #[test]
    fn priority_first_then_arrival() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(pod("a", 0), now);
        q.add(pod("b", 10), now);
        q.add(pod("c", 0), now);
        q.add(pod("d", 10), now);
        assert_eq!(uids(&mut q, now), ["b", "d", "a", "c"]);
        assert_eq!(q.lengths().in_flight, 4);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_cluster_change_then_their_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(pod("a", 0), t0);
        assert!(q.pop(t0).is_some());
        q.mark_unschedulable("a", t0);
        // Nothing changed: no retry, however often we look.
        assert!(q.pop(t0 + Duration::from_secs(60)).is_none());
        // A change within the backoff: retried once the backoff (1 s) ends.
        q.move_all_to_active_or_backoff(t0 + Duration::from_millis(200));
        assert!(q.pop(t0 + Duration::from_millis(500)).is_none());
        assert_eq!(q.next_backoff_end(), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(q.pop(t1).map(|p| p.uid.clone()).as_deref(), Some("a"));
        // Second failure: 2 s backoff.
        q.mark_unschedulable("a", t1);
        q.move_all_to_active_or_backoff(t1);
        assert!(q.pop(t1 + Duration::from_millis(1999)).is_none());
        assert!(q.pop(t1 + Duration::from_secs(2)).is_some());
    }

    #[test]
    fn backoff_is_capped() {
        let q = SchedulingQueue::new(QueueConfig::default());
        assert_eq!(q.backoff_duration(1), Duration::from_secs(1));
        assert_eq!(q.backoff_duration(3), Duration::from_secs(4));
        assert_eq!(q.backoff_duration(50), Duration::from_secs(10));
    }

    #[test]
    fn failed_bindings_retry_after_backoff_and_leftovers_are_flushed() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(pod("a", 0), t0);
        q.add(pod("b", 0), t0);
        q.pop(t0);
        q.pop(t0);
        q.retry_after_backoff("a", t0);
        q.mark_unschedulable("b", t0);
        assert!(q.pop(t0).is_none());
        assert_eq!(uids(&mut q, t0 + Duration::from_secs(1)), ["a"]);
        q.flush_unschedulable_leftover(t0 + Duration::from_secs(299));
        assert!(q.pop(t0 + Duration::from_secs(299)).is_none());
        q.flush_unschedulable_leftover(t0 + Duration::from_secs(300));
        assert_eq!(uids(&mut q, t0 + Duration::from_secs(300)), ["b"]);
    }

    #[test]
    fn updates_retry_an_unschedulable_pod_but_status_changes_do_not() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new(QueueConfig::default());
        q.add(pod("a", 0), t0);
        q.pop(t0);
        q.mark_unschedulable("a", t0);
        let mut status_only = (*pod("a", 0)).clone();
        status_only.resource_version = "9".into();
        q.add(Arc::new(status_only), t0);
        assert_eq!(q.lengths().unschedulable, 1);
        let mut relabeled = (*pod("a", 0)).clone();
        relabeled.labels = [("x", "y")].into_iter().collect();
        q.add(Arc::new(relabeled), t0);
        assert_eq!(q.lengths().backoff, 1);
        q.remove("a");
        assert!(q.pop(t0 + Duration::from_secs(5)).is_none());
        assert!(!q.contains("a"));
    }
}
