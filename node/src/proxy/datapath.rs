//! The eBPF data path: skiff's socket programs (`node-ebpf/`) loaded into the kernel,
//! attached to the cgroup v2 root (every process on the machine, pods included, goes through
//! them), and their maps, pinned under `/sys/fs/bpf/skiff/<node>/`.
//!
//! Several agents on one machine (`cargo xtask run --nodes N`) each attach their own programs
//! and maps (bpf_links, which attach alongside each other as `BPF_F_ALLOW_MULTI` does): the cgroup runs them in turn, the first that knows the
//! Service translates it, and the others see a pod address and leave it alone. Every agent
//! programs every Service, so one agent stopping takes nothing from the others.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuArray};
use aya::programs::{CgroupAttachMode, CgroupSockAddr, ProgramError};
use aya::sys::SyscallError;
use aya::{Ebpf, EbpfError, EbpfLoader};
use skiff_node_ebpf::{Backend, ServiceKey, ServiceValue, maps, programs};
use tracing::info;

use super::frontends::BackendAddress;
use super::table::MapWrite;

/// The programs, built by build.rs from `node-ebpf/`.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/skiff-proxy"));

/// Where bpffs is mounted.
const BPF_FS: &str = "/sys/fs/bpf";
/// Where the agent mounts cgroup v2 when the machine has no cgroup2 mount (cgroup v1 hosts).
const CGROUP2_MOUNT: &str = "/sys/fs/cgroup/unified";

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("loading the eBPF programs: {}", chain(.0))]
    Load(#[from] EbpfError),
    #[error("eBPF program {name}: {}", chain(.source))]
    Program {
        name: &'static str,
        source: ProgramError,
    },
    #[error("eBPF map {name}: {}", chain(.source))]
    Map {
        name: &'static str,
        source: MapError,
    },
    #[error("the eBPF object has no {0}")]
    Missing(&'static str),
}

/// An error and its causes, `: `-separated (aya's errors name the syscall; the cause says
/// why it failed).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

/// How big the maps are.
#[derive(Clone, Copy, Debug)]
pub struct MapSizes {
    /// Service entries and backend slots together.
    pub services: u32,
    pub backends: u32,
    /// Sockets remembered for replies and getpeername() (an LRU map).
    pub rev_nat: u32,
    /// Clients remembered for session affinity (an LRU map).
    pub affinity: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            services: 262_144,
            backends: 131_072,
            rev_nat: 262_144,
            affinity: 65_536,
        }
    }
}

/// The loaded, attached programs and the maps the agent writes.
pub struct Datapath {
    /// Owns the programs and their cgroup links: dropping it detaches them.
    _ebpf: Ebpf,
    services: BpfHashMap<MapData, ServiceKey, ServiceValue>,
    backends: BpfHashMap<MapData, u32, Backend>,
    connections: PerCpuArray<MapData, u64>,
    pin_dir: PathBuf,
}

impl Datapath {
    /// Loads the programs with their maps pinned under `/sys/fs/bpf/skiff/<node>/` (maps a
    /// previous run pinned there are taken over, entries and all) and attaches them to the
    /// cgroup v2 root.
    pub fn load(node: &str, sizes: MapSizes) -> Result<Self, DatapathError> {
        ensure_mounted(Path::new(BPF_FS), "bpf")?;
        let pin_dir = pin_dir(node);
        std::fs::create_dir_all(&pin_dir).map_err(|source| DatapathError::Io {
            context: format!("creating {}", pin_dir.display()),
            source,
        })?;
        let cgroup_root = cgroup2_root()?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&pin_dir)
            .map_max_entries(maps::SERVICES, sizes.services)
            .map_max_entries(maps::BACKENDS, sizes.backends)
            .map_max_entries(maps::REV_NAT, sizes.rev_nat)
            .map_max_entries(maps::AFFINITY, sizes.affinity)
            .map_max_entries(maps::CONNECTIONS, u32::from(u16::MAX) + 1)
            .load(PROGRAMS)?;
        let cgroup = File::open(&cgroup_root).map_err(|source| DatapathError::Io {
            context: format!("opening {}", cgroup_root.display()),
            source,
        })?;
        for name in [
            programs::CONNECT4,
            programs::SENDMSG4,
            programs::RECVMSG4,
            programs::GETPEERNAME4,
        ] {
            let program: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .ok_or(DatapathError::Missing(name))?
                .try_into()
                .map_err(|source| DatapathError::Program { name, source })?;
            program
                .load()
                .map_err(|source| DatapathError::Program { name, source })?;
            // A bpf_link (kernel 5.7+) always attaches alongside others, as BPF_F_ALLOW_MULTI
            // does; the kernel refuses the flag itself on a link.
            program
                .attach(&cgroup, CgroupAttachMode::Single)
                .map_err(|source| DatapathError::Program { name, source })?;
        }
        let services = take_map(&mut ebpf, maps::SERVICES)?;
        let backends = take_map(&mut ebpf, maps::BACKENDS)?;
        let connections = ebpf
            .take_map(maps::CONNECTIONS)
            .ok_or(DatapathError::Missing(maps::CONNECTIONS))?;
        let connections =
            PerCpuArray::try_from(connections).map_err(|source| DatapathError::Map {
                name: maps::CONNECTIONS,
                source,
            })?;
        info!(cgroup = %cgroup_root.display(), maps = %pin_dir.display(), "eBPF Service load balancing attached");
        Ok(Datapath {
            _ebpf: ebpf,
            services,
            backends,
            connections,
            pin_dir,
        })
    }

    /// Writes `writes` in order. A failed write (a full map) is returned with the writes
    /// after it not done, so the caller can say so and retry.
    pub fn apply(&mut self, writes: &[MapWrite]) -> Result<(), DatapathError> {
        for write in writes {
            let result = match write {
                MapWrite::PutBackend(id, backend) => self
                    .backends
                    .insert(id, backend_value(backend), 0)
                    .map_err(|source| (maps::BACKENDS, source)),
                MapWrite::DeleteBackend(id) => ignore_missing(self.backends.remove(id))
                    .map_err(|source| (maps::BACKENDS, source)),
                MapWrite::PutService(key, value) => self
                    .services
                    .insert(key, value, 0)
                    .map_err(|source| (maps::SERVICES, source)),
                MapWrite::DeleteService(key) => ignore_missing(self.services.remove(key))
                    .map_err(|source| (maps::SERVICES, source)),
            };
            result.map_err(|(name, source)| DatapathError::Map { name, source })?;
        }
        Ok(())
    }

    /// Removes every entry: Service entries first (a connect then finds no Service rather than
    /// half of one), then their slots, then the backends.
    pub fn clear(&mut self) -> Result<(), DatapathError> {
        let mut keys: Vec<ServiceKey> = self.services.keys().filter_map(Result::ok).collect();
        keys.sort_by_key(|key| key.backend_slot);
        let mut writes: Vec<MapWrite> = keys.into_iter().map(MapWrite::DeleteService).collect();
        writes.extend(
            self.backends
                .keys()
                .filter_map(Result::ok)
                .map(MapWrite::DeleteBackend),
        );
        self.apply(&writes)
    }

    /// Connections translated for the Service numbered `rev_nat_index`, all CPUs summed.
    pub fn connections(&self, rev_nat_index: u16) -> u64 {
        self.connections
            .get(&u32::from(rev_nat_index), 0)
            .map(|per_cpu| per_cpu.iter().fold(0u64, |sum, n| sum.saturating_add(*n)))
            .unwrap_or(0)
    }

    /// Every Service entry and slot in the live map.
    pub fn service_entries(&self) -> Vec<(ServiceKey, ServiceValue)> {
        self.services.iter().filter_map(Result::ok).collect()
    }

    /// Every backend in the live map.
    pub fn backend_entries(&self) -> Vec<(u32, Backend)> {
        self.backends.iter().filter_map(Result::ok).collect()
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }
}

/// Where node `node`'s maps are pinned.
pub fn pin_dir(node: &str) -> PathBuf {
    Path::new(BPF_FS).join("skiff").join(node)
}

fn take_map<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<BpfHashMap<MapData, K, V>, DatapathError> {
    let map = ebpf.take_map(name).ok_or(DatapathError::Missing(name))?;
    BpfHashMap::try_from(map).map_err(|source| DatapathError::Map { name, source })
}

/// A delete of a key that is not there is done already.
fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(SyscallError { io_error, .. }))
            if io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        other => other,
    }
}

pub fn backend_value(backend: &BackendAddress) -> Backend {
    Backend {
        address: u32::from(backend.address).to_be(),
        port: backend.port.to_be(),
        protocol: backend.protocol.number(),
        pad: 0,
    }
}

/// The address a `Backend` value names.
pub fn backend_address(backend: &Backend) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be(backend.address))
}

/// The cgroup v2 root: an existing cgroup2 mount, else one the agent mounts.
fn cgroup2_root() -> Result<PathBuf, DatapathError> {
    if let Some(mount) = mount_of_type("cgroup2") {
        return Ok(mount);
    }
    ensure_mounted(Path::new(CGROUP2_MOUNT), "cgroup2")?;
    Ok(PathBuf::from(CGROUP2_MOUNT))
}

/// The first mount point of filesystem type `fs_type`.
fn mount_of_type(fs_type: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == fs_type).then(|| PathBuf::from(point))
    })
}

/// Mounts a `fs_type` filesystem at `point` unless one is there.
fn ensure_mounted(point: &Path, fs_type: &str) -> Result<(), DatapathError> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").map_err(|source| DatapathError::Io {
            context: String::from("reading /proc/self/mounts"),
            source,
        })?;
    let mounted = mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        fields.next();
        fields.next() == point.to_str() && fields.next() == Some(fs_type)
    });
    if mounted {
        return Ok(());
    }
    std::fs::create_dir_all(point).map_err(|source| DatapathError::Io {
        context: format!("creating {}", point.display()),
        source,
    })?;
    let c = |s: &str| std::ffi::CString::new(s).map_err(std::io::Error::other);
    let io = |source| DatapathError::Io {
        context: format!("mounting {fs_type} at {}", point.display()),
        source,
    };
    let target = c(point.to_str().unwrap_or_default()).map_err(io)?;
    let kind = c(fs_type).map_err(io)?;
    // SAFETY: NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    info!(point = %point.display(), fs_type, "mounted");
    Ok(())
}
