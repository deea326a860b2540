//! Static pods: Pod manifests (YAML or JSON, one Pod per file) in `--manifests-dir`, run by
//! this kubelet without the scheduler and never stored as ordinary pods. The directory is
//! scanned every few seconds; a changed file is re-read, a removed one removes its pod.
//!
//! As in Kubernetes, a static pod is named `<name>-<node>` and its uid is a hash of its
//! content and node: an edited manifest is a new pod (the old one's containers go, the new
//! one's come), and a restarted agent finds the containers of an unchanged one. The API server
//! shows each as a read-only mirror pod (see the status manager). A malformed manifest is
//! logged and reported as an Event on the Node; the other manifests are unaffected.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::event_recorder::{EventType, Recorder};
use super::messages::ManagerMsg;
use super::types::{CONFIG_HASH, CONFIG_MIRROR, CONFIG_SOURCE};

/// One manifest file as last read.
struct Manifest {
    modified: Option<SystemTime>,
    len: u64,
    parsed: Result<Pod, String>,
}

/// Scans `dir` every `interval` and sends the set of static pods whenever it changes (and
/// once after the first scan). Runs until the pod manager is gone.
pub async fn watch(
    dir: PathBuf,
    node: String,
    interval: Duration,
    recorder: Recorder,
    manager: mpsc::UnboundedSender<ManagerMsg>,
) {
    let mut files: HashMap<PathBuf, Manifest> = HashMap::new();
    let mut last: Option<Vec<String>> = None;
    let mut dir_error = false;
    loop {
        match scan(&dir, &node, &mut files, &recorder).await {
            Ok(pods) => {
                dir_error = false;
                let mut uids: Vec<String> = pods.keys().cloned().collect();
                uids.sort();
                if last.as_ref() != Some(&uids) {
                    last = Some(uids);
                    if manager.send(ManagerMsg::StaticSnapshot(pods)).is_err() {
                        return;
                    }
                }
            }
            Err(err) => {
                if !dir_error {
                    warn!(dir = %dir.display(), "reading the static pod manifests: {err}");
                    dir_error = true;
                }
                // A missing directory means no static pods (it may be created later).
                if last.is_none()
                    && manager
                        .send(ManagerMsg::StaticSnapshot(HashMap::new()))
                        .is_err()
                {
                    return;
                }
                last.get_or_insert_with(Vec::new);
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Reads the directory, re-parsing only changed files (read through the agent's io_uring
/// layer); returns the static pods by uid.
async fn scan(
    dir: &Path,
    node: &str,
    files: &mut HashMap<PathBuf, Manifest>,
    recorder: &Recorder,
) -> std::io::Result<HashMap<String, Pod>> {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_manifest = [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if name.starts_with('.') || !is_manifest {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        seen.push(path.clone());
        let modified = meta.modified().ok();
        if files
            .get(&path)
            .is_some_and(|m| m.modified == modified && m.len == meta.len())
        {
            continue;
        }
        let parsed = crate::uring::read_file(&path)
            .await
            .map_err(|err| err.to_string())
            .and_then(|bytes| String::from_utf8(bytes).map_err(|err| err.to_string()))
            .and_then(|text| parse(&text, node));
        match &parsed {
            Ok(pod) => {
                info!(file = %path.display(), pod = pod.metadata.name.as_deref().unwrap_or(""), "read static pod manifest")
            }
            Err(err) => {
                warn!(file = %path.display(), "invalid static pod manifest: {err}");
                recorder.record(
                    node_ref(recorder),
                    EventType::Warning,
                    "InvalidStaticPodManifest",
                    format!("static pod manifest {}: {err}", path.display()),
                );
            }
        }
        files.insert(
            path,
            Manifest {
                modified,
                len: meta.len(),
                parsed,
            },
        );
    }
    files.retain(|path, _| seen.contains(path));

    // Two files with the same pod: the first by file name wins, as Kubernetes keeps one.
    let mut by_name: BTreeMap<&Path, &Pod> = BTreeMap::new();
    for (path, manifest) in files.iter() {
        if let Ok(pod) = &manifest.parsed {
            by_name.insert(path, pod);
        }
    }
    let mut pods: HashMap<String, Pod> = HashMap::new();
    let mut names: HashMap<(String, String), &Path> = HashMap::new();
    for (path, pod) in by_name {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        if let Some(first) = names.get(&key) {
            warn!(file = %path.display(), first = %first.display(), "duplicate static pod {}/{}; ignored", key.0, key.1);
            continue;
        }
        names.insert(key, path);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        pods.insert(uid, pod.clone());
    }
    Ok(pods)
}

fn node_ref(recorder: &Recorder) -> ObjectReference {
    recorder.node_ref()
}

/// Parses a manifest into the static pod this node runs: validated, renamed `<name>-<node>`,
/// bound to the node, with its content hash as uid.
pub fn parse(text: &str, node: &str) -> Result<Pod, String> {
    let value: serde_json::Value =
        serde_yaml::from_str(text).map_err(|err| format!("not YAML or JSON: {err}"))?;
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    let api_version = value
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .unwrap_or("");
    if kind != "Pod" || api_version != "v1" {
        return Err(format!(
            "expected apiVersion v1, kind Pod; found apiVersion {api_version:?}, kind {kind:?}"
        ));
    }
    let mut pod: Pod =
        serde_json::from_value(value).map_err(|err| format!("not a valid Pod: {err}"))?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name is required")?;
    let spec = pod.spec.as_mut().ok_or("spec is required")?;
    if spec.containers.is_empty() {
        return Err(String::from("spec.containers must not be empty"));
    }
    for container in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        if container.name.is_empty() {
            return Err(String::from("every container needs a name"));
        }
        if container.image.as_deref().unwrap_or("").is_empty() {
            return Err(format!("container {} has no image", container.name));
        }
    }
    spec.node_name = Some(node.to_owned());
    pod.metadata.name = Some(format!("{name}-{node}"));
    if pod.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        pod.metadata.namespace = Some(String::from("default"));
    }
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    pod.status = None;
    let canonical = serde_json::to_vec(&pod).map_err(|err| err.to_string())?;
    let uid = skiff_api::hash::uid(&[node.as_bytes(), b"\n", &canonical].concat());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH.to_owned(), uid.clone());
    annotations.insert(CONFIG_SOURCE.to_owned(), String::from("file"));
    pod.metadata.uid = Some(uid);
    Ok(pod)
}

/// The mirror pod to create for `static_pod`: the same pod with the mirror annotation, owned
/// by the Node, without uid or status.
pub fn mirror_pod(static_pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let hash = static_pod.metadata.uid.clone().unwrap_or_default();
    let mut annotations = static_pod.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR.to_owned(), hash);
    Pod {
        metadata: ObjectMeta {
            name: static_pod.metadata.name.clone(),
            namespace: static_pod.metadata.namespace.clone(),
            labels: static_pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: (!node_uid.is_empty()).then(|| {
                vec![OwnerReference {
                    api_version: String::from("v1"),
                    kind: String::from("Node"),
                    name: node.to_owned(),
                    uid: node_uid.to_owned(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: static_pod.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::types::{is_mirror_pod, is_static_pod, mirror_hash};

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: skiff/test-workload:1\n";

    #[test]
    fn a_manifest_becomes_a_static_pod_of_the_node() {
        let pod = parse(MANIFEST, "n1").expect("valid");
        assert!(is_static_pod(&pod));
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("n1")
        );
        let uid = pod.metadata.uid.clone().expect("uid");
        // Same content, same uid; other content or node, other uid.
        assert_eq!(
            parse(MANIFEST, "n1").expect("valid").metadata.uid,
            Some(uid.clone())
        );
        assert_ne!(
            parse(MANIFEST, "n2").expect("valid").metadata.uid,
            Some(uid.clone())
        );
        let edited = MANIFEST.replace("test-workload:1", "test-workload:2");
        assert_ne!(
            parse(&edited, "n1").expect("valid").metadata.uid,
            Some(uid.clone())
        );

        let mirror = mirror_pod(&pod, "n1", "node-uid");
        assert!(is_mirror_pod(&mirror));
        assert_eq!(mirror_hash(&mirror), Some(uid.as_str()));
        assert_eq!(mirror.metadata.uid, None);
    }

    #[test]
    fn malformed_manifests_are_rejected_with_a_reason() {
        assert!(parse("{{{", "n1").unwrap_err().contains("not YAML"));
        assert!(
            parse("apiVersion: v1\nkind: Service\n", "n1")
                .unwrap_err()
                .contains("kind Pod")
        );
        let no_containers =
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n";
        assert!(
            parse(no_containers, "n1")
                .unwrap_err()
                .contains("containers")
        );
        let no_image =
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a}]}\n";
        assert!(parse(no_image, "n1").unwrap_err().contains("no image"));
    }
}
