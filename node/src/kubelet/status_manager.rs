//! The status manager: the only writer of pods to the API server. Pod workers hand it their
//! latest status and never wait on the master; it writes what changed (`pods/<name>/status`)
//! and retries with back-off while the master is unreachable, so pods keep running either way.
//!
//! It also keeps the mirror pods of static pods in step (created, recreated when the manifest
//! changes or someone deletes them, removed with the manifest) and finishes graceful deletions
//! (`DELETE` with `gracePeriodSeconds=0` once the containers are gone).

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::messages::{ApiPodMeta, StatusMsg};
use super::static_pods;
use super::types::PodKey;

struct Entry {
    uid: String,
    static_pod: bool,
    status: PodStatus,
    written: bool,
}

/// The status manager's state.
pub struct StatusManager {
    client: kube::Client,
    node: String,
    node_uid: String,
    api: HashMap<PodKey, ApiPodMeta>,
    api_synced: bool,
    statuses: HashMap<PodKey, Entry>,
    static_pods: HashMap<PodKey, Pod>,
    deletes: HashMap<PodKey, String>,
}

impl StatusManager {
    /// A status manager for `node`.
    pub fn new(client: kube::Client, node: &str, node_uid: &str) -> Self {
        Self {
            client,
            node: node.to_owned(),
            node_uid: node_uid.to_owned(),
            api: HashMap::new(),
            api_synced: false,
            statuses: HashMap::new(),
            static_pods: HashMap::new(),
            deletes: HashMap::new(),
        }
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
                self.statuses.remove(&key);
                self.deletes.insert(key, uid);
            }
            StatusMsg::Forget { key, uid } => {
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
                    && self.api.get(&pod.key).is_none_or(|old| old.uid != pod.uid)
                {
                    // A (re)created mirror pod needs the status again.
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
            delete_now(&self.pods_in(&meta.key.0), &meta.key.1, &meta.uid).await?;
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
            match self
                .pods_in(&key.0)
                .create(&PostParams::default(), &mirror)
                .await
            {
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
            let patch = json!({
                "metadata": {"uid": target.uid},
                "status": entry.status,
            });
            match Api::<Pod>::namespaced(self.client.clone(), &key.0)
                .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
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
            delete_now(&self.pods_in(&key.0), &key.1, &uid).await?;
            self.deletes.remove(&key);
        }
        Ok(())
    }

    fn pods_in(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// `DELETE` with `gracePeriodSeconds=0` and the uid as precondition; gone already is fine.
async fn delete_now(api: &Api<Pod>, name: &str, uid: &str) -> Result<(), kube::Error> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}
