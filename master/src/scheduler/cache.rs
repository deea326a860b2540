//! The scheduler's cache of the cluster, fed by the watches: nodes in a columnar layout so a
//! decision scans every node cheaply, the pods that occupy them (bound, or assumed: decided but
//! not yet confirmed by the watch), and Services for spreading.
//!
//! Every node has a slot, an index into the columns. What the filter and score loops read is
//! kept in flat arrays (`Columns`): free CPU/memory/pod count as exact integers and the
//! scoring inputs as `f32`. Labels are an inverted index (label -> set of slots), taints and
//! cordoning are interned into a few node classes (one set of slots each), so a pod's node
//! selector or tolerations become a handful of word-wide set operations instead of a string
//! comparison per node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::bitset::Bitset;
use super::node_info::NodeInfo;
use super::pod_info::{HostPort, PodInfo, Resources, Taint};

/// An index into the node columns.
pub type Slot = usize;

/// What the decision loops read, one entry per slot. The length is a multiple of 64; slots
/// without a node have nothing free (and are in no class, so never feasible).
#[derive(Clone, Debug, Default)]
pub struct Columns {
    /// Allocatable minus requested CPU, millicores (negative when over-committed), clamped to
    /// `±(i32::MAX - 1)`: 32 bits keep the column small and eight compares per instruction.
    pub free_milli_cpu: Vec<i32>,
    /// Allocatable minus requested memory, bytes.
    pub free_memory: Vec<i64>,
    /// Allocatable pods minus pods on the node (clamped like CPU).
    pub free_pods: Vec<i32>,
    /// 1 / allocatable CPU (millicores); infinity when there is none.
    pub inv_alloc_cpu: Vec<f32>,
    /// 1 / allocatable memory (bytes); infinity when there is none.
    pub inv_alloc_memory: Vec<f32>,
    /// Requested CPU for scoring (containers without requests count as 100m).
    pub score_cpu: Vec<f32>,
    /// Requested memory for scoring (containers without requests count as 200 MiB).
    pub score_memory: Vec<f32>,
}

impl Columns {
    fn grow(&mut self, len: usize) {
        self.free_milli_cpu.resize(len, -1);
        self.free_memory.resize(len, -1);
        self.free_pods.resize(len, 0);
        self.inv_alloc_cpu.resize(len, f32::INFINITY);
        self.inv_alloc_memory.resize(len, f32::INFINITY);
        self.score_cpu.resize(len, 0.0);
        self.score_memory.resize(len, 0.0);
    }

    /// The number of slots (a multiple of 64).
    pub fn len(&self) -> usize {
        self.free_pods.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.free_pods.is_empty()
    }
}

/// Nodes that keep the same pods away: same cordoning, same NoSchedule/NoExecute taints
/// (the not-Ready taint included). Whether a pod tolerates a node is decided per class.
#[derive(Clone, Debug)]
pub struct NodeClass {
    /// spec.unschedulable.
    pub unschedulable: bool,
    /// The taints, sorted.
    pub taints: Vec<Taint>,
    /// Its nodes.
    pub members: Bitset,
}

/// Node labels as an inverted index.
#[derive(Clone, Debug, Default)]
pub struct LabelIndex {
    keys: HashMap<String, LabelKey>,
}

/// The nodes having one label key, and per value.
#[derive(Clone, Debug, Default)]
pub struct LabelKey {
    /// Nodes with the key, any value.
    pub any: Bitset,
    /// Nodes per value.
    pub values: HashMap<String, Bitset>,
}

impl LabelIndex {
    /// The nodes with label `key`, if any node has it.
    pub fn key(&self, key: &str) -> Option<&LabelKey> {
        self.keys.get(key)
    }

    fn insert(&mut self, key: &str, value: &str, slot: Slot) {
        let entry = self.keys.entry(key.to_string()).or_default();
        entry.any.insert(slot);
        entry
            .values
            .entry(value.to_string())
            .or_default()
            .insert(slot);
    }

    fn remove(&mut self, key: &str, value: &str, slot: Slot) {
        if let Some(entry) = self.keys.get_mut(key) {
            entry.any.remove(slot);
            if let Some(nodes) = entry.values.get_mut(value) {
                nodes.remove(slot);
                if nodes.is_empty() {
                    entry.values.remove(value);
                }
            }
            if entry.values.is_empty() {
                self.keys.remove(key);
            }
        }
    }
}

/// A Service, as far as spreading cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// metadata.namespace.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
    /// spec.selector; an empty one selects nothing.
    pub selector: BTreeMap<String, String>,
}

impl ServiceInfo {
    fn selects(&self, pod: &PodInfo) -> bool {
        pod.namespace == self.namespace
            && !self.selector.is_empty()
            && self
                .selector
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v.as_str()))
    }
}

/// A pod that occupies a node.
#[derive(Clone, Debug)]
pub struct CachedPod {
    /// The pod.
    pub info: Arc<PodInfo>,
    /// Its node.
    pub slot: Slot,
    /// Decided by this scheduler, binding not yet seen through the watch.
    pub assumed: bool,
    groups: Vec<u32>,
}

/// One node slot's bookkeeping.
#[derive(Clone, Debug, Default)]
struct SlotState {
    name: String,
    /// `None`: no Node object (deleted, or its pods were seen before it).
    node: Option<NodeInfo>,
    class: Option<usize>,
    requested: Resources,
    score_cpu: i64,
    score_memory: i64,
    pods: i64,
}

/// A host port in use on a node.
#[derive(Clone, Debug)]
struct PortUse {
    slot: Slot,
    port: HostPort,
    uid: String,
}

/// The cluster as the scheduler sees it.
#[derive(Debug, Default)]
pub struct NodeCache {
    columns: Columns,
    slots: Vec<SlotState>,
    by_name: HashMap<String, Slot>,
    free_slots: Vec<Slot>,
    nodes: Bitset,
    node_count: usize,
    classes: Vec<NodeClass>,
    class_ids: HashMap<(bool, Vec<Taint>), usize>,
    labels: LabelIndex,
    ports: HashMap<(String, i32), Vec<PortUse>>,
    pods: HashMap<String, CachedPod>,
    group_ids: HashMap<String, u32>,
    group_counts: Vec<HashMap<Slot, u32>>,
    services: HashMap<String, Vec<ServiceInfo>>,
}

impl NodeCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The decision loops' columns.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The node classes (some may have no members left).
    pub fn classes(&self) -> &[NodeClass] {
        &self.classes
    }

    /// Every node.
    pub fn nodes(&self) -> &Bitset {
        &self.nodes
    }

    /// How many nodes there are.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// The label index.
    pub fn labels(&self) -> &LabelIndex {
        &self.labels
    }

    /// The slot of node `name`, if the cache has one.
    pub fn slot(&self, name: &str) -> Option<Slot> {
        self.by_name.get(name).copied()
    }

    /// The name of the node in `slot`.
    pub fn node_name(&self, slot: Slot) -> &str {
        self.slots.get(slot).map_or("", |s| s.name.as_str())
    }

    /// The node in `slot`, if there is one.
    pub fn node(&self, slot: Slot) -> Option<&NodeInfo> {
        self.slots.get(slot).and_then(|s| s.node.as_ref())
    }

    /// The class of the node in `slot`.
    pub fn class_of(&self, slot: Slot) -> Option<&NodeClass> {
        self.slots
            .get(slot)
            .and_then(|s| s.class)
            .and_then(|c| self.classes.get(c))
    }

    /// What the pods on `slot` request, and how many there are.
    pub fn requested(&self, slot: Slot) -> (&Resources, i64) {
        static NONE: Resources = Resources {
            milli_cpu: 0,
            memory: 0,
            scalar: Vec::new(),
        };
        self.slots
            .get(slot)
            .map_or((&NONE, 0), |s| (&s.requested, s.pods))
    }

    /// The pod with `uid`, if it occupies a node.
    pub fn pod(&self, uid: &str) -> Option<&CachedPod> {
        self.pods.get(uid)
    }

    /// Every pod that occupies a node.
    pub fn pods(&self) -> impl Iterator<Item = &CachedPod> {
        self.pods.values()
    }

    /// The nodes where a pod's host port is taken by another pod.
    pub fn port_conflicts<'a>(&'a self, wanted: &'a HostPort) -> impl Iterator<Item = Slot> + 'a {
        self.ports
            .get(&(wanted.protocol.clone(), wanted.port))
            .into_iter()
            .flatten()
            .filter(move |u| u.port.conflicts_with(wanted))
            .map(|u| u.slot)
    }

    /// Adds or updates a node. Returns whether the change may let a waiting pod fit
    /// (new node, more room, other labels, taints, cordoning or readiness).
    pub fn apply_node(&mut self, info: NodeInfo) -> bool {
        let slot = self.slot_for(&info.name);
        let old = self.slots[slot].node.take();
        if old.as_ref() == Some(&info) {
            self.slots[slot].node = old;
            return false;
        }
        if let Some(old) = &old {
            for (k, v) in &old.labels {
                self.labels.remove(k, v, slot);
            }
        } else {
            self.node_count += 1;
            self.nodes.insert(slot);
        }
        for (k, v) in &info.labels {
            self.labels.insert(k, v, slot);
        }
        let class = self.class_id(info.unschedulable, info.scheduling_taints());
        if let Some(previous) = self.slots[slot].class.replace(class) {
            self.classes[previous].members.remove(slot);
        }
        self.classes[class].members.insert(slot);
        self.slots[slot].node = Some(info);
        self.refresh_columns(slot);
        true
    }

    /// Removes a node; pods still bound to it keep counting against its name.
    pub fn remove_node(&mut self, name: &str) -> bool {
        let Some(slot) = self.slot(name) else {
            return false;
        };
        let Some(old) = self.slots[slot].node.take() else {
            return false;
        };
        for (k, v) in &old.labels {
            self.labels.remove(k, v, slot);
        }
        if let Some(class) = self.slots[slot].class.take() {
            self.classes[class].members.remove(slot);
        }
        self.nodes.remove(slot);
        self.node_count -= 1;
        self.refresh_columns(slot);
        self.release_if_unused(slot);
        true
    }

    /// The names of every node.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|slot| self.node_name(slot))
    }

    /// Records what the watch says about a pod. A bound, running pod occupies its node (an
    /// assumed one is confirmed); one that is finished or no longer bound frees it. A pod
    /// that is assumed and still shows unbound (the binding is in flight) keeps its place.
    /// Returns whether room was freed somewhere.
    pub fn apply_pod(&mut self, info: Arc<PodInfo>) -> bool {
        let existing = self.pods.get(&info.uid);
        match (&info.node_name, existing) {
            (Some(node), Some(cached)) if info.occupies_node() => {
                if self.node_name(cached.slot) == node && cached.info.requests == info.requests {
                    let groups_same = cached.info.labels == info.labels
                        && cached.info.controller_uid == info.controller_uid;
                    if groups_same {
                        let cached = self.pods.get_mut(&info.uid).expect("checked above");
                        cached.assumed = false;
                        cached.info = info;
                        return false;
                    }
                }
                let freed = self.remove_pod(&info.uid);
                let slot = self.slot_for(node);
                self.add_pod(info, slot, false);
                freed
            }
            (Some(node), None) if info.occupies_node() => {
                let slot = self.slot_for(node);
                self.add_pod(info, slot, false);
                false
            }
            (None, Some(cached)) if cached.assumed && !info.terminal => false,
            (_, Some(_)) => self.remove_pod(&info.uid),
            (_, None) => false,
        }
    }

    /// Removes a pod (deleted, finished, or a forgotten assumption). Returns whether it
    /// occupied a node.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(cached) = self.pods.remove(uid) else {
            return false;
        };
        let slot = cached.slot;
        let state = &mut self.slots[slot];
        subtract(&mut state.requested, &cached.info.requests);
        state.score_cpu = less(state.score_cpu, cached.info.non_zero_milli_cpu);
        state.score_memory = less(state.score_memory, cached.info.non_zero_memory);
        state.pods -= 1;
        for g in &cached.groups {
            decrement(&mut self.group_counts[*g as usize], slot);
        }
        for port in &cached.info.host_ports {
            if let Some(uses) = self.ports.get_mut(&(port.protocol.clone(), port.port)) {
                uses.retain(|u| u.uid != uid);
                if uses.is_empty() {
                    self.ports.remove(&(port.protocol.clone(), port.port));
                }
            }
        }
        self.refresh_columns(slot);
        self.release_if_unused(slot);
        true
    }

    /// Counts a pod against the node in `slot` at once, before its binding is written, so the
    /// next decision sees the room it takes.
    pub fn assume(&mut self, info: Arc<PodInfo>, slot: Slot) {
        self.remove_pod(&info.uid);
        self.add_pod(info, slot, true);
    }

    /// Undoes an assumption (the binding failed). A pod the watch already confirmed stays.
    pub fn forget(&mut self, uid: &str) -> bool {
        if self.pods.get(uid).is_some_and(|p| p.assumed) {
            self.remove_pod(uid)
        } else {
            false
        }
    }

    /// Adds or updates a Service; pods it selects spread from each other.
    pub fn apply_service(&mut self, service: ServiceInfo) {
        let list = self.services.entry(service.namespace.clone()).or_default();
        if let Some(existing) = list.iter_mut().find(|s| s.name == service.name) {
            if *existing == service {
                return;
            }
            *existing = service.clone();
        } else {
            list.push(service.clone());
        }
        self.regroup(&service.namespace);
    }

    /// Removes a Service.
    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        if let Some(list) = self.services.get_mut(namespace) {
            let before = list.len();
            list.retain(|s| s.name != name);
            if list.len() != before {
                if list.is_empty() {
                    self.services.remove(namespace);
                }
                self.regroup(namespace);
            }
        }
    }

    /// Every Service, as "namespace/name".
    pub fn service_keys(&self) -> Vec<String> {
        self.services
            .values()
            .flatten()
            .map(|s| format!("{}/{}", s.namespace, s.name))
            .collect()
    }

    /// The spreading groups a pod belongs to: its controller, and each Service selecting it.
    /// Group names exist only once a pod of the group occupies a node.
    pub fn spread_groups(&self, pod: &PodInfo) -> Vec<u32> {
        group_names(pod, self.services.get(&pod.namespace))
            .iter()
            .filter_map(|g| self.group_ids.get(g).copied())
            .collect()
    }

    /// Per node, how many pods of `groups` it runs (summed over groups), written into `out`
    /// (which must be all zeros, `columns().len()` long); the slots written are appended to
    /// `touched` so the caller can zero them again. Returns the largest count.
    pub fn spread_counts(&self, groups: &[u32], out: &mut [f32], touched: &mut Vec<Slot>) -> f32 {
        let mut max = 0.0f32;
        for g in groups {
            for (&slot, &count) in &self.group_counts[*g as usize] {
                if out[slot] == 0.0 {
                    touched.push(slot);
                }
                out[slot] += count as f32;
                max = max.max(out[slot]);
            }
        }
        max
    }

    fn add_pod(&mut self, info: Arc<PodInfo>, slot: Slot, assumed: bool) {
        let groups: Vec<u32> = group_names(&info, self.services.get(&info.namespace))
            .into_iter()
            .map(|g| self.intern_group(g))
            .collect();
        for g in &groups {
            *self.group_counts[*g as usize].entry(slot).or_default() += 1;
        }
        for port in &info.host_ports {
            self.ports
                .entry((port.protocol.clone(), port.port))
                .or_default()
                .push(PortUse {
                    slot,
                    port: port.clone(),
                    uid: info.uid.clone(),
                });
        }
        let state = &mut self.slots[slot];
        state.requested.add(&info.requests);
        state.score_cpu = state.score_cpu.saturating_add(info.non_zero_milli_cpu);
        state.score_memory = state.score_memory.saturating_add(info.non_zero_memory);
        state.pods += 1;
        self.refresh_columns(slot);
        self.pods.insert(
            info.uid.clone(),
            CachedPod {
                info,
                slot,
                assumed,
                groups,
            },
        );
    }

    fn regroup(&mut self, namespace: &str) {
        let uids: Vec<String> = self
            .pods
            .values()
            .filter(|p| p.info.namespace == namespace)
            .map(|p| p.info.uid.clone())
            .collect();
        for uid in uids {
            let Some(cached) = self.pods.get(&uid) else {
                continue;
            };
            let names = group_names(&cached.info, self.services.get(namespace));
            let new: Vec<u32> = names.into_iter().map(|g| self.intern_group(g)).collect();
            let Some(cached) = self.pods.get_mut(&uid) else {
                continue;
            };
            if cached.groups == new {
                continue;
            }
            let slot = cached.slot;
            let old = std::mem::replace(&mut cached.groups, new.clone());
            for g in old {
                decrement(&mut self.group_counts[g as usize], slot);
            }
            for g in new {
                *self.group_counts[g as usize].entry(slot).or_default() += 1;
            }
        }
    }

    fn intern_group(&mut self, name: String) -> u32 {
        if let Some(id) = self.group_ids.get(&name) {
            return *id;
        }
        let id = u32::try_from(self.group_counts.len()).unwrap_or(u32::MAX);
        self.group_counts.push(HashMap::new());
        self.group_ids.insert(name, id);
        id
    }

    fn class_id(&mut self, unschedulable: bool, taints: Vec<Taint>) -> usize {
        let key = (unschedulable, taints);
        if let Some(id) = self.class_ids.get(&key) {
            return *id;
        }
        let id = self.classes.len();
        self.classes.push(NodeClass {
            unschedulable: key.0,
            taints: key.1.clone(),
            members: Bitset::default(),
        });
        self.class_ids.insert(key, id);
        id
    }

    /// The slot of `name`, made (without a node) if there is none.
    fn slot_for(&mut self, name: &str) -> Slot {
        if let Some(slot) = self.by_name.get(name) {
            return *slot;
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.slots.len();
                self.slots.push(SlotState::default());
                if slot >= self.columns.len() {
                    self.columns.grow(self.columns.len() + 64);
                }
                slot
            }
        };
        self.slots[slot] = SlotState {
            name: name.to_string(),
            ..Default::default()
        };
        self.by_name.insert(name.to_string(), slot);
        self.refresh_columns(slot);
        slot
    }

    fn release_if_unused(&mut self, slot: Slot) {
        let state = &self.slots[slot];
        if state.node.is_none() && state.pods == 0 {
            self.by_name.remove(&state.name);
            self.slots[slot] = SlotState::default();
            self.free_slots.push(slot);
        }
    }

    /// Recomputes the slot's columns from its exact bookkeeping.
    fn refresh_columns(&mut self, slot: Slot) {
        let state = &self.slots[slot];
        let c = &mut self.columns;
        match &state.node {
            Some(node) => {
                let a = &node.allocatable;
                c.free_milli_cpu[slot] =
                    clamp_i32(a.milli_cpu.saturating_sub(state.requested.milli_cpu));
                c.free_memory[slot] = a.memory.saturating_sub(state.requested.memory);
                c.free_pods[slot] = clamp_i32(node.allocatable_pods.saturating_sub(state.pods));
                c.inv_alloc_cpu[slot] = inverse(a.milli_cpu);
                c.inv_alloc_memory[slot] = inverse(a.memory);
            }
            None => {
                c.free_milli_cpu[slot] = -1;
                c.free_memory[slot] = -1;
                c.free_pods[slot] = 0;
                c.inv_alloc_cpu[slot] = f32::INFINITY;
                c.inv_alloc_memory[slot] = f32::INFINITY;
            }
        }
        c.score_cpu[slot] = state.score_cpu as f32;
        c.score_memory[slot] = state.score_memory as f32;
    }
}

/// `v` within `±(i32::MAX - 1)`, so a request of `i32::MAX` or more never fits.
pub fn clamp_i32(v: i64) -> i32 {
    v.clamp(-i64::from(i32::MAX - 1), i64::from(i32::MAX - 1)) as i32
}

fn inverse(amount: i64) -> f32 {
    if amount > 0 {
        1.0 / amount as f32
    } else {
        f32::INFINITY
    }
}

fn subtract(total: &mut Resources, r: &Resources) {
    total.milli_cpu = less(total.milli_cpu, r.milli_cpu);
    total.memory = less(total.memory, r.memory);
    for (name, value) in &r.scalar {
        if let Some(entry) = total.scalar.iter_mut().find(|(n, _)| n == name) {
            entry.1 = less(entry.1, *value);
        }
    }
    total.scalar.retain(|(_, v)| *v != 0);
}

/// A sum of requests less one of them. Requests are quantities from pod specs, up to
/// `i64::MAX` each: sums saturate, so a sum can come out below what is left; it never goes
/// below zero.
fn less(total: i64, amount: i64) -> i64 {
    total.saturating_sub(amount).max(0)
}

fn decrement(counts: &mut HashMap<Slot, u32>, slot: Slot) {
    if let Some(c) = counts.get_mut(&slot) {
        *c -= 1;
        if *c == 0 {
            counts.remove(&slot);
        }
    }
}

fn group_names(pod: &PodInfo, services: Option<&Vec<ServiceInfo>>) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(uid) = &pod.controller_uid {
        names.push(format!("controller/{uid}"));
    }
    for s in services.into_iter().flatten() {
        if s.selects(pod) {
            names.push(format!("service/{}/{}", s.namespace, s.name));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::node_info::Readiness;

    pub(crate) fn node(name: &str, milli_cpu: i64, memory: i64) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            allocatable: Resources {
                milli_cpu,
                memory,
                scalar: Vec::new(),
            },
            allocatable_pods: 110,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            unschedulable: false,
            readiness: Readiness::Ready,
        }
    }

    fn pod(uid: &str, node: Option<&str>, milli_cpu: i64) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            uid: uid.into(),
            namespace: "default".into(),
            name: uid.into(),
            node_name: node.map(String::from),
            requests: Resources {
                milli_cpu,
                memory: 0,
                scalar: Vec::new(),
            },
            non_zero_milli_cpu: milli_cpu,
            non_zero_memory: 1,
            ..Default::default()
        })
    }

    #[test]
    fn bound_and_assumed_pods_count_against_their_node() {
        let mut cache = NodeCache::new();
        cache.apply_node(node("a", 1000, 1 << 30));
        let a = cache.slot("a").expect("slot");
        cache.apply_pod(pod("p1", Some("a"), 300));
        assert_eq!(cache.columns().free_milli_cpu[a], 700);
        cache.assume(pod("p2", None, 200), a);
        assert_eq!(cache.columns().free_milli_cpu[a], 500);
        assert_eq!(cache.columns().free_pods[a], 108);
        // The watch still shows p2 unbound while the binding is in flight: it keeps its place.
        assert!(!cache.apply_pod(pod("p2", None, 200)));
        assert_eq!(cache.columns().free_milli_cpu[a], 500);
        // Confirmed, then a forget does nothing.
        cache.apply_pod(pod("p2", Some("a"), 200));
        assert!(!cache.forget("p2"));
        assert_eq!(cache.columns().free_milli_cpu[a], 500);
        // A failed binding forgets the assumption.
        cache.assume(pod("p3", None, 100), a);
        assert!(cache.forget("p3"));
        assert_eq!(cache.columns().free_milli_cpu[a], 500);
        assert!(cache.remove_pod("p1"));
        assert_eq!(cache.columns().free_milli_cpu[a], 800);
    }

    #[test]
    fn huge_requests_saturate_instead_of_overflowing() {
        let mut cache = NodeCache::new();
        cache.apply_node(node("a", 1000, 1 << 30));
        let a = cache.slot("a").expect("slot");
        // Bound by hand (nodeName), so no filter kept them off: the sums must not overflow.
        cache.apply_pod(pod("p1", Some("a"), i64::MAX));
        cache.apply_pod(pod("p2", Some("a"), i64::MAX));
        assert!(cache.columns().free_milli_cpu[a] < 0);
        assert!(cache.remove_pod("p1"));
        assert!(cache.remove_pod("p2"));
        assert!(cache.columns().free_milli_cpu[a] <= 1000);
    }

    #[test]
    fn pods_seen_before_their_node_are_kept_and_slots_are_reused() {
        let mut cache = NodeCache::new();
        cache.apply_pod(pod("p1", Some("late"), 250));
        assert_eq!(cache.node_count(), 0);
        cache.apply_node(node("late", 1000, 1 << 30));
        let slot = cache.slot("late").expect("slot");
        assert_eq!(cache.columns().free_milli_cpu[slot], 750);
        assert!(cache.remove_node("late"));
        assert_eq!(cache.slot("late"), Some(slot), "its pod still names it");
        cache.remove_pod("p1");
        assert_eq!(cache.slot("late"), None);
        cache.apply_node(node("next", 10, 10));
        assert_eq!(cache.slot("next"), Some(slot));
    }

    #[test]
    fn unchanged_nodes_report_no_change() {
        let mut cache = NodeCache::new();
        assert!(cache.apply_node(node("a", 1000, 1000)));
        assert!(!cache.apply_node(node("a", 1000, 1000)));
        let mut relabeled = node("a", 1000, 1000);
        relabeled.labels.insert("zone".into(), "z1".into());
        assert!(cache.apply_node(relabeled));
        let slot = cache.slot("a").expect("slot");
        assert!(
            cache
                .labels()
                .key("zone")
                .is_some_and(|k| k.values["z1"].contains(slot))
        );
        assert!(cache.apply_node(node("a", 1000, 1000)));
        assert!(cache.labels().key("zone").is_none());
    }

    #[test]
    fn services_group_the_pods_they_select() {
        let mut cache = NodeCache::new();
        cache.apply_node(node("a", 1000, 1000));
        cache.apply_node(node("b", 1000, 1000));
        let mut labeled = (*pod("p1", Some("a"), 1)).clone();
        labeled.labels = [("app", "web")].into_iter().collect();
        cache.apply_pod(Arc::new(labeled.clone()));
        cache.apply_service(ServiceInfo {
            namespace: "default".into(),
            name: "web".into(),
            selector: BTreeMap::from([("app".into(), "web".into())]),
        });
        let groups = cache.spread_groups(&labeled);
        assert_eq!(groups.len(), 1);
        let mut out = vec![0.0; cache.columns().len()];
        let mut touched = Vec::new();
        let max = cache.spread_counts(&groups, &mut out, &mut touched);
        assert_eq!(max, 1.0);
        assert_eq!(out[cache.slot("a").expect("slot")], 1.0);
        cache.remove_service("default", "web");
        let mut out = vec![0.0; cache.columns().len()];
        let max = cache.spread_counts(&groups, &mut out, &mut Vec::new());
        assert_eq!(max, 0.0);
    }
}
