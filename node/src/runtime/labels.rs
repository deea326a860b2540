//! The labels on every container the agent creates. Pod and container identity use the keys
//! Kubernetes' Docker integration (dockershim) used, so Docker tooling shows familiar names;
//! the node label keeps several agents on one host apart.

use std::collections::HashMap;

use super::{ContainerInfo, ContainerKind, ContainerPhase, PodRef, SANDBOX_CONTAINER_NAME};

/// The node whose agent manages the container.
pub const NODE: &str = "io.skiff.node";
/// `metadata.uid` of the pod.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// `metadata.name` of the pod.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// `metadata.namespace` of the pod.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The pod's termination grace period in seconds.
pub const POD_GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";
/// The container's name in the pod spec (`POD` for the sandbox).
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// `podsandbox`, `init` or `container`.
pub const CONTAINER_TYPE: &str = "io.kubernetes.docker.type";
/// The restart count of this instance.
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Hash of the container spec it was made from.
pub const SPEC_HASH: &str = "io.kubernetes.container.hash";
/// The image as the pod spec names it.
pub const IMAGE: &str = "io.skiff.image";
/// A sandbox's pod IP, when the agent plumbed its network (not Docker).
pub const POD_IP: &str = "io.skiff.pod-ip";

const TYPE_SANDBOX: &str = "podsandbox";
const TYPE_INIT: &str = "init";
const TYPE_APP: &str = "container";

/// Who a new container is: everything its labels and Docker name say.
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    /// The node whose agent creates it.
    pub node: &'a str,
    /// Its pod.
    pub pod: &'a PodRef,
    /// Sandbox, init or app.
    pub kind: ContainerKind,
    /// The container's name in the pod spec.
    pub name: &'a str,
    /// Its restart count.
    pub attempt: u32,
    /// Hash of its spec.
    pub spec_hash: &'a str,
    /// Its image as the pod spec names it.
    pub image: &'a str,
    /// The pod's termination grace period.
    pub grace_seconds: i64,
}

impl Identity<'_> {
    /// The labels of the new container.
    pub fn labels(&self) -> HashMap<String, String> {
        let kind = match self.kind {
            ContainerKind::Sandbox => TYPE_SANDBOX,
            ContainerKind::Init => TYPE_INIT,
            ContainerKind::App => TYPE_APP,
        };
        [
            (NODE, self.node),
            (POD_UID, &self.pod.uid),
            (POD_NAME, &self.pod.name),
            (POD_NAMESPACE, &self.pod.namespace),
            (CONTAINER_NAME, self.name),
            (CONTAINER_TYPE, kind),
            (SPEC_HASH, self.spec_hash),
            (IMAGE, self.image),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([
            (RESTART_COUNT.to_owned(), self.attempt.to_string()),
            (POD_GRACE.to_owned(), self.grace_seconds.to_string()),
        ])
        .collect()
    }

    /// The Docker name: `skiff_<container>_<pod>_<namespace>_<uid>_<attempt>` (dockershim's
    /// scheme), unique per pod uid and attempt, so that a repeated create runs into the first
    /// one (409) instead of making a twin.
    pub fn docker_name(&self) -> String {
        format!(
            "skiff_{}_{}_{}_{}_{}",
            self.name, self.pod.name, self.pod.namespace, self.pod.uid, self.attempt
        )
    }
}

/// Reads back what [`Identity::labels`] wrote; `None` for containers that are not a pod's.
pub fn parse(
    id: &str,
    labels: &HashMap<String, String>,
    phase: ContainerPhase,
    created: i64,
) -> Option<ContainerInfo> {
    let get = |key: &str| labels.get(key).cloned();
    let kind = match labels.get(CONTAINER_TYPE)?.as_str() {
        TYPE_SANDBOX => ContainerKind::Sandbox,
        TYPE_INIT => ContainerKind::Init,
        TYPE_APP => ContainerKind::App,
        _ => return None,
    };
    let name = match kind {
        ContainerKind::Sandbox => SANDBOX_CONTAINER_NAME.to_owned(),
        _ => get(CONTAINER_NAME)?,
    };
    Some(ContainerInfo {
        id: id.to_owned(),
        pod: PodRef {
            uid: get(POD_UID)?,
            name: get(POD_NAME)?,
            namespace: get(POD_NAMESPACE)?,
        },
        kind,
        name,
        attempt: labels
            .get(RESTART_COUNT)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        spec_hash: get(SPEC_HASH).unwrap_or_default(),
        image: get(IMAGE).unwrap_or_default(),
        phase,
        created,
        grace_seconds: labels
            .get(POD_GRACE)
            .and_then(|n| n.parse().ok())
            .unwrap_or(30),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        let pod = PodRef {
            uid: "u-1".into(),
            name: "web".into(),
            namespace: "default".into(),
        };
        let identity = Identity {
            node: "n1",
            pod: &pod,
            kind: ContainerKind::App,
            name: "app",
            attempt: 3,
            spec_hash: "h",
            image: "img:1",
            grace_seconds: 5,
        };
        let labels = identity.labels();
        assert_eq!(identity.docker_name(), "skiff_app_web_default_u-1_3");
        let info = parse("abc", &labels, ContainerPhase::Running, 7).expect("parses");
        assert_eq!(info.pod, pod);
        assert_eq!((info.kind, info.name.as_str()), (ContainerKind::App, "app"));
        assert_eq!((info.attempt, info.grace_seconds), (3, 5));
        assert_eq!(
            (info.spec_hash.as_str(), info.image.as_str()),
            ("h", "img:1")
        );
        assert!(parse("x", &HashMap::new(), ContainerPhase::Running, 0).is_none());
    }
}
