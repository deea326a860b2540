//! Filter plugins: which nodes can run a pod. Each is a small function named after its
//! kube-scheduler plugin, working on sets of nodes (a bit per node) so a pass over 50,000 nodes
//! is a few thousand word operations, plus the per-node checks that explain a rejection.
//!
//! Order and reasons follow kube-scheduler: NodeUnschedulable, TaintToleration (the not-Ready
//! taint included), NodeAffinity (nodeSelector and required node affinity), NodePorts,
//! NodeResourcesFit; a node is counted under the first plugin that rejects it.

use std::collections::BTreeMap;
use std::fmt;

use super::bitset::Bitset;
use super::cache::{Columns, LabelIndex, NodeCache, NodeClass, Slot};
use super::node_info::TAINT_UNSCHEDULABLE;
use super::pod_info::{
    NodeSelectorTerm, PodInfo, Requirement, SelectorOperator, Taint, TaintEffect,
};

/// Why a node cannot run a pod, worded as kube-scheduler words it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// NodeUnschedulable: the node is cordoned.
    Unschedulable,
    /// TaintToleration: the first taint the pod does not tolerate.
    UntoleratedTaint(Taint),
    /// NodeAffinity: nodeSelector or required node affinity does not match.
    NodeAffinity,
    /// NodePorts: a host port is taken.
    NodePorts,
    /// NodeResourcesFit: not enough of a resource.
    Insufficient(String),
    /// NodeResourcesFit: the node runs as many pods as it may.
    TooManyPods,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::UntoleratedTaint(t) => {
                write!(
                    f,
                    "node(s) had untolerated taint {{{}: {}}}",
                    t.key, t.value
                )
            }
            Reason::NodeAffinity => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::NodePorts => {
                f.write_str("node(s) didn't have free ports for the requested pod ports")
            }
            Reason::Insufficient(resource) => write!(f, "Insufficient {resource}"),
            Reason::TooManyPods => f.write_str("Too many pods"),
        }
    }
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating the unschedulable taint.
pub fn node_unschedulable(class: &NodeClass, pod: &PodInfo) -> Option<Reason> {
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.to_string(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    };
    (class.unschedulable && !pod.tolerations.iter().any(|t| t.tolerates(&taint)))
        .then_some(Reason::Unschedulable)
}

/// TaintToleration: every NoSchedule/NoExecute taint must be tolerated; reports the first
/// that is not.
pub fn taint_toleration(class: &NodeClass, pod: &PodInfo) -> Option<Reason> {
    class
        .taints
        .iter()
        .find(|taint| !pod.tolerations.iter().any(|t| t.tolerates(taint)))
        .map(|taint| Reason::UntoleratedTaint(taint.clone()))
}

/// NodeUnschedulable and TaintToleration over every node: `out` becomes the nodes of every
/// class the pod passes.
pub fn tolerated_nodes(cache: &NodeCache, pod: &PodInfo, out: &mut Bitset) {
    out.reset(cache.columns().len());
    for class in cache.classes() {
        if node_unschedulable(class, pod).is_none() && taint_toleration(class, pod).is_none() {
            out.union_with(&class.members);
        }
    }
}

/// Whether the pod has a node selector or required node affinity at all.
pub fn has_node_affinity(pod: &PodInfo) -> bool {
    !pod.node_selector.is_empty() || pod.required_affinity.is_some()
}

/// NodeAffinity over every node: `out` becomes the nodes matching the pod's nodeSelector and
/// required node affinity (every node when it has neither).
pub fn node_affinity(cache: &NodeCache, pod: &PodInfo, out: &mut Bitset) {
    out.copy_from(cache.nodes(), cache.columns().len());
    let labels = cache.labels();
    for (key, value) in &pod.node_selector {
        match labels.key(key).and_then(|k| k.values.get(value)) {
            Some(nodes) => out.intersect_with(nodes),
            None => out.reset(cache.columns().len()),
        }
    }
    if let Some(terms) = &pod.required_affinity {
        let mut any = Bitset::with_capacity(cache.columns().len());
        for term in terms {
            any.union_with(&term_nodes(cache, term));
        }
        out.intersect_with(&any);
    }
}

/// The nodes matching one node selector term (none for an empty term, as in Kubernetes).
fn term_nodes(cache: &NodeCache, term: &NodeSelectorTerm) -> Bitset {
    let mut nodes = Bitset::with_capacity(cache.columns().len());
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return nodes;
    }
    nodes.copy_from(cache.nodes(), cache.columns().len());
    for req in &term.match_expressions {
        nodes.intersect_with(&label_requirement_nodes(cache, req));
    }
    for req in &term.match_fields {
        nodes.intersect_with(&field_requirement_nodes(cache, req));
    }
    nodes
}

fn label_requirement_nodes(cache: &NodeCache, req: &Requirement) -> Bitset {
    let labels: &LabelIndex = cache.labels();
    let key = labels.key(&req.key);
    let mut out = Bitset::with_capacity(cache.columns().len());
    let union_values = |out: &mut Bitset, keep: &dyn Fn(&str) -> bool| {
        if let Some(k) = key {
            for (value, nodes) in &k.values {
                if keep(value) {
                    out.union_with(nodes);
                }
            }
        }
    };
    match req.operator {
        SelectorOperator::In => union_values(&mut out, &|v| req.values.iter().any(|x| x == v)),
        SelectorOperator::NotIn => {
            out.copy_from(cache.nodes(), cache.columns().len());
            let mut matching = Bitset::default();
            union_values(&mut matching, &|v| req.values.iter().any(|x| x == v));
            out.subtract(&matching);
        }
        SelectorOperator::Exists => {
            if let Some(k) = key {
                out.union_with(&k.any);
            }
        }
        SelectorOperator::DoesNotExist => {
            out.copy_from(cache.nodes(), cache.columns().len());
            if let Some(k) = key {
                out.subtract(&k.any);
            }
        }
        SelectorOperator::Gt | SelectorOperator::Lt => {
            if let Some(bound) = single_int(&req.values) {
                let gt = req.operator == SelectorOperator::Gt;
                union_values(&mut out, &|v| {
                    v.parse::<i64>()
                        .is_ok_and(|n| if gt { n > bound } else { n < bound })
                });
            }
        }
        SelectorOperator::Invalid => {}
    }
    out
}

fn field_requirement_nodes(cache: &NodeCache, req: &Requirement) -> Bitset {
    let mut named = Bitset::with_capacity(cache.columns().len());
    if req.key != "metadata.name" {
        return named;
    }
    for name in &req.values {
        if let Some(slot) = cache.slot(name).filter(|s| cache.nodes().contains(*s)) {
            named.insert(slot);
        }
    }
    match req.operator {
        SelectorOperator::In => named,
        SelectorOperator::NotIn => {
            let mut out = cache.nodes().clone();
            out.subtract(&named);
            out
        }
        _ => Bitset::default(),
    }
}

fn single_int(values: &[String]) -> Option<i64> {
    match values {
        [v] => v.parse().ok(),
        _ => None,
    }
}

/// NodeAffinity for one node, by its labels and name.
pub fn node_affinity_matches(labels: &BTreeMap<String, String>, name: &str, pod: &PodInfo) -> bool {
    let selector_ok = pod
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_ok = pod.required_affinity.as_ref().is_none_or(|terms| {
        terms.iter().any(|term| {
            (!term.match_expressions.is_empty() || !term.match_fields.is_empty())
                && term
                    .match_expressions
                    .iter()
                    .all(|r| label_requirement_matches(labels, r))
                && term.match_fields.iter().all(|r| {
                    r.key == "metadata.name"
                        && match r.operator {
                            SelectorOperator::In => r.values.iter().any(|v| v == name),
                            SelectorOperator::NotIn => r.values.iter().all(|v| v != name),
                            _ => false,
                        }
                })
        })
    });
    selector_ok && affinity_ok
}

fn label_requirement_matches(labels: &BTreeMap<String, String>, req: &Requirement) -> bool {
    let value = labels.get(&req.key);
    match req.operator {
        SelectorOperator::In => value.is_some_and(|v| req.values.contains(v)),
        SelectorOperator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
        SelectorOperator::Exists => value.is_some(),
        SelectorOperator::DoesNotExist => value.is_none(),
        SelectorOperator::Gt | SelectorOperator::Lt => {
            let (Some(v), Some(bound)) = (value, single_int(&req.values)) else {
                return false;
            };
            v.parse::<i64>().is_ok_and(|n| {
                if req.operator == SelectorOperator::Gt {
                    n > bound
                } else {
                    n < bound
                }
            })
        }
        SelectorOperator::Invalid => false,
    }
}

/// NodePorts: removes from `out` the nodes where one of the pod's host ports is taken.
pub fn node_ports(cache: &NodeCache, pod: &PodInfo, out: &mut Bitset) {
    for wanted in &pod.host_ports {
        for slot in cache.port_conflicts(wanted) {
            out.remove(slot);
        }
    }
}

/// NodeResourcesFit over every node: keeps in `out` the nodes with room for the pod's CPU,
/// memory and one more pod (64 nodes per step, no branches inside a step). A resource the pod
/// does not request is not checked, as in Kubernetes; other resources are `scalar_fit`'s.
pub fn node_resources_fit(columns: &Columns, pod: &PodInfo, out: &mut Bitset) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { node_resources_fit_avx2(columns, pod, out) };
    }
    node_resources_fit_words(columns, pod, out)
}

/// The same loop compiled for AVX2 (four 64-bit compares per instruction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn node_resources_fit_avx2(columns: &Columns, pod: &PodInfo, out: &mut Bitset) {
    node_resources_fit_words(columns, pod, out)
}

#[inline(always)]
fn node_resources_fit_words(columns: &Columns, pod: &PodInfo, out: &mut Bitset) {
    let cpu = match pod.requests.milli_cpu {
        0 => i32::MIN,
        m => i32::try_from(m).unwrap_or(i32::MAX),
    };
    let memory = match pod.requests.memory {
        0 => i64::MIN,
        m => m,
    };
    let words = out.words_mut();
    let n = words.len().min(columns.len() / 64);
    for (w, word) in words[..n].iter_mut().enumerate() {
        if *word == 0 {
            continue;
        }
        let range = w * 64..w * 64 + 64;
        let free_cpu = &columns.free_milli_cpu[range.clone()];
        let free_memory = &columns.free_memory[range.clone()];
        let free_pods = &columns.free_pods[range];
        let mut bits = 0u64;
        for j in 0..64 {
            let fits = (free_cpu[j] >= cpu) & (free_memory[j] >= memory) & (free_pods[j] >= 1);
            bits |= u64::from(fits) << j;
        }
        *word &= bits;
    }
}

/// NodeResourcesFit for resources other than CPU and memory (ephemeral-storage, extended
/// resources): removes from `out` the nodes without room. Only pods requesting them pay.
pub fn scalar_fit(cache: &NodeCache, pod: &PodInfo, out: &mut Bitset) {
    if pod.requests.scalar.is_empty() {
        return;
    }
    let candidates: Vec<Slot> = out.iter().collect();
    for slot in candidates {
        if !scalar_reasons(cache, slot, pod).is_empty() {
            out.remove(slot);
        }
    }
}

fn scalar_reasons(cache: &NodeCache, slot: Slot, pod: &PodInfo) -> Vec<Reason> {
    let Some(node) = cache.node(slot) else {
        return Vec::new();
    };
    let (requested, _) = cache.requested(slot);
    pod.requests
        .scalar
        .iter()
        .filter(|(name, amount)| node.allocatable.scalar(name) - requested.scalar(name) < *amount)
        .map(|(name, _)| Reason::Insufficient(name.clone()))
        .collect()
}

/// NodeResourcesFit for one node: every resource short of room (empty when it fits).
pub fn fit_reasons(cache: &NodeCache, slot: Slot, pod: &PodInfo) -> Vec<Reason> {
    let c = cache.columns();
    let mut reasons = Vec::new();
    if c.free_pods[slot] < 1 {
        reasons.push(Reason::TooManyPods);
    }
    if pod.requests.milli_cpu > 0 && i64::from(c.free_milli_cpu[slot]) < pod.requests.milli_cpu {
        reasons.push(Reason::Insufficient("cpu".into()));
    }
    if pod.requests.memory > 0 && c.free_memory[slot] < pod.requests.memory {
        reasons.push(Reason::Insufficient("memory".into()));
    }
    reasons.extend(scalar_reasons(cache, slot, pod));
    reasons
}
