//! The data path's state as the agent programmed it, and the map writes that take it from one
//! Service's old frontends to its new ones. Pure: the datapath applies the writes in order.
//!
//! The order keeps every connect correct while a change is half done, as Cilium's does: new
//! backends are written before the slots naming them, slots before the Service entry that
//! counts them, and an entry's count shrinks before the slots past it go; a removed
//! frontend's entry goes first, its backends last.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use skiff_node_ebpf::{
    SERVICE_FLAG_AFFINITY, SERVICE_FLAG_NODE_PORT, SERVICE_SLOT, ServiceKey, ServiceValue,
};

use super::frontends::{BackendAddress, Balancing, Frontend};

/// One map write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapWrite {
    PutBackend(u32, BackendAddress),
    DeleteBackend(u32),
    PutService(ServiceKey, ServiceValue),
    DeleteService(ServiceKey),
}

/// A Service as the API names it: namespace and name.
pub type ServiceName = (String, String);

/// The owner of frontends found in the maps at start (programmed by an earlier run): each is
/// taken over by the Service that still wants it, and the rest removed after the first sync.
pub fn adopted() -> ServiceName {
    (String::new(), String::new())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    #[error("no free Service number: {0} frontends are programmed (the most there can be)")]
    FrontendsFull(usize),
    #[error("no free backend id: {0} backends are programmed")]
    BackendsFull(usize),
    #[error("{frontend:?} has {count} backends; a frontend can have at most {max}")]
    TooManyBackends {
        frontend: Frontend,
        count: usize,
        max: usize,
    },
    #[error("frontend {frontend:?} of {service:?} is already {other:?}'s")]
    FrontendTaken {
        frontend: Frontend,
        service: ServiceName,
        other: ServiceName,
    },
}

impl TableError {
    /// The reason of the Warning Event on the Service (one word, as Kubernetes' reasons).
    pub fn reason(&self) -> &'static str {
        match self {
            TableError::FrontendsFull(_)
            | TableError::BackendsFull(_)
            | TableError::TooManyBackends { .. } => "LoadBalancerMapFull",
            TableError::FrontendTaken { .. } => "FrontendInUse",
        }
    }
}

/// A programmed frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Programmed {
    rev_nat_index: u16,
    backend_ids: Vec<u32>,
    affinity_timeout_s: Option<u32>,
    node_port: bool,
}

/// Everything programmed, and who owns it.
#[derive(Debug)]
pub struct Table {
    frontends: HashMap<Frontend, Programmed>,
    owners: HashMap<Frontend, ServiceName>,
    by_service: HashMap<ServiceName, BTreeSet<Frontend>>,
    backends: HashMap<BackendAddress, (u32, usize)>,
    backend_addresses: HashMap<u32, BackendAddress>,
    free_rev_nat: BTreeSet<u16>,
    next_rev_nat: u16,
    next_backend_id: u32,
    max_frontends: usize,
    max_backends: usize,
}

impl Table {
    /// An empty table for maps of these sizes.
    pub fn new(max_frontends: usize, max_backends: usize) -> Self {
        Table {
            frontends: HashMap::new(),
            owners: HashMap::new(),
            by_service: HashMap::new(),
            backends: HashMap::new(),
            backend_addresses: HashMap::new(),
            free_rev_nat: BTreeSet::new(),
            // 0 is no Service: a zeroed map value never names one.
            next_rev_nat: 1,
            next_backend_id: 1,
            max_frontends: max_frontends.min(usize::from(u16::MAX)),
            max_backends,
        }
    }

    /// A table for what the maps hold already (an earlier run's entries, `services` and
    /// `backends` as read from the maps), and the writes that remove what is broken in them
    /// (slots past their entry's count, backends no slot names). Every frontend found is owned
    /// by [`adopted`] until a Service claims it.
    pub fn adopt(
        max_frontends: usize,
        max_backends: usize,
        services: &[(ServiceKey, ServiceValue)],
        backends: &[(u32, BackendAddress)],
    ) -> (Self, Vec<MapWrite>) {
        let mut table = Table::new(max_frontends, max_backends);
        let mut writes = Vec::new();
        let entries: HashMap<ServiceKey, ServiceValue> = services.iter().copied().collect();
        let addresses: HashMap<u32, BackendAddress> = backends.iter().copied().collect();
        let mut referenced: HashMap<u32, usize> = HashMap::new();
        let mut kept_slots: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut used_rev_nat = BTreeSet::new();
        for (key, entry) in services
            .iter()
            .filter(|(k, _)| k.backend_slot == SERVICE_SLOT)
        {
            let Some(frontend) = frontend_of(key) else {
                writes.push(MapWrite::DeleteService(*key));
                continue;
            };
            if entry.rev_nat_index == 0 || !used_rev_nat.insert(entry.rev_nat_index) {
                // Not one this agent wrote: out with it (entry first, as for any removal).
                writes.push(MapWrite::DeleteService(*key));
                continue;
            }
            let mut backend_ids = Vec::new();
            let mut whole = true;
            for slot in 1..=entry.count {
                let slot_key = ServiceKey {
                    backend_slot: slot,
                    ..*key
                };
                match entries.get(&slot_key) {
                    Some(value) if addresses.contains_key(&value.backend_id) => {
                        backend_ids.push(value.backend_id);
                        kept_slots.insert(slot_key);
                    }
                    _ => whole = false,
                }
            }
            if !whole {
                // A slot is missing: write the entry and its slots again from the next sync.
                writes.push(MapWrite::DeleteService(*key));
                used_rev_nat.remove(&entry.rev_nat_index);
                kept_slots.retain(|k| {
                    (k.address, k.port, k.protocol) != (key.address, key.port, key.protocol)
                });
                continue;
            }
            for id in &backend_ids {
                *referenced.entry(*id).or_default() += 1;
            }
            table.frontends.insert(
                frontend,
                Programmed {
                    rev_nat_index: entry.rev_nat_index,
                    backend_ids,
                    affinity_timeout_s: (entry.flags & SERVICE_FLAG_AFFINITY != 0)
                        .then_some(entry.affinity_timeout_s),
                    node_port: entry.flags & SERVICE_FLAG_NODE_PORT != 0,
                },
            );
            table.owners.insert(frontend, adopted());
            table
                .by_service
                .entry(adopted())
                .or_default()
                .insert(frontend);
        }
        for (key, _) in services
            .iter()
            .filter(|(k, _)| k.backend_slot != SERVICE_SLOT)
        {
            if !kept_slots.contains(key) {
                writes.push(MapWrite::DeleteService(*key));
            }
        }
        for (id, address) in backends {
            match referenced.get(id) {
                Some(refs) => {
                    table.backends.insert(*address, (*id, *refs));
                    table.backend_addresses.insert(*id, *address);
                }
                None => writes.push(MapWrite::DeleteBackend(*id)),
            }
        }
        let highest = used_rev_nat.last().copied().unwrap_or(0);
        table.next_rev_nat = highest.saturating_add(1).max(1);
        table.free_rev_nat = (1..highest).filter(|i| !used_rev_nat.contains(i)).collect();
        table.next_backend_id = table
            .backend_addresses
            .keys()
            .max()
            .map_or(1, |id| id.wrapping_add(1).max(1));
        (table, writes)
    }

    /// How many frontends are programmed.
    pub fn frontend_count(&self) -> usize {
        self.frontends.len()
    }

    /// The writes that make `service`'s frontends `wanted` (empty: the Service is gone), and
    /// the table updated to match. On error nothing is changed for the failing frontend;
    /// the writes for the others are returned with it.
    pub fn update(
        &mut self,
        service: &ServiceName,
        wanted: &BTreeMap<Frontend, Balancing>,
    ) -> (Vec<MapWrite>, Vec<TableError>) {
        let mut writes = Vec::new();
        let mut errors = Vec::new();
        let had: BTreeSet<Frontend> = self.by_service.get(service).cloned().unwrap_or_default();
        for frontend in had.iter().filter(|f| !wanted.contains_key(f)) {
            self.remove_frontend(frontend, &mut writes);
        }
        let mut now = BTreeSet::new();
        for (frontend, balancing) in wanted {
            if let Some(other) = self.owners.get(frontend)
                && other != service
                && *other != adopted()
            {
                errors.push(TableError::FrontendTaken {
                    frontend: *frontend,
                    service: service.clone(),
                    other: other.clone(),
                });
                continue;
            }
            match self.program(frontend, balancing, &mut writes) {
                Ok(()) => {
                    if self.owners.get(frontend) == Some(&adopted())
                        && let Some(adopted) = self.by_service.get_mut(&adopted())
                    {
                        adopted.remove(frontend);
                    }
                    self.owners.insert(*frontend, service.clone());
                    now.insert(*frontend);
                }
                Err(err) => {
                    if had.contains(frontend) {
                        now.insert(*frontend);
                    }
                    errors.push(err);
                }
            }
        }
        if now.is_empty() {
            self.by_service.remove(service);
        } else {
            self.by_service.insert(service.clone(), now);
        }
        (writes, errors)
    }

    fn program(
        &mut self,
        frontend: &Frontend,
        balancing: &Balancing,
        writes: &mut Vec<MapWrite>,
    ) -> Result<(), TableError> {
        let max_slots = usize::from(u16::MAX - 1);
        if balancing.backends.len() > max_slots {
            return Err(TableError::TooManyBackends {
                frontend: *frontend,
                count: balancing.backends.len(),
                max: max_slots,
            });
        }
        let old = self.frontends.get(frontend).cloned();
        let rev_nat_index = match &old {
            Some(old) => old.rev_nat_index,
            None => self.take_rev_nat()?,
        };
        // Backends: take an id (and a reference) for each wanted one, writing new ones.
        let mut backend_ids = Vec::with_capacity(balancing.backends.len());
        for (taken, backend) in balancing.backends.iter().enumerate() {
            match self.acquire_backend(backend, writes) {
                Ok(id) => backend_ids.push(id),
                Err(err) => {
                    for backend in &balancing.backends[..taken] {
                        self.release_backend(backend, writes);
                    }
                    if old.is_none() {
                        self.free_rev_nat.insert(rev_nat_index);
                    }
                    return Err(err);
                }
            }
        }
        let new = Programmed {
            rev_nat_index,
            backend_ids,
            affinity_timeout_s: balancing.affinity_timeout_s,
            node_port: balancing.node_port,
        };
        let old_count = old.as_ref().map_or(0, |o| o.backend_ids.len());
        for (slot, id) in new.backend_ids.iter().enumerate() {
            let unchanged = old
                .as_ref()
                .is_some_and(|o| o.backend_ids.get(slot) == Some(id));
            if !unchanged {
                writes.push(MapWrite::PutService(
                    service_key(frontend, slot_number(slot)),
                    ServiceValue {
                        backend_id: *id,
                        rev_nat_index,
                        ..Default::default()
                    },
                ));
            }
        }
        let entry = service_value(&new);
        let entry_changed = old.as_ref().is_none_or(|o| service_value(o) != entry);
        if entry_changed {
            writes.push(MapWrite::PutService(
                service_key(frontend, SERVICE_SLOT),
                entry,
            ));
        }
        for slot in new.backend_ids.len()..old_count {
            writes.push(MapWrite::DeleteService(service_key(
                frontend,
                slot_number(slot),
            )));
        }
        // The old references go last, so a backend still in the new set is never deleted.
        if let Some(old) = &old {
            self.release_backend_ids(&old.backend_ids, writes);
        }
        self.frontends.insert(*frontend, new);
        Ok(())
    }

    fn remove_frontend(&mut self, frontend: &Frontend, writes: &mut Vec<MapWrite>) {
        self.owners.remove(frontend);
        let Some(old) = self.frontends.remove(frontend) else {
            return;
        };
        writes.push(MapWrite::DeleteService(service_key(frontend, SERVICE_SLOT)));
        for slot in 0..old.backend_ids.len() {
            writes.push(MapWrite::DeleteService(service_key(
                frontend,
                slot_number(slot),
            )));
        }
        self.release_backend_ids(&old.backend_ids, writes);
        self.free_rev_nat.insert(old.rev_nat_index);
    }

    /// Drops one reference to each backend in `ids`, deleting those nobody names any more.
    fn release_backend_ids(&mut self, ids: &[u32], writes: &mut Vec<MapWrite>) {
        for id in ids {
            if let Some(backend) = self.address_of(*id) {
                self.release_backend(&backend, writes);
            }
        }
    }

    fn take_rev_nat(&mut self) -> Result<u16, TableError> {
        if self.frontends.len() >= self.max_frontends {
            return Err(TableError::FrontendsFull(self.frontends.len()));
        }
        if let Some(index) = self.free_rev_nat.pop_first() {
            return Ok(index);
        }
        let index = self.next_rev_nat;
        self.next_rev_nat = index
            .checked_add(1)
            .ok_or(TableError::FrontendsFull(self.frontends.len()))?;
        Ok(index)
    }

    fn acquire_backend(
        &mut self,
        backend: &BackendAddress,
        writes: &mut Vec<MapWrite>,
    ) -> Result<u32, TableError> {
        if let Some((id, refs)) = self.backends.get_mut(backend) {
            *refs += 1;
            return Ok(*id);
        }
        if self.backends.len() >= self.max_backends {
            return Err(TableError::BackendsFull(self.backends.len()));
        }
        let mut id = self.next_backend_id;
        while self.backend_addresses.contains_key(&id) {
            id = id.wrapping_add(1).max(1);
        }
        self.next_backend_id = id.wrapping_add(1).max(1);
        self.backends.insert(*backend, (id, 1));
        self.backend_addresses.insert(id, *backend);
        writes.push(MapWrite::PutBackend(id, *backend));
        Ok(id)
    }

    fn release_backend(&mut self, backend: &BackendAddress, writes: &mut Vec<MapWrite>) {
        let Some((id, refs)) = self.backends.get_mut(backend) else {
            return;
        };
        *refs -= 1;
        if *refs == 0 {
            let id = *id;
            writes.push(MapWrite::DeleteBackend(id));
            self.backend_addresses.remove(&id);
            self.backends.remove(backend);
        }
    }

    fn address_of(&self, id: u32) -> Option<BackendAddress> {
        self.backend_addresses.get(&id).copied()
    }
}

/// Slot `index` (0-based among backends) as a map slot number (1-based).
fn slot_number(index: usize) -> u16 {
    u16::try_from(index + 1).unwrap_or(u16::MAX)
}

/// The frontend a `SERVICES` key names (`None` for a protocol the agent never writes).
fn frontend_of(key: &ServiceKey) -> Option<Frontend> {
    Some(Frontend {
        address: std::net::Ipv4Addr::from(u32::from_be(key.address)),
        port: u16::from_be(key.port),
        protocol: super::frontends::Protocol::from_number(key.protocol)?,
    })
}

pub fn service_key(frontend: &Frontend, backend_slot: u16) -> ServiceKey {
    ServiceKey {
        address: u32::from(frontend.address).to_be(),
        port: frontend.port.to_be(),
        backend_slot,
        protocol: frontend.protocol.number(),
        pad: [0; 3],
    }
}

fn service_value(programmed: &Programmed) -> ServiceValue {
    ServiceValue {
        backend_id: 0,
        count: u16::try_from(programmed.backend_ids.len()).unwrap_or(u16::MAX),
        rev_nat_index: programmed.rev_nat_index,
        flags: match programmed.affinity_timeout_s {
            Some(_) => SERVICE_FLAG_AFFINITY,
            None => 0,
        } | match programmed.node_port {
            true => SERVICE_FLAG_NODE_PORT,
            false => 0,
        },
        pad: [0; 3],
        affinity_timeout_s: programmed.affinity_timeout_s.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::frontends::Protocol;
    use super::*;

    fn frontend(last: u8) -> Frontend {
        Frontend {
            address: Ipv4Addr::new(10, 96, 0, last),
            port: 80,
            protocol: Protocol::Tcp,
        }
    }

    fn backends(lasts: &[u8]) -> Balancing {
        Balancing {
            backends: lasts
                .iter()
                .map(|l| BackendAddress {
                    address: Ipv4Addr::new(10, 244, 0, *l),
                    port: 8080,
                    protocol: Protocol::Tcp,
                })
                .collect(),
            affinity_timeout_s: None,
            node_port: false,
        }
    }

    fn name(n: &str) -> ServiceName {
        (String::from("default"), String::from(n))
    }

    /// The maps after applying `writes` to `maps`.
    #[derive(Default)]
    struct Maps {
        services: BTreeMap<ServiceKey, ServiceValue>,
        backends: BTreeMap<u32, BackendAddress>,
    }

    impl Maps {
        fn apply(&mut self, writes: &[MapWrite]) {
            for write in writes {
                match write {
                    MapWrite::PutBackend(id, b) => {
                        self.backends.insert(*id, *b);
                    }
                    MapWrite::DeleteBackend(id) => {
                        self.backends.remove(id);
                    }
                    MapWrite::PutService(k, v) => {
                        self.services.insert(*k, *v);
                    }
                    MapWrite::DeleteService(k) => {
                        self.services.remove(k);
                    }
                }
                self.check_consistent();
            }
        }

        /// What a connect sees at any moment: every slot a Service entry counts names a
        /// backend that exists.
        fn check_consistent(&self) {
            for (key, value) in &self.services {
                if key.backend_slot != SERVICE_SLOT {
                    continue;
                }
                for slot in 1..=value.count {
                    let slot_key = ServiceKey {
                        backend_slot: slot,
                        ..*key
                    };
                    let entry = self.services.get(&slot_key).expect("a counted slot exists");
                    assert!(
                        self.backends.contains_key(&entry.backend_id),
                        "slot {slot} names a backend that exists"
                    );
                }
            }
        }

        /// The backends a frontend reaches.
        fn reached(&self, frontend: &Frontend) -> Vec<Ipv4Addr> {
            let Some(entry) = self.services.get(&service_key(frontend, SERVICE_SLOT)) else {
                return Vec::new();
            };
            let mut reached: Vec<Ipv4Addr> = (1..=entry.count)
                .map(|slot| {
                    let id = self.services[&service_key(frontend, slot)].backend_id;
                    self.backends[&id].address
                })
                .collect();
            reached.sort();
            reached
        }
    }

    #[test]
    fn growing_shrinking_and_removing_a_service_keeps_every_step_consistent() {
        let mut table = Table::new(100, 100);
        let mut maps = Maps::default();
        let web = name("web");
        for lasts in [&[1u8, 2, 3][..], &[2, 3, 4, 5], &[5], &[], &[6, 7]] {
            let wanted = BTreeMap::from([(frontend(1), backends(lasts))]);
            let (writes, errors) = table.update(&web, &wanted);
            assert!(errors.is_empty(), "{errors:?}");
            maps.apply(&writes);
            let want: Vec<Ipv4Addr> = lasts
                .iter()
                .map(|l| Ipv4Addr::new(10, 244, 0, *l))
                .collect();
            assert_eq!(maps.reached(&frontend(1)), want);
            assert_eq!(
                maps.backends.len(),
                lasts.len(),
                "no backend is left behind"
            );
            assert!(
                maps.services
                    .contains_key(&service_key(&frontend(1), SERVICE_SLOT)),
                "a Service without backends keeps its entry (connects are refused)"
            );
        }
        let (writes, _) = table.update(&web, &BTreeMap::new());
        maps.apply(&writes);
        assert!(maps.services.is_empty() && maps.backends.is_empty());
        assert_eq!(table.frontend_count(), 0);
    }

    #[test]
    fn one_endpoint_change_writes_only_what_changed() {
        let mut table = Table::new(100, 100);
        let web = name("web");
        let (writes, _) =
            table.update(&web, &BTreeMap::from([(frontend(1), backends(&[1, 2, 3]))]));
        assert_eq!(writes.len(), 3 + 3 + 1, "3 backends, 3 slots, the entry");
        let (writes, _) =
            table.update(&web, &BTreeMap::from([(frontend(1), backends(&[1, 2, 3]))]));
        assert!(writes.is_empty(), "nothing changed: {writes:?}");
        let (writes, _) =
            table.update(&web, &BTreeMap::from([(frontend(1), backends(&[1, 2, 4]))]));
        assert_eq!(
            writes,
            vec![
                MapWrite::PutBackend(4, backends(&[4]).backends[0]),
                MapWrite::PutService(
                    service_key(&frontend(1), 3),
                    ServiceValue {
                        backend_id: 4,
                        rev_nat_index: 1,
                        ..Default::default()
                    }
                ),
                MapWrite::DeleteBackend(3),
            ]
        );
    }

    #[test]
    fn services_sharing_a_backend_keep_it_until_the_last_lets_go() {
        let mut table = Table::new(100, 100);
        let mut maps = Maps::default();
        let (w, _) = table.update(&name("a"), &BTreeMap::from([(frontend(1), backends(&[1]))]));
        maps.apply(&w);
        let (w, _) = table.update(&name("b"), &BTreeMap::from([(frontend(2), backends(&[1]))]));
        maps.apply(&w);
        assert_eq!(maps.backends.len(), 1);
        let (w, _) = table.update(&name("a"), &BTreeMap::new());
        maps.apply(&w);
        assert_eq!(
            maps.reached(&frontend(2)),
            vec![Ipv4Addr::new(10, 244, 0, 1)]
        );
        let (w, _) = table.update(&name("b"), &BTreeMap::new());
        maps.apply(&w);
        assert!(maps.backends.is_empty());
    }

    #[test]
    fn a_restarted_agent_adopts_the_maps_and_writes_only_the_difference() {
        let mut before = Table::new(100, 100);
        let mut maps = Maps::default();
        for (service, last, lasts) in [
            ("a", 1, &[1u8, 2][..]),
            ("b", 2, &[2, 3]),
            ("gone", 3, &[4]),
        ] {
            let (w, _) = before.update(
                &name(service),
                &BTreeMap::from([(frontend(last), backends(lasts))]),
            );
            maps.apply(&w);
        }
        // Leftovers of a crash: a slot past its entry's count and a backend nothing names.
        maps.services.insert(
            service_key(&frontend(1), 9),
            ServiceValue {
                backend_id: 1,
                rev_nat_index: 1,
                ..Default::default()
            },
        );
        maps.backends.insert(77, backends(&[77]).backends[0]);
        let services: Vec<_> = maps.services.iter().map(|(k, v)| (*k, *v)).collect();
        let backend_list: Vec<_> = maps.backends.iter().map(|(k, v)| (*k, *v)).collect();
        let (mut table, cleanup) = Table::adopt(100, 100, &services, &backend_list);
        assert_eq!(
            cleanup,
            vec![
                MapWrite::DeleteService(service_key(&frontend(1), 9)),
                MapWrite::DeleteBackend(77)
            ]
        );
        maps.apply(&cleanup);
        // The cluster as the new agent lists it: a unchanged, b with one backend more, gone
        // deleted while the agent was down.
        let (w, errors) = table.update(
            &name("a"),
            &BTreeMap::from([(frontend(1), backends(&[1, 2]))]),
        );
        assert!(
            errors.is_empty() && w.is_empty(),
            "a is as programmed: {w:?} {errors:?}"
        );
        let (w, _) = table.update(
            &name("b"),
            &BTreeMap::from([(frontend(2), backends(&[2, 3, 5]))]),
        );
        assert_eq!(w.len(), 3, "one backend, one slot, the entry: {w:?}");
        maps.apply(&w);
        let (w, _) = table.update(&adopted(), &BTreeMap::new());
        maps.apply(&w);
        assert!(maps.reached(&frontend(3)).is_empty());
        assert_eq!(maps.reached(&frontend(1)).len(), 2);
        assert_eq!(maps.reached(&frontend(2)).len(), 3);
        assert_eq!(
            maps.backends.len(),
            4,
            "1, 2, 3 and 5; 4 went with its Service"
        );
        // New numbers do not collide with adopted ones.
        let (w, _) = table.update(&name("c"), &BTreeMap::from([(frontend(4), backends(&[6]))]));
        maps.apply(&w);
        let entries: Vec<u16> = maps
            .services
            .iter()
            .filter(|(k, _)| k.backend_slot == SERVICE_SLOT)
            .map(|(_, v)| v.rev_nat_index)
            .collect();
        let distinct: BTreeSet<u16> = entries.iter().copied().collect();
        assert_eq!(distinct.len(), entries.len(), "{entries:?}");
    }

    #[test]
    fn full_tables_and_taken_frontends_are_errors_that_change_nothing() {
        let mut table = Table::new(1, 2);
        let (_, errors) =
            table.update(&name("a"), &BTreeMap::from([(frontend(1), backends(&[1]))]));
        assert!(errors.is_empty());
        let (writes, errors) =
            table.update(&name("b"), &BTreeMap::from([(frontend(2), backends(&[2]))]));
        assert_eq!(errors, vec![TableError::FrontendsFull(1)]);
        assert!(writes.is_empty());
        let (writes, errors) =
            table.update(&name("b"), &BTreeMap::from([(frontend(1), backends(&[2]))]));
        assert!(matches!(errors[..], [TableError::FrontendTaken { .. }]));
        assert!(writes.is_empty());
        let (writes, errors) = table.update(
            &name("a"),
            &BTreeMap::from([(frontend(1), backends(&[1, 2, 3]))]),
        );
        assert_eq!(errors, vec![TableError::BackendsFull(2)]);
        assert!(
            writes
                .iter()
                .all(|w| !matches!(w, MapWrite::PutService(..))),
            "the frontend keeps what it had: {writes:?}"
        );
        let mut maps = Maps::default();
        let (w, _) = table.update(&name("a"), &BTreeMap::new());
        maps.apply(&w);
        assert_eq!(table.frontend_count(), 0);
    }
}
