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

/// The frontends pinned under `/sys/fs/bpf/skiff/<node>/`, one line each:
/// `10.96.0.10:53/UDP service=3 connections=12 backends=10.244.0.2:53,10.244.1.4:53`.
pub fn dump(node: &str) -> Result<String, DatapathError> {
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
    let mut lines = BTreeMap::new();
    for (key, entry) in entries
        .iter()
        .filter(|(k, _)| k.backend_slot == SERVICE_SLOT)
    {
        let address = Ipv4Addr::from(u32::from_be(key.address));
        let port = u16::from_be(key.port);
        let protocol = match Protocol::from_number(key.protocol) {
            Some(Protocol::Tcp) => "TCP",
            Some(Protocol::Udp) => "UDP",
            None => "?",
        };
        let mut reached = Vec::new();
        for slot in 1..=entry.count {
            let slot_key = ServiceKey {
                backend_slot: slot,
                ..*key
            };
            let text = entries
                .get(&slot_key)
                .and_then(|slot| backends.get(&slot.backend_id))
                .map_or_else(
                    || String::from("(missing)"),
                    |b| format!("{}:{}", datapath::backend_address(b), u16::from_be(b.port)),
                );
            reached.push(text);
        }
        let count = connections
            .get(&u32::from(entry.rev_nat_index), 0)
            .map(|per_cpu| per_cpu.iter().fold(0u64, |sum, n| sum.saturating_add(*n)))
            .unwrap_or(0);
        let mut line = format!(
            "{address}:{port}/{protocol} service={} connections={count}",
            entry.rev_nat_index
        );
        if entry.affinity_timeout_s > 0 {
            let _ = write!(line, " affinity={}s", entry.affinity_timeout_s);
        }
        let _ = write!(
            line,
            " backends={}",
            if reached.is_empty() {
                String::from("(none: connects refused)")
            } else {
                reached.join(",")
            }
        );
        lines.insert((u32::from_be(key.address), port, key.protocol), line);
    }
    let mut out = String::new();
    for line in lines.into_values() {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

fn open(dir: &Path, name: &'static str) -> Result<Map, DatapathError> {
    let path = dir.join(name);
    let map_error = |source: MapError| DatapathError::Map { name, source };
    let data = MapData::from_pin(&path).map_err(map_error)?;
    Map::from_map_data(data).map_err(map_error)
}
