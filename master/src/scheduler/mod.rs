//! The scheduler: follows nodes and unbound pods through the master's shared informers and
//! binds each pod to the best node that can run it — kube-scheduler's loop, with every
//! feasible node scored.
//!
//! One module per concern: `informer` turns the shared informers' changes into [`Update`]s; `cache` keeps the
//! cluster in a columnar layout (nodes, the pods on them, assumed pods, Services); `queue`
//! orders waiting pods and backs off those that do not fit; `filter` and `score` are the
//! plugins, `schedule_one` the decision over them; `bind` writes the Binding; `events` the
//! Events and the Unschedulable condition.
//!
//! The decisions run on a thread of their own ([`Scheduler`] owns all state, no locks):
//! it applies updates in order, pops a pod, decides, assumes the pod on its node and hands
//! the binding to the async runtime, which reports back. Deciding never waits for the API.

pub mod bind;
pub mod bitset;
pub mod cache;
pub mod events;
pub mod filter;
pub mod informer;
pub mod node_info;
pub mod pod_info;
pub mod queue;
pub mod schedule_one;
pub mod score;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::controllers::informers::Informers;
use bind::BindOutcome;
use cache::NodeCache;
use informer::{Feeds, Kind, Update};
use pod_info::PodInfo;
use queue::{QueueConfig, SchedulingQueue};
use schedule_one::Scratch;
use score::ScoreWeights;
use skiff_api::events::{EventType, Recorder};

/// How often pods unschedulable for too long are retried anyway.
const FLUSH_INTERVAL: Duration = Duration::from_secs(30);
/// How often the scheduler logs what it did (when it did something).
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// How the scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// The `spec.schedulerName` of the pods it schedules.
    pub scheduler_name: String,
    /// Score plugin weights.
    pub weights: ScoreWeights,
    /// Backoff and retry timing.
    pub queue: QueueConfig,
    /// Bindings and status updates in flight at once.
    pub max_concurrent_writes: usize,
    /// `reportingInstance` of its Events.
    pub instance: String,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            scheduler_name: events::COMPONENT.to_string(),
            weights: ScoreWeights::default(),
            queue: QueueConfig::default(),
            max_concurrent_writes: 256,
            instance: "skiff-master".to_string(),
        }
    }
}

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scheduling thread could not be started.
    #[error("starting the scheduling thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The scheduling thread panicked.
    #[error("the scheduling thread panicked: {0}")]
    Panicked(String),
    /// The API server URL does not parse.
    #[error("API server URL {0:?} does not parse")]
    Url(String),
    /// The CA certificate is not PEM.
    #[error("reading the cluster CA: {0}")]
    Ca(String),
    /// The API client could not be built.
    #[error("building the API client: {0}")]
    Client(#[source] kube::Error),
}

/// A client of the API server at `server_url` (`https://127.0.0.1:6443`) that trusts only
/// the cluster CA and authenticates with `token` — how the scheduler and the controllers
/// reach the API, like any other client.
///
/// At most [`MAX_REQUESTS_IN_FLIGHT`] requests are in flight at once (a watch counts until its
/// answer begins): over HTTP/1.1 each request in flight takes a connection, so a controller's
/// burst of hundreds of concurrent pod creates would otherwise open, and TLS-handshake, as
/// many connections; here they queue for the ones the pool keeps.
pub fn client(server_url: &str, ca_pem: &str, token: &str) -> Result<kube::Client, Error> {
    let url = server_url
        .parse()
        .map_err(|_| Error::Url(server_url.to_string()))?;
    let certs = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .map(|c| c.map(|der| der.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Ca(e.to_string()))?;
    if certs.is_empty() {
        return Err(Error::Ca("no certificate in the PEM".into()));
    }
    let mut config = kube::Config::new(url);
    config.root_cert = Some(certs);
    config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
    let builder = kube::client::ClientBuilder::try_from(config).map_err(Error::Client)?;
    Ok(builder
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(
            MAX_REQUESTS_IN_FLIGHT,
        ))
        .build())
}

/// Requests the master's own client has in flight at most.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 64;

/// What the scheduling thread asks the runtime to do for a pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write the Binding of the pod (already assumed on the node).
    Bind {
        /// The pod.
        pod: Arc<PodInfo>,
        /// Its node.
        node: String,
    },
    /// The pod fits nowhere: tell the user.
    Unschedulable {
        /// The pod.
        pod: Arc<PodInfo>,
        /// kube-scheduler's message (`0/3 nodes are available: ...`).
        message: String,
        /// Whether its PodScheduled condition must be (re)written.
        update_condition: bool,
    },
}

/// Counters since the last report.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    scheduled: u64,
    unschedulable: u64,
    bind_failures: u64,
    /// Time spent deciding.
    decision_time: Duration,
    /// First attempts, and their time from queued to decided.
    first_attempts: u64,
    queue_wait: Duration,
    /// Bindings finished, and their time from decided to written.
    bindings: u64,
    binding_time: Duration,
}

/// The scheduler's state: cache, queue and configuration. Driven by [`Scheduler::handle`]
/// and [`Scheduler::next_action`]; pure (no I/O), so it can be tested without a cluster.
#[derive(Debug)]
pub struct Scheduler {
    cache: NodeCache,
    queue: SchedulingQueue,
    config: SchedulerConfig,
    scratch: Scratch,
    synced: HashSet<Kind>,
    stats: Stats,
    /// Bindings dispatched and not yet reported back, by pod uid.
    binding: HashMap<String, Instant>,
}

impl Scheduler {
    /// A scheduler with an empty cache; it decides nothing until nodes, pods and Services
    /// have each been listed once.
    pub fn new(config: SchedulerConfig) -> Self {
        Self {
            cache: NodeCache::new(),
            queue: SchedulingQueue::new(config.queue),
            config,
            scratch: Scratch::default(),
            synced: HashSet::new(),
            stats: Stats::default(),
            binding: HashMap::new(),
        }
    }

    /// The cluster as it sees it.
    pub fn cache(&self) -> &NodeCache {
        &self.cache
    }

    /// The pods waiting.
    pub fn queue(&self) -> &SchedulingQueue {
        &self.queue
    }

    /// Whether the Node, Pod and Service informers have each listed once.
    pub fn synced(&self) -> bool {
        [Kind::Node, Kind::Pod, Kind::Service]
            .iter()
            .all(|k| self.synced.contains(k))
    }

    /// Applies one update.
    pub fn handle(&mut self, update: Update, now: Instant) {
        match update {
            Update::Node(info) => {
                if self.cache.apply_node(info) {
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
            Update::NodeDeleted(name) => {
                self.cache.remove_node(&name);
            }
            Update::Pod(info) => self.apply_pod(info, now),
            Update::PodDeleted(uid) => {
                self.queue.remove(&uid);
                if self.cache.remove_pod(&uid) {
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
            Update::Service(service) => self.cache.apply_service(service),
            Update::ServiceDeleted { namespace, name } => {
                self.cache.remove_service(&namespace, &name)
            }
            Update::Synced(kind) => {
                if self.synced.insert(kind) {
                    debug!(?kind, "synced");
                }
            }
            Update::BindDone { uid, node, outcome } => {
                if let Some(started) = self.binding.remove(&uid) {
                    self.stats.bindings += 1;
                    self.stats.binding_time += now.saturating_duration_since(started);
                }
                self.bind_done(uid, node, outcome, now)
            }
            Update::RetryPod(uid) => self.queue.retry_unschedulable(&uid, now),
            Update::Shutdown => {}
        }
    }

    fn bind_done(&mut self, uid: String, node: String, outcome: BindOutcome, now: Instant) {
        match outcome {
            BindOutcome::Bound => self.queue.remove(&uid),
            BindOutcome::Drop(reason) => {
                self.stats.bind_failures += 1;
                debug!(%uid, %node, %reason, "binding dropped");
                self.queue.remove(&uid);
                if self.cache.forget(&uid) {
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
            BindOutcome::Retry(reason) => {
                self.stats.bind_failures += 1;
                warn!(%uid, %node, %reason, "binding failed; retrying after backoff");
                if self.cache.forget(&uid) {
                    self.queue.move_all_to_active_or_backoff(now);
                }
                self.queue.retry_after_backoff(&uid, now);
            }
        }
    }

    fn apply_pod(&mut self, info: Arc<PodInfo>, now: Instant) {
        if self.cache.apply_pod(info.clone()) {
            self.queue.move_all_to_active_or_backoff(now);
        }
        let waiting = info.node_name.is_none()
            && !info.terminal
            && !info.deleting
            && info.scheduler_name == self.config.scheduler_name;
        if !waiting {
            self.queue.remove(&info.uid);
        } else if !self.cache.pod(&info.uid).is_some_and(|p| p.assumed)
            || self.queue.contains(&info.uid)
        {
            // An assumed pod whose binding is in flight is only refreshed, not queued again.
            self.queue.add(info, now);
        }
    }

    /// Whether a pod could be decided now.
    pub fn has_work(&mut self, now: Instant) -> bool {
        self.synced() && self.queue.has_ready(now)
    }

    /// Decides the next ready pod, if any: assumes it on the best node and asks for its
    /// binding, or reports it unschedulable.
    pub fn next_action(&mut self, now: Instant) -> Option<Action> {
        if !self.synced() {
            return None;
        }
        while let Some(pod) = self.queue.pop(now) {
            if self.cache.pod(&pod.uid).is_some() {
                // Bound (or assumed) meanwhile.
                self.queue.remove(&pod.uid);
                continue;
            }
            if let Some((added, 1)) = self.queue.history(&pod.uid) {
                self.stats.first_attempts += 1;
                self.stats.queue_wait += now.saturating_duration_since(added);
            }
            let started = Instant::now();
            let decision = schedule_one::schedule_one(
                &self.cache,
                &pod,
                &self.config.weights,
                &mut self.scratch,
            );
            self.stats.decision_time += started.elapsed();
            return Some(match decision {
                Ok(d) => {
                    let node = self.cache.node_name(d.slot).to_string();
                    self.cache.assume(pod.clone(), d.slot);
                    self.stats.scheduled += 1;
                    self.binding.insert(pod.uid.clone(), now);
                    Action::Bind { pod, node }
                }
                Err(fit) => {
                    self.queue.mark_unschedulable(&pod.uid, now);
                    self.stats.unschedulable += 1;
                    let message = fit.to_string();
                    debug!(pod = %pod.key(), %message, "unschedulable");
                    Action::Unschedulable {
                        update_condition: !events::condition_is_current(&pod, &message),
                        pod,
                        message,
                    }
                }
            });
        }
        None
    }

    /// When a backing-off pod becomes ready, if one is.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.queue.next_backoff_end()
    }

    /// Retries pods that have been unschedulable for too long.
    pub fn flush(&mut self, now: Instant) {
        self.queue.flush_unschedulable_leftover(now);
    }

    fn report(&mut self, events_dropped: u64) {
        let s = std::mem::take(&mut self.stats);
        if s.scheduled + s.unschedulable + s.bind_failures == 0 {
            return;
        }
        let mean_us =
            |total: Duration, n: u64| (total.as_secs_f64() * 1e6 / n.max(1) as f64) as u64;
        let lengths = self.queue.lengths();
        info!(
            scheduled = s.scheduled,
            unschedulable = s.unschedulable,
            bind_failures = s.bind_failures,
            nodes = self.cache.node_count(),
            mean_decision_us = mean_us(s.decision_time, s.scheduled + s.unschedulable),
            mean_queue_wait_ms = mean_us(s.queue_wait, s.first_attempts) / 1000,
            mean_binding_ms = mean_us(s.binding_time, s.bindings) / 1000,
            binding = self.binding.len(),
            queue_active = lengths.active,
            queue_backoff = lengths.backoff,
            queue_unschedulable = lengths.unschedulable,
            events_dropped,
            "scheduler"
        );
    }
}

/// The scheduler on the shared informers (it subscribes now, before they start): binds
/// through `client` until `shutdown` completes. Must run on a tokio runtime (its feeds and
/// bindings run there).
pub fn run(
    client: kube::Client,
    config: SchedulerConfig,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), Error>> + Send + 'static {
    let feeds = Feeds::subscribe(informers);
    run_on(client, config, feeds, shutdown)
}

async fn run_on(
    client: kube::Client,
    config: SchedulerConfig,
    feeds: Feeds,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let informers = feeds.spawn(&tx);
    let dispatcher = Dispatcher {
        recorder: events::recorder(&client, &config.instance),
        client,
        permits: Arc::new(Semaphore::new(config.max_concurrent_writes.max(1))),
        tx: tx.clone(),
        runtime: Handle::current(),
    };
    info!(weights = %config.weights, "scheduler started");
    let scheduler = Scheduler::new(config);
    // Dropped when the thread ends, by returning or by a panic: a scheduler that died is
    // noticed at once (and started again by its supervisor), not at shutdown.
    let (alive, ended) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || {
            let _alive = alive;
            scheduling_loop(scheduler, rx, dispatcher);
        })
        .map_err(Error::Thread)?;
    tokio::select! {
        () = shutdown => {}
        _ = ended => {}
    }
    for informer in &informers {
        informer.abort();
    }
    let _ = tx.send(Update::Shutdown);
    let joined = tokio::task::spawn_blocking(move || thread.join()).await;
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(panic)) => Err(Error::Panicked(skiff_api::restart::panic_message(&*panic))),
        Err(err) => Err(Error::Panicked(err.to_string())),
    }
}

/// The scheduling thread: apply every pending update, decide one pod, repeat; sleep when
/// there is nothing to decide until an update arrives or a backoff ends.
fn scheduling_loop(mut scheduler: Scheduler, rx: Receiver<Update>, dispatcher: Dispatcher) {
    let mut next_flush = Instant::now() + FLUSH_INTERVAL;
    let mut next_report = Instant::now() + REPORT_INTERVAL;
    loop {
        let now = Instant::now();
        let first = if scheduler.has_work(now) {
            rx.try_recv().ok()
        } else {
            let until = scheduler
                .next_wakeup()
                .unwrap_or(next_flush)
                .min(next_flush)
                .min(next_report);
            match rx.recv_timeout(until.saturating_duration_since(now)) {
                Ok(update) => Some(update),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let now = Instant::now();
        for update in first.into_iter().chain(rx.try_iter()) {
            if matches!(update, Update::Shutdown) {
                return;
            }
            scheduler.handle(update, now);
        }
        if now >= next_flush {
            scheduler.flush(now);
            next_flush = now + FLUSH_INTERVAL;
        }
        if now >= next_report {
            scheduler.report(dispatcher.recorder.dropped());
            next_report = now + REPORT_INTERVAL;
        }
        if let Some(action) = scheduler.next_action(now) {
            dispatcher.dispatch(action);
        }
    }
}

/// Carries out actions on the async runtime: bindings, status updates, Events.
struct Dispatcher {
    client: kube::Client,
    recorder: Recorder,
    permits: Arc<Semaphore>,
    tx: Sender<Update>,
    runtime: Handle,
}

impl Dispatcher {
    fn dispatch(&self, action: Action) {
        let client = self.client.clone();
        let recorder = self.recorder.clone();
        let permits = self.permits.clone();
        match action {
            Action::Bind { pod, node } => {
                let tx = self.tx.clone();
                self.runtime.spawn(async move {
                    let outcome = {
                        let _permit = permits.acquire().await;
                        bind::bind(&client, &pod, &node).await
                    };
                    match &outcome {
                        BindOutcome::Bound => recorder.record(
                            events::pod_ref(&pod),
                            EventType::Normal,
                            events::REASON_SCHEDULED,
                            events::scheduled_message(&pod, &node),
                        ),
                        BindOutcome::Drop(reason) | BindOutcome::Retry(reason) => recorder.record(
                            events::pod_ref(&pod),
                            EventType::Warning,
                            events::REASON_FAILED_SCHEDULING,
                            format!("Binding rejected: {reason}"),
                        ),
                    }
                    let _ = tx.send(Update::BindDone {
                        uid: pod.uid.clone(),
                        node,
                        outcome,
                    });
                });
            }
            Action::Unschedulable {
                pod,
                message,
                update_condition,
            } => {
                recorder.record(
                    events::pod_ref(&pod),
                    EventType::Warning,
                    events::REASON_FAILED_SCHEDULING,
                    message.clone(),
                );
                if update_condition {
                    let tx = self.tx.clone();
                    self.runtime.spawn(async move {
                        let _permit = permits.acquire().await;
                        match events::set_unschedulable(&client, &pod, &message).await {
                            Ok(()) => {}
                            Err(kube::Error::Api(e)) if e.code == 404 => {
                                debug!(pod = %pod.key(), error = %e, "condition not written")
                            }
                            // The pod changed since the decision: decide it again.
                            Err(kube::Error::Api(e)) if e.code == 409 => {
                                debug!(pod = %pod.key(), error = %e, "condition not written");
                                let _ = tx.send(Update::RetryPod(pod.uid.clone()));
                            }
                            Err(e) => {
                                warn!(pod = %pod.key(), error = %e, "writing PodScheduled failed")
                            }
                        }
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scheduler::node_info::{NodeInfo, Readiness};
    use crate::scheduler::pod_info::Resources;

    fn node(name: &str, milli_cpu: i64) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            allocatable: Resources {
                milli_cpu,
                memory: 1 << 30,
                scalar: Vec::new(),
            },
            allocatable_pods: 110,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            unschedulable: false,
            readiness: Readiness::Ready,
        }
    }

    fn pod(uid: &str, milli_cpu: i64) -> PodInfo {
        PodInfo {
            uid: uid.into(),
            namespace: "default".into(),
            name: uid.into(),
            scheduler_name: events::COMPONENT.into(),
            requests: Resources {
                milli_cpu,
                memory: 0,
                scalar: Vec::new(),
            },
            non_zero_milli_cpu: milli_cpu,
            non_zero_memory: 1,
            ..Default::default()
        }
    }

    fn synced(now: Instant) -> Scheduler {
        let mut s = Scheduler::new(SchedulerConfig::default());
        for kind in [Kind::Node, Kind::Pod, Kind::Service] {
            s.handle(Update::Synced(kind), now);
        }
        s
    }

    fn bind_target(action: Option<Action>) -> Option<String> {
        match action {
            Some(Action::Bind { node, .. }) => Some(node),
            _ => None,
        }
    }

    #[test]
    fn nothing_is_decided_before_every_watch_listed() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig::default());
        s.handle(Update::Node(node("a", 1000)), now);
        s.handle(Update::Pod(Arc::new(pod("p", 100))), now);
        assert!(s.next_action(now).is_none());
        for kind in [Kind::Node, Kind::Pod] {
            s.handle(Update::Synced(kind), now);
        }
        assert!(s.next_action(now).is_none(), "Services not synced yet");
        s.handle(Update::Synced(Kind::Service), now);
        assert_eq!(bind_target(s.next_action(now)).as_deref(), Some("a"));
    }

    #[test]
    fn a_binding_is_assumed_then_confirmed_by_the_watch() {
        let now = Instant::now();
        let mut s = synced(now);
        s.handle(Update::Node(node("a", 1000)), now);
        s.handle(Update::Pod(Arc::new(pod("p", 600))), now);
        assert_eq!(bind_target(s.next_action(now)).as_deref(), Some("a"));
        assert!(s.cache().pod("p").is_some_and(|p| p.assumed));
        // A second pod does not fit beside the assumed one.
        s.handle(Update::Pod(Arc::new(pod("q", 600))), now);
        assert!(matches!(
            s.next_action(now),
            Some(Action::Unschedulable { .. })
        ));
        s.handle(
            Update::BindDone {
                uid: "p".into(),
                node: "a".into(),
                outcome: BindOutcome::Bound,
            },
            now,
        );
        let mut bound = pod("p", 600);
        bound.node_name = Some("a".into());
        s.handle(Update::Pod(Arc::new(bound)), now);
        assert!(s.cache().pod("p").is_some_and(|p| !p.assumed));
        assert!(!s.queue().contains("p"));
        // Deleting it frees the node: the waiting pod is retried after its backoff.
        s.handle(Update::PodDeleted("p".into()), now);
        assert!(s.next_action(now).is_none());
        let later = now + Duration::from_secs(1);
        assert_eq!(bind_target(s.next_action(later)).as_deref(), Some("a"));
    }

    #[test]
    fn a_failed_binding_is_forgotten_and_retried_after_backoff() {
        let now = Instant::now();
        let mut s = synced(now);
        s.handle(Update::Node(node("a", 1000)), now);
        s.handle(Update::Pod(Arc::new(pod("p", 600))), now);
        assert!(bind_target(s.next_action(now)).is_some());
        s.handle(
            Update::BindDone {
                uid: "p".into(),
                node: "a".into(),
                outcome: BindOutcome::Retry("connection reset".into()),
            },
            now,
        );
        assert!(s.cache().pod("p").is_none(), "the assumption is forgotten");
        assert!(s.next_action(now).is_none(), "not in a hot loop");
        let later = now + Duration::from_secs(1);
        assert_eq!(bind_target(s.next_action(later)).as_deref(), Some("a"));
    }

    #[test]
    fn a_binding_of_a_gone_pod_is_dropped() {
        let now = Instant::now();
        let mut s = synced(now);
        s.handle(Update::Node(node("a", 1000)), now);
        s.handle(Update::Pod(Arc::new(pod("p", 600))), now);
        assert!(bind_target(s.next_action(now)).is_some());
        s.handle(
            Update::BindDone {
                uid: "p".into(),
                node: "a".into(),
                outcome: BindOutcome::Drop("pods \"p\" not found".into()),
            },
            now,
        );
        assert!(s.cache().pod("p").is_none());
        assert!(!s.queue().contains("p"));
        assert!(s.next_action(now + Duration::from_secs(60)).is_none());
    }

    #[test]
    fn other_schedulers_pods_and_bound_pods_are_not_queued() {
        let now = Instant::now();
        let mut s = synced(now);
        s.handle(Update::Node(node("a", 1000)), now);
        let mut other = pod("o", 100);
        other.scheduler_name = "my-scheduler".into();
        s.handle(Update::Pod(Arc::new(other)), now);
        let mut preset = pod("n", 300);
        preset.node_name = Some("a".into());
        s.handle(Update::Pod(Arc::new(preset)), now);
        assert!(s.next_action(now).is_none());
        assert_eq!(
            s.cache().columns().free_milli_cpu[s.cache().slot("a").expect("slot")],
            700,
            "a pod bound by someone else still counts"
        );
    }

    #[test]
    fn what_a_relist_lost_is_forgotten() {
        use k8s_openapi::api::core::v1::Node;
        use kube::runtime::reflector::store::Writer;

        use crate::controllers::informers::resolve;

        let now = Instant::now();
        let mut s = synced(now);
        s.handle(Update::Node(node("a", 1000)), now);
        s.handle(Update::Node(node("b", 1000)), now);
        let mut bound = pod("p", 300);
        bound.node_name = Some("a".into());
        s.handle(Update::Pod(Arc::new(bound)), now);
        s.handle(Update::Pod(Arc::new(pod("q", 100))), now);
        // The informers relisted: node "a" and both pods are gone from their caches, and
        // each is told as a changed object.
        let mut b = Node::default();
        b.metadata.name = Some("b".into());
        let mut nodes = Writer::default();
        nodes.apply_watcher_event(&kube::runtime::watcher::Event::Apply(b));
        let nodes = nodes.as_reader();
        let pods = Writer::<skiff_api::pod::CachedPod>::default().as_reader();
        let mut a = Node::default();
        a.metadata.name = Some("a".into());
        let update = informer::node_update(resolve(&nodes, Arc::new(a))).expect("an update");
        s.handle(update, now);
        for uid in ["p", "q"] {
            let mut gone = skiff_api::pod::CachedPod::default();
            gone.metadata.name = Some(uid.into());
            gone.metadata.namespace = Some("default".into());
            gone.metadata.uid = Some(uid.into());
            let update = informer::pod_update(resolve(&pods, Arc::new(gone))).expect("an update");
            s.handle(update, now);
        }
        assert_eq!(s.cache().node_count(), 1);
        assert!(s.cache().pod("p").is_none());
        assert!(!s.queue().contains("q"));
        assert!(s.next_action(now).is_none());
    }
}
