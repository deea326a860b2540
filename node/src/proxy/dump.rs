//! `skiff-node proxy dump`: every frontend with its backends and connection count, read from
//! the live (pinned) maps, as the programs see them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use aya::maps::{HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray};
use skiff_node_ebpf::{Backend, SERVICE_SLOT, ServiceKey, ServiceValue, maps};

use super::datapath::{self, DatapathError};
use super::frontends::Protocol;

/// One frontend as the live maps have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendView {
    pub address: Ipv4Addr,
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
    /// The Service's number in the maps.
    pub service: u16,
    /// Connections (and unconnected UDP sends) translated, all CPUs summed.
    pub connections: u64,
    /// `sessionAffinity: ClientIP` timeout, if set.
    pub affinity_timeout_s: Option<u32>,
    /// `address:port` of each backend slot, in slot order (`None`: the slot is missing).
    pub backends: Vec<Option<String>>,
}

impl FrontendView {
    /// `10.96.0.10:53/UDP`.
    pub fn name(&self) -> String {
        format!("{}:{}/{}", self.address, self.port, self.protocol)
    }
}

/// The frontends pinned under `/sys/fs/bpf/skiff/<node>/`, sorted by address, port and
/// protocol.
pub fn read(node: &str) -> Result<Vec<FrontendView>, DatapathError> {
    let dir = datapath::pin_dir(node);
    let services: BpfHashMap<MapData, ServiceKey, ServiceValue> = open(&dir, maps::SERVICES)
        .and_then(|map| {
            BpfHashMap::try_from(map).map_err(|source| DatapathError::Map {
                name: maps::SERVICES,
                source,
            })
        })?;
    let backends: BpfHashMap<MapData, u32, Backend> =
        open(&dir, maps::BACKENDS).and_then(|map| {
            BpfHashMap::try_from(map).map_err(|source| DatapathError::Map {
                name: maps::BACKENDS,
                source,
            })
        })?;
    let connections: PerCpuArray<MapData, u64> = open(&dir, maps::CONNECTIONS).and_then(|map| {
        PerCpuArray::try_from(map).map_err(|source| DatapathError::Map {
            name: maps::CONNECTIONS,
            source,
        })
    })?;
    let entries: HashMap<ServiceKey, ServiceValue> =
        services.iter().filter_map(Result::ok).collect();
    let backends: HashMap<u32, Backend> = backends.iter().filter_map(Result::ok).collect();
    let mut views = BTreeMap::new();
    for (key, entry) in entries
        .iter()
        .filter(|(k, _)| k.backend_slot == SERVICE_SLOT)
    {
        let protocol = match Protocol::from_number(key.protocol) {
            Some(Protocol::Tcp) => "TCP",
            Some(Protocol::Udp) => "UDP",
            None => "?",
        };
        let reached = (1..=entry.count)
            .map(|slot| {
                let slot_key = ServiceKey {
                    backend_slot: slot,
                    ..*key
                };
                entries
                    .get(&slot_key)
                    .and_then(|slot| backends.get(&slot.backend_id))
                    .map(|b| format!("{}:{}", datapath::backend_address(b), u16::from_be(b.port)))
            })
            .collect();
        let view = FrontendView {
            address: Ipv4Addr::from(u32::from_be(key.address)),
            port: u16::from_be(key.port),
            protocol,
            service: entry.rev_nat_index,
            connections: connections
                .get(&u32::from(entry.rev_nat_index), 0)
                .map(|per_cpu| per_cpu.iter().fold(0u64, |sum, n| sum.saturating_add(*n)))
                .unwrap_or(0),
            affinity_timeout_s: (entry.affinity_timeout_s > 0).then_some(entry.affinity_timeout_s),
            backends: reached,
        };
        views.insert((u32::from_be(key.address), view.port, key.protocol), view);
    }
    Ok(views.into_values().collect())
}

/// [`read`] as text, one frontend a line:
/// `10.96.0.10:53/UDP service=3 connections=12 backends=10.244.0.2:53,10.244.1.4:53`.
pub fn dump(node: &str) -> Result<String, DatapathError> {
    let mut out = String::new();
    for view in read(node)? {
        let _ = write!(
            out,
            "{} service={} connections={}",
            view.name(),
            view.service,
            view.connections
        );
        if let Some(timeout) = view.affinity_timeout_s {
            let _ = write!(out, " affinity={timeout}s");
        }
        let backends: Vec<String> = view
            .backends
            .iter()
            .map(|b| b.clone().unwrap_or_else(|| String::from("(missing)")))
            .collect();
        let _ = writeln!(
            out,
            " backends={}",
            if backends.is_empty() {
                String::from("(none: connects refused)")
            } else {
                backends.join(",")
            }
        );
    }
    Ok(out)
}

fn open(dir: &Path, name: &'static str) -> Result<Map, DatapathError> {
    let path = dir.join(name);
    let map_error = |source: MapError| DatapathError::Map { name, source };
    let data = MapData::from_pin(&path).map_err(map_error)?;
    Map::from_map_data(data).map_err(map_error)
}
