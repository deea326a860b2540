//! Controller history (Kubernetes' `pkg/controller/history`): the ControllerRevisions in which
//! DaemonSets and StatefulSets keep the pod templates they have run, so `kubectl rollout
//! history|undo` can show and bring back an earlier one.
//!
//! A revision is named `<owner>-<hash>` after its template's hash (and the owner's collision
//! count), carries the template's labels and `controller-revision-hash`, and holds in `data`
//! the strategic merge patch that puts its template back (`{"spec": {"template": {...,
//! "$patch": "replace"}}}`), which is what `kubectl rollout undo` applies. The revision of
//! the owner's current template is the highest: made when missing, raised when an undo
//! brought an older template back.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::controller_ref;
use super::informers::{Index, Informers};
use skiff_api::hash::pod_template_hash;
use skiff_api::meta::{controller_of, controller_ref};
use skiff_api::selectors::LabelSelector;
use skiff_api::well_known::LABEL_CONTROLLER_REVISION_HASH;

/// An owner's revision of its current template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// `<owner>-<hash>` (what a StatefulSet's pods carry in `controller-revision-hash`).
    pub name: String,
    /// The template's hash (what a DaemonSet's pods carry there).
    pub hash: String,
}

/// `controller` woken by its owners' pods and ControllerRevisions: a changed one wakes its
/// controller, an orphan each owner whose selector (`selector_of`) matches it
/// ([`controller_ref::owners_trigger`]).
pub fn watch_pods_and_revisions<K>(
    controller: Controller<K>,
    informers: &mut Informers,
    owners: Index<K>,
    selector_of: fn(&K) -> Option<LabelSelector>,
) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    controller
        .watches_shared_stream(
            informers.pods.subscribe(),
            controller_ref::owners_trigger(owners.clone(), selector_of),
        )
        .watches_shared_stream(
            informers.controller_revisions.subscribe(),
            controller_ref::owners_trigger(owners, selector_of),
        )
}

/// The `data` of the revision of `template` (Kubernetes' `getPatch`).
pub fn template_patch(template: &PodTemplateSpec) -> Result<Value, serde_json::Error> {
    let mut template = serde_json::to_value(template)?;
    if let Some(fields) = template.as_object_mut() {
        fields.insert("$patch".to_owned(), json!("replace"));
    }
    Ok(json!({ "spec": { "template": template } }))
}

/// The template a revision holds.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(fields) = template.as_object_mut() {
        fields.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// The revisions `owner` controls, lowest revision first, adopting those of its namespace
/// that its `selector` matches and nobody controls (left by an owner deleted with
/// `--cascade=orphan`, whose successor takes its history back as Kubernetes' does).
pub async fn claim<K>(
    client: &kube::Client,
    revisions: &Store<ControllerRevision>,
    owner: &K,
    selector: &LabelSelector,
) -> Result<Vec<Arc<ControllerRevision>>, kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = owner.namespace().unwrap_or_default();
    let uid = owner.uid().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let mut owned = Vec::new();
    for revision in revisions.state() {
        if revision.namespace().as_deref() != Some(namespace.as_str()) {
            continue;
        }
        match controller_of(revision.as_ref()) {
            Some(controller) if controller.uid == uid => owned.push(revision),
            Some(_) => {}
            None if selector.matches(revision.labels())
                && owner.meta().deletion_timestamp.is_none() =>
            {
                if let Some(adopted) = controller_ref::adopt(&api, &revision, owner).await? {
                    owned.push(Arc::new(adopted));
                }
            }
            None => {}
        }
    }
    owned.sort_by_key(|r| r.revision);
    Ok(owned)
}

/// Makes sure `owner`'s `template` has the highest revision among `owned` (from [`claim`]),
/// and takes it out of `owned`, which is left with the others. `None` when the name is taken
/// by another template (a hash collision): the owner's `status.collisionCount` is raised, so
/// the next try hashes anew.
pub async fn current<K>(
    client: &kube::Client,
    owner: &K,
    template: &PodTemplateSpec,
    collisions: Option<i32>,
    owned: &mut Vec<Arc<ControllerRevision>>,
) -> Result<Option<Revision>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let namespace = owner.namespace().unwrap_or_default();
    let uid = owner.uid().unwrap_or_default();
    let data = template_patch(template).map_err(kube::Error::SerdeError)?;
    let highest = owned.last().map_or(0, |r| r.revision);
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    if let Some(index) = owned
        .iter()
        .position(|r| r.data.as_ref().map(|d| &d.0) == Some(&data))
    {
        let found = owned.remove(index);
        if found.revision < highest {
            // An undo: the old template's revision becomes the newest.
            let patch = json!({ "revision": highest.saturating_add(1) });
            api.patch(
                &found.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        let hash = found
            .labels()
            .get(LABEL_CONTROLLER_REVISION_HASH)
            .cloned()
            .unwrap_or_else(|| pod_template_hash(template, collisions));
        return Ok(Some(Revision {
            name: found.name_any(),
            hash,
        }));
    }
    let hash = pod_template_hash(template, collisions);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(LABEL_CONTROLLER_REVISION_HASH.to_owned(), hash.clone());
    let revision = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", owner.name_any())),
            namespace: Some(namespace.clone()),
            labels: Some(labels),
            annotations: owner.meta().annotations.clone(),
            owner_references: Some(vec![controller_ref(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(data.clone())),
        revision: highest.saturating_add(1),
    };
    let made = Revision {
        name: revision.name_any(),
        hash,
    };
    match api.create(&PostParams::default(), &revision).await {
        Ok(_) => Ok(Some(made)),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // Taken: ours with the same data (the cache is behind) or another template's.
            let existing = api.get(&made.name).await?;
            let ours = controller_of(&existing).is_some_and(|o| o.uid == uid);
            if ours && existing.data.as_ref().map(|d| &d.0) == Some(&data) {
                return Ok(Some(made));
            }
            let count = collisions.unwrap_or(0).saturating_add(1);
            let owners: Api<K> = Api::namespaced(client.clone(), &namespace);
            let patch = json!({ "status": { "collisionCount": count } });
            owners
                .patch_status(
                    &owner.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Deletes `revisions` (those an owner's history no longer keeps).
pub async fn delete(
    client: &kube::Client,
    namespace: &str,
    revisions: &[&ControllerRevision],
) -> Result<(), kube::Error> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    for revision in revisions {
        match api
            .delete(&revision.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_holds_the_patch_that_puts_its_template_back() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "a", "image": "x"}]},
        }))
        .expect("template");
        let data = template_patch(&template).expect("data");
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(data["spec"]["template"]["metadata"]["labels"]["app"], "a");
        assert_eq!(data.as_object().map(|o| o.len()), Some(1));
        let revision = ControllerRevision {
            data: Some(RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(template_of(&revision), Some(template));
    }
}
