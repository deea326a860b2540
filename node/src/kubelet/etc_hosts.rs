//! A pod's `/etc/hosts` as the kubelet writes it (`managedHostsFileContent` in Kubernetes'
//! `pkg/kubelet/kubelet_pods.go`): localhost, the pod's own IP under its hostname (and its
//! fully qualified name when it has a `subdomain`), then its `hostAliases`. A pod on the
//! host's network gets the host's file with its `hostAliases` after it. Every container of
//! the pod mounts it, unless it mounts something of its own at `/etc/hosts`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::paths;

/// The host's hosts file, the start of a host-network pod's.
const HOST_FILE: &str = "/etc/hosts";

/// The pod's hostname: `spec.hostname`, else its name (at most 63 characters).
pub fn pod_hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_owned()
}

/// The file's content for `pod` with address `pod_ip` (`host_file`: the host's hosts file,
/// read for a pod on the host's network).
pub fn content(pod: &Pod, pod_ip: &str, cluster_domain: &str, host_file: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut text = String::new();
    if spec.host_network.unwrap_or(false) {
        text.push_str("# Kubernetes-managed hosts file (host network).\n");
        text.push_str(host_file);
        if !host_file.is_empty() && !host_file.ends_with('\n') {
            text.push('\n');
        }
    } else {
        text.push_str(
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n",
        );
        let hostname = pod_hostname(pod);
        if !pod_ip.is_empty() {
            match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
                Some(subdomain) => {
                    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                    text.push_str(&format!(
                        "{pod_ip}\t{hostname}.{subdomain}.{namespace}.svc.{cluster_domain}\t{hostname}\n"
                    ));
                }
                None => text.push_str(&format!("{pod_ip}\t{hostname}\n")),
            }
        }
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        text.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.unwrap_or_default().join("\t");
            text.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    text
}

/// Writes the pod's hosts file into its directory under `root` and returns its path; an error
/// is the message of the pod's `CreateContainerConfigError`.
pub fn write(
    pod: &Pod,
    pod_ip: &str,
    cluster_domain: &str,
    root: &Path,
) -> Result<PathBuf, String> {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let host_file = if host_network {
        std::fs::read_to_string(HOST_FILE).unwrap_or_default()
    } else {
        String::new()
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let path = paths::pod_etc_hosts(root, uid);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(paths::pod_dir(root, uid))?;
        std::fs::write(&path, content(pod, pod_ip, cluster_domain, &host_file))
    };
    write().map_err(|err| format!("writing {}: {err}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_finds_itself_and_its_aliases() {
        let pod = pod(json!({
            "containers": [],
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}],
        }));
        let text = content(&pod, "10.244.1.7", "cluster.local", "");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.contains("\n10.244.1.7\tweb-0\n"), "{text}");
        assert!(
            text.ends_with("\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n")
        );
    }

    #[test]
    fn a_subdomain_gives_the_fully_qualified_name_first() {
        let pod = pod(json!({"containers": [], "hostname": "db", "subdomain": "backend"}));
        let text = content(&pod, "10.244.1.8", "cluster.local", "");
        assert!(
            text.contains("\n10.244.1.8\tdb.backend.shop.svc.cluster.local\tdb\n"),
            "{text}"
        );
    }

    #[test]
    fn the_host_network_keeps_the_hosts_file_of_the_host() {
        let pod = pod(json!({
            "containers": [],
            "hostNetwork": true,
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local"]}],
        }));
        let text = content(
            &pod,
            "192.0.2.2",
            "cluster.local",
            "127.0.0.1 localhost\n10.0.0.1 gw",
        );
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n10.0.0.1 gw\n\
             \n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\n"
        );
    }
}
