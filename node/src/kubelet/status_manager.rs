//! The status manager: the only writer of pods to the API server. Pod workers hand it their
//! latest status and never wait on the master; it writes what changed (`pods/<name>/status`)
//! and retries with back-off while the master is unreachable, so pods keep running either way.
//!
//! It also keeps the mirror pods of static pods in step (created, recreated when the manifest
//! changes or someone deletes them, removed with the manifest) and finishes graceful deletions
//! (`DELETE` with `gracePeriodSeconds=0` once the containers are gone).
//!
//! Its three writes go through the [`PodWriter`] trait (the API client in production), so its
//! decisions are unit-tested against a fake.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::messages::{ApiPodMeta, StatusMsg, conditions_of};
use super::pod_view::PodView;
use super::static_pods;
use super::types::PodKey;

/// The writes of pods the status manager makes.
pub trait PodWriter: Send + Sync + 'static {
    /// Merge-patches the pod's status; `uid` guards against writing to a pod of the same name
    /// that replaced it.
    fn patch_status(
        &self,
        key: &PodKey,
        uid: &str,
        status: &PodStatus,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;

    /// Creates a (mirror) pod in its namespace.
    fn create(&self, pod: &Pod) -> impl Future<Output = Result<Pod, kube::Error>> + Send;

    /// Deletes a pod at once (`gracePeriodSeconds=0`) if its uid is still `uid`; gone (or
    /// replaced) already is fine.
    fn delete_now(
        &self,
        key: &PodKey,
        uid: &str,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
}

impl PodWriter for kube::Client {
    async fn patch_status(
        &self,
        key: &PodKey,
        uid: &str,
        status: &PodStatus,
    ) -> Result<(), kube::Error> {
        let patch = json!({
            "metadata": {"uid": uid},
            "status": status,
        });
        Api::<Pod>::namespaced(self.clone(), &key.0)
            .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }

    async fn create(&self, pod: &Pod) -> Result<Pod, kube::Error> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        Api::<Pod>::namespaced(self.clone(), namespace)
            .create(&PostParams::default(), pod)
            .await
    }

    async fn delete_now(&self, key: &PodKey, uid: &str) -> Result<(), kube::Error> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match Api::<Pod>::namespaced(self.clone(), &key.0)
            .delete(&key.1, &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
            Err(err) => Err(err),
        }
    }
}

struct Entry {
    uid: String,
    static_pod: bool,
    status: PodStatus,
    written: bool,
}

impl Entry {
    /// Whether the API's copy of this entry's pod has other conditions than the entry.
    fn differs_from(&self, api: &ApiPodMeta) -> bool {
        let this_pod = if self.static_pod {
            api.mirror_hash.as_deref() == Some(self.uid.as_str())
        } else {
            api.uid == self.uid
        };
        this_pod && api.conditions != conditions_of(&self.status)
    }
}

/// The status manager's state.
pub struct StatusManager<W> {
    writer: W,
    node: String,
    node_uid: String,
    api: HashMap<PodKey, ApiPodMeta>,
    api_synced: bool,
    statuses: HashMap<PodKey, Entry>,
    static_pods: HashMap<PodKey, Pod>,
    deletes: HashMap<PodKey, String>,
    view: PodView,
}

impl<W: PodWriter> StatusManager<W> {
    /// A status manager for `node`, writing through `writer`.
    pub fn new(writer: W, node: &str, node_uid: &str) -> Self {
        Self {
            writer,
            node: node.to_owned(),
            node_uid: node_uid.to_owned(),
            api: HashMap::new(),
            api_synced: false,
            statuses: HashMap::new(),
            static_pods: HashMap::new(),
            deletes: HashMap::new(),
            view: PodView::default(),
        }
    }

    /// Keeps the statuses in `view` too (what the agent's `/pods` shows).
    pub fn publishing(mut self, view: PodView) -> Self {
        self.view = view;
        self
    }

    /// Runs until every sender is gone.
    pub async fn run(mut self, mut incoming: mpsc::UnboundedReceiver<StatusMsg>) {
        let mut failures = 0u32;
        let mut failing = false;
        loop {
            // After a failure, retry when the back-off ends even if nothing new arrives.
            let backoff = Duration::from_millis(500 * (1 << failures.min(6)));
            let msg = tokio::select! {
                msg = incoming.recv() => match msg {
                    Some(msg) => Some(msg),
                    None => return,
                },
                _ = tokio::time::sleep(backoff), if failures > 0 => None,
            };
            if let Some(msg) = msg {
                self.apply(msg);
            }
            while let Ok(msg) = incoming.try_recv() {
                self.apply(msg);
            }
            match self.reconcile().await {
                Ok(()) => {
                    if failing {
                        info!("pod status updates succeed again");
                        failing = false;
                    }
                    failures = 0;
                }
                Err(err) => {
                    if !failing {
                        warn!("writing pods to the API server: {err}; retrying with back-off");
                        failing = true;
                    }
                    failures += 1;
                }
            }
        }
    }

    fn apply(&mut self, msg: StatusMsg) {
        match msg {
            StatusMsg::Status {
                key,
                uid,
                static_pod,
                status,
            } => {
                self.view.set_status(&uid, &status);
                let entry = self.statuses.entry(key).or_insert_with(|| Entry {
                    uid: uid.clone(),
                    static_pod,
                    status: PodStatus::default(),
                    written: false,
                });
                if entry.uid != uid || entry.status != *status {
                    entry.uid = uid;
                    entry.static_pod = static_pod;
                    entry.status = *status;
                    entry.written = false;
                }
            }
            StatusMsg::Terminated { key, uid } => {
                self.view.forget_status(&uid);
                self.statuses.remove(&key);
                self.deletes.insert(key, uid);
            }
            StatusMsg::Forget { key, uid } => {
                self.view.forget_status(&uid);
                if self.statuses.get(&key).is_some_and(|e| e.uid == uid) {
                    self.statuses.remove(&key);
                }
            }
            StatusMsg::StaticPods(pods) => self.static_pods = pods,
            StatusMsg::ApiSnapshot(pods) => {
                self.api = pods.into_iter().map(|p| (p.key.clone(), p)).collect();
                self.api_synced = true;
                // The master may have lost what was written (or the pods were recreated).
                for entry in self.statuses.values_mut() {
                    entry.written = false;
                }
            }
            StatusMsg::ApiApply(pod) => {
                if let Some(entry) = self.statuses.get_mut(&pod.key)
                    && (self.api.get(&pod.key).is_none_or(|old| old.uid != pod.uid)
                        || (entry.written && entry.differs_from(&pod)))
                {
                    // A (re)created mirror pod needs the status again; so does a pod whose
                    // conditions someone else changed, as the node lifecycle controller
                    // marks the pods of a node it lost touch with not Ready (the kubelet's
                    // status manager reconciles the same way).
                    entry.written = false;
                }
                self.api.insert(pod.key.clone(), pod);
            }
            StatusMsg::ApiDelete(pod) => {
                if self.api.get(&pod.key).is_some_and(|old| old.uid == pod.uid) {
                    self.api.remove(&pod.key);
                }
            }
        }
    }

    /// Makes one pass over everything that is not written yet; stops at the first failure
    /// to reach the master.
    async fn reconcile(&mut self) -> Result<(), kube::Error> {
        if self.api_synced {
            self.sync_mirror_pods().await?;
        }
        self.write_statuses().await?;
        self.finish_deletions().await
    }

    async fn sync_mirror_pods(&mut self) -> Result<(), kube::Error> {
        // Mirror pods whose static pod is gone or changed, or that someone deletes.
        let stale: Vec<ApiPodMeta> = self
            .api
            .values()
            .filter(|meta| {
                let Some(hash) = &meta.mirror_hash else {
                    return false;
                };
                meta.deleting
                    || self
                        .static_pods
                        .get(&meta.key)
                        .is_none_or(|pod| pod.metadata.uid.as_deref() != Some(hash.as_str()))
            })
            .cloned()
            .collect();
        for meta in stale {
            info!(pod = %format!("{}/{}", meta.key.0, meta.key.1), "deleting mirror pod");
            self.writer.delete_now(&meta.key, &meta.uid).await?;
            self.api.remove(&meta.key);
        }
        // Static pods without a mirror.
        let missing: Vec<(PodKey, Pod)> = self
            .static_pods
            .iter()
            .filter(|(key, _)| !self.api.contains_key(*key))
            .map(|(key, pod)| (key.clone(), pod.clone()))
            .collect();
        for (key, pod) in missing {
            let mirror = static_pods::mirror_pod(&pod, &self.node, &self.node_uid);
            match self.writer.create(&mirror).await {
                Ok(created) => {
                    info!(pod = %format!("{}/{}", key.0, key.1), "created mirror pod");
                    self.api.insert(key.clone(), ApiPodMeta::of(&created));
                    if let Some(entry) = self.statuses.get_mut(&key) {
                        entry.written = false;
                    }
                }
                // Exists already (the watch will tell which); or the API refuses it.
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(kube::Error::Api(status)) if status.code < 500 => {
                    warn!(pod = %format!("{}/{}", key.0, key.1), "the API server refuses the mirror pod: {}", status.message);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    async fn write_statuses(&mut self) -> Result<(), kube::Error> {
        for (key, entry) in self.statuses.iter_mut().filter(|(_, e)| !e.written) {
            // Only the pod this status belongs to: the same uid, or for a static pod its
            // current mirror pod.
            let Some(target) = self.api.get(key).filter(|meta| {
                if entry.static_pod {
                    meta.mirror_hash.as_deref() == Some(entry.uid.as_str()) && !meta.deleting
                } else {
                    meta.uid == entry.uid
                }
            }) else {
                continue;
            };
            match self
                .writer
                .patch_status(key, &target.uid, &entry.status)
                .await
            {
                Ok(_) => {
                    debug!(pod = %format!("{}/{}", key.0, key.1), "status written");
                    entry.written = true;
                }
                Err(kube::Error::Api(status)) if status.code < 500 => {
                    // Gone, replaced or refused: writing it again will not help.
                    debug!(pod = %format!("{}/{}", key.0, key.1), "status not written: {}", status.message);
                    entry.written = true;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    async fn finish_deletions(&mut self) -> Result<(), kube::Error> {
        let pending: Vec<(PodKey, String)> = self
            .deletes
            .iter()
            .map(|(k, u)| (k.clone(), u.clone()))
            .collect();
        for (key, uid) in pending {
            self.writer.delete_now(&key, &uid).await?;
            self.deletes.remove(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;
    use crate::kubelet::static_pods;
    use crate::kubelet::types::key_of;

    /// A write the fake saw.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Write {
        Status(String, String, Option<String>),
        Create(String),
        Delete(String, String),
    }

    /// Records writes; while `down`, fails them as an unreachable master would.
    #[derive(Clone, Default)]
    struct FakeWriter {
        writes: Arc<Mutex<Vec<Write>>>,
        down: Arc<Mutex<bool>>,
    }

    impl FakeWriter {
        fn take(&self) -> Vec<Write> {
            std::mem::take(&mut self.writes.lock().unwrap_or_else(PoisonError::into_inner))
        }

        fn set_down(&self, down: bool) {
            *self.down.lock().unwrap_or_else(PoisonError::into_inner) = down;
        }

        fn write(&self, write: Write) -> Result<(), kube::Error> {
            if *self.down.lock().unwrap_or_else(PoisonError::into_inner) {
                return Err(kube::Error::Api(kube::core::ErrorResponse {
                    status: String::from("Failure"),
                    message: String::from("unavailable"),
                    reason: String::from("ServiceUnavailable"),
                    code: 503,
                }));
            }
            self.writes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(write);
            Ok(())
        }
    }

    impl PodWriter for FakeWriter {
        async fn patch_status(
            &self,
            key: &PodKey,
            uid: &str,
            status: &PodStatus,
        ) -> Result<(), kube::Error> {
            self.write(Write::Status(
                key.1.clone(),
                uid.to_owned(),
                status.phase.clone(),
            ))
        }

        async fn create(&self, pod: &Pod) -> Result<Pod, kube::Error> {
            self.write(Write::Create(pod.metadata.name.clone().unwrap_or_default()))?;
            let mut created = pod.clone();
            created.metadata.uid = Some(String::from("mirror-uid"));
            Ok(created)
        }

        async fn delete_now(&self, key: &PodKey, uid: &str) -> Result<(), kube::Error> {
            self.write(Write::Delete(key.1.clone(), uid.to_owned()))
        }
    }

    fn manager() -> (StatusManager<FakeWriter>, FakeWriter) {
        let writer = FakeWriter::default();
        (
            StatusManager::new(writer.clone(), "node-1", "node-uid"),
            writer,
        )
    }

    fn meta(name: &str, uid: &str) -> ApiPodMeta {
        ApiPodMeta {
            key: (String::from("default"), name.to_owned()),
            uid: uid.to_owned(),
            mirror_hash: None,
            deleting: false,
            conditions: Vec::new(),
        }
    }

    fn status(name: &str, uid: &str, phase: &str) -> StatusMsg {
        StatusMsg::Status {
            key: (String::from("default"), name.to_owned()),
            uid: uid.to_owned(),
            static_pod: false,
            status: Box::new(PodStatus {
                phase: Some(phase.to_owned()),
                ..Default::default()
            }),
        }
    }

    fn written(name: &str, uid: &str, phase: &str) -> Write {
        Write::Status(name.to_owned(), uid.to_owned(), Some(phase.to_owned()))
    }

    #[tokio::test]
    async fn a_status_is_written_when_it_changed_and_only_then() {
        let (mut manager, writer) = manager();
        manager.apply(StatusMsg::ApiSnapshot(vec![meta("web", "u1")]));
        manager.apply(status("web", "u1", "Pending"));
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), [written("web", "u1", "Pending")]);

        // The same status again: nothing to write.
        manager.apply(status("web", "u1", "Pending"));
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), []);

        manager.apply(status("web", "u1", "Running"));
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), [written("web", "u1", "Running")]);

        // A relist may follow a master that lost what was written: write it again.
        manager.apply(StatusMsg::ApiSnapshot(vec![meta("web", "u1")]));
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), [written("web", "u1", "Running")]);
    }

    #[tokio::test]
    async fn conditions_someone_else_changed_are_written_again() {
        let (mut manager, writer) = manager();
        let ready = |status: &str| k8s_openapi::api::core::v1::PodCondition {
            type_: String::from("Ready"),
            status: status.to_owned(),
            ..Default::default()
        };
        manager.apply(StatusMsg::ApiSnapshot(vec![meta("web", "u1")]));
        manager.apply(StatusMsg::Status {
            key: (String::from("default"), String::from("web")),
            uid: String::from("u1"),
            static_pod: false,
            status: Box::new(PodStatus {
                phase: Some(String::from("Running")),
                conditions: Some(vec![ready("True")]),
                ..Default::default()
            }),
        });
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), [written("web", "u1", "Running")]);

        // The watch shows what was written: nothing to do.
        let as_written = ApiPodMeta {
            conditions: vec![(String::from("Ready"), String::from("True"))],
            ..meta("web", "u1")
        };
        manager.apply(StatusMsg::ApiApply(as_written));
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), []);

        // The node lifecycle controller marked the pod not Ready while the node was silent.
        let marked = ApiPodMeta {
            conditions: vec![(String::from("Ready"), String::from("False"))],
            ..meta("web", "u1")
        };
        manager.apply(StatusMsg::ApiApply(marked));
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), [written("web", "u1", "Running")]);
    }

    #[tokio::test]
    async fn a_status_goes_only_to_the_pod_with_its_uid() {
        let (mut manager, writer) = manager();
        // The pod was deleted and recreated under the same name: the old worker's status
        // must not land on the new pod.
        manager.apply(StatusMsg::ApiSnapshot(vec![meta("web", "u2")]));
        manager.apply(status("web", "u1", "Running"));
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), []);
    }

    #[tokio::test]
    async fn writes_that_fail_are_retried_until_the_master_takes_them() {
        let (mut manager, writer) = manager();
        manager.apply(StatusMsg::ApiSnapshot(vec![
            meta("web", "u1"),
            meta("old", "u0"),
        ]));
        manager.apply(status("web", "u1", "Running"));
        manager.apply(StatusMsg::Terminated {
            key: (String::from("default"), String::from("old")),
            uid: String::from("u0"),
        });
        writer.set_down(true);
        assert!(manager.reconcile().await.is_err());
        writer.set_down(false);
        manager.reconcile().await.expect("reconcile");
        assert_eq!(
            writer.take(),
            [
                written("web", "u1", "Running"),
                Write::Delete(String::from("old"), String::from("u0")),
            ]
        );
        // Done: nothing is written twice.
        manager.reconcile().await.expect("reconcile");
        assert_eq!(writer.take(), []);
    }

    #[tokio::test]
    async fn a_static_pod_gets_a_mirror_pod_and_a_stale_mirror_is_deleted() {
        let (mut manager, writer) = manager();
        let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: skiff/app:1\n";
        let static_pod = static_pods::parse(manifest, "node-1").expect("manifest");
        let hash = static_pod.metadata.uid.clone().expect("hash");
        let key = key_of(&static_pod);
        manager.apply(StatusMsg::StaticPods(HashMap::from([(
            key.clone(),
            static_pod,
        )])));
        // A mirror of an edited manifest (another hash) is in the API.
        manager.apply(StatusMsg::ApiSnapshot(vec![ApiPodMeta {
            mirror_hash: Some(String::from("an-older-hash")),
            ..meta("web-node-1", "old-mirror")
        }]));
        manager.apply(StatusMsg::Status {
            key: key.clone(),
            uid: hash,
            static_pod: true,
            status: Box::new(PodStatus {
                phase: Some(String::from("Running")),
                ..Default::default()
            }),
        });
        manager.reconcile().await.expect("reconcile");
        assert_eq!(
            writer.take(),
            [
                Write::Delete(String::from("web-node-1"), String::from("old-mirror")),
                Write::Create(String::from("web-node-1")),
                // The static pod's status goes to its new mirror pod.
                written("web-node-1", "mirror-uid", "Running"),
            ]
        );
    }
}
