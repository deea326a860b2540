//! How a workload controller adopts orphans that match its selector and releases objects that
//! no longer match (kube-controller-manager's ControllerRefManager); the controller reference
//! itself is [`skiff_api::meta::controller_ref`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use skiff_api::meta::controller_ref;
use std::fmt::Debug;
use tracing::info;

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
