//! One scheduling decision: filter every node, score every feasible one, pick the best — a
//! pure function over the cache, so it runs (and is benchmarked) without a cluster. When no
//! node fits, the error says why in kube-scheduler's words.

use std::collections::BTreeMap;
use std::fmt;

use super::bitset::Bitset;
use super::cache::{NodeCache, Slot};
use super::filter::{self, Reason};
use super::pod_info::PodInfo;
use super::score::{self, ScoreWeights, SpreadCounts};

/// Where a pod goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// The chosen node's slot.
    pub slot: Slot,
    /// Its score.
    pub score: f32,
    /// How many nodes could have run the pod.
    pub feasible_nodes: usize,
}

/// No node can run the pod: how many nodes there are and, per reason, how many were
/// rejected for it. Displays as kube-scheduler's message.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct FitError {
    /// Every node considered.
    pub num_all_nodes: usize,
    /// Reason (as displayed) -> nodes rejected for it.
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for FitError {
    /// `0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, 4
    /// Insufficient cpu.` — reasons as "count reason", sorted as strings, as kube-scheduler
    /// sorts them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        parts.sort();
        if !parts.is_empty() {
            write!(f, " {}", parts.join(", "))?;
        }
        f.write_str(".")
    }
}

/// Buffers a decision reuses, so deciding allocates nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    feasible: Bitset,
    affinity: Bitset,
    spread: Vec<f32>,
    touched: Vec<Slot>,
}

/// Filters and scores every node for `pod` and returns the best one.
pub fn schedule_one(
    cache: &NodeCache,
    pod: &PodInfo,
    weights: &ScoreWeights,
    scratch: &mut Scratch,
) -> Result<Decision, FitError> {
    let feasible = find_nodes_that_fit(cache, pod, scratch);
    if feasible == 0 {
        return Err(diagnose(cache, pod, scratch));
    }
    let groups = if weights.selector_spread > 0.0 {
        cache.spread_groups(pod)
    } else {
        Vec::new()
    };
    let best = if groups.is_empty() {
        score::best_node(cache.columns(), pod, weights, &scratch.feasible, None)
    } else {
        scratch.spread.resize(cache.columns().len(), 0.0);
        let max = cache.spread_counts(&groups, &mut scratch.spread, &mut scratch.touched);
        let best = score::best_node(
            cache.columns(),
            pod,
            weights,
            &scratch.feasible,
            Some(SpreadCounts {
                counts: &scratch.spread,
                max,
            }),
        );
        for slot in scratch.touched.drain(..) {
            scratch.spread[slot] = 0.0;
        }
        best
    };
    match best {
        Some((slot, score)) => Ok(Decision {
            slot,
            score,
            feasible_nodes: feasible,
        }),
        // Only NaN scores could get here (they cannot: every input is finite or capped).
        None => Err(diagnose(cache, pod, scratch)),
    }
}

/// Runs every filter over every node; leaves the feasible set in the scratch and returns its
/// size.
fn find_nodes_that_fit(cache: &NodeCache, pod: &PodInfo, scratch: &mut Scratch) -> usize {
    filter::tolerated_nodes(cache, pod, &mut scratch.feasible);
    if filter::has_node_affinity(pod) {
        filter::node_affinity(cache, pod, &mut scratch.affinity);
        scratch.feasible.intersect_with(&scratch.affinity);
    }
    filter::node_ports(cache, pod, &mut scratch.feasible);
    filter::node_resources_fit(cache.columns(), pod, &mut scratch.feasible);
    filter::scalar_fit(cache, pod, &mut scratch.feasible);
    scratch.feasible.count()
}

/// Why every node was rejected: each node counted under the first filter that rejects it
/// (all resources short on it, for NodeResourcesFit).
fn diagnose(cache: &NodeCache, pod: &PodInfo, scratch: &mut Scratch) -> FitError {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut add = |r: Reason, n: usize| *reasons.entry(r.to_string()).or_default() += n;
    let has_affinity = filter::has_node_affinity(pod);
    if has_affinity {
        filter::node_affinity(cache, pod, &mut scratch.affinity);
    }
    let mut ports_free = cache.nodes().clone();
    filter::node_ports(cache, pod, &mut ports_free);
    for class in cache.classes() {
        let members = class.members.count();
        if members == 0 {
            continue;
        }
        if let Some(r) =
            filter::node_unschedulable(class, pod).or_else(|| filter::taint_toleration(class, pod))
        {
            add(r, members);
            continue;
        }
        for slot in class.members.iter() {
            if has_affinity && !scratch.affinity.contains(slot) {
                add(Reason::NodeAffinity, 1);
            } else if !ports_free.contains(slot) {
                add(Reason::NodePorts, 1);
            } else {
                for r in filter::fit_reasons(cache, slot, pod) {
                    add(r, 1);
                }
            }
        }
    }
    FitError {
        num_all_nodes: cache.node_count(),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::scheduler::cache::ServiceInfo;
    use crate::scheduler::node_info::{NodeInfo, Readiness};
    use crate::scheduler::pod_info::{
        HostPort, NodeSelectorTerm, Requirement, Resources, SelectorOperator, Taint, TaintEffect,
        Toleration,
    };

    fn node(name: &str, milli_cpu: i64, gib: i64) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            allocatable: Resources {
                milli_cpu,
                memory: gib << 30,
                scalar: Vec::new(),
            },
            allocatable_pods: 110,
            labels: BTreeMap::from([("kubernetes.io/hostname".to_string(), name.to_string())]),
            taints: Vec::new(),
            unschedulable: false,
            readiness: Readiness::Ready,
        }
    }

    fn pod(uid: &str, milli_cpu: i64, mib: i64) -> PodInfo {
        PodInfo {
            uid: uid.into(),
            namespace: "default".into(),
            name: uid.into(),
            requests: Resources {
                milli_cpu,
                memory: mib << 20,
                scalar: Vec::new(),
            },
            non_zero_milli_cpu: milli_cpu.max(100),
            non_zero_memory: (mib << 20).max(200 << 20),
            ..Default::default()
        }
    }

    fn decide(cache: &NodeCache, p: &PodInfo) -> Result<String, FitError> {
        schedule_one(cache, p, &ScoreWeights::default(), &mut Scratch::default())
            .map(|d| cache.node_name(d.slot).to_string())
    }

    /// Decide and assume, as the scheduler does.
    fn place(cache: &mut NodeCache, p: PodInfo) -> String {
        let d = schedule_one(cache, &p, &ScoreWeights::default(), &mut Scratch::default())
            .expect("a node fits");
        let name = cache.node_name(d.slot).to_string();
        cache.assume(Arc::new(p), d.slot);
        name
    }

    fn taint(key: &str, value: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.into(),
            effect: TaintEffect::NoSchedule,
        }
    }

    #[test]
    fn node_resources_fit_picks_the_only_node_with_room() {
        let mut cache = NodeCache::new();
        cache.apply_node(node("small", 1000, 2));
        cache.apply_node(node("big", 8000, 16));
        assert_eq!(decide(&cache, &pod("p", 4000, 100)).as_deref(), Ok("big"));
        let err = decide(&cache, &pod("p", 9000, 100)).expect_err("too big");
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 2 Insufficient cpu."
        );
        let err = decide(&cache, &pod("p", 9000, 32 << 10)).expect_err("too big");
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."
        );
    }

    #[test]
    fn too_many_pods_and_pods_without_requests() {
        let mut cache = NodeCache::new();
        let mut n = node("tiny", 1000, 1);
        n.allocatable_pods = 1;
        cache.apply_node(n);
        assert_eq!(place(&mut cache, pod("a", 0, 0)), "tiny");
        let err = decide(&cache, &pod("b", 0, 0)).expect_err("full");
        assert_eq!(err.to_string(), "0/1 nodes are available: 1 Too many pods.");
    }

    #[test]
    fn assumed_pods_are_never_overcommitted() {
        let mut cache = NodeCache::new();
        cache.apply_node(node("a", 1000, 4));
        cache.apply_node(node("b", 1000, 4));
        for i in 0..4 {
            place(&mut cache, pod(&format!("p{i}"), 500, 10));
        }
        assert!(decide(&cache, &pod("p5", 500, 10)).is_err());
        for slot in cache.nodes().iter() {
            assert_eq!(cache.columns().free_milli_cpu[slot], 0);
        }
    }

    #[test]
    fn taint_toleration_keeps_others_off_tainted_nodes() {
        let mut cache = NodeCache::new();
        let mut tainted = node("gpu", 64000, 256);
        tainted.taints.push(taint("dedicated", "x"));
        cache.apply_node(tainted);
        cache.apply_node(node("plain", 1000, 2));
        assert_eq!(decide(&cache, &pod("p", 100, 10)).as_deref(), Ok("plain"));
        let mut tolerating = pod("t", 100, 10);
        tolerating.tolerations.push(Toleration {
            key: "dedicated".into(),
            exists: false,
            value: "x".into(),
            effect: Some(TaintEffect::NoSchedule),
        });
        assert_eq!(decide(&cache, &tolerating).as_deref(), Ok("gpu"));
        let err = decide(&cache, &pod("big", 2000, 10)).expect_err("no fit");
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: x}."
        );
    }

    #[test]
    fn not_ready_and_cordoned_nodes_take_no_pods() {
        let mut cache = NodeCache::new();
        let mut down = node("down", 8000, 8);
        down.readiness = Readiness::NotReady;
        let mut unknown = node("unknown", 8000, 8);
        unknown.readiness = Readiness::Unknown;
        let mut cordoned = node("cordoned", 8000, 8);
        cordoned.unschedulable = true;
        cache.apply_node(down);
        cache.apply_node(unknown);
        cache.apply_node(cordoned);
        let err = decide(&cache, &pod("p", 100, 10)).expect_err("nothing ready");
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 1 node(s) were unschedulable."
        );
        let mut daemon = pod("d", 100, 10);
        daemon.tolerations.push(Toleration {
            key: String::new(),
            exists: true,
            value: String::new(),
            effect: None,
        });
        assert!(decide(&cache, &daemon).is_ok());
    }

    #[test]
    fn node_affinity_and_selector() {
        let mut cache = NodeCache::new();
        for (name, zone, gen_) in [("a", "z1", "3"), ("b", "z2", "5"), ("c", "z3", "7")] {
            let mut n = node(name, 1000, 1);
            n.labels.insert("zone".into(), zone.into());
            n.labels.insert("gen".into(), gen_.into());
            cache.apply_node(n);
        }
        cache.apply_node(node("bare", 1000, 1));
        let mut p = pod("p", 100, 10);
        p.node_selector.push(("zone".into(), "z2".into()));
        assert_eq!(decide(&cache, &p).as_deref(), Ok("b"));
        p.node_selector = vec![("zone".into(), "nowhere".into())];
        assert_eq!(
            decide(&cache, &p).expect_err("no match").to_string(),
            "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."
        );

        let req = |key: &str, operator, values: &[&str]| Requirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let with_terms = |terms: Vec<NodeSelectorTerm>| {
            let mut p = pod("p", 100, 10);
            p.required_affinity = Some(terms);
            p
        };
        let term = |exprs: Vec<Requirement>| NodeSelectorTerm {
            match_expressions: exprs,
            match_fields: Vec::new(),
        };
        let feasible = |p: &PodInfo| {
            let mut names: Vec<String> = cache
                .nodes()
                .iter()
                .filter(|s| {
                    let n = cache.node(*s).expect("node");
                    filter::node_affinity_matches(&n.labels, &n.name, p)
                })
                .map(|s| cache.node_name(s).to_string())
                .collect();
            names.sort();
            // The bulk filter agrees with the per-node check.
            let mut bulk = Bitset::default();
            filter::node_affinity(&cache, p, &mut bulk);
            let mut bulk_names: Vec<String> = bulk
                .iter()
                .map(|s| cache.node_name(s).to_string())
                .collect();
            bulk_names.sort();
            assert_eq!(names, bulk_names);
            names
        };
        use SelectorOperator::*;
        assert_eq!(
            feasible(&with_terms(vec![term(vec![req(
                "zone",
                In,
                &["z1", "z3"]
            )])])),
            ["a", "c"]
        );
        assert_eq!(
            feasible(&with_terms(vec![term(vec![req("zone", NotIn, &["z1"])])])),
            ["b", "bare", "c"]
        );
        assert_eq!(
            feasible(&with_terms(vec![term(vec![req("zone", Exists, &[])])])),
            ["a", "b", "c"]
        );
        assert_eq!(
            feasible(&with_terms(vec![term(vec![req(
                "zone",
                DoesNotExist,
                &[]
            )])])),
            ["bare"]
        );
        assert_eq!(
            feasible(&with_terms(vec![term(vec![req("gen", Gt, &["4"])])])),
            ["b", "c"]
        );
        assert_eq!(
            feasible(&with_terms(vec![term(vec![req("gen", Lt, &["4"])])])),
            ["a"]
        );
        // Terms are ORed, requirements ANDed; an empty term matches nothing.
        assert_eq!(
            feasible(&with_terms(vec![
                term(vec![req("zone", In, &["z1"]), req("gen", Gt, &["4"])]),
                term(vec![req("zone", In, &["z3"])]),
                term(vec![]),
            ])),
            ["c"]
        );
        let by_name = NodeSelectorTerm {
            match_expressions: Vec::new(),
            match_fields: vec![req("metadata.name", In, &["bare"])],
        };
        assert_eq!(feasible(&with_terms(vec![by_name])), ["bare"]);
        assert!(feasible(&with_terms(vec![])).is_empty());
    }

    #[test]
    fn node_ports_conflict() {
        let mut cache = NodeCache::new();
        cache.apply_node(node("a", 1000, 1));
        cache.apply_node(node("b", 1000, 1));
        let mut web = pod("w1", 100, 10);
        web.host_ports.push(HostPort {
            protocol: "TCP".into(),
            ip: "0.0.0.0".into(),
            port: 80,
        });
        let first = place(&mut cache, web.clone());
        web.uid = "w2".into();
        let second = place(&mut cache, web.clone());
        assert_ne!(first, second);
        web.uid = "w3".into();
        assert_eq!(
            decide(&cache, &web).expect_err("ports taken").to_string(),
            "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
        );
        cache.remove_pod("w1");
        assert_eq!(decide(&cache, &web).as_deref(), Ok(first.as_str()));
    }

    #[test]
    fn extended_resources_must_fit() {
        let mut cache = NodeCache::new();
        let mut gpu = node("gpu", 1000, 1);
        gpu.allocatable.scalar.push(("nvidia.com/gpu".into(), 1));
        cache.apply_node(gpu);
        cache.apply_node(node("cpu", 8000, 8));
        let mut p = pod("g1", 100, 10);
        p.requests.scalar.push(("nvidia.com/gpu".into(), 1));
        assert_eq!(place(&mut cache, p.clone()), "gpu");
        p.uid = "g2".into();
        assert_eq!(
            decide(&cache, &p).expect_err("one gpu").to_string(),
            "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
        );
    }

    #[test]
    fn replicas_of_a_service_spread_over_nodes_of_different_sizes() {
        let mut cache = NodeCache::new();
        cache.apply_node(node("small", 2000, 4));
        cache.apply_node(node("medium", 4000, 8));
        cache.apply_node(node("big", 8000, 16));
        cache.apply_service(ServiceInfo {
            namespace: "default".into(),
            name: "web".into(),
            selector: BTreeMap::from([("app".into(), "web".into())]),
        });
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..6 {
            let mut p = pod(&format!("web-{i}"), 100, 128);
            p.labels = [("app", "web")].into_iter().collect();
            *per_node.entry(place(&mut cache, p)).or_default() += 1;
        }
        assert_eq!(
            per_node,
            BTreeMap::from([
                ("big".to_string(), 2),
                ("medium".to_string(), 2),
                ("small".to_string(), 2)
            ])
        );
        // Without a group, the roomiest node takes them all.
        let mut piled: BTreeMap<String, usize> = BTreeMap::new();
        let mut fresh = NodeCache::new();
        fresh.apply_node(node("small", 2000, 4));
        fresh.apply_node(node("big", 80000, 160));
        for i in 0..4 {
            *piled
                .entry(place(&mut fresh, pod(&format!("x-{i}"), 100, 128)))
                .or_default() += 1;
        }
        assert_eq!(piled, BTreeMap::from([("big".to_string(), 4)]));
    }

    #[test]
    fn no_nodes_at_all() {
        let cache = NodeCache::new();
        assert_eq!(
            decide(&cache, &pod("p", 1, 1))
                .expect_err("no nodes")
                .to_string(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn bulk_resource_filter_agrees_with_the_per_node_check() {
        let mut cache = NodeCache::new();
        let mut state = 12345u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..300 {
            let mut n = node(
                &format!("n{i}"),
                (next() % 8000) as i64,
                (next() % 8) as i64,
            );
            n.allocatable_pods = (next() % 4) as i64;
            cache.apply_node(n);
        }
        for i in 0..200 {
            let slot = (next() % 300) as usize;
            let name = cache.node_name(slot).to_string();
            let mut p = pod(
                &format!("b{i}"),
                (next() % 500) as i64,
                (next() % 500) as i64,
            );
            p.node_name = Some(name);
            cache.apply_pod(Arc::new(p));
        }
        for i in 0..50 {
            let p = pod(
                &format!("q{i}"),
                (next() % 3000) as i64,
                (next() % 3000) as i64,
            );
            let mut bulk = cache.nodes().clone();
            bulk.reset(cache.columns().len());
            bulk.union_with(cache.nodes());
            filter::node_resources_fit(cache.columns(), &p, &mut bulk);
            for slot in cache.nodes().iter() {
                assert_eq!(
                    bulk.contains(slot),
                    filter::fit_reasons(&cache, slot, &p).is_empty(),
                    "slot {slot}"
                );
            }
        }
    }
}
