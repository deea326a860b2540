//! Pod volumes on the host, bind-mounted into the containers that mount them:
//! `emptyDir` (a directory per pod under `<root>/pods/<uid>/volumes`, shared by the pod's
//! containers and removed with the pod), `hostPath`, and `configMap` / `secret` (their keys
//! written as files). Other volume types are not supported and make the container's config
//! fail with a message.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret};
use kube::api::Api;

use super::paths;

/// Creates (or refreshes) the pod's volumes under `root_dir` (ConfigMaps and Secrets read
/// through `client`); returns their host paths by volume name.
pub async fn prepare(
    client: &kube::Client,
    root_dir: &Path,
    pod: &Pod,
) -> Result<HashMap<String, PathBuf>, String> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| String::from("default"));
    let volumes_dir = paths::pod_volumes_dir(root_dir, &uid);
    let mut paths = HashMap::new();
    let spec = pod.spec.clone().unwrap_or_default();
    for volume in spec.volumes.iter().flatten() {
        let path = if volume.empty_dir.is_some() {
            let dir = volumes_dir
                .join("kubernetes.io~empty-dir")
                .join(&volume.name);
            create_dir(&dir, 0o777)?;
            dir
        } else if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            match host.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => create_dir(&path, 0o755)?,
                "FileOrCreate" if !path.exists() => {
                    if let Some(parent) = path.parent() {
                        create_dir(parent, 0o755)?;
                    }
                    std::fs::write(&path, b"")
                        .map_err(|err| format!("creating hostPath {}: {err}", path.display()))?;
                }
                "Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice"
                    if !path.exists() =>
                {
                    return Err(format!("hostPath {} does not exist", path.display()));
                }
                _ => {}
            }
            path
        } else if let Some(source) = &volume.config_map {
            let dir = volumes_dir
                .join("kubernetes.io~configmap")
                .join(&volume.name);
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
            let found = api
                .get_opt(&source.name)
                .await
                .map_err(|err| format!("reading ConfigMap {namespace}/{}: {err}", source.name))?;
            let data = match found {
                Some(cm) => cm.data.unwrap_or_default(),
                None if source.optional.unwrap_or(false) => BTreeMap::new(),
                None => return Err(format!("configmap \"{}\" not found", source.name)),
            };
            write_keys(&dir, &data, source.items.as_deref())?;
            dir
        } else if let Some(source) = &volume.secret {
            let name = source.secret_name.clone().unwrap_or_default();
            let dir = volumes_dir.join("kubernetes.io~secret").join(&volume.name);
            let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let found = api
                .get_opt(&name)
                .await
                .map_err(|err| format!("reading Secret {namespace}/{name}: {err}"))?;
            let data = match found {
                Some(secret) => {
                    let mut data = secret.string_data.unwrap_or_default();
                    for (key, value) in secret.data.unwrap_or_default() {
                        data.insert(key, String::from_utf8_lossy(&value.0).into_owned());
                    }
                    data
                }
                None if source.optional.unwrap_or(false) => BTreeMap::new(),
                None => return Err(format!("secret \"{name}\" not found")),
            };
            write_keys(&dir, &data, source.items.as_deref())?;
            dir
        } else {
            // Unsupported types are left out: a container mounting one fails with a message.
            continue;
        };
        paths.insert(volume.name.clone(), path);
    }
    Ok(paths)
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|err| format!("setting permissions of {}: {err}", dir.display()))
}

/// Writes `data` as files (all keys, or the listed `items` to their paths).
fn write_keys(
    dir: &Path,
    data: &BTreeMap<String, String>,
    items: Option<&[KeyToPath]>,
) -> Result<(), String> {
    create_dir(dir, 0o755)?;
    let files: Vec<(String, &str)> = match items {
        Some(items) => items
            .iter()
            .filter_map(|item| data.get(&item.key).map(|v| (item.path.clone(), v.as_str())))
            .collect(),
        None => data.iter().map(|(k, v)| (k.clone(), v.as_str())).collect(),
    };
    for (path, value) in files {
        if path.split('/').any(|part| part == "..") || path.starts_with('/') {
            return Err(format!("item path {path:?} must be relative without '..'"));
        }
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            create_dir(parent, 0o755)?;
        }
        std::fs::write(&target, value)
            .map_err(|err| format!("writing {}: {err}", target.display()))?;
    }
    Ok(())
}
