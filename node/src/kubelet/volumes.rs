//! Pod volumes on the host, bind-mounted into the containers that mount them:
//! `emptyDir` (a directory per pod under `<root>/pods/<uid>/volumes`, shared by the pod's
//! containers and removed with the pod), `hostPath`, and `configMap` / `secret` (their keys
//! written as files). Other volume types are not supported and make the container's config
//! fail with a message.
//!
//! `configMap` and `secret` volumes are written as the kubelet's `AtomicWriter` writes them:
//! the files go into a fresh payload directory `..<time>`, the `..data` symlink is swapped to it
//! by one rename, and each top-level name is a symlink into `..data`, so a container sees the
//! old set or the new one, never half of each. Files are created new (`O_EXCL`, which follows
//! no symlink) in the payload directory the agent just made, and the volume is mounted
//! read-only, so nothing a container does can send a write elsewhere. `items` and
//! `defaultMode` (and an item's `mode`) are honoured; a running pod's volumes are refreshed
//! on each of its syncs, so a change to the ConfigMap or Secret shows within the resync
//! period.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use kube::api::Api;

use super::paths;
use super::sync_pod::SyncContext;

/// The mode of a configMap or secret file without `defaultMode`.
const DEFAULT_FILE_MODE: i32 = 0o644;

/// A pod volume on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostVolume {
    pub path: PathBuf,
    /// Mounted read-only whatever the mount asks (configMap and secret, as the kubelet does).
    pub read_only: bool,
}

/// Whether the pod has volumes whose contents come from the API (refreshed on each sync).
pub fn has_api_data(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .any(has_api_source)
}

/// Whether the volume's contents come from the API (written by the agent, mounted read-only).
fn has_api_source(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

/// The data of ConfigMap `namespace/name` (`data` and `binaryData`); empty when it is missing
/// and `optional`.
async fn config_map_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    object_data(client, namespace, name, optional, |cm: ConfigMap| {
        merged(cm.data, cm.binary_data)
    })
    .await
}

/// The data of Secret `namespace/name`; empty when it is missing and `optional`.
async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    object_data(client, namespace, name, optional, |secret: Secret| {
        merged(secret.string_data, secret.data)
    })
    .await
}

/// `data` of object `namespace/name` of kind `K`; empty when it is missing and `optional`.
async fn object_data<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    optional: bool,
    data: impl FnOnce(K) -> BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Vec<u8>>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let kind = K::kind(&());
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let found = api
        .get_opt(name)
        .await
        .map_err(|err| format!("reading {kind} {namespace}/{name}: {err}"))?;
    match found {
        Some(object) => Ok(data(object)),
        None if optional => Ok(BTreeMap::new()),
        None => Err(format!("{} \"{name}\" not found", kind.to_lowercase())),
    }
}

/// String values and byte values as one map of bytes (a byte value wins a shared key).
fn merged(
    strings: Option<BTreeMap<String, String>>,
    bytes: Option<BTreeMap<String, ByteString>>,
) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = strings
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    data.extend(bytes.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
    data
}

/// The files of downwardAPI `items`.
fn downward_files(
    pod: &Pod,
    node: (u64, u64),
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Result<BTreeMap<String, File>, String> {
    let mut files = BTreeMap::new();
    for item in items {
        check_item_path(&item.path)?;
        let value = downward_value(pod, node, item)?;
        let mode = file_mode(item.mode, default_mode);
        files.insert(item.path.clone(), (value.into_bytes(), mode));
    }
    Ok(files)
}

/// Creates (or refreshes) the pod's volumes under the agent's directory (ConfigMaps and
/// Secrets read through its client); returns them by volume name.
pub async fn prepare<R>(
    ctx: &SyncContext<R>,
    pod: &Pod,
) -> Result<HashMap<String, HostVolume>, String> {
    let (client, root_dir) = (&ctx.client, ctx.root_dir.as_path());
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
            // A path that exists keeps its permissions (the kubelet makes only what is missing).
            match host.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" if !path.exists() => create_dir(&path, 0o755)?,
                "FileOrCreate" if !path.exists() => {
                    if let Some(parent) = path.parent().filter(|p| !p.exists()) {
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
            let optional = source.optional.unwrap_or(false);
            let data = config_map_data(client, &namespace, &source.name, optional).await?;
            let files = files(
                &data,
                source.items.as_deref(),
                source.default_mode,
                optional,
            )?;
            write_atomically(&dir, &files)?;
            dir
        } else if let Some(source) = &volume.secret {
            let name = source.secret_name.clone().unwrap_or_default();
            let dir = volumes_dir.join("kubernetes.io~secret").join(&volume.name);
            let optional = source.optional.unwrap_or(false);
            let data = secret_data(client, &namespace, &name, optional).await?;
            let files = files(
                &data,
                source.items.as_deref(),
                source.default_mode,
                optional,
            )?;
            write_atomically(&dir, &files)?;
            dir
        } else if let Some(source) = &volume.downward_api {
            let dir = volumes_dir
                .join("kubernetes.io~downward-api")
                .join(&volume.name);
            let node = (ctx.node_cpus, ctx.node_memory_bytes);
            let items = source.items.as_deref().unwrap_or_default();
            let files = downward_files(pod, node, items, source.default_mode)?;
            write_atomically(&dir, &files)?;
            dir
        } else if let Some(source) = &volume.projected {
            let dir = volumes_dir
                .join("kubernetes.io~projected")
                .join(&volume.name);
            let mut projected = BTreeMap::new();
            for projection in source.sources.iter().flatten() {
                let default_mode = source.default_mode;
                if let Some(cm) = &projection.config_map {
                    let optional = cm.optional.unwrap_or(false);
                    let data = config_map_data(client, &namespace, &cm.name, optional).await?;
                    projected.extend(files(&data, cm.items.as_deref(), default_mode, optional)?);
                } else if let Some(secret) = &projection.secret {
                    let optional = secret.optional.unwrap_or(false);
                    let data = secret_data(client, &namespace, &secret.name, optional).await?;
                    projected.extend(files(
                        &data,
                        secret.items.as_deref(),
                        default_mode,
                        optional,
                    )?);
                } else if let Some(downward) = &projection.downward_api {
                    let node = (ctx.node_cpus, ctx.node_memory_bytes);
                    let items = downward.items.as_deref().unwrap_or_default();
                    projected.extend(downward_files(pod, node, items, default_mode)?);
                } else if let Some(token) = &projection.service_account_token {
                    check_item_path(&token.path)?;
                    let audience = token.audience.as_deref().unwrap_or("");
                    let expiration = token.expiration_seconds.unwrap_or(3600);
                    let token_text = ctx.tokens.token(client, pod, audience, expiration).await?;
                    let mode = file_mode(None, default_mode);
                    projected.insert(token.path.clone(), (token_text.into_bytes(), mode));
                } else {
                    return Err(format!(
                        "projected volume {}: only configMap, secret, downwardAPI and serviceAccountToken sources are supported (clusterTrustBundle is not)",
                        volume.name
                    ));
                }
            }
            write_atomically(&dir, &projected)?;
            dir
        } else {
            // Unsupported types are left out: a container mounting one fails with a message.
            continue;
        };
        let read_only = has_api_source(volume);
        paths.insert(volume.name.clone(), HostVolume { path, read_only });
    }
    Ok(paths)
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|err| format!("setting permissions of {}: {err}", dir.display()))
}

/// A file of an API data volume: its bytes and mode.
type File = (Vec<u8>, u32);

/// The files of `data` (all keys, or the listed `items` at their paths) with their modes. An
/// item naming a key `data` lacks is an error unless the source is `optional`.
fn files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<BTreeMap<String, File>, String> {
    let mode = |m: Option<i32>| file_mode(m, default_mode);
    let chosen: Vec<(String, &Vec<u8>, u32)> = match items {
        Some(items) => {
            let mut chosen = Vec::new();
            for item in items {
                match data.get(&item.key) {
                    Some(value) => chosen.push((item.path.clone(), value, mode(item.mode))),
                    None if optional => {}
                    None => {
                        return Err(format!("references non-existent config key: {}", item.key));
                    }
                }
            }
            chosen
        }
        None => data
            .iter()
            .map(|(k, v)| (k.clone(), v, mode(None)))
            .collect(),
    };
    let mut files = BTreeMap::new();
    for (path, value, mode) in chosen {
        check_item_path(&path)?;
        files.insert(path, (value.clone(), mode));
    }
    Ok(files)
}

/// A file's mode: the item's, else the volume's `defaultMode`, else 0644.
fn file_mode(item: Option<i32>, default_mode: Option<i32>) -> u32 {
    (item.unwrap_or(default_mode.unwrap_or(DEFAULT_FILE_MODE)) & 0o777) as u32
}

/// An item's path is relative, has no empty, `..` or `..`-prefixed part (those are the
/// writer's own names).
fn check_item_path(path: &str) -> Result<(), String> {
    let bad = path.starts_with('/')
        || path
            .split('/')
            .any(|part| part.is_empty() || part.starts_with(".."));
    match bad {
        true => Err(format!(
            "item path {path:?} must be relative, without '..' and not start with '..'"
        )),
        false => Ok(()),
    }
}

/// A downwardAPI item's contents: a `fieldRef` of the pod's metadata (whole `labels` and
/// `annotations` as `key="value"` lines, sorted, as the kubelet writes them) or a
/// `resourceFieldRef` of one of its containers.
fn downward_value(
    pod: &Pod,
    node: (u64, u64),
    item: &DownwardAPIVolumeFile,
) -> Result<String, String> {
    if let Some(field) = &item.field_ref {
        let lines = |map: &Option<BTreeMap<String, String>>| {
            map.iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        return match field.field_path.as_str() {
            "metadata.labels" => Ok(lines(&pod.metadata.labels)),
            "metadata.annotations" => Ok(lines(&pod.metadata.annotations)),
            path if path.starts_with("metadata.") => {
                super::container_config::field_value(pod, "", "", path)
            }
            path => Err(format!(
                "downwardAPI volume item {}: unsupported fieldRef {path}",
                item.path
            )),
        };
    }
    if let Some(resource) = &item.resource_field_ref {
        let wanted = resource.container_name.as_deref().unwrap_or("");
        let container = pod
            .spec
            .iter()
            .flat_map(|spec| spec.containers.iter())
            .find(|c| c.name == wanted)
            .ok_or_else(|| {
                format!(
                    "downwardAPI volume item {}: no container {wanted:?}",
                    item.path
                )
            })?;
        return super::container_config::resource_value(
            node,
            container,
            &resource.resource,
            resource.divisor.as_ref(),
        );
    }
    Err(format!(
        "downwardAPI volume item {} names neither a fieldRef nor a resourceFieldRef",
        item.path
    ))
}

/// Writes `files` into `dir` as the kubelet's `AtomicWriter` does (see the module docs);
/// nothing when the current payload has exactly them.
fn write_atomically(dir: &Path, files: &BTreeMap<String, File>) -> Result<(), String> {
    let fail =
        |what: &str, path: &Path, err: std::io::Error| format!("{what} {}: {err}", path.display());
    // The volume directory itself is the agent's: anything else there is replaced.
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => std::fs::remove_file(dir).map_err(|e| fail("removing", dir, e))?,
        Err(_) => {}
    }
    create_dir(dir, 0o755)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link)
        && payload_matches(&dir.join(current), files)
    {
        return Ok(());
    }
    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let payload = dir.join(&stamp);
    std::fs::create_dir(&payload).map_err(|e| fail("creating", &payload, e))?;
    for (path, (bytes, mode)) in files {
        let target = payload.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("creating", parent, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(*mode)
            .open(&target)
            .map_err(|e| fail("creating", &target, e))?;
        file.write_all(bytes)
            .map_err(|e| fail("writing", &target, e))?;
        // The process umask may have narrowed the mode asked for.
        file.set_permissions(std::fs::Permissions::from_mode(*mode))
            .map_err(|e| fail("setting the mode of", &target, e))?;
    }
    // Swap `..data` in one rename.
    let next_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&next_link);
    std::os::unix::fs::symlink(&stamp, &next_link).map_err(|e| fail("linking", &next_link, e))?;
    std::fs::rename(&next_link, &data_link).map_err(|e| fail("renaming", &data_link, e))?;
    // The visible names: one symlink into `..data` per top-level name; the rest goes.
    let top: BTreeSet<&str> = files
        .keys()
        .filter_map(|path| path.split('/').next())
        .collect();
    let entries = std::fs::read_dir(dir).map_err(|e| fail("reading", dir, e))?;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let keep = match name.as_str() {
            "..data" => true,
            _ if name == stamp => true,
            _ if name.starts_with("..") => false,
            _ => top.contains(name.as_str()) && is_link_to_data(&path, &name),
        };
        if !keep {
            remove_entry(&path).map_err(|e| fail("removing", &path, e))?;
        }
    }
    for name in top {
        let link = dir.join(name);
        if !is_link_to_data(&link, name) {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)
                .map_err(|e| fail("linking", &link, e))?;
        }
    }
    Ok(())
}

/// Whether the payload directory holds exactly `files` (regular files, same bytes and mode).
fn payload_matches(payload: &Path, files: &BTreeMap<String, File>) -> bool {
    let mut found = 0;
    let mut pending = vec![payload.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return false;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                return false;
            };
            if meta.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let relative = entry.path();
            let Ok(relative) = relative.strip_prefix(payload) else {
                return false;
            };
            let Some((bytes, mode)) = files.get(relative.to_string_lossy().as_ref()) else {
                return false;
            };
            if !meta.is_file()
                || meta.permissions().mode() & 0o777 != *mode
                || std::fs::read(entry.path()).ok().as_ref() != Some(bytes)
            {
                return false;
            }
            found += 1;
        }
    }
    found == files.len()
}

/// Whether `path` is the symlink `..data/<name>`.
fn is_link_to_data(path: &Path, name: &str) -> bool {
    std::fs::read_link(path).is_ok_and(|target| target == Path::new("..data").join(name))
}

/// Removes a file, symlink (not what it names) or directory tree.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path)?.is_dir() {
        true => std::fs::remove_dir_all(path),
        false => std::fs::remove_file(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_volume_is_symlinks_into_the_current_payload_and_an_update_swaps_it_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("config");
        let first = files(&data(&[("a", "1"), ("b", "2")]), None, None, false).unwrap();
        write_atomically(&dir, &first).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert!(is_link_to_data(&dir.join("a"), "a"));
        let payload = std::fs::read_link(dir.join("..data")).unwrap();
        let mode = std::fs::metadata(dir.join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);

        // The same content writes nothing new.
        write_atomically(&dir, &first).unwrap();
        assert_eq!(std::fs::read_link(dir.join("..data")).unwrap(), payload);

        // An update: a new payload, `b` gone, `c` there, the old payload removed.
        let second = files(&data(&[("a", "10"), ("c", "3")]), None, Some(0o400), false).unwrap();
        write_atomically(&dir, &second).unwrap();
        assert_ne!(std::fs::read_link(dir.join("..data")).unwrap(), payload);
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "10");
        assert!(!dir.join("b").exists() && std::fs::symlink_metadata(dir.join("b")).is_err());
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert!(!dir.join(&payload).exists(), "the old payload is gone");
        let mode = std::fs::metadata(dir.join("c"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
    }

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("config");
        let outside = root.path().join("outside");
        std::fs::write(&outside, "untouched").unwrap();
        // What an earlier agent's read-write volume let a container leave behind.
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("a")).unwrap();
        write_atomically(
            &dir,
            &files(&data(&[("a", "new")]), None, None, false).unwrap(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "new");
    }

    #[test]
    fn items_choose_keys_paths_and_modes_and_bad_paths_are_refused() {
        let items = vec![KeyToPath {
            key: String::from("a"),
            path: String::from("sub/renamed"),
            mode: Some(0o600),
        }];
        let chosen = files(&data(&[("a", "1"), ("b", "2")]), Some(&items), None, false).unwrap();
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen["sub/renamed"], (b"1".to_vec(), 0o600));
        for bad in ["../x", "/etc/x", "..data/x", "a//b"] {
            let items = vec![KeyToPath {
                key: String::from("a"),
                path: bad.to_owned(),
                mode: None,
            }];
            assert!(
                files(&data(&[("a", "1")]), Some(&items), None, false).is_err(),
                "{bad}"
            );
        }
        // A missing key is an error, unless the source is optional.
        let missing = vec![KeyToPath {
            key: String::from("gone"),
            path: String::from("gone"),
            mode: None,
        }];
        let err = files(&data(&[("a", "1")]), Some(&missing), None, false).unwrap_err();
        assert_eq!(err, "references non-existent config key: gone");
        let none = files(&data(&[("a", "1")]), Some(&missing), None, true).unwrap();
        assert!(none.is_empty());
    }
}
