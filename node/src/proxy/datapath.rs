//! The eBPF data path: skiff's socket programs (`node-ebpf/`) loaded into the kernel,
//! attached to the cgroup v2 root (every process on the machine, pods included, goes through
//! them), and their maps, pinned under `/sys/fs/bpf/skiff/<node>/`.
//!
//! The links are pinned too, as kube-proxy's rules and Cilium's programs outlive their agent:
//! Service traffic keeps flowing while the agent is stopped or restarting, and a restarted
//! agent replaces the programs (new attached before old detached) and takes the maps over.
//! `skiff-node proxy cleanup` (kube-proxy's `--cleanup`) detaches and removes it all.
//!
//! NodePort traffic from clients outside the node goes through TC programs (tcx links) on the
//! node's devices, those that carry its addresses (or `--devices`): their links are pinned
//! beside the others, one per program and device.
//!
//! Several agents on one machine (`cargo xtask run --nodes N`) each attach their own programs
//! and maps (bpf_links, which attach alongside each other as `BPF_F_ALLOW_MULTI` does): the cgroup runs them in turn, the first that knows the
//! Service translates it, and the others see a pod address and leave it alone. Every agent
//! programs every Service, so one agent stopping takes nothing from the others.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{
    CgroupAttachMode, CgroupSockAddr, Program, ProgramError, SchedClassifier, TcAttachType,
};
use aya::sys::SyscallError;
use aya::{Ebpf, EbpfError, EbpfLoader};
use skiff_node_ebpf::{Backend, ServiceKey, ServiceValue, maps, programs};
use tracing::{info, warn};

use super::frontends::{BackendAddress, Protocol};
use super::table::MapWrite;

/// The programs, built by build.rs from `node-ebpf/`.
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/skiff-proxy"));

/// The programs, each attached to the cgroup hook of its name.
const PROGRAMS_AND_HOOKS: [&str; 4] = [
    programs::CONNECT4,
    programs::SENDMSG4,
    programs::RECVMSG4,
    programs::GETPEERNAME4,
];

/// The TC programs, each attached to this side of every NodePort device.
const TC_PROGRAMS: [(&str, TcAttachType); 2] = [
    (programs::NODEPORT_INGRESS, TcAttachType::Ingress),
    (programs::NODEPORT_EGRESS, TcAttachType::Egress),
];

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
    #[error("eBPF link of {name}: {reason}")]
    Link { name: &'static str, reason: String },
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
    /// NodePort flows of clients outside the node, two entries each (an LRU map).
    pub nodeport_flows: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            services: 262_144,
            backends: 131_072,
            rev_nat: 262_144,
            affinity: 65_536,
            nodeport_flows: 262_144,
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
    /// previous run pinned there are taken over, entries and all), attaches the socket
    /// programs to the cgroup v2 root and the NodePort TC programs to `devices`.
    pub fn load(node: &str, sizes: MapSizes, devices: &[String]) -> Result<Self, DatapathError> {
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
            .map_max_entries(maps::NODEPORT_FLOWS, sizes.nodeport_flows)
            .load(PROGRAMS)?;
        let cgroup = File::open(&cgroup_root).map_err(|source| DatapathError::Io {
            context: format!("opening {}", cgroup_root.display()),
            source,
        })?;
        for name in PROGRAMS_AND_HOOKS {
            let program: &mut CgroupSockAddr = program(&mut ebpf, name)?;
            program
                .load()
                .map_err(|source| DatapathError::Program { name, source })?;
            // A bpf_link (kernel 5.7+) always attaches alongside others, as BPF_F_ALLOW_MULTI
            // does; the kernel refuses the flag itself on a link.
            let link_id = program
                .attach(&cgroup, CgroupAttachMode::Single)
                .map_err(|source| DatapathError::Program { name, source })?;
            let link = program
                .take_link(link_id)
                .map_err(|source| DatapathError::Program { name, source })?;
            let link = FdLink::try_from(link).map_err(|err| DatapathError::Link {
                name,
                reason: err.to_string(),
            })?;
            pin_replacing(link, &link_pin(&pin_dir, name), name)?;
        }
        attach_to_devices(&mut ebpf, &pin_dir, devices)?;
        // The host's namespace is the node's (taken out once every program is loaded: they
        // hold the map by the descriptor this closes). A restart finds it in the adopted map
        // already; on a first start no Service is programmed yet.
        let mut node_netns = take_map(&mut ebpf, maps::NODE_NETNS)?;
        super::node_netns::add_host(&mut node_netns).map_err(|source| DatapathError::Io {
            context: String::from("adding the host network namespace to NODE_NETNS"),
            source,
        })?;
        drop(node_netns);
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

    /// Backend `id` as the live map has it.
    pub fn backend(&self, id: u32) -> Option<BackendAddress> {
        let backend = self.backends.get(&id, 0).ok()?;
        Some(BackendAddress {
            address: backend_address(&backend),
            port: u16::from_be(backend.port),
            protocol: Protocol::from_number(backend.protocol)?,
        })
    }

    /// Every backend in the live map (those of a protocol the agent never writes left out).
    pub fn backend_entries(&self) -> Vec<(u32, BackendAddress)> {
        self.backends
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(id, backend)| {
                Some((
                    id,
                    BackendAddress {
                        address: backend_address(&backend),
                        port: u16::from_be(backend.port),
                        protocol: Protocol::from_number(backend.protocol)?,
                    },
                ))
            })
            .collect()
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }
}

/// Attaches the NodePort TC programs to both sides of each of `devices` and unpins those of
/// devices an earlier run used and this one does not.
fn attach_to_devices(
    ebpf: &mut Ebpf,
    pin_dir: &Path,
    devices: &[String],
) -> Result<(), DatapathError> {
    let mut pinned = Vec::new();
    for (name, attach_type) in TC_PROGRAMS {
        let program: &mut SchedClassifier = program(ebpf, name)?;
        program
            .load()
            .map_err(|source| DatapathError::Program { name, source })?;
        for device in devices {
            // tcx (kernel 6.6+): a bpf_link beside other programs on the device, no qdisc.
            let link_id = program
                .attach(device, attach_type)
                .map_err(|source| DatapathError::Program { name, source })?;
            let link = program
                .take_link(link_id)
                .map_err(|source| DatapathError::Program { name, source })?;
            let link = FdLink::try_from(link).map_err(|err| DatapathError::Link {
                name,
                reason: format!("on {device} (a tcx link needs kernel 6.6 or later): {err}"),
            })?;
            let pin = device_link_pin(pin_dir, name, device);
            pin_replacing(link, &pin, name)?;
            pinned.push(pin);
        }
    }
    for pin in device_link_pins(pin_dir) {
        if !pinned.contains(&pin) {
            unpin_link(&pin);
        }
    }
    if !devices.is_empty() {
        info!(?devices, "NodePort TC programs attached");
    }
    Ok(())
}

/// Pins `link` at `pin`, where the previous run's link of the program may be: that one stays
/// attached until this one is (both translate from the same maps, so nothing in between
/// misses), then goes.
fn pin_replacing(link: FdLink, pin: &Path, name: &'static str) -> Result<(), DatapathError> {
    if pin.exists() {
        unpin_link(pin);
        let _ = std::fs::remove_file(pin);
    }
    link.pin(pin).map_err(|err| DatapathError::Link {
        name,
        reason: format!("pinning at {}: {err}", pin.display()),
    })?;
    Ok(())
}

/// Unpins the link pinned at `pin`: its last reference goes, the program is detached.
fn unpin_link(pin: &Path) {
    match PinnedLink::from_pin(pin) {
        Ok(old) => drop(old.unpin()),
        Err(err) => warn!(pin = %pin.display(), "an earlier link: {err}"),
    }
}

fn link_pin(pin_dir: &Path, program: &str) -> PathBuf {
    pin_dir.join(format!("link_{program}"))
}

/// The pin of TC program `program`'s link on `device` (interface names have no `/`).
fn device_link_pin(pin_dir: &Path, program: &str, device: &str) -> PathBuf {
    pin_dir.join(format!("link_{program}_dev_{device}"))
}

/// Every TC link pinned in `pin_dir`.
fn device_link_pins(pin_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(pin_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    TC_PROGRAMS
                        .iter()
                        .any(|(program, _)| name.starts_with(&format!("link_{program}_dev_")))
                })
        })
        .collect()
}

/// Detaches node `node`'s programs and removes its maps: what `skiff-node proxy cleanup` does
/// once the agent is stopped. Nothing pinned is not an error.
pub fn cleanup(node: &str) -> Result<(), DatapathError> {
    let dir = pin_dir(node);
    if !dir.exists() {
        return Ok(());
    }
    let pins = PROGRAMS_AND_HOOKS
        .iter()
        .map(|name| link_pin(&dir, name))
        .chain(device_link_pins(&dir));
    for pin in pins {
        if let Ok(link) = PinnedLink::from_pin(&pin) {
            // Unpinned and dropped: the last reference goes, the program is detached.
            drop(link.unpin());
        }
    }
    std::fs::remove_dir_all(&dir).map_err(|source| DatapathError::Io {
        context: format!("removing {}", dir.display()),
        source,
    })
}

/// The eBPF programs in the kernel that use node `node`'s pinned maps, as `(id, name)` with
/// the names as `bpftool prog` lists them: this agent's programs, not those of the other
/// agents on the machine. Taken while the maps are pinned; [`still_loaded`] checks on them
/// after the maps are gone.
pub fn node_programs(node: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir(pin_dir(node)) else {
        return Vec::new();
    };
    let map_ids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with("link_"))
        .filter_map(|entry| MapData::from_pin(entry.path()).ok())
        .filter_map(|map| map.info().ok())
        .map(|info| info.id())
        .collect();
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|info| {
            info.map_ids()
                .ok()
                .flatten()
                .is_some_and(|ids| ids.iter().any(|id| map_ids.contains(id)))
        })
        .map(|info| (info.id(), info.name_as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Which of `programs` (from [`node_programs`]) are still loaded in the kernel.
pub fn still_loaded(programs: &[(u32, String)]) -> Vec<(u32, String)> {
    let loaded: Vec<u32> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|info| info.id())
        .collect();
    programs
        .iter()
        .filter(|(id, _)| loaded.contains(id))
        .cloned()
        .collect()
}

/// Where node `node`'s maps are pinned.
pub fn pin_dir(node: &str) -> PathBuf {
    Path::new(BPF_FS).join("skiff").join(node)
}

/// Program `name` of the object, as its kind.
fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, DatapathError>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(DatapathError::Missing(name))?
        .try_into()
        .map_err(|source| DatapathError::Program { name, source })
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
