//! ResourceQuota admission (kube-apiserver's `ResourceQuota` admission plugin,
//! `k8s.io/apiserver/pkg/admission/plugin/resourcequota`): before an object is stored, what it
//! uses ([`skiff_api::quota::evaluator`]) is checked against every quota of its namespace and
//! charged to their `status.used`.
//!
//! As in Kubernetes:
//! - a quota applies when its `status.hard` (set by the resourcequota controller from
//!   `spec.hard`) limits something the object uses and its scopes select the object;
//! - an applying quota whose usage the controller has not counted yet refuses the object
//!   (`status unknown for quota`), as does one on cpu or memory when a container states no
//!   request or limit for it (`failed quota`);
//! - an object that would take a quota over its hard limit is refused with 403 Forbidden:
//!   `pods "web" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2,
//!   limited: pods=2`;
//! - otherwise the quotas' new usage is written before the object, each quota with a
//!   compare-and-swap on the revision read, so two creates cannot both take the last unit; a
//!   quota another writer changed meanwhile (the controller, another create) is read and
//!   checked again, three times at most, then the create fails with 409 Conflict;
//! - creates are charged, and updates only where they can change the usage (a Service's type
//!   and ports); a dry run is checked but charges nothing; a charge whose object then fails to
//!   be stored stays until the controller counts again.
//!
//! It differs in where the quotas come from: kube-apiserver reads them from an informer (and
//! looks up the store when the informer has none, in case one was just created); here every
//! check reads them from the store, which is exact and, with no quota in the namespace, one
//! empty range read. Checks in a namespace with quotas run one at a time, as kube-apiserver
//! queues them per namespace; Kubernetes also batches the waiting checks into one write per
//! quota.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ResourceQuota, Service};
use serde_json::Value;
use skiff_api::pod::CachedPod;
use skiff_api::quota::evaluator::{Evaluator, Object};
use skiff_api::quota::{self, ResourceList};

use super::ApiServer;
use super::objects;
use super::resources::Resource;
use super::status::ApiError;
use crate::store::{KeyValue, StoreError};

/// How many times the quotas are read again after a compare-and-swap write lost.
const RETRIES: usize = 3;

/// One lock per namespace: the checks of a namespace run one after another.
#[derive(Default)]
pub struct NamespaceLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl NamespaceLocks {
    fn of(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget the locks nobody holds or waits for, so deleted namespaces leave nothing.
        if locks.len() > 64 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(namespace.to_owned()).or_default().clone()
    }
}

/// An object decoded as far as quota needs it.
enum Decoded {
    Pod(Box<CachedPod>),
    Service(Box<Service>),
    Other,
}

impl Decoded {
    fn of(r: &Resource, object: &Value) -> Result<Self, ApiError> {
        let undecodable =
            |e: serde_json::Error| ApiError::Internal(format!("quota: reading the object: {e}"));
        Ok(match (r.group, r.plural) {
            ("", "pods") => Decoded::Pod(Box::new(
                serde_json::from_value(object.clone()).map_err(undecodable)?,
            )),
            ("", "services") => Decoded::Service(Box::new(
                serde_json::from_value(object.clone()).map_err(undecodable)?,
            )),
            _ => Decoded::Other,
        })
    }

    fn object(&self) -> Object<'_> {
        match self {
            Decoded::Pod(pod) => Object::Pod(pod),
            Decoded::Service(service) => Object::Service(service),
            Decoded::Other => Object::Other,
        }
    }
}

/// A quota as stored: its key value (for the compare-and-swap) and its typed form.
struct StoredQuota {
    kv: KeyValue,
    quota: ResourceQuota,
}

impl StoredQuota {
    fn name(&self) -> &str {
        self.quota.metadata.name.as_deref().unwrap_or_default()
    }
}

impl ApiServer {
    /// Checks `object` (of resource `r`, named `name` in `namespace`; replacing `old` for an
    /// update) against the namespace's quotas and charges it to them; a dry run is only
    /// checked.
    pub(super) async fn admit_to_quota(
        &self,
        r: &Resource,
        namespace: &str,
        name: &str,
        object: &Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let evaluator = Evaluator::new(r.group, r.plural);
        if !r.namespaced || (old.is_some() && !evaluator.handles_update()) {
            return Ok(());
        }
        let forbidden = |reason: String| {
            ApiError::Forbidden(format!("{} {name:?} is forbidden: {reason}", r.qualified()))
        };
        // Most namespaces have no quota: that is one read, and no waiting for the others.
        if self.quotas(namespace).await?.is_empty() {
            return Ok(());
        }
        let lock = self.quota_locks.of(namespace);
        let _serialized = lock.lock().await;
        let mut decoded = None;
        // The quotas left to charge: all of them at first, then those whose write lost.
        let mut pending: Option<BTreeSet<String>> = None;
        for _ in 0..=RETRIES {
            let mut quotas = self.quotas(namespace).await?;
            if let Some(names) = &pending {
                quotas.retain(|q| names.contains(q.name()));
            }
            if quotas.is_empty() {
                return Ok(());
            }
            let (new, previous) = match &decoded {
                Some(decoded) => decoded,
                None => decoded.insert((
                    Decoded::of(r, object)?,
                    old.map(|old| Decoded::of(r, old)).transpose()?,
                )),
            };
            let typed: Vec<ResourceQuota> = quotas.iter().map(|q| q.quota.clone()).collect();
            let charges = check_request(
                &evaluator,
                &typed,
                new.object(),
                previous.as_ref().map(Decoded::object),
                Utc::now(),
            )
            .map_err(forbidden)?;
            if dry_run || charges.is_empty() {
                return Ok(());
            }
            let mut lost = BTreeSet::new();
            for (index, used) in charges {
                let stored = &quotas[index];
                match self.write_used(stored, &used).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {
                        lost.insert(stored.name().to_owned());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if lost.is_empty() {
                return Ok(());
            }
            pending = Some(lost);
        }
        let lost = pending
            .and_then(|p| p.into_iter().next())
            .unwrap_or_default();
        Err(ApiError::conflict("resourcequotas", &lost))
    }

    /// The namespace's quotas, as stored.
    async fn quotas(&self, namespace: &str) -> Result<Vec<StoredQuota>, ApiError> {
        let prefix = format!("/registry/resourcequotas/{namespace}/");
        let listed = self.store.list(&prefix).await?;
        listed
            .items
            .into_iter()
            .map(|kv| {
                let quota = serde_json::from_slice(&kv.value).map_err(|e| {
                    ApiError::Internal(format!("stored quota {} does not decode: {e}", kv.key))
                })?;
                Ok(StoredQuota { kv, quota })
            })
            .collect()
    }

    /// Writes `used` as the quota's `status.used`, if the quota is still as read.
    async fn write_used(
        &self,
        stored: &StoredQuota,
        used: &ResourceList,
    ) -> Result<(), StoreError> {
        let mut object: Value = serde_json::from_slice(&stored.kv.value)
            .map_err(|e| StoreError::Backend(format!("stored quota does not decode: {e}")))?;
        let used = serde_json::to_value(quota::to_quantities(used))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        match object.get_mut("status").and_then(Value::as_object_mut) {
            Some(status) => {
                status.insert("used".into(), used);
            }
            None => {
                if let Some(obj) = object.as_object_mut() {
                    obj.insert("status".into(), serde_json::json!({ "used": used }));
                }
            }
        }
        let encoded =
            objects::encode(&mut object).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.store
            .update(&stored.kv.key, encoded, Some(stored.kv.mod_revision))
            .await
            .map(|_| ())
    }
}

/// The quotas (by index in `quotas`) an object changes and their new `status.used`, or why
/// the object is refused (`CheckRequest`): `object` is being created, or replaces `old`.
fn check_request(
    evaluator: &Evaluator,
    quotas: &[ResourceQuota],
    object: Object<'_>,
    old: Option<Object<'_>>,
    now: DateTime<Utc>,
) -> Result<Vec<(usize, ResourceList)>, String> {
    let status_unknown = |quota: &ResourceQuota, names: &[String]| {
        format!(
            "status unknown for quota: {}, resources: {}",
            quota.metadata.name.as_deref().unwrap_or_default(),
            names.join(",")
        )
    };
    let mut applying = Vec::new();
    for (index, quota) in quotas.iter().enumerate() {
        if !evaluator.matches(quota, object) {
            continue;
        }
        let name = quota.metadata.name.as_deref().unwrap_or_default();
        let status = quota.status.as_ref();
        let hard = quota::parse(status.and_then(|s| s.hard.as_ref()))
            .map_err(|e| format!("quota {name} has an invalid status.hard: {e}"))?;
        let restricted = evaluator.matching_resources(hard.keys().map(String::as_str));
        evaluator
            .constraints(&restricted, object)
            .map_err(|e| format!("failed quota: {name}: {e}"))?;
        let used = status.and_then(|s| s.used.as_ref());
        if !restricted
            .iter()
            .all(|r| used.is_some_and(|u| u.contains_key(r)))
        {
            return Err(status_unknown(quota, &restricted));
        }
        let used = quota::parse(used).map_err(|_| status_unknown(quota, &restricted))?;
        applying.push((index, hard, used));
    }
    if applying.is_empty() {
        return Ok(Vec::new());
    }
    let usage = evaluator.usage(object, now).map_err(|e| e.to_string())?;
    let negative = quota::negative(&usage);
    if !negative.is_empty() {
        return Err(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        ));
    }
    // An update is charged what it adds, to the quotas that already counted the old object.
    let update_delta = old
        .map(|old| {
            evaluator
                .usage(old, now)
                .map(|previous| (quota::subtract_non_negative(&usage, &previous), old))
        })
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut charges = Vec::new();
    for (index, hard, used) in applying {
        let delta = match &update_delta {
            Some((delta, old)) if evaluator.matches(&quotas[index], *old) => delta,
            _ => &usage,
        };
        let delta = quota::remove_zeros(delta);
        if delta.is_empty() {
            continue;
        }
        let requested = quota::mask(&delta, hard.keys().map(String::as_str));
        let new_used = quota::add(&used, &requested);
        let exceeded = quota::exceeded(
            &quota::mask(&new_used, requested.keys().map(String::as_str)),
            &hard,
        );
        if !exceeded.is_empty() {
            let names = || exceeded.iter().map(String::as_str);
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                quotas[index].metadata.name.as_deref().unwrap_or_default(),
                quota::pretty_print(&quota::mask(&requested, names())),
                quota::pretty_print(&quota::mask(&used, names())),
                quota::pretty_print(&quota::mask(&hard, names())),
            ));
        }
        if new_used != used {
            charges.push((index, new_used));
        }
    }
    Ok(charges)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn quota(name: &str, hard: Value, used: Value) -> ResourceQuota {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"hard": hard},
            "status": {"hard": hard, "used": used},
        }))
        .expect("quota")
    }

    fn pod(cpu: Option<&str>) -> CachedPod {
        let resources = cpu.map_or(json!({}), |cpu| json!({"requests": {"cpu": cpu}}));
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "x", "resources": resources}]},
        }))
        .expect("pod")
    }

    fn pods() -> Evaluator {
        Evaluator::new("", "pods")
    }

    fn charged(charges: &[(usize, ResourceList)]) -> Vec<(usize, String)> {
        charges
            .iter()
            .map(|(i, used)| (*i, quota::pretty_print(used)))
            .collect()
    }

    #[test]
    fn a_create_under_the_limits_is_charged_to_every_applying_quota() {
        let quotas = [
            quota("count", json!({"pods": "2"}), json!({"pods": "1"})),
            quota(
                "cpu",
                json!({"requests.cpu": "1"}),
                json!({"requests.cpu": "500m"}),
            ),
            quota("secrets", json!({"secrets": "1"}), json!({"secrets": "1"})),
        ];
        let charges = check_request(
            &pods(),
            &quotas,
            Object::Pod(&pod(Some("500m"))),
            None,
            Utc::now(),
        )
        .expect("allowed");
        assert_eq!(
            charged(&charges),
            [(0, "pods=2".to_string()), (1, "requests.cpu=1".to_string())]
        );
    }

    #[test]
    fn a_create_over_a_limit_is_refused_with_kubernetes_message() {
        let quotas = [quota(
            "compute",
            json!({"pods": "2", "requests.cpu": "1"}),
            json!({"pods": "2", "requests.cpu": "0"}),
        )];
        assert_eq!(
            check_request(
                &pods(),
                &quotas,
                Object::Pod(&pod(Some("100m"))),
                None,
                Utc::now()
            ),
            Err("exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2".into())
        );
        let quotas = [quota(
            "compute",
            json!({"requests.cpu": "1", "requests.memory": "1Gi"}),
            json!({"requests.cpu": "800m", "requests.memory": "0"}),
        )];
        assert_eq!(
            check_request(
                &pods(),
                &quotas,
                Object::Pod(&pod(Some("300m"))),
                None,
                Utc::now()
            ),
            Err("failed quota: compute: must specify requests.memory for: app".into())
        );
        let quotas = [quota(
            "compute",
            json!({"requests.cpu": "1"}),
            json!({"requests.cpu": "800m"}),
        )];
        assert_eq!(
            check_request(&pods(), &quotas, Object::Pod(&pod(Some("300m"))), None, Utc::now()),
            Err("exceeded quota: compute, requested: requests.cpu=300m, used: requests.cpu=800m, limited: requests.cpu=1".into())
        );
    }

    #[test]
    fn a_quota_not_yet_counted_refuses_and_one_not_yet_set_does_not_apply() {
        let mut uncounted = quota("q", json!({"pods": "5", "count/pods": "5"}), json!({}));
        uncounted.status.as_mut().unwrap().used = None;
        assert_eq!(
            check_request(
                &pods(),
                &[uncounted],
                Object::Pod(&pod(None)),
                None,
                Utc::now()
            ),
            Err("status unknown for quota: q, resources: count/pods,pods".into())
        );
        let mut unset = quota("q", json!({"pods": "1"}), json!({}));
        unset.status = None;
        assert_eq!(
            check_request(&pods(), &[unset], Object::Pod(&pod(None)), None, Utc::now()),
            Ok(Vec::new())
        );
    }

    #[test]
    fn finished_pods_use_only_their_count() {
        let quotas = [quota(
            "q",
            json!({"pods": "1", "count/pods": "5"}),
            json!({"pods": "1", "count/pods": "1"}),
        )];
        let mut done = pod(None);
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).expect("status"));
        let charges = check_request(&pods(), &quotas, Object::Pod(&done), None, Utc::now())
            .expect("a finished pod does not take a pods slot");
        assert_eq!(charged(&charges), [(0, "count/pods=2,pods=1".to_string())]);
    }

    #[test]
    fn object_counts_and_updates() {
        let quotas = [quota(
            "objects",
            json!({"configmaps": "1", "count/configmaps": "1"}),
            json!({"configmaps": "1", "count/configmaps": "1"}),
        )];
        let configmaps = Evaluator::new("", "configmaps");
        assert_eq!(
            check_request(&configmaps, &quotas, Object::Other, None, Utc::now()),
            Err("exceeded quota: objects, requested: configmaps=1,count/configmaps=1, used: configmaps=1,count/configmaps=1, limited: configmaps=1,count/configmaps=1".into())
        );
        let services = Evaluator::new("", "services");
        let quotas = [quota(
            "svc",
            json!({"services": "1", "services.nodeports": "2"}),
            json!({"services": "1", "services.nodeports": "0"}),
        )];
        let service = |type_: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"},
                "spec": {"type": type_, "ports": [{"port": 80}]}}))
            .expect("service")
        };
        let (cluster_ip, node_port) = (service("ClusterIP"), service("NodePort"));
        // Turning the counted service into a NodePort one charges its node port only.
        let charges = check_request(
            &services,
            &quotas,
            Object::Service(&node_port),
            Some(Object::Service(&cluster_ip)),
            Utc::now(),
        )
        .expect("allowed");
        assert_eq!(
            charged(&charges),
            [(0, "services=1,services.nodeports=1".to_string())]
        );
        // An update that adds nothing charges nothing.
        assert_eq!(
            check_request(
                &services,
                &quotas,
                Object::Service(&cluster_ip),
                Some(Object::Service(&cluster_ip)),
                Utc::now()
            ),
            Ok(Vec::new())
        );
    }
}
