//! Facts about this machine that the Node object reports: CPUs, memory, disk, addresses and
//! `nodeInfo` (kernel, OS image, machine and boot ids).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// What the Node reports about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// Usable CPUs.
    pub cpus: u64,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Size of the filesystem holding the agent's root directory, in bytes.
    pub ephemeral_storage_bytes: Option<u64>,
    /// The address other nodes and the master reach this node at.
    pub internal_ip: IpAddr,
    /// The machine's hostname.
    pub hostname: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of /etc/os-release.
    pub os_image: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// The SMBIOS product uuid, else the machine id.
    pub system_uuid: String,
    /// This boot's id.
    pub boot_id: String,
    /// Kubernetes' name for the CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
}

impl NodeFacts {
    /// Reads the facts (the files through the agent's io_uring layer); `node_ip` overrides
    /// the detected internal address.
    pub async fn gather(root_dir: &Path, node_ip: Option<IpAddr>) -> Self {
        let read = async |path: &str| {
            crate::uring::read_file(path)
                .await
                .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
                .unwrap_or_default()
        };
        let machine_id = read("/etc/machine-id").await;
        let product_uuid = read("/sys/class/dmi/id/product_uuid").await;
        let meminfo = read("/proc/meminfo").await;
        let hostname = read("/proc/sys/kernel/hostname").await;
        let kernel_version = read("/proc/sys/kernel/osrelease").await;
        let os_release = read("/etc/os-release").await;
        let boot_id = read("/proc/sys/kernel/random/boot_id").await;
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_bytes: meminfo_total(&meminfo).unwrap_or(0),
            ephemeral_storage_bytes: filesystem_size(root_dir),
            internal_ip: internal_ip(node_ip),
            hostname,
            kernel_version,
            os_image: os_release_name(&os_release),
            system_uuid: if product_uuid.is_empty() {
                machine_id.clone()
            } else {
                product_uuid
            },
            machine_id,
            boot_id,
            architecture: architecture(),
        }
    }
}

/// Kubernetes' name for this machine's CPU architecture (`amd64`, `arm64`).
pub fn architecture() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
    .to_owned()
}

/// `MemTotal` of /proc/meminfo in bytes.
fn meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `PRETTY_NAME` of an os-release file.
fn os_release_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| String::from("Linux"))
}

/// Size of the filesystem at `path` (or its nearest existing parent).
fn filesystem_size(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs only writes into the zeroed struct we own; the path is NUL-terminated.
    unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        Some(stat.f_blocks as u64 * stat.f_frsize as u64)
    }
}

/// The node's address: `node_ip` when given, else the detected one, else loopback.
pub fn internal_ip(node_ip: Option<IpAddr>) -> IpAddr {
    node_ip
        .or_else(|| skiff_api::host::internal_ipv4().map(IpAddr::V4))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_and_os_release() {
        assert_eq!(
            meminfo_total("MemTotal:       24684312 kB\nMemFree: 1 kB\n"),
            Some(24684312 * 1024)
        );
        assert_eq!(
            os_release_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }

    #[test]
    fn gathers_something_sensible_here() {
        let facts = crate::uring::block_on(NodeFacts::gather(Path::new("/"), None));
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0);
        assert!(!facts.kernel_version.is_empty());
    }
}
