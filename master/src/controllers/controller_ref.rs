//! How a workload controller adopts orphans that match its selector and releases objects that
//! no longer match (kube-controller-manager's ControllerRefManager); the controller reference
//! itself is [`skiff_api::meta::controller_ref`].

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use skiff_api::meta::{controller_of, controller_ref};
use skiff_api::selectors::LabelSelector;
use tracing::info;

use super::informers::Index;

/// The trigger a workload controller watches its pods (or ControllerRevisions) with, in place
/// of kube-runtime's `owns_shared_stream`: [`owners_to_sync`] over the owners' [`Index`].
pub fn owners_trigger<O, K>(
    owners: Index<O>,
    selector_of: fn(&O) -> Option<LabelSelector>,
) -> impl Fn(Arc<K>) -> Vec<ObjectRef<O>> + Send + Sync + 'static
where
    O: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    K: Resource,
{
    move |object| {
        owners_to_sync(
            object.as_ref(),
            |namespace| owners.in_namespace(namespace),
            selector_of,
        )
    }
}

/// The owners of kind `O` that a change to `object` concerns, as kube-controller-manager's
/// pod handlers find them: its controller, if that is an `O`; for an orphan, each `O` of its
/// namespace (`owners_in`) whose selector matches its labels, so that the orphan is adopted
/// now rather than at those owners' next resync. An orphan being deleted (or gone) concerns
/// no owner: none adopts it. An owner without a selector, or with an empty one, adopts
/// nothing.
pub fn owners_to_sync<O, K>(
    object: &K,
    owners_in: impl FnOnce(&str) -> Vec<Arc<O>>,
    selector_of: impl Fn(&O) -> Option<LabelSelector>,
) -> Vec<ObjectRef<O>>
where
    O: Resource<DynamicType = ()>,
    K: Resource,
{
    let namespace = object.meta().namespace.as_deref();
    if let Some(controller) = controller_of(object) {
        return ObjectRef::from_owner_ref(namespace, controller, ())
            .into_iter()
            .collect();
    }
    if object.meta().deletion_timestamp.is_some() {
        return Vec::new();
    }
    owners_in(namespace.unwrap_or_default())
        .iter()
        .filter(|owner| {
            selector_of(owner)
                .is_some_and(|selector| !selector.is_empty() && selector.matches(object.labels()))
        })
        .map(|owner| ObjectRef::from_obj(owner.as_ref()))
        .collect()
}

/// Makes `owner` the controller of `object`; `None` if the object changed or went meanwhile
/// (the next reconcile looks at it again).
pub async fn adopt<K, O>(api: &Api<K>, object: &K, owner: &O) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    O: Resource<DynamicType = ()>,
{
    let mut refs = object.owner_references().to_vec();
    refs.push(controller_ref(owner));
    let adopted = set_owner_references(api, object, &refs).await?;
    if adopted.is_some() {
        info!(object = %object.name_any(), owner = %owner.name_any(), "adopted an orphan");
    }
    Ok(adopted)
}

/// Removes the owner `uid` from the owners of `object` (it no longer matches the owner's
/// selector).
pub async fn release<K>(api: &Api<K>, object: &K, uid: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let refs: Vec<OwnerReference> = object
        .owner_references()
        .iter()
        .filter(|r| r.uid != uid)
        .cloned()
        .collect();
    if set_owner_references(api, object, &refs).await?.is_some() {
        info!(object = %object.name_any(), "released an object that no longer matches its owner's selector");
    }
    Ok(())
}

/// Writes `refs` as the object's owner references if it has not changed since it was read.
async fn set_owner_references<K>(
    api: &Api<K>,
    object: &K,
    refs: &[OwnerReference],
) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    // The resourceVersion makes it a compare-and-swap.
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": object.resource_version(),
    }});
    match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(object) => Ok(Some(object)),
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelector as ApiSelector, ObjectMeta, Time,
    };

    use super::*;

    fn replica_set(name: &str, app: Option<&str>) -> Arc<ReplicaSet> {
        Arc::new(ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                selector: ApiSelector {
                    match_labels: app.map(|app| [("app".to_string(), app.to_string())].into()),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: None,
        })
    }

    fn pod(app: &str, controller: Option<&ReplicaSet>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                owner_references: controller.map(|owner| vec![controller_ref(owner)]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(refs: &[ObjectRef<ReplicaSet>]) -> Vec<&str> {
        refs.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn an_orphan_wakes_the_owners_whose_selector_matches_it() {
        let owners = [
            replica_set("web", Some("web")),
            replica_set("web-too", Some("web")),
            replica_set("db", Some("db")),
            replica_set("empty", None),
        ];
        let asked = std::cell::Cell::new(None);
        let owners_in = |namespace: &str| {
            asked.set(Some(namespace.to_owned()));
            owners.to_vec()
        };
        let selector_of =
            |rs: &ReplicaSet| LabelSelector::from_api(&rs.spec.as_ref()?.selector).ok();

        let woken = owners_to_sync(&pod("web", None), owners_in, selector_of);
        assert_eq!(names(&woken), ["web", "web-too"]);
        assert_eq!(asked.take().as_deref(), Some("default"));
        assert!(owners_to_sync(&pod("cache", None), |_| owners.to_vec(), selector_of).is_empty());

        // Being deleted, it is no one's to adopt.
        let mut deleting = pod("web", None);
        deleting.metadata.deletion_timestamp = Some(Time(chrono::Utc::now()));
        assert!(owners_to_sync(&deleting, |_| owners.to_vec(), selector_of).is_empty());
    }

    #[test]
    fn a_controlled_object_wakes_its_controller_only() {
        let owners = [
            replica_set("web", Some("web")),
            replica_set("db", Some("db")),
        ];
        let controlled = pod("web", Some(&owners[1]));
        let woken = owners_to_sync(
            &controlled,
            |_| panic!("a controlled object looks up no owners"),
            |rs: &ReplicaSet| LabelSelector::from_api(&rs.spec.as_ref()?.selector).ok(),
        );
        assert_eq!(names(&woken), ["db"]);
        assert_eq!(woken[0].namespace.as_deref(), Some("default"));

        // A controller of another kind is no ReplicaSet's business.
        let mut by_job = controlled;
        by_job.metadata.owner_references.as_mut().unwrap()[0].kind = "Job".into();
        let woken = owners_to_sync(&by_job, |_| owners.to_vec(), |_: &ReplicaSet| None);
        assert!(woken.is_empty());
    }
}
