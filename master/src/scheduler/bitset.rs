//! A set of node slots, one bit per slot: what the filters produce and combine. A word covers
//! 64 nodes, so "every node with label x" AND "every node tolerated" is 782 word operations at
//! 50,000 nodes.

/// A set of node slots (indexes into the node cache's columns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    /// An empty set able to hold `slots` slots without growing.
    pub fn with_capacity(slots: usize) -> Self {
        Self {
            words: vec![0; slots.div_ceil(64)],
        }
    }

    /// Adds `slot`, growing the set as needed.
    pub fn insert(&mut self, slot: usize) {
        let word = slot / 64;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (slot % 64);
    }

    /// Removes `slot`.
    pub fn remove(&mut self, slot: usize) {
        if let Some(word) = self.words.get_mut(slot / 64) {
            *word &= !(1 << (slot % 64));
        }
    }

    /// Whether `slot` is in the set.
    pub fn contains(&self, slot: usize) -> bool {
        self.words
            .get(slot / 64)
            .is_some_and(|word| word & (1 << (slot % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// How many slots are in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Empties the set and sizes it for `slots` slots (keeps its allocation).
    pub fn reset(&mut self, slots: usize) {
        self.words.clear();
        self.words.resize(slots.div_ceil(64), 0);
    }

    /// Makes this set a copy of `other`, sized for `slots` slots.
    pub fn copy_from(&mut self, other: &Bitset, slots: usize) {
        self.reset(slots);
        let n = self.words.len().min(other.words.len());
        self.words[..n].copy_from_slice(&other.words[..n]);
    }

    /// Adds every slot of `other`.
    pub fn union_with(&mut self, other: &Bitset) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// Keeps only the slots also in `other`.
    pub fn intersect_with(&mut self, other: &Bitset) {
        for (i, a) in self.words.iter_mut().enumerate() {
            *a &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// Removes every slot of `other`.
    pub fn subtract(&mut self, other: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    /// The words, 64 slots each (slot `i` is bit `i % 64` of word `i / 64`).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The words, mutable.
    pub fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// The slots in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + bit)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations_follow_set_semantics() {
        let mut a = Bitset::with_capacity(10);
        a.insert(3);
        a.insert(200);
        assert!(a.contains(3) && a.contains(200) && !a.contains(4));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![3, 200]);
        let mut b = Bitset::default();
        b.insert(200);
        b.insert(7);
        let mut and = a.clone();
        and.intersect_with(&b);
        assert_eq!(and.iter().collect::<Vec<_>>(), vec![200]);
        let mut or = a.clone();
        or.union_with(&b);
        assert_eq!(or.count(), 3);
        let mut minus = a.clone();
        minus.subtract(&b);
        assert_eq!(minus.iter().collect::<Vec<_>>(), vec![3]);
        a.remove(3);
        a.remove(100_000);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![200]);
        a.reset(64);
        assert!(a.is_empty());
    }
}
