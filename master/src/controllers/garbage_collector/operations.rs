//! The collector's writes to the API server (Kubernetes' `operations.go`): removing owner
//! references and finalizers from an object's latest version.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use tracing::debug;

use super::graph::Item;
use super::graph_builder::Kind;
use super::{Error, Shared};

/// How often a read-modify-write of one object is tried when others write it meanwhile.
const CONFLICT_ATTEMPTS: usize = 5;

impl Shared {
    /// Removes the references to `owners` (uids) from `item`, on its latest version.
    pub(super) async fn remove_owner_references(
        &self,
        item: &Item,
        owners: &[String],
    ) -> Result<(), Error> {
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
    pub(super) async fn remove_finalizer(&self, item: &Item, finalizer: &str) -> Result<(), Error> {
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

    pub(super) fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if kind.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }
}
