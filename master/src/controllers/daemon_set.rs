//! The DaemonSet controller: one pod of each DaemonSet on every node it is meant for, as
//! kube-controller-manager's daemonset controller keeps them.
//!
//! A reconcile of one DaemonSet
//! - keeps its history as ControllerRevisions: the current template's revision
//!   (`<daemonset>-<hash>`, its `data` the patch that puts the template back, which is what
//!   `kubectl rollout history|undo ds` read and apply) is the highest, made when missing;
//!   older ones beyond `revisionHistoryLimit` that no pod uses are deleted;
//! - adopts pods that match its selector and have no controller, and releases pods it owns
//!   that no longer match;
//! - judges each node: it runs the pod when the template's node selector and required node
//!   affinity admit it and every NoSchedule and NoExecute taint is tolerated, counting the
//!   tolerations every daemon pod gets (not-ready and unreachable NoExecute, the pressure and
//!   unschedulable NoSchedule ones, network-unavailable under `hostNetwork`): a cordoned or
//!   failing node keeps its daemon. A pod stays where only an untolerated NoSchedule taint came
//!   after it;
//! - creates the missing pods, each tied to its node by a required node affinity on
//!   `metadata.name` (the scheduler binds it there, so resources and host ports count as for
//!   any pod), and deletes pods on nodes that are not meant to run one, failed pods (made
//!   again after a back-off per node) and extra pods on a node;
//! - under RollingUpdate replaces pods of older revisions: with `maxSurge` 0 deletes at most
//!   `maxUnavailable` available old pods at a time (unavailable ones at once), with `maxSurge`
//!   starts the new pod beside the old and deletes the old once the new is available; under
//!   OnDelete a pod is replaced only when someone deletes it;
//! - writes `status` (desired, current, misscheduled, ready, updated, available and
//!   unavailable counts, observedGeneration), which `kubectl rollout status ds` reads.
//!
//! Its pods carry `controller-revision-hash` (and `pod-template-generation`), the label that
//! tells which revision they run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tracing::{info, warn};

use super::controller_ref;
use super::history::{self, Revision};
use super::informers::{Index, Informers, synced};
use super::replica_set::{Backoff, Change, Expectations, delete_owned_pods, message_of};
use skiff_api::events::{EventType, Recorder, object_ref};
use skiff_api::meta::{controller_of, controller_ref};
use skiff_api::node_affinity::{self, FIELD_NODE_NAME};
use skiff_api::pod::{CachedPod, is_active, is_available, is_ready};
use skiff_api::selectors::LabelSelector;
use skiff_api::taints::tolerated;
use skiff_api::well_known::{
    LABEL_CONTROLLER_REVISION_HASH, LABEL_POD_TEMPLATE_GENERATION, TAINT_NODE_DISK_PRESSURE,
    TAINT_NODE_MEMORY_PRESSURE, TAINT_NODE_NETWORK_UNAVAILABLE, TAINT_NODE_NOT_READY,
    TAINT_NODE_PID_PRESSURE, TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE,
};

/// Objects reconciled at once (kube-controller-manager's `--concurrent-daemonset-syncs`).
const CONCURRENT_SYNCS: u16 = 2;

/// Most pods one reconcile creates (kube-controller-manager's burstReplicas).
const BURST_REPLICAS: usize = 500;

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

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let daemon_sets = informers.daemon_sets.reader();
    let context = Arc::new(Context {
        recorder: super::recorder(&client, "daemonset-controller"),
        client,
        pods: informers.pods.reader(),
        pod_index: informers.pods.index(),
        nodes: informers.nodes.reader(),
        revisions: informers.controller_revisions.reader(),
        expectations: Expectations::default(),
        failed_pods: Backoff::default(),
    });
    // A node that comes, goes or changes (labels, taints) may change every DaemonSet's set.
    let all = daemon_sets.clone();
    let index = informers.daemon_sets.index();
    let selector_of = |ds: &DaemonSet| LabelSelector::from_api(&ds.spec.as_ref()?.selector).ok();
    let controller = Controller::for_shared_stream(informers.daemon_sets.subscribe(), daemon_sets);
    let controller = history::watch_pods_and_revisions(controller, informers, index, selector_of)
        .watches_shared_stream(informers.nodes.subscribe(), move |_: Arc<Node>| {
            all.state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        });
    async move {
        info!("daemonset controller started");
        let results = controller
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile, error_policy, context);
        super::drive("daemonset", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    recorder: Recorder,
    pods: Store<CachedPod>,
    /// The pods by controller and namespace: a reconcile reads its own and its orphans.
    pod_index: Index<CachedPod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    /// Failed daemon pods per DaemonSet and node: the next one waits longer each time.
    failed_pods: Backoff,
}

fn error_policy(_ds: Arc<DaemonSet>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing a daemonset: {err}");
    Action::requeue(Duration::from_secs(5))
}

/// Whether a node runs the DaemonSet's pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// A pod should be made there.
    pub should_run: bool,
    /// A pod already there may stay (only an untolerated NoSchedule taint is in the way).
    pub should_continue: bool,
}

/// Kubernetes' `NodeShouldRunDaemonPod`: `spec` is the daemon pod's spec (with the daemon
/// tolerations).
pub fn placement(spec: &PodSpec, node: &Node) -> Placement {
    let never = Placement {
        should_run: false,
        should_continue: false,
    };
    let named = spec.node_name.as_deref().filter(|n| !n.is_empty());
    if named.is_some_and(|n| Some(n) != node.metadata.name.as_deref())
        || !node_affinity::admits(spec, node)
    {
        return never;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let taints: &[Taint] = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let untolerated = |effect: &str| {
        taints
            .iter()
            .any(|t| t.effect == effect && !tolerated(tolerations, t))
    };
    if untolerated("NoExecute") {
        return never;
    }
    Placement {
        should_run: !untolerated("NoSchedule"),
        should_continue: true,
    }
}

/// The tolerations every daemon pod gets (Kubernetes' `AddOrUpdateDaemonPodTolerations`), added
/// to `spec`'s own unless an equal one is there.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        (TAINT_NODE_NOT_READY, "NoExecute"),
        (TAINT_NODE_UNREACHABLE, "NoExecute"),
        (TAINT_NODE_DISK_PRESSURE, "NoSchedule"),
        (TAINT_NODE_MEMORY_PRESSURE, "NoSchedule"),
        (TAINT_NODE_PID_PRESSURE, "NoSchedule"),
        (TAINT_NODE_UNSCHEDULABLE, "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push((TAINT_NODE_NETWORK_UNAVAILABLE, "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let toleration = Toleration {
            key: Some(key.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some(effect.to_owned()),
            value: None,
            toleration_seconds: None,
        };
        if !tolerations.contains(&toleration) {
            tolerations.push(toleration);
        }
    }
}

/// The DaemonSet's pod spec as its pods get it, before the node is chosen.
fn daemon_pod_spec(ds: &DaemonSet) -> PodSpec {
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec
}

/// Ties `spec` to `node` (Kubernetes' `ReplaceDaemonSetPodNodeNameNodeAffinity`): the required
/// node affinity becomes one term on `metadata.name` (the node was judged on the others).
fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: FIELD_NODE_NAME.to_owned(),
            operator: "In".to_owned(),
            values: Some(vec![node.to_owned()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    for ready in [
        synced(&ctx.pods).await,
        synced(&ctx.nodes).await,
        synced(&ctx.revisions).await,
    ] {
        if !ready {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    let namespace = ds.namespace().unwrap_or_default();
    let Some(spec) = ds.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let selector = match LabelSelector::from_api(&spec.selector) {
        Ok(selector) if !selector.is_empty() => selector,
        // The API server refuses these; nothing sensible to do with one.
        Ok(_) | Err(_) => return Ok(Action::await_change()),
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let key = ObjectRef::from_obj(ds.as_ref());
    let uid = ds.uid().unwrap_or_default();

    let mut old_revisions =
        history::claim(&ctx.client, &ctx.revisions, ds.as_ref(), &selector).await?;
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    let current = history::current(
        &ctx.client,
        ds.as_ref(),
        &spec.template,
        collisions,
        &mut old_revisions,
    )
    .await?;
    let Some(Revision { hash, .. }) = current else {
        // A hash collision: the collision count was raised; the next reconcile hashes anew.
        return Ok(Action::requeue(Duration::from_millis(100)));
    };

    // The DaemonSet's pods (adopting and releasing as needed), by the node they are for.
    let pods_api: Api<CachedPod> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut by_node: BTreeMap<String, Vec<Arc<CachedPod>>> = BTreeMap::new();
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
        let pod = match controller_of(pod.as_ref()) {
            Some(owner) if owner.uid == uid => {
                if !matches {
                    controller_ref::release(&pods_api, &pod, &uid).await?;
                    continue;
                }
                pod
            }
            Some(_) => continue,
            None if matches && is_active(&pod) => {
                match controller_ref::adopt(&pods_api, &pod, ds.as_ref()).await? {
                    Some(adopted) => Arc::new(adopted),
                    None => continue,
                }
            }
            None => continue,
        };
        // A finished pod being deleted is of no more concern; one still terminating holds
        // its node until it is gone, as Kubernetes counts it.
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if finished && is_terminating(&pod) {
            continue;
        }
        // A pod tied to no node (Kubernetes cannot tell its node either) is left alone.
        let Some(node) = pod.spec.as_ref().and_then(node_affinity::target_node) else {
            continue;
        };
        by_node.entry(node.to_owned()).or_default().push(pod);
    }
    for pods in by_node.values_mut() {
        // Scheduled first, then oldest first (Kubernetes' podByCreationTimestampAndPhase).
        pods.sort_by_key(|p| {
            let unscheduled = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none();
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (unscheduled, created, p.name_any())
        });
    }

    let pod_spec = daemon_pod_spec(&ds);
    let nodes: Vec<(Arc<Node>, Placement)> = ctx
        .nodes
        .state()
        .into_iter()
        .map(|node| {
            let placement = placement(&pod_spec, &node);
            (node, placement)
        })
        .collect();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Utc::now();
    let mut requeue: Option<Duration> = None;
    let mut failure: Option<kube::Error> = None;
    let mut soonest = |wait: Duration| {
        requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
    };

    if ctx.expectations.satisfied(&key, &ctx.pods) {
        let surge = rolling_bounds(&ds, &nodes).is_some_and(|b| b.max_surge > 0);
        let mut create_on = Vec::new();
        let mut delete = Vec::new();
        for (node, placement) in &nodes {
            let name = node.name_any();
            let pods = by_node.get(&name).map(Vec::as_slice).unwrap_or_default();
            let backoff_key = format!("{key}/{name}");
            if placement.should_run && pods.is_empty() {
                match ctx.failed_pods.waiting(&backoff_key) {
                    Some(wait) => soonest(wait),
                    None => create_on.push(name),
                }
            } else if placement.should_continue {
                let (failed, running): (Vec<_>, Vec<_>) =
                    pods.iter().filter(|p| !is_terminating(p)).partition(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
                    });
                if !failed.is_empty() {
                    ctx.recorder.record(
                        object_ref(ds.as_ref()),
                        EventType::Warning,
                        "FailedDaemonPod",
                        format!(
                            "Found failed daemon pod {namespace}/{} on node {name}, will try to kill it",
                            failed[0].name_any()
                        ),
                    );
                    soonest(ctx.failed_pods.failed(&backoff_key));
                    delete.extend(failed.into_iter().cloned());
                } else if running.iter().any(|p| is_ready(p)) {
                    ctx.failed_pods.succeeded(&backoff_key);
                }
                delete.extend(extra_pods(&running, &hash, surge));
            } else {
                delete.extend(pods.iter().filter(|p| !is_terminating(p)).cloned());
            }
        }
        // Unscheduled pods for nodes that are gone (bound ones are the pod GC's).
        let known: Vec<String> = nodes.iter().map(|(n, _)| n.name_any()).collect();
        for (node, pods) in &by_node {
            if !known.contains(node) {
                let unscheduled = pods.iter().filter(|p| {
                    !is_terminating(p)
                        && p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .is_none()
                });
                delete.extend(unscheduled.cloned());
            }
        }
        if let Some(bounds) = rolling_bounds(&ds, &nodes) {
            let step = rolling_update(&nodes, &by_node, &hash, bounds, min_ready, now);
            delete.extend(step.delete);
            create_on.extend(step.create_on);
        }
        create_on.truncate(BURST_REPLICAS);
        create_pods(&ctx, &ds, &hash, &create_on).await;
        // A failure is returned after the status is written (Kubernetes writes it anyway).
        failure = delete_pods(&ctx, &ds, &delete).await.err();
        // Old revisions beyond the limit go, the oldest first, but none a pod still runs
        // (every old revision counts toward the limit, as in Kubernetes' DaemonSet history).
        let live: Vec<&str> = by_node
            .values()
            .flatten()
            .filter_map(|p| pod_hash(p))
            .collect();
        let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
        let excess = old_revisions.len().saturating_sub(limit);
        let unused: Vec<&ControllerRevision> = old_revisions
            .iter()
            .map(AsRef::as_ref)
            .filter(|r| {
                r.labels()
                    .get(LABEL_CONTROLLER_REVISION_HASH)
                    .is_none_or(|h| !live.contains(&h.as_str()))
            })
            .take(excess)
            .collect();
        if let Err(err) = history::delete(&ctx.client, &namespace, &unused).await {
            failure.get_or_insert(err);
        }
    } else {
        soonest(Duration::from_secs(1));
    }

    let mut status = compute_status(&ds, &nodes, &by_node, &hash, min_ready, now);
    status.collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    if ds.status.as_ref() != Some(&status) {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({ "status": serde_json::to_value(&status).map_err(Error::Encode)? });
        api.patch_status(
            &ds.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    if let Some(err) = failure {
        return Err(err.into());
    }
    // A pod that is ready but not yet available for minReadySeconds becomes so by time alone.
    if min_ready > 0 && status.number_ready != status.number_available.unwrap_or(0) {
        soonest(Duration::from_secs(1));
    }
    Ok(requeue.map_or_else(
        || Action::requeue(Duration::from_secs(300)),
        Action::requeue,
    ))
}

/// The pods to delete among the running ones of a node: all but the oldest of the current
/// revision and, while a surge replaces it, the oldest of an older one.
fn extra_pods(running: &[&Arc<CachedPod>], hash: &str, surge: bool) -> Vec<Arc<CachedPod>> {
    let (new, old): (Vec<&Arc<CachedPod>>, Vec<&Arc<CachedPod>>) =
        running.iter().partition(|p| pod_hash(p) == Some(hash));
    let mut extra = Vec::new();
    match (new.split_first(), old.split_first()) {
        (Some((_, more_new)), Some((_, more_old))) if surge => {
            extra.extend(more_new.iter().map(|p| Arc::clone(p)));
            extra.extend(more_old.iter().map(|p| Arc::clone(p)));
        }
        _ => {
            // The oldest of all stays (the list is sorted oldest first).
            extra.extend(running.iter().skip(1).map(|p| Arc::clone(p)));
        }
    }
    extra
}

fn is_terminating(pod: &CachedPod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The revision hash a pod runs.
fn pod_hash(pod: &CachedPod) -> Option<&str> {
    pod.labels()
        .get(LABEL_CONTROLLER_REVISION_HASH)
        .map(String::as_str)
}

/// A RollingUpdate's bounds, resolved against the number of nodes that should run the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub max_surge: usize,
    pub max_unavailable: usize,
}

/// The bounds of `ds`'s RollingUpdate (`None` under OnDelete). Both round up, as
/// Kubernetes' `updatedDesiredNodeCounts` does; both zero would block, so maxUnavailable is
/// then 1.
fn rolling_bounds(ds: &DaemonSet, nodes: &[(Arc<Node>, Placement)]) -> Option<Bounds> {
    let strategy = ds.spec.as_ref()?.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        return None;
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let desired = nodes.iter().filter(|(_, p)| p.should_run).count();
    let resolve = |value: Option<&IntOrString>, default: i32| match value {
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(text)) => {
            let percent: usize = text.trim_end_matches('%').parse().unwrap_or(0);
            percent.saturating_mul(desired).div_ceil(100)
        }
        None => usize::try_from(default).unwrap_or(0),
    };
    let max_surge = resolve(rolling.and_then(|r| r.max_surge.as_ref()), 0);
    let mut max_unavailable = resolve(rolling.and_then(|r| r.max_unavailable.as_ref()), 1);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    Some(Bounds {
        max_surge,
        max_unavailable,
    })
}

/// What one step of a rolling update does.
#[derive(Debug, Default, PartialEq)]
struct Step {
    delete: Vec<Arc<CachedPod>>,
    create_on: Vec<String>,
}

/// One step of a RollingUpdate (Kubernetes' `rollingUpdate`), over the nodes that should run
/// the pod.
fn rolling_update(
    nodes: &[(Arc<Node>, Placement)],
    by_node: &BTreeMap<String, Vec<Arc<CachedPod>>>,
    hash: &str,
    bounds: Bounds,
    min_ready: i32,
    now: DateTime<Utc>,
) -> Step {
    let available = |pod: &CachedPod| is_available(pod, min_ready, now);
    let mut step = Step::default();
    // Each node's oldest new and oldest old pod (pods are sorted oldest first).
    let on_node = |name: &str| {
        let pods = by_node.get(name).map(Vec::as_slice).unwrap_or_default();
        let running = |p: &&Arc<CachedPod>| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Failed")
                && !is_terminating(p)
        };
        let new = pods
            .iter()
            .filter(running)
            .find(|p| pod_hash(p) == Some(hash));
        let old = pods
            .iter()
            .filter(running)
            .find(|p| pod_hash(p) != Some(hash));
        (new.cloned(), old.cloned())
    };
    let eligible = nodes.iter().filter(|(_, p)| p.should_run);
    if bounds.max_surge == 0 {
        let mut unavailable = 0usize;
        let mut candidates = Vec::new();
        for (node, _) in eligible {
            match on_node(&node.name_any()) {
                (Some(new), _) => {
                    if !available(&new) {
                        unavailable += 1;
                    }
                }
                (None, None) => unavailable += 1,
                (None, Some(old)) => {
                    if available(&old) {
                        candidates.push(old);
                    } else {
                        // Not available anyway: replaced at once.
                        step.delete.push(old);
                    }
                }
            }
        }
        let room = bounds
            .max_unavailable
            .saturating_sub(unavailable + step.delete.len());
        step.delete.extend(candidates.into_iter().take(room));
    } else {
        let mut surged = 0usize;
        let mut candidates = Vec::new();
        for (node, _) in eligible {
            let name = node.name_any();
            match on_node(&name) {
                (_, None) => {}
                (None, Some(old)) => {
                    if available(&old) {
                        candidates.push(name);
                    } else {
                        step.create_on.push(name);
                    }
                }
                (Some(new), Some(old)) => {
                    surged += 1;
                    if available(&new) {
                        step.delete.push(old);
                    }
                }
            }
        }
        let room = bounds
            .max_surge
            .saturating_sub(surged + step.create_on.len());
        step.create_on.extend(candidates.into_iter().take(room));
    }
    step
}

/// The status `ds`'s pods make (Kubernetes' `updateDaemonSetStatus`).
fn compute_status(
    ds: &DaemonSet,
    nodes: &[(Arc<Node>, Placement)],
    by_node: &BTreeMap<String, Vec<Arc<CachedPod>>>,
    hash: &str,
    min_ready: i32,
    now: DateTime<Utc>,
) -> DaemonSetStatus {
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        ..Default::default()
    };
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut available, mut updated) = (0, 0, 0);
    for (node, placement) in nodes {
        let pods = by_node
            .get(&node.name_any())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if placement.should_run {
            desired += 1;
            // The node's first pod counts: scheduled, oldest (the old one during a surge).
            let Some(pod) = pods.first() else { continue };
            current += 1;
            if is_ready(pod) {
                ready += 1;
                if is_available(pod, min_ready, now) {
                    available += 1;
                }
            }
            if pod_hash(pod) == Some(hash) {
                updated += 1;
            }
        } else if !pods.is_empty() {
            misscheduled += 1;
        }
    }
    status.desired_number_scheduled = count(desired);
    status.current_number_scheduled = count(current);
    status.number_misscheduled = count(misscheduled);
    status.number_ready = count(ready);
    status.number_available = Some(count(available));
    status.updated_number_scheduled = Some(count(updated));
    status.number_unavailable = Some(count(desired.saturating_sub(available)));
    status
}

fn template_of(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// A new pod of `ds` for `node`, labelled with the revision `hash`.
fn pod_for(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let template = template_of(ds);
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(LABEL_CONTROLLER_REVISION_HASH.to_owned(), hash.to_owned());
    labels.insert(
        LABEL_POD_TEMPLATE_GENERATION.to_owned(),
        ds.metadata.generation.unwrap_or(0).to_string(),
    );
    let mut spec = daemon_pod_spec(ds);
    pin_to_node(&mut spec, node);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Creates a pod on each of `nodes`, in batches of 1, 2, 4, ... that stop at the first
/// failure (a template the API server refuses fails once, not once per node).
async fn create_pods(ctx: &Context, ds: &DaemonSet, hash: &str, nodes: &[String]) {
    let key = ObjectRef::from_obj(ds);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    let params = PostParams::default();
    let mut batch = 1;
    let mut rest = nodes;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        let pods: Vec<Pod> = now.iter().map(|node| pod_for(ds, hash, node)).collect();
        let results =
            futures::future::join_all(pods.iter().map(|pod| api.create(&params, pod))).await;
        let mut created = Vec::new();
        let mut failed = false;
        for (node, result) in now.iter().zip(results) {
            match result {
                Ok(pod) => {
                    ctx.recorder.record(
                        object_ref(ds),
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", pod.name_any()),
                    );
                    created.push(pod.name_any());
                }
                Err(err) => {
                    warn!(daemonset = %ds.name_any(), node, "creating a pod: {err}");
                    ctx.recorder.record(
                        object_ref(ds),
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating: {}", message_of(&err)),
                    );
                    failed = true;
                }
            }
        }
        ctx.expectations.expect(&key, Change::Create, &created);
        if failed {
            break;
        }
        batch = batch.saturating_mul(2);
    }
}

/// Deletes `pods` of the DaemonSet.
async fn delete_pods(
    ctx: &Context,
    ds: &DaemonSet,
    pods: &[Arc<CachedPod>],
) -> Result<(), kube::Error> {
    let mut names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    names.sort();
    names.dedup();
    delete_owned_pods(&ctx.client, &ctx.recorder, &ctx.expectations, ds, &names).await
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"taints": taints},
            }))
            .expect("node"),
        )
    }

    fn daemon_set(spec: Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 2},
            "spec": spec,
        }))
        .expect("daemonset")
    }

    fn pod(name: &str, hash: &str, ready: bool, created: &str) -> Arc<CachedPod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default",
                             "labels": {LABEL_CONTROLLER_REVISION_HASH: hash},
                             "creationTimestamp": created},
                "spec": {"containers": [{"name": "a", "image": "x"}]},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" },
                     "lastTransitionTime": "2026-12-01T10:00:00Z"}]},
            }))
            .expect("pod"),
        )
    }

    fn runs(should_run: bool, should_continue: bool) -> Placement {
        Placement {
            should_run,
            should_continue,
        }
    }

    #[test]
    fn daemon_pods_tolerate_a_failing_or_cordoned_node_but_not_other_taints() {
        let ds = daemon_set(json!({"template": {"spec": {"containers": []}}}));
        let spec = daemon_pod_spec(&ds);
        let plain = node("a", json!({}), json!([]));
        assert_eq!(placement(&spec, &plain), runs(true, true));
        for (key, effect) in [
            (TAINT_NODE_UNREACHABLE, "NoExecute"),
            (TAINT_NODE_NOT_READY, "NoExecute"),
            (TAINT_NODE_UNSCHEDULABLE, "NoSchedule"),
            (TAINT_NODE_MEMORY_PRESSURE, "NoSchedule"),
        ] {
            let tainted = node("b", json!({}), json!([{"key": key, "effect": effect}]));
            assert_eq!(placement(&spec, &tainted), runs(true, true), "{key}");
        }
        let dedicated = node(
            "c",
            json!({}),
            json!([{"key": "gpu", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            placement(&spec, &dedicated),
            runs(false, true),
            "a pod already there stays under a NoSchedule taint"
        );
        let evicting = node(
            "d",
            json!({}),
            json!([{"key": "gpu", "effect": "NoExecute"}]),
        );
        assert_eq!(placement(&spec, &evicting), runs(false, false));
        let network = node(
            "e",
            json!({}),
            json!([{"key": TAINT_NODE_NETWORK_UNAVAILABLE, "effect": "NoSchedule"}]),
        );
        assert_eq!(placement(&spec, &network), runs(false, true));
        // A template naming a node runs there only.
        let named = daemon_set(json!({"template": {"spec": {"nodeName": "a", "containers": []}}}));
        let named_spec = daemon_pod_spec(&named);
        assert_eq!(placement(&named_spec, &plain), runs(true, true));
        assert_eq!(placement(&named_spec, &dedicated), runs(false, false));
        let host =
            daemon_set(json!({"template": {"spec": {"hostNetwork": true, "containers": []}}}));
        assert_eq!(
            placement(&daemon_pod_spec(&host), &network),
            runs(true, true),
            "hostNetwork pods tolerate an unconfigured network"
        );
        // Tolerations are added once.
        let mut twice = spec.clone();
        add_daemon_tolerations(&mut twice);
        assert_eq!(twice.tolerations, spec.tolerations);
    }

    #[test]
    fn the_node_selector_picks_the_nodes() {
        let ds = daemon_set(json!({"template": {"spec": {
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}},
            "containers": []}}}));
        let spec = daemon_pod_spec(&ds);
        let ssd_a = node("n1", json!({"disk": "ssd", "zone": "a"}), json!([]));
        let hdd_a = node("n2", json!({"disk": "hdd", "zone": "a"}), json!([]));
        let ssd_c = node("n3", json!({"disk": "ssd", "zone": "c"}), json!([]));
        assert_eq!(placement(&spec, &ssd_a), runs(true, true));
        assert_eq!(placement(&spec, &hdd_a), runs(false, false));
        assert_eq!(placement(&spec, &ssd_c), runs(false, false));
        // The pod is pinned by name alone: the scheduler binds it to that node.
        let pod = pod_for(&ds, "h1", "n1");
        let cached = CachedPod::from(&pod).spec.expect("spec");
        assert_eq!(node_affinity::target_node(&cached), Some("n1"));
        let pod_spec = pod.spec.expect("spec");
        assert!(node_affinity::admits(&pod_spec, &ssd_a));
        assert!(!node_affinity::admits(&pod_spec, &ssd_c));
        let labels = pod.metadata.labels.expect("labels");
        assert_eq!(labels[LABEL_CONTROLLER_REVISION_HASH], "h1");
        assert_eq!(labels[LABEL_POD_TEMPLATE_GENERATION], "2");
    }

    fn nodes(names: &[&str]) -> Vec<(Arc<Node>, Placement)> {
        names
            .iter()
            .map(|n| (node(n, json!({}), json!([])), runs(true, true)))
            .collect()
    }

    fn names(pods: &[Arc<CachedPod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    const T0: &str = "2026-12-01T09:00:00Z";
    const T1: &str = "2026-12-01T09:30:00Z";

    #[test]
    fn a_rolling_update_without_surge_replaces_max_unavailable_pods_at_a_time() {
        let nodes = nodes(&["n1", "n2", "n3", "n4"]);
        let mut by_node = BTreeMap::new();
        by_node.insert("n1".to_owned(), vec![pod("p1", "old", true, T0)]);
        by_node.insert("n2".to_owned(), vec![pod("p2", "old", true, T0)]);
        by_node.insert("n3".to_owned(), vec![pod("p3", "old", false, T0)]);
        by_node.insert("n4".to_owned(), vec![pod("p4", "new", true, T0)]);
        let now = Utc::now();
        let bounds = Bounds {
            max_surge: 0,
            max_unavailable: 2,
        };
        let step = rolling_update(&nodes, &by_node, "new", bounds, 0, now);
        // The unavailable old pod goes at once and takes one of the two places.
        assert_eq!(names(&step.delete), ["p3", "p1"]);
        assert!(step.create_on.is_empty());
        // A new pod not yet available holds its place: nothing more goes.
        by_node.insert("n3".to_owned(), vec![pod("p3b", "new", false, T1)]);
        by_node.insert("n1".to_owned(), vec![pod("p1b", "new", false, T1)]);
        let step = rolling_update(&nodes, &by_node, "new", bounds, 0, now);
        assert!(step.delete.is_empty(), "{step:?}");
    }

    #[test]
    fn a_rolling_update_with_surge_starts_the_new_pod_before_the_old_goes() {
        let nodes = nodes(&["n1", "n2"]);
        let mut by_node = BTreeMap::new();
        by_node.insert("n1".to_owned(), vec![pod("p1", "old", true, T0)]);
        by_node.insert("n2".to_owned(), vec![pod("p2", "old", true, T0)]);
        let bounds = Bounds {
            max_surge: 1,
            max_unavailable: 0,
        };
        let now = Utc::now();
        let step = rolling_update(&nodes, &by_node, "new", bounds, 0, now);
        assert_eq!(step.create_on, ["n1"]);
        assert!(step.delete.is_empty());
        // The new pod not ready yet: wait; ready: the old one goes, and no other surge starts
        // until it has.
        by_node.insert(
            "n1".to_owned(),
            vec![pod("p1", "old", true, T0), pod("p1b", "new", false, T1)],
        );
        let step = rolling_update(&nodes, &by_node, "new", bounds, 0, now);
        assert_eq!(step, Step::default());
        by_node.insert(
            "n1".to_owned(),
            vec![pod("p1", "old", true, T0), pod("p1b", "new", true, T1)],
        );
        let step = rolling_update(&nodes, &by_node, "new", bounds, 0, now);
        assert_eq!(names(&step.delete), ["p1"]);
        assert!(step.create_on.is_empty());
    }

    #[test]
    fn a_node_keeps_one_pod_and_a_surge_its_old_one_too() {
        let a = pod("a", "new", true, T0);
        let b = pod("b", "new", true, T1);
        let c = pod("c", "old", true, T0);
        assert_eq!(names(&extra_pods(&[&a, &b], "new", false)), ["b"]);
        assert_eq!(names(&extra_pods(&[&c, &a, &b], "new", true)), ["b"]);
        assert_eq!(names(&extra_pods(&[&c, &a], "new", false)), ["a"]);
    }

    #[test]
    fn the_status_counts_nodes() {
        let ds = daemon_set(json!({"template": {"spec": {"containers": []}}}));
        let mut nodes = nodes(&["n1", "n2", "n3"]);
        nodes.push((node("n4", json!({}), json!([])), runs(false, false)));
        let mut by_node = BTreeMap::new();
        by_node.insert("n1".to_owned(), vec![pod("p1", "new", true, T0)]);
        by_node.insert("n2".to_owned(), vec![pod("p2", "old", false, T0)]);
        by_node.insert("n4".to_owned(), vec![pod("p4", "new", true, T0)]);
        let status = compute_status(&ds, &nodes, &by_node, "new", 0, Utc::now());
        assert_eq!(status.desired_number_scheduled, 3);
        assert_eq!(status.current_number_scheduled, 2);
        assert_eq!(status.number_misscheduled, 1);
        assert_eq!(status.number_ready, 1);
        assert_eq!(status.number_available, Some(1));
        assert_eq!(status.updated_number_scheduled, Some(1));
        assert_eq!(status.number_unavailable, Some(2));
        assert_eq!(status.observed_generation, Some(2));
    }

    #[test]
    fn bounds_round_up_and_never_block() {
        let nodes = nodes(&["n1", "n2", "n3"]);
        let with = |strategy: Value| {
            rolling_bounds(
                &daemon_set(json!({"updateStrategy": strategy, "template": {}})),
                &nodes,
            )
        };
        assert_eq!(
            with(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%", "maxSurge": 0}})
            ),
            Some(Bounds {
                max_surge: 0,
                max_unavailable: 2
            })
        );
        assert_eq!(
            with(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}})
            ),
            Some(Bounds {
                max_surge: 0,
                max_unavailable: 1
            })
        );
        assert_eq!(with(json!({"type": "OnDelete"})), None);
    }
}
