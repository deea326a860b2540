//! Object metadata rules shared by every kind (Kubernetes' `k8s.io/apimachinery/pkg/apis/
//! meta/v1`): the finalizers of cascading deletion, deletion propagation, and controller
//! owner references.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

/// The finalizer of an object whose dependents are being orphaned (Kubernetes'
/// `metav1.FinalizerOrphanDependents`).
pub const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";

/// The finalizer of an object whose dependents are being deleted in the foreground
/// (Kubernetes' `metav1.FinalizerDeleteDependents`).
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

/// What a delete does with the object's dependents (`DeleteOptions.propagationPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    /// Keep the dependents; the garbage collector removes their ownerReferences to the object
    /// before the object goes.
    Orphan,
    /// Delete the object now; the garbage collector deletes the dependents afterwards.
    Background,
    /// Keep the object until the garbage collector has deleted the dependents that block its
    /// deletion (`blockOwnerDeletion: true`).
    Foreground,
}

impl PropagationPolicy {
    /// The values `propagationPolicy` accepts, as Kubernetes lists them in its error.
    pub const SUPPORTED: &[&str] = &["Foreground", "Background", "Orphan", "nil"];

    /// The policy's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "Orphan",
            Self::Background => "Background",
            Self::Foreground => "Foreground",
        }
    }

    /// Parse a `propagationPolicy` value; `None` for an unsupported one.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "Orphan" => Some(Self::Orphan),
            "Background" => Some(Self::Background),
            "Foreground" => Some(Self::Foreground),
            _ => None,
        }
    }
}

/// The owner reference a controller puts on what it makes (`metav1.NewControllerRef`,
/// blocking the owner's foreground deletion as Kubernetes' controllers do).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let reference = owner.controller_owner_ref(&()).unwrap_or_default();
    OwnerReference {
        block_owner_deletion: Some(true),
        ..reference
    }
}

/// The object's controller: the owner reference with `controller: true`
/// (`metav1.GetControllerOf`).
pub fn controller_of<K: Resource>(object: &K) -> Option<&OwnerReference> {
    object
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn propagation_policies_round_trip() {
        for policy in [
            PropagationPolicy::Orphan,
            PropagationPolicy::Background,
            PropagationPolicy::Foreground,
        ] {
            assert_eq!(PropagationPolicy::parse(policy.as_str()), Some(policy));
        }
        assert_eq!(PropagationPolicy::parse("orphan"), None, "case matters");
    }

    #[test]
    fn controller_ref_names_and_blocks_its_owner() {
        let owner = ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                namespace: Some("default".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let reference = controller_ref(&owner);
        assert_eq!(reference.kind, "ReplicaSet");
        assert_eq!(reference.api_version, "apps/v1");
        assert_eq!(reference.uid, "uid-1");
        assert_eq!(reference.controller, Some(true));
        assert_eq!(reference.block_owner_deletion, Some(true));

        let mut pod = Pod::default();
        assert!(controller_of(&pod).is_none());
        let mut not_controller = reference.clone();
        not_controller.controller = Some(false);
        not_controller.uid = "uid-0".into();
        pod.metadata.owner_references = Some(vec![not_controller, reference]);
        assert_eq!(controller_of(&pod).map(|r| r.uid.as_str()), Some("uid-1"));
    }
}
