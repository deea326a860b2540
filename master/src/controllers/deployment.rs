//! The Deployment controller: runs a Deployment's pods through ReplicaSets, one per version of
//! its pod template, and rolls from the old ones to the new one.
//!
//! As kube-controller-manager's deployment controller does, a reconcile of one Deployment
//! - finds its ReplicaSets (adopting orphans that match its selector); the "new" one has the
//!   Deployment's template (ignoring the `pod-template-hash` label), and is made when missing:
//!   `<deployment>-<pod-template-hash>`, the hash label added to its selector, template and
//!   labels, and `deployment.kubernetes.io/revision` one above the old ones';
//! - scales: `Recreate` scales the old ReplicaSets to zero, waits until their pods are gone,
//!   then scales the new one up; `RollingUpdate` scales the new one up as far as `maxSurge`
//!   lets it and the old ones down as far as `maxUnavailable` lets them;
//! - deletes old, empty ReplicaSets beyond `revisionHistoryLimit`;
//! - writes `status`: replica counts, `observedGeneration`, and the `Available` and
//!   `Progressing` conditions (`NewReplicaSetAvailable` when the rollout is complete,
//!   `ProgressDeadlineExceeded` when it made no progress for `progressDeadlineSeconds`),
//!   which is what `kubectl rollout status` reads.
//!
//! A paused Deployment (`spec.paused`) is not scaled or rolled; only its status is kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use serde_json::json;
use tracing::{info, warn};

use super::controller_ref;
use super::informers::Informers;
use skiff_api::events::{EventType, Recorder, object_ref};
use skiff_api::hash::pod_template_hash;
use skiff_api::meta::{controller_of, controller_ref};
use skiff_api::selectors;
use skiff_api::well_known::{
    ANNOTATION_DEPLOYMENT_REVISION as REVISION, LABEL_POD_TEMPLATE_HASH as POD_TEMPLATE_HASH,
};

/// Objects reconciled at once (kube-controller-manager's `--concurrent-deployment-syncs`).
const CONCURRENT_SYNCS: u16 = 5;

/// The component name on Events.
const COMPONENT: &str = "deployment-controller";

const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of the Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
];

/// How often an unfinished rollout is looked at without events (for its deadline).
const ROLLOUT_CHECK: Duration = Duration::from_secs(10);

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let deployments = informers.deployments.reader();
    let deployment_index = informers.deployments.index();
    let deployment_changes = informers.deployments.subscribe();
    let replica_sets = informers.replica_sets.reader();
    let replica_set_changes = informers.replica_sets.subscribe();
    let context = Arc::new(Context {
        recorder: super::recorder(&client, COMPONENT),
        client,
        replica_sets,
    });
    async move {
        info!("deployment controller started");
        let results = Controller::for_shared_stream(deployment_changes, deployments)
            .watches_shared_stream(
                replica_set_changes,
                controller_ref::owners_trigger(deployment_index, |d: &Deployment| {
                    selectors::LabelSelector::from_api(&d.spec.as_ref()?.selector).ok()
                }),
            )
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile, error_policy, context);
        super::drive("deployment", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    recorder: Recorder,
    replica_sets: Store<ReplicaSet>,
}

fn error_policy(_d: Arc<Deployment>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing a deployment: {err}");
    Action::requeue(Duration::from_secs(5))
}

/// The rolling update's bounds, resolved against `replicas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollingBounds {
    /// Pods allowed above `replicas`.
    pub max_surge: i32,
    /// Pods allowed below `replicas`.
    pub max_unavailable: i32,
}

impl RollingBounds {
    /// Bounds given as numbers.
    pub fn new(max_surge: i32, max_unavailable: i32) -> RollingBounds {
        RollingBounds {
            max_surge,
            max_unavailable,
        }
    }

    /// Percentages of `replicas`: maxSurge rounded up, maxUnavailable rounded down; both
    /// zero would block the rollout, so maxUnavailable is then 1 (as Kubernetes does).
    pub fn resolve(d: &Deployment) -> RollingBounds {
        let spec = d.spec.as_ref();
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
        let rolling = spec
            .and_then(|s| s.strategy.as_ref())
            .filter(|s| s.type_.as_deref() != Some("Recreate"))
            .and_then(|s| s.rolling_update.as_ref());
        let quarter = || IntOrString::String(String::from("25%"));
        let surge = rolling
            .and_then(|r| r.max_surge.clone())
            .unwrap_or_else(quarter);
        let unavailable = rolling
            .and_then(|r| r.max_unavailable.clone())
            .unwrap_or_else(quarter);
        let max_surge = scaled(&surge, replicas, true);
        let mut max_unavailable = scaled(&unavailable, replicas, false).min(replicas);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        RollingBounds {
            max_surge,
            max_unavailable,
        }
    }
}

/// An int-or-percent against `total`.
fn scaled(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => (*n).max(0),
        IntOrString::String(text) => {
            let percent: i64 = text
                .trim_end_matches('%')
                .parse::<i64>()
                .unwrap_or(0)
                .max(0);
            let product = percent.saturating_mul(i64::from(total));
            let result = if round_up {
                product.saturating_add(99) / 100
            } else {
                product / 100
            };
            i32::try_from(result).unwrap_or(i32::MAX)
        }
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !super::informers::synced(&ctx.replica_sets).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let spec = d.spec.clone().unwrap_or_default();
    let Ok(selector) = selectors::LabelSelector::from_api(&spec.selector) else {
        return Ok(Action::await_change());
    };
    if selector.is_empty() {
        return Ok(Action::await_change());
    }
    let namespace = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);

    // This Deployment's ReplicaSets, adopting orphans that match and releasing strays.
    let mut owned: Vec<ReplicaSet> = Vec::new();
    for rs in ctx.replica_sets.state() {
        if rs.namespace().as_deref() != Some(namespace.as_str()) {
            continue;
        }
        let matches = selector.matches(rs.labels());
        match controller_of(rs.as_ref()) {
            Some(owner) if owner.uid == uid => {
                if matches {
                    owned.push(rs.as_ref().clone());
                } else {
                    controller_ref::release(&rs_api, rs.as_ref(), &uid).await?;
                }
            }
            Some(_) => {}
            None if matches && rs.metadata.deletion_timestamp.is_none() => {
                if let Some(adopted) =
                    controller_ref::adopt(&rs_api, rs.as_ref(), d.as_ref()).await?
                {
                    owned.push(adopted);
                }
            }
            None => {}
        }
    }

    let template = spec.template.clone();
    let new_index = owned
        .iter()
        .position(|rs| same_template(rs_template(rs), &template));
    let mut new_rs = new_index.map(|i| owned.remove(i));
    let mut old = owned;
    old.sort_by_key(revision);
    let max_old_revision = old.iter().map(revision).max().unwrap_or(0);
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let bounds = RollingBounds::resolve(&d);
    let mut progress_reason = None;

    if spec.paused != Some(true) {
        // The new ReplicaSet: made if missing, its revision the newest.
        match new_rs.as_mut() {
            None => {
                let old_replicas = sum(old.iter().map(spec_replicas));
                let initial = if recreate {
                    if old_replicas > 0 { 0 } else { replicas }
                } else {
                    new_replicas_for_rollout(replicas, bounds, 0, old_replicas)
                };
                let revision = max_old_revision.saturating_add(1);
                match create_new_replica_set(&ctx, &d, &template, initial, revision).await? {
                    Some(rs) => {
                        progress_reason = Some((
                            "NewReplicaSetCreated",
                            format!("Created new replica set \"{}\"", rs.name_any()),
                        ));
                        new_rs = Some(rs);
                    }
                    // A name taken by something else: the next reconcile uses another hash.
                    None => return Ok(Action::requeue(Duration::from_secs(1))),
                }
            }
            Some(rs) if revision(rs) <= max_old_revision => {
                // Rolled back to an earlier template: that ReplicaSet is the newest again.
                let patch = json!({"metadata": {"annotations": {
                    REVISION: max_old_revision.saturating_add(1).to_string(),
                }}});
                *rs = rs_api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
            Some(_) => {}
        }
        if let Some(new_rs) = new_rs.as_mut() {
            if recreate {
                rollout_recreate(&ctx, &d, new_rs, &mut old, replicas).await?;
            } else {
                rollout_rolling(&ctx, &d, new_rs, &mut old, replicas, bounds).await?;
            }
        }
        clean_up_history(&rs_api, &old, spec.revision_history_limit.unwrap_or(10)).await?;
    }

    let status = compute_status(
        &d,
        new_rs.as_ref(),
        &old,
        replicas,
        bounds,
        progress_reason,
        Utc::now(),
    );
    let revision_annotation = new_rs.as_ref().map(|rs| revision(rs).to_string());
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    if let Some(revision) = revision_annotation
        && d.annotations().get(REVISION) != Some(&revision)
    {
        let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
        d_api
            .patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    if d.status.as_ref() != Some(&status) {
        let patch = json!({"status": status});
        d_api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    let complete = status.updated_replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && status.replicas == Some(replicas);
    Ok(if complete {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::requeue(ROLLOUT_CHECK)
    })
}

/// Recreate: old ReplicaSets to zero; once their pods are gone, the new one to `replicas`.
async fn rollout_recreate(
    ctx: &Context,
    d: &Deployment,
    new_rs: &mut ReplicaSet,
    old: &mut [ReplicaSet],
    replicas: i32,
) -> Result<(), Error> {
    let mut old_running = false;
    for rs in old.iter_mut() {
        if spec_replicas(rs) > 0 {
            scale(ctx, d, rs, 0, replicas, replicas).await?;
        }
        if rs.status.as_ref().is_some_and(|s| s.replicas > 0) {
            old_running = true;
        }
    }
    if !old_running && spec_replicas(new_rs) != replicas {
        scale(ctx, d, new_rs, replicas, replicas, replicas).await?;
    }
    Ok(())
}

/// RollingUpdate: the new ReplicaSet up within maxSurge, the old ones down within
/// maxUnavailable (unavailable pods of old ReplicaSets first).
async fn rollout_rolling(
    ctx: &Context,
    d: &Deployment,
    new_rs: &mut ReplicaSet,
    old: &mut [ReplicaSet],
    replicas: i32,
    bounds: RollingBounds,
) -> Result<(), Error> {
    let max_replicas = replicas.saturating_add(bounds.max_surge);
    let old_replicas = sum(old.iter().map(spec_replicas));
    let target = if old_replicas == 0 {
        // Nothing to roll from: the new ReplicaSet simply follows the Deployment's scale.
        replicas
    } else {
        new_replicas_for_rollout(replicas, bounds, spec_replicas(new_rs), old_replicas)
    };
    if target != spec_replicas(new_rs) {
        scale(ctx, d, new_rs, target, replicas, max_replicas).await?;
    }
    if old_replicas == 0 {
        return Ok(());
    }

    let all = spec_replicas(new_rs).saturating_add(old_replicas);
    let min_available = replicas.saturating_sub(bounds.max_unavailable);
    let new_unavailable = spec_replicas(new_rs).saturating_sub(available(new_rs));
    let mut budget = all
        .saturating_sub(min_available)
        .saturating_sub(new_unavailable);
    // First the old pods that are not available anyway.
    for rs in old.iter_mut() {
        if budget <= 0 {
            return Ok(());
        }
        let unhealthy = spec_replicas(rs).saturating_sub(available(rs));
        if unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(budget);
        let target = spec_replicas(rs) - down;
        scale(ctx, d, rs, target, replicas, max_replicas).await?;
        budget -= down;
    }
    // Then available ones, oldest first, while enough stay available.
    let available_total = sum(std::iter::once(&*new_rs).chain(old.iter()).map(available));
    let mut budget = available_total.saturating_sub(min_available);
    for rs in old.iter_mut() {
        if budget <= 0 {
            break;
        }
        if spec_replicas(rs) == 0 {
            continue;
        }
        let down = spec_replicas(rs).min(budget);
        let target = spec_replicas(rs) - down;
        scale(ctx, d, rs, target, replicas, max_replicas).await?;
        budget -= down;
    }
    Ok(())
}

/// How big the new ReplicaSet may be now: up to `replicas`, while all ReplicaSets together
/// stay within `replicas + maxSurge`.
pub fn new_replicas_for_rollout(
    replicas: i32,
    bounds: RollingBounds,
    new_replicas: i32,
    old_replicas: i32,
) -> i32 {
    let max_total = replicas.saturating_add(bounds.max_surge);
    let current = new_replicas.saturating_add(old_replicas);
    if current >= max_total {
        return new_replicas.min(replicas);
    }
    let up = (max_total - current).min(replicas.saturating_sub(new_replicas));
    new_replicas
        .saturating_add(up.max(0))
        .min(replicas.max(new_replicas))
}

/// Sets a ReplicaSet's `spec.replicas` (and the Deployment's size annotations on it).
async fn scale(
    ctx: &Context,
    d: &Deployment,
    rs: &mut ReplicaSet,
    to: i32,
    desired: i32,
    max: i32,
) -> Result<(), Error> {
    let from = spec_replicas(rs);
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let patch = json!({
        "metadata": {"annotations": {
            DESIRED_REPLICAS: desired.to_string(),
            MAX_REPLICAS: max.to_string(),
        }},
        "spec": {"replicas": to},
    });
    *rs = api
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    if from != to {
        record_scaling(ctx, d, rs, from, to).await;
    }
    Ok(())
}

/// Logs and records (ScalingReplicaSet) that `rs` went from `from` to `to` replicas.
async fn record_scaling(ctx: &Context, d: &Deployment, rs: &ReplicaSet, from: i32, to: i32) {
    let direction = if to > from { "up" } else { "down" };
    let message = format!(
        "Scaled {direction} replica set {} from {from} to {to}",
        rs.name_any()
    );
    info!(deployment = %d.name_any(), "{message}");
    ctx.recorder.record(
        object_ref(d),
        EventType::Normal,
        "ScalingReplicaSet",
        message,
    );
}

/// Makes the new ReplicaSet; `None` if its name is taken by another template (a hash
/// collision: `status.collisionCount` is raised so the next hash differs).
async fn create_new_replica_set(
    ctx: &Context,
    d: &Deployment,
    template: &PodTemplateSpec,
    replicas: i32,
    revision: i64,
) -> Result<Option<ReplicaSet>, Error> {
    let namespace = d.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = pod_template_hash(template, collisions);
    let rs = new_replica_set(d, template, &hash, replicas, revision);
    match api.create(&PostParams::default(), &rs).await {
        Ok(created) => {
            record_scaling(ctx, d, &created, 0, replicas).await;
            Ok(Some(created))
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api.get(&rs.name_any()).await?;
            let ours = existing
                .owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == d.metadata.uid.as_ref());
            if ours && same_template(rs_template(&existing), template) {
                return Ok(Some(existing));
            }
            let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
            let collisions = collisions.unwrap_or(0).saturating_add(1);
            let patch = json!({"status": {"collisionCount": collisions}});
            d_api
                .patch_status(
                    &d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// The ReplicaSet of `template` for `d`: the hash label on its labels, selector and template.
fn new_replica_set(
    d: &Deployment,
    template: &PodTemplateSpec,
    hash: &str,
    replicas: i32,
    revision: i64,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = template.clone();
    let template_meta = template.metadata.get_or_insert_with(Default::default);
    template_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.to_owned(), hash.to_owned());
    let labels = template_meta.labels.clone();
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.to_owned(), hash.to_owned());
    let mut annotations: BTreeMap<String, String> = d
        .annotations()
        .iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bounds = RollingBounds::resolve(d);
    let desired = spec.replicas.unwrap_or(1);
    annotations.insert(REVISION.to_owned(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS.to_owned(), desired.to_string());
    annotations.insert(
        MAX_REPLICAS.to_owned(),
        desired.saturating_add(bounds.max_surge).to_string(),
    );
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// Deletes the oldest empty ReplicaSets beyond `limit`.
async fn clean_up_history(
    api: &Api<ReplicaSet>,
    old: &[ReplicaSet],
    limit: i32,
) -> Result<(), Error> {
    let empty: Vec<&ReplicaSet> = old
        .iter()
        .filter(|rs| {
            spec_replicas(rs) == 0
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let surplus = empty
        .len()
        .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
    // `old` is sorted by revision: the first are the oldest.
    for rs in empty.into_iter().take(surplus) {
        match api
            .delete(&rs.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {
                info!(replicaset = %rs.name_any(), "deleted an old replica set beyond the revision history limit")
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// The Deployment's status from its ReplicaSets.
fn compute_status(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    replicas: i32,
    bounds: RollingBounds,
    event: Option<(&str, String)>,
    now: chrono::DateTime<Utc>,
) -> DeploymentStatus {
    let all = new_rs.into_iter().chain(old.iter());
    let (mut total, mut ready, mut available_total) = (0i32, 0i32, 0i32);
    for rs in all {
        let status = rs.status.clone().unwrap_or_default();
        total = total.saturating_add(status.replicas);
        ready = ready.saturating_add(status.ready_replicas.unwrap_or(0));
        available_total = available_total.saturating_add(status.available_replicas.unwrap_or(0));
    }
    let updated = new_rs
        .and_then(|rs| rs.status.as_ref())
        .map_or(0, |s| s.replicas);
    let previous = d.status.clone().unwrap_or_default();
    let mut conditions = previous.conditions.clone().unwrap_or_default();

    let available_ok = available_total >= replicas - bounds.max_unavailable;
    set_condition(
        &mut conditions,
        condition(
            "Available",
            available_ok,
            if available_ok {
                (
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            } else {
                (
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            },
            now,
        ),
    );

    let rs_name = new_rs.map(ResourceExt::name_any).unwrap_or_default();
    let complete = updated == replicas && available_total == replicas && total == replicas;
    let progressed = updated > previous.updated_replicas.unwrap_or(0)
        || ready > previous.ready_replicas.unwrap_or(0)
        || available_total > previous.available_replicas.unwrap_or(0)
        || total < previous.replicas.unwrap_or(0);
    let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    let current = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .cloned();
    if paused {
        set_condition(
            &mut conditions,
            condition_text(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
                now,
            ),
        );
    } else if complete && new_rs.is_some() {
        set_condition(
            &mut conditions,
            condition_text(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                now,
            ),
        );
    } else if let Some((reason, message)) = event {
        set_condition(
            &mut conditions,
            condition_text("Progressing", "True", reason, &message, now),
        );
    } else if progressed || current.is_none() {
        // Progress refreshes the condition's lastUpdateTime even with the same reason.
        let mut next = condition_text(
            "Progressing",
            "True",
            if current.is_none() {
                "FoundNewReplicaSet"
            } else {
                "ReplicaSetUpdated"
            },
            &if current.is_none() {
                format!("Found new replica set \"{rs_name}\"")
            } else {
                format!("ReplicaSet \"{rs_name}\" is progressing.")
            },
            now,
        );
        if let Some(current) = &current
            && current.status == "True"
        {
            next.last_transition_time = current.last_transition_time.clone();
        }
        conditions.retain(|c| c.type_ != "Progressing");
        conditions.push(next);
    } else if let Some(current) = &current {
        let deadline = d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600);
        let last = current.last_update_time.as_ref().map(|t| t.0);
        let timed_out = current.reason.as_deref() != Some("NewReplicaSetAvailable")
            && last.is_some_and(|t| skiff_api::time::plus_seconds(t, deadline.into()) < now);
        if timed_out {
            set_condition(
                &mut conditions,
                condition_text(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                    now,
                ),
            );
        }
    }

    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available_total),
        unavailable_replicas: Some((replicas - available_total).max(0)),
        conditions: Some(conditions),
        collision_count: previous.collision_count,
    }
}

fn condition(
    type_: &str,
    ok: bool,
    (reason, message): (&str, &str),
    now: chrono::DateTime<Utc>,
) -> DeploymentCondition {
    condition_text(
        type_,
        if ok { "True" } else { "False" },
        reason,
        message,
        now,
    )
}

fn condition_text(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: chrono::DateTime<Utc>,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_transition_time: Some(Time(now)),
        last_update_time: Some(Time(now)),
    }
}

/// Kubernetes' SetDeploymentCondition: nothing changes if status and reason are the same; the
/// transition time stays while the status does.
fn set_condition(conditions: &mut Vec<DeploymentCondition>, mut next: DeploymentCondition) {
    if let Some(current) = conditions.iter().find(|c| c.type_ == next.type_) {
        if current.status == next.status && current.reason == next.reason {
            return;
        }
        if current.status == next.status {
            next.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != next.type_);
    conditions.push(next);
}

fn rs_template(rs: &ReplicaSet) -> Option<&PodTemplateSpec> {
    rs.spec.as_ref()?.template.as_ref()
}

/// Whether a ReplicaSet's template is the Deployment's, the hash label aside.
fn same_template(rs: Option<&PodTemplateSpec>, template: &PodTemplateSpec) -> bool {
    let Some(rs) = rs else { return false };
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH);
        }
        t
    };
    strip(rs) == strip(template)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Replica counts added up. They come from objects (up to `i32::MAX` each): the sum
/// saturates where kube-controller-manager's int32 sums wrap.
fn sum(counts: impl Iterator<Item = i32>) -> i32 {
    counts.fold(0, i32::saturating_add)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i32, surge: &str, unavailable: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
            },
        }))
        .expect("deployment")
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        // 25% of 10: surge 2.5 -> 3, unavailable 2.5 -> 2.
        assert_eq!(
            RollingBounds::resolve(&deployment(10, "25%", "25%")),
            RollingBounds::new(3, 2)
        );
        // 25% of 1: surge 1, unavailable 0.
        assert_eq!(
            RollingBounds::resolve(&deployment(1, "25%", "25%")),
            RollingBounds::new(1, 0)
        );
        // Both zero would never move: one may be unavailable.
        assert_eq!(
            RollingBounds::resolve(&deployment(3, "0%", "0%")),
            RollingBounds::new(0, 1)
        );
    }

    #[test]
    fn the_new_replica_set_grows_within_max_surge() {
        let bounds = RollingBounds::new(1, 0);
        // 3 old, none new: one more pod than wanted is allowed.
        assert_eq!(new_replicas_for_rollout(3, bounds, 0, 3), 1);
        // Already at 4 in total: wait for old ones to go.
        assert_eq!(new_replicas_for_rollout(3, bounds, 1, 3), 1);
        assert_eq!(new_replicas_for_rollout(3, bounds, 1, 2), 2);
        // Never beyond replicas.
        assert_eq!(
            new_replicas_for_rollout(3, RollingBounds::new(10, 0), 0, 3),
            3
        );
    }

    #[test]
    fn huge_counts_and_percentages_saturate() {
        let max = i32::MAX;
        let bounds = RollingBounds::resolve(&deployment(max, "9223372036854775807%", "100%"));
        assert_eq!(bounds.max_surge, max);
        assert_eq!(new_replicas_for_rollout(max, bounds, 0, max), 0);
        assert_eq!(new_replicas_for_rollout(max, bounds, 1, max - 1), 1);
        assert_eq!(
            new_replicas_for_rollout(max, RollingBounds::new(max, 0), max, max),
            max
        );
        assert_eq!(sum([max, max, 1].into_iter()), max);
    }

    #[test]
    fn the_new_replica_set_carries_the_hash_and_revision() {
        let mut d = deployment(3, "25%", "25%");
        d.metadata.uid = Some(String::from("d-uid"));
        d.metadata.annotations = Some(BTreeMap::from([
            (
                String::from("kubernetes.io/change-cause"),
                String::from("v2"),
            ),
            (String::from(REVISION), String::from("1")),
        ]));
        let template = d.spec.clone().expect("spec").template;
        let rs = new_replica_set(&d, &template, "abc", 1, 2);
        assert_eq!(rs.name_any(), "web-abc");
        assert_eq!(
            rs.labels().get(POD_TEMPLATE_HASH).map(String::as_str),
            Some("abc")
        );
        let spec = rs.spec.clone().expect("spec");
        assert_eq!(
            spec.selector
                .match_labels
                .expect("labels")
                .get(POD_TEMPLATE_HASH)
                .map(String::as_str),
            Some("abc")
        );
        assert!(same_template(spec.template.as_ref(), &template));
        assert_eq!(
            rs.annotations().get(REVISION).map(String::as_str),
            Some("2")
        );
        assert_eq!(
            rs.annotations()
                .get("kubernetes.io/change-cause")
                .map(String::as_str),
            Some("v2")
        );
        assert_eq!(rs.owner_references()[0].uid, "d-uid");
    }
}
