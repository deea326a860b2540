//! Score plugins: rank the feasible nodes. Every feasible node is scored (no sampling). Each
//! plugin gives 0..=100 per node, as in kube-scheduler, and the node's score is the weighted
//! sum:
//!
//! - `NodeResourcesLeastAllocated`: prefer the node with the most room left after the pod;
//! - `NodeResourcesBalancedAllocation`: prefer the node whose CPU and memory use stay even;
//! - `SelectorSpread`: prefer nodes running fewer pods of the pod's controller or Services.
//!
//! The scoring inputs are `f32` columns, so the loop over 64 nodes at a time vectorizes.

use std::fmt;
use std::str::FromStr;

use super::bitset::Bitset;
use super::cache::{Columns, Slot};
use super::pod_info::PodInfo;

/// The highest score a plugin gives.
pub const MAX_NODE_SCORE: f32 = 100.0;

/// How much each score plugin counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreWeights {
    /// `NodeResourcesLeastAllocated`.
    pub least_allocated: f32,
    /// `NodeResourcesBalancedAllocation`.
    pub balanced_allocation: f32,
    /// `SelectorSpread`.
    pub selector_spread: f32,
}

impl Default for ScoreWeights {
    /// kube-scheduler's defaults: 1 for the resource plugins, 2 for spreading, so spreading
    /// wins whenever replicas would otherwise pile up on the roomiest node.
    fn default() -> Self {
        Self {
            least_allocated: 1.0,
            balanced_allocation: 1.0,
            selector_spread: 2.0,
        }
    }
}

/// A weight list that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Not `Plugin=weight`.
    #[error("expected Plugin=weight, got {0:?}")]
    Syntax(String),
    /// A plugin this scheduler does not have.
    #[error(
        "unknown score plugin {0:?} (known: NodeResourcesLeastAllocated, NodeResourcesBalancedAllocation, SelectorSpread)"
    )]
    UnknownPlugin(String),
    /// A weight that is not a finite number >= 0.
    #[error("weight of {0} must be a number >= 0")]
    Weight(String),
}

impl FromStr for ScoreWeights {
    type Err = WeightsError;

    /// `NodeResourcesLeastAllocated=1,SelectorSpread=3`; plugins not named keep their default.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = ScoreWeights::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| WeightsError::Syntax(part.to_string()))?;
            let value: f32 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| WeightsError::Weight(name.to_string()))?;
            match name.trim() {
                "NodeResourcesLeastAllocated" | "LeastAllocated" => weights.least_allocated = value,
                "NodeResourcesBalancedAllocation" | "BalancedAllocation" => {
                    weights.balanced_allocation = value
                }
                "SelectorSpread" => weights.selector_spread = value,
                other => return Err(WeightsError::UnknownPlugin(other.to_string())),
            }
        }
        Ok(weights)
    }
}

impl fmt::Display for ScoreWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NodeResourcesLeastAllocated={},NodeResourcesBalancedAllocation={},SelectorSpread={}",
            self.least_allocated, self.balanced_allocation, self.selector_spread
        )
    }
}

/// `NodeResourcesLeastAllocated` from the CPU and memory fractions the node would have in use
/// with the pod (each capped at 1): the mean free fraction, scaled to 0..=100.
#[inline(always)]
pub fn least_allocated(used_cpu: f32, used_memory: f32) -> f32 {
    MAX_NODE_SCORE * (1.0 - 0.5 * (used_cpu + used_memory))
}

/// `NodeResourcesBalancedAllocation`: 100 when CPU and memory are used in equal fractions,
/// less by their standard deviation (half their difference, for two resources).
#[inline(always)]
pub fn balanced_allocation(used_cpu: f32, used_memory: f32) -> f32 {
    MAX_NODE_SCORE * (1.0 - 0.5 * (used_cpu - used_memory).abs())
}

/// `SelectorSpread`: 100 on nodes running none of the pod's group, 0 on those running the
/// most, in proportion between.
#[inline(always)]
pub fn selector_spread(count: f32, max_count: f32) -> f32 {
    if max_count > 0.0 {
        MAX_NODE_SCORE * (max_count - count) / max_count
    } else {
        MAX_NODE_SCORE
    }
}

/// How many pods of the pod's spreading groups each node runs, and the most on any node.
#[derive(Clone, Copy, Debug)]
pub struct SpreadCounts<'a> {
    /// Per slot.
    pub counts: &'a [f32],
    /// The largest count.
    pub max: f32,
}

/// Scores every node in `feasible` and returns the best (the lowest slot among equals).
pub fn best_node(
    columns: &Columns,
    pod: &PodInfo,
    weights: &ScoreWeights,
    feasible: &Bitset,
    spread: Option<SpreadCounts<'_>>,
) -> Option<(Slot, f32)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { best_node_avx2(columns, pod, weights, feasible, spread) };
    }
    best_node_dispatch(columns, pod, weights, feasible, spread)
}

/// The same loops compiled for AVX2 (eight scores per instruction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn best_node_avx2(
    columns: &Columns,
    pod: &PodInfo,
    weights: &ScoreWeights,
    feasible: &Bitset,
    spread: Option<SpreadCounts<'_>>,
) -> Option<(Slot, f32)> {
    best_node_dispatch(columns, pod, weights, feasible, spread)
}

#[inline(always)]
fn best_node_dispatch(
    columns: &Columns,
    pod: &PodInfo,
    weights: &ScoreWeights,
    feasible: &Bitset,
    spread: Option<SpreadCounts<'_>>,
) -> Option<(Slot, f32)> {
    match spread {
        Some(spread) if spread.max > 0.0 && weights.selector_spread > 0.0 => {
            best_node_with::<true>(columns, pod, weights, feasible, spread)
        }
        _ => best_node_with::<false>(
            columns,
            pod,
            weights,
            feasible,
            SpreadCounts {
                counts: &[],
                max: 0.0,
            },
        ),
    }
}

#[inline(always)]
fn best_node_with<const SPREAD: bool>(
    columns: &Columns,
    pod: &PodInfo,
    weights: &ScoreWeights,
    feasible: &Bitset,
    spread: SpreadCounts<'_>,
) -> Option<(Slot, f32)> {
    let pod_cpu = pod.non_zero_milli_cpu.max(1) as f32;
    let pod_memory = pod.non_zero_memory.max(1) as f32;
    // Spreading is constant where no node runs the group; it cannot change the order then.
    let spread_weight = if SPREAD { weights.selector_spread } else { 0.0 };
    let mut best: Option<(Slot, f32)> = None;
    let mut best_score = f32::NEG_INFINITY;
    let mut scores = [0f32; 64];
    let words = feasible.words();
    let n = words.len().min(columns.len() / 64);
    for (w, &word) in words[..n].iter().enumerate() {
        if word == 0 {
            continue;
        }
        let base = w * 64;
        let range = base..base + 64;
        let score_cpu = &columns.score_cpu[range.clone()];
        let score_memory = &columns.score_memory[range.clone()];
        let inv_cpu = &columns.inv_alloc_cpu[range.clone()];
        let inv_memory = &columns.inv_alloc_memory[range.clone()];
        let counts = if SPREAD {
            &spread.counts[range]
        } else {
            &[0f32; 64][..]
        };
        for j in 0..64 {
            let used_cpu = ((score_cpu[j] + pod_cpu) * inv_cpu[j]).min(1.0);
            let used_memory = ((score_memory[j] + pod_memory) * inv_memory[j]).min(1.0);
            let mut score = weights.least_allocated * least_allocated(used_cpu, used_memory)
                + weights.balanced_allocation * balanced_allocation(used_cpu, used_memory);
            if SPREAD {
                score += spread_weight * selector_spread(counts[j], spread.max);
            }
            let feasible = (word >> j) & 1 == 1;
            scores[j] = if feasible { score } else { f32::NEG_INFINITY };
        }
        let chunk_best = max8(&scores);
        if chunk_best > best_score {
            best_score = chunk_best;
            if let Some(j) = scores.iter().position(|&s| s == chunk_best) {
                best = Some((base + j, chunk_best));
            }
        }
    }
    best
}

/// The largest of 64 scores, in eight lanes so it compiles to vector max instructions.
#[inline(always)]
fn max8(scores: &[f32; 64]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    for chunk in scores.chunks_exact(8) {
        for l in 0..8 {
            lanes[l] = if chunk[l] > lanes[l] {
                chunk[l]
            } else {
                lanes[l]
            };
        }
    }
    lanes.into_iter().fold(f32::NEG_INFINITY, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_allocated_prefers_room() {
        assert_eq!(least_allocated(0.0, 0.0), 100.0);
        assert_eq!(least_allocated(1.0, 1.0), 0.0);
        assert_eq!(least_allocated(0.5, 0.0), 75.0);
        assert!(least_allocated(0.1, 0.1) > least_allocated(0.2, 0.1));
    }

    #[test]
    fn balanced_allocation_prefers_even_use() {
        assert_eq!(balanced_allocation(0.5, 0.5), 100.0);
        assert_eq!(balanced_allocation(1.0, 0.0), 50.0);
        assert!(balanced_allocation(0.4, 0.5) > balanced_allocation(0.2, 0.5));
    }

    #[test]
    fn selector_spread_prefers_nodes_with_fewer_of_the_group() {
        assert_eq!(selector_spread(0.0, 0.0), 100.0);
        assert_eq!(selector_spread(0.0, 2.0), 100.0);
        assert_eq!(selector_spread(1.0, 2.0), 50.0);
        assert_eq!(selector_spread(2.0, 2.0), 0.0);
    }

    #[test]
    fn weights_parse_by_plugin_name() {
        let w: ScoreWeights = "SelectorSpread=5, NodeResourcesBalancedAllocation=0"
            .parse()
            .expect("weights");
        assert_eq!(w.selector_spread, 5.0);
        assert_eq!(w.balanced_allocation, 0.0);
        assert_eq!(w.least_allocated, 1.0);
        assert_eq!(
            w.to_string().parse::<ScoreWeights>().expect("round trip"),
            w
        );
        assert!("Nope=1".parse::<ScoreWeights>().is_err());
        assert!("SelectorSpread=-1".parse::<ScoreWeights>().is_err());
        assert!("SelectorSpread".parse::<ScoreWeights>().is_err());
    }

    fn columns(nodes: &[(f32, f32, f32, f32)]) -> Columns {
        let mut c = Columns::default();
        let len = nodes.len().div_ceil(64) * 64;
        c.free_milli_cpu = vec![0; len];
        c.free_memory = vec![0; len];
        c.free_pods = vec![0; len];
        c.inv_alloc_cpu = vec![f32::INFINITY; len];
        c.inv_alloc_memory = vec![f32::INFINITY; len];
        c.score_cpu = vec![0.0; len];
        c.score_memory = vec![0.0; len];
        for (i, &(alloc_cpu, alloc_mem, req_cpu, req_mem)) in nodes.iter().enumerate() {
            c.inv_alloc_cpu[i] = 1.0 / alloc_cpu;
            c.inv_alloc_memory[i] = 1.0 / alloc_mem;
            c.score_cpu[i] = req_cpu;
            c.score_memory[i] = req_mem;
        }
        c
    }

    fn pod(cpu: i64, memory: i64) -> PodInfo {
        PodInfo {
            non_zero_milli_cpu: cpu,
            non_zero_memory: memory,
            ..Default::default()
        }
    }

    #[test]
    fn best_node_is_the_roomiest_feasible_one() {
        let c = columns(&[
            (1000.0, 1000.0, 0.0, 0.0),
            (4000.0, 4000.0, 0.0, 0.0),
            (8000.0, 8000.0, 7000.0, 7000.0),
            (8000.0, 8000.0, 0.0, 0.0),
        ]);
        let mut feasible = Bitset::default();
        for i in 0..3 {
            feasible.insert(i);
        }
        let w = ScoreWeights::default();
        let best = best_node(&c, &pod(100, 100), &w, &feasible, None);
        assert_eq!(
            best.map(|b| b.0),
            Some(1),
            "slot 3 is roomier but not feasible"
        );
        assert_eq!(
            best_node(&c, &pod(1, 1), &w, &Bitset::default(), None),
            None
        );
    }

    #[test]
    fn spreading_outweighs_room() {
        let c = columns(&[(2000.0, 2000.0, 0.0, 0.0), (8000.0, 8000.0, 0.0, 0.0)]);
        let mut feasible = Bitset::default();
        feasible.insert(0);
        feasible.insert(1);
        let mut counts = vec![0.0; 64];
        counts[1] = 1.0;
        let spread = SpreadCounts {
            counts: &counts,
            max: 1.0,
        };
        let w = ScoreWeights::default();
        let best = best_node(&c, &pod(100, 100), &w, &feasible, Some(spread));
        assert_eq!(best.map(|b| b.0), Some(0));
        let best = best_node(&c, &pod(100, 100), &w, &feasible, None);
        assert_eq!(best.map(|b| b.0), Some(1));
    }

    #[test]
    fn ties_go_to_the_lowest_slot() {
        let nodes = vec![(1000.0, 1000.0, 0.0, 0.0); 130];
        let c = columns(&nodes);
        let mut feasible = Bitset::default();
        for i in [5, 70, 129] {
            feasible.insert(i);
        }
        let best = best_node(&c, &pod(1, 1), &ScoreWeights::default(), &feasible, None);
        assert_eq!(best.map(|b| b.0), Some(5));
    }
}
