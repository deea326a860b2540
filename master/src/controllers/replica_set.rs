//! The ReplicaSet controller: keeps `spec.replicas` pods of each ReplicaSet's template
//! running, and reports how many there are, are ready and are available. It runs over
//! ReplicationControllers too ([`super::replication_controller`]), as kube-controller-manager
//! runs its ReplicaSet code as the replication manager.
//!
//! As kube-controller-manager's replicaset controller does, a reconcile of one ReplicaSet
//! - adopts pods that match its selector and have no controller, and releases pods it owns
//!   that no longer match;
//! - creates missing pods from the template (in batches of 1, 2, 4, ... that stop at the
//!   first failure) or deletes surplus ones, least valuable first (unscheduled, pending,
//!   not ready, restarted most, newest);
//! - waits until the pod cache has seen its own creates and deletes (its "expectations")
//!   before it counts again, so a slow watch never makes it create twice;
//! - writes `status` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
//!   observedGeneration), with a `ReplicaFailure` condition (reason `FailedCreate` or
//!   `FailedDelete`, the API server's message) while creating or deleting pods fails, e.g.
//!   because a ResourceQuota refuses them, removed once a reconcile's creates and deletes
//!   succeed again. kube-controller-manager also removes it from a reconcile that waits for
//!   its expectations and so creates nothing; here it stays until creates are tried again,
//!   so it does not come and go while a refused owner waits for its last pods to show.
//!
//! Pods come from one shared watch: it fills the cache the reconciles read and triggers the
//! owning ReplicaSet's reconcile when one of its pods changes, or, for an orphan, the
//! reconciles of the sets whose selector matches it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::controller_ref;
use super::informers::{Index, Informer, Informers};
use skiff_api::events::{EventType, Recorder, object_ref};
use skiff_api::meta::{controller_of, controller_ref};
use skiff_api::pod::{CachedPod, is_active, is_available, is_ready, ready_since};
use skiff_api::selectors::LabelSelector;

/// The condition type a failed create or delete sets.
const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Most pods one reconcile creates or deletes (kube-controller-manager's burstReplicas).
const BURST_REPLICAS: usize = 500;

/// ReplicaSets reconciled at once (kube-controller-manager's `--concurrent-replicaset-syncs`
/// and `--concurrent-rc-syncs`). Unbounded, a hundred Deployments scaled at once made
/// 25,000 pod creates in flight, and the scheduler's bindings and the kubelets' status
/// updates waited minutes behind them.
const CONCURRENT_SYNCS: u16 = 5;

/// How long a reconcile waits for the cache to show its creates and deletes before it counts
/// afresh anyway (a watch event lost for good).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(60);

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// The status could not be encoded.
    #[error("encoding the status: {0}")]
    Encode(serde_json::Error),
}

/// A kind whose replicas this controller keeps: ReplicaSets, and ReplicationControllers, read
/// in their ReplicaSet form as Kubernetes' replication manager reads them.
pub trait Replicated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The controller's name (`replicaset`, `replicationcontroller`), as in `--controllers`.
    const CONTROLLER: &'static str;
    /// The component on its Events (`replicaset-controller`, `replication-controller`).
    const COMPONENT: &'static str;

    /// The kind's shared informer.
    fn informer(informers: &mut Informers) -> &mut Informer<Self>;

    /// The object's pod selector, read without copying the object (`None` if it has none
    /// or it does not parse).
    fn selector(&self) -> Option<LabelSelector>;

    /// The object as a ReplicaSet: the same metadata, spec and status.
    fn as_replica_set(&self) -> ReplicaSet;
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";
    const COMPONENT: &'static str = "replicaset-controller";

    fn informer(informers: &mut Informers) -> &mut Informer<Self> {
        &mut informers.replica_sets
    }

    fn selector(&self) -> Option<LabelSelector> {
        LabelSelector::from_api(&self.spec.as_ref()?.selector).ok()
    }

    fn as_replica_set(&self) -> ReplicaSet {
        self.clone()
    }
}

/// The controller of kind `K` on the shared informers; it runs until `shutdown` resolves.
pub fn run<K: Replicated>(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let owners = K::informer(informers).reader();
    let owner_index = K::informer(informers).index();
    let owner_changes = K::informer(informers).subscribe();
    let pods = informers.pods.reader();
    let pod_changes = informers.pods.subscribe();
    let context = Arc::new(Context {
        recorder: super::recorder(&client, K::COMPONENT),
        client,
        pods,
        pod_index: informers.pods.index(),
        expectations: Expectations::default(),
        backoff: Backoff::default(),
    });
    async move {
        info!("{} controller started", K::CONTROLLER);
        let results = Controller::for_shared_stream(owner_changes, owners)
            .watches_shared_stream(
                pod_changes,
                controller_ref::owners_trigger(owner_index, K::selector),
            )
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile::<K>, error_policy::<K>, context);
        super::drive(K::CONTROLLER, results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    recorder: Recorder,
    pods: Store<CachedPod>,
    /// The pods by controller and namespace: a reconcile reads its own and its orphans.
    pod_index: Index<CachedPod>,
    expectations: Expectations,
    backoff: Backoff,
}

fn error_policy<K: Replicated>(_owner: Arc<K>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing a {}: {err}", K::CONTROLLER);
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile<K: Replicated>(owner: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !super::informers::synced(&ctx.pods).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let rs = owner.as_replica_set();
    let key = ObjectRef::from_obj(owner.as_ref());
    let namespace = rs.namespace().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let selector = match LabelSelector::from_api(&spec.selector) {
        Ok(selector) if !selector.is_empty() => selector,
        // The API server refuses these; nothing sensible to do with one.
        Ok(_) | Err(_) => return Ok(Action::await_change()),
    };
    let uid = rs.uid().unwrap_or_default();
    let pods_api: Api<CachedPod> = Api::namespaced(ctx.client.clone(), &namespace);

    // The pods of the namespace that this ReplicaSet owns (adopting and releasing as needed).
    let mut owned = Vec::new();
    for pod in ctx
        .pod_index
        .controlled_by(&uid)
        .into_iter()
        .chain(ctx.pod_index.orphans_in(&namespace))
    {
        if pod.namespace().as_deref() != Some(namespace.as_str()) {
            continue;
        }
        let matches = selector.matches(pod.labels());
        match controller_of(pod.as_ref()) {
            Some(owner) if owner.uid == uid => {
                if matches {
                    owned.push(pod);
                } else if rs.metadata.deletion_timestamp.is_none() {
                    controller_ref::release(&pods_api, &pod, &uid).await?;
                }
            }
            Some(_) => {}
            None => {
                if matches
                    && is_active(&pod)
                    && rs.metadata.deletion_timestamp.is_none()
                    && let Some(adopted) =
                        controller_ref::adopt(&pods_api, &pod, owner.as_ref()).await?
                {
                    owned.push(Arc::new(adopted));
                }
            }
        }
    }
    let active: Vec<Arc<CachedPod>> = owned.into_iter().filter(|p| is_active(p)).collect();

    let mut requeue = None;
    // Why this reconcile's creates or deletes failed, for the ReplicaFailure condition.
    let mut failure = None;
    // Whether this reconcile created or deleted (a condition stays as it is otherwise).
    let managed =
        ctx.expectations.satisfied(&key, &ctx.pods) && rs.metadata.deletion_timestamp.is_none();
    if managed {
        let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
        match active.len().cmp(&want) {
            std::cmp::Ordering::Less => {
                let count = (want - active.len()).min(BURST_REPLICAS);
                let template = spec.template.clone().unwrap_or_default();
                let (created, failed) = create_pods(&ctx, owner.as_ref(), &template, count).await;
                if created.len() < count {
                    requeue = Some(Duration::from_secs(1));
                }
                failure = failed.map(Failure::Create);
            }
            std::cmp::Ordering::Greater => {
                let count = (active.len() - want).min(BURST_REPLICAS);
                if let Err(err) = delete_pods(&ctx, owner.as_ref(), &active, count).await {
                    failure = Some(Failure::Delete(message_of(&err)));
                }
            }
            std::cmp::Ordering::Equal => {}
        }
        // Failing again and again (a quota that stays full) is retried less and less often.
        match &failure {
            Some(_) => requeue = Some(ctx.backoff.failed(&key)),
            None => ctx.backoff.succeeded(&key),
        }
    } else {
        requeue = Some(Duration::from_secs(1));
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let now = Utc::now();
    let mut status = compute_status(&rs, &active, &template_labels, min_ready, now);
    if managed {
        status.conditions = replica_failure(
            rs.status.as_ref().and_then(|s| s.conditions.as_deref()),
            failure.as_ref(),
            now,
        );
    }
    if rs.status.as_ref() != Some(&status) {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
        let mut status_json = serde_json::to_value(&status).map_err(Error::Encode)?;
        // A merge patch keeps what it leaves out: a removed last condition is a null.
        if status.conditions.is_none()
            && let Some(fields) = status_json.as_object_mut()
        {
            fields.insert("conditions".into(), Value::Null);
        }
        let patch = json!({ "status": status_json });
        api.patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    // A pod that is ready but not yet available for minReadySeconds becomes so by time alone.
    if min_ready > 0 && status.ready_replicas != status.available_replicas {
        requeue = Some(requeue.map_or(Duration::from_secs(1), |r| r.min(Duration::from_secs(1))));
    }
    Ok(requeue.map_or_else(
        || Action::requeue(Duration::from_secs(300)),
        Action::requeue,
    ))
}

/// Why creating or deleting pods failed: the API server's message.
#[derive(Debug)]
enum Failure {
    Create(String),
    Delete(String),
}

/// The message of a failed API call (a refused create's Status message, as Kubernetes'
/// controllers put it in the condition).
pub(super) fn message_of(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// The conditions after a reconcile (Kubernetes' `calculateStatus`): a `ReplicaFailure`
/// condition is added when creates or deletes failed and there is none yet, and removed when
/// they succeeded; the others are kept.
fn replica_failure(
    conditions: Option<&[ReplicaSetCondition]>,
    failure: Option<&Failure>,
    now: DateTime<Utc>,
) -> Option<Vec<ReplicaSetCondition>> {
    let mut conditions = conditions.unwrap_or_default().to_vec();
    let present = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some(failure) if !present => {
            let (reason, message) = match failure {
                Failure::Create(message) => ("FailedCreate", message),
                Failure::Delete(message) => ("FailedDelete", message),
            };
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.to_owned(),
                status: "True".to_owned(),
                last_transition_time: Some(Time(now)),
                reason: Some(reason.to_owned()),
                message: Some(message.clone()),
            });
        }
        Some(_) => {}
        None => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
    }
    (!conditions.is_empty()).then_some(conditions)
}

/// The status the ReplicaSet's pods make (its conditions as they are).
fn compute_status(
    rs: &ReplicaSet,
    active: &[Arc<CachedPod>],
    template_labels: &BTreeMap<String, String>,
    min_ready_seconds: i32,
    now: DateTime<Utc>,
) -> ReplicaSetStatus {
    let count = |f: &dyn Fn(&CachedPod) -> bool| {
        i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: Some(count(&|p| {
            let labels = p.labels();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })),
        ready_replicas: Some(count(&is_ready)),
        available_replicas: Some(count(&|p| is_available(p, min_ready_seconds, now))),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
    }
}

/// A new pod of the ReplicaSet: its template, named `<replicaset>-<random>`, owned by it.
fn pod_from_template<K: Replicated>(rs: &K, template: &PodTemplateSpec) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Creates `count` pods in batches of 1, 2, 4, ... (kube-controller-manager's slow start: a
/// template the API server refuses fails once, not `count` times). Returns the names made and
/// why the last batch failed, if it did.
async fn create_pods<K: Replicated>(
    ctx: &Context,
    rs: &K,
    template: &PodTemplateSpec,
    count: usize,
) -> (Vec<String>, Option<String>) {
    let key = ObjectRef::from_obj(rs);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let pod = pod_from_template(rs, template);
    let params = PostParams::default();
    let mut created = Vec::new();
    let mut failure = None;
    let mut batch = 1;
    while created.len() < count {
        let size = batch.min(count - created.len());
        let results = futures::future::join_all((0..size).map(|_| api.create(&params, &pod))).await;
        let mut failed = None;
        for result in results {
            match result {
                Ok(pod) => created.push(pod.name_any()),
                Err(err) => failed = Some(err),
            }
        }
        ctx.expectations.expect(&key, Change::Create, &created);
        if let Some(err) = failed {
            warn!(owner = %rs.name_any(), "creating pods: {err}");
            let message = message_of(&err);
            ctx.recorder.record(
                object_ref(rs),
                EventType::Warning,
                "FailedCreate",
                format!("Error creating: {message}"),
            );
            failure = Some(message);
            break;
        }
        batch *= 2;
    }
    for name in &created {
        ctx.recorder.record(
            object_ref(rs),
            EventType::Normal,
            "SuccessfulCreate",
            format!("Created pod: {name}"),
        );
    }
    (created, failure)
}

/// Deletes the `count` least valuable of `active`.
async fn delete_pods<K: Replicated>(
    ctx: &Context,
    rs: &K,
    active: &[Arc<CachedPod>],
    count: usize,
) -> Result<(), kube::Error> {
    let mut victims: Vec<&Arc<CachedPod>> = active.iter().collect();
    victims.sort_by(|a, b| deletion_rank(a).cmp(&deletion_rank(b)));
    victims.truncate(count);
    let names: Vec<String> = victims.iter().map(|p| p.name_any()).collect();
    delete_owned_pods(&ctx.client, &ctx.recorder, &ctx.expectations, rs, &names).await
}

/// Deletes the pods `names` of `owner` at once, each a `SuccessfulDelete` Event, the deletes
/// noted in `expectations` (forgotten if one fails); a pod already gone is no error. Every
/// controller that deletes its pods (replicaset, job, daemonset) does it this way.
pub(super) async fn delete_owned_pods<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    recorder: &Recorder,
    expectations: &Expectations,
    owner: &K,
    names: &[String],
) -> Result<(), kube::Error> {
    if names.is_empty() {
        return Ok(());
    }
    let key = ObjectRef::from_obj(owner);
    expectations.expect(&key, Change::Delete, names);
    let api: Api<Pod> = Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    let params = DeleteParams::default();
    let results =
        futures::future::join_all(names.iter().map(|name| api.delete(name, &params))).await;
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(_) => recorder.record(
                object_ref(owner),
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            ),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => {
                expectations.forget(&key);
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Sort key of a pod for scale-down: the first is deleted first (Kubernetes' ActivePods
/// order: unscheduled, then Pending < Unknown < Running, not ready, ready for less time, more
/// restarts, newer).
fn deletion_rank(pod: &CachedPod) -> impl Ord {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let ready = ready_since(pod);
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum());
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        scheduled,
        phase,
        ready.is_some(),
        // Ready more recently first; more restarts first; newer first.
        std::cmp::Reverse(ready),
        std::cmp::Reverse(restarts),
        std::cmp::Reverse(created),
    )
}

/// The first retry after a failed create or delete; each failure in a row doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries (kube-controller-manager's queue waits up to 1000 s; a
/// quota raised is then seen late).
const MAX_RETRY: Duration = Duration::from_secs(32);

/// Failures in a row per owner (or per DaemonSet and node), for the wait before its next try
/// (the rate limiter of kube-controller-manager's work queue).
#[derive(Default)]
pub(super) struct Backoff {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    /// Counts a failure of `key`'s; returns how long to wait before trying again.
    pub(super) fn failed(&self, key: &impl std::fmt::Display) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = failures
            .entry(key.to_string())
            .or_insert((0, Instant::now()));
        let wait = retry_after(entry.0);
        *entry = (entry.0.saturating_add(1), Instant::now() + wait);
        wait
    }

    /// How long `key` must still wait after its last failure; `None` when it may try.
    pub(super) fn waiting(&self, key: &impl std::fmt::Display) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, until) = failures.get(&key.to_string())?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Forgets `key`'s failures.
    pub(super) fn succeeded(&self, key: &impl std::fmt::Display) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.remove(&key.to_string());
    }
}

/// The wait after `earlier` failures in a row: 1 s, 2 s, 4 s, ... up to [`MAX_RETRY`].
fn retry_after(earlier: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(earlier.min(16)))
        .min(MAX_RETRY)
}

/// Creates and deletes a reconcile made that the pod cache has not shown yet, per owner.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

/// What a controller did to a pod.
#[derive(Clone, Copy)]
pub(super) enum Change {
    Create,
    Delete,
}

struct Pending {
    creates: Vec<String>,
    deletes: Vec<String>,
    since: Instant,
}

impl Expectations {
    /// Records creates (`Change::Create`) or deletes made for `owner` that the cache must show.
    pub(super) fn expect<K: Resource>(
        &self,
        owner: &ObjectRef<K>,
        change: Change,
        names: &[String],
    ) {
        let mut pending = self.lock();
        let entry = pending
            .entry(owner.to_string())
            .or_insert_with(Pending::new);
        let list = match change {
            Change::Create => &mut entry.creates,
            Change::Delete => &mut entry.deletes,
        };
        list.extend(names.iter().cloned());
        entry.since = Instant::now();
    }

    pub(super) fn forget<K: Resource>(&self, owner: &ObjectRef<K>) {
        self.lock().remove(&owner.to_string());
    }

    /// Whether the cache shows every create and delete made for `owner` (or they are too
    /// old to wait for); clears them when so.
    pub(super) fn satisfied<K: Resource>(
        &self,
        owner: &ObjectRef<K>,
        pods: &Store<CachedPod>,
    ) -> bool {
        let mut pending = self.lock();
        let key = owner.to_string();
        let Some(entry) = pending.get_mut(&key) else {
            return true;
        };
        let namespace = owner.namespace.clone();
        let seen = |name: &String| {
            pods.get(&ObjectRef::new(name).within(namespace.as_deref().unwrap_or_default()))
        };
        entry.creates.retain(|name| seen(name).is_none());
        entry
            .deletes
            .retain(|name| seen(name).is_some_and(|p| p.metadata.deletion_timestamp.is_none()));
        let done = (entry.creates.is_empty() && entry.deletes.is_empty())
            || entry.since.elapsed() > EXPECTATIONS_TIMEOUT;
        if done {
            pending.remove(&key);
        }
        done
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pending {
    fn new() -> Self {
        Pending {
            creates: Vec::new(),
            deletes: Vec::new(),
            since: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool, restarts: i32) -> CachedPod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2026-12-01T10:00:00Z"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "x"}]},
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                "lastTransitionTime": "2026-12-01T10:00:05Z"}],
                "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": ready,
                                       "restartCount": restarts}],
            },
        }))
        .expect("pod")
    }

    #[test]
    fn scale_down_takes_the_least_valuable_pods_first() {
        let pods = [
            pod("running-ready", Some("n1"), "Running", true, 0),
            pod("running-restarted", Some("n1"), "Running", true, 4),
            pod("running-not-ready", Some("n1"), "Running", false, 0),
            pod("pending", Some("n1"), "Pending", false, 0),
            pod("unscheduled", None, "Pending", false, 0),
        ];
        let mut order: Vec<&CachedPod> = pods.iter().collect();
        order.sort_by(|a, b| deletion_rank(a).cmp(&deletion_rank(b)));
        let names: Vec<String> = order.iter().map(|p| p.name_any()).collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "running-not-ready",
                "running-restarted",
                "running-ready"
            ]
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let ready = pod("a", Some("n1"), "Running", true, 0);
        let became_ready = DateTime::parse_from_rfc3339("2026-12-01T10:00:05Z")
            .expect("time")
            .with_timezone(&Utc);
        assert!(is_available(&ready, 0, became_ready));
        assert!(!is_available(
            &ready,
            10,
            became_ready + chrono::Duration::seconds(9)
        ));
        assert!(is_available(
            &ready,
            10,
            became_ready + chrono::Duration::seconds(10)
        ));
        let not_ready = pod("b", Some("n1"), "Running", false, 0);
        assert!(!is_available(&not_ready, 0, became_ready));
    }

    #[test]
    fn a_failed_create_sets_replica_failure_until_creates_succeed() {
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let refused = Failure::Create(
            "pods \"web-x\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2".into(),
        );
        let set =
            replica_failure(None, Some(&refused), at("2026-01-01T00:00:00Z")).expect("a condition");
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].type_, "ReplicaFailure");
        assert_eq!(set[0].status, "True");
        assert_eq!(set[0].reason.as_deref(), Some("FailedCreate"));
        assert_eq!(
            set[0].message.as_deref(),
            Some(
                "pods \"web-x\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
            )
        );
        // Failing again keeps the condition as it was (its transition time above all).
        let again = replica_failure(
            Some(&set),
            Some(&Failure::Delete("other".into())),
            at("2026-01-01T00:05:00Z"),
        );
        assert_eq!(again.as_ref(), Some(&set));
        // Succeeding removes it and keeps the other conditions.
        let other = ReplicaSetCondition {
            type_: "Other".into(),
            status: "True".into(),
            ..Default::default()
        };
        let mut both = set.clone();
        both.push(other.clone());
        assert_eq!(
            replica_failure(Some(&both), None, at("2026-01-01T00:06:00Z")),
            Some(vec![other])
        );
        assert_eq!(
            replica_failure(Some(&set), None, at("2026-01-01T00:06:00Z")),
            None
        );
        let deleting = replica_failure(
            None,
            Some(&Failure::Delete("refused".into())),
            at("2026-01-01T00:00:00Z"),
        )
        .expect("a condition");
        assert_eq!(deleting[0].reason.as_deref(), Some("FailedDelete"));
    }

    #[test]
    fn failures_in_a_row_are_retried_less_often() {
        let waits: Vec<u64> = (0..8).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 32, 32]);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
        let backoff = Backoff::default();
        let key = ObjectRef::<ReplicaSet>::new("web").within("default");
        assert_eq!(backoff.failed(&key), Duration::from_secs(1));
        assert_eq!(backoff.failed(&key), Duration::from_secs(2));
        backoff.succeeded(&key);
        assert_eq!(backoff.failed(&key), Duration::from_secs(1));
    }

    #[test]
    fn finished_and_deleted_pods_do_not_count() {
        assert!(is_active(&pod("a", None, "Pending", false, 0)));
        assert!(!is_active(&pod("b", None, "Succeeded", false, 0)));
        assert!(!is_active(&pod("c", None, "Failed", false, 0)));
        let mut deleting = pod("d", None, "Running", true, 0);
        deleting.metadata.deletion_timestamp = Some(Time(Utc::now()));
        assert!(!is_active(&deleting));
    }
}
