//! The garbage collector: deletes objects whose owners are gone, and carries out the
//! `Foreground` and `Orphan` deletions the API server starts (kube-controller-manager's
//! `garbagecollector` controller).
//!
//! An object names its owners in `metadata.ownerReferences` (by uid). As in Kubernetes:
//! - an object all of whose owners are gone (not found, or found with another uid) is
//!   deleted, with propagation `Background` (or the policy its own finalizers chose);
//! - an object with an owner left keeps living; references to owners that are gone, or that
//!   are deleting their dependents in the foreground, are removed from it;
//! - an owner being deleted with the finalizer `foregroundDeletion` has its dependents
//!   deleted (in the foreground themselves when they have dependents), and loses the
//!   finalizer once no dependent with `blockOwnerDeletion: true` is left, which lets the API
//!   server finish its delete;
//! - an owner being deleted with the finalizer `orphan` has its reference removed from every
//!   dependent, then loses the finalizer.
//!
//! The collector keeps a graph of owners and dependents, fed by the master's informers of the
//! kinds it monitors (pods, replica sets, deployments, replication controllers, daemon sets,
//! stateful sets and their controller revisions, jobs and cron jobs, services and their endpoint slices,
//! config maps, secrets, and the nodes and leases the node agents tie together): the shared
//! informers
//! the controllers and the scheduler read too, and metadata-only ones for the kinds nothing
//! else reads, as kube-controller-manager's collector takes typed informers where they exist
//! and metadata informers for the rest. It does nothing until every monitored kind has
//! listed once, so a dependent is never judged on a partial picture, and it confirms that
//! an owner is gone with a GET of the owner before it deletes anything.
//! Owners of kinds it does not watch are only ever looked up that way (the kind found
//! through discovery); an owner whose kind the API server does not serve counts as present.
//!
//! The files follow Kubernetes' package: `graph` (`graph.go`), `graph_builder`
//! (`graph_builder.go`), `operations` (`operations.go`); the decision, the work queue and
//! the sync loop are here (`garbagecollector.go`).

mod graph;
mod graph_builder;
mod operations;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, GroupVersionKind, Preconditions};
use kube::discovery::Scope;
use tokio::time::Instant;
use tracing::{debug, info};

use skiff_api::meta::{
    FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN_DEPENDENTS, PropagationPolicy,
};

use super::informers::Informers;
use graph::{Graph, Item};
use graph_builder::{Kind, KindEvent, monitors};

/// How often every object is looked at again, for owners of kinds without a watch (their
/// deletion sends no event) and anything a lost event left behind.
const RESYNC_PERIOD: Duration = Duration::from_secs(60);

/// The first retry of an object whose sync failed; each further failure doubles it.
const RETRY_BASE: Duration = Duration::from_millis(200);

/// The longest wait before a failed object is tried again.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Objects whose owners are looked up and which are deleted at once (kube-controller-manager's
/// `--concurrent-gc-syncs`): one at a time, each waiting for a GET and a DELETE in turn, the
/// collector deleted about 400 pods a second on a busy master.
const CONCURRENT_GC_SYNCS: usize = 20;

/// Most owner uids remembered as gone (uids are never reused, so a gone owner stays gone).
const ABSENT_OWNERS_MAX: usize = 10_000;

/// What a sync of one object can fail with (it is retried, with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Other writers kept changing the object.
    #[error("{0} keeps changing; will try again")]
    Contended(String),
}

/// The garbage collector on the master's informers (it subscribes now, before they start);
/// it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let (kinds, events) = monitors(informers);
    let collector = Collector::new(client, kinds);
    async move {
        info!(
            kinds = collector.shared.kinds.len(),
            "garbage collector started"
        );
        tokio::select! {
            () = collector.run(events) => {}
            () = shutdown => {}
        }
    }
}

/// What an owner reference of an object points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnerState {
    /// The owner exists and is not deleting its dependents.
    Solid,
    /// The owner exists and is being deleted in the foreground: its dependents go first.
    WaitingForDependentsDeletion,
    /// No such owner (not found, or found with another uid).
    Dangling,
}

/// What to do with an object, given what each of its owner references points to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    /// Leave it alone.
    Keep,
    /// Keep it but remove its references to these owners (by uid).
    RemoveOwnerReferences(Vec<String>),
    /// Delete it with this propagation policy.
    Delete(PropagationPolicy),
}

/// Kubernetes' `attemptToDeleteItem` decision: an object with an owner left lives on (without
/// its references to owners that are gone or deleting it); an object whose owners all are
/// gone or deleting it is deleted, in the foreground when an owner waits for it and it has
/// dependents of its own, else as its own finalizers say (`Background` by default).
fn decide(
    owners: &[(String, OwnerState)],
    has_dependents: bool,
    finalizers: &[String],
) -> Decision {
    if owners.is_empty() {
        return Decision::Keep;
    }
    let any = |state| owners.iter().any(|(_, s)| *s == state);
    if any(OwnerState::Solid) {
        let stale: Vec<String> = owners
            .iter()
            .filter(|(_, s)| *s != OwnerState::Solid)
            .map(|(uid, _)| uid.clone())
            .collect();
        return if stale.is_empty() {
            Decision::Keep
        } else {
            Decision::RemoveOwnerReferences(stale)
        };
    }
    if any(OwnerState::WaitingForDependentsDeletion) && has_dependents {
        return Decision::Delete(PropagationPolicy::Foreground);
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    Decision::Delete(if has(FINALIZER_ORPHAN_DEPENDENTS) {
        PropagationPolicy::Orphan
    } else if has(FINALIZER_DELETE_DEPENDENTS) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    })
}

/// Object uids waiting for a sync: each at most once, failed ones after a back-off, and
/// never one that is being synced (client-go's work queue: one queued while its sync runs
/// waits until [`WorkQueue::done`]).
#[derive(Debug, Default)]
struct WorkQueue {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    later: Vec<(Instant, String)>,
    failures: HashMap<String, u32>,
    /// Popped, not done yet.
    processing: HashSet<String>,
    /// Added while processing: queued again when done.
    dirty: HashSet<String>,
}

impl WorkQueue {
    fn add(&mut self, uid: String) {
        if self.processing.contains(&uid) {
            self.dirty.insert(uid);
        } else if self.queued.insert(uid.clone()) {
            self.ready.push_back(uid);
        }
    }

    /// The sync of `uid` (popped) ended; if it was added meanwhile, it is queued again.
    fn done(&mut self, uid: &str) {
        self.processing.remove(uid);
        if self.dirty.remove(uid) {
            self.add(uid.to_owned());
        }
    }

    /// Queues `uid` again after a back-off that grows with its failures.
    fn retry(&mut self, uid: String, now: Instant) {
        let failures = self.failures.entry(uid.clone()).or_insert(0);
        let delay = RETRY_BASE
            .saturating_mul(1 << (*failures).min(16))
            .min(RETRY_MAX);
        *failures += 1;
        self.later.push((now + delay, uid));
    }

    /// The sync of `uid` succeeded: its back-off starts over.
    fn forget(&mut self, uid: &str) {
        self.failures.remove(uid);
    }

    /// The next uid to sync, moving retries that are due to the ready ones first.
    fn pop(&mut self, now: Instant) -> Option<String> {
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.later)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.later = waiting;
        for (_, uid) in due {
            self.add(uid);
        }
        let uid = self.ready.pop_front()?;
        self.queued.remove(&uid);
        self.processing.insert(uid.clone());
        Some(uid)
    }

    /// When the next retry is due.
    fn next_retry(&self) -> Option<Instant> {
        self.later.iter().map(|(at, _)| *at).min()
    }
}

/// The collector's state: the graph, its work, and what its attempts share.
struct Collector {
    shared: Arc<Shared>,
    graph: Graph,
    queue: WorkQueue,
    /// Per monitored kind: whether its informer has listed once.
    synced: Vec<bool>,
}

/// What the attempts running beside each other share: the client, the monitored kinds and
/// what was learnt about owners.
struct Shared {
    client: kube::Client,
    kinds: Vec<Kind>,
    /// Owner uids a GET found gone.
    absent_owners: Mutex<HashSet<String>>,
    /// Kinds without a watch, found through discovery (`None`: not served).
    discovered: Mutex<HashMap<(String, String), Option<Kind>>>,
}

/// An attempt to delete one object (or remove its stale owner references), talking to the
/// API server on its own.
type Attempt = BoxFuture<'static, Result<(), Error>>;

impl Collector {
    fn new(client: kube::Client, kinds: Vec<Kind>) -> Self {
        Self {
            synced: vec![false; kinds.len()],
            shared: Arc::new(Shared {
                client,
                kinds,
                absent_owners: Mutex::default(),
                discovered: Mutex::default(),
            }),
            graph: Graph::default(),
            queue: WorkQueue::default(),
        }
    }

    async fn run(mut self, mut events: BoxStream<'static, KindEvent>) {
        let mut resync = tokio::time::interval_at(Instant::now() + RESYNC_PERIOD, RESYNC_PERIOD);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut attempts: FuturesUnordered<BoxFuture<'static, (String, Result<(), Error>)>> =
            FuturesUnordered::new();
        loop {
            // Take in every event already there, so that a sync sees the freshest graph.
            while let Some(next) = events.next().now_or_never() {
                let Some(event) = next else { return };
                self.observe(event);
            }
            while let Some(Some((uid, result))) = attempts.next().now_or_never() {
                self.synced_one(uid, result);
            }
            if self.synced.iter().all(|s| *s)
                && attempts.len() < CONCURRENT_GC_SYNCS
                && let Some(uid) = self.queue.pop(Instant::now())
            {
                match self.sync(&uid).await {
                    Ok(Some(attempt)) => {
                        attempts.push(attempt.map(|result| (uid, result)).boxed());
                    }
                    Ok(None) => self.synced_one(uid, Ok(())),
                    Err(err) => self.synced_one(uid, Err(err)),
                }
                continue;
            }
            let retry = self.queue.next_retry();
            tokio::select! {
                Some((uid, result)) = attempts.next(), if !attempts.is_empty() => {
                    self.synced_one(uid, result);
                }
                next = events.next() => match next {
                    Some(event) => self.observe(event),
                    None => return,
                },
                _ = resync.tick() => {
                    for uid in self.graph.items.keys() {
                        self.queue.add(uid.clone());
                    }
                }
                () = sleep_until(retry) => {}
            }
        }
    }

    /// The sync of `uid` ended (at once, or when its attempt did): a failed one is tried
    /// again after a back-off.
    fn synced_one(&mut self, uid: String, result: Result<(), Error>) {
        self.queue.done(&uid);
        match result {
            Ok(()) => self.queue.forget(&uid),
            Err(err) => {
                debug!(uid = %uid, "garbage collection: {err}");
                self.queue.retry(uid, Instant::now());
            }
        }
    }

    /// Closes the gap for one object: finishes its foreground or orphan deletion if it is an
    /// owner being deleted so; if its owners are gone, gives the attempt that deletes it
    /// (run beside others).
    async fn sync(&mut self, uid: &str) -> Result<Option<Attempt>, Error> {
        let Some(item) = self.graph.items.get(uid).cloned() else {
            return Ok(None);
        };
        if item.deleting {
            if item.has_finalizer(FINALIZER_DELETE_DEPENDENTS) {
                return self.delete_dependents(&item).await.map(|()| None);
            }
            if item.has_finalizer(FINALIZER_ORPHAN_DEPENDENTS) {
                return self.orphan_dependents(&item).await.map(|()| None);
            }
            return Ok(None);
        }
        if item.owners.is_empty() {
            return Ok(None);
        }
        // Every owner in the graph and not waiting for its dependents: nothing to do.
        let all_solid = item.owners.iter().all(|owner| {
            self.cached_owner(&item, owner)
                .is_some_and(|o| !o.deleting_dependents())
        });
        if all_solid {
            return Ok(None);
        }
        // What the graph knows of the owners, and of the object's dependents, goes with the
        // attempt; the rest it asks the API server.
        let known: Vec<(OwnerReference, OwnerState)> = item
            .owners
            .iter()
            .filter_map(|owner| {
                let found = self.cached_owner(&item, owner)?;
                let state = if found.deleting_dependents() {
                    OwnerState::WaitingForDependentsDeletion
                } else {
                    OwnerState::Solid
                };
                Some((owner.clone(), state))
            })
            .collect();
        let has_dependents = self.graph.has_dependents(&item.uid);
        let shared = self.shared.clone();
        Ok(Some(
            async move {
                shared
                    .attempt_to_delete(&item, &known, has_dependents)
                    .await
            }
            .boxed(),
        ))
    }

    /// The owner an owner reference of `item` points to, if the graph has it.
    fn cached_owner(&self, item: &Item, owner: &OwnerReference) -> Option<&Item> {
        let found = self.graph.items.get(&owner.uid)?;
        let kind = &self.shared.kinds[found.kind];
        (found.name == owner.name
            && kind.matches(&owner.api_version, &owner.kind)
            && item.may_be_owned_by(found, kind.namespaced))
        .then_some(found)
    }

    /// Foreground deletion of `owner`: its dependents are deleted; once none that blocks it
    /// is left, its `foregroundDeletion` finalizer goes (Kubernetes'
    /// processDeletingDependentsItem).
    async fn delete_dependents(&mut self, owner: &Item) -> Result<(), Error> {
        let namespaced = self.shared.kinds[owner.kind].namespaced;
        let mut blocking = 0;
        let mut todo = Vec::new();
        for dependent in self.graph.dependents_of(owner, namespaced) {
            let blocks = dependent
                .owners
                .iter()
                .any(|o| o.uid == owner.uid && o.block_owner_deletion == Some(true));
            if blocks {
                blocking += 1;
            }
            if !dependent.deleting {
                todo.push(dependent.uid.clone());
            }
        }
        for uid in todo {
            self.queue.add(uid);
        }
        if blocking > 0 {
            debug!(owner = %owner.name, blocking, "waiting for dependents to be deleted");
            return Ok(());
        }
        self.shared
            .remove_finalizer(owner, FINALIZER_DELETE_DEPENDENTS)
            .await
    }

    /// Orphaning deletion of `owner`: its reference is removed from every dependent, then its
    /// `orphan` finalizer goes (Kubernetes' orphanDependents).
    async fn orphan_dependents(&mut self, owner: &Item) -> Result<(), Error> {
        let namespaced = self.shared.kinds[owner.kind].namespaced;
        let dependents: Vec<Item> = self
            .graph
            .dependents_of(owner, namespaced)
            .cloned()
            .collect();
        for dependent in &dependents {
            self.shared
                .remove_owner_references(dependent, std::slice::from_ref(&owner.uid))
                .await?;
        }
        if !dependents.is_empty() {
            info!(
                kind = %self.shared.kinds[owner.kind].resource.kind,
                name = %owner.name,
                dependents = dependents.len(),
                "orphaned the dependents of an object being deleted"
            );
        }
        self.shared
            .remove_finalizer(owner, FINALIZER_ORPHAN_DEPENDENTS)
            .await
    }
}

impl Shared {
    /// Owner uids a GET found gone (never held across an await).
    fn absent_owners(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.absent_owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Kinds found through discovery (never held across an await).
    fn discovered(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Option<Kind>>> {
        self.discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks at `item` as the API server has it now, and at each of its owners, then deletes
    /// it or removes its stale owner references (Kubernetes' attemptToDeleteItem).
    async fn attempt_to_delete(
        &self,
        item: &Item,
        known: &[(OwnerReference, OwnerState)],
        has_dependents: bool,
    ) -> Result<(), Error> {
        let api = self.api(&self.kinds[item.kind], item.namespace.as_deref());
        let Some(latest) = api.get_opt(&item.name).await? else {
            return Ok(());
        };
        if latest.metadata.uid.as_deref() != Some(item.uid.as_str())
            || latest.metadata.deletion_timestamp.is_some()
        {
            // Another object now, or already going: the watch brings what happens next.
            return Ok(());
        }
        let owners = latest.metadata.owner_references.clone().unwrap_or_default();
        let mut states = Vec::with_capacity(owners.len());
        for owner in &owners {
            let state = match known.iter().find(|(o, _)| o == owner) {
                Some((_, state)) => *state,
                None => self.owner_state(item, owner).await?,
            };
            states.push((owner.uid.clone(), state));
        }
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        match decide(&states, has_dependents, &finalizers) {
            Decision::Keep => Ok(()),
            Decision::RemoveOwnerReferences(uids) => {
                info!(
                    kind = %self.kinds[item.kind].resource.kind,
                    namespace = item.namespace.as_deref().unwrap_or(""),
                    name = %item.name,
                    owners = ?uids,
                    "removing references to owners that are gone or deleting"
                );
                self.remove_owner_references(item, &uids).await
            }
            Decision::Delete(policy) => {
                debug!(
                    kind = %self.kinds[item.kind].resource.kind,
                    namespace = item.namespace.as_deref().unwrap_or(""),
                    name = %item.name,
                    propagation_policy = policy.as_str(),
                    "deleting a dependent whose owners are gone or being deleted"
                );
                let params = DeleteParams {
                    propagation_policy: Some(match policy {
                        PropagationPolicy::Orphan => kube::api::PropagationPolicy::Orphan,
                        PropagationPolicy::Background => kube::api::PropagationPolicy::Background,
                        PropagationPolicy::Foreground => kube::api::PropagationPolicy::Foreground,
                    }),
                    preconditions: Some(Preconditions {
                        uid: Some(item.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&item.name, &params).await {
                    Ok(_) => Ok(()),
                    // Gone already, or replaced by another object of the same name.
                    Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
                    Err(err) => Err(err.into()),
                }
            }
        }
    }

    /// What an owner reference of `item` the graph does not have points to, by a GET of the
    /// owner (an owner whose kind is not served counts as present).
    async fn owner_state(&self, item: &Item, owner: &OwnerReference) -> Result<OwnerState, Error> {
        if self.absent_owners().contains(&owner.uid) {
            return Ok(OwnerState::Dangling);
        }
        let Some(kind) = self.kind_of(owner).await? else {
            debug!(
                api_version = %owner.api_version,
                kind = %owner.kind,
                "owner of a kind the API server does not serve; keeping its dependents"
            );
            return Ok(OwnerState::Solid);
        };
        if kind.namespaced && item.namespace.is_none() {
            // A cluster-scoped object cannot have a namespaced owner.
            return Ok(OwnerState::Dangling);
        }
        let api = self.api(&kind, item.namespace.as_deref());
        let state = match api.get_opt(&owner.name).await? {
            Some(found) if found.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                let deleting_dependents = found.metadata.deletion_timestamp.is_some()
                    && found
                        .metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == FINALIZER_DELETE_DEPENDENTS);
                if deleting_dependents {
                    OwnerState::WaitingForDependentsDeletion
                } else {
                    OwnerState::Solid
                }
            }
            _ => {
                let mut absent = self.absent_owners();
                if absent.len() >= ABSENT_OWNERS_MAX {
                    absent.clear();
                }
                absent.insert(owner.uid.clone());
                OwnerState::Dangling
            }
        };
        Ok(state)
    }

    /// The kind an owner reference names: a watched one, or one found through discovery.
    async fn kind_of(&self, owner: &OwnerReference) -> Result<Option<Kind>, Error> {
        if let Some(kind) = self
            .kinds
            .iter()
            .find(|k| k.matches(&owner.api_version, &owner.kind))
        {
            return Ok(Some(kind.clone()));
        }
        let key = (owner.api_version.clone(), owner.kind.clone());
        if let Some(known) = self.discovered().get(&key) {
            return Ok(known.clone());
        }
        let (group, version) = match owner.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", owner.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &owner.kind);
        let kind = match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((resource, capabilities)) => Some(Kind {
                resource,
                namespaced: capabilities.scope == Scope::Namespaced,
            }),
            Err(kube::Error::Discovery(_)) => None,
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(err) => return Err(err.into()),
        };
        self.discovered().insert(key, kind.clone());
        Ok(kind)
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_with_an_owner_left_is_never_deleted() {
        use OwnerState::*;
        let owners = |states: &[(&str, OwnerState)]| -> Vec<(String, OwnerState)> {
            states.iter().map(|(u, s)| (u.to_string(), *s)).collect()
        };
        assert_eq!(decide(&[], false, &[]), Decision::Keep);
        assert_eq!(decide(&owners(&[("a", Solid)]), true, &[]), Decision::Keep);
        // Solid plus gone: only the stale references go.
        assert_eq!(
            decide(
                &owners(&[
                    ("a", Solid),
                    ("b", Dangling),
                    ("c", WaitingForDependentsDeletion)
                ]),
                false,
                &[]
            ),
            Decision::RemoveOwnerReferences(vec!["b".into(), "c".into()])
        );
    }

    #[test]
    fn an_object_whose_owners_are_gone_is_deleted() {
        use OwnerState::*;
        let gone = vec![("a".to_string(), Dangling), ("b".to_string(), Dangling)];
        assert_eq!(
            decide(&gone, true, &[]),
            Decision::Delete(PropagationPolicy::Background)
        );
        // Its own finalizers keep the policy of a deletion already asked for.
        assert_eq!(
            decide(&gone, false, &["orphan".to_string()]),
            Decision::Delete(PropagationPolicy::Orphan)
        );
        // An owner deleting in the foreground: dependents with dependents go the same way.
        let waiting = vec![("a".to_string(), WaitingForDependentsDeletion)];
        assert_eq!(
            decide(&waiting, true, &[]),
            Decision::Delete(PropagationPolicy::Foreground)
        );
        assert_eq!(
            decide(&waiting, false, &[]),
            Decision::Delete(PropagationPolicy::Background)
        );
    }

    /// The master spawns the collector on its multi-threaded runtime.
    #[allow(dead_code)]
    fn runs_as_a_spawned_task(client: kube::Client) {
        fn spawnable<T: Send + 'static>(_: T) {}
        let mut informers = Informers::new(&client);
        spawnable(run(client, &mut informers, async {}));
    }

    #[test]
    fn the_work_queue_dedups_and_backs_off() {
        let mut queue = WorkQueue::default();
        queue.add("a".into());
        queue.add("b".into());
        queue.add("a".into());
        let now = Instant::now();
        assert_eq!(queue.pop(now).as_deref(), Some("a"));
        assert_eq!(queue.pop(now).as_deref(), Some("b"));
        assert_eq!(queue.pop(now), None);
        queue.done("b");

        queue.done("a");
        queue.retry("a".into(), now);
        assert_eq!(queue.next_retry(), Some(now + RETRY_BASE));
        assert_eq!(queue.pop(now), None);
        assert_eq!(queue.pop(now + RETRY_BASE).as_deref(), Some("a"));
        // A second failure waits twice as long; success starts over.
        queue.done("a");
        queue.retry("a".into(), now);
        assert_eq!(queue.next_retry(), Some(now + RETRY_BASE * 2));
        queue.forget("a");
        assert_eq!(queue.pop(now + RETRY_BASE * 2).as_deref(), Some("a"));
        queue.done("a");
        queue.retry("a".into(), now);
        assert_eq!(queue.next_retry(), Some(now + RETRY_BASE));
    }

    #[test]
    fn an_object_being_synced_is_not_handed_out_again_until_done() {
        let mut queue = WorkQueue::default();
        let now = Instant::now();
        queue.add("a".into());
        assert_eq!(queue.pop(now).as_deref(), Some("a"));
        // Changed while its sync runs: not a second sync beside the first...
        queue.add("a".into());
        assert_eq!(queue.pop(now), None);
        // ...but one more once the first is done.
        queue.done("a");
        assert_eq!(queue.pop(now).as_deref(), Some("a"));
        queue.done("a");
        assert_eq!(queue.pop(now), None);
    }
}
