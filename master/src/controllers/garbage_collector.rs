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
//! The collector keeps a graph of owners and dependents, fed by one watch per kind it
//! monitors (pods, replica sets, deployments, replication controllers, config maps, secrets,
//! and the nodes and leases the node agents tie together). It does nothing until every
//! watch has listed once, so a dependent is never judged on a partial picture, and it
//! confirms that an owner is gone with a GET of the owner before it deletes anything.
//! Owners of kinds it does not watch are only ever looked up that way (the kind found
//! through discovery); an owner whose kind the API server does not serve counts as present.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, ReplicationController, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    Preconditions,
};
use kube::discovery::Scope;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use skiff_api::meta::{
    FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN_DEPENDENTS, PropagationPolicy,
};

/// How often every object is looked at again, for owners of kinds without a watch (their
/// deletion sends no event) and anything a lost event left behind.
const RESYNC_PERIOD: Duration = Duration::from_secs(60);

/// The first retry of an object whose sync failed; each further failure doubles it.
const RETRY_BASE: Duration = Duration::from_millis(200);

/// The longest wait before a failed object is tried again.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How often a read-modify-write of one object is tried when others write it meanwhile.
const CONFLICT_ATTEMPTS: usize = 5;

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

/// Runs the garbage collector until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    shutdown: impl Future<Output = ()>,
) -> Result<(), kube::Error> {
    let collector = Collector::new(client);
    info!(kinds = collector.kinds.len(), "garbage collector started");
    tokio::select! {
        () = collector.run() => Ok(()),
        () = shutdown => Ok(()),
    }
}

/// A kind of object the collector can read and write.
#[derive(Clone, Debug)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

impl Kind {
    fn of<K>(namespaced: bool) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
    {
        Self {
            resource: ApiResource::erase::<K>(&()),
            namespaced,
        }
    }

    /// Whether an owner reference's `apiVersion` and `kind` name this kind (any version of
    /// its group, as Kubernetes compares them).
    fn matches(&self, api_version: &str, kind: &str) -> bool {
        self.resource.kind == kind && group_of(api_version) == self.resource.group
    }
}

/// The kinds the collector watches: those with owners or dependents in skiff.
fn monitored_kinds() -> Vec<Kind> {
    vec![
        Kind::of::<Pod>(true),
        Kind::of::<ReplicaSet>(true),
        Kind::of::<Deployment>(true),
        Kind::of::<ReplicationController>(true),
        Kind::of::<ConfigMap>(true),
        Kind::of::<Secret>(true),
        // Node agents make their Node the owner of their Lease and of their mirror pods.
        Kind::of::<Node>(false),
        Kind::of::<Lease>(true),
    ]
}

/// The group of an `apiVersion`: `apps` of `apps/v1`, empty for `v1`.
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

/// What the collector keeps of one object.
#[derive(Clone, Debug, PartialEq)]
struct Item {
    /// Index into the monitored kinds.
    kind: usize,
    namespace: Option<String>,
    name: String,
    uid: String,
    owners: Vec<OwnerReference>,
    /// `metadata.deletionTimestamp` is set.
    deleting: bool,
    finalizers: Vec<String>,
}

impl Item {
    fn from_meta(kind: usize, meta: ObjectMeta) -> Option<Self> {
        Some(Self {
            kind,
            namespace: meta.namespace,
            name: meta.name?,
            uid: meta.uid?,
            owners: meta.owner_references.unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.unwrap_or_default(),
        })
    }

    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted in the foreground: waiting until its dependents are gone.
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_DELETE_DEPENDENTS)
    }

    /// Whether `owner` (the object an owner reference of `self` points to) may own `self`: a
    /// namespaced owner must be in the dependent's namespace, and a cluster-scoped object
    /// cannot have a namespaced owner.
    fn may_be_owned_by(&self, owner: &Item, owner_namespaced: bool) -> bool {
        !owner_namespaced || (self.namespace.is_some() && owner.namespace == self.namespace)
    }
}

/// The owner/dependent graph of every watched object, by uid.
#[derive(Debug, Default)]
struct Graph {
    items: HashMap<String, Item>,
    /// Owner uid -> uids of the objects that name it (whether the owner exists or not).
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Records `item` as it is now. Returns the uids whose sync this may change: the item
    /// itself, owners it stopped naming (one may be waiting for it), and, when it is being
    /// deleted in the foreground, its dependents.
    fn apply(&mut self, item: Item) -> Vec<String> {
        let uid = item.uid.clone();
        let new_owners: BTreeSet<String> = item.owners.iter().map(|o| o.uid.clone()).collect();
        let old_owners: BTreeSet<String> = self
            .items
            .get(&uid)
            .map(|old| old.owners.iter().map(|o| o.uid.clone()).collect())
            .unwrap_or_default();
        let mut touched = vec![uid.clone()];
        for gone in old_owners.difference(&new_owners) {
            self.unlink(gone, &uid);
            touched.push(gone.clone());
        }
        for owner in new_owners.difference(&old_owners) {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(uid.clone());
        }
        if item.deleting_dependents() {
            touched.extend(self.dependents.get(&uid).into_iter().flatten().cloned());
        }
        self.items.insert(uid, item);
        touched
    }

    /// Forgets the object `uid`. Returns the uids whose sync this may change: its owners (one
    /// may be waiting for it) and its dependents (their owner is gone).
    fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(old) = self.items.remove(uid) else {
            return Vec::new();
        };
        let mut touched = Vec::new();
        for owner in &old.owners {
            self.unlink(&owner.uid, uid);
            touched.push(owner.uid.clone());
        }
        touched.extend(self.dependents.get(uid).into_iter().flatten().cloned());
        touched
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    /// The objects whose owner references name `owner` (and that it may own).
    fn dependents_of<'a>(
        &'a self,
        owner: &'a Item,
        owner_namespaced: bool,
    ) -> impl Iterator<Item = &'a Item> + 'a {
        self.dependents
            .get(&owner.uid)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.items.get(uid))
            .filter(move |d| d.may_be_owned_by(owner, owner_namespaced))
    }

    fn has_dependents(&self, uid: &str) -> bool {
        self.dependents.get(uid).is_some_and(|d| !d.is_empty())
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

/// Object uids waiting for a sync: each at most once, failed ones after a back-off.
#[derive(Debug, Default)]
struct WorkQueue {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    later: Vec<(Instant, String)>,
    failures: HashMap<String, u32>,
}

impl WorkQueue {
    fn add(&mut self, uid: String) {
        if self.queued.insert(uid.clone()) {
            self.ready.push_back(uid);
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
        Some(uid)
    }

    /// When the next retry is due.
    fn next_retry(&self) -> Option<Instant> {
        self.later.iter().map(|(at, _)| *at).min()
    }
}

/// One watch event, of the monitored kind at this index.
type KindEvent = (usize, Result<watcher::Event<DynamicObject>, watcher::Error>);

/// The collector's state: the graph, its work and what it learnt about owners.
struct Collector {
    client: kube::Client,
    kinds: Vec<Kind>,
    graph: Graph,
    queue: WorkQueue,
    /// Per monitored kind: whether its watch has listed once.
    synced: Vec<bool>,
    /// Per monitored kind: the objects of a (re)list in progress.
    listing: Vec<Option<Vec<Item>>>,
    /// Owner uids a GET found gone.
    absent_owners: HashSet<String>,
    /// Kinds without a watch, found through discovery (`None`: not served).
    discovered: HashMap<(String, String), Option<Kind>>,
}

impl Collector {
    fn new(client: kube::Client) -> Self {
        let kinds = monitored_kinds();
        Self {
            synced: vec![false; kinds.len()],
            listing: vec![None; kinds.len()],
            client,
            kinds,
            graph: Graph::default(),
            queue: WorkQueue::default(),
            absent_owners: HashSet::new(),
            discovered: HashMap::new(),
        }
    }

    fn watches(&self) -> BoxStream<'static, KindEvent> {
        let streams = self.kinds.iter().enumerate().map(|(index, kind)| {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.resource);
            watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |event| (index, event))
                .boxed()
        });
        stream::select_all(streams).boxed()
    }

    async fn run(mut self) {
        let mut events = self.watches();
        let mut resync = tokio::time::interval_at(Instant::now() + RESYNC_PERIOD, RESYNC_PERIOD);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Take in every event already there, so that a sync sees the freshest graph.
            while let Some(next) = events.next().now_or_never() {
                let Some(event) = next else { return };
                self.observe(event);
            }
            if self.synced.iter().all(|s| *s)
                && let Some(uid) = self.queue.pop(Instant::now())
            {
                match self.sync(&uid).await {
                    Ok(()) => self.queue.forget(&uid),
                    Err(err) => {
                        debug!(uid = %uid, "garbage collection: {err}");
                        self.queue.retry(uid, Instant::now());
                    }
                }
                continue;
            }
            let retry = self.queue.next_retry();
            tokio::select! {
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

    /// Brings the graph up to date with one watch event and queues what it may change.
    fn observe(&mut self, (index, event): KindEvent) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                // The watcher retries by itself, with back-off.
                warn!(kind = %self.kinds[index].resource.kind, "watching: {err}");
                return;
            }
        };
        let touched = match event {
            watcher::Event::Init => {
                self.listing[index] = Some(Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let Some(item) = Item::from_meta(index, object.metadata) {
                    self.listing[index].get_or_insert_with(Vec::new).push(item);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = self.listing[index].take().unwrap_or_default();
                let seen: HashSet<&str> = listed.iter().map(|i| i.uid.as_str()).collect();
                let vanished: Vec<String> = self
                    .graph
                    .items
                    .values()
                    .filter(|i| i.kind == index && !seen.contains(i.uid.as_str()))
                    .map(|i| i.uid.clone())
                    .collect();
                let mut touched = Vec::new();
                for uid in vanished {
                    touched.extend(self.graph.remove(&uid));
                }
                for item in listed {
                    touched.extend(self.graph.apply(item));
                }
                let first = !self.synced.iter().all(|s| *s);
                self.synced[index] = true;
                if first && self.synced.iter().all(|s| *s) {
                    info!(
                        objects = self.graph.items.len(),
                        "garbage collector synced: every watch has listed"
                    );
                    touched.extend(self.graph.items.keys().cloned());
                }
                touched
            }
            watcher::Event::Apply(object) => Item::from_meta(index, object.metadata)
                .map(|item| self.graph.apply(item))
                .unwrap_or_default(),
            watcher::Event::Delete(object) => object
                .metadata
                .uid
                .map(|uid| self.graph.remove(&uid))
                .unwrap_or_default(),
        };
        for uid in touched {
            self.queue.add(uid);
        }
    }

    /// Closes the gap for one object: deletes it if its owners are gone, finishes its
    /// foreground or orphan deletion if it is an owner being deleted so.
    async fn sync(&mut self, uid: &str) -> Result<(), Error> {
        let Some(item) = self.graph.items.get(uid).cloned() else {
            return Ok(());
        };
        if item.deleting {
            if item.has_finalizer(FINALIZER_DELETE_DEPENDENTS) {
                return self.delete_dependents(&item).await;
            }
            if item.has_finalizer(FINALIZER_ORPHAN_DEPENDENTS) {
                return self.orphan_dependents(&item).await;
            }
            return Ok(());
        }
        if item.owners.is_empty() {
            return Ok(());
        }
        // Every owner in the graph and not waiting for its dependents: nothing to do.
        let all_solid = item.owners.iter().all(|owner| {
            self.cached_owner(&item, owner)
                .is_some_and(|o| !o.deleting_dependents())
        });
        if all_solid {
            return Ok(());
        }
        self.attempt_to_delete(&item).await
    }

    /// The owner an owner reference of `item` points to, if the graph has it.
    fn cached_owner(&self, item: &Item, owner: &OwnerReference) -> Option<&Item> {
        let found = self.graph.items.get(&owner.uid)?;
        let kind = &self.kinds[found.kind];
        (found.name == owner.name
            && kind.matches(&owner.api_version, &owner.kind)
            && item.may_be_owned_by(found, kind.namespaced))
        .then_some(found)
    }

    /// Looks at `item` as the API server has it now, and at each of its owners, then deletes
    /// it or removes its stale owner references (Kubernetes' attemptToDeleteItem).
    async fn attempt_to_delete(&mut self, item: &Item) -> Result<(), Error> {
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
            states.push((owner.uid.clone(), self.owner_state(item, owner).await?));
        }
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        match decide(&states, self.graph.has_dependents(&item.uid), &finalizers) {
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
                info!(
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

    /// What an owner reference of `item` points to: from the graph when it has the owner,
    /// else from a GET of the owner (an owner whose kind is not served counts as present).
    async fn owner_state(
        &mut self,
        item: &Item,
        owner: &OwnerReference,
    ) -> Result<OwnerState, Error> {
        if let Some(found) = self.cached_owner(item, owner) {
            return Ok(if found.deleting_dependents() {
                OwnerState::WaitingForDependentsDeletion
            } else {
                OwnerState::Solid
            });
        }
        if self.absent_owners.contains(&owner.uid) {
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
                if self.absent_owners.len() >= ABSENT_OWNERS_MAX {
                    self.absent_owners.clear();
                }
                self.absent_owners.insert(owner.uid.clone());
                OwnerState::Dangling
            }
        };
        Ok(state)
    }

    /// The kind an owner reference names: a watched one, or one found through discovery.
    async fn kind_of(&mut self, owner: &OwnerReference) -> Result<Option<Kind>, Error> {
        if let Some(kind) = self
            .kinds
            .iter()
            .find(|k| k.matches(&owner.api_version, &owner.kind))
        {
            return Ok(Some(kind.clone()));
        }
        let key = (owner.api_version.clone(), owner.kind.clone());
        if let Some(known) = self.discovered.get(&key) {
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
        self.discovered.insert(key, kind.clone());
        Ok(kind)
    }

    /// Foreground deletion of `owner`: its dependents are deleted; once none that blocks it
    /// is left, its `foregroundDeletion` finalizer goes (Kubernetes'
    /// processDeletingDependentsItem).
    async fn delete_dependents(&mut self, owner: &Item) -> Result<(), Error> {
        let namespaced = self.kinds[owner.kind].namespaced;
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
        self.remove_finalizer(owner, FINALIZER_DELETE_DEPENDENTS)
            .await
    }

    /// Orphaning deletion of `owner`: its reference is removed from every dependent, then its
    /// `orphan` finalizer goes (Kubernetes' orphanDependents).
    async fn orphan_dependents(&mut self, owner: &Item) -> Result<(), Error> {
        let namespaced = self.kinds[owner.kind].namespaced;
        let dependents: Vec<Item> = self
            .graph
            .dependents_of(owner, namespaced)
            .cloned()
            .collect();
        for dependent in &dependents {
            self.remove_owner_references(dependent, std::slice::from_ref(&owner.uid))
                .await?;
        }
        if !dependents.is_empty() {
            info!(
                kind = %self.kinds[owner.kind].resource.kind,
                name = %owner.name,
                dependents = dependents.len(),
                "orphaned the dependents of an object being deleted"
            );
        }
        self.remove_finalizer(owner, FINALIZER_ORPHAN_DEPENDENTS)
            .await
    }

    /// Removes the references to `owners` (uids) from `item`, on its latest version.
    async fn remove_owner_references(&self, item: &Item, owners: &[String]) -> Result<(), Error> {
        let api = self.api(&self.kinds[item.kind], item.namespace.as_deref());
        for _ in 0..CONFLICT_ATTEMPTS {
            let Some(latest) = api.get_opt(&item.name).await? else {
                return Ok(());
            };
            if latest.metadata.uid.as_deref() != Some(item.uid.as_str()) {
                return Ok(());
            }
            let current = latest.metadata.owner_references.unwrap_or_default();
            let kept: Vec<&OwnerReference> = current
                .iter()
                .filter(|o| !owners.contains(&o.uid))
                .collect();
            if kept.len() == current.len() {
                return Ok(());
            }
            let patch = json!({"metadata": {
                "resourceVersion": latest.metadata.resource_version,
                "ownerReferences": if kept.is_empty() { json!(null) } else { json!(kept) },
            }});
            match api
                .patch(&item.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(Error::Contended(item.name.clone()))
    }

    /// Removes `finalizer` from `item`, on its latest version (the API server finishes the
    /// delete when it was the last one).
    async fn remove_finalizer(&self, item: &Item, finalizer: &str) -> Result<(), Error> {
        let api = self.api(&self.kinds[item.kind], item.namespace.as_deref());
        for _ in 0..CONFLICT_ATTEMPTS {
            let Some(latest) = api.get_opt(&item.name).await? else {
                return Ok(());
            };
            if latest.metadata.uid.as_deref() != Some(item.uid.as_str()) {
                return Ok(());
            }
            let current = latest.metadata.finalizers.unwrap_or_default();
            let kept: Vec<&String> = current.iter().filter(|f| *f != finalizer).collect();
            if kept.len() == current.len() {
                return Ok(());
            }
            let patch = json!({"metadata": {
                "resourceVersion": latest.metadata.resource_version,
                "finalizers": if kept.is_empty() { json!(null) } else { json!(kept) },
            }});
            match api
                .patch(&item.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    debug!(name = %item.name, finalizer, "removed finalizer");
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(Error::Contended(item.name.clone()))
    }

    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if kind.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
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

    fn owner_ref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("cm-{uid}"),
            uid: uid.into(),
            block_owner_deletion: block.then_some(true),
            controller: None,
        }
    }

    fn item(uid: &str, owners: Vec<OwnerReference>) -> Item {
        Item {
            kind: 0,
            namespace: Some("default".into()),
            name: format!("obj-{uid}"),
            uid: uid.into(),
            owners,
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    fn sorted(mut uids: Vec<String>) -> Vec<String> {
        uids.sort();
        uids.dedup();
        uids
    }

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

    #[test]
    fn the_graph_queues_what_a_change_affects() {
        let mut graph = Graph::default();
        assert_eq!(
            graph.apply(item("owner", vec![])),
            vec!["owner".to_string()]
        );
        assert_eq!(
            graph.apply(item("pod1", vec![owner_ref("owner", true)])),
            vec!["pod1".to_string()]
        );
        graph.apply(item("pod2", vec![owner_ref("owner", false)]));
        let owner = graph.items["owner"].clone();
        let deps: Vec<&str> = graph
            .dependents_of(&owner, true)
            .map(|d| d.uid.as_str())
            .collect();
        assert_eq!(deps, vec!["pod1", "pod2"]);

        // The owner starts a foreground deletion: its dependents are to be looked at.
        let mut deleting = owner.clone();
        deleting.deleting = true;
        deleting.finalizers = vec![FINALIZER_DELETE_DEPENDENTS.into()];
        assert_eq!(
            sorted(graph.apply(deleting)),
            vec!["owner".to_string(), "pod1".into(), "pod2".into()]
        );

        // A dependent that stops naming its owner, or goes, wakes the owner.
        assert_eq!(
            sorted(graph.apply(item("pod2", vec![]))),
            vec!["owner".to_string(), "pod2".into()]
        );
        assert_eq!(graph.remove("pod1"), vec!["owner".to_string()]);
        assert!(!graph.has_dependents("owner"));

        // An owner that goes wakes its dependents.
        graph.apply(item("pod3", vec![owner_ref("owner", false)]));
        assert_eq!(graph.remove("owner"), vec!["pod3".to_string()]);
        assert!(graph.has_dependents("owner"), "pod3 still names it");
        assert_eq!(graph.remove("unknown"), Vec::<String>::new());
    }

    #[test]
    fn dependents_must_share_a_namespaced_owners_namespace() {
        let owner = item("owner", vec![]);
        let mut elsewhere = item("pod", vec![owner_ref("owner", true)]);
        elsewhere.namespace = Some("other".into());
        assert!(!elsewhere.may_be_owned_by(&owner, true));
        assert!(
            elsewhere.may_be_owned_by(&owner, false),
            "cluster-scoped owner"
        );
        let mut cluster_scoped = elsewhere.clone();
        cluster_scoped.namespace = None;
        assert!(!cluster_scoped.may_be_owned_by(&owner, true));
        assert!(item("p", vec![]).may_be_owned_by(&owner, true));
    }

    #[test]
    fn owner_references_match_kinds_by_group_not_version() {
        let replica_sets = Kind::of::<ReplicaSet>(true);
        assert!(replica_sets.matches("apps/v1", "ReplicaSet"));
        assert!(replica_sets.matches("apps/v1beta2", "ReplicaSet"));
        assert!(!replica_sets.matches("extensions/v1beta1", "ReplicaSet"));
        assert!(!replica_sets.matches("apps/v1", "Deployment"));
        assert!(Kind::of::<Pod>(true).matches("v1", "Pod"));
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("coordination.k8s.io/v1"), "coordination.k8s.io");
    }

    /// The master spawns the collector on its multi-threaded runtime.
    #[allow(dead_code)]
    fn runs_as_a_spawned_task(client: kube::Client) {
        fn spawnable<T: Send + 'static>(_: T) {}
        spawnable(run(client, async {}));
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

        queue.retry("a".into(), now);
        assert_eq!(queue.next_retry(), Some(now + RETRY_BASE));
        assert_eq!(queue.pop(now), None);
        assert_eq!(queue.pop(now + RETRY_BASE).as_deref(), Some("a"));
        // A second failure waits twice as long; success starts over.
        queue.retry("a".into(), now);
        assert_eq!(queue.next_retry(), Some(now + RETRY_BASE * 2));
        queue.forget("a");
        assert_eq!(queue.pop(now + RETRY_BASE * 2).as_deref(), Some("a"));
        queue.retry("a".into(), now);
        assert_eq!(queue.next_retry(), Some(now + RETRY_BASE));
    }
}
