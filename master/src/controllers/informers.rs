//! Shared informers (client-go's `SharedInformerFactory`, kube-runtime's shared reflectors):
//! each resource the master reads is listed and watched once per master process, into one
//! cache that every reader shares, with one stream of changed objects per subscriber.
//!
//! Readers: node IPAM, the `replicaset` (ReplicaSets and ReplicationControllers), `deployment`,
//! `daemonset` (DaemonSets, their ControllerRevisions, Pods and Nodes), `statefulset`
//! (StatefulSets, their ControllerRevisions and Pods), `endpoint`, `nodelifecycle` and
//! `podgc` (Nodes, Leases, Pods by node), `serviceaccount`, `root-ca-cert-publisher`
//! (Namespaces, ServiceAccounts, ConfigMaps), `clusterrole-aggregation` (ClusterRoles),
//! `csrapproving` and `csrsigning` (CertificateSigningRequests) and `resourcequota` controllers (ResourceQuotas and what they
//! count), the scheduler (Pods, Nodes, Services, fed into its own columnar cache as
//! kube-scheduler's cache is fed from the `SharedInformerFactory`) and the garbage collector
//! (Pods, ReplicaSets, ReplicationControllers, Deployments, ConfigMaps, Nodes and Leases from
//! the same informers; Secrets, which only it and quota counting read, from a metadata-only
//! informer here, as kube-controller-manager gives its garbage collector typed informers where
//! they exist and metadata informers for the rest). Nothing else in the master opens a watch.
//!
//! A reader asks for what it needs before the informers start ([`Informer::subscribe`]
//! for a stream of changed objects, [`Informer::reader`] for the cache, [`Informer::changes`]
//! for both judged together); [`Informers::run`] then drives one watch per resource that
//! anyone asked for, with kube-runtime's back-off on errors and a relist when the watch
//! expires. A reader that comes later (a controller started again after it failed, see
//! [`crate::supervisor`]) asks the same informers, which keep running; its subscription
//! starts with every object the cache has, as a client-go handler added to a running informer
//! hears of every object first. Each subscriber has an unbounded queue of its own, as each listener of a client-go
//! shared informer does: a slow subscriber (the garbage collector during a burst of pods)
//! falls behind on its own instead of holding the watch, and with it the scheduler, back. A
//! queue holds `Arc`s of objects the cache already has, so a backlog costs pointers.
//!
//! kube-runtime's own shared reflectors (`store_shared`) are not used: they pass on created
//! and updated objects only, so a deleted pod would never wake its ReplicaSet. Here a deleted
//! object is passed on too (it is no longer in the cache when it arrives), and so is every
//! object that vanished while the watch was being re-established.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, ReplicationController, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector::{self, ObjectRef, ObjectRefExtra, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use skiff_api::pod::CachedPod;
use tracing::debug;

/// How often [`synced`] looks whether a cache has its first list.
const SYNC_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// A watch's events, with kube-runtime's back-off between failed attempts.
type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// One resource's cache and the watch that fills it.
pub struct Informer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    /// The watch and the cache's writer, until [`Informers::run`] takes them.
    watch: Option<(Events<K>, reflector::store::Writer<K>)>,
    reader: Store<K>,
    subscribers: Subscribers<K>,
    index: Option<Index<K>>,
    /// The node an object is bound to, for [`Index::on_node`] (pods; none for other kinds).
    node_of: NodeOf<K>,
    wanted: bool,
}

/// Where an object is bound: a pod's `spec.nodeName`.
type NodeOf<K> = fn(&K) -> Option<&str>;

/// The queues of an informer's subscribers, shared with its running watch.
type Subscribers<K> = Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<K>>>>>;

impl<K> Informer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// An informer of `api`'s objects, each kept as `K` reads it from its JSON (a
    /// [`CachedPod`] keeps only what is read of a pod: client-go's informer transform).
    fn new(api: Api<K>) -> Self {
        Self::from_events(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed(),
        )
    }
}

/// The node a pod is bound to.
fn pod_node(pod: &CachedPod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

impl<K> Informer<PartialObjectMeta<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// An informer that keeps only the metadata of `api`'s objects (without managedFields,
    /// which kube-controller-manager trims from its informers too), for readers that need
    /// no more (the garbage collector) of kinds whose objects can be large (ConfigMaps,
    /// Secrets). The API server sends whole objects; only the cache is smaller.
    fn metadata(api: Api<K>) -> Self {
        let metadata = |object: K| {
            let mut meta = object.meta().clone();
            meta.managed_fields = None;
            meta.into_request_partial::<K>()
        };
        Self::from_events(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .map_ok(move |event| match event {
                    watcher::Event::Apply(object) => watcher::Event::Apply(metadata(object)),
                    watcher::Event::Delete(object) => watcher::Event::Delete(metadata(object)),
                    watcher::Event::Init => watcher::Event::Init,
                    watcher::Event::InitApply(object) => {
                        watcher::Event::InitApply(metadata(object))
                    }
                    watcher::Event::InitDone => watcher::Event::InitDone,
                })
                .boxed(),
        )
    }
}

impl<K> Informer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    fn from_events(events: Events<K>) -> Self {
        let writer = reflector::store::Writer::default();
        Self {
            reader: writer.as_reader(),
            watch: Some((events, writer)),
            subscribers: Arc::default(),
            index: None,
            node_of: |_| None,
            wanted: false,
        }
    }

    /// Files the objects in the [`Index`] by the node `node_of` names as well (client-go's
    /// `spec.nodeName` indexer of pods).
    fn filed_by_node(mut self, node_of: NodeOf<K>) -> Self {
        self.node_of = node_of;
        self
    }

    /// The cache indexed by namespace, by controller (and by node, for pods), kept by the watch before any
    /// subscriber hears of a change (so a reconcile a change wakes finds it in the index).
    pub fn index(&mut self) -> Index<K> {
        self.wanted = true;
        self.index
            .get_or_insert_with(|| Index::new(self.reader.clone(), self.node_of))
            .clone()
    }

    /// The cache (empty until the first list arrives; [`synced`] waits for it).
    pub fn reader(&mut self) -> Store<K> {
        self.wanted = true;
        self.reader.clone()
    }

    /// A stream of the objects that change (created, updated, or deleted: a deleted object
    /// is no longer in the cache when it arrives), from the time the informers start; once
    /// they run, it starts with every object the cache has.
    pub fn subscribe(&mut self) -> impl Stream<Item = Arc<K>> + Send + use<K> {
        self.wanted = true;
        let (tx, rx) = mpsc::unbounded();
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The watch tells its subscribers under this lock after it changed the cache: each
        // change is in this copy of the cache or told to the new queue (or both).
        for object in self.reader.state() {
            let _ = tx.unbounded_send(object);
        }
        subscribers.push(tx);
        rx
    }

    /// The changes to the cache, for a reader that keeps a view of its own (the scheduler's
    /// cache, the garbage collector's graph; client-go's event handlers): once the cache
    /// has its first list, every object in it and then [`Change::Synced`]; after that each
    /// changed object, judged by the cache ([`resolve`]).
    pub fn changes(&mut self) -> impl Stream<Item = Change<K>> + Send + use<K> {
        let changed = self.subscribe();
        changes(self.reader(), changed)
    }

    /// The watch that fills the cache and tells the subscribers, if anyone asked for it (and
    /// it is not running already).
    fn start(&mut self) -> Option<BoxFuture<'static, ()>> {
        if !self.wanted {
            return None;
        }
        let (mut events, mut writer) = self.watch.take()?;
        let reader = self.reader.clone();
        let subscribers = Arc::clone(&self.subscribers);
        let index = self.index.clone();
        let kind = K::kind(&());
        Some(Box::pin(async move {
            // What the cache held when a relist began: whatever is not listed again was
            // deleted meanwhile, and its subscribers must hear of it.
            let mut before: Vec<Arc<K>> = Vec::new();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        debug!(%kind, error = %err, "informer watch failed; retrying with back-off");
                        continue;
                    }
                };
                let touched = apply(&mut writer, &reader, &mut before, event);
                if let Some(index) = &index {
                    for object in &touched {
                        index.update(object, reader.get(&ObjectRef::from_obj(&**object)));
                    }
                }
                let mut subscribers = subscribers.lock().unwrap_or_else(PoisonError::into_inner);
                for object in touched {
                    // A subscriber that is gone (its controller stopped) is dropped.
                    subscribers.retain(|s| s.unbounded_send(object.clone()).is_ok());
                }
            }
        }))
    }
}

/// One informer's cache indexed by namespace, by controller and by node (client-go's
/// `namespace` indexer, kube-controller-manager's controller-uid index of pods and its
/// `spec.nodeName` index): a controller's reconcile reads its own objects, its namespace's
/// orphans or a node's pods, at what they cost, instead of scanning every cached object.
pub struct Index<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    cache: Store<K>,
    keys: Arc<RwLock<IndexKeys<K>>>,
    node_of: NodeOf<K>,
}

impl<K> Clone for Index<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            keys: Arc::clone(&self.keys),
            node_of: self.node_of,
        }
    }
}

/// The keys of the cached objects, by namespace, by controller uid, (without a controller)
/// by namespace, and by node; and where each object is filed. One key per object, shared by
/// the sets it is in (a million pods each in four of them).
struct IndexKeys<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    namespaces: HashMap<String, HashSet<Key<K>>>,
    controllers: HashMap<String, HashSet<Key<K>>>,
    orphans: HashMap<String, HashSet<Key<K>>>,
    nodes: HashMap<String, HashSet<Key<K>>>,
    filed: HashMap<Key<K>, Filed>,
}

/// An object's key in an [`Index`]: its namespace and name (an `ObjectRef` without the
/// resourceVersion and uid it may carry, which equality ignores).
type Key<K> = Arc<ObjectRef<K>>;

/// Where one object is filed: its namespace, its controller's uid and its node.
#[derive(Clone, PartialEq, Eq)]
struct Filed {
    namespace: String,
    controller: Option<String>,
    node: Option<String>,
}

impl<K> Index<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    fn new(cache: Store<K>, node_of: NodeOf<K>) -> Self {
        Self {
            cache,
            keys: Arc::new(RwLock::new(IndexKeys {
                namespaces: HashMap::new(),
                controllers: HashMap::new(),
                orphans: HashMap::new(),
                nodes: HashMap::new(),
                filed: HashMap::new(),
            })),
            node_of,
        }
    }

    /// Files `object` as the cache has it now (`current`), or forgets it when it is gone.
    fn update(&self, object: &K, current: Option<Arc<K>>) {
        let mut key = ObjectRef::from_obj(object);
        key.extra = ObjectRefExtra::default();
        let key = Arc::new(key);
        let filed = current.map(|current| Filed {
            namespace: current.meta().namespace.clone().unwrap_or_default(),
            controller: current
                .meta()
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.controller == Some(true))
                .map(|r| r.uid.clone()),
            node: (self.node_of)(&current).map(str::to_owned),
        });
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let was = keys.filed.get(&key).cloned();
        if was == filed {
            return;
        }
        if let Some(was) = was {
            keys.file(&key, &was, false);
            keys.filed.remove(&key);
        }
        if let Some(filed) = filed {
            keys.file(&key, &filed, true);
            keys.filed.insert(key, filed);
        }
    }

    /// The cached objects of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.lookup(|keys| keys.namespaces.get(namespace))
    }

    /// The cached objects whose controller has `uid`.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<K>> {
        self.lookup(|keys| keys.controllers.get(uid))
    }

    /// The cached objects of `namespace` without a controller.
    pub fn orphans_in(&self, namespace: &str) -> Vec<Arc<K>> {
        self.lookup(|keys| keys.orphans.get(namespace))
    }

    /// The cached objects bound to `node` (pods whose `spec.nodeName` it is).
    pub fn on_node(&self, node: &str) -> Vec<Arc<K>> {
        self.lookup(|keys| keys.nodes.get(node))
    }

    /// The nodes the cached objects are bound to.
    pub fn nodes(&self) -> Vec<String> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.nodes.keys().cloned().collect()
    }

    fn lookup(&self, set: impl FnOnce(&IndexKeys<K>) -> Option<&HashSet<Key<K>>>) -> Vec<Arc<K>> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        set(&keys)
            .into_iter()
            .flatten()
            .filter_map(|key| self.cache.get(key))
            .collect()
    }
}

impl<K> IndexKeys<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    /// Adds `key` to (or takes it from) the sets `filed` names.
    fn file(&mut self, key: &Key<K>, filed: &Filed, add: bool) {
        let mut sets = vec![(&mut self.namespaces, filed.namespace.clone())];
        match &filed.controller {
            Some(uid) => sets.push((&mut self.controllers, uid.clone())),
            None => sets.push((&mut self.orphans, filed.namespace.clone())),
        }
        if let Some(node) = &filed.node {
            sets.push((&mut self.nodes, node.clone()));
        }
        for (map, name) in sets {
            if add {
                map.entry(name).or_default().insert(key.clone());
            } else if let Some(set) = map.get_mut(&name) {
                set.remove(key);
                if set.is_empty() {
                    map.remove(&name);
                }
            }
        }
    }
}

/// A change to one object, as a reader with a view of its own sees it.
#[derive(Debug)]
pub enum Change<K> {
    /// The object, created or updated, as the cache has it now.
    Applied(Arc<K>),
    /// The object (as last seen) is gone: the cache has no object of its name, or another
    /// one (another uid).
    Deleted(Arc<K>),
    /// The cache has its first list, and every object in it has been told.
    Synced,
}

/// Judges a changed object from [`Informer::subscribe`] by the cache: the cached (latest)
/// object if the cache still has it, else a deletion. The last change told about an object
/// is judged after its last update of the cache, so a reader ends up with the cache's view.
pub fn resolve<K>(cache: &Store<K>, changed: Arc<K>) -> Change<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    match cache.get(&ObjectRef::from_obj(&*changed)) {
        Some(cached) if cached.meta().uid == changed.meta().uid => Change::Applied(cached),
        _ => Change::Deleted(changed),
    }
}

/// [`Informer::changes`]: the first list from the cache once it has it, then the
/// subscription judged by the cache. The first list also comes through the subscription
/// (taken before the informers ran) and is told twice: harmless, each change being the
/// object as the cache has it; which end of the subscription's backlog the first list
/// reached cannot be told apart otherwise.
fn changes<K>(
    cache: Store<K>,
    changed: impl Stream<Item = Arc<K>> + Send + 'static,
) -> impl Stream<Item = Change<K>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let listed = {
        let cache = cache.clone();
        async move {
            let listed: Vec<Change<K>> = if synced(&cache).await {
                let objects = cache.state().into_iter().map(Change::Applied);
                objects.chain([Change::Synced]).collect()
            } else {
                Vec::new()
            };
            stream::iter(listed)
        }
    };
    listed
        .flatten_stream()
        .chain(changed.map(move |object| resolve(&cache, object)))
}

/// Applies one watch event to the cache and returns the objects subscribers hear of: the
/// created, updated or deleted object, and after a relist every listed object and every one
/// that vanished since the relist began (`before`, taken at its start).
fn apply<K>(
    writer: &mut reflector::store::Writer<K>,
    reader: &Store<K>,
    before: &mut Vec<Arc<K>>,
    event: watcher::Event<K>,
) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    if matches!(event, watcher::Event::Init) {
        *before = reader.state();
    }
    writer.apply_watcher_event(&event);
    match event {
        watcher::Event::Apply(object) => {
            let key = ObjectRef::from_obj(&object);
            vec![reader.get(&key).unwrap_or_else(|| Arc::new(object))]
        }
        watcher::Event::Delete(object) => vec![Arc::new(object)],
        watcher::Event::InitDone => {
            let now = reader.state();
            let listed: HashSet<ObjectRef<K>> =
                now.iter().map(|o| ObjectRef::from_obj(&**o)).collect();
            let gone = std::mem::take(before)
                .into_iter()
                .filter(|o| !listed.contains(&ObjectRef::from_obj(&**o)));
            now.iter().cloned().chain(gone).collect()
        }
        watcher::Event::Init | watcher::Event::InitApply(_) => Vec::new(),
    }
}

/// Waits until `cache` holds its first complete list; false if its informer is gone.
///
/// Polls instead of awaiting `Store::wait_until_ready`: in kube-runtime 2.0.1 that future
/// keeps one waker for all waiters (a oneshot receiver behind a mutex), so of two tasks
/// waiting on one shared cache only the last to poll is ever woken.
pub async fn synced<K>(cache: &Store<K>) -> bool
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    loop {
        if let Some(ready) = cache.wait_until_ready().now_or_never() {
            return ready.is_ok();
        }
        tokio::time::sleep(SYNC_POLL).await;
    }
}

/// The informers of one master.
pub struct Informers {
    /// Every Pod, as much of it as the controllers and the scheduler read ([`CachedPod`]).
    pub pods: Informer<CachedPod>,
    /// Every Node.
    pub nodes: Informer<Node>,
    /// Every ReplicaSet.
    pub replica_sets: Informer<ReplicaSet>,
    /// Every Deployment.
    pub deployments: Informer<Deployment>,
    /// Every Service.
    pub services: Informer<Service>,
    /// Every Endpoints.
    pub endpoints: Informer<Endpoints>,
    /// Every Lease (node heartbeats are those in `kube-node-lease`).
    pub leases: Informer<Lease>,
    /// Every Namespace.
    pub namespaces: Informer<Namespace>,
    /// Every ServiceAccount.
    pub service_accounts: Informer<ServiceAccount>,
    /// Every ConfigMap (whole: the root CA publisher compares its `kube-root-ca.crt`'s data,
    /// as kube-controller-manager shares one typed ConfigMap informer).
    pub config_maps: Informer<ConfigMap>,
    /// Every ReplicationController.
    pub replication_controllers: Informer<ReplicationController>,
    /// Every ResourceQuota.
    pub resource_quotas: Informer<ResourceQuota>,
    /// Every DaemonSet.
    pub daemon_sets: Informer<DaemonSet>,
    /// Every StatefulSet.
    pub stateful_sets: Informer<StatefulSet>,
    /// Every ControllerRevision.
    pub controller_revisions: Informer<ControllerRevision>,
    /// Every Job.
    pub jobs: Informer<Job>,
    /// Every CronJob.
    pub cron_jobs: Informer<CronJob>,
    /// Every PodDisruptionBudget.
    pub pod_disruption_budgets: Informer<PodDisruptionBudget>,
    /// Every EndpointSlice.
    pub endpoint_slices: Informer<EndpointSlice>,
    /// The metadata of every Secret.
    pub secrets: Informer<PartialObjectMeta<Secret>>,
    /// Every ClusterRole.
    pub cluster_roles: Informer<ClusterRole>,
    /// Every CertificateSigningRequest.
    pub certificate_signing_requests: Informer<CertificateSigningRequest>,
}

impl Informers {
    /// Informers on `client`; nothing is listed until [`Informers::run`].
    pub fn new(client: &kube::Client) -> Self {
        Self {
            pods: Informer::new(Api::all(client.clone())).filed_by_node(pod_node),
            nodes: Informer::new(Api::all(client.clone())),
            replica_sets: Informer::new(Api::all(client.clone())),
            deployments: Informer::new(Api::all(client.clone())),
            services: Informer::new(Api::all(client.clone())),
            endpoints: Informer::new(Api::all(client.clone())),
            leases: Informer::new(Api::all(client.clone())),
            namespaces: Informer::new(Api::all(client.clone())),
            service_accounts: Informer::new(Api::all(client.clone())),
            config_maps: Informer::new(Api::all(client.clone())),
            replication_controllers: Informer::new(Api::all(client.clone())),
            resource_quotas: Informer::new(Api::all(client.clone())),
            daemon_sets: Informer::new(Api::all(client.clone())),
            stateful_sets: Informer::new(Api::all(client.clone())),
            controller_revisions: Informer::new(Api::all(client.clone())),
            jobs: Informer::new(Api::all(client.clone())),
            cron_jobs: Informer::new(Api::all(client.clone())),
            pod_disruption_budgets: Informer::new(Api::all(client.clone())),
            endpoint_slices: Informer::new(Api::all(client.clone())),
            secrets: Informer::metadata(Api::all(client.clone())),
            cluster_roles: Informer::new(Api::all(client.clone())),
            certificate_signing_requests: Informer::new(Api::all(client.clone())),
        }
    }

    /// Lists and watches every resource that a reader asked for, until `shutdown`. The
    /// informers stay readable and subscribable meanwhile (by readers that come later).
    pub fn run(
        &mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let tasks: Vec<BoxFuture<'static, ()>> = [
            self.pods.start(),
            self.nodes.start(),
            self.replica_sets.start(),
            self.deployments.start(),
            self.services.start(),
            self.endpoints.start(),
            self.leases.start(),
            self.namespaces.start(),
            self.service_accounts.start(),
            self.config_maps.start(),
            self.replication_controllers.start(),
            self.resource_quotas.start(),
            self.daemon_sets.start(),
            self.stateful_sets.start(),
            self.controller_revisions.start(),
            self.jobs.start(),
            self.cron_jobs.start(),
            self.pod_disruption_budgets.start(),
            self.endpoint_slices.start(),
            self.secrets.start(),
            self.cluster_roles.start(),
            self.certificate_signing_requests.start(),
        ]
        .into_iter()
        .flatten()
        .collect();
        async move {
            tokio::select! {
                _ = futures::future::join_all(tasks) => {}
                () = shutdown => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::SinkExt;

    use super::*;

    fn pod(name: &str) -> CachedPod {
        let mut pod = CachedPod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("default".into());
        pod
    }

    fn names(objects: &[Arc<CachedPod>]) -> Vec<String> {
        let mut names: Vec<String> = objects
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        names.sort();
        names
    }

    fn with_uid(mut pod: CachedPod, uid: &str) -> CachedPod {
        pod.metadata.uid = Some(uid.into());
        pod
    }

    fn told(change: &Change<CachedPod>) -> String {
        let name = |o: &Arc<CachedPod>| o.metadata.name.clone().unwrap_or_default();
        match change {
            Change::Applied(o) => format!("applied {}", name(o)),
            Change::Deleted(o) => format!("deleted {}", name(o)),
            Change::Synced => "synced".into(),
        }
    }

    #[test]
    fn the_index_files_objects_by_namespace_controller_and_node_as_they_change() {
        let mut writer = reflector::store::Writer::<CachedPod>::default();
        let index = Index::new(writer.as_reader(), pod_node);
        let owned_by = |name: &str, namespace: &str, uid: Option<&str>| {
            let mut pod = pod(name);
            pod.metadata.namespace = Some(namespace.into());
            pod.metadata.owner_references = uid.map(|uid| {
                vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        uid: uid.into(),
                        controller: Some(true),
                        ..Default::default()
                    },
                ]
            });
            pod
        };
        let mut change = |object: CachedPod, gone: bool| {
            let event = if gone {
                watcher::Event::Delete(object.clone())
            } else {
                watcher::Event::Apply(object.clone())
            };
            writer.apply_watcher_event(&event);
            index.update(&object, index.cache.get(&ObjectRef::from_obj(&object)));
        };
        change(owned_by("a", "default", Some("rs-1")), false);
        change(owned_by("b", "default", None), false);
        change(owned_by("c", "other", None), false);
        assert_eq!(names(&index.controlled_by("rs-1")), ["a"]);
        assert_eq!(names(&index.orphans_in("default")), ["b"]);
        assert_eq!(names(&index.in_namespace("default")), ["a", "b"]);
        assert_eq!(names(&index.in_namespace("other")), ["c"]);
        // Adopted, released, deleted: it moves and goes.
        change(owned_by("b", "default", Some("rs-1")), false);
        change(owned_by("a", "default", None), false);
        assert_eq!(names(&index.controlled_by("rs-1")), ["b"]);
        assert_eq!(names(&index.orphans_in("default")), ["a"]);
        change(owned_by("b", "default", Some("rs-1")), true);
        assert!(index.controlled_by("rs-1").is_empty());
        assert_eq!(names(&index.in_namespace("default")), ["a"]);
        assert!(index.in_namespace("nowhere").is_empty());
        assert!(index.on_node("n1").is_empty());
        // Bound, then deleted: filed under its node, then gone from it.
        let bound = |name: &str| {
            let mut pod = owned_by(name, "default", None);
            pod.spec = Some(skiff_api::pod::CachedPodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            });
            pod
        };
        change(bound("a"), false);
        change(bound("d"), false);
        assert_eq!(names(&index.on_node("n1")), ["a", "d"]);
        assert_eq!(index.nodes(), ["n1"]);
        assert_eq!(names(&index.orphans_in("default")), ["a", "d"]);
        change(bound("d"), true);
        assert_eq!(names(&index.on_node("n1")), ["a"]);
        assert!(index.on_node("n2").is_empty());
        change(bound("a"), true);
        assert!(
            index.nodes().is_empty(),
            "a node without objects is forgotten"
        );
    }

    #[test]
    fn a_changed_object_is_judged_by_the_cache() {
        let mut writer = reflector::store::Writer::<CachedPod>::default();
        let reader = writer.as_reader();
        let mut bound = with_uid(pod("a"), "1");
        bound.spec = Some(Default::default());
        writer.apply_watcher_event(&watcher::Event::Apply(bound));
        writer.apply_watcher_event(&watcher::Event::Apply(with_uid(pod("b"), "3")));

        // In the cache with its uid: the cached object, newer than the one told.
        match resolve(&reader, Arc::new(with_uid(pod("a"), "1"))) {
            Change::Applied(latest) => assert!(latest.spec.is_some()),
            other => panic!("expected the cached pod, got {other:?}"),
        }
        // Not in the cache: deleted.
        match resolve(&reader, Arc::new(with_uid(pod("c"), "4"))) {
            Change::Deleted(gone) => assert_eq!(gone.metadata.uid.as_deref(), Some("4")),
            other => panic!("expected a deletion, got {other:?}"),
        }
        // Another object of the same name now: the one told is gone.
        match resolve(&reader, Arc::new(with_uid(pod("b"), "2"))) {
            Change::Deleted(gone) => assert_eq!(gone.metadata.uid.as_deref(), Some("2")),
            other => panic!("expected a deletion, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reader_hears_the_first_list_then_synced_then_each_change() {
        let mut writer = reflector::store::Writer::<CachedPod>::default();
        let reader = writer.as_reader();
        let (mut tx, rx) = mpsc::channel(8);
        let mut changes = Box::pin(changes(reader, rx));
        // Nothing before the first list is complete.
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(with_uid(pod("a"), "1")));
        writer.apply_watcher_event(&watcher::Event::InitApply(with_uid(pod("b"), "2")));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(100), changes.next())
                .await
                .is_err()
        );
        writer.apply_watcher_event(&watcher::Event::InitDone);
        writer.apply_watcher_event(&watcher::Event::Delete(with_uid(pod("a"), "1")));
        tx.send(Arc::new(with_uid(pod("a"), "1")))
            .await
            .expect("sent");
        drop(tx);
        let told: Vec<String> = changes.map(|c| told(&c)).collect().await;
        // The cache was read after the deletion: "a" is not in the first list.
        assert_eq!(told, ["applied b", "synced", "deleted a"]);
    }

    #[tokio::test]
    async fn every_waiter_sees_the_cache_synced() {
        let mut writer = reflector::store::Writer::<CachedPod>::default();
        let reader = writer.as_reader();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let reader = reader.clone();
                tokio::spawn(async move { synced(&reader).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            let synced = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("every waiter is woken")
                .expect("joined");
            assert!(synced);
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_comes_while_the_watch_runs_hears_of_every_cached_object_first() {
        let (events, rx) = mpsc::unbounded();
        let mut informer = Informer::from_events(rx.map(Ok).boxed());
        let first = informer.subscribe();
        let watch = tokio::spawn(informer.start().expect("asked for"));
        assert!(informer.start().is_none(), "one watch");
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(pod("a")),
            watcher::Event::InitDone,
        ] {
            events.unbounded_send(event).expect("sent");
        }
        async fn next_name(
            stream: &mut (impl Stream<Item = Arc<CachedPod>> + Unpin),
        ) -> Option<String> {
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
                .await
                .expect("told")
                .and_then(|p| p.metadata.name.clone())
        }
        let mut first = Box::pin(first);
        assert_eq!(next_name(&mut first).await.as_deref(), Some("a"));
        // A controller started again: the cache first, then what changes.
        let mut late = Box::pin(informer.subscribe());
        assert_eq!(next_name(&mut late).await.as_deref(), Some("a"));
        events
            .unbounded_send(watcher::Event::Apply(pod("b")))
            .expect("sent");
        assert_eq!(next_name(&mut first).await.as_deref(), Some("b"));
        assert_eq!(next_name(&mut late).await.as_deref(), Some("b"));
        // The subscriber that is gone is dropped at the next change.
        drop(first);
        events
            .unbounded_send(watcher::Event::Apply(pod("c")))
            .expect("sent");
        assert_eq!(next_name(&mut late).await.as_deref(), Some("c"));
        assert_eq!(informer.subscribers.lock().expect("lock").len(), 1);
        watch.abort();
    }

    #[test]
    fn subscribers_hear_of_changes_deletions_and_what_a_relist_lost() {
        let mut writer = reflector::store::Writer::<CachedPod>::default();
        let reader = writer.as_reader();
        let mut before = Vec::new();
        let mut apply = |event| apply(&mut writer, &reader, &mut before, event);

        // The first list: every listed pod once it is complete.
        assert!(apply(watcher::Event::Init).is_empty());
        assert!(apply(watcher::Event::InitApply(pod("a"))).is_empty());
        assert!(apply(watcher::Event::InitApply(pod("b"))).is_empty());
        assert_eq!(names(&apply(watcher::Event::InitDone)), ["a", "b"]);

        assert_eq!(names(&apply(watcher::Event::Apply(pod("c")))), ["c"]);
        // A deletion is told, and the cache no longer has the pod.
        assert_eq!(names(&apply(watcher::Event::Delete(pod("a")))), ["a"]);
        assert!(reader.get(&ObjectRef::new("a").within("default")).is_none());

        // A relist that no longer finds "b": it was deleted while nobody watched.
        apply(watcher::Event::Init);
        apply(watcher::Event::InitApply(pod("c")));
        apply(watcher::Event::InitApply(pod("d")));
        assert_eq!(names(&apply(watcher::Event::InitDone)), ["b", "c", "d"]);
        assert!(reader.get(&ObjectRef::new("b").within("default")).is_none());
    }
}
