//! The node's own network namespaces: the host's and its pods', by cookie, in the pinned
//! `NODE_NETNS` map. The socket hooks translate a NodePort only for a client in one of these;
//! a client in any other namespace is outside the node (on one machine, the stand-in for
//! another host), and its packets meet the NodePort TC programs on the node's devices instead.
//!
//! The datapath puts the host's namespace in when it loads; the runtime adds a pod's when its
//! sandbox starts and takes it out when the sandbox is removed (as a CNI plugin tells Cilium's
//! agent about an endpoint), and at start keeps exactly the host's and the running sandboxes'.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use skiff_node_ebpf::maps;
use tracing::warn;

use super::datapath::{self, DatapathError};

/// The namespaces' map of one node, and which sandbox each pod's cookie came from.
pub struct NodeNetns {
    map: Mutex<BpfHashMap<MapData, u64, u8>>,
    host: u64,
    sandboxes: Mutex<HashMap<String, PodNetns>>,
}

/// A pod's namespace: its cookie, and the sandbox process that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodNetns {
    pub cookie: u64,
    pub pid: u32,
}

impl NodeNetns {
    /// Opens node `node`'s pinned map (the datapath made it when it loaded).
    pub fn open(node: &str) -> Result<Self, DatapathError> {
        let name = maps::NODE_NETNS;
        let map_error = |source| DatapathError::Map { name, source };
        let path = datapath::pin_dir(node).join(name);
        let data = MapData::from_pin(&path).map_err(map_error)?;
        let map = Map::from_map_data(data).map_err(map_error)?;
        let map = BpfHashMap::try_from(map).map_err(map_error)?;
        let host = own_cookie().map_err(|source| DatapathError::Io {
            context: String::from("reading the host network namespace's cookie"),
            source,
        })?;
        Ok(NodeNetns {
            map: Mutex::new(map),
            host,
            sandboxes: Mutex::new(HashMap::new()),
        })
    }

    /// Adds the namespace of sandbox `id`, whose process is `pid` (a sandbox in the host's
    /// namespace adds nothing: the host's is in for good).
    pub fn add_pod(&self, id: &str, pid: u32) -> io::Result<()> {
        let cookie = cookie_of(pid)?;
        if cookie == self.host {
            return Ok(());
        }
        insert(&mut lock(&self.map), cookie)?;
        lock(&self.sandboxes).insert(id.to_owned(), PodNetns { cookie, pid });
        Ok(())
    }

    /// Takes sandbox `id`'s namespace out (nothing if it never was in).
    pub fn remove_pod(&self, id: &str) {
        let Some(pod) = lock(&self.sandboxes).remove(id) else {
            return;
        };
        let _ = lock(&self.map).remove(&pod.cookie);
    }

    /// The pods' namespaces known to this run.
    pub fn pods(&self) -> Vec<PodNetns> {
        lock(&self.sandboxes).values().copied().collect()
    }

    /// Keeps exactly the host's namespace and those of `running` sandboxes (id, pid): what an
    /// earlier run added for sandboxes gone since goes. The running ones are added before
    /// anything is removed.
    pub fn retain_pods(&self, running: &[(String, u32)]) {
        let mut keep = vec![self.host];
        for (id, pid) in running {
            match self.add_pod(id, *pid) {
                Ok(()) => keep.extend(lock(&self.sandboxes).get(id).map(|pod| pod.cookie)),
                Err(err) => warn!(sandbox = %id, "adding the pod's network namespace: {err}"),
            }
        }
        let mut map = lock(&self.map);
        let stale: Vec<u64> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|cookie| !keep.contains(cookie))
            .collect();
        for cookie in stale {
            let _ = map.remove(&cookie);
        }
    }
}

/// Puts the host's namespace (the agent's own) into a freshly loaded `NODE_NETNS` map.
pub(super) fn add_host(map: &mut BpfHashMap<MapData, u64, u8>) -> io::Result<()> {
    insert(map, own_cookie()?)
}

fn insert(map: &mut BpfHashMap<MapData, u64, u8>, cookie: u64) -> io::Result<()> {
    map.insert(cookie, 1, 0).map_err(io::Error::other)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked between two map calls.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The cookie of the calling thread's network namespace (`SO_NETNS_COOKIE`, kernel 5.14+).
pub(super) fn own_cookie() -> io::Result<u64> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    let mut cookie = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: the socket is open for the call; cookie and len are valid for the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    match rc {
        0 => Ok(cookie),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The cookie of process `pid`'s network namespace.
fn cookie_of(pid: u32) -> io::Result<u64> {
    crate::netns::in_namespace_of(pid, own_cookie)
}
