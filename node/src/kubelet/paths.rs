//! Where the kubelet keeps a pod's files under its root directory (as Kubernetes'
//! `kubelet_getters.go`): `<root>/pods/<uid>/` holds the pod's volumes and its containers' log
//! files, and goes with the pod.

use std::path::{Path, PathBuf};

/// The directory of every pod's directory.
pub fn pods_dir(root: &Path) -> PathBuf {
    root.join("pods")
}

/// The pod's directory on the host.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    pods_dir(root).join(uid)
}

/// The pod's volumes (`emptyDir`, `configMap`, `secret`).
pub fn pod_volumes_dir(root: &Path, uid: &str) -> PathBuf {
    pod_dir(root, uid).join("volumes")
}

/// The pod's resolv.conf, which its containers mount at /etc/resolv.conf.
pub fn pod_resolv_conf(root: &Path, uid: &str) -> PathBuf {
    pod_dir(root, uid).join("resolv.conf")
}

/// The node's seccomp profiles (`Localhost` profiles are relative to it), as the kubelet's
/// `<root-dir>/seccomp`.
pub fn seccomp_dir(root: &Path) -> PathBuf {
    root.join("seccomp")
}

/// The pod's hosts file, which its containers mount at /etc/hosts.
pub fn pod_etc_hosts(root: &Path, uid: &str) -> PathBuf {
    pod_dir(root, uid).join("etc-hosts")
}

/// The log files of one container of the pod, one per instance (restart count).
pub fn container_logs_dir(root: &Path, uid: &str, container: &str) -> PathBuf {
    pod_dir(root, uid).join("logs").join(container)
}

/// Removes the pod's directory (its volumes and log files); fine if it is gone already.
pub fn remove_pod_dir(root: &Path, uid: &str) -> std::io::Result<()> {
    match std::fs::remove_dir_all(pod_dir(root, uid)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}
