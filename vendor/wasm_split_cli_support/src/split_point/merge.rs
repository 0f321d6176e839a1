//! Merging the chunks that several splits share (`Options::max_chunks_per_split`).
//!
//! Painting puts every symbol into the chunk of exactly the splits that reach it, so with
//! many splits there is a chunk for nearly every combination of them, and each split loads
//! dozens of small files. A merged chunk is loaded by the union of its parts' splits. That
//! keeps loading correct: a symbol is only reachable from the splits of its part, and each
//! of them still loads the chunk holding it (and, likewise, the chunks holding everything
//! it uses). Code of other parts that a split loads but does not reach may call functions
//! the split never loads; it does not run. Data placement and the loader only look at a
//! chunk's set of splits, so they need nothing further. The price is bytes: a split loading
//! a merged chunk also downloads the parts it does not need.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroUsize;

use wasmparser::SymbolInfo;

use super::{OutputModuleInfo, SplitModuleIdentifier};
use crate::{dep_graph::DepNode, read::InputModule};

/// Merges the chunks among `modules` (filled with their `included_symbols` only) until no
/// split loads more than `max_chunks_per_split` of them.
pub(super) fn merge_chunks(
    input: &InputModule,
    modules: &mut HashMap<SplitModuleIdentifier, OutputModuleInfo>,
    max_chunks_per_split: NonZeroUsize,
) {
    let chunk_ids: Vec<SplitModuleIdentifier> = modules
        .keys()
        .filter(|id| matches!(id, SplitModuleIdentifier::Chunk(_)))
        .cloned()
        .collect();
    // Sorted, so that the merges do not depend on the hash map's order.
    let mut chunks: Vec<(BTreeSet<String>, HashSet<DepNode>)> = chunk_ids
        .into_iter()
        .map(|id| {
            let info = modules.remove(&id).expect("a key of the map");
            let SplitModuleIdentifier::Chunk(splits) = id else {
                unreachable!("only chunks were taken");
            };
            (splits, info.included_symbols)
        })
        .collect();
    chunks.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let split_index: BTreeMap<&String, usize> = chunks
        .iter()
        .flat_map(|(splits, _)| splits)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(index, split)| (split, index))
        .collect();
    let sets = chunks
        .iter()
        .map(|(splits, _)| {
            let mut set = SplitSet::new(split_index.len());
            for split in splits {
                set.insert(split_index[split]);
            }
            set
        })
        .collect();
    let bytes = chunks
        .iter()
        .map(|(_, symbols)| symbol_bytes(input, symbols))
        .collect();
    let group_of = plan_merges(sets, bytes, split_index.len(), max_chunks_per_split);

    let mut groups = BTreeMap::<usize, (BTreeSet<String>, HashSet<DepNode>)>::new();
    for ((splits, symbols), group) in chunks.into_iter().zip(group_of) {
        let (group_splits, group_symbols) = groups.entry(group).or_default();
        group_splits.extend(splits);
        group_symbols.extend(symbols);
    }
    // Two groups may end up with the same splits; they are loaded together, so they share
    // one chunk.
    for (splits, symbols) in groups.into_values() {
        modules
            .entry(SplitModuleIdentifier::Chunk(splits))
            .or_default()
            .included_symbols
            .extend(symbols);
    }
}

/// What the symbols weigh in an output module: code and data, before compression.
fn symbol_bytes(input: &InputModule, symbols: &HashSet<DepNode>) -> u64 {
    symbols
        .iter()
        .map(|symbol| match *symbol {
            DepNode::Function(func) => {
                func.checked_sub(input.imported_funcs.len())
                    .map_or(0, |defined| {
                        let body = input.defined_funcs[defined].body.range();
                        (body.end - body.start) as u64
                    })
            }
            DepNode::DataSymbol(symbol) => match input.reloc_info.symbols[symbol] {
                SymbolInfo::Data {
                    symbol: Some(data), ..
                } => u64::from(data.size),
                _ => 0,
            },
            DepNode::Global(_) | DepNode::Table(_) | DepNode::Tag(_) | DepNode::Memory(_) => 0,
        })
        .sum()
}

/// Decides which chunks to merge: the chunk `i` has the splits `sets[i]` and weighs
/// `bytes[i]`. Returns for every chunk the index of the chunk it is merged into (its own
/// when it stays).
///
/// Each step merges the pair that adds the fewest bytes splits download without needing
/// them, among the pairs that a split over the limit loads both of (only those bring a
/// split closer to the limit). Such a pair exists while a split is over the limit, since
/// the limit is at least one, and every step leaves one chunk fewer, so this ends.
fn plan_merges(
    mut sets: Vec<SplitSet>,
    mut bytes: Vec<u64>,
    split_count: usize,
    max_chunks_per_split: NonZeroUsize,
) -> Vec<usize> {
    let mut group_of: Vec<usize> = (0..sets.len()).collect();
    let mut live: Vec<usize> = (0..sets.len()).collect();
    loop {
        let Some(over_limit) =
            splits_over_limit(&sets, &live, split_count, max_chunks_per_split.get())
        else {
            return group_of;
        };
        let mut best: Option<(u64, usize, usize)> = None;
        for (pos, &a) in live.iter().enumerate() {
            for &b in &live[pos + 1..] {
                if !over_limit.meets_both(&sets[a], &sets[b]) {
                    continue;
                }
                let cost = bytes[a] * sets[b].count_without(&sets[a])
                    + bytes[b] * sets[a].count_without(&sets[b]);
                if best.is_none_or(|(best_cost, ..)| cost < best_cost) {
                    best = Some((cost, a, b));
                }
            }
        }
        let (_, into, from) = best.expect("a split over the limit loads two chunks");
        let from_set = sets[from].clone();
        sets[into].union_with(&from_set);
        bytes[into] += bytes[from];
        live.retain(|&chunk| chunk != from);
        for group in &mut group_of {
            if *group == from {
                *group = into;
            }
        }
    }
}

/// The splits that load more than `max` of the `live` chunks, if any.
fn splits_over_limit(
    sets: &[SplitSet],
    live: &[usize],
    split_count: usize,
    max: usize,
) -> Option<SplitSet> {
    let mut loads = vec![0usize; split_count];
    for &chunk in live {
        for split in sets[chunk].iter() {
            loads[split] += 1;
        }
    }
    let mut over = SplitSet::new(split_count);
    for (split, &count) in loads.iter().enumerate() {
        if count > max {
            over.insert(split);
        }
    }
    (!over.is_empty()).then_some(over)
}

/// A set of splits, by their index: a bit per split.
#[derive(Clone)]
struct SplitSet(Vec<u64>);

impl SplitSet {
    fn new(splits: usize) -> Self {
        Self(vec![0; splits.div_ceil(64)])
    }

    fn insert(&mut self, split: usize) {
        self.0[split / 64] |= 1 << (split % 64);
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&word| word == 0)
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(index, &word)| {
            (0..64)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| index * 64 + bit)
        })
    }

    fn union_with(&mut self, other: &SplitSet) {
        for (word, other) in self.0.iter_mut().zip(&other.0) {
            *word |= other;
        }
    }

    /// How many splits of `self` are not in `other`.
    fn count_without(&self, other: &SplitSet) -> u64 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(word, other)| u64::from((word & !other).count_ones()))
            .sum()
    }

    /// Whether a split of `self` is in both `a` and `b`.
    fn meets_both(&self, a: &SplitSet, b: &SplitSet) -> bool {
        self.0
            .iter()
            .zip(&a.0)
            .zip(&b.0)
            .any(|((word, a), b)| word & a & b != 0)
    }
}
