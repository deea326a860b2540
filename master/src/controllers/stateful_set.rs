//! The StatefulSet controller: pods with a stable identity, `<set>-<ordinal>`, made, replaced
//! and removed in order, as kube-controller-manager's statefulset controller keeps them.
//!
//! A reconcile of one StatefulSet
//! - keeps its history as ControllerRevisions ([`super::history`]): the update revision is the
//!   current template's; the current revision is the one its pods ran before a rollout
//!   (`status.currentRevision`);
//! - adopts pods that match its selector, are named after it and have no controller, and
//!   releases pods it owns that no longer match;
//! - makes the pod of each ordinal in `[start, start + replicas)` that is missing, named
//!   `<set>-<ordinal>` with that `hostname` and the governing Service (`serviceName`) as its
//!   `subdomain`, so the cluster DNS answers `<set>-<ordinal>.<service>`; a pod below the
//!   partition gets the current revision's template, the others the update revision's;
//! - deletes failed and succeeded pods (the next reconcile makes them again), and pods above
//!   the range, the highest ordinal first;
//! - under OrderedReady does one thing at a time: makes the next ordinal only when every lower
//!   one is running and ready, removes one surplus pod only when every other is, and waits
//!   for a pod that terminates; under Parallel makes and removes them all at once;
//! - under RollingUpdate, once every pod is running and ready, deletes the pod with the
//!   highest ordinal at or above the partition that does not run the update revision, one at
//!   a time (it comes back with the new template); under OnDelete a pod gets the new template
//!   when someone deletes it;
//! - writes `status` (replicas, ready, available, current and updated counts, the current and
//!   update revisions, observedGeneration), which `kubectl rollout status sts` reads; a
//!   RollingUpdate is complete, and its revision current, once every pod runs it and is ready.
//!
//! `volumeClaimTemplates` are refused by the API server (no storage is served yet), so its
//! pods claim nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use serde_json::json;
use tracing::{info, warn};

use super::controller_ref;
use super::history;
use super::informers::{Index, Informers, synced};
use super::replica_set::message_of;
use skiff_api::events::{EventType, Recorder, object_ref};
use skiff_api::meta::{controller_of, controller_ref};
use skiff_api::pod::{CachedPod, is_available, is_ready};
use skiff_api::selectors::LabelSelector;
use skiff_api::well_known::LABEL_CONTROLLER_REVISION_HASH;

/// Objects reconciled at once (kube-controller-manager's `--concurrent-statefulset-syncs`).
const CONCURRENT_SYNCS: u16 = 5;

/// The label with a StatefulSet pod's own name (for a Service per pod).
pub const LABEL_POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a StatefulSet pod's ordinal.
pub const LABEL_POD_INDEX: &str = "apps.kubernetes.io/pod-index";

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
    let sets = informers.stateful_sets.reader();
    let context = Arc::new(Context {
        recorder: super::recorder(&client, "statefulset-controller"),
        client,
        pods: informers.pods.reader(),
        pod_index: informers.pods.index(),
        revisions: informers.controller_revisions.reader(),
    });
    let index = informers.stateful_sets.index();
    let selector_of =
        |set: &StatefulSet| LabelSelector::from_api(&set.spec.as_ref()?.selector).ok();
    let controller = Controller::for_shared_stream(informers.stateful_sets.subscribe(), sets);
    let controller = history::watch_pods_and_revisions(controller, informers, index, selector_of);
    async move {
        info!("statefulset controller started");
        let results = controller
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile, error_policy, context);
        super::drive("statefulset", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    recorder: Recorder,
    pods: Store<CachedPod>,
    /// The pods by controller and namespace: a reconcile reads its own and its orphans.
    pod_index: Index<CachedPod>,
    revisions: Store<ControllerRevision>,
}

fn error_policy(_set: Arc<StatefulSet>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing a statefulset: {err}");
    Action::requeue(Duration::from_secs(5))
}

/// The ordinal in a pod's name, when it is `<set>-<ordinal>`.
fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    // No sign, no leading zeros: only the names the controller makes.
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

fn is_terminating(pod: &CachedPod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn is_finished(pod: &CachedPod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed" | "Succeeded")
    )
}

/// Running and ready, and not on its way out.
fn is_healthy(pod: &CachedPod) -> bool {
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    running && is_ready(pod) && !is_terminating(pod)
}

fn revision_of(pod: &CachedPod) -> Option<&str> {
    pod.labels()
        .get(LABEL_CONTROLLER_REVISION_HASH)
        .map(String::as_str)
}

/// One step the reconcile takes.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Make the pod of this ordinal.
    Create(i32),
    /// Delete this pod.
    Delete(String),
}

/// Most pods one reconcile makes under Parallel (kube-controller-manager's burst).
const BURST_REPLICAS: usize = 500;

/// The set's pods as [`plan`] reads them.
struct Pods<'a> {
    /// The ordinals the set should have.
    range: std::ops::Range<i32>,
    /// The pod of an ordinal in range, if there is one.
    at: &'a (dyn Fn(i32) -> Option<&'a CachedPod> + Sync),
    /// The pods above the range, highest ordinal first.
    condemned: &'a [&'a CachedPod],
}

/// What the set's pods need next (Kubernetes' `updateStatefulSet`); `available` says whether
/// a pod has been ready for `minReadySeconds`, `partition` is the lowest ordinal a
/// RollingUpdate replaces (`None`: OnDelete).
fn plan(
    pods: &Pods<'_>,
    update_revision: &str,
    ordered: bool,
    partition: Option<i32>,
    available: &dyn Fn(&CachedPod) -> bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut creates = 0usize;
    for ordinal in pods.range.clone() {
        match (pods.at)(ordinal) {
            None => {
                steps.push(Step::Create(ordinal));
                creates += 1;
                if ordered || creates >= BURST_REPLICAS {
                    return steps;
                }
            }
            Some(pod) if is_finished(pod) && !is_terminating(pod) => {
                steps.push(Step::Delete(pod.name_any()));
                if ordered {
                    return steps;
                }
            }
            // Ordered: the next ordinal waits until this one is running, ready and available.
            Some(pod) if ordered && !(is_healthy(pod) && available(pod)) => return steps,
            Some(_) => {}
        }
    }
    // Only the lowest unhealthy pod above the range may go while others are unhealthy.
    let first_unhealthy = pods.condemned.iter().rev().find(|p| !is_healthy(p));
    for pod in pods.condemned {
        if is_terminating(pod) {
            if ordered {
                return steps;
            }
            continue;
        }
        let first = first_unhealthy.is_some_and(|f| std::ptr::eq(*f, *pod));
        if ordered && !is_healthy(pod) && !first {
            return steps;
        }
        steps.push(Step::Delete(pod.name_any()));
        if ordered {
            return steps;
        }
    }
    if !steps.is_empty() {
        // Parallel: a rolling update waits for the set to be whole.
        return steps;
    }
    let Some(partition) = partition else {
        return steps;
    };
    for ordinal in pods.range.clone().rev() {
        if ordinal < partition {
            break;
        }
        let Some(pod) = (pods.at)(ordinal) else {
            return steps;
        };
        if revision_of(pod) != Some(update_revision) && !is_terminating(pod) {
            steps.push(Step::Delete(pod.name_any()));
            return steps;
        }
        if !is_healthy(pod) {
            return steps;
        }
    }
    steps
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !synced(&ctx.pods).await || !synced(&ctx.revisions).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let Some(spec) = set.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let selector = match LabelSelector::from_api(&spec.selector) {
        Ok(selector) if !selector.is_empty() => selector,
        // The API server refuses these; nothing sensible to do with one.
        Ok(_) | Err(_) => return Ok(Action::await_change()),
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = set.name_any();
    let namespace = set.namespace().unwrap_or_default();
    let uid = set.uid().unwrap_or_default();

    let mut revisions =
        history::claim(&ctx.client, &ctx.revisions, set.as_ref(), &selector).await?;
    let collisions = set.status.as_ref().and_then(|s| s.collision_count);
    let update = history::current(
        &ctx.client,
        set.as_ref(),
        &spec.template,
        collisions,
        &mut revisions,
    )
    .await?;
    let Some(update) = update else {
        // A hash collision: the collision count was raised; the next reconcile hashes anew.
        return Ok(Action::requeue(Duration::from_millis(100)));
    };
    // The current revision: the one the status names, while it is still there.
    let status_current = set.status.as_ref().and_then(|s| s.current_revision.clone());
    let current = status_current
        .and_then(|wanted| revisions.iter().find(|r| r.name_any() == wanted).cloned());
    let current_template = current
        .as_deref()
        .and_then(history::template_of)
        .unwrap_or_else(|| spec.template.clone());
    let current_name = current
        .as_ref()
        .map_or_else(|| update.name.clone(), |r| r.name_any());

    // The set's pods (adopting and releasing as needed), by ordinal.
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let cached_pods: Api<CachedPod> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut by_ordinal: BTreeMap<i32, Arc<CachedPod>> = BTreeMap::new();
    for pod in ctx
        .pod_index
        .controlled_by(&uid)
        .into_iter()
        .chain(ctx.pod_index.orphans_in(&namespace))
    {
        if pod.namespace().as_deref() != Some(namespace.as_str()) {
            continue;
        }
        let ordinal = ordinal_of(&name, &pod.name_any());
        let matches = selector.matches(pod.labels());
        let pod = match controller_of(pod.as_ref()) {
            Some(owner) if owner.uid == uid => {
                if !matches {
                    controller_ref::release(&cached_pods, &pod, &uid).await?;
                    continue;
                }
                pod
            }
            Some(_) => continue,
            None if matches && ordinal.is_some() && !is_terminating(&pod) => {
                match controller_ref::adopt(&cached_pods, &pod, set.as_ref()).await? {
                    Some(adopted) => Arc::new(adopted),
                    None => continue,
                }
            }
            None => continue,
        };
        // A pod whose name has no ordinal is left alone, as Kubernetes leaves it.
        if let Some(ordinal) = ordinal {
            by_ordinal.insert(ordinal, pod);
        }
    }

    let start = spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let count = spec.replicas.unwrap_or(1).max(0);
    let end = start.saturating_add(count);
    let at = |ordinal: i32| by_ordinal.get(&ordinal).map(AsRef::as_ref);
    let condemned: Vec<&CachedPod> = by_ordinal
        .iter()
        .filter(|(ordinal, _)| !(start..end).contains(*ordinal))
        .map(|(_, pod)| pod.as_ref())
        .rev()
        .collect();
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete");
    let partition = start.saturating_add(
        strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0)
            .max(0),
    );
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Utc::now();
    let pods = Pods {
        range: start..end,
        at: &at,
        condemned: &condemned,
    };
    let steps = plan(
        &pods,
        &update.name,
        ordered,
        rolling.then_some(partition),
        &|pod| is_available(pod, min_ready, now),
    );
    // A failure is returned after the status is written (Kubernetes writes it anyway).
    let mut failure: Option<kube::Error> = None;
    for step in steps {
        match step {
            Step::Create(ordinal) => {
                // Below the partition a pod keeps the current revision's template.
                let (template, revision) = if rolling && ordinal < partition {
                    (&current_template, current_name.as_str())
                } else {
                    (&spec.template, update.name.as_str())
                };
                let pod = pod_for(&set, template, revision, ordinal);
                if let Err(err) = create_pod(&ctx, &set, &pods_api, &pod).await {
                    failure = Some(err);
                    break;
                }
            }
            Step::Delete(pod) => match pods_api.delete(&pod, &DeleteParams::default()).await {
                Ok(_) => ctx.recorder.record(
                    object_ref(set.as_ref()),
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("delete Pod {pod} in StatefulSet {name} successful"),
                ),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            },
        }
    }

    let pods: Vec<&CachedPod> = by_ordinal.values().map(AsRef::as_ref).collect();
    let counted = |f: &dyn Fn(&CachedPod) -> bool| {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: counted(&|_| true),
        ready_replicas: Some(counted(&|p| is_ready(p) && !is_terminating(p))),
        available_replicas: Some(counted(&|p| {
            is_ready(p) && !is_terminating(p) && is_available(p, min_ready, now)
        })),
        current_replicas: Some(counted(&|p| {
            !is_terminating(p) && revision_of(p) == Some(current_name.as_str())
        })),
        updated_replicas: Some(counted(&|p| {
            !is_terminating(p) && revision_of(p) == Some(update.name.as_str())
        })),
        current_revision: Some(current_name.clone()),
        update_revision: Some(update.name.clone()),
        collision_count: collisions,
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    // A RollingUpdate is complete once every pod runs the update revision and is ready.
    if rolling
        && status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    if set.status.as_ref() != Some(&status) {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({ "status": serde_json::to_value(&status).map_err(Error::Encode)? });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }

    if let Some(err) = failure {
        return Err(err.into());
    }
    // Revisions beyond the limit go, the oldest first, but none that is current or that a
    // pod still runs.
    let unused: Vec<&ControllerRevision> = revisions
        .iter()
        .map(AsRef::as_ref)
        .filter(|r| {
            let revision = r.name_any();
            revision != current_name
                && !pods
                    .iter()
                    .any(|p| revision_of(p) == Some(revision.as_str()))
        })
        .collect();
    let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let excess = unused.len().saturating_sub(limit);
    history::delete(&ctx.client, &namespace, &unused[..excess]).await?;

    let waiting_for_time = min_ready > 0 && status.ready_replicas != status.available_replicas;
    Ok(Action::requeue(if waiting_for_time {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(300)
    }))
}

/// The pod of `ordinal`: `<set>-<ordinal>`, from `template`, labelled with `revision`.
fn pod_for(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let name = format!("{}-{ordinal}", set.name_any());
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(
        LABEL_CONTROLLER_REVISION_HASH.to_owned(),
        revision.to_owned(),
    );
    labels.insert(LABEL_POD_NAME.to_owned(), name.clone());
    labels.insert(LABEL_POD_INDEX.to_owned(), ordinal.to_string());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Creates `pod`; one that exists already (the cache is behind) is no error.
async fn create_pod(
    ctx: &Context,
    set: &StatefulSet,
    api: &Api<Pod>,
    pod: &Pod,
) -> Result<(), kube::Error> {
    let name = pod.name_any();
    match api.create(&PostParams::default(), pod).await {
        Ok(_) => {
            ctx.recorder.record(
                object_ref(set),
                EventType::Normal,
                "SuccessfulCreate",
                format!(
                    "create Pod {name} in StatefulSet {} successful",
                    set.name_any()
                ),
            );
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => {
            ctx.recorder.record(
                object_ref(set),
                EventType::Warning,
                "FailedCreate",
                format!(
                    "create Pod {name} in StatefulSet {} failed error: {}",
                    set.name_any(),
                    message_of(&err)
                ),
            );
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, revision: &str, phase: &str, ready: bool) -> CachedPod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {LABEL_CONTROLLER_REVISION_HASH: revision}},
            "spec": {"containers": []},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .expect("pod")
    }

    fn healthy(name: &str, revision: &str) -> CachedPod {
        pod(name, revision, "Running", true)
    }

    fn terminating(mut pod: CachedPod) -> CachedPod {
        pod.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Utc::now()),
        );
        pod
    }

    /// [`plan`] over `replicas` (ordinal, pod) from ordinal 0, every pod available.
    fn run_plan(
        replicas: &[(i32, Option<&CachedPod>)],
        condemned: &[&CachedPod],
        update_revision: &str,
        ordered: bool,
        partition: Option<i32>,
    ) -> Vec<Step> {
        let at = |ordinal: i32| {
            replicas
                .iter()
                .find(|(o, _)| *o == ordinal)
                .and_then(|(_, p)| *p)
        };
        let pods = Pods {
            range: 0..i32::try_from(replicas.len()).unwrap_or(i32::MAX),
            at: &at,
            condemned,
        };
        plan(&pods, update_revision, ordered, partition, &|_| true)
    }

    fn delete(name: &str) -> Step {
        Step::Delete(name.to_owned())
    }

    #[test]
    fn only_the_names_the_controller_makes_have_ordinals() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        for other in [
            "web",
            "web-",
            "web-01",
            "web--1",
            "web-a",
            "webx-1",
            "web-1-2",
            "web-99999999999",
        ] {
            assert_eq!(ordinal_of("web", other), None, "{other}");
        }
    }

    #[test]
    fn ordered_ready_makes_one_pod_at_a_time_and_waits_for_it() {
        let p0 = healthy("web-0", "r1");
        let starting = pod("web-1", "r1", "Pending", false);
        // Nothing yet: only web-0.
        assert_eq!(
            run_plan(&[(0, None), (1, None), (2, None)], &[], "r1", true, Some(0)),
            [Step::Create(0)]
        );
        // web-1 not ready: wait.
        assert_eq!(
            run_plan(
                &[(0, Some(&p0)), (1, Some(&starting)), (2, None)],
                &[],
                "r1",
                true,
                Some(0)
            ),
            []
        );
        // Parallel: all at once.
        assert_eq!(
            run_plan(
                &[(0, None), (1, Some(&starting)), (2, None)],
                &[],
                "r1",
                false,
                Some(0)
            ),
            [Step::Create(0), Step::Create(2)]
        );
        // A failed pod goes, to be made again.
        let failed = pod("web-1", "r1", "Failed", false);
        assert_eq!(
            run_plan(
                &[(0, Some(&p0)), (1, Some(&failed))],
                &[],
                "r1",
                true,
                Some(0)
            ),
            [delete("web-1")]
        );
    }

    #[test]
    fn scale_down_takes_the_highest_ordinal_first_once_the_rest_is_healthy() {
        let p0 = healthy("web-0", "r1");
        let p1 = healthy("web-1", "r1");
        let p2 = healthy("web-2", "r1");
        assert_eq!(
            run_plan(&[(0, Some(&p0))], &[&p2, &p1], "r1", true, Some(0)),
            [delete("web-2")]
        );
        // web-2 terminating: web-1 waits for it.
        let going = terminating(p2.clone());
        assert_eq!(
            run_plan(&[(0, Some(&p0))], &[&going, &p1], "r1", true, Some(0)),
            []
        );
        // Parallel: both at once.
        assert_eq!(
            run_plan(&[(0, Some(&p0))], &[&p2, &p1], "r1", false, Some(0)),
            [delete("web-2"), delete("web-1")]
        );
    }

    #[test]
    fn an_unhealthy_pod_above_the_range_does_not_hold_back_a_healthy_one_above_it() {
        let p0 = healthy("web-0", "r1");
        let crashing = pod("web-3", "r1", "Running", false);
        let p4 = healthy("web-4", "r1");
        // Scaling 5 to 1 with web-3 crashing: web-4 goes first, then web-3 (the first
        // unhealthy one), even though it is not ready.
        assert_eq!(
            run_plan(&[(0, Some(&p0))], &[&p4, &crashing], "r1", true, Some(0)),
            [delete("web-4")]
        );
        assert_eq!(
            run_plan(&[(0, Some(&p0))], &[&crashing], "r1", true, Some(0)),
            [delete("web-3")]
        );
    }

    #[test]
    fn ordered_ready_waits_for_min_ready_seconds_and_parallel_makes_a_burst_at_most() {
        let p0 = healthy("web-0", "r1");
        let at = |ordinal: i32| (ordinal == 0).then_some(&p0);
        let pods = Pods {
            range: 0..3,
            at: &at,
            condemned: &[],
        };
        assert_eq!(plan(&pods, "r1", true, Some(0), &|_| false), []);
        assert_eq!(
            plan(&pods, "r1", true, Some(0), &|_| true),
            [Step::Create(1)]
        );
        let none = |_: i32| None;
        let huge = Pods {
            range: 0..i32::MAX,
            at: &none,
            condemned: &[],
        };
        assert_eq!(
            plan(&huge, "r1", false, Some(0), &|_| true).len(),
            BURST_REPLICAS
        );
    }

    #[test]
    fn a_rolling_update_replaces_from_the_top_down_to_the_partition() {
        let old = |n: &str| healthy(n, "r1");
        let (p0, p1, p2) = (old("web-0"), old("web-1"), old("web-2"));
        let set = [(0, Some(&p0)), (1, Some(&p1)), (2, Some(&p2))];
        assert_eq!(run_plan(&set, &[], "r2", true, Some(0)), [delete("web-2")]);
        // With partition 2 only web-2 is replaced; once it is new and healthy, nothing else.
        let new2 = healthy("web-2", "r2");
        let updated = [(0, Some(&p0)), (1, Some(&p1)), (2, Some(&new2))];
        assert_eq!(run_plan(&updated, &[], "r2", true, Some(2)), []);
        assert_eq!(
            run_plan(&updated, &[], "r2", true, Some(0)),
            [delete("web-1")]
        );
        // The new web-2 not ready yet: wait before web-1.
        let starting = pod("web-2", "r2", "Running", false);
        let waiting = [(0, Some(&p0)), (1, Some(&p1)), (2, Some(&starting))];
        assert_eq!(run_plan(&waiting, &[], "r2", false, Some(0)), []);
        // OnDelete: nothing is replaced.
        assert_eq!(run_plan(&set, &[], "r2", true, None), []);
    }

    #[test]
    fn a_pod_has_its_identity_and_revision() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default", "uid": "u"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}},
        }))
        .expect("set");
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let pod = pod_for(&set, &template, "db-abc", 2);
        assert_eq!(pod.metadata.name.as_deref(), Some("db-2"));
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("db-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        let labels = pod.metadata.labels.expect("labels");
        assert_eq!(labels[LABEL_CONTROLLER_REVISION_HASH], "db-abc");
        assert_eq!(labels[LABEL_POD_NAME], "db-2");
        assert_eq!(labels[LABEL_POD_INDEX], "2");
        assert_eq!(labels["app"], "db");
    }
}
