//! [`PodView`]: the pods this agent runs, as its endpoint's `/pods` shows them (the
//! kubelet's `GetPods`): the pod manager's desired pods (from the API and from manifests),
//! each with the latest status its worker computed, which may be newer than the API's copy
//! and is the only one a static pod has; and how often a worker panicked and was replaced,
//! for `/metrics`. A leaf: the pod manager and the status manager write
//! it, the server reads it, and none of them imports another.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::api::core::v1::{Pod, PodStatus};

/// A shared, cheap-to-clone view; clones see the same pods.
#[derive(Clone, Debug, Default)]
pub struct PodView {
    inner: Arc<RwLock<Pods>>,
}

#[derive(Debug, Default)]
struct Pods {
    /// Desired pods by uid (a static pod's uid is its hash).
    desired: HashMap<String, Pod>,
    /// Worker statuses by pod uid.
    statuses: HashMap<String, PodStatus>,
    /// Pod workers that panicked and were replaced, since the agent started.
    worker_restarts: u64,
}

impl PodView {
    /// Pod `uid` is now `pod` (`None`: no longer desired).
    pub fn set_pod(&self, uid: &str, pod: Option<&Pod>) {
        let mut pods = self.write();
        match pod {
            Some(pod) => {
                pods.desired.insert(uid.to_owned(), pod.clone());
            }
            None => {
                pods.desired.remove(uid);
            }
        }
    }

    /// The worker of pod `uid` computed `status`.
    pub fn set_status(&self, uid: &str, status: &PodStatus) {
        self.write().statuses.insert(uid.to_owned(), status.clone());
    }

    /// Pod `uid`'s worker is done: its status goes with it.
    pub fn forget_status(&self, uid: &str) {
        self.write().statuses.remove(uid);
    }

    /// A pod worker panicked; a new one takes over its pod.
    pub fn worker_restarted(&self) {
        let mut pods = self.write();
        pods.worker_restarts = pods.worker_restarts.saturating_add(1);
    }

    /// How many pod workers panicked and were replaced since the agent started.
    pub fn worker_restarts(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .worker_restarts
    }

    /// The desired pods, each with its worker's status when there is one, by namespace and
    /// name.
    pub fn pods(&self) -> Vec<Pod> {
        let pods = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<Pod> = pods
            .desired
            .iter()
            .map(|(uid, pod)| {
                let mut pod = pod.clone();
                if let Some(status) = pods.statuses.get(uid) {
                    pod.status = Some(status.clone());
                }
                pod
            })
            .collect();
        list.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        list
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Pods> {
        // A poisoned lock only means a writer panicked between two map operations.
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(String::from("default")),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn desired_pods_show_their_workers_status() {
        let view = PodView::default();
        view.set_pod("u2", Some(&pod("web", "Pending")));
        view.set_pod("u1", Some(&pod("db", "Pending")));
        view.set_status(
            "u2",
            &PodStatus {
                phase: Some(String::from("Running")),
                ..Default::default()
            },
        );
        let shown: Vec<(String, String)> = view
            .pods()
            .into_iter()
            .map(|p| {
                (
                    p.metadata.name.unwrap_or_default(),
                    p.status.and_then(|s| s.phase).unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (String::from("db"), String::from("Pending")),
                (String::from("web"), String::from("Running"))
            ]
        );
        view.set_pod("u2", None);
        view.forget_status("u2");
        assert_eq!(view.pods().len(), 1);
    }
}
