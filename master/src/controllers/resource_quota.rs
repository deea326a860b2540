//! The resourcequota controller (kube-controller-manager's `resourcequota` controller,
//! `pkg/controller/resourcequota`): every ResourceQuota's `status.hard` is its `spec.hard`, and
//! its `status.used` is what its namespace holds of each limited resource, counted with the
//! evaluators the API server's quota admission charges with ([`skiff_api::quota`]).
//!
//! As kube-controller-manager does, a quota is counted
//! - when it is created, when its `spec.hard` changes, and when its status lacks a hard limit
//!   or the usage of one (its other status changes are the admission's charges, which need no
//!   count);
//! - when something it counts is deleted, a pod finishes, or a service changes (the
//!   "replenishment" that frees quota for new objects without waiting for a resync);
//! - every five minutes (`--resource-quota-sync-period`), which also corrects the charges of
//!   creates that then failed.
//!
//! The status is written with the resourceVersion it was counted against, so a count that
//! raced with an admission charge loses (409) and is made again. Pods, services and the kinds
//! the master already watches are counted from the shared informers; a quota on the count of
//! another kind (`count/events`) lists that kind in the namespace through the API, found by
//! discovery, where kube-controller-manager would start an informer for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, ReplicationController, ResourceQuota, ResourceQuotaStatus,
    ScopedResourceSelectorRequirement, Secret, Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use skiff_api::pod::CachedPod;
use skiff_api::quantity::ParsedQuantity;
use skiff_api::quota::evaluator::{Evaluator, Object, pod_is_charged, scope_selectors};
use skiff_api::quota::{self, QuotaError, ResourceList};
use tracing::{debug, info, warn};

use super::informers::{Change, Informers, resolve, synced};

/// Objects reconciled at once (kube-controller-manager's `--concurrent-resource-quota-syncs`).
const CONCURRENT_SYNCS: u16 = 5;

/// How often every quota is counted again (kube-controller-manager's
/// `--resource-quota-sync-period` default).
pub const SYNC_PERIOD: Duration = Duration::from_secs(300);

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// A quantity of the quota or of a counted object cannot be counted with.
    #[error("{0}")]
    Quota(#[from] QuotaError),
    /// The status could not be encoded.
    #[error("encoding the status: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The caches of what quotas count.
struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    services: Store<Service>,
    config_maps: Store<ConfigMap>,
    secrets: Store<PartialObjectMeta<Secret>>,
    replication_controllers: Store<ReplicationController>,
    resource_quotas: Store<ResourceQuota>,
    service_accounts: Store<ServiceAccount>,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
}

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let quotas = informers.resource_quotas.reader();
    let context = Arc::new(Context {
        client,
        pods: informers.pods.reader(),
        services: informers.services.reader(),
        config_maps: informers.config_maps.reader(),
        secrets: informers.secrets.reader(),
        replication_controllers: informers.replication_controllers.reader(),
        resource_quotas: quotas.clone(),
        service_accounts: informers.service_accounts.reader(),
        deployments: informers.deployments.reader(),
        replica_sets: informers.replica_sets.reader(),
    });
    let controller = Controller::for_shared_stream(
        hard_limit_changes(informers.resource_quotas.subscribe(), quotas.clone()),
        quotas.clone(),
    )
    .watches_shared_stream(
        informers.pods.subscribe(),
        replenish(&quotas, &context.pods, |pod: &CachedPod| {
            !pod_is_charged(pod, Utc::now())
        }),
    )
    .watches_shared_stream(
        informers.services.subscribe(),
        replenish(&quotas, &context.services, |_: &Service| true),
    )
    .watches_shared_stream(
        informers.config_maps.subscribe(),
        replenish(&quotas, &context.config_maps, deleted_only),
    )
    .watches_shared_stream(
        informers.secrets.subscribe(),
        replenish(&quotas, &context.secrets, deleted_only),
    )
    .watches_shared_stream(
        informers.replication_controllers.subscribe(),
        replenish(&quotas, &context.replication_controllers, deleted_only),
    )
    .watches_shared_stream(
        informers.resource_quotas.subscribe(),
        replenish(&quotas, &context.resource_quotas, deleted_only),
    )
    .watches_shared_stream(
        informers.service_accounts.subscribe(),
        replenish(&quotas, &context.service_accounts, deleted_only),
    )
    .watches_shared_stream(
        informers.deployments.subscribe(),
        replenish(&quotas, &context.deployments, deleted_only),
    )
    .watches_shared_stream(
        informers.replica_sets.subscribe(),
        replenish(&quotas, &context.replica_sets, deleted_only),
    );
    async move {
        info!("resourcequota controller started");
        let results = controller
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile, error_policy, context);
        super::drive("resourcequota", results, shutdown).await;
    }
}

/// Replenishes on deletions only.
fn deleted_only<K>(_: &K) -> bool {
    false
}

/// The quotas of a changed object's namespace, when it was deleted or `frees` says its change
/// may free quota.
fn replenish<K>(
    quotas: &Store<ResourceQuota>,
    cache: &Store<K>,
    frees: impl Fn(&K) -> bool + Send + Sync + 'static,
) -> impl Fn(Arc<K>) -> Vec<ObjectRef<ResourceQuota>> + Send + Sync + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (quotas, cache) = (quotas.clone(), cache.clone());
    move |object: Arc<K>| {
        let namespace = object.meta().namespace.clone();
        let deleted = matches!(resolve(&cache, object.clone()), Change::Deleted(_));
        if !deleted && !frees(&object) {
            return Vec::new();
        }
        quotas
            .state()
            .iter()
            .filter(|q| q.metadata.namespace == namespace)
            .map(|q| ObjectRef::from_obj(q.as_ref()))
            .collect()
    }
}

/// The quota changes that need a count: a quota seen for the first time (created, or listed),
/// one whose `spec.hard` changed, and one whose status lacks what its hard limits need. The
/// admission's charges change only `status.used` and are let through by none of these.
fn hard_limit_changes(
    changes: impl Stream<Item = Arc<ResourceQuota>> + Send + 'static,
    cache: Store<ResourceQuota>,
) -> impl Stream<Item = Arc<ResourceQuota>> + Send + 'static {
    let mut seen: HashMap<String, Option<BTreeMap<String, Quantity>>> = HashMap::new();
    changes.filter(move |quota| {
        let uid = quota.uid().unwrap_or_default();
        let needed = match resolve(&cache, quota.clone()) {
            Change::Deleted(_) => {
                seen.remove(&uid);
                false
            }
            _ => {
                let hard = quota.spec.as_ref().and_then(|s| s.hard.clone());
                let changed = seen.insert(uid, hard.clone()) != Some(hard);
                changed || !status_covers_spec(quota)
            }
        };
        std::future::ready(needed)
    })
}

/// Whether `status.hard` holds `spec.hard` and `status.used` has a usage for each of them.
fn status_covers_spec(quota: &ResourceQuota) -> bool {
    let spec = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    let status = quota.status.as_ref();
    let status_hard = status.and_then(|s| s.hard.as_ref());
    let used = status.and_then(|s| s.used.as_ref());
    same_amounts(spec, status_hard)
        && spec
            .into_iter()
            .flatten()
            .all(|(name, _)| used.is_some_and(|u| u.contains_key(name)))
}

/// Whether two resource lists hold the same amounts (`1000m` is `1`); as written when they
/// do not parse.
fn same_amounts(
    a: Option<&BTreeMap<String, Quantity>>,
    b: Option<&BTreeMap<String, Quantity>>,
) -> bool {
    match (quota::parse(a), quota::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => {
            a.map_or_else(BTreeMap::new, Clone::clone) == b.map_or_else(BTreeMap::new, Clone::clone)
        }
    }
}

fn error_policy(quota: Arc<ResourceQuota>, err: &Error, _ctx: Arc<Context>) -> Action {
    match err {
        Error::Api(kube::Error::Api(status)) if status.code == 409 => {
            debug!(quota = %quota.name_any(), "the quota changed while counting; counting again");
            Action::requeue(Duration::from_millis(200))
        }
        _ => {
            warn!(quota = %quota.name_any(), "syncing a resource quota: {err}");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.synced().await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = quota.namespace().unwrap_or_default();
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let names: Vec<String> = hard.keys().cloned().collect();
    // What a count cannot reach keeps its last observation (`syncResourceQuota`).
    let previous = quota.status.as_ref().and_then(|s| s.used.as_ref());
    let mut used = quota::parse(previous).unwrap_or_default();
    let mut evaluators: BTreeMap<Evaluator, Vec<String>> = BTreeMap::new();
    for name in &names {
        if let Some(evaluator) = Evaluator::for_resource_name(name) {
            evaluators.entry(evaluator).or_default().push(name.clone());
        }
    }
    let selectors = scope_selectors(&quota);
    let now = Utc::now();
    let mut failed = None;
    for (evaluator, names) in &evaluators {
        match ctx
            .usage(evaluator, names, &selectors, &namespace, now)
            .await
        {
            Ok(counted) => used.extend(counted),
            Err(err) => failed = Some(err),
        }
    }
    let mut used = quota::mask(&used, names.iter().map(String::as_str));
    // What nothing here makes (`requests.storage`: no PersistentVolumeClaims) is used by none.
    for name in names
        .iter()
        .filter(|n| Evaluator::for_resource_name(n).is_none())
    {
        used.entry(name.clone())
            .or_insert_with(ParsedQuantity::zero);
    }
    let status = ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(quota::to_quantities(&used)),
    };
    let current = quota.status.clone().unwrap_or_default();
    let dirty = !same_amounts(current.hard.as_ref(), status.hard.as_ref())
        || !same_amounts(current.used.as_ref(), status.used.as_ref())
        || current.hard.is_none()
        || current.used.is_none();
    if dirty {
        let mut updated = (*quota).clone();
        updated.status = Some(status);
        // The resourceVersion read makes the write a compare-and-swap.
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &namespace);
        api.replace_status(
            &quota.name_any(),
            &PostParams::default(),
            serde_json::to_vec(&updated)?,
        )
        .await?;
    }
    match failed {
        Some(err) => Err(err),
        None => Ok(Action::requeue(SYNC_PERIOD)),
    }
}

impl Context {
    /// Whether every cache has its first list.
    async fn synced(&self) -> bool {
        synced(&self.pods).await
            && synced(&self.services).await
            && synced(&self.config_maps).await
            && synced(&self.secrets).await
            && synced(&self.replication_controllers).await
            && synced(&self.resource_quotas).await
            && synced(&self.service_accounts).await
            && synced(&self.deployments).await
            && synced(&self.replica_sets).await
    }

    /// The usage of `names` (charged by `evaluator`) in `namespace`, for a quota with scopes
    /// `selectors`.
    async fn usage(
        &self,
        evaluator: &Evaluator,
        names: &[String],
        selectors: &[ScopedResourceSelectorRequirement],
        namespace: &str,
        now: DateTime<Utc>,
    ) -> Result<ResourceList, Error> {
        let stats =
            |objects: Vec<Object<'_>>| evaluator.usage_stats(names, selectors, objects, now);
        let counted = |n: usize| vec![Object::Other; n];
        let resource = (evaluator.group(), evaluator.resource());
        let used = match resource {
            ("", "pods") => {
                let pods = in_namespace(&self.pods, namespace);
                stats(pods.iter().map(|p| Object::Pod(p)).collect())?
            }
            ("", "services") => {
                let services = in_namespace(&self.services, namespace);
                stats(services.iter().map(|s| Object::Service(s)).collect())?
            }
            ("", "configmaps") => stats(counted(in_namespace(&self.config_maps, namespace).len()))?,
            ("", "secrets") => stats(counted(in_namespace(&self.secrets, namespace).len()))?,
            ("", "replicationcontrollers") => stats(counted(
                in_namespace(&self.replication_controllers, namespace).len(),
            ))?,
            ("", "resourcequotas") => stats(counted(
                in_namespace(&self.resource_quotas, namespace).len(),
            ))?,
            ("", "serviceaccounts") => stats(counted(
                in_namespace(&self.service_accounts, namespace).len(),
            ))?,
            ("apps", "deployments") => {
                stats(counted(in_namespace(&self.deployments, namespace).len()))?
            }
            ("apps", "replicasets") => {
                stats(counted(in_namespace(&self.replica_sets, namespace).len()))?
            }
            (group, plural) => {
                let n = self.count_through_api(group, plural, namespace).await?;
                stats(counted(n))?
            }
        };
        Ok(used)
    }

    /// The number of `plural` objects (of API `group`) in `namespace`, listed through the API;
    /// zero for a resource the API server does not serve (or not in namespaces).
    async fn count_through_api(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
    ) -> Result<usize, Error> {
        let api_group = match kube::discovery::group(&self.client, group).await {
            Ok(api_group) => api_group,
            Err(kube::Error::Discovery(_)) => return Ok(0),
            Err(err) => return Err(err.into()),
        };
        let Some((resource, capabilities)) = api_group
            .recommended_resources()
            .into_iter()
            .find(|(r, _)| r.plural == plural)
        else {
            return Ok(0);
        };
        if capabilities.scope != kube::discovery::Scope::Namespaced {
            return Ok(0);
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        Ok(api.list(&ListParams::default()).await?.items.len())
    }
}

/// The cached objects of one namespace.
fn in_namespace<K>(cache: &Store<K>, namespace: &str) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    cache
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .collect()
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher;
    use serde_json::json;

    use super::*;

    fn quota(uid: &str, spec_hard: serde_json::Value, status: serde_json::Value) -> ResourceQuota {
        serde_json::from_value(json!({
            "metadata": {"name": "q", "namespace": "default", "uid": uid},
            "spec": {"hard": spec_hard},
            "status": status,
        }))
        .expect("quota")
    }

    #[test]
    fn a_status_covers_its_spec_when_every_hard_limit_is_counted() {
        let counted = quota(
            "1",
            json!({"pods": "2"}),
            json!({"hard": {"pods": "2"}, "used": {"pods": "0"}}),
        );
        assert!(status_covers_spec(&counted));
        let new = quota("1", json!({"pods": "2"}), json!({}));
        assert!(!status_covers_spec(&new));
        let raised = quota(
            "1",
            json!({"pods": "3"}),
            json!({"hard": {"pods": "2"}, "used": {"pods": "0"}}),
        );
        assert!(!status_covers_spec(&raised));
        let same_value = quota(
            "1",
            json!({"cpu": "1000m"}),
            json!({"hard": {"cpu": "1"}, "used": {"cpu": "0"}}),
        );
        assert!(status_covers_spec(&same_value), "compared by value");
        let uncounted = quota(
            "1",
            json!({"pods": "2", "secrets": "1"}),
            json!({"hard": {"pods": "2", "secrets": "1"}, "used": {"pods": "0"}}),
        );
        assert!(!status_covers_spec(&uncounted));
    }

    #[tokio::test]
    async fn only_new_quotas_and_hard_limit_changes_are_counted() {
        let mut writer = reflector::store::Writer::<ResourceQuota>::default();
        let cache = writer.as_reader();
        let synced_status = json!({"hard": {"pods": "2"}, "used": {"pods": "1"}});
        let first = quota("1", json!({"pods": "2"}), synced_status.clone());
        let charged = quota(
            "1",
            json!({"pods": "2"}),
            json!({"hard": {"pods": "2"}, "used": {"pods": "2"}}),
        );
        let raised = quota(
            "1",
            json!({"pods": "5"}),
            json!({"hard": {"pods": "2"}, "used": {"pods": "2"}}),
        );
        writer.apply_watcher_event(&watcher::Event::Apply(raised.clone()));
        let told = futures::stream::iter([first, charged, raised.clone()].map(Arc::new));
        let passed: Vec<Arc<ResourceQuota>> =
            hard_limit_changes(told, cache.clone()).collect().await;
        let hard: Vec<String> = passed
            .iter()
            .map(|q| {
                q.spec.as_ref().unwrap().hard.as_ref().unwrap()["pods"]
                    .0
                    .clone()
            })
            .collect();
        // The first sight and the raise; the admission's charge in between is not.
        assert_eq!(hard, ["2", "5"]);
        // A deleted quota is not counted.
        writer.apply_watcher_event(&watcher::Event::Delete(raised.clone()));
        let passed: Vec<_> = hard_limit_changes(futures::stream::iter([Arc::new(raised)]), cache)
            .collect()
            .await;
        assert!(passed.is_empty());
    }
}
